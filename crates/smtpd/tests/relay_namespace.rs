//! The seed's step 5 for real: in a network namespace of the test's own, three rsmtpd
//! instances on loopback addresses and Debian's unbound serving their names and MX records.
//! Two "machines" relay their local mail (`echo hi | sendmail root`, cron's way) to the
//! central server with `relay host smtp://central.test`; the central one runs the seed's
//! step-7 configuration and puts it in its Maildir. The second machine also routes by MX:
//! preferences with the best host down and the next one not resolving, a domain with only an
//! AAAA record (implicit MX), a null MX (bounced at once, on purpose: 6.8 retries it), and a
//! recipient the central server refuses (550, bounced with its reply).
//!
//! Needs root (CI runs as root) and unbound (scripts/test-deps.sh).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Netns {
    name: String,
    children: Vec<Child>,
    dir: tempfile::TempDir,
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("ip");
    assert!(st.success(), "ip {}", args.join(" "));
}

const RECORDS: &str = "
    local-zone: \"test.\" static
    local-data: \"central.test. A 127.0.0.10\"
    local-data: \"machine1.test. A 127.0.0.11\"
    local-data: \"machine2.test. A 127.0.0.12\"
    local-data-ptr: \"127.0.0.10 central.test\"
    local-data-ptr: \"127.0.0.11 machine1.test\"
    local-data-ptr: \"127.0.0.12 machine2.test\"
    local-data: \"down.test. A 127.0.0.20\"
    local-data: \"multi.test. MX 10 down.test.\"
    local-data: \"multi.test. MX 20 nowhere.test.\"
    local-data: \"multi.test. MX 30 central.test.\"
    local-data: \"v6only.test. AAAA ::1\"
    local-data: \"null.test. MX 0 .\"
";

