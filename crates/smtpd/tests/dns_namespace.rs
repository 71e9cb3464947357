//! The seed's DNS steps as the author ran them: the server on ::1, clients coming from
//! 2001:db8:666::1 (PTR `un.ipv6.doc`, which points at ::2: no FCrDNS), 2001:db8:666::3 (in a
//! zone the DNS server refuses: no reverse name), and ::1 itself, with Debian's unbound serving
//! the seed's records (tests/fixtures/seed/configs/unbound-ipv6doc.conf).
//!
//! Everything happens in a network namespace of the test's own, with its own resolv.conf in
//! /etc/netns/NAME/; nothing of the machine's network or resolver is touched. Needs root (CI
//! runs as root); without root the test says so and checks nothing.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

impl Netns {
    fn new(tag: &str) -> Netns {
        let mut ns = Self::bare(tag);
        ns.start_unbound();
        ns
    }

    /// A namespace whose DNS server (on ::1 port 53) reads queries and never answers.
    fn with_silent_dns(tag: &str) -> Netns {
        Self::with_python_dns(
            tag,
            "import socket,threading\n\
            u=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM); u.bind(('::1',53))\n\
            t=socket.socket(socket.AF_INET6); t.bind(('::1',53)); t.listen(50)\n\
            held=[]\n\
            threading.Thread(target=lambda: [held.append(t.accept()) for _ in iter(int,1)], daemon=True).start()\n\
            while True: u.recvfrom(4096)\n",
        )
    }

    /// A namespace whose DNS server (on ::1 port 53, UDP) answers every query SERVFAIL at once:
    /// the question echoed, no records, QR+RA and rcode 2.
    fn with_servfail_dns(tag: &str) -> Netns {
        Self::with_python_dns(
            tag,
            "import socket\n\
            u=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM); u.bind(('::1',53))\n\
            while True:\n\
            \x20   d,a=u.recvfrom(4096)\n\
            \x20   i=12\n\
            \x20   while i<len(d) and d[i]: i+=d[i]+1\n\
            \x20   u.sendto(d[:2]+bytes([0x80|(d[2]&0x79),0x82])+b'\\0\\1'+bytes(6)+d[12:i+5],a)\n",
        )
    }

    fn with_python_dns(tag: &str, script: &str) -> Netns {
        let mut ns = Self::bare(tag);
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "python3", "-c", script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        ns.children.push(child);
        std::thread::sleep(Duration::from_millis(300));
        ns
    }

    fn bare(tag: &str) -> Netns {
        let name = format!("rsmtpd-{}-{}", tag, std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        for a in [
            "2001:db8:666::1/128",
            "2001:db8:666::2/128",
            "2001:db8:666::3/128",
        ] {
            ip(&["-n", &name, "addr", "add", a, "dev", "lo"]);
        }
        let etc = format!("/etc/netns/{}", name);
        std::fs::create_dir_all(&etc).expect("/etc/netns");
        std::fs::write(format!("{}/resolv.conf", etc), "nameserver ::1\n").expect("resolv.conf");
        let dir = tempfile::tempdir().expect("tempdir");
        Netns {
            name,
            children: Vec::new(),
            dir,
        }
    }

    fn exec(&self) -> Vec<&str> {
        vec!["ip", "netns", "exec", &self.name]
    }

    /// Debian's unbound with the seed's data, answering on ::1 port 53 in the namespace.
    fn start_unbound(&mut self) {
        let seed = seed_config("unbound-ipv6doc.conf");
        let records: String = seed
            .lines()
            .filter(|l| l.trim_start().starts_with("local-"))
            .map(|l| format!("{}\n", l))
            .collect();
        let d = self.dir.path().display();
        let conf = format!(
            "server:\n    interface: ::1\n    port: 53\n    username: \"\"\n    chroot: \"\"\n    \
             directory: \"{d}\"\n    pidfile: \"{d}/unbound.pid\"\n    use-syslog: no\n    \
             access-control: ::1/128 allow\n    do-not-query-localhost: no\n    \
             module-config: \"iterator\"\n{records}"
        );
        let path = self.dir.path().join("unbound.conf");
        std::fs::write(&path, conf).expect("unbound.conf");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name, "unbound", "-d", "-c"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unbound (scripts/test-deps.sh installs it)");
        self.children.push(child);
        // Ready when it answers.
        for _ in 0..100 {
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.name,
                    "getent",
                    "hosts",
                    "un.ipv6.doc",
                ])
                .output();
            if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("2001:db8:666::2")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("unbound did not start in {}", self.name);
    }

