//! The line protocol of `proc-exec` filters (protocol::filter_protocol), both ways.
//!
//! What a filter writes back is outside input to the daemon: it is read here as the daemon
//! reads it, through `LineReader` in chunks of the fuzzer's size, each line parsed before and
//! after `register|ready`. The reader must never hold more than one line's cap of an unfinished
//! line, and chunking must not change the lines. What smtpd writes to a filter carries session
//! bytes (HELO names, addresses, message lines): whatever they are, each request and report
//! stays one line, so that no field can forge a line of its own.

use rsmtpd_protocol::filter_protocol::{
    self as fp, FilterMessage, LineReader, ReadLine, Register, Timestamp, MAX_LINE,
};

use crate::input::Input;

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let chunk = usize::from(input.byte()).max(1);
    let ready_at_start = input.byte() & 1 == 1;
    let stream = input.rest();
    read_back(stream, chunk, ready_at_start);
    write_out(stream);
}

/// The lines of `stream` as `LineReader` gives them when fed `chunk` bytes at a time, up to the
/// first over-long line (which ends the filter in the daemon).
fn lines(stream: &[u8], chunk: usize) -> (Vec<Vec<u8>>, bool) {
    let mut r = LineReader::new();
    let mut out = Vec::new();
    for piece in stream.chunks(chunk) {
        r.push(piece);
        loop {
            match r.next_line() {
                Some(ReadLine::Line(l)) => out.push(l),
                Some(ReadLine::TooLong) => return (out, true),
                None => break,
            }
        }
        assert!(
            r.pending() <= MAX_LINE,
            "an unfinished line of {} bytes buffered",
            r.pending()
        );
    }
    (out, false)
}

fn read_back(stream: &[u8], chunk: usize, ready_at_start: bool) {
    let (chunked, too_long) = lines(stream, chunk);
    let (whole, whole_too_long) = lines(stream, stream.len().max(1));
    assert_eq!(
        too_long, whole_too_long,
        "chunking changed the over-long verdict"
    );
    assert_eq!(chunked, whole, "chunking changed the lines");
    let mut ready = ready_at_start;
    for line in &chunked {
        match fp::parse_line(line, ready) {
            Ok(FilterMessage::Register(Register::Ready)) => ready = true,
            Ok(FilterMessage::Register(Register::Filter(i))) => {
                assert!(i < fp::PHASES.len());
            }
            Ok(_) | Err(_) => {}
        }
    }
}

fn one_line(what: &str, s: &str) {
    assert!(
        s.ends_with('\n') && s.matches('\n').count() == 1,
        "{what}: not one line: {s:?}"
    );
}

fn write_out(field: &[u8]) {
    let t = Timestamp { sec: 1, usec: 2 };
    let mut s = String::new();
    fp::filter_line(&mut s, t, "helo", 1, 2, field);
    one_line("filter line", &s);
    s.clear();
    let mut bytes = Vec::new();
    fp::data_line(&mut bytes, t, 1, 2, field);
    let line = String::from_utf8_lossy(&bytes);
    one_line("data line", &line);
    s.clear();
    fp::report_line(&mut s, t, "protocol-client", 1, field);
    one_line("report line", &s);
    let admd = String::from_utf8_lossy(field);
    let config = fp::config_lines("6.8.0p2", 300, true, false, &admd);
    // config|smtpd-version, config|smtp-session-timeout, subsystem, admd, ready.
    assert_eq!(config.matches('\n').count(), 5, "config lines: {config:?}");
}
