//! Every target on every seed and every saved regression input (`fuzz/regressions/TARGET/`):
//! the plain replay, on stable, that CI runs before fuzzing.

use std::path::Path;

#[test]
fn every_target_takes_its_seeds_and_regressions() {
    for t in rsmtpd_fuzz::TARGETS {
        let seeds = rsmtpd_fuzz::seeds::for_target(t.name);
        assert!(!seeds.is_empty(), "{}: no seeds", t.name);
        for (name, data) in &seeds {
            eprintln!("{}: seed {name}", t.name);
            (t.run)(data);
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("regressions")
            .join(t.name);
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let data = std::fs::read(e.path()).unwrap_or_default();
            eprintln!("{}: regression {}", t.name, e.path().display());
            (t.run)(&data);
        }
    }
}

#[test]
fn the_empty_input_and_single_bytes_go_through_every_target() {
    for t in rsmtpd_fuzz::TARGETS {
        (t.run)(b"");
        for b in 0..=255u8 {
            (t.run)(&[b]);
        }
    }
}
