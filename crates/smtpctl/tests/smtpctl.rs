//! smtpctl's pure parts against outputs recorded from OpenSMTPD 6.8.0p2 (and the spec's
//! examples), and the personalities through the binary where no daemon is needed.

#[path = "../../../tests/support/skip.rs"]
mod skip;

use rsmtpd_control::*;
use rsmtpd_smtpctl::parser::{parse, Param, ParseFailure};
use rsmtpd_smtpctl::sendmail::{self, parse_args, parse_message};
use rsmtpd_smtpctl::{encrypt, format, parse_makemap, personality, Personality};

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

const TOP: &str = "possibilities are:\ndiscover\npause\nresume\nshow\nlog\nmonitor\nprofile\nremove\nschedule\ntrace\nunprofile\nuntrace\nupdate\nencrypt\nspf\n";

#[test]
fn parser_matches_recorded_outputs() {
    // recorded with /usr/sbin/smtpctl (exit 255 each)
    assert_eq!(parse(&[]), Err(ParseFailure(TOP.into())));
    assert_eq!(parse(&s(&["stop"])), Err(ParseFailure(TOP.into())));
    assert_eq!(parse(&s(&["s"])), Err(ParseFailure(TOP.into())));
    assert_eq!(
        parse(&s(&["show", "envelope"])),
        Err(ParseFailure(
            "possibilities are:\nshow envelope <evpid>\n".into()
        ))
    );
    assert_eq!(
        parse(&s(&["show", "envelope", "123"])),
        Err(ParseFailure(
            "possibilities are:\nshow envelope <evpid>\n".into()
        ))
    );
    assert_eq!(
        parse(&s(&["encrypt", "a", "b"])),
        Err(ParseFailure("invalid command\n".into()))
    );
}

#[test]
fn parser_commands() {
    assert_eq!(parse(&s(&["show", "queue"])), Ok(("show queue", vec![])));
    assert_eq!(parse(&s(&["sh", "qu"])), Ok(("show queue", vec![])));
    assert_eq!(
        parse(&s(&["show", "queue", "2dbcfb8a"])),
        Ok(("show queue <msgid>", vec![Param::MsgId(0x2dbcfb8a)]))
    );
    assert_eq!(
        parse(&s(&["schedule", "2dbcfb8a44947163"])),
        Ok(("schedule <evpid>", vec![Param::EvpId(0x2dbcfb8a44947163)]))
    );
    assert_eq!(parse(&s(&["remove", "all"])), Ok(("remove all", vec![])));
    assert_eq!(
        parse(&s(&["pause", "envelope", "all"])),
        Ok(("pause envelope all", vec![]))
    );
    assert_eq!(
        parse(&s(&[
            "pause",
            "mta",
            "from",
            "10.0.0.1",
            "for",
            "example.org"
        ])),
        Ok((
            "pause mta from <addr> for <str>",
            vec![
                Param::Addr("10.0.0.1".into()),
                Param::Str("example.org".into())
            ]
        ))
    );
    assert_eq!(parse(&s(&["pause", "mta"])), Ok(("pause mta", vec![])));
    assert_eq!(
        parse(&s(&["resume", "route", "3"])),
        Ok(("resume route <routeid>", vec![Param::RouteId(3)]))
    );
    assert_eq!(parse(&s(&["log", "v"])), Ok(("log verbose", vec![])));
    assert_eq!(
        parse(&s(&["update", "table", "aliases"])),
        Ok(("update table <str>", vec![Param::Str("aliases".into())]))
    );
    assert_eq!(parse(&s(&["encrypt"])), Ok(("encrypt", vec![])));
    assert_eq!(
        parse(&s(&["trace", "smtp"])),
        Ok(("trace <str>", vec![Param::Str("smtp".into())]))
    );
    // "p" is ambiguous (pause, profile)
    assert!(parse(&s(&["p"])).is_err());
    // a zero id is refused
    assert!(parse(&s(&["schedule", "00000000"])).is_err());
}

