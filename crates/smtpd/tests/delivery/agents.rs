//! Local delivery agents against real files under temporary directories.
//! As root, deliveries run as `nobody` (65534) in workers of the delivery process (started from
//! the real `smtpd` binary); otherwise as ourselves.

use crate::common::require;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rsmtpd::delivery::format::{expand, Values};
use rsmtpd::delivery::{deliver, deliver_report, DeliveryRequest, Outcome};
use rsmtpd::routing::expand::Target;
use rsmtpd::routing::lookup::UserInfo;
use rsmtpd_config::format::Format;
use rsmtpd_config::model::{Action, LocalDelivery, LocalMethod, Method};
use rsmtpd_protocol::address::Mailaddr;

const MSG: &str = "Received: from client.test (localhost [127.0.0.1])\n\tby vm (OpenSMTPD) with ESMTP id b50512b1\n\tfor <al@vm>;\n\tWed, 25 Nov 2026 12:31:05 +0000 (UTC)\nSubject: test\n\nhello\nFrom the body line\n\nFrom me, at the start of a paragraph\n.leading dot\n";

fn addr(s: &str) -> Mailaddr {
    match s.rsplit_once('@') {
        Some((u, d)) => Mailaddr::new(u, d),
        None => Mailaddr::new("", ""),
    }
}

fn action(method: LocalMethod) -> Action {
    Action {
        name: "local".into(),
        method: Method::Local(LocalDelivery {
            method,
            alias: None,
            virtual_: None,
            userbase: None,
            user: None,
            wrapper: None,
            written: vec![],
        }),
        ttl: None,
        at: Default::default(),
    }
}