    /// A client session from `src` to [::1]:2525 inside the namespace.
    fn converse(&self, src: &str, cmds: &[&str]) -> Vec<String> {
        // Errors (a reset after the server closed) end the session's list, they do not lose it.
        let script = "import socket,sys,json\n\
            src=sys.argv[1]; cmds=sys.argv[2:]; out=[]\n\
            def reply(f):\n\
            \x20   r=b''\n\
            \x20   while True:\n\
            \x20       l=f.readline(); r+=l\n\
            \x20       if not l or l[3:4]!=b'-': return r.decode('latin-1')\n\
            try:\n\
            \x20   s=socket.socket(socket.AF_INET6); s.bind((src,0)); s.connect(('::1',2525))\n\
            \x20   s.settimeout(60); f=s.makefile('rb')\n\
            \x20   out.append(reply(f))\n\
            \x20   for c in cmds:\n\
            \x20       if out[-1]=='': break\n\
            \x20       s.sendall(c.encode('latin-1')+b'\\r\\n'); out.append(reply(f))\n\
            except OSError:\n\
            \x20   out.append('')\n\
            print(json.dumps(out))\n";
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "python3", "-c", script, src])
            .args(cmds)
            .output()
            .expect("python3");
        let text = String::from_utf8_lossy(&out.stdout);
        parse_json_strings(&text)
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

/// The JSON list of strings the client prints (no dependency for one small parser).
fn parse_json_strings(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.trim().chars().peekable();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => s.push('\n'),
                    Some('r') => s.push('\r'),
                    Some('t') => s.push('\t'),
                    Some('u') => {
                        let hex: String = chars.by_ref().take(4).collect();
                        if let Some(ch) =
                            u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
                        {
                            s.push(ch);
                        }
                    }
                    Some(o) => s.push(o),
                    None => {}
                },
                c => s.push(c),
            }
        }
        out.push(s);
    }
    out
}

fn seed(name: &str) -> String {
    seed_config(name)
}

