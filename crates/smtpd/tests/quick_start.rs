//! The README's quick start works as a newcomer would use it (issue 10): its first code block
//! holds exactly two commands, `bash scripts/run.sh` and the test command `.ci/run` runs; in a
//! fresh clone of the repository the first one builds and serves mail on 127.0.0.1:2525, the
//! test message command it prints delivers to the path it prints, Ctrl-C (SIGINT) stops it with
//! exit 0 and nothing left undelivered, and a second run on the same spool works too.
//!
//! The clone builds into this build's target folder (CARGO_TARGET_DIR), so that only the
//! workspace's own crates are compiled again; in CI the clone is this very commit. It is of the
//! last commit: commit before running this test while developing.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The target folder this test binary was built in (target/debug/deps/THIS -> target).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    exe.ancestors().nth(3).expect("target dir").to_path_buf()
}

/// The commands of the README's first code block (comments and blank lines left out).
fn first_block_commands(readme: &str) -> Vec<String> {
    let mut lines = readme.lines().skip_while(|l| !l.starts_with("```"));
    lines.next();
    lines
        .take_while(|l| !l.starts_with("```"))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

struct Run {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Run {
    fn start(dir: &Path, command: &str) -> Run {
        let mut child = Command::new("bash")
            .args(["-c", command])
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", target_dir())
            .env("CARGO_INCREMENTAL", "0")
            .env_remove("SMTPD_SPOOL")
            .env_remove("SMTPD_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the quick start");
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(l);
                }
            });
        }
        Run {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a line; fails at once if the script has exited.
    fn wait_line(&mut self, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(l.clone());
                if pred(&l) {
                    return l;
                }
                continue;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                while let Ok(l) = self.lines.try_recv() {
                    self.seen.push(l);
                }
                panic!("quick start exited ({st}):\n{}", self.seen.join("\n"));
            }
            assert!(
                t0.elapsed() < limit,
                "timed out; output:\n{}",
                self.seen.join("\n")
            );
        }
    }

    fn interrupt(&mut self) -> (i32, Vec<String>) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
        let t0 = Instant::now();
        let st = loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                break st;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "did not stop on SIGINT"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        std::thread::sleep(Duration::from_millis(200));
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        (st.code().unwrap_or(-1), self.seen.clone())
    }
}

impl Drop for Run {
    /// A failed run must not leave a server behind on the fixed port.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn banner() -> Option<String> {
    let mut s = std::net::TcpStream::connect("127.0.0.1:2525").ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut line = String::new();
    BufReader::new(&mut s).read_line(&mut line).ok()?;
    Some(line)
}

/// Regular files under `dir`, at any depth (queue/ keeps its bucket folders).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// One run: start, banner, the printed command, the message at the printed path, SIGINT.
fn serve_one_message(clone: &Path, command: &str, expect_files: usize) {
    let mut run = Run::start(clone, command);
    let send = run.wait_line(Duration::from_secs(900), |l| {
        l.trim_start().starts_with("printf ")
    });
    let lands = run.wait_line(Duration::from_secs(10), |l| l.starts_with("It lands in "));
    let path = lands
        .trim_start_matches("It lands in ")
        .split_whitespace()
        .next()
        .expect("a path")
        .to_string();
    run.wait_line(Duration::from_secs(60), |l| {
        l.contains("OpenSMTPD 6.8.0p2 starting")
    });
    let t0 = Instant::now();
    let greeting = loop {
        if let Some(b) = banner() {
            break b;
        }
        if let Ok(Some(st)) = run.child.try_wait() {
            panic!("quick start exited ({st}):\n{}", run.seen.join("\n"));
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no banner:\n{}",
            run.seen.join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(greeting.starts_with("220 "), "{}", greeting);
    let out = Command::new("bash")
        .args(["-c", send.trim()])
        .output()
        .expect("send");
    assert!(
        out.status.success(),
        "{}: {}",
        send,
        String::from_utf8_lossy(&out.stderr)
    );
    let t0 = Instant::now();
    while files_in(Path::new(&path)) < expect_files {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "nothing in {path}:\n{}",
            run.seen.join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, seen) = run.interrupt();
    assert_eq!(code, 0, "exit after SIGINT:\n{}", seen.join("\n"));
    let spool = clone.join("run/spool");
    for sub in ["queue", "incoming", "offline", "temporary"] {
        let left = files_under(&spool.join(sub));
        assert!(left.is_empty(), "left in the spool: {:?}", left);
    }
    assert!(
        !clone.join("run/smtpd.sock").exists(),
        "control socket left behind"
    );
}

#[test]
fn the_readme_quick_start_serves_mail_twice() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let cmds = first_block_commands(&readme);
    assert_eq!(
        cmds,
        vec!["bash scripts/run.sh", "bash scripts/test.sh"],
        "README's first block"
    );
    let ci = std::fs::read_to_string(root().join(".ci/run")).expect(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == cmds[1]),
        ".ci/run runs {}",
        cmds[1]
    );
    if std::net::TcpListener::bind("127.0.0.1:2525").is_err() {
        println!("SKIPPED: 127.0.0.1:2525 is in use here");
        return;
    }
    // A fresh folder at a fixed place for this build: cargo's fingerprints depend on the
    // sources' path, so the same place rebuilds only what changed; under /tmp, so that nobody
    // (who the quick start delivers as under root) can reach the clone's run folder.
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    target_dir().hash(&mut h);
    let base = std::env::temp_dir().join(format!("rsmtpd-quick-start-{:x}", h.finish()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).expect("mkdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let clone = base.join("rsmtpd");
    let st = Command::new("git")
        .args(["clone", "--quiet"])
        .arg(root())
        .arg(&clone)
        .status()
        .expect("git clone");
    assert!(st.success(), "git clone");
    serve_one_message(&clone, &cmds[0], 1);
    // Again, on the spool and Maildir of the first run.
    serve_one_message(&clone, &cmds[0], 2);
}