fn ids() -> (u32, u32) {
    if nix::unistd::geteuid().is_root() {
        (65534, 65534)
    } else {
        (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    }
}

/// A temp dir the delivery user may enter, a home inside it owned by that user, the message.
fn setup(msg: &str) -> (tempfile::TempDir, PathBuf, PathBuf, UserInfo) {
    let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
    let home = t.path().join("home");
    std::fs::create_dir(&home).unwrap_or_else(|e| panic!("{e}"));
    let (uid, gid) = ids();
    std::os::unix::fs::chown(&home, Some(uid), Some(gid)).unwrap_or_else(|e| panic!("{e}"));
    let m = t.path().join("message");
    std::fs::write(&m, msg).unwrap_or_else(|e| panic!("{e}"));
    let user = UserInfo {
        username: "al".into(),
        uid,
        gid,
        directory: home.to_string_lossy().into_owned(),
    };
    (t, home, m, user)
}

fn request(method: LocalMethod, user: UserInfo, message: &Path, sender: &str) -> DeliveryRequest {
    rsmtpd::delivery::client::set_program(env!("CARGO_BIN_EXE_smtpd").into());
    let mut r = DeliveryRequest::new(
        action(method),
        user,
        message.to_path_buf(),
        addr(sender),
        addr("al@vm"),
        addr("al@vm"),
    );
    r.hostname = Some("vm".into());
    r
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn maildir_new_and_junk() {
    struct Case {
        msg: String,
        junk: bool,
        path: Option<&'static str>,
        sender: &'static str,
        subaddress: &'static str,
        ext_dir: Option<&'static str>,
        want_dir: &'static str,
        want_head: &'static str,
    }
    let spam = format!("X-Spam: Yes\n{MSG}");
    let cases = [
        Case {
            msg: MSG.into(),
            junk: false,
            path: None,
            sender: "bob@example.org",
            subaddress: "",
            ext_dir: None,
            want_dir: "Maildir/new",
            want_head: "Return-Path: <bob@example.org>\nDelivered-To: al@vm\nReceived: ",
        },
        Case {
            msg: spam.clone(),
            junk: true,
            path: None,
            sender: "bob@example.org",
            subaddress: "",
            ext_dir: None,
            want_dir: "Maildir/.Junk/new",
            want_head: "Return-Path: <bob@example.org>\nDelivered-To: al@vm\nX-Spam: Yes\n",
        },
        Case {
            msg: spam.clone(),
            junk: false,
            path: None,
            sender: "",
            subaddress: "",
            ext_dir: None,
            want_dir: "Maildir/new",
            want_head: "Delivered-To: al@vm\nX-Spam: Yes\n",
        },
        Case {
            msg: format!("X-Spam-Flag: YES\n{MSG}"),
            junk: true,
            path: Some("~/Mail"),
            sender: "",
            subaddress: "",
            ext_dir: None,
            want_dir: "Mail/.Junk/new",
            want_head: "Delivered-To: al@vm\nX-Spam-Flag: YES\n",
        },
        // X-Spam in the body does not count.
        Case {
            msg: format!("{MSG}X-Spam: Yes\n"),
            junk: true,
            path: Some("%{user.directory}/M/%{dest.user}"),
            sender: "",
            subaddress: "",
            ext_dir: None,
            want_dir: "M/al/new",
            want_head: "Delivered-To: al@vm\nReceived: ",
        },
        // An existing .EXT folder receives the sub-addressed mail.
        Case {
            msg: MSG.into(),
            junk: false,
            path: None,
            sender: "",
            subaddress: "foo.bar",
            ext_dir: Some("Maildir/.foo.bar"),
            want_dir: "Maildir/.foo.bar/new",
            want_head: "Delivered-To: al@vm\n",
        },
        Case {
            msg: MSG.into(),
            junk: false,
            path: None,
            sender: "",
            subaddress: "nofolder",
            ext_dir: None,
            want_dir: "Maildir/new",
            want_head: "Delivered-To: al@vm\n",
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        let (_t, home, m, user) = setup(&c.msg);
        if let Some(e) = c.ext_dir {
            std::fs::create_dir_all(home.join(e)).unwrap_or_else(|e| panic!("{e}"));
            let (uid, gid) = ids();
            std::os::unix::fs::chown(home.join("Maildir"), Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("{e}"));
            std::os::unix::fs::chown(home.join(e), Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let path = c
            .path
            .map(|p| Format::parse(p).unwrap_or_else(|e| panic!("{e}")));
        let mut req = request(
            LocalMethod::Maildir { path, junk: c.junk },
            user,
            &m,
            c.sender,
        );
        req.subaddress = c.subaddress.into();
        let out = deliver(&req).await;
        assert_eq!(out, Outcome::Ok, "case {i}");
        let got = files(&home.join(c.want_dir));
        assert_eq!(got.len(), 1, "case {i}: {:?}", got);
        let name = got[0]
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parts: Vec<&str> = name.split('.').collect();
        assert_eq!(parts.len(), 3, "{name}");
        assert!(
            parts[0].parse::<u64>().is_ok() && parts[1].len() == 8 && parts[2] == "vm",
            "{name}"
        );
        assert!(u32::from_str_radix(parts[1], 16).is_ok(), "{name}");
        let body = std::fs::read_to_string(&got[0]).unwrap_or_default();
        assert!(body.starts_with(c.want_head), "case {i}: {body}");
        assert!(
            body.ends_with(MSG.split("\n\n").last().unwrap_or("")) || c.msg != MSG,
            "case {i}"
        );
        let md = std::fs::metadata(&got[0]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(md.mode() & 0o777, 0o600);
        assert_eq!(md.uid(), ids().0);
        let root = got[0]
            .parent()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        for sub in ["cur", "new", "tmp"] {
            assert!(root.join(sub).is_dir(), "case {i}: {sub}");
        }
        assert!(files(&root.join("tmp")).is_empty());
        if c.junk && c.path.is_none() {
            assert!(home.join("Maildir/.Junk/cur").is_dir(), "case {i}");
        }
    }
}

#[tokio::test]
async fn maildir_unwritable_is_tempfail_with_mail_maildir_text() {
    let (_t, home, m, user) = setup(MSG);
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o500))
        .unwrap_or_else(|e| panic!("{e}"));
    if !require(
        nix::unistd::geteuid().is_root()
            || nix::unistd::access(&home, nix::unistd::AccessFlags::W_OK).is_err(),
        "needs root: this user can write into a mode 0500 folder",
    ) {
        return;
    }
    let r = deliver_report(&request(
        LocalMethod::Maildir {
            path: None,
            junk: false,
        },
        user,
        &m,
        "a@b",
    ))
    .await;
    assert_eq!(
        r.outcome,
        Outcome::TempFail(
            "Error (temporary failure: \"mail.maildir: No such file or directory\")".into()
        )
    );
    assert_eq!(r.errorline, "\"mail.maildir: No such file or directory\"");
}

#[tokio::test]
async fn loop_detected() {
    let (_t, _home, m, user) = setup(&format!("Delivered-To: AL@vm\n{MSG}"));
    let out = deliver(&request(
        LocalMethod::Maildir {
            path: None,
            junk: false,
        },
        user,
        &m,
        "a@b",
    ))
    .await;
    assert_eq!(out, Outcome::PermFail("Loop detected".into()));
    assert!(out.is_loop());
    // Only in the headers.
    let (_t, home, m, user) = setup(&format!("{MSG}\nDelivered-To: al@vm\n"));
    let out = deliver(&request(
        LocalMethod::Maildir {
            path: None,
            junk: false,
        },
        user,
        &m,
        "a@b",
    ))
    .await;
    assert_eq!(out, Outcome::Ok);
    assert_eq!(files(&home.join("Maildir/new")).len(), 1);
}

#[tokio::test]
async fn mbox_twice_read_by_python() {
    // mail.local quotes only a `From ` line that starts a paragraph (checked against the real
    // /usr/libexec/opensmtpd/mail.local); Python's reader would split at a mid-paragraph one,
    // as it does with mail.local's files, so this message has none.
    let msg = MSG.replace(
        "hello\nFrom the body line\n",
        "hello\n>From the body line\n",
    );
    let (t, _home, m, user) = setup(&msg);
    let spool = t.path().join("spool");
    std::fs::create_dir(&spool).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o1777))
        .unwrap_or_else(|e| panic!("{e}"));
    for sender in ["bob@example.org", ""] {
        let mut req = request(LocalMethod::Mbox, user.clone(), &m, sender);
        req.mail_spool = spool.clone();
        assert_eq!(deliver(&req).await, Outcome::Ok);
    }
    let mbox = spool.join("al");
    let md = std::fs::metadata(&mbox).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(md.mode() & 0o777, 0o600);
    assert_eq!(md.uid(), ids().0);
    assert!(!spool.join("al.lock").exists());
    let text = std::fs::read_to_string(&mbox).unwrap_or_default();
    assert!(text.starts_with("From bob@example.org "), "{text}");
    assert!(text.contains("\nFrom MAILER-DAEMON "), "{text}");
    // mail.local quotes only a From_ line starting a paragraph.
    assert!(
        text.contains("\nhello\n>From the body line\n\n>From me, at the start"),
        "{text}"
    );
    assert!(
        text.contains("\n.leading dot\n\nFrom MAILER-DAEMON"),
        "{text}"
    );
    assert!(text.ends_with(".leading dot\n\n"));
    let py = r#"
import mailbox, sys
mb = mailbox.mbox(sys.argv[1], create=False)
msgs = list(mb)
print(len(msgs))
for m in msgs:
    print(m.get_from().split(' ')[0], m['Delivered-To'], m['Return-Path'], m['Subject'], repr(m.get_payload()))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(py)
        .arg(&mbox)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let s = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.first(), Some(&"2"), "{s}");
    assert!(lines[1].starts_with("bob@example.org al@vm <bob@example.org> test 'hello\\n>From the body line\\n\\n>From me"), "{s}");
    assert!(lines[2].starts_with("MAILER-DAEMON al@vm None test"), "{s}");

    // A mid-paragraph `From ` stays as it is.
    let (t, _home, m, mut user) = setup(MSG);
    user.username = "al2".into();
    let spool = t.path().to_path_buf();
    let mut req = request(LocalMethod::Mbox, user, &m, "bob@x");
    req.mail_spool = spool.clone();
    assert_eq!(deliver(&req).await, Outcome::Ok);
    let text = std::fs::read_to_string(spool.join("al2")).unwrap_or_default();
    let body = text.split_once('\n').map(|x| x.1).unwrap_or("");
    assert_eq!(
        body,
        format!(
            "Return-Path: <bob@x>\nDelivered-To: al@vm\n{}\n",
            MSG.replace("\nFrom me", "\n>From me")
        )
    );
}

#[tokio::test]
async fn mboxfile_target_quotes_every_from() {
    let (t, _home, m, user) = setup(MSG);
    let file = t.path().join("home/archive");
    let mut req = request(
        LocalMethod::Maildir {
            path: None,
            junk: false,
        },
        user,
        &m,
        "bob@x",
    );
    req.target = Target::File(file.to_string_lossy().into_owned());
    assert_eq!(deliver(&req).await, Outcome::Ok);
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(text.starts_with("From bob@x "));
    assert!(
        text.contains("\nhello\n>From the body line\n\n>From me"),
        "{text}"
    );
}

#[tokio::test]
async fn mda_exit_statuses() {
    let cases: &[(&str, Outcome, &str)] = &[
        ("cat > $HOME/out", Outcome::Ok, ""),
        (
            "echo first; echo last line for exit 75; exit 75",
            Outcome::TempFail("Error (temporary failure: \"last line for exit 75\")".into()),
            "\"last line for exit 75\"",
        ),
        (
            "echo last line for exit 1 >&2; exit 1",
            Outcome::PermFail("Error (\"last line for exit 1\")".into()),
            "\"last line for exit 1\"",
        ),
        (
            "echo nope; exit 67",
            Outcome::PermFail("Error (user unknown: \"nope\")".into()),
            "\"nope\"",
        ),
        (
            "echo sysres; exit 71",
            Outcome::TempFail("Error (system resource problem: \"sysres\")".into()),
            "\"sysres\"",
        ),
        (
            "sh -c 'exit 75'",
            Outcome::TempFail("Error (temporary failure: exited abnormally)".into()),
            "exited abnormally",
        ),
        (
            "kill -9 $$",
            Outcome::TempFail("Error (terminated; signal 9)".into()),
            "terminated; signal 9",
        ),
        (
            "printf 'a\\tb\\001\\n\\n'; exit 2",
            Outcome::PermFail("Error (\"\")".into()),
            "\"\"",
        ),
        // A double quote ends mail.mda's quoting, in OpenSMTPD as here.
        (
            "printf 'a\"'; exit 2",
            Outcome::PermFail(
                "Error (\"/bin/sh: 1: Syntax error: Unterminated quoted string\")".into(),
            ),
            "\"/bin/sh: 1: Syntax error: Unterminated quoted string\"",
        ),
        (
            "printf 'a\\tb\\001\\\\'; exit 2",
            Outcome::PermFail("Error (\"a\tb\\^A\\\\\")".into()),
            "\"a\tb\\^A\\\\\"",
        ),
    ];
    for (cmd, want, errorline) in cases {
        let (_t, home, m, user) = setup(MSG);
        let command = Format::parse(cmd).unwrap_or_else(|e| panic!("{e}"));
        let r = deliver_report(&request(LocalMethod::Mda { command }, user, &m, "bob@x")).await;
        assert_eq!(&r.outcome, want, "{cmd}");
        assert_eq!(&r.errorline, errorline, "{cmd}");
        if *want == Outcome::Ok {
            let got = std::fs::read_to_string(home.join("out")).unwrap_or_default();
            assert_eq!(
                got,
                format!("Return-Path: <bob@x>\nDelivered-To: al@vm\n{MSG}")
            );
        }
    }
}

#[tokio::test]
async fn mda_environment_and_escaping() {
    let (_t, home, m, user) = setup(MSG);
    // The command reads its input first: one that exits without reading it may leave the
    // message unwritten, which is "mda exited prematurely" (as OpenSMTPD's mda.c says), not
    // what this test is about.
    let command = Format::parse(
        "cat > /dev/null; env | sort > ~/env; echo %{sender} %{rcpt.user:raw} > ~/args",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut req = request(
        LocalMethod::Mda { command },
        user.clone(),
        &m,
        "b$HOME`id`|x@x",
    );
    req.rcpt = addr("al+Tag@vm");
    req.subaddress = "tag".into();
    assert_eq!(deliver(&req).await, Outcome::Ok);
    let env = std::fs::read_to_string(home.join("env")).unwrap_or_default();
    let home_s = home.to_string_lossy();
    let want = format!(
        "DOMAIN=vm\nEXTENSION=tag\nHOME={home_s}\nLOCAL=al+Tag\nLOGNAME=al\nPATH=/usr/bin:/bin\nPWD={home_s}\nRECIPIENT=al@vm\nSENDER=b$HOME`id`|x@x\nSHELL=/bin/sh\nUSER=al\n"
    );
    // The shell adds PWD (and maybe SHLVL/_); compare the variables we set.
    let got: String = env
        .lines()
        .filter(|l| !l.starts_with("SHLVL=") && !l.starts_with("_=") && !l.starts_with("OLDPWD="))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(got, want);
    // `$`, backquotes and `|` in the sender become ':' before any shell sees them.
    let args = std::fs::read_to_string(home.join("args")).unwrap_or_default();
    assert_eq!(args, "b:HOME:id::x@x al+Tag\n");
}

#[tokio::test]
async fn pipe_target_and_root_refusal() {
    let (_t, home, m, user) = setup(MSG);
    let mut req = request(
        LocalMethod::Maildir {
            path: None,
            junk: false,
        },
        user.clone(),
        &m,
        "",
    );
    req.target = Target::Pipe("cat > ~/piped".into());
    assert_eq!(deliver(&req).await, Outcome::Ok);
    let got = std::fs::read_to_string(home.join("piped")).unwrap_or_default();
    assert_eq!(got, format!("Delivered-To: al@vm\n{MSG}"));
    if nix::unistd::geteuid().is_root() {
        let mut root = user;
        root.uid = 0;
        root.username = "root".into();
        let out = deliver(&request(
            LocalMethod::Maildir {
                path: None,
                junk: false,
            },
            root,
            &m,
            "",
        ))
        .await;
        assert_eq!(
            out,
            Outcome::PermFail("Error (permission denied: not allowed to deliver to: root)".into())
        );
    }
}

#[test]
fn format_expansion() {
    let sender = addr("Bob+Spam@Example.ORG");
    let rcpt = addr("al+foo@vm");
    let dest = addr("al@vm");
    let evil = addr("x`touch /tmp/x`$HOME|a&b;c@vm");
    let v = Values {
        sender: Some(&sender),
        rcpt: Some(&rcpt),
        dest: Some(&dest),
        username: "al",
        directory: "/home/a{l}",
        mda: None,
        delim: '+',
    };
    let mut ev = v.clone();
    ev.rcpt = Some(&evil);
    let null = addr("");
    let mut nv = v.clone();
    nv.sender = Some(&null);
    let cases: &[(&Values, &str, Option<&str>)] = &[
        (&v, "%{sender}", Some("Bob+Spam@Example.ORG")),
        (&v, "%{sender:lowercase}", Some("bob+spam@example.org")),
        (&v, "%{sender:uppercase|strip}", Some("BOB@EXAMPLE.ORG")),
        (&v, "%{sender.user:strip}", Some("Bob")),
        (&v, "%{rcpt.user}/%{rcpt.domain}", Some("al+foo/vm")),
        (&v, "%{dest}", Some("al@vm")),
        (
            &v,
            "%{user.username}:%{user.directory}",
            Some("al:/home/a{l}"),
        ),
        (&v, "~/Maildir", Some("/home/a{l}/Maildir")),
        (&v, "x~/Maildir", Some("x~/Maildir")),
        (&v, "100%% %{dest.user}", Some("100% al")),
        (&v, "%{DEST.USER}", Some("al")),
        (&v, "%{rcpt.user[0]}", Some("a")),
        (&v, "%{rcpt.user[1:2]}", Some("l+")),
        (&v, "%{rcpt.user[-3:]}", Some("foo")),
        (&v, "%{rcpt.user[:-2]}", Some("al+f")),
        (&v, "%{rcpt.user[10]}", None),
        (&v, "%{rcpt.user[0]:lowercase}", None),
        (&v, "%{nope}", None),
        (&v, "%{rcpt:shout}", None),
        (&v, "%{rcpt", Some("%{rcpt")),
        (
            &nv,
            "%{sender}|%{mbox.from}|%{sender.user}",
            Some("|MAILER-DAEMON|"),
        ),
        (&v, "%{mbox.from}", Some("Bob+Spam@Example.ORG")),
        (&ev, "%{rcpt}", Some("x:touch /tmp/x::HOME:a:b;c@vm")),
        (&ev, "%{rcpt.user}", Some("x:touch /tmp/x::HOME:a:b;c")),
        (&ev, "%{rcpt.user:raw}", Some("x`touch /tmp/x`$HOME|a&b;c")),
        (
            &ev,
            "%{rcpt:lowercase|raw}",
            Some("x`touch /tmp/x`$home|a&b;c@vm"),
        ),
        (&v, "%{mda}", Some("")),
    ];
    for (vals, fmt, want) in cases {
        let got = expand(fmt, vals).ok();
        assert_eq!(got.as_deref(), *want, "{fmt}");
    }
    let long = format!("/{}", "x".repeat(1100));
    assert!(expand(&long, &v).is_err());
}

#[tokio::test]
async fn lmtp_against_a_tiny_server() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    struct Case {
        rcpt_to: bool,
        data_reply: &'static str,
        rcpt_reply: &'static str,
        want: Outcome,
        want_rcpt: &'static str,
    }
    let cases = [
        Case { rcpt_to: false, data_reply: "250 2.0.0 <al@vm> Saved", rcpt_reply: "250 2.1.5 Ok", want: Outcome::Ok, want_rcpt: "RCPT TO:<al>" },
        Case { rcpt_to: true, data_reply: "250 2.0.0 <al@vm> Saved", rcpt_reply: "250 2.1.5 Ok", want: Outcome::Ok, want_rcpt: "RCPT TO:<al@vm>" },
        Case { rcpt_to: true, data_reply: "452 4.2.2 Mailbox full", rcpt_reply: "250 2.1.5 Ok",
            want: Outcome::TempFail("Error (temporary failure: \"mail.lmtp: LMTP server error: 452 4.2.2 Mailbox full\")".into()), want_rcpt: "RCPT TO:<al@vm>" },
        Case { rcpt_to: true, data_reply: "", rcpt_reply: "550 5.1.1 <al@vm> User doesn't exist",
            want: Outcome::TempFail("Error (temporary failure: \"mail.lmtp: LMTP server error: 550 5.1.1 <al@vm> User doesn't exist\")".into()), want_rcpt: "RCPT TO:<al@vm>" },
    ];
    for (i, c) in cases.iter().enumerate() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let (data_reply, rcpt_reply) = (c.data_reply, c.rcpt_reply);
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
            let (r, mut w) = s.into_split();
            let mut r = BufReader::new(r);
            let mut log = Vec::new();
            let _ = w.write_all(b"220 lmtp ready\r\n").await;
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim_end_matches("\r\n").to_string();
                log.push(l.clone());
                let reply = if l.starts_with("LHLO") {
                    "250-lmtp\r\n250 PIPELINING\r\n".to_string()
                } else if l.starts_with("MAIL") {
                    "250 2.1.0 Ok\r\n".into()
                } else if l.starts_with("RCPT") {
                    format!("{rcpt_reply}\r\n")
                } else if l == "DATA" {
                    let _ = w.write_all(b"354 go\r\n").await;
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            break;
                        }
                        let d = line.clone();
                        log.push(d.clone());
                        if d == ".\r\n" {
                            break;
                        }
                    }
                    format!("{data_reply}\r\n")
                } else if l == "QUIT" {
                    let _ = w.write_all(b"221 bye\r\n").await;
                    break;
                } else {
                    "500 what\r\n".into()
                };
                let _ = w.write_all(reply.as_bytes()).await;
            }
            log
        });
        let (_t, _home, m, user) = setup(MSG);
        let destination =
            Format::parse(&format!("127.0.0.1:{port}")).unwrap_or_else(|e| panic!("{e}"));
        let out = deliver(&request(
            LocalMethod::Lmtp {
                destination,
                rcpt_to: c.rcpt_to,
            },
            user,
            &m,
            "bob@x",
        ))
        .await;
        assert_eq!(out, c.want, "case {i}");
        let log = server.await.unwrap_or_default();
        assert_eq!(log.first().map(String::as_str), Some("LHLO localhost"));
        assert_eq!(log.get(1).map(String::as_str), Some("MAIL FROM:<bob@x>"));
        assert_eq!(log.get(2).map(String::as_str), Some(c.want_rcpt));
        if c.want == Outcome::Ok {
            let data: String = log[4..].concat();
            assert!(
                data.starts_with("Return-Path: <bob@x>\r\nDelivered-To: al@vm\r\nReceived:"),
                "{data}"
            );
            assert!(data.contains("\r\n..leading dot\r\n.\r\n"), "{data}");
        }
    }
    // Nobody listening: mail.lmtp's "connect".
    let (_t, _home, m, user) = setup(MSG);
    let destination = Format::parse("127.0.0.1:1").unwrap_or_else(|e| panic!("{e}"));
    let out = deliver(&request(
        LocalMethod::Lmtp {
            destination,
            rcpt_to: false,
        },
        user,
        &m,
        "",
    ))
    .await;
    assert_eq!(
        out,
        Outcome::TempFail("Error (temporary failure: \"mail.lmtp: connect\")".into())
    );
}

