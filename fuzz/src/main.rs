//! `rsmtpd-fuzz TARGET`: under AFL++ (built with `cargo afl build --features afl`), fuzzes
//! TARGET. `rsmtpd-fuzz TARGET FILE|DIR...`: replays inputs through TARGET (on stable, no
//! engine needed; a crash reproduces with its file). `rsmtpd-fuzz seeds TARGET DIR`: writes the
//! target's seed corpus into DIR. `rsmtpd-fuzz list`: the targets.

use std::path::Path;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: rsmtpd-fuzz TARGET [FILE|DIR...] | seeds TARGET DIR | list\ntargets: {}",
        rsmtpd_fuzz::TARGETS
            .iter()
            .map(|t| t.name)
            .collect::<Vec<_>>()
            .join(" ")
    );
    ExitCode::from(2)
}

fn replay(t: &rsmtpd_fuzz::Target, path: &Path) -> std::io::Result<usize> {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)?
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        let mut n = 0;
        for p in entries {
            n += replay(t, &p)?;
        }
        return Ok(n);
    }
    let data = std::fs::read(path)?;
    eprintln!("{}: {}", t.name, path.display());
    (t.run)(&data);
    Ok(1)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("list") => {
            for t in rsmtpd_fuzz::TARGETS {
                println!("{:10} {}", t.name, t.what);
            }
            ExitCode::SUCCESS
        }
        Some("seeds") => {
            let (Some(name), Some(dir)) = (args.get(1), args.get(2)) else {
                return usage();
            };
            if rsmtpd_fuzz::target(name).is_none() {
                return usage();
            }
            let dir = Path::new(dir);
            if let Err(e) = std::fs::create_dir_all(dir) {
                eprintln!("{}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
            let seeds = rsmtpd_fuzz::seeds::for_target(name);
            for (n, data) in &seeds {
                if let Err(e) = std::fs::write(dir.join(n), data) {
                    eprintln!("{}: {e}", dir.join(n).display());
                    return ExitCode::FAILURE;
                }
            }
            println!("{name}: {} seeds in {}", seeds.len(), dir.display());
            ExitCode::SUCCESS
        }
        Some(name) => {
            let Some(t) = rsmtpd_fuzz::target(name) else {
                return usage();
            };
            if args.len() == 1 {
                return fuzz(t);
            }
            let mut n = 0;
            for p in &args[1..] {
                match replay(t, Path::new(p)) {
                    Ok(k) => n += k,
                    Err(e) => {
                        eprintln!("{p}: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            println!("{name}: {n} inputs replayed, no crash");
            ExitCode::SUCCESS
        }
        None => usage(),
    }
}

#[cfg(feature = "afl")]
fn fuzz(t: &'static rsmtpd_fuzz::Target) -> ExitCode {
    let run = t.run;
    afl::fuzz!(|data: &[u8]| {
        run(data);
    });
    ExitCode::SUCCESS
}

#[cfg(not(feature = "afl"))]
fn fuzz(t: &'static rsmtpd_fuzz::Target) -> ExitCode {
    // Without the engine: one input on stdin (what AFL++ does without persistent mode).
    let mut data = Vec::new();
    if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut data) {
        eprintln!("stdin: {e}");
        return ExitCode::FAILURE;
    }
    (t.run)(&data);
    ExitCode::SUCCESS
}
