//! One outbound connection: the thin shell around the protocol crate's [`Client`]. It
//! connects, logs what 6.8's mta logs (`connecting`, `connected`, `error`, `disconnected`),
//! runs the transactions it is given, and stays idle in the [`Pool`] for the client's
//! keep-alive (10 s) in case another message goes the same way.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rsmtpd_protocol::client::{Client, ClientConfig, Close, Event, Outcome, Transaction};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::route::Routes;
use super::url::Scheme;
use crate::sys::log;

/// What makes two deliveries able to share a connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub addr: IpAddr,
    pub port: u16,
    pub scheme: Scheme,
    pub helo: String,
}

/// One transaction for a session.
pub struct Job {
    pub tx: Transaction,
    /// The message in wire form (dot-stuffed, CRLF), shared by the sessions that try it.
    pub body: Arc<Vec<u8>>,
    pub reply: oneshot::Sender<JobResult>,
}

#[derive(Debug)]
pub enum JobResult {
    /// The transaction ran: one outcome per recipient.
    Done {
        outcomes: Vec<Outcome>,
        session: u64,
        source: Option<IpAddr>,
    },
    /// The session ended before the transaction could start (connection refused, greeting
    /// refused...): the next address may be tried.
    NotStarted,
}

/// An idle session: its id and where to send it a job.
type Idle = (u64, mpsc::Sender<Job>);

/// Idle sessions by destination.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<Key, Vec<Idle>>>,
}

impl Pool {
    fn take(&self, key: &Key) -> Option<mpsc::Sender<Job>> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        let (_, s) = list.pop()?;
        if list.is_empty() {
            idle.remove(key);
        }
        Some(s)
    }

    fn register(&self, key: &Key, id: u64, s: mpsc::Sender<Job>) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.entry(key.clone()).or_default().push((id, s));
        }
    }

    /// False when someone took the session meanwhile (its job is on the way).
    fn unregister(&self, key: &Key, id: u64) -> bool {
        let Ok(mut idle) = self.idle.lock() else {
            return true;
        };
        let Some(list) = idle.get_mut(key) else {
            return false;
        };
        let before = list.len();
        list.retain(|(i, _)| *i != id);
        let found = list.len() != before;
        if list.is_empty() {
            idle.remove(key);
        }
        found
    }
}

/// How a session is opened.
pub struct Connect {
    pub key: Key,
    /// The reverse name of the address (`host=`), if any.
    pub ptr: Option<String>,
    pub client: ClientConfig,
}

/// Runs `job` on an idle session to the same destination, or on a new one.
pub async fn run_job(pool: &Arc<Pool>, routes: &Arc<Routes>, c: Connect, job: Job) -> JobResult {
    let (tx, rx) = oneshot::channel();
    let mut job = Job { reply: tx, ..job };
    if let Some(s) = pool.take(&c.key) {
        match s.send(job).await {
            Ok(()) => return rx.await.unwrap_or(JobResult::NotStarted),
            // The session ended meanwhile: a new one.
            Err(mpsc::error::SendError(j)) => job = j,
        }
    }
    tokio::spawn(session(pool.clone(), routes.clone(), c, job));
    rx.await.unwrap_or(JobResult::NotStarted)
}

fn strerror(e: &std::io::Error) -> String {
    crate::delivery::strerror(e)
}

