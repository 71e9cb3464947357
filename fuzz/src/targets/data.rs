//! The DATA reader: dot-decoding and line framing, which must not depend on how the bytes are
//! split into reads; then the header processor on the decoded lines.

use rsmtpd_protocol::data::{DataItem, DataReader};
use rsmtpd_protocol::message::{MessageOptions, MessageProcessor};

use crate::input::Input;

fn read_all(max: u64, chunks: &[&[u8]]) -> (Vec<DataItem>, u64, Vec<u8>) {
    let mut r = DataReader::new(max);
    let mut items = Vec::new();
    for c in chunks {
        r.push(c);
        while let Some(i) = r.next_item() {
            items.push(i);
        }
    }
    (items, r.size(), r.remaining().to_vec())
}

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let max = match input.byte() % 4 {
        0 => u64::MAX,
        1 => 0,
        2 => 100,
        _ => 36_700_160,
    };
    let cut = 1 + input.byte() as usize;
    let flags = input.byte();
    let body = input.rest();
    let whole = read_all(max, &[body]);
    let chunks: Vec<&[u8]> = body.chunks(cut).collect();
    assert_eq!(read_all(max, &chunks), whole, "chunking changed the result");
    if let Some(p) = whole.0.iter().position(|i| *i == DataItem::End) {
        // Nothing follows the end.
        assert_eq!(p + 1, whole.0.len());
    }
    let mut p = MessageProcessor::new(MessageOptions {
        hostname: "mx.test".into(),
        add_missing_headers: flags & 1 != 0,
        date: "Wed, 2 Dec 2026 00:00:00 +0000 (UTC)".into(),
        message_id_uid: 1,
        masquerade_from: (flags & 2 != 0).then(|| "user@mx.test".into()),
    });
    for item in &whole.0 {
        if let DataItem::Line(l) = item {
            p.line(l);
        }
    }
    let _ = p.end();
    assert_eq!(p.take_output().len() as u64, p.written());
}