#[test]
fn counts_and_plurals() {
    assert_eq!(format::envelopes_done(1, "paused"), "1 envelope paused\n");
    assert_eq!(format::envelopes_done(0, "removed"), "0 envelope removed\n");
    assert_eq!(
        format::envelopes_done(3, "scheduled"),
        "3 envelopes scheduled\n"
    );
    assert_eq!(format::envelopes_discovered(0), "0 envelopes discovered\n");
    assert_eq!(format::envelopes_discovered(1), "1 envelope discovered\n");
}

fn evp() -> EnvelopeInfo {
    EnvelopeInfo {
        id: 0x2dbcfb8a44947163,
        source: Source::Local,
        agent: Agent::Mta,
        flags: flags::AUTH,
        sender: "root@vm".into(),
        rcpt: "carol@example.org".into(),
        dest: "carol@example.org".into(),
        creation: 1795606804,
        ttl: 0,
        lasttry: 1795606804,
        retry: 0,
        state: RunState::Inflight,
        errorline: "".into(),
    }
}

#[test]
fn show_queue_lines_as_the_spec() {
    assert_eq!(
        format::queue_line(&evp(), 1795606806, true),
        "2dbcfb8a44947163|local|mta|auth|root@vm|carol@example.org|carol@example.org|1795606804|1795606804|1795606804|0|inflight|2|\n"
    );
    let e = EnvelopeInfo {
        state: RunState::Pending {
            nexttry: 1795606900,
        },
        flags: flags::BOUNCE | flags::SUSPEND,
        errorline: "421 x\ty".into(),
        ..evp()
    };
    assert_eq!(
        format::queue_line(&e, 1795606800, true),
        "2dbcfb8a44947163|local|mta|bounce,suspend|root@vm|carol@example.org|carol@example.org|1795606804|1795606804|1795606804|0|pending|100|421 x\\ty\n"
    );
    assert!(format::queue_line(&evp(), 0, false)
        .ends_with("|1795606804|1795606804|1795606804|0|offline||\n"));
    let invalid = EnvelopeInfo {
        state: RunState::Invalid,
        ..evp()
    };
    assert!(format::queue_line(&invalid, 0, true).ends_with("|0|invalid||\n"));
}

#[test]
fn offline_envelope_file() {
    let text = "version: 3\ndispatcher: local\ntag: \ntype: mta\nsmtpname: vm\nhelo: localhost\nhostname: localhost\nsockaddr: local\nsender: root@vm\nrcpt: carol@example.org\ndest: carol@example.org\nctime: 1795606804\nlast-try: 0\nlast-bounce: 0\nttl: 0\nretry: 0\nflags: authenticated\ndsn-notify: 0\n";
    let e = format::offline_envelope(0x2dbcfb8a44947163, text).unwrap();
    assert_eq!(
        format::queue_line(&e, 0, false),
        "2dbcfb8a44947163|local|mta|auth|root@vm|carol@example.org|carol@example.org|1795606804|1795606804|0|0|offline||\n"
    );
    assert!(format::offline_envelope(1, "garbage").is_none());
}

#[test]
fn stats_and_status() {
    let out = format::stats(
        100,
        &[
            ("smtp.session.local".into(), StatValue::Counter(7)),
            ("control.session".into(), StatValue::Counter(1)),
            ("queue.bounce".into(), StatValue::Counter(2)),
            ("scheduler.delivery.ok".into(), StatValue::Counter(6)),
        ],
        103,
    );
    assert_eq!(out, "control.session=1\nqueue.bounce=2\nscheduler.delivery.ok=6\nsmtp.session.local=7\nuptime=3\nuptime.human=3s\n");
    assert_eq!(format::duration_to_text(0), "0s");
    assert_eq!(format::duration_to_text(93784), "1d2h3m4s");
    assert_eq!(format::duration_to_text(-60), "-1m");
    assert_eq!(
        format::status(&Status {
            mda_paused: false,
            mta_paused: true,
            smtp_paused: false
        }),
        "MDA running\nMTA paused\nSMTP running\n"
    );
}