impl Netns {
    fn new() -> Netns {
        let name = format!("rsmtpd-relay-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        let etc = format!("/etc/netns/{}", name);
        std::fs::create_dir_all(&etc).expect("/etc/netns");
        std::fs::write(format!("{}/resolv.conf", etc), "nameserver 127.0.0.1\n").expect("resolv");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        let conf = format!(
            "server:\n    interface: 127.0.0.1\n    port: 53\n    username: \"\"\n    chroot: \"\"\n    \
             directory: \"{d}\"\n    pidfile: \"{d}/unbound.pid\"\n    use-syslog: no\n    \
             access-control: 127.0.0.0/8 allow\n    do-not-query-localhost: no\n    \
             module-config: \"iterator\"\n{RECORDS}"
        );
        let path = dir.path().join("unbound.conf");
        std::fs::write(&path, conf).expect("unbound.conf");
        let child = Command::new("ip")
            .args(["netns", "exec", &name, "unbound", "-d", "-c"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unbound (scripts/test-deps.sh installs it)");
        let ns = Netns {
            name,
            children: vec![child],
            dir,
        };
        for _ in 0..100 {
            let out = Command::new("ip")
                .args(["netns", "exec", &ns.name, "getent", "hosts", "central.test"])
                .output();
            if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("127.0.0.10")) {
                return ns;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("unbound did not start in {}", ns.name);
    }

    fn daemon(&self, config: &str) -> Daemon {
        let _ = &self.dir;
        Daemon::launch(
            &["ip", "netns", "exec", &self.name],
            env!("CARGO_BIN_EXE_smtpd"),
            config,
            &[],
            Some("127.0.0.1:53"),
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.name));
    }
}

/// The seed's step 7 (configs/7-deliver.conf), listening on the central address (and ::1 for
/// the AAAA-only domain), with the machines' host name and the test domains among its domains.
fn central_config(host: &str) -> String {
    format!(
        "filter check_rdns phase connect match !rdns junk\n\
         filter check_fcrdns phase connect match !fcrdns junk\n\
         table trusted {{ 2001:DB8:666::/64 }}\n\
         table myfroms {{ \"@bsdsx\\.fr$\", \"@.*\\.bsdsx\\.fr$\" }}\n\
         filter check_trusted phase mail-from match src <trusted> bypass\n\
         filter check_myfroms phase mail-from match mail-from regex <myfroms> disconnect \"550 invalid mail from\"\n\
         filter filters chain {{ check_rdns, check_fcrdns, check_trusted, check_myfroms }}\n\
         listen on 127.0.0.10 port 25 filter filters\n\
         listen on ::1 port 25 filter filters\n\
         table domains {{ \"bsdsx.fr\", \"*.bsdsx.fr\", \"{host}\", \"multi.test\", \"v6only.test\" }}\n\
         table aliases {{ abuse = postmaster, postmaster = root, root = foo }}\n\
         table users {{ foo = \"2000:2000:/var/empty\", bar = \"2000:2000:/var/empty\" }}\n\
         action \"local_mail\" maildir \"@DIR@/vmail/%{{user.username}}\" junk userbase <users> alias <aliases>\n\
         match from any for domain <domains> action \"local_mail\"\n"
    )
}

fn machine_config(addr: &str, mx: bool) -> String {
    let mut c = format!(
        "listen on {addr} port @PORT@\n\
         action \"central\" relay host smtp://central.test\n\
         action \"mx\" relay\n"
    );
    if mx {
        c.push_str(
            "match from local for domain { multi.test, v6only.test, null.test } action \"mx\"\n",
        );
    }
    c.push_str("match from local for any action \"central\"\n");
    c
}

/// The messages of foo's Maildir, its `.Junk` folder included (the central server marks mail
/// from clients without a reverse name as junk, as the seed's step 7 does).
fn wait_mail(dir: &std::path::Path, n: usize, d: &[&Daemon]) -> Vec<String> {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let mut m = mail_texts(&dir.join("new"));
        m.extend(mail_texts(&dir.join(".Junk/new")));
        if m.len() >= n {
            return m;
        }
        if Instant::now() > end {
            for x in d {
                eprintln!("{}", x.log().join("\n"));
            }
            panic!("{} messages in {}, wanted {n}", m.len(), dir.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_machine_relays_its_cron_mail_to_the_central_server_and_mx_routing_works() {
    if !require_root() {
        return;
    }
    if !require(
        Command::new("unbound").arg("-h").output().is_ok(),
        "unbound is not installed (scripts/test-deps.sh)",
    ) {
        return;
    }
    let host = hostname();
    let ns = Netns::new();
    let central = ns.daemon(&central_config(&host));
    let maildir = user_dir(&central, "vmail", 2000);
    let m1 = ns.daemon(&machine_config("127.0.0.11", false));
    let m2 = ns.daemon(&machine_config("127.0.0.12", true));

    // Cron's way: `echo hi | sendmail root` on each machine.
    for m in [&m1, &m2] {
        let out = ctl(m, "sendmail", &["root"], "Subject: cron\n\nhi\n", None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mails = wait_mail(&maildir.join("foo"), 2, &[&central, &m1, &m2]);
    for m in &mails {
        assert!(m.contains("Subject: cron\n"), "{m}");
        assert!(m.ends_with("\nhi\n"), "{m}");
    }
    for m in [&m1, &m2] {
        let l = m.wait_log(|l| l.contains("mta delivery"));
        assert!(l.contains(&format!("to=<root@{host}>")), "{l}");
        // Loopback addresses get no reverse name from the test's DNS server (hickory answers
        // loopback PTR queries itself), so relay= is the bare address here.
        assert!(l.contains("relay=\"127.0.0.10"), "{l}");
        assert!(l.contains("result=\"Ok\""), "{l}");
        m.wait_log(|l| l.contains("mta connecting address=smtp://127.0.0.10:25 host="));
    }

    // MX routing from machine 2: the best MX is down, the next does not resolve, the third
    // is the central server.
    let send = |to: &str| {
        let out = ctl(&m2, "sendmail", &[to], "Subject: mx\n\nhi\n", None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    send("root@multi.test");
    wait_mail(&maildir.join("foo"), 3, &[&central, &m2]);
    m2.wait_log(|l| l.contains("mta connecting address=smtp://127.0.0.20:25 host="));
    m2.wait_log(|l| {
        l.starts_with("smtp-out: Disabling route [] <-> 127.0.0.20") && l.ends_with(" for 15s")
    });
    let l = m2.wait_log(|l| l.contains("mta delivery") && l.contains("to=<root@multi.test>"));
    assert!(
        l.contains("relay=\"127.0.0.10") && l.contains("result=\"Ok\""),
        "{l}"
    );

    // Only an AAAA record: the domain is its own MX.
    send("root@v6only.test");
    wait_mail(&maildir.join("foo"), 4, &[&central, &m2]);
    let l = m2.wait_log(|l| l.contains("mta delivery") && l.contains("to=<root@v6only.test>"));
    assert!(
        l.contains("relay=\"[::1]") && l.contains("result=\"Ok\""),
        "{l}"
    );

    // A null MX: bounced at once.
    send("root@null.test");
    let l = m2.wait_log(|l| l.contains("mta delivery") && l.contains("to=<root@null.test>"));
    assert!(
        l.contains("result=\"PermFail\" stat=\"Domain does not accept mail (null MX)\""),
        "{l}"
    );

    // The central server refuses an unknown user: 550, bounced with its reply and code.
    send("nobody@multi.test");
    let l = m2.wait_log(|l| l.contains("mta delivery") && l.contains("to=<nobody@multi.test>"));
    assert!(
        l.contains("result=\"PermFail\" stat=\"550 Invalid recipient: <nobody@multi.test>\""),
        "{l}"
    );
}