#[tokio::test]
async fn a_delivery_past_its_timeout_is_terminated() {
    // Not root: the agent runs on one of our threads, which nothing stops.
    if !require(
        nix::unistd::geteuid().is_root(),
        "needs root: the agent runs in a process of its own only as root",
    ) {
        return;
    }
    let (t, _home, m, user) = setup(MSG);
    let spool = t.path().join("spool");
    std::fs::create_dir(&spool).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o1777))
        .unwrap_or_else(|e| panic!("{e}"));
    // Someone holds the mailbox's dot-lock: mail.local waits for it (up to 30 s).
    let lock = spool.join("al.lock");
    std::fs::write(&lock, "").unwrap_or_else(|e| panic!("{e}"));
    let mut req = request(LocalMethod::Mbox, user, &m, "a@b");
    req.mail_spool = spool.clone();
    req.timeout = std::time::Duration::from_secs(1);
    let start = std::time::Instant::now();
    let r = deliver_report(&req).await;
    assert_eq!(
        r.outcome,
        Outcome::TempFail("Error (terminated; timeout)".into())
    );
    assert_eq!(r.errorline, "terminated; timeout");
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    // The lock is gone: the next delivery of that user (a new worker) goes through.
    std::fs::remove_file(&lock).unwrap_or_else(|e| panic!("{e}"));
    req.timeout = std::time::Duration::from_secs(300);
    assert_eq!(deliver(&req).await, Outcome::Ok);
    let text = std::fs::read_to_string(spool.join("al")).unwrap_or_default();
    assert_eq!(text.matches("\nSubject: test\n").count(), 1, "{text}");
}

