//! Bounces enter the queue as OpenSMTPD's do: through a local SMTP session (`address=local`),
//! so they pass the same rules, expansion and queue as any other message.

use std::sync::Arc;

use std::time::Instant;

use rsmtpd_protocol::client::{
    Client, ClientConfig, Close, Event, Outcome, Recipient, Transaction,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    /// session ends with `reason=quit`. The dialogue is the protocol crate's client (no HELO
    /// after a refused EHLO, no RSET: bounce.c has neither).
    async fn run(&self, smtpname: &str, to: &str, payload: &[u8]) -> Result<(), String> {
        let (mut ours, theirs) = tokio::io::duplex(64 * 1024);
        tokio::spawn(session::run_local(
            self.server.clone(),
            theirs,
            self.server.hostname.clone(),
        ));
        let mut cfg = ClientConfig::new(smtpname);
        cfg.helo_fallback = false;
        cfg.rset_after_failure = false;
        cfg.pipelining = false;
        cfg.mail_parameters = false;
        let mut client = Client::new(cfg, Instant::now(), false);
        let mut tx = Transaction::new("", vec![Recipient::new(to)]);
        tx.mail_line = Some("MAIL FROM: <>".into());
        tx.rcpt_lines = Some(vec![format!("RCPT TO: <{}>", to)]);
        let mut tx = Some(tx);
        let mut outcome: Option<Result<(), String>> = None;
        let mut buf = vec![0u8; 8192];
        loop {
            while let Some(ev) = client.poll_event() {
                let now = Instant::now();
                match ev {
                    Event::Write(b) => {
                        if let Err(e) = ours.write_all(&b).await {
                            client.io_error(&e.to_string());
                        }
                    }
                    Event::Ready => match tx.take() {
                        Some(t) => client.send(now, t),
                        // bounce.c answers a refusal with QUIT too (BOUNCE_QUIT), and closes
                        // only once QUIT is answered (BOUNCE_CLOSE).
                        None => client.quit(now),
                    },
                    Event::SendBody => {
                        client.body(now, payload.to_vec());
                        client.body_end(now);
                    }
                    Event::Done(o) => {
                        outcome = Some(match o.into_iter().next() {
                            Some(Outcome::Delivered(_)) => Ok(()),
                            Some(Outcome::TempFail(l, _)) | Some(Outcome::PermFail(l, _)) => Err(l),
                            None => Err("421 no recipient".into()),
                        })
                    }
                    Event::StartTls => client.tls_failed("no TLS on a local session"),
                    Event::Closed(c) => {
                        return match (outcome, c) {
                            (Some(o), _) => o,
                            (None, Close::Quit { .. }) => Err("421 session closed".into()),
                            // A refused greeting: its line; after an I/O error there is no one
                            // to say QUIT to.
                            (None, Close::Error { reply: Some(r), .. }) => Err(r.last_line()),
                            (None, Close::Error { reason, .. }) => Err(format!("421 {reason}")),
                        };
                    }
                }
            }
            let deadline = client
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(300));
            tokio::select! {
                r = ours.read(&mut buf) => match r {
                    Ok(0) => client.peer_closed(),
                    Ok(n) => client.receive(Instant::now(), &buf[..n]),
                    Err(e) => client.io_error(&e.to_string()),
                },
                _ = tokio::time::sleep_until(deadline.into()) => client.handle_timeout(Instant::now()),
            }
        }
    }
}
