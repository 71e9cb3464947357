//! Interoperability with Postfix (Debian's, extracted from its .deb by tests/tools/postfix.sh,
//! run as an instance of the test's own by tests/tools/postfix-instance.sh) as a relay peer,
//! both ways, in clear and over STARTTLS with a test CA: we relay into Postfix, which delivers
//! to a Maildir (its virtual(8) agent); Postfix relays into us, and we deliver to a Maildir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::certs::Certs;
use crate::common::*;

const POSTFIX: &str = "/opt/postfix";

fn tools() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/tools")
}

/// Why the Postfix tests cannot run here.
fn unavailable() -> Option<String> {
    if !is_root() {
        return Some("Postfix's master needs root".into());
    }
    if !Path::new(POSTFIX)
        .join("usr/lib/postfix/sbin/master")
        .exists()
    {
        return Some(format!(
            "no Postfix in {POSTFIX} (tests/tools/postfix.sh, run by scripts/test-deps.sh)"
        ));
    }
    if let Some(why) = crate::common::certs::unavailable() {
        return Some(why.into());
    }
    None
}

/// A Postfix instance: its folder (main.cf, queue, maildir, maillog) and its master.
struct Postfix {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl Postfix {
    /// Listening on 127.0.0.1 on a free port, with `main` added to its main.cf.
    fn start(main: &[String]) -> Postfix {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let child = Command::new("bash")
            .arg(tools().join("postfix-instance.sh"))
            .arg(dir.path().join("pf"))
            .arg(format!("127.0.0.1:{port}"))
            .args(main)
            .env("POSTFIX", POSTFIX)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("postfix-instance.sh");
        let p = Postfix { dir, child, port };
        let end = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "Postfix did not start: {}", p.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pf/maillog")).unwrap_or_default()
    }

