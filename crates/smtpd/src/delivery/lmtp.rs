//! LMTP delivery as `mail.lmtp -d DEST -u|-r` does it: connect to `host:port`, `[addr]:port`
//! or a unix socket path; `LHLO localhost`, `MAIL FROM:<SENDER>`, `RCPT TO:<USER or RECIPIENT>`,
//! `DATA`, the message with dot-stuffing and CRLF, `.`, `QUIT`. One recipient per session, so
//! one per-recipient reply after the data.
//!
//! Like mail.lmtp, any unexpected reply (also a 5xx) is a temporary failure whose text is
//! `mail.lmtp: LMTP server error: <reply>`; that is what OpenSMTPD logs and retries.

use crate::sys::compat::strip_prefix_ci;
use std::fs::File;

use std::time::Instant;

use rsmtpd_protocol::client::{
    Client, ClientConfig, Close, Event, Outcome, Recipient, ServerReply, Transaction,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
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

/// mail.lmtp's text for a reply it did not want: its first line.
fn server_error(r: Option<&ServerReply>, fallback: &str) -> AgentError {
    match r {
        Some(r) => tf(format!("LMTP server error: {}", r.first_line())),
        None => tf(fallback.to_string()),
    }
}

/// The dialogue, on the protocol crate's client: `LHLO`, `MAIL`, `RCPT`, `DATA`, the body,
/// `.`, the recipient's reply, `QUIT`. mail.lmtp gives up at the first unexpected reply without
/// `RSET` or `QUIT`; replies are read with the client's caps (a line of `LINE_MAX` bytes is
/// `LMTP server sent a line too long`, a reply of too many lines `LMTP server sent an invalid
/// line`: mda_unpriv's getline() has no cap, and CVE-2020-8794 was a reply reader trusting its
/// peer).
async fn engine<R, W>(
    l: &Lmtp,
    mut r: R,
    w: W,
    prefix: Vec<u8>,
    message: File,
) -> Result<(), AgentError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut w = BufWriter::with_capacity(64 * 1024, w);
    let mut cfg = ClientConfig::new(l.lhlo.clone());
    cfg.lmtp = true;
    cfg.pipelining = false;
    cfg.mail_parameters = false;
    cfg.helo_fallback = false;
    cfg.rset_after_failure = false;
    let mut client = Client::new(cfg, Instant::now(), false);
    let mut tx = Transaction::new(l.mail_from.clone(), vec![Recipient::new(l.rcpt_to.clone())]);
    tx.mail_line = Some(format!("MAIL FROM:<{}>", l.mail_from));
    tx.rcpt_lines = Some(vec![format!("RCPT TO:<{}>", l.rcpt_to)]);
    let mut tx = Some(tx);
    let mut body = Some((prefix, message));
    let mut outcome: Option<Result<(), AgentError>> = None;
    let mut buf = vec![0u8; 8192];
    let io = |e: std::io::Error| tf(format!("write: {}", super::strerror(&e)));
    loop {
        while let Some(ev) = client.poll_event() {
            let now = Instant::now();
            match ev {
                Event::Write(b) => w.write_all(&b).await.map_err(io)?,
                Event::Ready => match tx.take() {
                    Some(t) => client.send(now, t),
                    None => match outcome.take() {
                        Some(Ok(())) => client.quit(now),
                        Some(Err(e)) => return Err(e),
                        None => return Err(tf("internal error")),
                    },
                },
                Event::SendBody => {
                    let Some((p, m)) = body.take() else {
                        return Err(tf("internal error"));
                    };
                    w.flush().await.map_err(io)?;
                    send_body(&mut w, p, m).await?;
                    client.body_end(Instant::now());
                }
                Event::Done(o) => {
                    outcome = Some(match o.into_iter().next() {
                        Some(Outcome::Delivered(_)) => Ok(()),
                        Some(Outcome::TempFail(t, r)) | Some(Outcome::PermFail(t, r)) => {
                            Err(server_error(r.as_ref(), &t))
                        }
                        None => Err(tf("internal error")),
                    });
                }
                Event::StartTls => return Err(tf("internal error")),
                Event::Closed(Close::Quit { .. }) => {
                    w.flush().await.map_err(io)?;
                    return outcome.unwrap_or(Ok(()));
                }
                Event::Closed(Close::Error { reason, reply, .. }) => {
                    if let Some(Err(e)) = outcome {
                        return Err(e);
                    }
                    return Err(if reply.is_some() {
                        server_error(reply.as_ref(), &reason)
                    } else if reason == "Connection closed unexpectedly" {
                        tf("unexpected EOF from LMTP server")
                    } else if let Some(e) = reason.strip_prefix("IO Error: ") {
                        tf(format!("getline: {e}"))
                    } else if reason == "Connection timeout" {
                        tf(reason)
                    } else if reason == "Input too long" {
                        tf("LMTP server sent a line too long")
                    } else {
                        tf("LMTP server sent an invalid line")
                    });
                }
            }
        }
        w.flush().await.map_err(io)?;
        let deadline = client
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(600));
        tokio::select! {
            n = r.read(&mut buf) => match n {
                Ok(0) => client.peer_closed(),
                Ok(n) => client.receive(Instant::now(), &buf[..n]),
                Err(e) => client.io_error(&super::strerror(&e)),
            },
            _ = tokio::time::sleep_until(deadline.into()) => client.handle_timeout(Instant::now()),
        }
    }
}

/// The message as mail.lmtp sends it: each line without its line end (cut at a NUL), a `.`
/// doubled at its start, CRLF; read on a blocking thread in chunks.
async fn send_body<W: AsyncWrite + Unpin>(
    w: &mut W,
    prefix: Vec<u8>,
    message: File,
) -> Result<(), AgentError> {
    let io = |e: std::io::Error| tf(format!("write: {}", super::strerror(&e)));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(8);
    let reader = tokio::task::spawn_blocking(move || {
        let mut input = stream(prefix, message);
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
    Ok(())
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

    /// A server that sends one endless line: the read is capped, the delivery fails
    /// temporarily instead of growing a buffer without bound (the review's uncapped
    /// `read_until`).
    #[tokio::test]
    async fn an_endless_line_is_a_line_too_long_not_a_growing_buffer() {
        let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let chunk = vec![b'2'; 64 * 1024];
            for _ in 0..160 {
                if theirs.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        });
        let (r, w) = tokio::io::split(ours);
        let file = tempfile::tempfile().expect("tempfile");
        let e = engine(&lmtp(""), r, w, Vec::new(), file)
            .await
            .expect_err("refused");
        assert_eq!(e.text, "mail.lmtp: LMTP server sent a line too long");
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
