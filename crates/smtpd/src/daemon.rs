//! Starting and stopping the daemon: logging, the spool, the listening sockets, the accept loops,
//! and SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;

use rsmtpd_config::Config;
use rsmtpd_protocol::received::PeerAddr;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;

use crate::dns::Dns;
use crate::inbound::session;
use crate::inbound::session_io::Client;
use crate::listener;
use crate::listener::Listening;
use crate::server::Server;
use crate::sys::compat::addr_text;
use crate::sys::log;

/// OpenSMTPD keeps this many descriptors aside when it sizes its session cap.
const SMTP_FD_RESERVE: u64 = 5;

pub struct Options {
    pub foreground: bool,
    pub verbose: bool,
    pub traces: u32,
    pub spool: PathBuf,
    pub socket: PathBuf,
    /// `SMTPD_RESOLVER=ADDR:PORT`: the DNS server to ask instead of /etc/resolv.conf's.
    pub resolver: Option<std::net::SocketAddr>,
    /// Who alias commands and files run as (`sys::system::smtpd_user`, checked before start).
    pub smtpd_user: String,
    /// `-P smtp|mda|mta`: start with that subsystem paused.
    pub paused: Vec<String>,
    /// How SIGHUP reads the configuration again (`crate::reload`); None: SIGHUP ends the daemon
    /// as it ends OpenSMTPD.
    pub reload: Option<Arc<crate::reload::Source>>,
}

