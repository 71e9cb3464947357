//! Delivery end to end, through the real daemon: the seed's step 7 (junk into `.Junk/new/` with
//! its headers), a failing MDA bouncing to the sender, and a mailbox that cannot be written
//! until the administrator fixes it.

use std::time::Duration;

use crate::common::*;

#[test]
fn step7_junk_lands_in_the_junk_folder_and_clean_mail_in_new() {
    let uid = delivery_uid(2000);
    let seed = seed_config("7-deliver.conf")
        .replace("listen on ::1 port 2525", "listen on 127.0.0.1 port @PORT@")
        .replace("/opt/vmail", "@DIR@/vmail")
        .replace("2000:2000:/var/empty", &format!("{uid}:{uid}:@DIR@/home"));
    let d = Daemon::start(&seed, &[]);
    user_dir(&d, "vmail", uid);
    user_dir(&d, "home", uid);
    let msg = "Subject: step 7\r\n\r\nhello\r\n.";
    for src in ["127.0.0.2", "127.0.0.1"] {
        let r = converse(
            src,
            d.addr(),
            &[
                "HELO cun",
                "MAIL FROM:<>",
                "RCPT TO:<foo@bsdsx.fr>",
                "DATA",
                msg,
                "QUIT",
            ],
        );
        assert!(r[5].starts_with("250 2.0.0 "), "{r:?}");
    }
    d.wait_log_for(Duration::from_secs(20), |_| {
        d.log()
            .iter()
            .filter(|l| l.contains("result=Ok stat=Delivered"))
            .count()
            >= 2
    });
    let junk = mail_texts(&d.dir.path().join("vmail/foo/.Junk/new"));
    let clean = mail_texts(&d.dir.path().join("vmail/foo/new"));
    assert_eq!(
        (junk.len(), clean.len()),
        (1, 1),
        "junk {junk:?} clean {clean:?}"
    );
    // The seed's added headers, in order: Delivered-To, X-Spam, Received; then Date and
    // Message-ID the message lacked (added because the listener is local).
    assert!(
        junk[0].starts_with(
            "Delivered-To: foo@bsdsx.fr\nX-Spam: Yes\nReceived: from cun (<unknown> [127.0.0.2])\n"
        ),
        "{}",
        junk[0]
    );
    assert!(
        junk[0].contains("\nDate: ") && junk[0].contains("\nMessage-ID: <"),
        "{}",
        junk[0]
    );
    assert!(
        clean[0].starts_with(
            "Delivered-To: foo@bsdsx.fr\nReceived: from cun (localhost [127.0.0.1])\n"
        ),
        "{}",
        clean[0]
    );
    assert!(d.log().iter().any(|l| l.contains("mda delivery evpid=")
        && l.contains("from=<> to=<foo@bsdsx.fr> rcpt=<foo@bsdsx.fr> user=foo delay=")
        && l.ends_with("result=Ok stat=Delivered")));
}

#[test]
fn a_failing_mda_bounces_to_the_sender() {
    let uid = delivery_uid(1000);
    let config = format!(
        "listen on 127.0.0.1 port @PORT@\n\
         table users {{ bob = \"{uid}:{uid}:@DIR@/bob\", fail = \"{uid}:{uid}:@DIR@/bob\" }}\n\
         action \"broken\" mda \"echo no such mailbox; exit 1\" userbase <users>\n\
         action \"mail\" maildir \"@DIR@/bob/Maildir\" userbase <users>\n\
         match from any for rcpt-to \"fail@example.org\" action \"broken\"\n\
         match from any for domain \"example.org\" action \"mail\"\n\
         match from local for local action \"mail\"\n"
    );
    let d = Daemon::start(&config, &[]);
    user_dir(&d, "bob", uid);
    let r = converse(
        "127.0.0.1",
        d.addr(),
        &[
            "HELO client",
            "MAIL FROM:<bob@example.org>",
            "RCPT TO:<fail@example.org>",
            "DATA",
            "Subject: doomed\r\n\r\nthis will bounce\r\n.",
            "QUIT",
        ],
    );
    assert!(r[5].starts_with("250 2.0.0 "), "{r:?}");
    d.wait_log_for(Duration::from_secs(30), |l| {
        l.contains("to=<bob@example.org>") && l.ends_with("result=Ok stat=Delivered")
    });
    assert!(d.log().iter().any(|l| l.contains("to=<fail@example.org>")
        && l.contains("result=PermFail")
        && l.contains("no such mailbox")));
    let bounces = mail_texts(&d.dir.path().join("bob/Maildir/new"));
    assert_eq!(bounces.len(), 1);
    let b = &bounces[0];
    assert!(
        b.contains("Subject: Delivery status notification: failed"),
        "{b}"
    );
    // OpenSMTPD 6.8's layout: multipart/mixed with a message/delivery-status part.
    assert!(b.contains("Content-Type: multipart/mixed;"), "{b}");
    assert!(b.contains("Content-Type: message/delivery-status"), "{b}");
    assert!(
        b.contains("Final-Recipient: rfc822; fail@example.org\nAction: failed\nStatus: 5.3.0"),
        "{b}"
    );
    assert!(b.contains("fail@example.org: \"no such mailbox\""), "{b}");
    assert!(
        b.contains("this will bounce"),
        "the original message is returned: {b}"
    );
    // The bounce was delivered, not bounced in turn: nothing else went to the null sender.
    assert!(!d.log().iter().any(|l| l.contains("double bounce")));
}

#[test]
fn an_unwritable_maildir_waits_then_delivers_once_fixed() {
    let uid = delivery_uid(1000);
    // Without root the delivery runs as us, and we can write anywhere we made.
    if !require(
        is_root(),
        "needs root: only another user can be refused a folder",
    ) {
        return;
    }
    let config = format!(
        "listen on 127.0.0.1 port @PORT@\n\
         table users {{ carol = \"{uid}:{uid}:@DIR@/carol\" }}\n\
         action \"mail\" maildir \"@DIR@/carol/Maildir\" userbase <users>\n\
         match from any for domain \"example.org\" action \"mail\"\n"
    );
    let d = Daemon::start(&config, &[]);
    // The folder exists but belongs to root: the user cannot create its Maildir.
    let carol = d.dir.path().join("carol");
    std::fs::create_dir_all(&carol).expect("mkdir");
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o711));
        let _ = std::fs::set_permissions(&carol, std::fs::Permissions::from_mode(0o755));
    }
    let r = converse(
        "127.0.0.1",
        d.addr(),
        &[
            "HELO c",
            "MAIL FROM:<x@example.net>",
            "RCPT TO:<carol@example.org>",
            "DATA",
            "Subject: wait\r\n\r\nlater\r\n.",
            "QUIT",
        ],
    );
    assert!(r[5].starts_with("250 2.0.0 "), "{r:?}");
    d.wait_log_for(Duration::from_secs(20), |l| l.contains("result=TempFail"));
    assert!(mail_texts(&carol.join("Maildir/new")).is_empty());
    // The administrator fixes the permissions and asks for a new attempt.
    let _ = nix::unistd::chown(
        &carol,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(uid)),
    );
    let out = ctl(&d, "smtpctl", &["schedule", "all"], "", None);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1 envelope scheduled\n"
    );
    d.wait_log_for(Duration::from_secs(20), |l| {
        l.ends_with("result=Ok stat=Delivered")
    });
    assert_eq!(
        mail_texts(&carol.join("Maildir/new")).len(),
        1,
        "delivered exactly once"
    );
}