async fn session(pool: Arc<Pool>, routes: Arc<Routes>, c: Connect, first: Job) {
    let id = rand::random::<u64>();
    let key = c.key.clone();
    let addr_text = crate::sys::compat::addr_text(&key.addr);
    log::info(&format!(
        "{id:016x} mta connecting address={}{}:{} host={}",
        key.scheme.text(),
        addr_text,
        key.port,
        c.ptr.as_deref().unwrap_or(&addr_text)
    ));
    let connect = TcpStream::connect(SocketAddr::new(key.addr, key.port));
    let mut stream = match tokio::time::timeout(Duration::from_secs(300), connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            log::info(&format!(
                "{id:016x} mta error reason=IO Error: {}",
                strerror(&e)
            ));
            if e.kind() == std::io::ErrorKind::ConnectionRefused {
                routes.disable(key.addr, c.ptr.clone());
            }
            let _ = first.reply.send(JobResult::NotStarted);
            return;
        }
        Err(_) => {
            log::info(&format!("{id:016x} mta error reason=Connection timeout"));
            let _ = first.reply.send(JobResult::NotStarted);
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    log::info(&format!("{id:016x} mta connected"));
    let source = stream.local_addr().ok().map(|a| a.ip());
    let mut client = Client::new(c.client, Instant::now(), false);
    let (jobs_tx, mut jobs) = mpsc::channel::<Job>(1);
    let mut next = Some(first);
    let mut current: Option<(oneshot::Sender<JobResult>, Arc<Vec<u8>>)> = None;
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    loop {
        // Everything the machine has to say, then the writes in one go.
        while let Some(ev) = client.poll_event() {
            let now = Instant::now();
            match ev {
                Event::Write(b) => out.extend_from_slice(&b),
                Event::Ready => {
                    if let Some(j) = next.take() {
                        current = Some((j.reply, j.body));
                        client.send(now, j.tx);
                    }
                }
                Event::SendBody => {
                    if let Some((_, body)) = &current {
                        client.body(now, body.to_vec());
                    }
                    client.body_end(now);
                }
                Event::Done(outcomes) => {
                    if let Some((reply, _)) = current.take() {
                        let _ = reply.send(JobResult::Done {
                            outcomes,
                            session: id,
                            source,
                        });
                    }
                }
                Event::StartTls => client.tls_failed("TLS is not available"),
                Event::Closed(close) => {
                    closed(id, &routes, &key, c.ptr.clone(), close);
                    if let Some(j) = next.take() {
                        let _ = j.reply.send(JobResult::NotStarted);
                    }
                    let _ = pool.unregister(&key, id);
                    if !out.is_empty() {
                        let _ = stream.write_all(&out).await;
                    }
                    return;
                }
            }
        }
        if !out.is_empty() {
            if let Err(e) = stream.write_all(&out).await {
                client.io_error(&strerror(&e));
                out.clear();
                continue;
            }
            out.clear();
        }
        let deadline = client
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(300));
        let idle = client.is_idle() && current.is_none() && next.is_none();
        if idle {
            pool.register(&key, id, jobs_tx.clone());
        }
        tokio::select! {
            r = stream.read(&mut buf) => {
                if idle && !pool.unregister(&key, id) {
                    // Taken meanwhile: its job comes next; the server's words are read first.
                    if let Some(j) = jobs.recv().await { next = Some(j); }
                }
                match r {
                    Ok(0) => client.peer_closed(),
                    Ok(n) => client.receive(Instant::now(), &buf[..n]),
                    Err(e) => client.io_error(&strerror(&e)),
                }
                if next.is_some() && client.is_idle() {
                    // A job arrived while reading: start it.
                    if let Some(j) = next.take() {
                        current = Some((j.reply, j.body));
                        client.send(Instant::now(), j.tx);
                    }
                }
            }
            j = jobs.recv(), if idle => {
                if let Some(j) = j {
                    current = Some((j.reply, j.body));
                    client.send(Instant::now(), j.tx);
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                if idle && !pool.unregister(&key, id) {
                    if let Some(j) = jobs.recv().await {
                        current = Some((j.reply, j.body));
                        client.send(Instant::now(), j.tx);
                        continue;
                    }
                }
                client.handle_timeout(Instant::now());
            }
        }
    }
}

fn closed(id: u64, routes: &Arc<Routes>, key: &Key, ptr: Option<String>, close: Close) {
    match close {
        Close::Quit { messages } => log::info(&format!(
            "{id:016x} mta disconnected reason=quit messages={messages}"
        )),
        Close::Error {
            reason,
            reply,
            messages,
        } => {
            if messages > 0 {
                log::info(&format!(
                    "smtp-out: Error on session {id:016x} after {messages} message{} sent: {reason}",
                    if messages > 1 { "s" } else { "" }
                ));
            } else {
                log::info(&format!("{id:016x} mta error reason={reason}"));
            }
            if reason.starts_with("BANNER rejected") && reply.is_some_and(|b| b.code == 421) {
                routes.disable(key.addr, ptr);
            }
        }
    }
}
