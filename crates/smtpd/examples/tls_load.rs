//! Load client for bench/tls/run.sh (see bench/tls/README.md): SMTP over STARTTLS, the same
//! bytes to every server, in Rust so that the client is not what limits the rates (the Python
//! client of the first drafts topped out near 130 sessions/s for all three servers).
//!
//! ```text
//! tls_load sessions PORT N PAR     N sessions, PAR at a time: EHLO, STARTTLS, EHLO, one
//!                                  message, QUIT
//! tls_load submission PORT N PAR   the same with AUTH PLAIN (bench / secret) after the EHLO
//! tls_load persistent PORT N PAR   PAR sessions opened first (4 at a time, untimed), then
//!                                  N/PAR messages each, timed
//! ```
//!
//! Prints `DONE FAILED SECONDS RETRIES RESUMED`; RETRIES counts connections given up for want of
//! a banner within 3 s and made again (OpenSMTPD listens with a backlog of 5: a connection the
//! kernel completed but the server never accepted); RESUMED counts the handshakes the server let
//! resume an earlier session (a TLS 1.3 ticket: no certificate, no signature). The client offers
//! resumption, as MTAs that cache sessions do; `TLS_RESUME=0` makes every handshake a full one.
//! `TLS_LOAD_STEPS=1` prints to stderr how long each step waited for its reply (mean and
//! percentiles), to take a rate apart.
//! The server's certificate is not checked (our servers; a chain check would only add client
//! CPU). MSG_LEN (default 2048) sets the body.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

type Tls = BufReader<tokio_rustls::client::TlsStream<TcpStream>>;

static RETRIES: AtomicU64 = AtomicU64::new(0);
static RESUMED: AtomicU64 = AtomicU64::new(0);

/// `TLS_LOAD_STEPS=1`: how long each step waited for the server (microseconds), printed to
/// stderr at the end, so that a rate can be taken apart (where does a session's time go).
#[derive(Clone, Copy)]
enum Step {
    Banner,
    Ehlo,
    Starttls,
    Handshake,
    Ehlo2,
    Auth,
    Mail,
    Rcpt,
    Data,
    Dot,
    Quit,
}
const STEP_NAMES: [&str; 11] = [
    "banner",
    "ehlo",
    "starttls",
    "handshake",
    "ehlo2",
    "auth",
    "mail",
    "rcpt",
    "data",
    "dot",
    "quit",
];
static STEPS: std::sync::Mutex<Vec<Vec<u32>>> = std::sync::Mutex::new(Vec::new());
static STEPS_ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn record(step: Step, since: Instant) {
    if !STEPS_ON.load(Ordering::Relaxed) {
        return;
    }
    let us = u32::try_from(since.elapsed().as_micros()).unwrap_or(u32::MAX);
    if let Ok(mut v) = STEPS.lock() {
        if v.is_empty() {
            v.resize(STEP_NAMES.len(), Vec::new());
        }
        v[step as usize].push(us);
    }
}

fn print_steps() {
    let Ok(mut v) = STEPS.lock() else { return };
    for (i, lat) in v.iter_mut().enumerate() {
        if lat.is_empty() {
            continue;
        }
        lat.sort_unstable();
        let pct = |p: usize| lat[(lat.len() * p / 100).min(lat.len() - 1)];
        let mean = lat.iter().map(|&x| x as u64).sum::<u64>() / lat.len() as u64;
        eprintln!(
            "step {:<9} n={:<6} mean={:>6}us p50={:>6}us p90={:>6}us p99={:>6}us",
            STEP_NAMES[i],
            lat.len(),
            mean,
            pct(50),
            pct(90),
            pct(99)
        );
    }
}

/// [`cmd`], timed as `step`.
async fn timed<S: AsyncRead + AsyncWrite + Unpin>(
    step: Step,
    r: &mut BufReader<S>,
    line: &[u8],
) -> Res<String> {
    let t = Instant::now();
    let out = cmd(r, line).await;
    record(step, t);
    out
}

