//! The relay client's reply parser (protocol::client::reply): what a remote server sends is
//! outside input to the relay agent, read in chunks of whatever size the network gives.
//!
//! Checked: chunking changes neither the replies nor the error that ends them; the parser never
//! holds more than one line's cap of an unfinished line, nor more than `MAX_LINES` lines in a
//! reply; every view of a reply the agent logs or decides on (`line`, `first_line`,
//! `last_line`, `enhanced`, `extensions`) stays within its bounds.

use rsmtpd_protocol::client::reply::{LINE_MAX, MAX_LINES};
use rsmtpd_protocol::client::{ReplyError, ReplyParser, ServerReply};

use crate::input::Input;

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let chunk = usize::from(input.byte()).max(1);
    let stream = input.rest();
    let chunked = replies(stream, chunk);
    let whole = replies(stream, stream.len().max(1));
    assert_eq!(chunked, whole, "chunking changed the replies");
    for r in chunked.iter().flatten() {
        views(r);
    }
}

fn replies(stream: &[u8], chunk: usize) -> Vec<Result<ServerReply, ReplyError>> {
    let mut p = ReplyParser::new();
    let mut out = Vec::new();
    for piece in stream.chunks(chunk) {
        p.push(piece);
        while let Some(r) = p.next_reply() {
            out.push(r);
        }
    }
    out
}

fn views(r: &ServerReply) {
    assert!((200..600).contains(&r.code), "code {}", r.code);
    assert!(!r.lines.is_empty() && r.lines.len() <= MAX_LINES);
    for l in &r.lines {
        assert!(l.len() < LINE_MAX * 4, "a line of {} bytes", l.len());
        assert!(!l.chars().any(char::is_control), "control character kept");
    }
    let line = r.line();
    assert!(line.len() <= LINE_MAX * 4);
    assert!(!line.contains('\n') && !line.contains('\r'));
    let _ = (r.first_line(), r.last_line(), r.class(), r.is_positive());
    if let Some((class, subject, detail)) = r.enhanced() {
        assert!((2..=5).contains(&class) && subject <= 999 && detail <= 999);
    }
    assert_eq!(r.extensions().count(), r.lines.len() - 1);
}
