//! What mda.c does to every local delivery before the agent sees it: the loop check on
//! `Delivered-To:` and the `Return-Path:`/`Delivered-To:` lines put before the queued message.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

use rsmtpd_protocol::address::Mailaddr;

/// `user@domain`, or `""` for the null address (OpenSMTPD's `mailaddr_to_text`).
pub fn addr_text(a: &Mailaddr) -> String {
    if a.user.is_empty() && a.domain.is_empty() {
        String::new()
    } else {
        format!("{}@{}", a.user, a.domain)
    }
}

/// The lines mda.c writes first: `Return-Path: <sender>` (not for the null sender) and
/// `Delivered-To: <rcpt, or dest when there is no rcpt>`.
pub fn delivery_headers(sender: &Mailaddr, rcpt: &Mailaddr, dest: &Mailaddr) -> Vec<u8> {
    let s = addr_text(sender);
    let r = addr_text(rcpt);
    let to = if r.is_empty() { addr_text(dest) } else { r };
    if s.is_empty() {
        format!("Delivered-To: {to}\n").into_bytes()
    } else {
        format!("Return-Path: <{s}>\nDelivered-To: {to}\n").into_bytes()
    }
}

/// `mda_check_loop()`: within the header block (up to the first line that has no `:` and does
/// not start with white space), a line `Delivered-To: <dest>` (case-insensitive) is a loop.
pub fn check_loop(file: &mut File, dest: &str) -> io::Result<bool> {
    let mut found = false;
    {
        let mut r = BufReader::new(&mut *file);
        let mut line = Vec::new();
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            // C string semantics: the line ends at a NUL.
            if let Some(z) = line.iter().position(|&c| c == 0) {
                line.truncate(z);
            }
            let starts_space = line.first().is_some_and(|c| c.is_ascii_whitespace());
            if !line.contains(&b':') && !starts_space {
                break;
            }
            if line.len() >= 14
                && line[..14].eq_ignore_ascii_case(b"Delivered-To: ")
                && line[14..].eq_ignore_ascii_case(dest.as_bytes())
            {
                found = true;
                break;
            }
        }
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(found)
}

/// The stream an agent reads: the delivery headers, then the queued message.
pub fn stream(prefix: Vec<u8>, file: File) -> impl BufRead {
    BufReader::with_capacity(64 * 1024, io::Cursor::new(prefix).chain(file))
}

/// Reads one line as `getline()` does (with its `\n` if any); `None` at the end.
pub fn next_line<R: BufRead>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.clear();
    Ok(r.read_until(b'\n', buf)? > 0)
}

/// The line as the C agents print it with `"%s\n"`: without its newline, cut at a NUL.
pub fn c_line(buf: &[u8]) -> &[u8] {
    let end = buf
        .iter()
        .position(|&c| c == b'\n' || c == 0)
        .unwrap_or(buf.len());
    &buf[..end]
}
