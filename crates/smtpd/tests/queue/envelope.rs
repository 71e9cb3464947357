//! The envelope file format, byte for byte OpenSMTPD 6.8's (`envelope.c`).

use std::net::IpAddr;

use rand::RngExt;
use rsmtpd::queue::envelope::{DSN_DELAY, DSN_FAILURE};
use rsmtpd::queue::{
    BounceInfo, BounceType, DeliveryType, DsnRet, Envelope, EnvelopeFlags, ParseError, SockAddr,
};
use rsmtpd_protocol::Mailaddr;

/// The real dump in shared/spec/delivery-queue-logs.md §4 (mda, 3 tempfails,
/// NOTIFY=DELAY,FAILURE, after its delay DSN).
const SAMPLE: &str = "version: 3
dispatcher: scr
type: mda
smtpname: vm
helo: client.test
hostname: localhost
errorline: \"last line for exit 75\"
sockaddr: 127.0.0.1
sender: bl@vm
rcpt: x75@vm
dest: x75@vm
ctime: 1795609943
last-try: 0
last-bounce: 1795610003
ttl: 0
retry: 3
dsn-notify: 6
esc-class: 4
esc-code: 30
mda-user: x75
";

fn sample() -> Envelope {
    Envelope {
        dispatcher: "scr".into(),
        kind: DeliveryType::Mda,
        smtpname: "vm".into(),
        helo: "client.test".into(),
        hostname: "localhost".into(),
        errorline: "\"last line for exit 75\"".into(),
        sockaddr: SockAddr::Ip("127.0.0.1".parse().unwrap()),
        sender: Mailaddr::new("bl", "vm"),
        rcpt: Mailaddr::new("x75", "vm"),
        dest: Mailaddr::new("x75", "vm"),
        ctime: 1795609943,
        last_bounce: 1795610003,
        retry: 3,
        dsn_notify: DSN_DELAY | DSN_FAILURE,
        esc_class: 4,
        esc_code: 30,
        mda_user: "x75".into(),
        ..Envelope::default()
    }
}

#[test]
fn sample_dump_is_byte_identical() {
    assert_eq!(sample().to_text(), SAMPLE);
    assert_eq!(Envelope::parse(SAMPLE).unwrap(), sample());
}

#[test]
fn every_optional_field_in_order() {
    let e = Envelope {
        dispatcher: "relay".into(),
        tag: "TAG".into(),
        kind: DeliveryType::Bounce,
        smtpname: "mx.example.org".into(),
        helo: "h".into(),
        hostname: "host.example".into(),
        username: "alice".into(),
        errorline: "exited abnormally".into(),
        sockaddr: SockAddr::Ip("2001:db8::1".parse().unwrap()),
        sender: Mailaddr::new("", ""),
        rcpt: Mailaddr::new("a", "b"),
        dest: Mailaddr::new("c", ""),
        ctime: 1,
        last_try: 2,
        last_bounce: 3,
        ttl: 604800,
        retry: 65535,
        flags: EnvelopeFlags(
            EnvelopeFlags::AUTHENTICATED | EnvelopeFlags::BOUNCE | EnvelopeFlags::INTERNAL,
        ),
        dsn_notify: 15,
        dsn_ret: Some(DsnRet::Hdrs),
        dsn_envid: "ENV123".into(),
        dsn_orcpt: Mailaddr::new("orig", "example.com"),
        esc_class: 5,
        esc_code: 0,
        // Not written for a bounce.
        mda_exec: String::new(),
        bounce: BounceInfo {
            kind: BounceType::Delayed,
            delay: 14400,
            ttl: 86400,
        },
        ..Envelope::default()
    };
    let text = "version: 3
dispatcher: relay
tag: TAG
type: bounce
smtpname: mx.example.org
helo: h
hostname: host.example
username: alice
errorline: exited abnormally
sockaddr: [2001:db8::1]
sender: @
rcpt: a@b
dest: c@
ctime: 1
last-try: 2
last-bounce: 3
ttl: 604800
retry: 65535
flags: authenticated bounce internal
dsn-notify: 15
dsn-ret: HDRS
dsn-envid: ENV123
dsn-orcpt: orig@example.com
esc-class: 5
esc-code: 0
bounce-ttl: 86400
bounce-delay: 14400
bounce-type: delayed
";
    assert_eq!(e.to_text(), text);
    assert_eq!(Envelope::parse(text).unwrap(), e);
}

