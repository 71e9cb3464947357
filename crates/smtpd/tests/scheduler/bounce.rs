//! The DSN composer against what OpenSMTPD 6.8.0p2 delivered (Maildir copies
//! recorded from OpenSMTPD 6.8.0p2 (queue.c, mda.c) and by running
//! the real smtpd with failing mda actions).

use rsmtpd::queue::{BounceInfo, BounceType, DeliveryType, DsnRet, Envelope, EvpId};
use rsmtpd::scheduler::bounce::{self, as_received, bounce_duration, compose, Report};
use rsmtpd_protocol::Mailaddr;

fn bounce_env(evpid: u64, dest: &str, errorline: &str, class: u8, code: u8) -> Envelope {
    Envelope {
        id: EvpId(evpid),
        dispatcher: "local".into(),
        kind: DeliveryType::Bounce,
        smtpname: "vm".into(),
        sender: Mailaddr::new("al", "vm"),
        rcpt: Mailaddr::new(dest, "vm"),
        dest: Mailaddr::new(dest, "vm"),
        errorline: errorline.into(),
        esc_class: class,
        esc_code: code,
        ttl: bounce::BOUNCE_TTL,
        ..Envelope::default()
    }
}

const MESSAGE: &str = "Received: from client.test (localhost [127.0.0.1])\n\
\tby vm (OpenSMTPD) with ESMTP id d79344ca\n\
\tfor <x1@vm>;\n\
\tWed, 25 Nov 2026 12:31:11 +0000 (UTC)\n\
Subject: test\n\
Date: Wed, 25 Nov 2026 12:31:11 +0000 (UTC)\n\
Message-ID: <8bde8d04ed0e4bd8@vm>\n\
\n\
hello\n";

const DATE: &str = "Wed, 25 Nov 2026 12:31:12 +0000 (UTC)";

/// The Maildir copy of the real failed DSN from `Subject:` on, without the
/// `Message-ID:` the receiving smtpd appended.
const FAILED: &str = "Subject: Delivery status notification: failed
From: Mailer Daemon <MAILER-DAEMON@vm>
To: al@vm
Date: Wed, 25 Nov 2026 12:31:12 +0000 (UTC)
MIME-Version: 1.0
Content-Type: multipart/mixed;boundary=\"3540128697115687287/vm\"

This is a MIME-encapsulated message.

--3540128697115687287/vm
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

    Hi!

    This is the MAILER-DAEMON, please DO NOT REPLY to this email.

    An error has occurred while attempting to deliver a message for
    the following list of recipients:

x1@vm: \"last line for exit 1\"

    Below is a copy of the original message:

--3540128697115687287/vm
Content-Description: Delivery Report
Content-Type: message/delivery-status

Reporting-MTA: dns; vm

Final-Recipient: rfc822; x1@vm
Action: failed
Status: 5.3.0

--3540128697115687287/vm
Content-Description: Message headers
Content-Type: text/rfc822-headers

Received: from client.test (localhost [127.0.0.1])
\tby vm (OpenSMTPD) with ESMTP id d79344ca
\tfor <x1@vm>;
\tWed, 25 Nov 2026 12:31:11 +0000 (UTC)
Subject: test
Date: Wed, 25 Nov 2026 12:31:11 +0000 (UTC)
Message-ID: <8bde8d04ed0e4bd8@vm>

hello

--3540128697115687287/vm--
";

#[test]
fn failed_dsn_matches_opensmtpd() {
    let e = bounce_env(0xd79344ca_00000001, "x1", "\"last line for exit 1\"", 5, 30);
    let mut r = Report::new(&e);
    r.add(&e);
    let wire = compose(&r, MESSAGE.as_bytes(), DATE, 3540128697115687287);
    // on the wire every line ends with CRLF
    let text = String::from_utf8(wire.clone()).unwrap();
    assert!(text.split_inclusive('\n').all(|l| l.ends_with("\r\n")));
    assert!(text.ends_with("\r\n--3540128697115687287/vm--\r\n"));
    assert_eq!(String::from_utf8(as_received(&wire)).unwrap(), FAILED);
}

