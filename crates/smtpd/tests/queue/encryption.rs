//! `queue encryption` end to end: our daemon keeps no plaintext in its spool and delivers and
//! bounces the original text; the key comes from the config or stdin as OpenSMTPD's; and the
//! spool passes between OpenSMTPD 6.8 and us both ways: we read what the real smtpd wrote, and
//! the real smtpctl and smtpd read what we wrote.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use rsmtpd::queue::{open_message_file, Codec, Envelope, Queue, QueueKey, QueueOptions};

const KEY: &str = "Z8pV3xQ1mK7tR4wY9bN2cF6hJ0sL5dG3";
const UID: u32 = 1000;

fn codec(compression: bool) -> Codec {
    Codec {
        compression,
        key: QueueKey::new(KEY.as_bytes()),
    }
}

/// A command that will have no controlling terminal, so that getpass() reads stdin as glibc's
/// does without one.
fn detached(cmd: &mut Command) -> &mut Command {
    // SAFETY: setsid() is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        })
    }
}

fn run_with_stdin(cmd: &mut Command, input: &str) -> (i32, String, String) {
    let mut child = detached(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn our_smtpctl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_smtpd")).with_file_name("smtpctl")
}

fn smtpctl(d: &Daemon, args: &[&str], stdin: &str) -> (i32, String, String) {
    run_with_stdin(
        Command::new(our_smtpctl())
            .args(args)
            .env("SMTPD_SOCKET", d.dir.path().join("smtpd.sock"))
            .env("SMTPD_SPOOL", d.spool()),
        stdin,
    )
}

fn config(extra: &str) -> String {
    format!(
        "{extra}\
         listen on 127.0.0.1 port @PORT@\n\
         table users {{ frank = \"{UID}:{UID}:@DIR@/frank\", gone = \"{UID}:{UID}:@DIR@/frank\" }}\n\
         action \"broken\" mda \"exit 1\" userbase <users>\n\
         action \"mail\" maildir \"@DIR@/frank/Maildir\" userbase <users>\n\
         match from any for rcpt-to \"gone@example.org\" action \"broken\"\n\
         match from any for domain \"example.org\" action \"mail\"\n"
    )
}

/// The mailbox's folder, writable by its user.
fn mailbox(d: &Daemon) -> PathBuf {
    user_dir(d, "frank", UID).join("Maildir/new")
}

/// Sends one message; its msgid.
fn send(d: &Daemon, rcpts: &[&str], body: &str) -> String {
    let mut cmds = vec![
        "HELO client".to_string(),
        "MAIL FROM:<frank@example.org>".into(),
    ];
    for r in rcpts {
        cmds.push(format!("RCPT TO:<{r}>"));
    }
    cmds.push("DATA".into());
    cmds.push(format!("Subject: sealed\r\n\r\n{body}\r\n."));
    cmds.push("QUIT".into());
    let refs: Vec<&str> = cmds.iter().map(String::as_str).collect();
    let r = converse("127.0.0.1", d.addr(), &refs);
    let reply = &r[r.len() - 2];
    assert!(reply.starts_with("250 2.0.0 "), "{r:?}");
    reply.split_whitespace().nth(2).expect("msgid").to_string()
}

fn wait_files(dir: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = mail_texts(dir);
        if v.len() >= n || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if let Ok(data) = std::fs::read(&p) {
            out.push((p, data));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Through our daemon: the spool holds nothing in clear, `smtpctl show message` asks for the key
/// and shows the text, and the delivery and the bounce carry the original text.
#[test]
fn our_daemon_delivers_and_bounces_from_an_encrypted_queue() {
    let d = Daemon::start(&config(&format!("queue encryption \"{KEY}\"\n")), &[]);
    d.wait_log(|l| l.contains("queue: queue encryption enabled"));
    let new = mailbox(&d);
    let body = "MARKER-sealed-body ".repeat(300);
    assert_eq!(smtpctl(&d, &["pause", "mda"], "").1, "command succeeded\n");
    let msgid = send(&d, &["frank@example.org", "gone@example.org"], &body);

    let files = files_under(&d.spool().join("queue"));
    assert_eq!(files.len(), 3, "message and two envelopes");
    for (p, data) in &files {
        assert_eq!(data[0], 1, "{}", p.display());
        for needle in ["MARKER", "frank", "gone@", "Subject"] {
            assert!(!contains(data, needle), "{} holds {needle}", p.display());
        }
    }

    // smtpctl asks for the key (stdin here: no terminal), as OpenSMTPD's does.
    let (code, shown, err) = smtpctl(&d, &["show", "message", &msgid], &format!("{KEY}\n"));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("key> "), "{err}");
    assert!(
        shown.contains("Subject: sealed") && shown.contains(&body),
        "{shown}"
    );
    let evpid = files
        .iter()
        .filter_map(|(p, _)| p.file_name()?.to_str().map(String::from))
        .find(|n| n != "message")
        .expect("an envelope");
    let (code, shown, _) = smtpctl(&d, &["show", "envelope", &evpid], &format!("{KEY}\n"));
    assert_eq!(code, 0);
    assert!(shown.contains("version: 3\n") && shown.contains("sender: frank@example.org"));
    // A wrong key of the right length: refused, nothing shown; a short one is asked again.
    let wrong = format!("{}x\n", &KEY[..31]);
    let (code, shown, _) = smtpctl(&d, &["show", "message", &msgid], &wrong);
    assert_eq!((code, shown.as_str()), (1, "object is encrypted\n"));
    let (code, _, err) = smtpctl(&d, &["show", "message", &msgid], "short\nshort\nshort\n");
    assert_eq!(code, 1);
    assert!(err.ends_with("crypto-setup: invalid key\n"), "{err}");

    smtpctl(&d, &["resume", "mda"], "");
    d.wait_log_for(Duration::from_secs(20), |l| l.contains("result=PermFail"));
    let got = wait_files(&new, 2);
    assert_eq!(got.len(), 2, "the message and its bounce");
    assert!(got.iter().all(|m| m.contains(&body)), "both carry the text");
    assert!(got
        .iter()
        .any(|m| m.contains("Final-Recipient: rfc822; gone@example.org")));
}

/// `queue encryption stdin`: the key is the first line of stdin, checked then; `-n` refuses the
/// word itself, as OpenSMTPD's does.
#[test]
fn the_key_from_stdin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("smtpd.conf");
    let port = free_port();
    std::fs::write(
        &conf,
        format!(
            "queue encryption stdin\nlisten on 127.0.0.1 port {port}\n\
             action \"a\" maildir \"/nonexistent\"\nmatch from any for any action \"a\"\n"
        ),
    )
    .expect("conf");
    let smtpd = env!("CARGO_BIN_EXE_smtpd");
    let mut cmd = Command::new(smtpd);
    cmd.args(["-n", "-f"]).arg(&conf);
    let (code, _, err) = run_with_stdin(&mut cmd, "");
    assert_eq!(code, 1);
    assert!(
        err.contains("crypto_setup:invalid key for queue encryption"),
        "{err}"
    );
    if require_real("the re-check against OpenSMTPD") {
        let mut cmd = Command::new(REAL_SMTPD);
        cmd.args(["-n", "-f"]).arg(&conf);
        assert_eq!(
            run_with_stdin(&mut cmd, "").0,
            1,
            "OpenSMTPD refuses it too"
        );
    }

    let start = |input: &str| {
        let mut cmd = Command::new(smtpd);
        cmd.args(["-d", "-v", "-f"])
            .arg(&conf)
            .env("SMTPD_SPOOL", dir.path().join("spool"))
            .env("SMTPD_SOCKET", dir.path().join("sock"));
        let mut child = detached(&mut cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("smtpd");
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(input.as_bytes());
        }
        child
    };
    // Too short: refused before anything starts.
    let out = start("tooshort\n").wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid key for queue encryption"), "{err}");
    // The right length: it runs, encrypting.
    let mut child = start(&format!("{KEY}\n"));
    let mut err = child.stderr.take().expect("stderr");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !contains(&seen, "queue: queue encryption enabled") && Instant::now() < deadline {
        match err.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        contains(&seen, "queue: queue encryption enabled"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
}

/// The message and envelope files of a spool, by name.
fn spool_files(queue: &Path) -> (PathBuf, Vec<PathBuf>) {
    let mut message = None;
    let mut envelopes = Vec::new();
    for (p, _) in files_under(queue) {
        if p.file_name().is_some_and(|n| n == "message") {
            message = Some(p);
        } else {
            envelopes.push(p);
        }
    }
    (message.expect("a message file"), envelopes)
}

/// OpenSMTPD 6.8 with `queue encryption KEY` (and with `queue compression` too): its spool
/// files decrypt with our code to what was sent, and our queue loads its spool.
#[test]
fn we_read_the_spool_opensmtpd_encrypted() {
    if !require_real("the comparison with OpenSMTPD") {
        return;
    }
    let _lock = real_lock();
    for compression in [false, true] {
        let extra = format!(
            "queue encryption \"{KEY}\"\n{}",
            if compression {
                "queue compression\n"
            } else {
                ""
            }
        );
        let mut d = Daemon::start_with(REAL_SMTPD, &config(&extra), &["-P", "mda"]);
        d.wait_log(|l| l.contains("queue: queue encryption enabled"));
        let body = "MARKER-opensmtpd-body ".repeat(200);
        let msgid = send(&d, &["frank@example.org"], &body);
        let real_queue = PathBuf::from(format!("/proc/{}/root/var/spool/smtpd/queue", d.pid()));
        let (message, envelopes) = spool_files(&real_queue);
        assert_eq!(envelopes.len(), 1);
        for p in envelopes.iter().chain([&message]) {
            let raw = std::fs::read(p).expect("read");
            assert_eq!(raw[0], 1, "encrypted: {}", p.display());
            assert!(!contains(&raw, "MARKER"));
        }

        let mut text = String::new();
        open_message_file(&message, &codec(compression))
            .expect("decrypts")
            .read_to_string(&mut text)
            .expect("text");
        assert!(text.starts_with("Received: "), "{text}");
        assert!(text.contains(&format!("with SMTP id {msgid}")), "{text}");
        assert!(text.contains("Subject: sealed\n"), "{text}");
        assert!(text.contains(&body));
        let raw = std::fs::read(&envelopes[0]).expect("envelope");
        let env_text = codec(compression)
            .decode_envelope(raw, 1 << 16)
            .expect("decrypts");
        let env = Envelope::parse(&String::from_utf8_lossy(&env_text)).expect("parses");
        assert_eq!(env.rcpt.to_string(), "frank@example.org");
        assert_eq!(env.sender.to_string(), "frank@example.org");

        // Our queue loads a copy of its spool and reads the same text.
        let copy = tempfile::tempdir().expect("tempdir");
        let spool = copy.path().join("spool");
        let st = Command::new("cp")
            .arg("-a")
            .arg(real_queue.parent().expect("spool"))
            .arg(&spool)
            .status()
            .expect("cp");
        assert!(st.success());
        d.stop();
        let q = Queue::open_with(
            &spool,
            QueueOptions {
                compression,
                encryption: QueueKey::new(KEY.as_bytes()),
                ..QueueOptions::default()
            },
        )
        .expect("open");
        let loaded = q.load().expect("load");
        assert_eq!(loaded.envelopes.len(), 1, "{:?}", loaded.invalid);
        let mut ours = String::new();
        q.open_message(loaded.envelopes[0].id.msgid())
            .expect("open")
            .read_to_string(&mut ours)
            .expect("text");
        assert_eq!(ours, text);
    }
}

/// The other way: our daemon's encrypted (and compressed) spool is read by OpenSMTPD 6.8's
/// smtpctl (`show message`, `show envelope` with the key on stdin) and delivered by its smtpd.
#[test]
fn opensmtpd_reads_the_spool_we_encrypted() {
    if !require_real("the comparison with OpenSMTPD") {
        return;
    }
    let conf_text = config(&format!("queue encryption \"{KEY}\"\nqueue compression\n"));
    let mut d = Daemon::start(&conf_text, &[]);
    let new = mailbox(&d);
    assert_eq!(smtpctl(&d, &["pause", "mda"], "").1, "command succeeded\n");
    let body = "MARKER-rsmtpd-body ".repeat(300);
    let msgid = send(&d, &["frank@example.org"], &body);
    let (code, ours_shown, _) = smtpctl(&d, &["show", "message", &msgid], &format!("{KEY}\n"));
    assert_eq!(code, 0);
    d.stop();
    let spool = d.spool();
    let (_, envelopes) = spool_files(&spool.join("queue"));
    let evpid = envelopes[0]
        .file_name()
        .and_then(|n| n.to_str())
        .expect("evpid")
        .to_string();

    // OpenSMTPD's smtpctl, with our spool where it looks for its own (and a /run of its own, so
    // that it never meets the machine's control socket).
    let _lock = real_lock();
    let in_ns = |inner: &str| {
        let mut c = Command::new("unshare");
        c.args(["-m", "sh", "-c"])
            .arg(format!(
                "mount --bind \"$0\" /var/spool/smtpd && \
                 mount -t tmpfs -o mode=0755 tmpfs /run && exec {inner}"
            ))
            .arg(&spool);
        c
    };
    let (code, shown, err) = run_with_stdin(
        &mut in_ns(&format!("/usr/sbin/smtpctl show message {msgid}")),
        &format!("{KEY}\n"),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(shown, ours_shown);
    assert!(shown.contains(&body));
    let (code, shown, err) = run_with_stdin(
        &mut in_ns(&format!("/usr/sbin/smtpctl show envelope {evpid}")),
        &format!("{KEY}\n"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(shown.contains("rcpt: frank@example.org"), "{shown}");

    // OpenSMTPD's smtpd on our spool: it loads the envelope and delivers the original text.
    let conf = d.dir.path().join("smtpd.conf");
    let mut real = in_ns(&format!("{REAL_SMTPD} -d -v -f {}", conf.display()));
    let mut child = real
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("real smtpd");
    // Its log is read as it comes: the message lands in new/ a moment before its mda line is
    // logged, so the daemon is stopped only once that line is there (or after a while).
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = child.stderr.take().map(|e| {
        let log = log.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(e).lines().map_while(Result::ok) {
                let mut l = log.lock().expect("log");
                l.push_str(&line);
                l.push('\n');
            }
        })
    });
    let got = wait_files(&new, 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.lock().expect("log").contains("result=Ok") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    if let Some(r) = reader {
        let _ = r.join();
    }
    let log = log.lock().expect("log").clone();
    assert_eq!(got.len(), 1, "delivered by OpenSMTPD; its log:\n{log}");
    assert!(got[0].contains(&body) && got[0].contains("Subject: sealed"));
    assert!(log.contains("result=Ok"), "{log}");
}
