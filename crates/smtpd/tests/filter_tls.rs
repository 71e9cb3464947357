//! The report events of TLS and AUTH through a proc-exec filter: `link-tls` after a STARTTLS
//! handshake (`link-tls|PROTOCOL:CIPHER:BITS`, ssl_to_text) and `link-auth` for each AUTH
//! (`link-auth|USER|pass`, `|fail`), with lka_filter.c's fields, to the recorder filter of
//! tests/filter-proc (it registers every report). Ours only so far: the packaged OpenSMTPD
//! cannot do a server-side handshake (upstream issues #1171, #1239); a live comparison would
//! run the wrapper of tests/tools/opensmtpd-tls.sh.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::certs::{unavailable, Certs};
use common::Daemon;

/// `smtpctl encrypt alicepass`, printed by OpenSMTPD's smtpctl.
const ALICE_HASH: &str = "$6$cLAl6luxSVvmFNeQ$NknhQoE/jiQv9dL9c3k0p3caN3VZlWvnVUHbpbNoPVVLnmcaGU5EZfSF6YNv1bT0llGBDGKJNPPAbtFwHouyp0";

#[test]
fn link_tls_and_link_auth_reach_the_filter() {
    if let Some(why) = unavailable() {
        common::skip(why);
        return;
    }
    let c = Certs::new();
    c.ca("ca", "Test CA").leaf(
        "mx",
        Some("ca"),
        "mx.example.org",
        &["mx.example.org"],
        "serverAuth",
        true,
    );
    std::fs::write(c.path("creds"), format!("alice {ALICE_HASH}\n")).expect("creds");
    let dir = tempfile::tempdir().expect("tempdir");
    let _ = Command::new("chmod")
        .args(["0777", dir.path().to_str().unwrap_or("/")])
        .status();
    let rec = dir.path().join("rec.py");
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/filter-proc/recorder.py"),
        &rec,
    )
    .expect("copy recorder");
    let log = dir.path().join("rec.log");
    let conf = format!(
        "pki mx.example.org cert \"{mx}.crt\"\n\
         pki mx.example.org key \"{mx}.key\"\n\
         table creds file:{creds}\n\
         filter rec proc-exec \"/usr/bin/python3 {rec} {log}\"\n\
         listen on 127.0.0.1 port @PORT@ tls pki mx.example.org auth <creds> filter rec\n\
         action \"l\" maildir \"@DIR@/md\" user nobody\n\
         match from any for any action \"l\"\n",
        mx = c.p("mx"),
        creds = c.p("creds"),
        rec = rec.display(),
        log = log.display(),
    );
    let d = Daemon::start(&conf, &[]);
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
ctx.check_hostname = False
s = smtplib.SMTP('127.0.0.1', int(sys.argv[2]), local_hostname='client.example')
s.starttls(context=ctx)
try:
    s.login('alice', 'wrong')
except smtplib.SMTPAuthenticationError:
    pass
s.login('alice', 'alicepass')
s.quit()
print('ok')
"#;
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(c.p("ca.crt"))
        .arg(d.port.to_string())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.log().join("\n")
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    while Instant::now() < deadline {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("link-disconnect") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The events in order, without times and session ids.
    let events: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("report|"))
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            let mut e = vec![f.get(4).copied().unwrap_or("")];
            e.extend(f.iter().skip(6));
            e.join("|")
        })
        .filter(|e| e.starts_with("link-"))
        .collect();
    let tls = events
        .iter()
        .position(|e| e == "link-tls|TLSv1.3:TLS_AES_256_GCM_SHA384:256");
    let fail = events.iter().position(|e| e == "link-auth|alice|fail");
    let pass = events.iter().position(|e| e == "link-auth|alice|pass");
    assert!(
        tls.is_some() && fail.is_some() && pass.is_some() && tls < fail && fail < pass,
        "{events:?}\n{text}"
    );
    // After the handshake the client says EHLO again: link-identify comes after link-tls.
    let identify = events.iter().rposition(|e| e.starts_with("link-identify|"));
    assert!(identify > tls, "{events:?}");
}
