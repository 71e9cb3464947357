//! Debian's OpenSMTPD filter packages, run unchanged through our smtpd (and, when it can run
//! here, through the real OpenSMTPD 6.8.0p2 with the same config, for the client's replies):
//!
//! - `opensmtpd-filter-dkimsign`: a key made here with openssl; the stored message carries a
//!   `DKIM-Signature:` that Python's dkimpy (Debian's python3-dkim) verifies against the public
//!   key, and no longer verifies once the body is altered.
//! - `opensmtpd-filter-rspamd` with a real `rspamd` started here on ports of its own: a GTUBE
//!   message is refused as rspamd's action says (`550 Gtube pattern`), a clean one is stored
//!   with the headers rspamd asked for.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, Daemon, REAL_SMTPD};

const PY: &str = "/usr/bin/python3";
const DKIMSIGN: &str = "/usr/libexec/opensmtpd/filter-dkimsign";
const RSPAMD_FILTER: &str = "/usr/libexec/opensmtpd/filter-rspamd";
const RSPAMD: &str = "/usr/bin/rspamd";

/// A folder the filter user (when root) can read and the delivery user `nobody` can write.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let _ = Command::new("chmod")
        .args(["0777", dir.path().to_str().unwrap_or("/")])
        .status();
    dir
}

fn send(addr: SocketAddr, body: &str) -> Vec<String> {
    let mut c = Client::connect(addr);
    let mut r = vec![c.reply()];
    for cmd in [
        "EHLO client.example.org",
        "MAIL FROM:<alice@example.org>",
        "RCPT TO:<root@localhost>",
        "DATA",
    ] {
        r.push(c.cmd(cmd));
    }
    c.send(
        format!(
            "From: Alice <alice@example.org>\r\nTo: root@localhost\r\nSubject: signed\r\n\
             Date: Wed, 02 Dec 2026 05:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\r\n{body}\r\n.\r\n"
        )
        .as_bytes(),
    );
    r.push(c.reply());
    r.push(c.cmd("QUIT"));
    r
}