#[test]
fn delayed_dsn_texts() {
    // a delay warning at warn-interval 1m for two tempfailed recipients
    let mut a = bounce_env(
        0x898840a8_00000001,
        "x71",
        "\"last line for exit 71\"",
        4,
        30,
    );
    a.bounce = BounceInfo {
        kind: BounceType::Delayed,
        delay: 60,
        ttl: 120,
    };
    let mut b = a.clone();
    b.id = EvpId(0x898840a8_00000002);
    b.dest = Mailaddr::new("x75", "vm");
    b.errorline = "\"last line for exit 75\"".into();
    let mut r = Report::new(&a);
    assert_eq!(r.key, bounce::ReportKey::of(&b));
    r.add(&a);
    r.add(&b);
    let got = String::from_utf8(as_received(&compose(&r, MESSAGE.as_bytes(), DATE, 42))).unwrap();
    let expect_notice = "    A message is delayed for more than 1 minute for the following
    list of recipients:

x71@vm: \"last line for exit 71\"
x75@vm: \"last line for exit 75\"

    Please note that this is only a temporary failure report.
    The message is kept in the queue for up to 7 days.
    You DO NOT NEED to re-send the message to these recipients.

    Below is a copy of the original message:
";
    assert!(got.contains(expect_notice), "{}", got);
    assert!(got.starts_with("Subject: Delivery status notification: delayed\n"));
    assert!(got.contains("boundary=\"              42/vm\""));
    assert!(got.contains(
        "Final-Recipient: rfc822; x71@vm\nAction: delayed\nStatus: 4.3.0\n\n\
         Final-Recipient: rfc822; x75@vm\nAction: delayed\nStatus: 4.3.0\n\n--"
    ));
}

#[test]
fn expiry_gives_a_delayed_dsn_of_zero_seconds() {
    // queue_bounce at expiry: bounce-type failed, delay 0, but esc-class 4
    let e = bounce_env(1, "x75", "Envelope expired", 4, 47);
    let mut r = Report::new(&e);
    r.add(&e);
    let got = String::from_utf8(as_received(&compose(&r, MESSAGE.as_bytes(), DATE, 1))).unwrap();
    assert!(got.starts_with("Subject: Delivery status notification: delayed\n"));
    assert!(got.contains("    A message is delayed for more than 0 seconds for the following\n"));
    assert!(got.contains("x75@vm: Envelope expired\n"));
    assert!(got.contains("Action: delayed\nStatus: 4.4.7\n"));
}

#[test]
fn success_dsn_with_ret_hdrs_returns_headers_only() {
    let mut e = bounce_env(1, "x0", "", 2, 0);
    e.dsn_ret = Some(DsnRet::Hdrs);
    let mut r = Report::new(&e);
    r.add(&e);
    let wire = String::from_utf8(compose(&r, MESSAGE.as_bytes(), DATE, 7)).unwrap();
    assert!(wire.contains(
        "    Your message was successfully delivered to these recipients.\r\n\r\nx0@vm: \r\n\r\n"
    ));
    assert!(wire.contains("Action: delivered\r\nStatus: 2.0.0\r\n"));
    assert!(wire.ends_with("Message-ID: <8bde8d04ed0e4bd8@vm>\r\n\r\n--               7/vm--\r\n"));
    // RET=FULL (or none): the body too
    e.dsn_ret = Some(DsnRet::Full);
    let mut r = Report::new(&e);
    r.add(&e);
    let wire = String::from_utf8(compose(&r, MESSAGE.as_bytes(), DATE, 7)).unwrap();
    assert!(wire.ends_with("\r\nhello\r\n\r\n--               7/vm--\r\n"));
}

#[test]
fn dot_stuffing_quirk_of_bounce_c() {
    let e = bounce_env(1, "x1", "x", 5, 30);
    let mut r = Report::new(&e);
    r.add(&e);
    let msg = b"Subject: t\n\n.leading dot\n.\nlast";
    let wire = compose(&r, msg, DATE, 1);
    let s = String::from_utf8(wire.clone()).unwrap();
    // only a lone dot is doubled; the last line loses its last byte
    assert!(s.contains("\r\n.leading dot\r\n..\r\nlas\r\n\r\n--"));
    let rec = String::from_utf8(as_received(&wire)).unwrap();
    assert!(rec.contains("\nleading dot\n.\nlas\n"));
}

#[test]
fn report_lines_and_durations() {
    let e = bounce_env(1, "x1", "550 5.1.1 no such user", 5, 11);
    assert_eq!(
        bounce::ReportLine::of(&e).report,
        "x1@vm: 550 5.1.1 no such user"
    );
    let e = bounce_env(1, "x1", "100 info", 5, 11);
    assert_eq!(bounce::ReportLine::of(&e).report, "x1@vm: info");
    assert_eq!(bounce_duration(1), "1 second");
    assert_eq!(bounce_duration(59), "59 seconds");
    assert_eq!(bounce_duration(60), "1 minute");
    assert_eq!(bounce_duration(3600 * 4), "4 hours");
    assert_eq!(bounce_duration(86400 * 7), "7 days");
    assert_eq!(bounce_duration(86400), "1 day");
    assert_eq!(bounce::esc_text(4, 47), "4.4.7");
}