/// Runs the daemon until SIGTERM or SIGINT. Returns the process exit status.
pub fn run(conf: Config, opts: Options, log_to_stderr: bool) -> u8 {
    let Some(hostname) = crate::sys::system::server_hostname() else {
        eprintln!("smtpd: machine does not have a hostname set");
        return 1;
    };
    if !opts.foreground {
        // Detach before any thread exists: fork() keeps only the calling thread.
        if let Err(e) = detach::detach() {
            eprintln!("smtpd: daemon: {}", e);
            return 1;
        }
    }
    log::init(log_to_stderr, opts.verbose, opts.traces);
    log::debug("debug: using \"fs\" queue backend");
    log::debug("debug: using \"ramqueue\" scheduler backend");
    log::debug("debug: using \"ram\" stat backend");
    log::info("info: OpenSMTPD 6.8.0p2 starting");
    let mut prebound = None;
    if nix::unistd::geteuid().is_root() {
        let paths = crate::parent::Paths {
            spool: opts.spool.clone(),
            socket: opts.socket.clone(),
        };
        // Privilege separation (crate::parent): the root parent binds and forks the engine,
        // which serves as the queue user; the parent stays to sign, open and start for it.
        match crate::parent::split(&conf, &paths, &opts.smtpd_user) {
            Err(lines) => return fail_start(&lines),
            Ok(crate::parent::Role::Parent(parent)) => {
                // The engine tells the waiting command how the start went.
                detach::forget();
                return parent.run(conf);
            }
            Ok(crate::parent::Role::Engine(p)) => {
                // The engine: already the queue user, one thread, nothing started yet: the
                // sandbox now, so that every thread to come inherits it (sys/sandbox.rs).
                prebound = Some(p);
                let reads = crate::sys::sandbox::config_reads(
                    &conf,
                    opts.reload.as_ref().map(|s| s.path.as_str()),
                    &[crate::tls::verify::CA_FILE],
                );
                crate::sys::sandbox::confine(&opts.spool, &reads);
                crate::tableproc::set_spawner(Box::new(crate::tableproc::spawn_by_parent));
                // As unsplit: the delivery process from the start (the parent starts it).
                if let Err(e) = crate::delivery::client::start() {
                    log::warn(&format!("warn: delivery process: {e}"));
                }
            }
            Ok(crate::parent::Role::Unsplit) => {
                // Deliveries switch to their users in the delivery process; starting it now
                // forks us while we are small and have one thread. If it cannot start, the
                // first delivery tries again.
                if let Err(e) = crate::delivery::client::start() {
                    log::warn(&format!("warn: delivery process: {e}"));
                }
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail_start(&format!("smtpd: runtime: {}", e)),
    };
    let status = rt.block_on(serve(conf, opts, hostname, prebound));
    // Every task (and the queue they share) goes with the runtime; then the committer makes
    // the last renames durable and removes its log (queue::finish_committers).
    drop(rt);
    crate::queue::finish_committers(std::time::Duration::from_secs(2));
    status
}

async fn serve(
    conf: Config,
    opts: Options,
    hostname: String,
    prebound: Option<crate::parent::Prebound>,
) -> u8 {
    let signals = catch_signals();
    let (control, mut bound_tcp, socket_file) = match prebound {
        // The engine of a split daemon: the parent bound them, and removes the socket file.
        Some(p) => match p
            .control
            .set_nonblocking(true)
            .and_then(|()| UnixListener::from_std(p.control))
        {
            Ok(c) => (c, p.tcp, None),
            Err(e) => return fail_start(&format!("smtpd: control_init: {e}")),
        },
        None => match listener::bind_control(&opts.socket) {
            // From here on the socket is ours: a start that fails leaves no socket behind.
            Ok(c) => (c, Vec::new(), Some(SocketFile(opts.socket.clone()))),
            Err(e) => return fail_start(&e),
        },
    };
    let server = match Server::new(
        conf,
        hostname,
        &opts.spool,
        Dns::new(opts.resolver),
        opts.smtpd_user.clone(),
    ) {
        Ok(s) => Arc::new(s),
        Err(e) => return fail_start(&e),
    };
    if let Some(line) = crate::startup::disk_space_warning(&opts.spool) {
        log::warn(&line);
    }
    // What is built from the configuration at start (TLS, sockets, filter processes) comes from
    // the parts a reload cannot change: the first generation serves for all of them.
    let first = server.running();
    let conf = &first.config;
    for line in crate::inbound::filter::init_trace(conf) {
        log::trace(log::Trace::Filters, format_args!("{}", line));
    }
    // System users (`auth` without a table) go through libpam, loaded at run time.
    let system_auth = conf.listeners.iter().any(|l| {
        matches!(
            l.auth,
            Some(rsmtpd_config::AuthMode::Required(None))
                | Some(rsmtpd_config::AuthMode::Optional(None))
        )
    });
    if system_auth {
        if let Err(why) = crate::auth::pam::available() {
            return fail_start(&format!(
                "smtpd: auth of system users (PAM service smtpd): {}",
                why
            ));
        }
    }
    // Certificates and keys, parsed and matched now (6.8 only finds a key that does not match
    // its certificate at the first handshake).
    let tls = match engine_tls(conf) {
        Ok(t) => Arc::new(t),
        Err(lines) => return fail_start(&lines.join("\n")),
    };
    let _ = server.tls.set(tls.clone());
    let listenings = match listener::listenings(conf, &server.hostname, Some(&tls)) {
        Ok(l) => l,
        Err(e) => return fail_start(&e),
    };
    if !tls.store.is_empty() {
        tokio::spawn(watch_pkis(tls.clone()));
    }
    // Filter processes first: OpenSMTPD accepts no session before each said register|ready.
    let admd = conf
        .options
        .admd
        .clone()
        .unwrap_or_else(|| server.hostname.clone());
    match crate::procfilter::Procs::start(conf, &admd).await {
        Ok(p) => {
            let _ = server.procs.set(p);
        }
        Err(e) => return fail_start(&e),
    }
    // Not held while serving: after a reload, its tables are freed once no session reads them.
    drop(first);
    let mut bound: Vec<(TcpListener, Arc<Listening>)> = Vec::new();
    for l in listenings {
        let Some(addr) = l.addr else { continue };
        log::debug(&format!(
            "debug: smtp: listen on {} port {} flags 0x{:x} pki \"{}\" ca \"{}\"",
            addr_text(&addr.ip()),
            l.port,
            l.flags,
            l.pki,
            l.ca
        ));
        let bound_here = match bound_tcp.iter().position(|(a, _)| *a == addr) {
            Some(i) => listener::tcp_from_std(bound_tcp.swap_remove(i).1),
            None => listener::bind_tcp(addr),
        };
        match bound_here {
            Ok(t) => bound.push((t, Arc::new(l))),
            Err(e) => {
                return fail_start(&format!(
                    "smtpd: {}",
                    crate::startup::bind_failure(&addr, &e)
                ))
            }
        }
    }
    // `-P`: the same state `smtpctl pause` sets, in place before anything runs (smtpd.c sets
    // its flags before forking its processes), so that `show status` and `resume` see it and
    // the scheduler starts paused. As OpenSMTPD, an unknown name is ignored and nothing is
    // logged.
    for p in &opts.paused {
        let s = match p.as_str() {
            "smtp" => rsmtpd_control::Subsystem::Smtp,
            "mda" => rsmtpd_control::Subsystem::Mda,
            "mta" => rsmtpd_control::Subsystem::Mta,
            _ => continue,
        };
        server.paused_at_start(s);
    }
    start_scheduler(&server, opts.resolver);
    let max = max_sessions();
    log::debug(&format!("debug: smtp: will accept at most {} clients", max));
    log::debug("debug: queue: done loading queue into scheduler");
    log::debug("debug: smtpd: scanning offline queue...");
    log::debug("debug: smtpd: offline scanning done");
    let slots = Arc::new(Semaphore::new(usize::try_from(max).unwrap_or(1024)));
    for (tcp, l) in bound {
        tokio::spawn(accept_tcp(server.clone(), l, tcp, slots.clone()));
    }
    let ctx = Arc::new(crate::control::ctx::DaemonControl::new(server.clone()));
    tokio::spawn(accept_control(control, ctx));
    // Messages sendmail left while we were down.
    let spool = opts.spool.clone();
    let socket = opts.socket.clone();
    tokio::task::spawn_blocking(move || match crate::privsep::engine() {
        // smtpctl runs as each file's owner: the root parent starts it.
        Some(client) => {
            if let Err(e) = client
                .control
                .call(&crate::privsep::proto::Request::Offline, &[])
            {
                log::warn(&format!("warn: smtpd: offline queue: {e}"));
            }
        }
        None => crate::control::offline::resubmit(
            &spool,
            &crate::control::offline::smtpctl_path(),
            &socket,
        ),
    });
    // Serving: the command that started a detached daemon exits 0 now.
    detach::ready();
    let status = wait_for_signal(signals, &server, opts.reload.as_ref()).await;
    drop(socket_file);
    // A split daemon's last line is its parent's, once every process has ended.
    if status == 0 && crate::privsep::engine().is_none() {
        log::info("Exiting");
    }
    status
}

/// A start that cannot go on: its lines go to the log as critical, and to the terminal of the
/// command that started a detached daemon (which exits 1 with them); status 1.
fn fail_start(lines: &str) -> u8 {
    for l in lines.lines() {
        log::line(log::Level::Crit, l);
    }
    detach::failed(lines);
    1
}

/// Detaching that reports how the start went. OpenSMTPD's `daemon()` lets the command exit 0
/// before anything is bound, so that a port in use or a bad spool is only in the mail log and
/// `smtpd` (or systemd's `Type=forking`, which takes the command's exit as the start's outcome)
/// believes it started. Here the command waits until the daemon serves (exit 0) or fails to
/// start (its lines on the command's stderr, exit 1); what is logged is unchanged.
mod detach {
    use std::io::{Read, Write};
    use std::os::fd::OwnedFd;
    use std::sync::Mutex;

    /// The daemon's end of the pipe to the waiting command, until the start is over.
    static REPORT: Mutex<Option<std::fs::File>> = Mutex::new(None);

    /// daemon(3) with a report: fork; the parent waits for `R` (ready) or the failure's lines
    /// (then the end of the pipe); the child makes a new session in `/`, stdio on /dev/null.
    pub fn detach() -> Result<(), String> {
        use nix::fcntl::OFlag;
        use nix::unistd::{fork, ForkResult};
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| e.desc().to_string())?;
        // SAFETY: called before any thread exists (the runtime is built after), so the child
        // has a consistent copy of the whole process.
        match unsafe { fork() }.map_err(|e| e.desc().to_string())? {
            ForkResult::Parent { .. } => {
                drop(w);
                std::process::exit(wait_report(r))
            }
            ForkResult::Child => {
                drop(r);
                nix::unistd::setsid().map_err(|e| e.desc().to_string())?;
                std::env::set_current_dir("/").map_err(|e| e.to_string())?;
                let null = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                    .map_err(|e| e.to_string())?;
                nix::unistd::dup2_stdin(&null)
                    .and_then(|()| nix::unistd::dup2_stdout(&null))
                    .and_then(|()| nix::unistd::dup2_stderr(&null))
                    .map_err(|e| e.desc().to_string())?;
                if let Ok(mut g) = REPORT.lock() {
                    *g = Some(std::fs::File::from(w));
                }
                Ok(())
            }
        }
    }

    /// The waiting command's exit status, from what the daemon reported.
    fn wait_report(r: OwnedFd) -> i32 {
        let mut f = std::fs::File::from(r);
        let mut first = [0u8; 1];
        match f.read(&mut first) {
            Ok(1) if first[0] == b'R' => 0,
            Ok(1) => {
                let mut rest = Vec::new();
                let _ = f.read_to_end(&mut rest);
                let _ = std::io::stderr().write_all(&rest);
                1
            }
            _ => {
                eprintln!("smtpd: the daemon ended while starting: see the mail log");
                1
            }
        }
    }

    /// Lets go of the pipe without a word: the parent of a split daemon leaves the report to
    /// its engine (the command sees the end only when both have closed it).
    pub fn forget() {
        if let Ok(mut g) = REPORT.lock() {
            g.take();
        }
    }

    /// Tells the waiting command that the daemon serves.
    pub fn ready() {
        if let Some(mut f) = REPORT.lock().ok().and_then(|mut g| g.take()) {
            let _ = f.write_all(b"R");
        }
    }

    /// Gives the waiting command the lines of a failed start.
    pub fn failed(lines: &str) {
        if let Some(mut f) = REPORT.lock().ok().and_then(|mut g| g.take()) {
            let mut text = String::from("E");
            text.push_str(lines);
            if !text.ends_with('\n') {
                text.push('\n');
            }
            let _ = f.write_all(text.as_bytes());
        }
    }
}

/// How often the pki files are looked at: a renewed certificate is in service within about
/// two of these (a change must hold still for one look before it is loaded).
const PKI_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Reloads certificates and keys whose files changed (certificates that renew themselves).
async fn watch_pkis(tls: Arc<crate::tls::Tls>) {
    let mut tick = tokio::time::interval(PKI_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let store = tls.store.clone();
        let Ok(lines) = tokio::task::spawn_blocking(move || poll_pkis(&store)).await else {
            continue;
        };
        for l in lines {
            if l.starts_with("info:") {
                log::info(&l);
            } else {
                log::warn(&l);
            }
        }
    }
}

/// The files of the pkis are read where the keys are: here, or in the root parent, which
/// loads what changed and sends the new certificates.
fn poll_pkis(store: &crate::tls::store::PkiStore) -> Vec<String> {
    use crate::privsep::proto::{Reply, Request};
    let Some(client) = crate::privsep::engine() else {
        return store.poll_changes();
    };
    match client.control.call(&Request::PollPki, &[]) {
        Ok((Reply::PkiChanges { lines, reloaded }, _)) => {
            for c in &reloaded {
                store.install_remote(c);
            }
            lines
        }
        Ok(_) => Vec::new(),
        Err(e) => vec![format!("warn: pki: {e}")],
    }
}

/// The TLS of the listeners and the relay: the pkis loaded here, or, in the engine of a split
/// daemon, the certificates its parent loaded (the keys stay there).
fn engine_tls(conf: &Config) -> Result<crate::tls::Tls, Vec<String>> {
    use crate::privsep::proto::{Reply, Request};
    let Some(client) = crate::privsep::engine() else {
        return crate::tls::Tls::new(conf);
    };
    match client.control.call(&Request::Hello, &[]) {
        Ok((Reply::Pkis(certs), _)) => {
            crate::tls::Tls::with_store(conf, crate::tls::store::PkiStore::from_remote(&certs))
        }
        Ok((Reply::Refused(lines), _)) => Err(lines),
        Ok(_) => Err(vec!["smtpd: privsep: unexpected reply to hello".into()]),
        Err(e) => Err(vec![format!("smtpd: {e}")]),
    }
}

/// The control socket file, removed when the daemon ends, whether it served or failed to start.
struct SocketFile(std::path::PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Starts delivery: the scheduler, with the local delivery agents and bounces injected through
/// local SMTP sessions, taking over what the queue held at start.
fn start_scheduler(server: &Arc<Server>, resolver: Option<std::net::SocketAddr>) {
    let loaded = server
        .loaded
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    let local = Arc::new(crate::delivery::agent::MdaAgent {
        server: server.clone(),
    });
    let resolver = Arc::new(Dns::new(resolver));
    let agent = Arc::new(crate::relay::RelayAgent::new(
        server.clone(),
        local,
        resolver,
    ));
    let injector = Arc::new(crate::inbound::inject::LocalInjector {
        server: server.clone(),
    });
    let settings = crate::scheduler::Settings {
        counters: server.stats.scheduler.clone(),
        mda_paused: server.paused.get(rsmtpd_control::Subsystem::Mda),
        mta_paused: server.paused.get(rsmtpd_control::Subsystem::Mta),
        ..crate::scheduler::Settings::from_config(&server.running().config)
    };
    let handle = crate::scheduler::start(server.queue.clone(), loaded, agent, injector, settings);
    let _ = server.scheduler.set(handle);
}

/// The signals the daemon catches, from the first moment: one that came before the handlers
/// would kill the daemon without its clean exit, and without a line saying why.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
}

fn catch_signals() -> Option<Signals> {
    use tokio::signal::unix::{signal, SignalKind};
    Some(Signals {
        term: signal(SignalKind::terminate()).ok()?,
        int: signal(SignalKind::interrupt()).ok()?,
        hup: signal(SignalKind::hangup()).ok()?,
        usr1: signal(SignalKind::user_defined1()).ok()?,
        usr2: signal(SignalKind::user_defined2()).ok()?,
    })
}

/// Waits for a signal that ends the daemon; the exit status it calls for. SIGTERM and SIGINT
/// stop the daemon (`debug: got signal N`, then `Exiting`, status 0). SIGHUP reloads the
/// configuration (`crate::reload`; ours on purpose: OpenSMTPD's parent ends on it with
/// `fatalx("smtpd: unexpected signal")`) and the daemon goes on, whatever the reload's outcome.
/// SIGUSR1 and SIGUSR2, which would end OpenSMTPD without a word, end ours with that line and
/// status 1 (which systemd's `Restart=on-failure` counts as a failure, and starts it again).
async fn wait_for_signal(
    signals: Option<Signals>,
    server: &Arc<Server>,
    reload: Option<&Arc<crate::reload::Source>>,
) -> u8 {
    let Some(mut s) = signals else {
        // Without signal handling we can still be killed; just never return.
        std::future::pending::<()>().await;
        return 1;
    };
    let n = loop {
        let n = tokio::select! {
            _ = s.term.recv() => 15,
            _ = s.int.recv() => 2,
            _ = s.hup.recv() => 1,
            _ = s.usr1.recv() => 10,
            _ = s.usr2.recv() => 12,
        };
        match (n, reload) {
            (1, Some(source)) => {
                // Beside the signal loop, so that SIGTERM is answered during a long reload;
                // reloads run one at a time (a burst of SIGHUPs is read as few by the kernel).
                let (server, source) = (server.clone(), source.clone());
                tokio::spawn(async move { crate::reload::reload(&server, &source).await });
            }
            _ => break n,
        }
    };
    if n == 15 || n == 2 {
        log::debug(&format!("debug: got signal {}", n));
        0
    } else {
        log::line(log::Level::Crit, "smtpd: smtpd: unexpected signal");
        1
    }
}

/// `(getdtablesize() - getdtablecount()) / 2 - SMTP_FD_RESERVE`: each session may need a
/// second descriptor (its message file).
fn max_sessions() -> u64 {
    let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _hard)| soft)
        .unwrap_or(1024);
    let used = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(16);
    (limit.saturating_sub(used) / 2)
        .saturating_sub(SMTP_FD_RESERVE)
        .max(1)
}