fn stored(md: &Path, n: usize) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v: Vec<PathBuf> = std::fs::read_dir(md.join("new"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        if v.len() >= n || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const VERIFY: &str = r#"
import sys, dkim
msg = open(sys.argv[1], "rb").read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
txt = b"v=DKIM1; k=rsa; p=" + open(sys.argv[2], "rb").read().strip()
def dns(name, timeout=5):
    return txt if name == b"sel._domainkey.example.org." else None
sys.exit(0 if dkim.verify(msg, dnsfunc=dns) else 1)
"#;

fn dkim_verifies(dir: &Path, msg: &Path) -> bool {
    Command::new(PY)
        .arg(dir.join("verify.py"))
        .arg(msg)
        .arg(dir.join("pub.b64"))
        .status()
        .is_ok_and(|s| s.success())
}

fn has_dkimpy() -> bool {
    Command::new(PY)
        .args(["-c", "import dkim"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Signs through `bin`; returns the client's replies and whether each stored copy verifies.
fn dkim_run(bin: &str, canon: &str) -> (Vec<String>, Vec<bool>, String) {
    let dir = workdir();
    let d = dir.path();
    let key = d.join("key.pem");
    let ok = Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("2048")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "openssl genrsa");
    let _ = Command::new("chmod").arg("0644").arg(&key).status();
    let der = Command::new("openssl")
        .args(["rsa", "-pubout", "-outform", "DER", "-in"])
        .arg(&key)
        .stderr(Stdio::null())
        .output()
        .expect("openssl rsa");
    let b64 = Command::new("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            if let Some(mut i) = c.stdin.take() {
                i.write_all(&der.stdout)?;
            }
            c.wait_with_output()
        })
        .expect("base64");
    std::fs::write(d.join("pub.b64"), &b64.stdout).expect("pub");
    std::fs::write(d.join("verify.py"), VERIFY).expect("verify.py");
    let conf = format!(
        "filter dkim proc-exec \"filter-dkimsign -c {canon} -d example.org -s sel -k {}\"\n\
         listen on 127.0.0.1 port @PORT@ hostname mx.example.org filter dkim\n\
         action \"l\" maildir \"{}/md\" user nobody\n\
         match from any for any action \"l\"\n",
        key.display(),
        d.display()
    );
    let daemon = Daemon::start_with(bin, &conf, &[]);
    let replies = send(
        daemon.addr(),
        "Hello Bob,\r\n\r\n..a line the client dot-stuffed\r\nbye",
    );
    let files = stored(&d.join("md"), 1);
    let text = files
        .first()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .unwrap_or_default();
    let mut verdicts: Vec<bool> = files.iter().map(|f| dkim_verifies(d, f)).collect();
    // The verifier is not a yes-machine: the same message with its body altered fails.
    if !files.is_empty() {
        let altered = d.join("altered");
        std::fs::write(&altered, text.replace("Hello Bob", "Hello Eve")).expect("write");
        verdicts.push(!dkim_verifies(d, &altered));
    }
    (common::normalized_replies(&replies), verdicts, text)
}

#[test]
fn debian_dkimsign_signs_and_dkimpy_verifies() {
    if !common::root_recipient_ok() {
        return;
    }
    if !common::require(
        Path::new(DKIMSIGN).exists(),
        "opensmtpd-filter-dkimsign not installed",
    ) || !common::require(has_dkimpy(), "python3-dkim not installed")
    {
        return;
    }
    for canon in ["simple/simple", "relaxed/relaxed"] {
        let (replies, verdicts, text) = dkim_run(env!("CARGO_BIN_EXE_smtpd"), canon);
        assert!(
            text.contains(&format!(
                "DKIM-Signature: v=1; a=rsa-sha256; c={canon}; s=sel;"
            )),
            "{text}"
        );
        assert!(
            text.contains("\n.a line the client dot-stuffed\n"),
            "{text}"
        );
        assert_eq!(
            verdicts,
            vec![true, true],
            "{canon}: signature verifies, altered fails\n{text}"
        );
        if common::real_available() && std::env::var_os("RSMTPD_NO_REAL").is_none() {
            let _lock = common::real_lock();
            let (theirs, their_verdicts, their_text) = dkim_run(REAL_SMTPD, canon);
            assert_eq!(replies, theirs, "client-visible replies");
            assert_eq!(their_verdicts, vec![true, true], "{their_text}");
        } else {
            common::skip("the same through the real OpenSMTPD (not root or not installed)");
        }
    }
}

/// A real rspamd on two free ports, its files in `dir`; stopped when dropped.
struct Rspamd {
    child: std::process::Child,
    port: u16,
}

impl Rspamd {
    fn start(dir: &Path) -> Option<Rspamd> {
        let (port, ctl) = (common::free_port(), common::free_port());
        let local = dir.join("local");
        for sub in ["override.d", "local.d"] {
            std::fs::create_dir_all(local.join(sub)).ok()?;
        }
        let files = [
            (
                "override.d/worker-normal.inc",
                format!("bind_socket = \"127.0.0.1:{port}\";\n"),
            ),
            (
                "override.d/worker-controller.inc",
                format!("bind_socket = \"127.0.0.1:{ctl}\";\n"),
            ),
            ("override.d/worker-proxy.inc", "enabled = false;\n".into()),
            ("override.d/worker-fuzzy.inc", "enabled = false;\n".into()),
            (
                "override.d/logging.inc",
                format!(
                    "type = \"file\";\nfilename = \"{}/rspamd.log\";\n",
                    dir.display()
                ),
            ),
            // No network here: DNS fails at once instead of timing out per message.
            (
                "local.d/options.inc",
                "dns { nameserver = [\"127.0.0.1:1\"]; timeout = 0.2s; retransmits = 1; }\n".into(),
            ),
            // Headers for clean mail, local clients included (skipped by default).
            (
                "local.d/milter_headers.conf",
                "use = [\"authentication-results\", \"x-spamd-result\"];\n\
                 skip_local = false;\nskip_authenticated = false;\n"
                    .into(),
            ),
        ];
        for (f, text) in files {
            std::fs::write(local.join(f), text).ok()?;
        }
        let _ = Command::new("chown")
            .args(["-R", "_rspamd:_rspamd"])
            .arg(dir)
            .status();
        let v = |k: &str, p: &Path| format!("--var={k}={}", p.display());
        let child = Command::new(RSPAMD)
            .args([
                "-f",
                "-u",
                "_rspamd",
                "-g",
                "_rspamd",
                "-c",
                "/etc/rspamd/rspamd.conf",
            ])
            .arg(v("LOCAL_CONFDIR", &local))
            .arg(v("DBDIR", dir))
            .arg(v("RUNDIR", dir))
            .arg(v("LOGDIR", dir))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let r = Rspamd { child, port };
        // It compiles its rules at start: tens of seconds on a busy machine.
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.write_all(b"GET /ping HTTP/1.0\r\n\r\n");
                let mut b = String::new();
                let _ = std::io::Read::read_to_string(&mut s, &mut b);
                if b.contains("pong") {
                    return Some(r);
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        None
    }
}

impl Drop for Rspamd {
    fn drop(&mut self) {
        // Its main process stops its workers on SIGTERM.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

fn rspamd_run(bin: &str, port: u16) -> (Vec<String>, Vec<String>, Vec<String>) {
    let dir = workdir();
    let conf = format!(
        "filter rspamd proc-exec \"filter-rspamd -url http://127.0.0.1:{port}\"\n\
         listen on 127.0.0.1 port @PORT@ hostname mx.example.org filter rspamd\n\
         action \"l\" maildir \"{}/md\" user nobody\n\
         match from any for any action \"l\"\n",
        dir.path().display()
    );
    let d = Daemon::start_with(bin, &conf, &[]);
    // Not as the body's last line: filter-rspamd hands rspamd the message without its last
    // line end, and rspamd's GTUBE check wants the pattern's length plus one.
    let spam = send(
        d.addr(),
        &format!("{GTUBE}\r\n\r\nThe standard test message."),
    );
    let clean = send(d.addr(), "Hello Bob, lunch at noon?");
    let texts: Vec<String> = stored(&dir.path().join("md"), 1)
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .collect();
    (
        common::normalized_replies(&spam),
        common::normalized_replies(&clean),
        texts,
    )
}

#[test]
fn debian_rspamd_filter_with_a_real_rspamd() {
    if !common::require(
        Path::new(RSPAMD_FILTER).exists() && Path::new(RSPAMD).exists(),
        "opensmtpd-filter-rspamd or rspamd not installed",
    ) || !common::require_root()
    {
        return;
    }
    let rdir = tempfile::tempdir().expect("tempdir");
    let Some(rspamd) = Rspamd::start(rdir.path()) else {
        common::skip("rspamd did not answer /ping within 120 s");
        return;
    };
    let (spam, clean, texts) = rspamd_run(env!("CARGO_BIN_EXE_smtpd"), rspamd.port);
    let rlog = || std::fs::read_to_string(rdir.path().join("rspamd.log")).unwrap_or_default();
    assert_eq!(spam[5], "550 Gtube pattern\r\n", "{spam:?}\n{}", rlog());
    assert!(clean[5].starts_with("250 2.0.0 "), "{clean:?}");
    assert_eq!(texts.len(), 1, "only the clean message is stored");
    let text = texts.first().cloned().unwrap_or_default();
    assert!(text.contains("Hello Bob, lunch at noon?"), "{text}");
    // rspamd's milter headers, added by the filter through data-line, before our Received.
    let auth = text.find("Authentication-Results: ").unwrap_or(usize::MAX);
    let received = text.find("Received: ").unwrap_or(0);
    assert!(auth < received, "rspamd's header added\n{text}");
    if common::real_available() && std::env::var_os("RSMTPD_NO_REAL").is_none() {
        let _lock = common::real_lock();
        let (their_spam, their_clean, their_texts) = rspamd_run(REAL_SMTPD, rspamd.port);
        assert_eq!(spam, their_spam, "GTUBE replies");
        assert_eq!(clean, their_clean, "clean replies");
        let their = their_texts.first().cloned().unwrap_or_default();
        assert!(their.contains("Authentication-Results: "), "{their}");
    } else {
        common::skip("the same through the real OpenSMTPD (not root or not installed)");
    }
}
