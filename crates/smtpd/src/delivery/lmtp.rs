//! LMTP delivery as `mail.lmtp -d DEST -u|-r` does it: connect to `host:port`, `[addr]:port`
//! or a unix socket path; `LHLO localhost`, `MAIL FROM:<SENDER>`, `RCPT TO:<USER or RECIPIENT>`,
//! `DATA`, the message with dot-stuffing and CRLF, `.`, `QUIT`. One recipient per session, so
//! one per-recipient reply after the data.
//!
//! Like mail.lmtp, any unexpected reply (also a 5xx) is a temporary failure whose text is
//! `mail.lmtp: LMTP server error: <reply>`; that is what OpenSMTPD logs and retries.

use crate::sys::compat::strip_prefix_ci;
use std::fs::File;

use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter,
};
use tokio::net::{TcpStream, UnixStream};

use super::headers::{c_line, next_line, stream};
use super::AgentError;

const EX_TEMPFAIL: i32 = 75;

fn tf(s: impl Into<String>) -> AgentError {
    AgentError::new(EX_TEMPFAIL, format!("mail.lmtp: {}", s.into()))
}

pub struct Lmtp {
    pub destination: String,
    pub lhlo: String,
    pub mail_from: String,
    pub rcpt_to: String,
}

async fn connect_inet(dest: &str) -> Result<TcpStream, AgentError> {
    let (host, port) = if let Some(rest) = dest.strip_prefix('[') {
        let Some(close) = rest.find(']') else {
            return Err(tf("inet: invalid address syntax"));
        };
        let host = &rest[..close];
        let host = strip_prefix_ci(host, "IPv6:").unwrap_or(host);
        let after = &rest[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => p,
            None if after.is_empty() => "25",
            None => return Err(tf("inet: invalid address syntax")),
        };
        (host, port)
    } else {
        match dest.find(':') {
            Some(c) => (&dest[..c], &dest[c + 1..]),
            None => (dest, "25"),
        }
    };
    let Ok(port) = port.parse::<u16>() else {
        return Err(tf("inet: Servname not supported for ai_socktype"));
    };
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| tf("inet: Name or service not known"))?;
    for a in addrs {
        if let Ok(s) = TcpStream::connect(a).await {
            return Ok(s);
        }
    }
    Err(tf("connect"))
}