/// An mda command past its time is stopped by its own alarm, as forkmda()'s children are
/// (also when a worker of the delivery process runs it), and the worker goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mda_past_its_timeout_is_terminated() {
    let (_t, home, m, user) = setup(MSG);
    let command = Format::parse("sleep 30").unwrap_or_else(|e| panic!("{e}"));
    let mut req = request(LocalMethod::Mda { command }, user.clone(), &m, "a@b");
    req.timeout = std::time::Duration::from_secs(1);
    let start = std::time::Instant::now();
    let r = deliver_report(&req).await;
    assert_eq!(
        r.outcome,
        Outcome::TempFail("Error (terminated; timeout)".into())
    );
    assert_eq!(r.errorline, "terminated; timeout");
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    let command = Format::parse("cat > $HOME/out").unwrap_or_else(|e| panic!("{e}"));
    let req = request(LocalMethod::Mda { command }, user, &m, "a@b");
    assert_eq!(deliver(&req).await, Outcome::Ok);
    assert!(home.join("out").exists());
}

/// The command starts with the signals' default actions, whatever the process that started it
/// ignores (the delivery process ignores the stop signals): `timeout(1)`-style scripts work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mda_starts_with_default_signal_actions() {
    let (_t, home, m, user) = setup(MSG);
    let command = Format::parse("cat > /dev/null; grep ^SigIgn /proc/self/status > $HOME/sig")
        .unwrap_or_else(|e| panic!("{e}"));
    let req = request(LocalMethod::Mda { command }, user, &m, "a@b");
    assert_eq!(deliver(&req).await, Outcome::Ok);
    let line = std::fs::read_to_string(home.join("sig")).unwrap_or_default();
    let mask = u64::from_str_radix(line.trim().trim_start_matches("SigIgn:").trim(), 16)
        .unwrap_or_else(|e| panic!("{line:?}: {e}"));
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        assert_eq!(mask & (1 << (sig - 1)), 0, "signal {sig} ignored: {line}");
    }
}
