//! One outbound connection: the thin shell around the protocol crate's [`Client`]. It
//! connects, runs the TLS handshakes the machine asks for (STARTTLS; smtps from the start),
//! logs what 6.8's mta logs (`connecting`, `connected`, `tls`, `server-cert-check`, `error`,
//! `disconnected`),
//! runs the transactions it is given, and stays idle in the [`Pool`] for the client's
//! keep-alive (10 s, `session-keepalive`) in case another message goes the same way, up to
//! `session-mail-max` messages.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rsmtpd_protocol::client::{Client, ClientConfig, Close, Event, Outcome, Tls, Transaction};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::limits::{ConnKey, Conns, Limits, Slot, Wait};
use super::pace::{Pacer, Turn};
use super::report::{Reports, TxInfo};
use super::route::Routes;
use super::tls::{Stream, TlsSetup};
use super::url::Scheme;
use crate::sys::compat::strerror;
use crate::sys::log;

/// What makes two deliveries able to share a connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// The action: sessions are only shared by one relay action's deliveries (its TLS,
    /// credentials and HELO are the same).
    pub action: String,
    /// The source address (`src <t>`), None for the system's choice.
    pub src: Option<IpAddr>,
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
    /// What the smtp-out reports name (`relay ... filter`).
    pub info: TxInfo,
    /// The destination's turn under `destination-rate-delay` ([`run_job`] takes it), held until
    /// the transaction ends.
    pub turn: Option<Turn>,
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
    /// Woken when a session goes idle: a batch held by a limit may take it.
    changed: tokio::sync::Notify,
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
        self.changed.notify_waiters();
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
    /// The relay's TLS (STARTTLS or smtps); None when it never uses TLS.
    pub tls: Option<Arc<TlsSetup>>,
    /// `smtps://`: TLS from the first byte.
    pub smtps: bool,
    /// The name the server's certificate must carry: the MX or smarthost name.
    pub mx_name: String,
    /// What a new connection counts against, and the relay's limits.
    pub conn: ConnKey,
    pub limits: Limits,
    /// `relay ... filter F`: the reports of a session, by its id.
    pub reports: Option<ReportsFactory>,
}

/// Opens the smtp-out reports of a session (None: nobody registered any).
pub type ReportsFactory = Arc<dyn Fn(u64) -> Option<Reports> + Send + Sync>;

/// 6.8's `DELAY_CHECK_LIMIT`: how often a batch held by a limit looks again, at the latest.
const DELAY_CHECK_LIMIT: Duration = Duration::from_secs(5);

/// Runs `job` on an idle session to the same destination, or on a new one when the limits
/// allow it; else waits until a session goes idle or ends, or a connection delay is over.
/// Under `destination-rate-delay`, first waits for the destination's turn: before any
/// session is taken or opened, so that the wait holds no connection.
pub async fn run_job(
    pool: &Arc<Pool>,
    routes: &Arc<Routes>,
    conns: &Arc<Conns>,
    pacer: &Arc<Pacer>,
    c: Connect,
    job: Job,
) -> JobResult {
    let (tx, rx) = oneshot::channel();
    let mut job = Job { reply: tx, ..job };
    let delay = c.limits.destination_rate_delay;
    if !delay.is_zero() && job.turn.is_none() {
        let dest = c.conn.domain.to_ascii_lowercase();
        job.turn = Some(pacer.turn(&dest, delay).await);
    }
    loop {
        // Registered before looking, so that a change meanwhile is not missed.
        let idle_changed = pool.changed.notified();
        let conns_changed = conns.changed.notified();
        tokio::pin!(idle_changed, conns_changed);
        idle_changed.as_mut().enable();
        conns_changed.as_mut().enable();
        if let Some(s) = pool.take(&c.key) {
            match s.send(job).await {
                Ok(()) => return rx.await.unwrap_or(JobResult::NotStarted),
                // The session ended meanwhile: look again.
                Err(mpsc::error::SendError(j)) => {
                    job = j;
                    continue;
                }
            }
        }
        let now = Instant::now();
        let until = match conns.open(&c.conn, &c.limits, now) {
            Ok(slot) => {
                tokio::spawn(session(pool.clone(), routes.clone(), c, job, slot));
                return rx.await.unwrap_or(JobResult::NotStarted);
            }
            Err(Wait::Limit) => now + DELAY_CHECK_LIMIT,
            Err(Wait::Until(t)) => t.min(now + DELAY_CHECK_LIMIT),
        };
        tokio::select! {
            _ = idle_changed => {}
            _ = conns_changed => {}
            _ = tokio::time::sleep_until(until.into()) => {}
        }
    }
}