/// Delivers; `prefix` and `message` form the stream sent after DATA.
pub async fn deliver(l: &Lmtp, prefix: Vec<u8>, message: File) -> Result<(), AgentError> {
    if l.destination.starts_with('/') {
        let s = UnixStream::connect(&l.destination)
            .await
            .map_err(|e| tf(format!("connect: {}", super::strerror(&e))))?;
        let (r, w) = s.into_split();
        engine(l, r, w, prefix, message).await
    } else {
        let s = connect_inet(&l.destination).await?;
        let (r, w) = s.into_split();
        engine(l, r, w, prefix, message).await
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Banner,
    Helo,
    MailFrom,
    RcptTo,
    Data,
    Eom,
    Quit,
}

/// The longest reply line we read from an LMTP server, LF included: SMTP's own line limit
/// (`SMTP_LINE_MAX`), far above what any server sends (RFC 5321 says 512).
const MAX_REPLY_LINE: usize = rsmtpd_protocol::data::SMTP_LINE_MAX;

async fn engine<R, W>(
    l: &Lmtp,
    r: R,
    w: W,
    prefix: Vec<u8>,
    message: File,
) -> Result<(), AgentError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut r = BufReader::new(r);
    let mut w = BufWriter::with_capacity(64 * 1024, w);
    let mut phase = Phase::Banner;
    let mut message = Some(message);
    let mut prefix = Some(prefix);
    let mut line = Vec::new();
    loop {
        w.flush()
            .await
            .map_err(|e| tf(format!("write: {}", super::strerror(&e))))?;
        line.clear();
        // At most MAX_REPLY_LINE bytes: a server that never ends its line must not grow it for
        // the whole job timeout (mda_unpriv's getline() has no cap; CVE-2020-8794 was a reply
        // reader trusting its peer).
        let n = (&mut r)
            .take(MAX_REPLY_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| tf(format!("getline: {}", super::strerror(&e))))?;
        if n == 0 {
            return Err(tf("unexpected EOF from LMTP server"));
        }
        if line.len() > MAX_REPLY_LINE {
            return Err(tf("LMTP server sent a line too long"));
        }
        let linelen = line.len();
        let mut text = c_line(&line).to_vec();
        if let Some(cr) = text.iter().position(|&c| c == b'\r') {
            text.truncate(cr);
        }
        if linelen < 4
            || text.len() < 4
            || !text[..3].iter().all(|c| c.is_ascii_digit())
            || (text[3] != b' ' && text[3] != b'-')
        {
            return Err(tf("LMTP server sent an invalid line"));
        }
        let want = if phase == Phase::Data { b'3' } else { b'2' };
        if text[0] != want {
            return Err(tf(format!(
                "LMTP server error: {}",
                String::from_utf8_lossy(&text)
            )));
        }
        if text[3] == b'-' {
            continue;
        }
        let io = |e: std::io::Error| tf(format!("write: {}", super::strerror(&e)));
        match phase {
            Phase::Banner => {
                w.write_all(format!("LHLO {}\r\n", l.lhlo).as_bytes())
                    .await
                    .map_err(io)?;
                phase = Phase::Helo;
            }
            Phase::Helo => {
                w.write_all(format!("MAIL FROM:<{}>\r\n", l.mail_from).as_bytes())
                    .await
                    .map_err(io)?;
                phase = Phase::MailFrom;
            }
            Phase::MailFrom => {
                w.write_all(format!("RCPT TO:<{}>\r\n", l.rcpt_to).as_bytes())
                    .await
                    .map_err(io)?;
                phase = Phase::RcptTo;
            }
            Phase::RcptTo => {
                w.write_all(b"DATA\r\n").await.map_err(io)?;
                phase = Phase::Data;
            }
            Phase::Data => {
                let (Some(p), Some(m)) = (prefix.take(), message.take()) else {
                    return Err(tf("internal error"));
                };
                // Read the file on a blocking thread in chunks of lines, send them here.
                let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(8);
                let reader = tokio::task::spawn_blocking(move || {
                    let mut input = stream(p, m);
                    let mut buf = Vec::new();
                    let mut chunk = Vec::with_capacity(64 * 1024);
                    loop {
                        match next_line(&mut input, &mut buf) {
                            Ok(true) => {
                                let ln = c_line(&buf);
                                if ln.first() == Some(&b'.') {
                                    chunk.push(b'.');
                                }
                                chunk.extend_from_slice(ln);
                                chunk.extend_from_slice(b"\r\n");
                                if chunk.len() >= 60 * 1024
                                    && tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err()
                                {
                                    return;
                                }
                            }
                            Ok(false) => {
                                let _ = tx.blocking_send(Ok(chunk));
                                return;
                            }
                            Err(e) => {
                                let _ = tx.blocking_send(Err(e));
                                return;
                            }
                        }
                    }
                });
                while let Some(c) = rx.recv().await {
                    let c = c.map_err(|e| tf(format!("getline: {}", super::strerror(&e))))?;
                    w.write_all(&c).await.map_err(io)?;
                }
                let _ = reader.await;
                w.write_all(b".\r\n").await.map_err(io)?;
                phase = Phase::Eom;
            }
            Phase::Eom => {
                w.write_all(b"QUIT\r\n").await.map_err(io)?;
                phase = Phase::Quit;
            }
            Phase::Quit => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lmtp(destination: &str) -> Lmtp {
        Lmtp {
            destination: destination.into(),
            lhlo: "localhost".into(),
            mail_from: "a@b".into(),
            rcpt_to: "c@d".into(),
        }
    }

    fn message() -> File {
        tempfile::tempfile().expect("tempfile")
    }

    /// A destination whose bracketed host has a character across byte 5 is refused, not a panic
    /// (the fuzzing review's `host[..5]`).
    #[tokio::test]
    async fn a_non_ascii_bracketed_host_is_an_error() {
        let e = match deliver(&lmtp("[abcd\u{20ac}]:24"), Vec::new(), message()).await {
            Err(e) => e,
            Ok(()) => panic!("delivered to [abcd\u{20ac}]"),
        };
        assert_eq!(e.code, EX_TEMPFAIL, "{}", e.text);
    }

    /// A server that never ends its banner line fails the delivery once the line passes the cap,
    /// instead of growing it until the job's timeout.
    #[tokio::test]
    async fn a_reply_line_without_end_is_cut_at_the_cap() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            use std::io::Write;
            if let Ok((mut s, _)) = l.accept() {
                let chunk = vec![b'2'; 8192];
                // Stops when the client hangs up.
                while s.write_all(&chunk).is_ok() {}
            }
        });
        let e = match deliver(&lmtp(&format!("127.0.0.1:{port}")), Vec::new(), message()).await {
            Err(e) => e,
            Ok(()) => panic!("delivered"),
        };
        assert_eq!(e.text, "mail.lmtp: LMTP server sent a line too long");
        let _ = server.join();
    }
}