#[test]
fn omissions() {
    // A failed bounce has no ttl/delay; mta has no agent fields; esc-code
    // goes with esc-class; dsn-orcpt needs both parts; no sockaddr for AF_UNSPEC.
    let mut e = Envelope {
        kind: DeliveryType::Bounce,
        esc_code: 7,
        dsn_orcpt: Mailaddr::new("x", ""),
        mda_user: "u".into(),
        ..Envelope::default()
    };
    assert_eq!(
        e.to_text(),
        "version: 3\ntype: bounce\nsender: @\nrcpt: @\ndest: @\nctime: 0\nlast-try: 0\n\
         last-bounce: 0\nttl: 0\nretry: 0\ndsn-notify: 0\nbounce-type: failed\n"
    );
    e.kind = DeliveryType::Mta;
    e.sockaddr = SockAddr::Local;
    assert!(e.to_text().contains("type: mta\n"));
    assert!(e.to_text().contains("sockaddr: local\n"));
    assert!(!e.to_text().contains("mda-user"));
    assert!(!e.to_text().contains("bounce-"));
}

#[test]
fn ipv6_text_as_glibc() {
    let mut e = Envelope::default();
    for (addr, text) in [
        ("::1", "[::1]"),
        ("::ffff:10.0.0.1", "[::ffff:10.0.0.1]"),
        ("::1.2.3.4", "[::1.2.3.4]"),
        ("fe80::1:0:0:2", "[fe80::1:0:0:2]"),
    ] {
        e.sockaddr = SockAddr::Ip(addr.parse::<IpAddr>().unwrap());
        assert!(
            e.to_text().contains(&format!("sockaddr: {text}\n")),
            "{addr}"
        );
        let back = Envelope::parse(&e.to_text()).unwrap();
        assert_eq!(back.sockaddr, e.sockaddr);
    }
}

#[test]
fn newline_in_a_value_cannot_forge_fields() {
    let e = Envelope {
        helo: "x\nmda-exec: /bin/sh".into(),
        ..Envelope::default()
    };
    let text = e.to_text();
    assert!(text.contains("helo: x mda-exec: /bin/sh\n"));
    assert_eq!(Envelope::parse(&text).unwrap().mda_exec, "");
}

#[test]
fn parse_quirks_of_envelope_load_buffer() {
    let ok = |t: &str| Envelope::parse(t).unwrap();
    let base = "version: 3\n";
    // Blanks around the colon, any case in keys and enum values, last duplicate wins.
    let e = ok("version:3\nHELO :  a b \ntype: MTA\nhelo: c\nCTIME: +5\n");
    assert_eq!(e.helo, "c");
    assert_eq!(e.kind, DeliveryType::Mta);
    assert_eq!(e.ctime, 5);
    let e = ok("version: 3\nhelo:  a b \n");
    assert_eq!(e.helo, "a b ");
    // Old spellings still read.
    let e = ok(&format!(
        "{base}type: bounce\nbounce-type: warn\nflags: authenticated,enqueued|internal\nsockaddr: IPv6:::1\ndsn-ret: full\n"
    ));
    assert_eq!(e.bounce.kind, BounceType::Delayed);
    assert_eq!(
        e.flags.0,
        EnvelopeFlags::AUTHENTICATED | EnvelopeFlags::INTERNAL
    );
    assert_eq!(e.sockaddr, SockAddr::Ip("::1".parse().unwrap()));
    assert_eq!(e.dsn_ret, Some(DsnRet::Full));
    // Address split at the last @.
    assert_eq!(
        ok(&format!("{base}rcpt: a@b@c\n")).rcpt,
        Mailaddr::new("a@b", "c")
    );
    assert_eq!(
        ok(&format!("{base}rcpt: nobody\n")).rcpt,
        Mailaddr::new("nobody", "")
    );

    let err = |t: &str| Envelope::parse(t).unwrap_err();
    assert_eq!(err(""), ParseError::NoVersion);
    assert_eq!(err("version: 3"), ParseError::Syntax); // no final newline
    assert_eq!(err("version: 3\n\n"), ParseError::Syntax); // empty line
    assert_eq!(err("version 3\n"), ParseError::Syntax);
    assert_eq!(err("ver_sion: 3\n"), ParseError::Syntax);
    assert_eq!(err("Version: 3\n"), ParseError::NoVersion);
    assert_eq!(err("version: 2\n"), ParseError::BadVersion("2".into()));
    assert_eq!(err("version: 3 \n"), ParseError::BadVersion("3 ".into()));
    assert_eq!(err("version: 3\r\n"), ParseError::BadVersion("3\r".into()));
    for bad in [
        "nonsense: 1",
        "ttl: -1",
        "ttl: 1x",
        "ttl: ",
        "retry: 65536",
        "dsn-notify: 256",
        "esc-class: -1",
        "type: lmtp",
        "flags: authenticated  bounce",
        "flags: ",
        "sockaddr: 01.2.3.4",
        "sockaddr: [1.2.3.4]",
        "sockaddr: ",
        "bounce-type: sent",
        "dsn-ret: none",
    ] {
        let key = bad.split(':').next().unwrap();
        assert_eq!(
            err(&format!("{base}{bad}\n")),
            ParseError::InvalidField(key.into()),
            "{bad}"
        );
    }
    assert_eq!(err("version: 3\nhelo: a\0b\n"), ParseError::Syntax);
}