#[test]
fn encrypt_matches_the_real_helper() {
    // `smtpctl encrypt hello` and `printf 'a\nb\n' | smtpctl encrypt` on OpenSMTPD 6.8.0p2
    assert_eq!(
        encrypt::sha512_crypt_with_salt(b"hello", "o8RqsIZpNoO2b/rL"),
        "$6$o8RqsIZpNoO2b/rL$Rbkq6.eOksppD1PhBYMRla97cdDc9auNRgKuGo3CegqMDmWATA1s1.5OpkJtgr3p3dZIg/3QZxR8DJuMNnRD81"
    );
    assert_eq!(
        encrypt::sha512_crypt_with_salt(b"a", "bdSebgZB3Kjn.BlZ"),
        "$6$bdSebgZB3Kjn.BlZ$9tCCrnPHlnUzTwX.GFa4sw9a3FeHK5M9lP0SOr0lk4WPFNZm5oeL3w7DjOiWzC26jAonRwBYbjbjNLa2yJifE0"
    );
    // a fresh hash: verified with the sha-crypt crate's own verifier and its shape
    let h = encrypt::encrypt(b"secret").unwrap();
    assert!(h.starts_with("$6$") && h.len() == 3 + 16 + 1 + 86, "{h}");
    let salt = &h[3..19];
    assert_eq!(encrypt::sha512_crypt_with_salt(b"secret", salt), h);
}

#[test]
fn personalities() {
    assert_eq!(personality("/usr/sbin/sendmail"), Personality::Sendmail);
    assert_eq!(personality("send-mail"), Personality::Sendmail);
    assert_eq!(personality("mailq"), Personality::Mailq);
    assert_eq!(personality("newaliases"), Personality::Newaliases);
    assert_eq!(personality("makemap"), Personality::Makemap);
    assert_eq!(personality("/usr/sbin/smtpctl"), Personality::Smtpctl);
    assert_eq!(personality("other"), Personality::Unsupported);
}

#[test]
fn sendmail_arguments() {
    let o = parse_args(&s(&[
        "-t", "-i", "-f", "alice@x", "-F", "Alice A", "-oi", "-v", "bob", "-N", "SUCCESS",
    ]))
    .unwrap();
    assert!(o.tflag && o.verbose);
    assert_eq!(o.from.as_deref(), Some("alice@x"));
    assert_eq!(o.fromname.as_deref(), Some("Alice A"));
    assert_eq!(o.dsn_notify.as_deref(), Some("SUCCESS"));
    assert_eq!(o.recipients, s(&["bob"]));
    let o = parse_args(&s(&[
        "-bs", "-odi", "-oem", "-Ex", "-J", "-L", "tag", "-m", "-x", "-S", "-R", "full", "-V",
        "id", "-r", "<a@b>", "c",
    ]))
    .unwrap();
    assert!(o.no_getlogin);
    assert_eq!(o.from.as_deref(), Some("<a@b>"));
    assert_eq!(o.dsn_ret.as_deref(), Some("full"));
    assert_eq!(o.dsn_envid.as_deref(), Some("id"));
    assert_eq!(o.recipients, s(&["c"]));
    assert!(parse_args(&s(&["-q"])).unwrap().queue_run);
    assert!(parse_args(&s(&["-z"])).is_err());
    assert!(parse_args(&s(&["-f"])).is_err());
    assert!(sendmail::wants_newaliases(&s(&["-bi"])));
    assert!(!sendmail::wants_newaliases(&s(&["-bs"])));
    assert_eq!(
        sendmail::envelope_from(Some("<a@b>"), "u", "h").unwrap(),
        "a@b"
    );
    assert_eq!(
        sendmail::envelope_from(None, "root", "vm").unwrap(),
        "root@vm"
    );
    assert!(sendmail::envelope_from(Some("<a@b"), "u", "h").is_err());
    assert_eq!(sendmail::gecos_name("& Smith,room", "bob"), "Bob Smith");
    assert_eq!(sendmail::gecos_name("Alice,,,", "alice"), "Alice");
}

