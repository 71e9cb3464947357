//! The table protocol of external backends (protocol::table_protocol): what a `table-BACKEND`
//! process writes back is outside input to the daemon (a backend may be buggy, or talk to a
//! database an attacker filled). Read as `tableproc.rs` reads it: a `Decoder` fed in chunks,
//! each frame parsed as the answer to OPEN, CHECK and LOOKUP. And the requests we encode from
//! keys that come from sessions: each is one frame that decodes back to itself.

use rsmtpd_protocol::table_protocol::{self as proto, Decoder, Frame, Service, HEADER_SIZE};

use crate::input::Input;

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let chunk = usize::from(input.byte()).max(1);
    let service = SERVICES[usize::from(input.byte()) % SERVICES.len()];
    let stream = input.rest();
    let chunked = frames(stream, chunk);
    let whole = frames(stream, stream.len().max(1));
    assert_eq!(chunked, whole, "chunking changed the frames");
    for f in chunked.0.iter() {
        let _ = proto::parse_open(f);
        let _ = proto::parse_check(f);
        let _ = proto::parse_lookup(f);
    }
    requests(service, stream);
}

const SERVICES: [Service; 12] = [
    Service::Alias,
    Service::Domain,
    Service::Credentials,
    Service::Netaddr,
    Service::Userinfo,
    Service::Source,
    Service::Mailaddr,
    Service::Addrname,
    Service::Mailaddrmap,
    Service::Relayhost,
    Service::String,
    Service::Regex,
];

/// The frames, and whether the stream broke the protocol.
fn frames(stream: &[u8], chunk: usize) -> (Vec<Frame>, bool) {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    for piece in stream.chunks(chunk) {
        d.feed(piece);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => {
                    assert!(f.data.len() + HEADER_SIZE <= proto::MAX_FRAME);
                    out.push(f)
                }
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
        // What is held: less than one whole frame (the one under way).
        assert!(d.pending() < proto::MAX_FRAME, "{} bytes held", d.pending());
        let _ = d.wanted();
    }
    (out, false)
}

fn requests(service: Service, bytes: &[u8]) {
    let key = String::from_utf8_lossy(bytes);
    for made in [
        proto::check(service, &key, 7),
        proto::lookup(service, &key, 7),
    ] {
        let Ok(frame) = made else {
            assert!(key.len() > proto::MAX_KEY || key.contains('\0'));
            continue;
        };
        let mut d = Decoder::new();
        d.feed(&frame);
        match d.next_frame() {
            Ok(Some(f)) => {
                assert_eq!(f.pid, 7);
                assert!(f.data.ends_with(&[0]));
            }
            other => panic!("our own request does not decode: {other:?}"),
        }
        assert_eq!(d.pending(), 0);
    }
    let open = proto::open(&key, 1);
    let mut d = Decoder::new();
    d.feed(&open);
    assert!(matches!(d.next_frame(), Ok(Some(_))), "our own OPEN");
}