fn word(rng: &mut Rng, alphabet: &[u8], max: usize) -> String {
    let n = rng.random_range(0..=max);
    let mut s: String = (0..n)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect();
    // Leading blanks are eaten by the reader after the colon, in C too.
    while s.starts_with([' ', '\t']) {
        s.remove(0);
    }
    s
}

type Rng = rand::rngs::ThreadRng;

const ATOM: &[u8] = b"abcxyz0189.-+=_!#$%&'*/?^`{|}~";

fn text(rng: &mut Rng) -> String {
    const TEXT: &[u8] = b"abcXYZ019 \t.-_\"'()[]:;=/\\!#$%&*+?^`{|}~@<>,";
    let s = word(rng, TEXT, 40);
    if rng.random_bool(0.1) {
        format!("{s}\u{e9}")
    } else {
        s
    }
}

fn addr(rng: &mut Rng) -> Mailaddr {
    Mailaddr::new(word(rng, ATOM, 12), word(rng, b"abc.-[]:19", 12))
}

fn time(rng: &mut Rng) -> i64 {
    match rng.random_range(0..3) {
        0 => 0,
        1 => rng.random_range(0..2_000_000_000i64),
        _ => rng.random_range(0..i64::MAX),
    }
}

fn random_envelope(rng: &mut Rng) -> Envelope {
    let kind = match rng.random_range(0..3) {
        0 => DeliveryType::Mda,
        1 => DeliveryType::Mta,
        _ => DeliveryType::Bounce,
    };
    let mut e = Envelope {
        dispatcher: text(rng),
        tag: text(rng),
        kind,
        smtpname: text(rng),
        helo: text(rng),
        hostname: text(rng),
        username: text(rng),
        errorline: text(rng),
        sockaddr: match rng.random_range(0..4) {
            0 => SockAddr::Unspec,
            1 => SockAddr::Local,
            2 => SockAddr::Ip(IpAddr::from(rng.random::<[u8; 4]>())),
            _ => SockAddr::Ip(IpAddr::from(rng.random::<[u8; 16]>())),
        },
        sender: addr(rng),
        rcpt: addr(rng),
        dest: addr(rng),
        ctime: time(rng),
        last_try: time(rng),
        last_bounce: time(rng),
        ttl: time(rng),
        retry: rng.random(),
        flags: EnvelopeFlags(rng.random_range(0..8)),
        dsn_notify: rng.random(),
        dsn_ret: match rng.random_range(0..3) {
            0 => None,
            1 => Some(DsnRet::Full),
            _ => Some(DsnRet::Hdrs),
        },
        dsn_envid: text(rng),
        dsn_orcpt: Mailaddr::default(),
        esc_class: rng.random(),
        esc_code: 0,
        ..Envelope::default()
    };
    if rng.random_bool(0.5) {
        e.dsn_orcpt = Mailaddr::new(format!("o{}", word(rng, ATOM, 5)), "d.example");
    }
    if e.esc_class != 0 {
        e.esc_code = rng.random();
    }
    match e.kind {
        DeliveryType::Mda => {
            e.mda_exec = text(rng);
            e.mda_subaddress = text(rng);
            e.mda_user = text(rng);
        }
        DeliveryType::Mta => {}
        DeliveryType::Bounce => {
            e.bounce.kind = match rng.random_range(0..3) {
                0 => BounceType::Failed,
                1 => BounceType::Delayed,
                _ => BounceType::Delivered,
            };
            if e.bounce.kind == BounceType::Delayed {
                e.bounce.delay = time(rng);
                e.bounce.ttl = time(rng);
            }
        }
    }
    e
}

/// Property: parse(to_text(e)) == e for every envelope the format can hold
/// (no value starting with a blank, none holding a newline or NUL, no `@`
/// in a local part: the same limits as OpenSMTPD's).
#[test]
fn round_trip_random_envelopes() {
    let mut rng = rand::rng();
    for _ in 0..20_000 {
        let e = random_envelope(&mut rng);
        let text = e.to_text();
        match Envelope::parse(&text) {
            Ok(back) => assert_eq!(back, e, "{text}"),
            Err(err) => panic!("{err}: {text}"),
        }
    }
}

/// A `sockaddr:` with a character across byte 5 (spool files are written by two programs, and
/// may be damaged) is read without a panic: it is no IPv6 address.
#[test]
fn a_non_ascii_sockaddr_is_no_panic() {
    for v in [
        "abcd\u{20ac}",
        "\u{20ac}\u{20ac}",
        "IPv6\u{20ac}",
        "[\u{20ac}]",
    ] {
        let r = Envelope::parse(&format!("version: 3\nsockaddr: {v}\n"));
        if let Ok(e) = r {
            assert!(
                !matches!(e.sockaddr, SockAddr::Ip(_)),
                "{v}: {:?}",
                e.sockaddr
            );
        }
    }
}