async fn accept_tcp(
    server: Arc<Server>,
    listen: Arc<Listening>,
    tcp: TcpListener,
    slots: Arc<Semaphore>,
) {
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        // `smtpctl pause smtp`: stop accepting until resumed.
        while server.paused.get(rsmtpd_control::Subsystem::Smtp) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let (mut stream, peer) = match tcp.accept().await {
            Ok(x) => x,
            Err(e) => {
                log::warn(&format!("warn: smtp: accept: {}", e));
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        let listen = listen.clone();
        tokio::spawn(async move {
            // smtp_accept(): a proxy-v2 listener reads the PROXY header first; the session
            // (its id, its trace, its DNS lookups) begins with the client it names.
            let peer = if listen.proxy_v2 {
                match crate::inbound::proxy::read_origin(&mut stream, peer).await {
                    Some(p) => p,
                    None => return,
                }
            } else {
                peer
            };
            let begun = session::begin(&listen);
            let ip = peer.ip().to_canonical();
            let names = server.dns.client_names(ip).await;
            for w in &names.warnings {
                log::warn(w);
            }
            let client = Client {
                peer: PeerAddr::Inet(ip),
                rdns: names.rdns,
                fcrdns: names.fcrdns,
                sockets: stream.local_addr().ok().map(|l| (peer, l)),
            };
            session::run(server, listen, stream, client, begun).await;
            drop(permit);
        });
    }
}

/// The control socket: smtpctl's commands and sendmail's submissions.
async fn accept_control(sock: UnixListener, ctx: Arc<crate::control::ctx::DaemonControl>) {
    loop {
        if let Ok((stream, _)) = sock.accept().await {
            let ctx = ctx.clone();
            tokio::spawn(async move { crate::control::serve(stream, &*ctx).await });
        }
    }
}
