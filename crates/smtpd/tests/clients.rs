//! Real SMTP clients, as users run them, each get a message accepted and queued: swaks, Python's
//! smtplib and curl.

mod common;

use std::process::Command;

use common::*;

const CONFIG: &str = "listen on 127.0.0.1 port @PORT@
table users { alice = \"1000:1000:@DIR@/home/alice\" }
action \"local\" maildir \"@DIR@/mail/%{user.username}\" userbase <users>
match from any for domain \"example.org\" action \"local\"
";

/// Messages committed to the queue so far.
fn queued(d: &Daemon) -> Vec<String> {
    let mut out = Vec::new();
    let q = d.spool().join("queue");
    for bucket in std::fs::read_dir(&q).into_iter().flatten().flatten() {
        for msg in std::fs::read_dir(bucket.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(t) = std::fs::read_to_string(msg.path().join("message")) {
                out.push(t);
            }
        }
    }
    out
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn swaks_smtplib_and_curl_deliver_into_the_queue() {
    // Deliveries paused: the messages are read from the queue. Without -P mda a daemon run
    // unprivileged delivered the first ones (as its own user) before they were counted.
    let d = Daemon::start(CONFIG, &["-P", "mda"]);
    let server = format!("127.0.0.1:{}", d.port);
    let mut sent = 0;

    assert!(
        have("swaks"),
        "swaks is needed (scripts/test-deps.sh installs it)"
    );
    let out = Command::new("swaks")
        .args([
            "--server",
            &server,
            "--from",
            "bob@example.net",
            "--to",
            "alice@example.org",
        ])
        .args(["--h-Subject", "from swaks", "--body", "swaks body"])
        .output()
        .expect("swaks");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("<-  250 2.0.0 "), "{text}");
    sent += 1;

    let py = format!(
        "import smtplib\n\
         s = smtplib.SMTP('127.0.0.1', {port})\n\
         s.ehlo('client.example.net')\n\
         r = s.sendmail('bob@example.net', ['alice@example.org'], \
         'Subject: from smtplib\\r\\n\\r\\nsmtplib body\\r\\n.leading dot\\r\\n')\n\
         assert r == {{}}, r\n\
         s.quit()\n",
        port = d.port
    );
    let out = Command::new("python3")
        .args(["-c", &py])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sent += 1;

    assert!(
        have("curl"),
        "curl is needed (scripts/test-deps.sh installs it)"
    );
    let mail = d.dir.path().join("curl.eml");
    std::fs::write(&mail, "Subject: from curl\r\n\r\ncurl body\r\n").expect("write");
    let out = Command::new("curl")
        .args(["-sS", "--url", &format!("smtp://{}", server)])
        .args([
            "--mail-from",
            "bob@example.net",
            "--mail-rcpt",
            "alice@example.org",
        ])
        .arg("--upload-file")
        .arg(&mail)
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sent += 1;

    let msgs = queued(&d);
    assert_eq!(msgs.len(), sent, "{msgs:?}");
    for (subject, body) in [
        ("from swaks", "swaks body"),
        ("from smtplib", "smtplib body\n.leading dot\n"),
        ("from curl", "curl body"),
    ] {
        assert!(
            msgs.iter()
                .any(|m| m.contains(&format!("Subject: {subject}\n")) && m.contains(body)),
            "{subject} not queued: {msgs:?}"
        );
    }
    // The daemon logs a message's line as it answers 250: the last one may reach our log
    // reader a moment after curl has returned.
    let logged = || {
        d.log()
            .iter()
            .filter(|l| l.contains(" smtp message msgid="))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while logged() < sent && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(logged(), sent, "{:?}", d.log());
}
