//! Property tests: nothing panics on arbitrary bytes, and DATA reading does
//! not depend on how the input is split into reads.

use proptest::prelude::*;
use rsmtpd_protocol::address::{parse_path, valid_domainpart, valid_localpart};
use rsmtpd_protocol::command::{parse_mail_from, parse_rcpt_to, Command, Notify};
use rsmtpd_protocol::data::{DataItem, DataReader};
use rsmtpd_protocol::message::{MessageOptions, MessageProcessor};
use rsmtpd_protocol::received::PeerAddr;
use rsmtpd_protocol::server::*;

fn read_all(chunks: &[&[u8]]) -> (Vec<DataItem>, u64, Vec<u8>) {
    let mut r = DataReader::new(1000);
    let mut items = Vec::new();
    for c in chunks {
        r.push(c);
        while let Some(i) = r.next_item() {
            items.push(i);
        }
    }
    (items, r.size(), r.remaining().to_vec())
}

/// Bytes biased towards the characters that matter for framing.
fn smtpish() -> impl Strategy<Value = Vec<u8>> {
    // Mapping plain bytes is much cheaper to generate than a union per byte.
    prop::collection::vec(any::<u8>(), 0..300).prop_map(|v| {
        v.into_iter()
            .map(|b| match b % 16 {
                0 | 1 => b'\r',
                2 | 3 => b'\n',
                4 | 5 => b'.',
                6 => 0,
                7 => b':',
                8 => b' ',
                9 => b'a',
                _ => b,
            })
            .collect()
    })
}

fn split_at_points(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.sort_unstable();
    let mut out = Vec::new();
    let mut last = 0;
    for p in points {
        out.push(data[last..p].to_vec());
        last = p;
    }
    out.push(data[last..].to_vec());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn data_reader_is_chunking_invariant(data in smtpish(), cuts in prop::collection::vec(any::<usize>(), 0..20)) {
        let whole = read_all(&[&data]);
        let parts = split_at_points(&data, &cuts);
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(read_all(&refs), whole.clone());
        let bytes: Vec<Vec<u8>> = data.iter().map(|b| vec![*b]).collect();
        let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(read_all(&refs), whole);
    }

    #[test]
    fn data_end_only_after_crlf_dot_crlf(data in smtpish()) {
        let (items, _, _) = read_all(&[&data]);
        if items.contains(&DataItem::End) {
            let full = [b"\r\n".as_slice(), &data].concat();
            prop_assert!(full.windows(5).any(|w| w == b"\r\n.\r\n"));
        }
    }

    #[test]
    fn parsers_never_panic(line in smtpish()) {
        let c = Command::parse(&line);
        let args = c.args.unwrap_or_default();
        let _ = parse_mail_from(&args, "mx.test", true);
        let mut n = Notify::default();
        let _ = parse_rcpt_to(&args, "mx.test", true, &mut n);
        let _ = parse_path(&line, true, "mx.test");
        let _ = valid_domainpart(&line);
        let _ = valid_localpart(&line);
        let _ = rsmtpd_protocol::util::b64_pton(&line, 10);
        let _ = rsmtpd_protocol::util::strnvis(&line, 64, true, false);
    }

    #[test]
    fn message_processor_never_panics(lines in prop::collection::vec(smtpish(), 0..20)) {
        let mut p = MessageProcessor::new(MessageOptions {
            hostname: "mx.test".into(),
            add_missing_headers: true,
            date: "d".into(),
            message_id_uid: 1,
            masquerade_from: Some("a@b".into()),
        });
        for l in &lines {
            let l: Vec<u8> = l.iter().copied().filter(|&c| c != 0 && c != b'\n').collect();
            p.line(&l);
        }
        let _ = p.end();
        prop_assert_eq!(p.take_output().len() as u64, p.written());
    }

    #[test]
    fn session_never_panics(chunks in prop::collection::vec(
        prop_oneof![
            smtpish(),
            Just(b"EHLO a\r\n".to_vec()),
            Just(b"MAIL FROM:<a@b>\r\n".to_vec()),
            Just(b"RCPT TO:<c@d>\r\n".to_vec()),
            Just(b"DATA\r\n".to_vec()),
            Just(b"\r\n.\r\n".to_vec()),
            Just(b"AUTH PLAIN\r\n".to_vec()),
            Just(b"STARTTLS\r\n".to_vec()),
            Just(b"RSET\r\n".to_vec()),
        ], 0..20), filtered in any::<bool>(), tls in any::<bool>(), filter_data in any::<bool>()) {
        let cfg = SessionConfig {
            hostname: "mx.test".into(),
            filtered,
            filter_data,
            trace: filter_data,
            starttls: tls,
            auth: tls,
            ..SessionConfig::default()
        };
        let conn = ConnectionInfo {
            peer: PeerAddr::Local,
            rdns: "localhost".into(),
            smtpname: None,
            local_enqueue: false,
        };
        let mut s = Session::new(cfg, conn);
        for c in chunks {
            drive(&mut s);
            if s.wants_read() {
                s.receive(&c);
            }
        }
        drive(&mut s);
    }
}

fn drive(s: &mut Session) {
    let mut n = 0;
    while let Some(ev) = s.poll_event() {
        n += 1;
        assert!(n < 100_000);
        match ev {
            Event::StartTls => {
                let _ = s.tls_established(rsmtpd_protocol::received::TlsInfo {
                    version: "TLSv1.3".into(),
                    cipher: "X".into(),
                    bits: 256,
                    peer_cert: rsmtpd_protocol::received::PeerCert::None,
                });
            }
            // An empty data filter chain: every line comes back as it went.
            Event::FilterData(l) => assert!(s.filtered_line(&l).is_ok()),
            Event::FilterDataEnd => assert!(s.filtered_end().is_ok()),
            Event::Request(r) => {
                let res = match r {
                    Request::Filter { .. } => s.filter_result(FilterDecision::Proceed),
                    Request::CheckSender { .. } => s.sender_result(LookupResult::Ok),
                    Request::CreateMessage => s.message_created(Ok(7)),
                    Request::CheckRecipient { .. } => s.recipient_result(RecipientResult::Accepted),
                    Request::OpenMessage { .. } => s.message_opened(Ok(MessageOpened {
                        date: "d".into(),
                        message_id_uid: 1,
                    })),
                    Request::CommitMessage { .. } => s.commit_result(Ok(())),
                    Request::Authenticate { .. } => s.auth_result(LookupResult::PermFail),
                };
                assert!(res.is_ok());
            }
            _ => {}
        }
    }
}
