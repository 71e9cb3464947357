//! Bounces enter the queue as OpenSMTPD's do: through a local SMTP session (`address=local`),
//! so they pass the same rules, expansion and queue as any other message.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::inbound::session;
use crate::scheduler::{BoxFuture, Injector};
use crate::server::Server;

pub struct LocalInjector {
    pub server: Arc<Server>,
}

impl Injector for LocalInjector {
    fn inject<'a>(
        &'a self,
        smtpname: &'a str,
        to: &'a str,
        payload: &'a [u8],
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { self.run(smtpname, to, payload).await })
    }
}

impl LocalInjector {
    /// One bounce, sent as bounce.c sends it, so that the session logs what OpenSMTPD's logs:
    /// the client's name is the server's host name (smtp_enqueue() passes `sc_hostname`), the
    /// commands have bounce.c's bytes (`MAIL FROM: <>`, `RCPT TO: <...>`, a space after the
    /// colon), and every ending, success or refusal, goes through `QUIT` and its reply, so the
    /// session ends with `reason=quit`.
    async fn run(&self, smtpname: &str, to: &str, payload: &[u8]) -> Result<(), String> {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        tokio::spawn(session::run_local(
            self.server.clone(),
            theirs,
            self.server.hostname.clone(),
        ));
        let (rd, mut wr) = tokio::io::split(ours);
        let mut rd = BufReader::new(rd);
        let outcome = async {
            expect(&mut rd, '2').await?;
            let steps = [
                format!("EHLO {}\r\n", smtpname),
                "MAIL FROM: <>\r\n".to_string(),
                format!("RCPT TO: <{}>\r\n", to),
                "DATA\r\n".to_string(),
            ];
            for (i, s) in steps.iter().enumerate() {
                wr.write_all(s.as_bytes()).await.map_err(io_text)?;
                expect(&mut rd, if i == 3 { '3' } else { '2' }).await?;
            }
            wr.write_all(payload).await.map_err(io_text)?;
            wr.write_all(b".\r\n").await.map_err(io_text)?;
            expect(&mut rd, '2').await
        }
        .await;
        // bounce.c answers a refusal with QUIT too (BOUNCE_QUIT), and closes only once QUIT is
        // answered (BOUNCE_CLOSE). After an I/O error there is no one to say it to.
        let session_alive = match &outcome {
            Ok(()) => true,
            Err(e) => !e.starts_with("421 "),
        };
        if session_alive && wr.write_all(b"QUIT\r\n").await.is_ok() {
            let _ = expect(&mut rd, '2').await;
        }
        outcome
    }
}

fn io_text(e: std::io::Error) -> String {
    format!("421 {}", e)
}

/// Reads one reply; Err(its last line) unless it starts with `class`.
async fn expect<R: tokio::io::AsyncBufRead + Unpin>(rd: &mut R, class: char) -> Result<(), String> {
    loop {
        let mut line = String::new();
        let n = rd.read_line(&mut line).await.map_err(io_text)?;
        if n == 0 {
            return Err("421 session closed".into());
        }
        let line = line.trim_end().to_string();
        if line.as_bytes().get(3) == Some(&b'-') {
            continue;
        }
        return if line.starts_with(class) {
            Ok(())
        } else {
            Err(line)
        };
    }
}