struct Client {
    port: u16,
    tls: TlsConnector,
    body: Arc<Vec<u8>>,
}

type Res<T> = Result<T, String>;

/// Reads one reply (its last line); an error unless it is 2xx or 3xx.
async fn reply<S: AsyncRead + Unpin>(r: &mut BufReader<S>) -> Res<String> {
    let mut line = String::new();
    loop {
        line.clear();
        let n = r.read_line(&mut line).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed".into());
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    }
    match line.as_bytes().first() {
        Some(b'2') | Some(b'3') => Ok(line),
        _ => Err(line.trim_end().to_string()),
    }
}

async fn cmd<S: AsyncRead + AsyncWrite + Unpin>(r: &mut BufReader<S>, line: &[u8]) -> Res<String> {
    r.get_mut()
        .write_all(line)
        .await
        .map_err(|e| e.to_string())?;
    reply(r).await
}

impl Client {
    async fn connect(&self) -> Res<BufReader<TcpStream>> {
        for attempt in 0..5 {
            if attempt > 0 {
                RETRIES.fetch_add(1, Ordering::Relaxed);
            }
            let Ok(Ok(s)) = tokio::time::timeout(
                Duration::from_secs(5),
                TcpStream::connect(("127.0.0.1", self.port)),
            )
            .await
            else {
                continue;
            };
            let _ = s.set_nodelay(true);
            let mut r = BufReader::new(s);
            let t = Instant::now();
            match tokio::time::timeout(Duration::from_secs(3), reply(&mut r)).await {
                Ok(Ok(_)) => {
                    record(Step::Banner, t);
                    return Ok(r);
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => continue,
            }
        }
        Err("no banner".into())
    }

    async fn open_tls(&self) -> Res<Tls> {
        let mut r = self.connect().await?;
        timed(Step::Ehlo, &mut r, b"EHLO client.bench\r\n").await?;
        timed(Step::Starttls, &mut r, b"STARTTLS\r\n").await?;
        let name =
            rustls::pki_types::ServerName::try_from("bench.test").map_err(|e| e.to_string())?;
        // Nothing follows the 220 before our handshake, so the reader holds no bytes.
        let tcp = r.into_inner();
        let t = Instant::now();
        let s = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        record(Step::Handshake, t);
        if s.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
            RESUMED.fetch_add(1, Ordering::Relaxed);
        }
        let mut r = BufReader::new(s);
        timed(Step::Ehlo2, &mut r, b"EHLO client.bench\r\n").await?;
        Ok(r)
    }

    async fn message(&self, r: &mut Tls) -> Res<()> {
        timed(Step::Mail, r, b"MAIL FROM:<sender@client.bench>\r\n").await?;
        timed(Step::Rcpt, r, b"RCPT TO:<root@bench.test>\r\n").await?;
        timed(Step::Data, r, b"DATA\r\n").await?;
        let t = Instant::now();
        r.get_mut()
            .write_all(&self.body)
            .await
            .map_err(|e| e.to_string())?;
        let out = reply(r).await.map(|_| ());
        record(Step::Dot, t);
        out
    }

    async fn session(&self, auth: bool) -> Res<()> {
        let mut r = self.open_tls().await?;
        if auth {
            let line = timed(Step::Auth, &mut r, b"AUTH PLAIN AGJlbmNoAHNlY3JldA==\r\n").await?;
            if !line.starts_with("235") {
                return Err(line);
            }
        }
        self.message(&mut r).await?;
        timed(Step::Quit, &mut r, b"QUIT\r\n").await?;
        let _ = r.get_mut().shutdown().await;
        Ok(())
    }
}