#[test]
fn sendmail_message_and_dialogue() {
    let input = b"From: Alice <alice@example.org>\r\nTo: bob, \"C D\" <carol@example.org>\r\nBcc: secret@x\r\nSubject: hi\r\n\r\n.dot\r\nbody\r\n";
    let m = parse_message(input, true, true, "vm").unwrap();
    assert_eq!(m.from.as_deref(), Some("alice@example.org"));
    assert_eq!(m.rcpts, s(&["bob@vm", "carol@example.org", "secret@x"]));
    assert_eq!(m.text, b"From: Alice <alice@example.org>\nTo: bob, \"C D\" <carol@example.org>\nSubject: hi\n\n.dot\nbody\n".to_vec());
    assert!(m.saw_from && !m.saw_date && !m.noheader);
    let data = sendmail::data_section(
        &m,
        "alice@example.org",
        None,
        "Mon, 1 Jan 2024 00:00:00 +0000 (UTC)",
    );
    assert_eq!(
        String::from_utf8(data).unwrap(),
        "Date: Mon, 1 Jan 2024 00:00:00 +0000 (UTC)\r\nFrom: Alice <alice@example.org>\r\nTo: bob, \"C D\" <carol@example.org>\r\nSubject: hi\r\n\r\n..dot\r\nbody\r\n.\r\n"
    );
    let o = parse_args(&s(&["x"])).unwrap();
    assert_eq!(sendmail::mail_from_line("a@b", &o), "MAIL FROM:<a@b>  \r\n");
    assert_eq!(sendmail::rcpt_line("x@vm", &o), "RCPT TO:<x@vm> \r\n");
    // no header at all: a blank line goes first; long lines get MIME headers and QP
    let long = "x".repeat(1000) + "\n";
    let m = parse_message(long.as_bytes(), true, false, "vm").unwrap();
    assert!(m.noheader && m.need_linesplit);
    let d = String::from_utf8(sendmail::data_section(&m, "u@vm", Some("U"), "D")).unwrap();
    assert!(d.starts_with("From: U <u@vm>\r\nDate: D\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=unknown-8bit\r\nContent-Disposition: inline\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"));
}

#[test]
fn makemap_arguments() {
    let m = parse_makemap(&s(&["-t", "set", "-o", "/tmp/x.db", "/etc/x"]), false).unwrap();
    assert_eq!(m.kind, Some(rsmtpd_control::map::MapKind::Set));
    assert_eq!(m.output.as_deref(), Some("/tmp/x.db"));
    assert_eq!(m.source.as_deref(), Some("/etc/x"));
    assert_eq!(
        parse_makemap(&s(&["-t", "foo", "x"]), false),
        Err("unsupported type 'foo'".into())
    );
    assert_eq!(
        parse_makemap(&s(&["-d", "dbm", "x"]), false),
        Err("unsupported DB type 'dbm'".into())
    );
    assert_eq!(parse_makemap(&s(&[]), false), Err("usage".into()));
    assert!(parse_makemap(&s(&["-U", "x.db"]), false).unwrap().dump);
    let n = parse_makemap(&s(&["-f", "/etc/smtpd.conf"]), true).unwrap();
    assert!(n.newaliases && n.config.as_deref() == Some("/etc/smtpd.conf"));
    assert_eq!(parse_makemap(&s(&["x"]), true), Err("usage".into()));
    assert_eq!(
        rsmtpd_smtpctl::conf_aliases("table aliases file:/etc/aliases.db\n"),
        "/etc/aliases"
    );
    assert_eq!(
        rsmtpd_smtpctl::conf_aliases("table aliases /etc/mail/aliases\n"),
        "/etc/mail/aliases"
    );
}

fn personality_bin(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_smtpctl"), &p).unwrap();
    p
}

