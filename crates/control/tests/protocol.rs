use proptest::prelude::*;
use rsmtpd_control::map::{self, MapKind};
use rsmtpd_control::offline;
use rsmtpd_control::*;

fn payload(frame: &[u8]) -> &[u8] {
    let n = frame_len([frame[0], frame[1], frame[2], frame[3]]).unwrap();
    assert_eq!(n, frame.len() - 4);
    &frame[4..]
}

fn requests() -> Vec<Request> {
    let ts = [
        Target::Envelope(0x2dbcfb8a44947163),
        Target::Message(0x2dbcfb8a),
        Target::All,
    ];
    let mut v = vec![
        Request::Enqueue,
        Request::ListEnvelopes {
            msgid: None,
            from: 0,
        },
        Request::ListEnvelopes {
            msgid: Some(7),
            from: u64::MAX,
        },
        Request::ShowStatus,
        Request::ShowStats,
        Request::GetDigest,
        Request::ResumeRoute(12),
        Request::MtaBlock {
            block: true,
            addr: "127.0.0.1".into(),
            domain: "example.org".into(),
        },
        Request::Log(LogLevel::Brief),
        Request::Log(LogLevel::Verbose),
        Request::Trace {
            enable: false,
            name: "smtp".into(),
        },
        Request::Profile {
            enable: true,
            name: "imsg".into(),
        },
        Request::UpdateTable("aliases".into()),
    ];
    for t in ts {
        v.extend([
            Request::Schedule(t),
            Request::Remove(t),
            Request::PauseEnvelope(t),
            Request::ResumeEnvelope(t),
            Request::Discover(t),
        ]);
    }
    for s in [Subsystem::Mda, Subsystem::Mta, Subsystem::Smtp] {
        v.push(Request::Pause(s));
        v.push(Request::Resume(s));
    }
    for w in [
        ShowWhat::Hosts,
        ShowWhat::Relays,
        ShowWhat::Routes,
        ShowWhat::Hoststats,
        ShowWhat::MtaBlock,
    ] {
        v.push(Request::Show(w));
    }
    v
}

fn envelope() -> EnvelopeInfo {
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
        state: RunState::Pending {
            nexttry: 1795606900,
        },
        errorline: "".into(),
    }
}

fn responses() -> Vec<Response> {
    vec![
        Response::Ok,
        Response::Fail(None),
        Response::Fail(Some("no such table".into())),
        Response::Count(3),
        Response::Envelopes(vec![]),
        Response::Envelopes(vec![
            envelope(),
            EnvelopeInfo {
                state: RunState::Inflight,
                ..envelope()
            },
        ]),
        Response::Status(Status {
            mda_paused: true,
            mta_paused: false,
            smtp_paused: true,
        }),
        Response::Stats {
            started: 100,
            entries: vec![
                ("queue.bounce".into(), StatValue::Counter(2)),
                ("x".into(), StatValue::Timestamp(5)),
            ],
        },
        Response::Digest(Digest {
            clt_connect: 4,
            dlv_loop: 9,
            ..Digest::default()
        }),
        Response::Lines(vec!["a".into(), "".into()]),
    ]
}

#[test]
fn requests_round_trip() {
    for r in requests() {
        let f = r.encode();
        assert_eq!(Request::decode(payload(&f)), Ok(r.clone()), "{r:?}");
        // every strict prefix is refused, never a panic
        for n in 0..f.len() - 4 {
            assert!(Request::decode(&payload(&f)[..n]).is_err());
        }
        let mut longer = payload(&f).to_vec();
        longer.push(0);
        assert_eq!(Request::decode(&longer), Err(DecodeError::Trailing));
    }
}

#[test]
fn responses_round_trip() {
    for r in responses() {
        let f = r.encode();
        assert_eq!(Response::decode(payload(&f)), Ok(r.clone()), "{r:?}");
        for n in 0..f.len() - 4 {
            assert!(Response::decode(&payload(&f)[..n]).is_err());
        }
    }
}

#[test]
fn version_is_checked() {
    let f = Request::ShowStatus.encode();
    let mut p = payload(&f).to_vec();
    p[0] = 2;
    assert_eq!(Request::decode(&p), Err(DecodeError::Version(2)));
    assert_eq!(payload_version(&p), Some(2));
}

#[test]
fn frames_over_a_stream() {
    let mut buf = Vec::new();
    write_frame(&mut buf, &Request::Enqueue.encode()).unwrap();
    buf.extend_from_slice(b"220 banner\r\n");
    let mut r = &buf[..];
    let p = read_frame(&mut r).unwrap().unwrap();
    assert_eq!(Request::decode(&p), Ok(Request::Enqueue));
    // the frame reader took nothing of the SMTP that follows
    assert_eq!(r, b"220 banner\r\n");
    let mut empty: &[u8] = &[];
    assert!(read_frame(&mut empty).unwrap().is_none());
    let mut huge: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1];
    assert!(read_frame(&mut huge).is_err());
}