/// Runs the same sessions against ours and, when it is installed, the real OpenSMTPD, in the
/// namespace; returns ours (replies per session, log) after checking both agree.
fn both(ns: &Netns, config: &str, sessions: &[(&str, &[&str])]) -> (Vec<Vec<String>>, Vec<String>) {
    let run = |bin: &str| {
        let d = Daemon::launch(&ns.exec(), bin, config, &["-T", "filters"], None);
        let replies: Vec<Vec<String>> = sessions
            .iter()
            .map(|(src, cmds)| normalized_replies(&ns.converse(src, cmds)))
            .collect();
        let n = sessions.len();
        for _ in 0..200 {
            if d.log()
                .iter()
                .filter(|l| l.ends_with("filters session-end") || l.contains("smtp disconnected"))
                .count()
                >= n
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        (replies, comparable(&normalized_session_log(&d.log())))
    };
    let ours = run(env!("CARGO_BIN_EXE_smtpd"));
    if require_real("the re-check against OpenSMTPD") {
        let _one = real_lock();
        let theirs = run(REAL_SMTPD);
        assert_eq!(theirs, ours, "OpenSMTPD and rsmtpd differ");
    }
    ours
}

/// Log lines both programs must agree on. Left out: OpenSMTPD's `filters data-begin/end` lines
/// (it streams DATA through a filter pipe even when only builtin filters exist; we do not),
/// `size=` of a filtered message (6.8 counts the bytes that went through that pipe twice), and
/// deliveries (`mda ...`), which happen after the session.
fn comparable(log: &[String]) -> Vec<String> {
    log.iter()
        .filter(|l| !l.starts_with("filters data-") && !l.starts_with("mda "))
        .map(|l| match l.find(" size=") {
            Some(i) if l.starts_with("smtp message ") => {
                let end = l[i + 1..].find(' ').map_or(l.len(), |j| i + 1 + j);
                format!("{} size=N{}", &l[..i], &l[end..])
            }
            _ => l.clone(),
        })
        .collect()
}

fn root() -> bool {
    require(
        nix::unistd::geteuid().is_root(),
        "needs root: network namespaces and unbound on ::1 port 53",
    ) && require_tool("unbound")
        && require_tool("ip")
}

#[test]
fn step2_no_rdns_and_no_fcrdns_are_disconnected() {
    if !root() {
        return;
    }
    let ns = Netns::new("s2");
    let h = hostname();
    let (replies, log) = both(
        &ns,
        &seed("2-dns-filters.conf"),
        &[
            ("2001:db8:666::1", &["QUIT"]),
            ("2001:db8:666::3", &["QUIT"]),
            ("::1", &["QUIT"]),
        ],
    );
    assert_eq!(
        replies,
        vec![
            vec!["550 no FCrDNS please fix\r\n".to_string(), String::new()],
            vec!["550 no rDNS please fix\r\n".to_string(), String::new()],
            vec![
                format!("220 {h} ESMTP OpenSMTPD\r\n"),
                "221 2.0.0 Bye\r\n".into()
            ],
        ]
    );
    for line in [
        "smtp connected address=[2001:db8:666::1] host=un.ipv6.doc",
        "filters protocol phase=connect, resume=y, action=disconnect, filter=check_fcrdns, query=[2001:db8:666::1], response=550 no FCrDNS please fix",
        "smtp failed-command command=\"\" result=\"550 no FCrDNS please fix\"",
        "smtp connected address=[2001:db8:666::3] host=<unknown>",
        "filters protocol phase=connect, resume=n, action=disconnect, filter=check_rdns, query=[2001:db8:666::3], response=550 no rDNS please fix",
        "smtp failed-command command=\"\" result=\"550 no rDNS please fix\"",
        "smtp connected address=[::1] host=localhost",
        "smtp disconnected reason=quit",
    ] {
        assert!(log.iter().any(|l| l == line), "missing {line:?} in\n{}", log.join("\n"));
    }
}

#[test]
fn step6_trusted_network_bypasses_the_sender_check() {
    if !root() {
        return;
    }
    let ns = Netns::new("s6");
    let (replies, log) = both(
        &ns,
        &seed("6-mail-from.conf"),
        &[
            (
                "2001:db8:666::1",
                &["EHLO un", "MAIL FROM:<root@bsdsx.fr>", "QUIT"],
            ),
            (
                "::1",
                &[
                    "EHLO localhost",
                    "MAIL FROM:<root@example.com>",
                    "RSET",
                    "MAIL FROM:<root@bsdsx.fr>",
                ],
            ),
        ],
    );
    assert_eq!(
        replies[0][2], "250 2.0.0 Ok\r\n",
        "trusted sender: {:?}",
        replies[0]
    );
    assert_eq!(replies[1][2], "250 2.0.0 Ok\r\n");
    assert_eq!(replies[1][4], "550 invalid mail from\r\n");
    assert_eq!(
        replies[1].len(),
        5,
        "disconnected after the 550: {:?}",
        replies[1]
    );
    assert!(log
        .iter()
        .any(|l| l.contains("action=bypass, filter=check_trusted, query=root@bsdsx.fr")));
}

#[test]
fn step7_no_rdns_is_junk_and_goes_in() {
    if !root() {
        return;
    }
    let ns = Netns::new("s7");
    let config = seed("7-deliver.conf").replace("/opt/vmail", "@DIR@/vmail");
    let (replies, log) = both(
        &ns,
        &config,
        &[(
            "2001:db8:666::3",
            &[
                "HELO cun",
                "MAIL FROM:<>",
                "RCPT TO:<foo@bsdsx.fr>",
                "DATA",
                "Subject: junk\r\n\r\nhello\r\n.",
                "QUIT",
            ],
        )],
    );
    assert_eq!(
        replies[0][4],
        "354 Enter mail, end with \".\" on a line by itself\r\n"
    );
    assert_eq!(
        replies[0][5],
        "250 2.0.0 MSGID Message accepted for delivery\r\n"
    );
    assert!(log
        .iter()
        .any(|l| l.contains("action=junk, filter=check_rdns, query=[2001:db8:666::3]")));
    assert!(log
        .iter()
        .any(|l| l == "smtp envelope evpid=EVPID from=<> to=<foo@bsdsx.fr>"));
}

#[test]
fn a_silent_dns_server_delays_only_the_sessions_waiting_for_it() {
    if !root() {
        return;
    }
    let ns = Netns::with_silent_dns("slow");
    let config = "listen on ::1 port 2525\nmatch from any reject\n";
    let run = |bin: &str| {
        let d = Daemon::launch(&ns.exec(), bin, config, &["-T", "smtp"], None);
        let t0 = std::time::Instant::now();
        let ns = &ns;
        let replies: Vec<Vec<String>> = std::thread::scope(|sc| {
            let a = sc.spawn(|| ns.converse("2001:db8:666::1", &["QUIT"]));
            let b = sc.spawn(|| ns.converse("2001:db8:666::2", &["QUIT"]));
            vec![a.join().unwrap_or_default(), b.join().unwrap_or_default()]
        });
        let took = t0.elapsed();
        eprintln!("{bin}: both sessions took {took:?}");
        d.wait_log(|_| {
            d.log()
                .iter()
                .filter(|x| x.ends_with("reason=quit"))
                .count()
                >= 2
        });
        let warnings: Vec<String> = d
            .log()
            .into_iter()
            .filter(|l| l.starts_with("getnameinfo:") || l.starts_with("getaddrinfo:"))
            .collect();
        // As OpenSMTPD's smtp_session_init(): the session is traced at accept, before the
        // lookup, so both sessions show up at once and long before the first DNS timeout.
        let full = d.log();
        let first_warning = full
            .iter()
            .position(|l| l.starts_with("getnameinfo:"))
            .unwrap_or(full.len());
        let traced_early = full[..first_warning]
            .iter()
            .filter(|l| l.contains(": connected to listener "))
            .count();
        assert_eq!(traced_early, 2, "{full:?}");
        (replies, normalized_session_log(&full), warnings, took)
    };
    let (replies, log, warnings, took) = run(env!("CARGO_BIN_EXE_smtpd"));
    let h = hostname();
    for r in &replies {
        assert_eq!(
            r,
            &vec![
                format!("220 {h} ESMTP OpenSMTPD\r\n"),
                "221 2.0.0 Bye\r\n".into()
            ]
        );
    }
    assert!(
        log.contains(&"smtp connected address=[2001:db8:666::1] host=<unknown>".to_string()),
        "{log:?}"
    );
    assert!(
        log.contains(&"smtp connected address=[2001:db8:666::2] host=<unknown>".to_string()),
        "{log:?}"
    );
    assert_eq!(
        warnings.len(),
        2,
        "one getnameinfo warning per session: {warnings:?}"
    );
    // Both waited for the same silent server at the same time, not one after the other.
    assert!(
        took < Duration::from_secs(19),
        "sessions were serialized: {took:?}"
    );
    // Not compared with OpenSMTPD live: its own resolver asks DNS before /etc/hosts even for its
    // host name at start, so with a silent server it takes minutes to start at all. The
    // warning text is the one its smtp_session.c logs for EAI_AGAIN.
}

#[test]
fn a_servfail_answer_is_no_reverse_name_and_the_rdns_filter_applies() {
    if !root() {
        return;
    }
    let ns = Netns::with_servfail_dns("servfail");
    let config =
        "filter check_rdns phase connect match !rdns disconnect \"550 no rDNS please fix\"\n\
        listen on ::1 port 2525 filter check_rdns\n\
        match from any reject\n";
    // Compared live with OpenSMTPD: replies and session log lines.
    let (replies, log) = both(&ns, config, &[("2001:db8:666::1", &["QUIT"])]);
    assert_eq!(
        replies,
        vec![vec![
            "550 no rDNS please fix\r\n".to_string(),
            String::new()
        ]]
    );
    for line in [
        "smtp connected address=[2001:db8:666::1] host=<unknown>",
        "smtp failed-command command=\"\" result=\"550 no rDNS please fix\"",
    ] {
        assert!(
            log.iter().any(|l| l == line),
            "missing {line:?} in\n{}",
            log.join("\n")
        );
    }
    // The failure is told apart from a missing record: OpenSMTPD's EAI_AGAIN warning.
    let d = Daemon::launch(&ns.exec(), env!("CARGO_BIN_EXE_smtpd"), config, &[], None);
    let r = ns.converse("2001:db8:666::1", &["QUIT"]);
    assert_eq!(
        r.first().map(String::as_str),
        Some("550 no rDNS please fix\r\n")
    );
    d.wait_log(|x| x.starts_with("getnameinfo:"));
    let warnings: Vec<String> = d
        .log()
        .into_iter()
        .filter(|l| l.starts_with("getnameinfo:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("Temporary failure in name resolution"),
        "{warnings:?}"
    );
}