/// A connection from `src` (bound first, port chosen by the system), or from the system's
/// choice of address.
async fn connect(src: Option<IpAddr>, to: SocketAddr) -> std::io::Result<TcpStream> {
    let Some(src) = src else {
        return TcpStream::connect(to).await;
    };
    let sock = match src {
        IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    sock.bind(SocketAddr::new(src, 0))?;
    sock.connect(to).await
}

/// How one connection of a session ended.
enum Attempt {
    Done,
    /// Opportunistic STARTTLS failed in the handshake: connect again, in clear (6.8's
    /// `MTA_DOWNGRADE_PLAIN`), with the same session id and the job not started yet.
    Downgrade,
}

/// A session from its first connection to its end; `_slot` counts it against the limits
/// until then.
async fn session(pool: Arc<Pool>, routes: Arc<Routes>, c: Connect, first: Job, _slot: Slot) {
    let id = rand::random::<u64>();
    let mut cfg = c.client.clone();
    let mut scheme_text = c.key.scheme.text();
    let mut next = Some(first);
    let mut reports = c.reports.as_ref().and_then(|f| f(id));
    loop {
        match connection(
            id,
            &pool,
            &routes,
            &c,
            cfg.clone(),
            scheme_text,
            &mut next,
            &mut reports,
        )
        .await
        {
            Attempt::Done => return,
            Attempt::Downgrade => {
                log::info(&format!(
                    "smtp-out: Error on session {id:016x}: opportunistic TLS failed, downgrading to plain"
                ));
                cfg.tls = Tls::Off;
                scheme_text = "smtp+notls://";
            }
        }
    }
}

/// The handshake and 6.8's checks after it: `mta tls ciphers=...`, then the certificate
/// (`mta server-cert-check result=...` when there is one). Err: the session ends with this
/// reason (`IO Error: ...` for a failed handshake, `SSL certificate check failed`).
async fn handshake(
    id: u64,
    stream: &mut Stream,
    setup: &TlsSetup,
    c: &Connect,
) -> Result<(), HandshakeError> {
    let hs = stream.start_tls(setup, &c.mx_name, c.key.addr);
    match tokio::time::timeout(Duration::from_secs(300), hs).await {
        Err(_) => return Err(HandshakeError::Failed("Connection timeout".into())),
        Ok(Err(e)) => {
            return Err(HandshakeError::Failed(format!(
                "IO Error: {}",
                crate::tls::names::handshake_error(&e)
            )))
        }
        Ok(Ok(())) => {}
    }
    let Some(conn) = stream.tls() else {
        return Err(HandshakeError::Failed("IO Error: internal error".into()));
    };
    log::info(&format!(
        "{id:016x} mta tls ciphers={}",
        super::tls::ciphers_text(conn)
    ));
    let checked = setup.check(conn, &c.mx_name);
    if setup.verify && checked != Some(true) {
        return Err(HandshakeError::Check);
    }
    if let Some(ok) = checked {
        log::info(&format!(
            "{id:016x} mta server-cert-check result=\"{}\"",
            if ok { "success" } else { "failure" }
        ));
    }
    Ok(())
}

enum HandshakeError {
    /// The handshake itself failed: its reason.
    Failed(String),
    /// The certificate did not check and the relay requires it to.
    Check,
}

impl HandshakeError {
    fn reason(&self) -> String {
        match self {
            HandshakeError::Failed(r) => r.clone(),
            HandshakeError::Check => "SSL certificate check failed".into(),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    id: u64,
    pool: &Arc<Pool>,
    routes: &Arc<Routes>,
    c: &Connect,
    cfg: ClientConfig,
    scheme_text: &str,
    next: &mut Option<Job>,
    reports: &mut Option<Reports>,
) -> Attempt {
    let key = c.key.clone();
    let addr_text = crate::sys::compat::addr_text(&key.addr);
    log::info(&format!(
        "{id:016x} mta connecting address={scheme_text}{}:{} host={}",
        addr_text,
        key.port,
        c.ptr.as_deref().unwrap_or(&addr_text)
    ));
    routes.opened(key.src, key.addr, c.ptr.as_deref());
    let attempt = attempt(id, pool, routes, c, cfg, next, reports).await;
    // A downgrade goes on with the same session (6.8 does not collect the route for it).
    routes.closed(key.src, key.addr, !matches!(attempt, Attempt::Downgrade));
    attempt
}

#[allow(clippy::too_many_arguments)]
async fn attempt(
    id: u64,
    pool: &Arc<Pool>,
    routes: &Arc<Routes>,
    c: &Connect,
    cfg: ClientConfig,
    next: &mut Option<Job>,
    reports: &mut Option<Reports>,
) -> Attempt {
    let key = &c.key;
    let not_started = |next: &mut Option<Job>| {
        if let Some(j) = next.take() {
            let _ = j.reply.send(JobResult::NotStarted);
        }
    };
    let connect = connect(key.src, SocketAddr::new(key.addr, key.port));
    let tcp = match tokio::time::timeout(Duration::from_secs(300), connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            log::info(&format!(
                "{id:016x} mta error reason=IO Error: {}",
                strerror(&e)
            ));
            not_started(next);
            return Attempt::Done;
        }
        Err(_) => {
            log::info(&format!("{id:016x} mta error reason=Connection timeout"));
            not_started(next);
            return Attempt::Done;
        }
    };
    let _ = tcp.set_nodelay(true);
    log::info(&format!("{id:016x} mta connected"));
    if let Some(r) = reports.as_ref() {
        let dest = tcp
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::new(key.addr, key.port));
        r.connected(c.ptr.as_deref(), tcp.local_addr().ok(), dest);
    }
    let end = connected(id, pool, routes, c, cfg, next, tcp, reports).await;
    if let Some(r) = reports.as_ref() {
        r.disconnected();
    }
    end
}

/// The session on an open connection, to its end.
#[allow(clippy::too_many_arguments)]
async fn connected(
    id: u64,
    pool: &Arc<Pool>,
    routes: &Arc<Routes>,
    c: &Connect,
    cfg: ClientConfig,
    next: &mut Option<Job>,
    tcp: TcpStream,
    reports: &mut Option<Reports>,
) -> Attempt {
    let key = c.key.clone();
    let not_started = |next: &mut Option<Job>| {
        if let Some(j) = next.take() {
            let _ = j.reply.send(JobResult::NotStarted);
        }
    };
    let mut stream = Stream::Plain(tcp);
    let source = stream.local_ip();
    if c.smtps {
        let Some(setup) = &c.tls else {
            log::info(&format!(
                "{id:016x} mta error reason=IO Error: TLS is not available"
            ));
            not_started(next);
            return Attempt::Done;
        };
        if let Err(e) = handshake(id, &mut stream, setup, c).await {
            log::info(&format!("{id:016x} mta error reason={}", e.reason()));
            not_started(next);
            return Attempt::Done;
        }
        if let (Some(r), Some(conn)) = (reports.as_ref(), stream.tls()) {
            r.tls(&super::tls::ciphers_text(conn));
        }
    }
    let opportunistic = cfg.tls == Tls::Opportunistic;
    let mut client = Client::new(cfg, Instant::now(), c.smtps);
    let (jobs_tx, mut jobs) = mpsc::channel::<Job>(1);
    let mut current: Option<Current> = None;
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    loop {
        // Everything the machine has to say, then the writes in one go.
        while let Some(ev) = client.poll_event() {
            let now = Instant::now();
            match ev {
                Event::Write(b) => {
                    if let Some(r) = reports.as_mut() {
                        r.written(&b);
                    }
                    out.extend_from_slice(&b);
                }
                Event::Ready => {
                    routes.reached(key.src, key.addr);
                    if let Some(j) = next.take() {
                        current = Some(begin(&mut client, reports, j, now));
                    }
                }
                Event::SendBody => {
                    if let Some(cur) = &current {
                        client.body(now, cur.body.to_vec());
                    }
                    client.body_end(now);
                }
                Event::Done(outcomes) => {
                    if let Some(cur) = current.take() {
                        if let Some(t) = cur.turn {
                            t.end(now);
                        }
                        let _ = cur.reply.send(JobResult::Done {
                            outcomes,
                            session: id,
                            source,
                        });
                    }
                }
                Event::StartTls => {
                    // Nothing is pending: the machine waits for the handshake.
                    let Some(setup) = &c.tls else {
                        client.tls_failed("IO Error: TLS is not available");
                        continue;
                    };
                    match handshake(id, &mut stream, setup, c).await {
                        Ok(()) => {
                            if let (Some(r), Some(conn)) = (reports.as_ref(), stream.tls()) {
                                r.tls(&super::tls::ciphers_text(conn));
                            }
                            client.tls_established(Instant::now())
                        }
                        Err(HandshakeError::Failed(_)) if opportunistic => {
                            return Attempt::Downgrade;
                        }
                        Err(e) => client.tls_failed(&e.reason()),
                    }
                }
                Event::Closed(close) => {
                    closed(id, close);
                    not_started(next);
                    let _ = pool.unregister(&key, id);
                    if !out.is_empty() {
                        let _ = stream.write_all(&out).await;
                    }
                    return Attempt::Done;
                }
            }
        }
        if !out.is_empty() {
            if let Err(e) = stream.write_all(&out).await {
                client.io_error(&strerror(&e));
                out.clear();
                continue;
            }
            if let Err(e) = stream.flush().await {
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
        // `session-mail-max`: enough messages on this session (6.8's MTA_READY).
        if idle && client.messages() >= c.limits.session_mail_max {
            client.quit(Instant::now());
            continue;
        }
        if idle {
            pool.register(&key, id, jobs_tx.clone());
        }
        tokio::select! {
            r = stream.read(&mut buf) => {
                if idle && !pool.unregister(&key, id) {
                    // Taken meanwhile: its job comes next; the server's words are read first.
                    if let Some(j) = jobs.recv().await { *next = Some(j); }
                }
                match r {
                    Ok(0) => client.peer_closed(),
                    Ok(n) => {
                        if let Some(r) = reports.as_mut() {
                            r.read(&buf[..n]);
                        }
                        client.receive(Instant::now(), &buf[..n])
                    }
                    Err(e) => client.io_error(&strerror(&e)),
                }
                if next.is_some() && client.is_idle() {
                    // A job arrived while reading: start it.
                    if let Some(j) = next.take() {
                        current = Some(begin(&mut client, reports, j, Instant::now()));
                    }
                }
            }
            j = jobs.recv(), if idle => {
                if let Some(j) = j {
                    current = Some(begin(&mut client, reports, j, Instant::now()));
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                if idle && !pool.unregister(&key, id) {
                    if let Some(j) = jobs.recv().await {
                        current = Some(begin(&mut client, reports, j, Instant::now()));
                        continue;
                    }
                }
                // A timeout, unless it is the keep-alive running out or the pause between
                // transactions ending.
                if !client.is_idle() && !client.is_pausing() {
                    if let Some(r) = reports.as_ref() {
                        r.timeout();
                    }
                }
                client.handle_timeout(Instant::now());
            }
        }
    }
}

/// A session's transaction, from its MAIL to its final reply.
struct Current {
    reply: oneshot::Sender<JobResult>,
    body: Arc<Vec<u8>>,
    /// The destination's turn (`destination-rate-delay`), given back at the final reply, or
    /// when the session ends without one.
    turn: Option<Turn>,
}

/// Starts `j` on the idle `client`: the reports' tx-begin, then its MAIL.
fn begin(client: &mut Client, reports: &mut Option<Reports>, j: Job, now: Instant) -> Current {
    if let Some(r) = reports.as_mut() {
        r.begin(j.info);
    }
    client.send(now, j.tx);
    let mut turn = j.turn;
    // Still idle: refused before MAIL (over the server's SIZE), nothing went out, and the turn
    // goes back unused.
    if !client.is_idle() {
        if let Some(t) = turn.as_mut() {
            t.started();
        }
    }
    Current {
        reply: j.reply,
        body: j.body,
        turn,
    }
}

fn closed(id: u64, close: Close) {
    match close {
        Close::Quit { messages } => log::info(&format!(
            "{id:016x} mta disconnected reason=quit messages={messages}"
        )),
        Close::Error {
            reason, messages, ..
        } => {
            if messages > 0 {
                log::info(&format!(
                    "smtp-out: Error on session {id:016x} after {messages} message{} sent: {reason}",
                    if messages > 1 { "s" } else { "" }
                ));
            } else {
                log::info(&format!("{id:016x} mta error reason={reason}"));
            }
        }
    }
}
