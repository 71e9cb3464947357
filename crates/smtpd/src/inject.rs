//! Bounces enter the queue as OpenSMTPD's do: through a local SMTP session (`address=local`),
//! so they pass the same rules, expansion and queue as any other message.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::scheduler::{BoxFuture, Injector};
use crate::server::Server;
use crate::session;

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
    async fn run(&self, smtpname: &str, to: &str, payload: &[u8]) -> Result<(), String> {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        // A local session whose client is "localhost" is the bounce session of OpenSMTPD.
        tokio::spawn(session::run_local(
            self.server.clone(),
            theirs,
            "localhost".into(),
        ));
        let (rd, mut wr) = tokio::io::split(ours);
        let mut rd = BufReader::new(rd);
        expect(&mut rd, '2').await?;
        let steps = [
            format!("EHLO {}\r\n", smtpname),
            "MAIL FROM:<>\r\n".to_string(),
            format!("RCPT TO:<{}>\r\n", to),
            "DATA\r\n".to_string(),
        ];
        for (i, s) in steps.iter().enumerate() {
            wr.write_all(s.as_bytes()).await.map_err(io_text)?;
            expect(&mut rd, if i == 3 { '3' } else { '2' }).await?;
        }
        wr.write_all(payload).await.map_err(io_text)?;
        wr.write_all(b".\r\n").await.map_err(io_text)?;
        expect(&mut rd, '2').await?;
        let _ = wr.write_all(b"QUIT\r\n").await;
        Ok(())
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