#[test]
fn sendmail_offline_when_daemon_down() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("offline")).unwrap();
    let bin = personality_bin(dir.path(), "sendmail");
    let mut child = std::process::Command::new(&bin)
        .args(["-F", "Alice A", "root"])
        .env("SMTPD_SOCKET", dir.path().join("none.sock"))
        .env("SMTPD_SPOOL", dir.path())
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Subject: x\r\nBcc: y\r\n\r\nhello\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(75));
    assert!(out.stderr.is_empty());
    let files: Vec<_> = std::fs::read_dir(dir.path().join("offline"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().into_string().unwrap();
    let (secs, suffix) = name.split_once('.').unwrap();
    assert!(secs.parse::<u64>().is_ok() && suffix.len() == 10, "{name}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        files[0].metadata().unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read(files[0].path()).unwrap(),
        b"-F|Alice A|root\nSubject: x\n\nhello\n"
    );

    // an argument with | is refused, exit 70
    let out = std::process::Command::new(&bin)
        .args(["a|b"])
        .env("SMTPD_SOCKET", dir.path().join("none.sock"))
        .env("SMTPD_SPOOL", dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(70));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "sendmail: a|b contains illegal character\n"
    );

    // no recipients
    let out = std::process::Command::new(&bin)
        .env("SMTPD_SOCKET", dir.path().join("none.sock"))
        .env("SMTPD_SPOOL", dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(70));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "sendmail: no recipients\n"
    );
    let out = std::process::Command::new(&bin)
        .arg("-q")
        .env("SMTPD_SOCKET", dir.path().join("none.sock"))
        .env("SMTPD_SPOOL", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(70));
}

#[test]
fn makemap_binary_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let bin = personality_bin(dir.path(), "makemap");
    let src = dir.path().join("virtual");
    std::fs::write(
        &src,
        "# c\nAlice@Example.org bob\nexample.org: carol, dave\n",
    )
    .unwrap();
    let out = std::process::Command::new(&bin).arg(&src).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let data = std::fs::read(dir.path().join("virtual.db")).unwrap();
    let m = rsmtpd_control::map::read_map(&data).unwrap();
    assert_eq!(m.get("alice@example.org"), Some(Some("bob")));
    assert_eq!(m.get("example.org"), Some(Some("carol, dave")));
    let out = std::process::Command::new(&bin)
        .args(["-U"])
        .arg(dir.path().join("virtual.db"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "alice@example.org\tbob\nexample.org\tcarol, dave\n"
    );
    let out = std::process::Command::new(&bin).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "usage: makemap [-U] [-d dbtype] [-o dbfile] [-t type] file\n"
    );
}

/// `makemap -U` on a map written by OpenSMTPD's makemap (Berkeley DB): the real `makemap -U`'s
/// output, same order, each side without its NUL.
#[test]
fn makemap_dumps_berkeley_db_maps() {
    let dir = tempfile::tempdir().unwrap();
    let bin = personality_bin(dir.path(), "makemap");
    let fixtures = format!("{}/../bdb/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    for name in ["makemap-aliases.db", "makemap-set.db", "be-hash-512.db"] {
        let path = format!("{fixtures}/{name}");
        let out = std::process::Command::new(&bin)
            .args(["-U", &path])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        match name {
            "makemap-aliases.db" => {
                assert!(text.contains("root\tjules, bob\n"), "{text}");
                assert!(
                    text.contains("érik\terik@example.org, /var/mail/erik\n"),
                    "{text}"
                );
                assert_eq!(text.lines().count(), 4);
            }
            "makemap-set.db" => assert!(text.contains("example.net\t<set>\n"), "{text}"),
            _ => assert_eq!(text.lines().count(), 100),
        }
        let real = std::path::Path::new("/usr/sbin/makemap");
        if skip::require_tool("/usr/sbin/makemap") {
            let want = std::process::Command::new(real)
                .args(["-U", &path])
                .output()
                .unwrap();
            assert_eq!(text.as_bytes(), &want.stdout[..], "{name}");
        }
    }
}