#[test]
fn permissions_as_control_c() {
    for r in requests() {
        assert!(r.allowed_for(0));
        assert_eq!(r.allowed_for(1000), r == Request::Enqueue, "{r:?}");
    }
}

#[test]
fn targets() {
    assert!(Target::Message(0x2dbcfb8a).matches(0x2dbcfb8a44947163));
    assert!(!Target::Message(0x2dbcfb8b).matches(0x2dbcfb8a44947163));
    assert!(Target::All.matches(1));
}

proptest! {
    #[test]
    fn any_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Request::decode(&data);
        let _ = Response::decode(&data);
        let _ = map::read_map(&data);
        let _ = offline::read_offline(&data);
        let mut r = &data[..];
        let _ = read_frame(&mut r);
    }

    #[test]
    fn mutated_frames_never_panic(i in 0usize..64, b in any::<u8>(), which in 0usize..10) {
        let f = responses()[which].encode();
        let mut p = f[4..].to_vec();
        let i = i % p.len();
        p[i] = b;
        let _ = Response::decode(&p);
        let mut m = map::write_map(MapKind::Plain, &[("a".into(), Some("b".into())), ("c".into(), Some("d".into()))]);
        let j = i % m.len();
        m[j] = b;
        let _ = map::read_map(&m);
    }

    #[test]
    fn strings_round_trip(name in ".*", addr in ".*") {
        let r = Request::MtaBlock { block: false, addr: addr.clone(), domain: name.clone() };
        let f = r.encode();
        prop_assert_eq!(Request::decode(&f[4..]), Ok(r));
        let entries = vec![(name.to_lowercase(), Some(addr))];
        let m = map::read_map(&map::write_map(MapKind::Plain, &entries)).unwrap();
        prop_assert_eq!(m.entries, entries);
    }
}

#[test]
fn makemap_source_and_file() {
    let src =
        "# aliases\nRoot: alice, bob\n\nPostmaster:\troot # admin\nlong: a,\\\n b\nhash: a\\#b\n";
    let e = map::parse_source(src, MapKind::Aliases).unwrap();
    assert_eq!(
        e,
        vec![
            ("root".into(), Some("alice, bob".into())),
            ("postmaster".into(), Some("root ".into())),
            ("long".into(), Some("a, b".into())),
            ("hash".into(), Some("a#b".into())),
        ]
    );
    let bytes = map::write_map(MapKind::Aliases, &e);
    assert!(bytes.starts_with(b"RSMTPD-MAP\n\x01\x01\x00\x00\x00\x04"));
    let m = map::read_map(&bytes).unwrap();
    assert_eq!(m.kind, MapKind::Aliases);
    assert_eq!(m.get("root"), Some(Some("alice, bob")));
    assert_eq!(m.get("nobody"), None);
    assert_eq!(m.entries.len(), 4);

    let set = map::parse_source("Example.org\n  b.org\n", MapKind::Set).unwrap();
    let m = map::read_map(&map::write_map(MapKind::Set, &set)).unwrap();
    assert_eq!(m.get("example.org"), Some(None));
    assert_eq!(m.get("b.org"), Some(None));
}

#[test]
fn makemap_source_errors() {
    let e = map::parse_source("a b\nA c\n", MapKind::Plain).unwrap_err();
    assert_eq!(e.message("/etc/x"), "/etc/x:2: duplicate entry for a");
    let e = map::parse_source("ok v\nlonely\n", MapKind::Plain).unwrap_err();
    assert_eq!(e.message("f"), "f:2: invalid entry");
    let e = map::parse_source("key:   \n", MapKind::Plain).unwrap_err();
    assert_eq!(e.message("f"), "f:1: invalid entry");
    let e = map::parse_source("k a,,b\n", MapKind::Aliases).unwrap_err();
    assert_eq!(e.message("f"), "f:1: invalid entry");
}

#[test]
fn offline_file_format() {
    let args: Vec<String> = vec!["-F".into(), "Alice A".into(), "root".into()];
    let f = offline::write_offline(&args, b"Subject: hi\n\nbody\n");
    assert_eq!(f, b"-F|Alice A|root\nSubject: hi\n\nbody\n");
    let (a, m) = offline::read_offline(&f).unwrap();
    assert_eq!(a, args);
    assert_eq!(m, b"Subject: hi\n\nbody\n");
    assert_eq!(offline::illegal_argument(&["a|b".into()]), Some("a|b"));
    assert_eq!(offline::illegal_argument(&args), None);
}