    fn wait_log(&self, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(l) = self.log().lines().find(|l| pred(l)) {
                return l.to_string();
            }
            assert!(
                Instant::now() < end,
                "not in Postfix's log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        // master's own SIGTERM handling takes its children with it.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test CA, a server certificate for 127.0.0.1 (Postfix's, checked by our relay client)
/// and one for rsmtpd.test (ours, checked by Postfix's), the CA readable by Postfix's user.
fn certs() -> Certs {
    let c = Certs::new();
    c.ca("ca", "Interop Test CA")
        .leaf(
            "postfix",
            Some("ca"),
            "postfix.test",
            &["IP:127.0.0.1"],
            "serverAuth",
            false,
        )
        .leaf(
            "ours",
            Some("ca"),
            "rsmtpd.test",
            &["rsmtpd.test"],
            "serverAuth",
            false,
        );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(c.path("ca.crt"), std::fs::Permissions::from_mode(0o644)).unwrap();
    c
}

fn submit(addr: std::net::SocketAddr, from: &str, to: &str, body: &str) -> String {
    let mut c = Client::connect(addr);
    assert!(c.reply().starts_with("220"));
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert!(c.cmd(&format!("MAIL FROM:<{from}>")).starts_with("250"));
    let r = c.cmd(&format!("RCPT TO:<{to}>"));
    assert!(r.starts_with("250"), "{r}");
    assert!(c.cmd("DATA").starts_with("354"));
    let r = c.cmd(&format!("{body}."));
    assert!(r.starts_with("250"), "{r}");
    c.cmd("QUIT");
    r
}

/// Waits for `n` files in a Maildir's new/ and returns their texts.
fn wait_maildir(new: &Path, n: usize, why: impl Fn() -> String) -> Vec<String> {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let m = mail_texts(new);
        if m.len() >= n {
            return m;
        }
        assert!(
            Instant::now() < end,
            "{} messages in {}, wanted {n}\n{}",
            m.len(),
            new.display(),
            why()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const BODY: &str = "Subject: interop\r\n\r\n..dot line\r\nbody\u{e9}\r\n";

#[test]
fn we_relay_into_postfix_in_clear_and_over_starttls() {
    if let Some(why) = unavailable() {
        skip(&why);
        return;
    }
    let c = certs();
    let vmail = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(vmail.path(), Some(2000), Some(2000)).unwrap();
    let pf = Postfix::start(&[
        "virtual_mailbox_domains = plain.test tls.test".into(),
        format!("virtual_mailbox_base = {}", vmail.path().display()),
        "virtual_mailbox_maps = static:box/".into(),
        "virtual_uid_maps = static:2000".into(),
        "virtual_gid_maps = static:2000".into(),
        format!("smtpd_tls_cert_file = {}.crt", c.p("postfix")),
        format!("smtpd_tls_key_file = {}.key", c.p("postfix")),
        "smtpd_tls_security_level = may".into(),
        "smtpd_tls_received_header = yes".into(),
        "smtpd_tls_loglevel = 1".into(),
    ]);
    let ours = Daemon::start(
        &format!(
            "ca testca cert \"{ca}.crt\"\n\
             listen on 127.0.0.1 port @PORT@\n\
             action \"plain\" relay host smtp+notls://127.0.0.1:{p}\n\
             action \"tls\" relay host smtp+tls://127.0.0.1:{p} ca testca\n\
             match from any for domain plain.test action \"plain\"\n\
             match from any for any action \"tls\"\n",
            ca = c.p("ca"),
            p = pf.port
        ),
        &[],
    );
    submit(ours.addr(), "alice@src.test", "bob@plain.test", BODY);
    submit(ours.addr(), "alice@src.test", "bob@tls.test", BODY);
    let why = || format!("ours:\n{}\nPostfix:\n{}", ours.log().join("\n"), pf.log());
    let mails = wait_maildir(&vmail.path().join("box/new"), 2, why);
    for to in ["bob@plain.test", "bob@tls.test"] {
        let l = ours.wait_log(|l| l.contains("mta delivery") && l.contains(&format!("to=<{to}>")));
        assert!(
            l.contains("result=\"Ok\" stat=\"250 2.0.0 Ok: queued as "),
            "{l}"
        );
        pf.wait_log(|l| {
            l.contains(&format!("to=<{to}>, relay=virtual"))
                && l.contains("status=sent (delivered to maildir)")
        });
    }
    ours.wait_log(|l| l.contains("mta connecting address=smtp+tls://127.0.0.1:"));
    ours.wait_log(|l| l.contains(" mta tls ciphers=TLSv1.3:"));
    ours.wait_log(|l| l.ends_with(" mta server-cert-check result=\"success\""));
    pf.wait_log(|l| l.contains("TLS connection established from localhost[127.0.0.1]"));
    let host = hostname();
    for m in &mails {
        // Postfix's Received line names our EHLO; the bytes are ours (the dot line unstuffed
        // once, the 8-bit byte as sent).
        assert!(
            m.contains(&format!("Received: from {host} (localhost [127.0.0.1])")),
            "{m}"
        );
        assert!(m.contains("Subject: interop\n"), "{m}");
        assert!(m.ends_with("\n.dot line\nbody\u{e9}\n"), "{m}");
    }
    let tls = mails
        .iter()
        .filter(|m| m.contains("(using TLSv1.3 with cipher"))
        .count();
    assert_eq!(tls, 1, "{mails:#?}");
}

#[test]
fn postfix_relays_into_us_in_clear_and_over_starttls() {
    if let Some(why) = unavailable() {
        skip(&why);
        return;
    }
    let c = certs();
    let plain_port = free_port();
    let ours = Daemon::start(
        &format!(
            "pki rsmtpd.test cert \"{k}.crt\"\n\
             pki rsmtpd.test key \"{k}.key\"\n\
             listen on 127.0.0.1 port {plain_port}\n\
             listen on 127.0.0.1 port @PORT@ tls pki rsmtpd.test\n\
             table users {{ foo = \"2000:2000:/var/empty\" }}\n\
             table aliases {{ bob = foo }}\n\
             action \"local\" maildir \"@DIR@/vmail/%{{user.username}}\" userbase <users> alias <aliases>\n\
             match from any for domain {{ plain.test, tls.test }} action \"local\"\n",
            k = c.p("ours")
        ),
        &[],
    );
    let vmail = user_dir(&ours, "vmail", 2000);
    let tls_next = format!("[127.0.0.1]:{}", ours.port);
    let pf = Postfix::start(&[
        format!(
            "transport_maps = inline:{{ plain.test=smtp:[127.0.0.1]:{plain_port}, tls.test=smtp:{tls_next} }}"
        ),
        format!("smtp_tls_CAfile = {}.crt", c.p("ca")),
        format!("smtp_tls_policy_maps = inline:{{ {{ {tls_next} = secure match=rsmtpd.test }} }}"),
        "smtp_tls_loglevel = 1".into(),
    ]);
    let pf_addr: std::net::SocketAddr = ([127, 0, 0, 1], pf.port).into();
    submit(pf_addr, "alice@src.test", "bob@plain.test", BODY);
    submit(pf_addr, "alice@src.test", "bob@tls.test", BODY);
    let why = || format!("ours:\n{}\nPostfix:\n{}", ours.log().join("\n"), pf.log());
    let mails = wait_maildir(&vmail.join("foo/new"), 2, why);
    for to in ["bob@plain.test", "bob@tls.test"] {
        let l = pf.wait_log(|l| l.contains(&format!("to=<{to}>")) && l.contains("status="));
        assert!(
            l.contains("status=sent (250 2.0.0 ") && l.contains(" Message accepted for delivery)"),
            "{l}"
        );
        let l =
            ours.wait_log(|l| l.contains("mda delivery") && l.contains(&format!("rcpt=<{to}>")));
        assert!(l.contains("result=Ok"), "{l}");
    }
    // Postfix checked our certificate against the CA and the name it was told.
    pf.wait_log(|l| {
        l.contains(&format!(
            "Verified TLS connection established to {tls_next}"
        )) || l.contains("Verified TLS connection established to 127.0.0.1[127.0.0.1]")
    });
    ours.wait_log(|l| l.contains("smtp tls ciphers=TLSv1.3:"));
    for m in &mails {
        assert!(
            m.contains("Received: from postfix.test (localhost [127.0.0.1])"),
            "{m}"
        );
        assert!(m.ends_with("\n.dot line\nbody\u{e9}\n"), "{m}");
    }
}