fn body() -> Vec<u8> {
    let len: usize = std::env::var("MSG_LEN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048);
    let mut b = b"Subject: bench\r\n\r\n".to_vec();
    while b.len() < len {
        b.extend_from_slice(&[b'x'; 76]);
        b.extend_from_slice(b"\r\n");
    }
    b.truncate(len);
    b.extend_from_slice(b"\r\n.\r\n");
    b
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: tls_load sessions|submission|persistent PORT N PAR");
        std::process::exit(2)
    };
    if args.len() != 5 {
        usage();
    }
    let (Ok(port), Ok(n), Ok(par)) = (
        args[2].parse::<u16>(),
        args[3].parse::<usize>(),
        args[4].parse::<usize>(),
    ) else {
        usage()
    };
    STEPS_ON.store(
        std::env::var("TLS_LOAD_STEPS").is_ok_and(|v| v == "1"),
        Ordering::Relaxed,
    );
    let mut config = rsmtpd::tls::client::config(rsmtpd::tls::client::ServerCheck::None, None);
    if std::env::var("TLS_RESUME").as_deref() == Ok("0") {
        config.resumption = rustls::client::Resumption::disabled();
    }
    let client = Arc::new(Client {
        port,
        tls: TlsConnector::from(Arc::new(config)),
        body: Arc::new(body()),
    });
    let (done, failed, secs) = match args[1].as_str() {
        "sessions" | "submission" => {
            let auth = args[1] == "submission";
            let sem = Arc::new(Semaphore::new(par.max(1)));
            let t0 = Instant::now();
            let mut tasks = Vec::with_capacity(n);
            for _ in 0..n {
                let (c, sem) = (client.clone(), sem.clone());
                tasks.push(tokio::spawn(async move {
                    let _permit = sem.acquire().await;
                    tokio::time::timeout(Duration::from_secs(60), c.session(auth))
                        .await
                        .map_err(|_| "timeout".to_string())
                        .and_then(|r| r)
                }));
            }
            let (mut done, mut failed) = (0, 0);
            for t in tasks {
                match t.await {
                    Ok(Ok(())) => done += 1,
                    Ok(Err(e)) => {
                        if failed == 0 {
                            eprintln!("tls_load: {e}");
                        }
                        failed += 1
                    }
                    Err(_) => failed += 1,
                }
            }
            (done, failed, t0.elapsed())
        }
        "persistent" => {
            let per = n / par.max(1);
            let sem = Arc::new(Semaphore::new(4));
            let mut opening = Vec::new();
            for _ in 0..par {
                let (c, sem) = (client.clone(), sem.clone());
                opening.push(tokio::spawn(async move {
                    let _permit = sem.acquire().await;
                    tokio::time::timeout(Duration::from_secs(60), c.open_tls())
                        .await
                        .ok()
                        .and_then(|r| r.ok())
                }));
            }
            let mut conns = Vec::new();
            for t in opening {
                conns.push(t.await.ok().flatten());
            }
            let t0 = Instant::now();
            let mut tasks = Vec::new();
            for conn in conns {
                let c = client.clone();
                tasks.push(tokio::spawn(async move {
                    let Some(mut r) = conn else {
                        return (0, per);
                    };
                    let mut done = 0;
                    for _ in 0..per {
                        match tokio::time::timeout(Duration::from_secs(60), c.message(&mut r)).await
                        {
                            Ok(Ok(())) => done += 1,
                            _ => return (done, per - done),
                        }
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(10), cmd(&mut r, b"QUIT\r\n"))
                        .await;
                    (done, 0)
                }));
            }
            let (mut done, mut failed) = (0, 0);
            for t in tasks {
                if let Ok((d, f)) = t.await {
                    done += d;
                    failed += f;
                }
            }
            (done, failed, t0.elapsed())
        }
        _ => usage(),
    };
    print_steps();
    println!(
        "{done} {failed} {:.3} {} {}",
        secs.as_secs_f64(),
        RETRIES.load(Ordering::Relaxed),
        RESUMED.load(Ordering::Relaxed)
    );
}
