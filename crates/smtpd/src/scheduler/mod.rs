//! The scheduler: when each queued envelope is tried, what happens after a
//! try, and the bounces (DSN) — OpenSMTPD's `scheduler.c` +
//! `scheduler_ramqueue.c`, the delivery-result half of `queue.c`, and
//! `bounce.c`.
//!
//! * [`schedule`]: the pure ram queue (times in, tasks out);
//! * [`bounce`]: the pure DSN composer;
//! * this file: the async runner that owns the [`Queue`], runs an [`Agent`]
//!   per due envelope (bounded), applies results to the queue, queues
//!   bounces, hands finished reports to an [`Injector`], and logs; and the
//!   [`Handle`] that sessions and the control socket talk to.
//!
//! How the daemon starts it:
//!
//! ```ignore
//! let loaded = queue.load()?;                      // before any session
//! let handle = scheduler::start(queue.clone(), loaded.envelopes,
//!     agent, injector, Settings::from_config(&config));
//! // after each commit: handle.insert(envelopes_of_the_message);
//! // smtpctl: handle.list(), schedule(..), remove(..), pause(..), resume(..)
//! ```

pub mod bounce;
pub mod schedule;

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::queue::envelope::{DSN_NEVER, DSN_SUCCESS};
use crate::queue::{BounceInfo, BounceType, DeliveryType, Envelope, EvpId, Queue};
use crate::sys::log;
use crate::sys::stat;

pub use bounce::{Report, ReportKey};
pub use schedule::{EnvelopeState, Limits, RunState, Schedule, Target, Task, Time};

use bounce::{
    ESC_DELIVERY_TIME_EXPIRED, ESC_OTHER_MAIL_SYSTEM_STATUS, ESC_ROUTING_LOOP_DETECTED,
    ESC_STATUS_OK, ESC_STATUS_PERMFAIL, ESC_STATUS_TEMPFAIL,
};

/// A boxed future, so that the traits stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How one delivery attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentResult {
    /// Logged `result=Ok stat=Delivered`.
    Ok,
    /// Tried again later. `error` goes to the envelope's `errorline` (and
    /// the DSN: `"last line"`, `exited abnormally`...), `stat` to the log
    /// (`Error (temporary failure: "last line")`), `code` is the enhanced
    /// status detail (30 → 4.3.0).
    TempFail {
        error: String,
        stat: String,
        code: u8,
    },
    /// Bounced at once.
    PermFail {
        error: String,
        stat: String,
        code: u8,
    },
    /// The message already holds `Delivered-To: <dest>`: logged `PermFail
    /// stat=Loop detected`, bounced as OpenSMTPD does (a delayed DSN, 4.4.6).
    Loop,
}

impl AgentResult {
    /// A temporary failure whose log text is `Error (ERROR)`.
    pub fn temp(error: impl Into<String>) -> AgentResult {
        let error = error.into();
        AgentResult::TempFail {
            stat: format!("Error ({})", error),
            error,
            code: ESC_OTHER_MAIL_SYSTEM_STATUS,
        }
    }

    /// A permanent failure whose log text is `Error (ERROR)`.
    pub fn perm(error: impl Into<String>) -> AgentResult {
        let error = error.into();
        AgentResult::PermFail {
            stat: format!("Error ({})", error),
            error,
            code: ESC_OTHER_MAIL_SYSTEM_STATUS,
        }
    }
}

/// Delivers one envelope (local: maildir, mbox, mda, lmtp; or relay). The
/// envelope is as loaded from the queue; `message` is the queued message
/// file (`queue/XX/MSGID/message`). The agent must not touch the queue: the
/// runner updates or deletes the envelope from the result. For `type: mda`
/// envelopes the runner writes the `mda delivery` log line; a relay agent
/// (`type: mta`) logs its own `mta delivery` lines.
pub trait Agent: Send + Sync + 'static {
    fn deliver<'a>(&'a self, env: &'a Envelope, message: &'a Path) -> BoxFuture<'a, AgentResult>;
}

/// Submits a bounce the way OpenSMTPD's bounce session does, through a
/// local SMTP session (`address=local`): `EHLO SMTPNAME`, `MAIL FROM: <>`,
/// `RCPT TO: <TO>`, `DATA`, then `payload` (already CRLF, already "stuffed"
/// as bounce.c does it) followed by `.\r\n`, then `QUIT`.
/// `Ok` once the final dot got a 2xx; `Err(reply line)` otherwise: a
/// `5xx`/`6xx` line drops the bounce (PermFail), anything else (4xx, I/O
/// error text) retries it later.
pub trait Injector: Send + Sync + 'static {
    fn inject<'a>(
        &'a self,
        smtpname: &'a str,
        to: &'a str,
        payload: &'a [u8],
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// Where "now" comes from.
#[derive(Clone, Debug)]
pub enum Clock {
    /// The system's wall clock.
    System,
    /// A clock that moves only when told (tests: days of retries in
    /// milliseconds).
    Manual(Arc<ManualClock>),
}

/// The time of a [`Clock::Manual`].
#[derive(Debug, Default)]
pub struct ManualClock {
    now: std::sync::atomic::AtomicI64,
    moved: tokio::sync::Notify,
}

impl ManualClock {
    pub fn new(now: Time) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now: std::sync::atomic::AtomicI64::new(now),
            moved: tokio::sync::Notify::new(),
        })
    }

    pub fn now(&self) -> Time {
        self.now.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn set(&self, t: Time) {
        self.now.store(t, std::sync::atomic::Ordering::SeqCst);
        self.moved.notify_waiters();
    }

    pub fn advance(&self, secs: i64) {
        self.set(self.now() + secs);
    }
}

impl Clock {
    pub fn now(&self) -> Time {
        match self {
            Clock::System => crate::sys::date::now(),
            Clock::Manual(m) => m.now(),
        }
    }

    /// Returns once `now() >= t`.
    async fn sleep_until(&self, t: Time) {
        match self {
            Clock::System => {
                let wait = t.saturating_sub(self.now()).max(0) as u64;
                tokio::time::sleep(std::time::Duration::from_secs(wait)).await
            }
            Clock::Manual(m) => loop {
                let moved = m.moved.notified();
                tokio::pin!(moved);
                moved.as_mut().enable();
                if m.now() >= t {
                    return;
                }
                moved.await;
            },
        }
    }
}

/// What the scheduler takes from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `queue ttl` (default 4 days).
    pub queue_ttl: i64,
    /// `bounce warn-interval` (default 4h).
    pub bounce_warn: Vec<i64>,
    /// Per-action `ttl`.
    pub action_ttl: HashMap<String, i64>,
    /// `mda limit max-session` (50): local deliveries at once.
    pub mda_max_session: usize,
    /// `mda limit max-session-per-user` (7).
    pub mda_max_user_session: usize,
    /// `scheduler limit max-inflight`, `max-schedule`.
    pub limits: Limits,
    pub clock: Clock,
    /// `smtpctl monitor`'s envelope and delivery counters, shared with whoever reports them.
    pub counters: Arc<Counters>,
    /// `smtpd -P mda|mta`: start with local deliveries or relaying paused.
    pub mda_paused: bool,
    pub mta_paused: bool,
}

/// The scheduler's part of `smtpctl monitor` (OpenSMTPD's `struct stat_digest`, which control.c
/// adds up from the `stat_increment()`s of scheduler.c and queue.c): running totals since start.
#[derive(Debug, Default)]
pub struct Counters {
    /// `scheduler.envelope` up: envelopes handed to the scheduler (new, loaded at start, bounces).
    pub enqueued: AtomicU64,
    /// `scheduler.envelope` down: envelopes done with (delivered, failed, expired, removed).
    pub dequeued: AtomicU64,
    pub expired: AtomicU64,
    pub removed: AtomicU64,
    /// `queue.bounce`: bounce envelopes created.
    pub bounce: AtomicU64,
    pub ok: AtomicU64,
    pub tempfail: AtomicU64,
    pub permfail: AtomicU64,
    pub looped: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            queue_ttl: i64::from(rsmtpd_config::model::DEFAULT_QUEUE_TTL),
            bounce_warn: vec![3600 * 4],
            action_ttl: HashMap::new(),
            mda_max_session: 50,
            mda_max_user_session: 7,
            limits: Limits::default(),
            clock: Clock::System,
            counters: Arc::default(),
            mda_paused: false,
            mta_paused: false,
        }
    }
}

impl Settings {
    pub fn from_config(conf: &rsmtpd_config::Config) -> Settings {
        let mut s = Settings {
            queue_ttl: i64::from(conf.options.queue_ttl),
            bounce_warn: conf
                .options
                .bounce_warn
                .iter()
                .map(|&d| i64::from(d))
                .collect(),
            ..Settings::default()
        };
        for a in &conf.actions {
            if let Some(t) = a.ttl {
                s.action_ttl.insert(a.name.clone(), i64::from(t));
            }
        }
        for (k, v) in &conf.options.mda_limits {
            let v = usize::try_from(*v).unwrap_or(1).max(1);
            match k.as_str() {
                "max-session" => s.mda_max_session = v,
                "max-session-per-user" => s.mda_max_user_session = v,
                _ => {}
            }
        }
        for (k, v) in &conf.options.scheduler_limits {
            let v = usize::try_from(*v).unwrap_or(1).max(1);
            match k.as_str() {
                "max-inflight" => s.limits.max_inflight = v,
                "max-schedule" => s.limits.max_schedule = v,
                _ => {}
            }
        }
        s
    }

    /// The ttl the scheduler applies (`scheduler_info`): the action's `ttl`,
    /// else the envelope's own, else `queue ttl`; bounces get `queue ttl`.
    pub fn ttl_of(&self, env: &Envelope) -> i64 {
        if env.kind == DeliveryType::Bounce {
            return self.queue_ttl;
        }
        if let Some(t) = self.action_ttl.get(&env.dispatcher) {
            if *t > 0 {
                return *t;
            }
        }
        if env.ttl > 0 {
            env.ttl
        } else {
            self.queue_ttl
        }
    }
}

pub use rsmtpd_control::text::duration_to_text;

/// scheduler.c's counters for `n` envelopes whose delivery ended so (`Ok`, `TempFail`,
/// `PermFail`, `Loop`): no longer in flight, and no longer queued unless to be retried.
fn count_delivery(verdict: &str, n: usize) {
    stat::increment(
        match verdict {
            "Ok" => "scheduler.delivery.ok",
            "TempFail" => "scheduler.delivery.tempfail",
            "PermFail" => "scheduler.delivery.permfail",
            _ => "scheduler.delivery.loop",
        },
        n,
    );
    stat::decrement("scheduler.envelope.inflight", n);
    if verdict != "TempFail" {
        stat::decrement("scheduler.envelope", n);
    }
}

/// The `mda delivery` line (mda.c `mda_log`).
pub fn mda_log_line(session: u64, env: &Envelope, now: Time, result: &str, stat: &str) -> String {
    let sender = if !env.sender.user.is_empty() && !env.sender.domain.is_empty() {
        format!("{}@{}", env.sender.user, env.sender.domain)
    } else {
        String::new()
    };
    let user = if env.mda_user.is_empty() {
        &env.dest.user
    } else {
        &env.mda_user
    };
    format!(
        "{:016x} mda delivery evpid={:016x} from=<{}> to=<{}@{}> rcpt=<{}@{}> user={} delay={} result={} stat={}",
        session,
        env.id.0,
        sender,
        env.dest.user,
        env.dest.domain,
        env.rcpt.user,
        env.rcpt.domain,
        user,
        duration_to_text(now - env.ctime),
        result,
        stat
    )
}

/// The queue's `Expire`/`Remove` line (queue.c `queue_log`).
pub fn queue_log_line(env: &Envelope, now: Time, prefix: &str, status: &str) -> String {
    let rcpt = if env.rcpt.user != env.dest.user || env.rcpt.domain != env.dest.domain {
        format!("{}@{}", env.rcpt.user, env.rcpt.domain)
    } else {
        "-".to_string()
    };
    format!(
        "{}: {} for {:016x}: from=<{}@{}>, to=<{}@{}>, rcpt=<{}>, delay={}, stat={}",
        if env.kind == DeliveryType::Mda {
            "delivery"
        } else {
            "relay"
        },
        prefix,
        env.id.0,
        env.sender.user,
        env.sender.domain,
        env.dest.user,
        env.dest.domain,
        rcpt,
        duration_to_text(now - env.ctime),
        status
    )
}

enum Cmd {
    Insert(Vec<Envelope>),
    Discover(Vec<Envelope>),
    List(oneshot::Sender<Vec<EnvelopeState>>),
    Schedule(Target, oneshot::Sender<usize>),
    Remove(Target, oneshot::Sender<usize>),
    Suspend(Target, oneshot::Sender<usize>),
    Resume(Target, oneshot::Sender<usize>),
    Pause(DeliveryType, bool),
    Idle(oneshot::Sender<bool>),
    Shutdown(oneshot::Sender<()>),
}

enum Event {
    Delivered {
        env: Box<Envelope>,
        result: AgentResult,
        session: u64,
    },
    Bounced {
        report: Report,
        timeout: Time,
        result: Result<(), String>,
    },
}

/// The scheduler's mailbox; cheap to clone.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::UnboundedSender<Cmd>,
}

impl Handle {
    /// New committed envelopes (`IMSG_QUEUE_ENVELOPE_SUBMIT` + commit):
    /// tried at once.
    pub fn insert(&self, envelopes: Vec<Envelope>) {
        let _ = self.tx.send(Cmd::Insert(envelopes));
    }

    /// `smtpctl discover`: envelopes found on disk; those not known yet are scheduled at once
    /// (`IMSG_QUEUE_DISCOVER_EVPID` + `_MSGID`).
    pub fn discover(&self, envelopes: Vec<Envelope>) {
        let _ = self.tx.send(Cmd::Discover(envelopes));
    }

    async fn ask<T: Default>(&self, f: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> T {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(f(tx)).is_err() {
            return T::default();
        }
        rx.await.unwrap_or_default()
    }

    /// Every envelope with its state, in evpid order (`smtpctl show queue`
    /// joins this with `Queue::envelope_load`).
    pub async fn list(&self) -> Vec<EnvelopeState> {
        self.ask(Cmd::List).await
    }

    /// `smtpctl schedule ID|all`: how many envelopes were scheduled.
    pub async fn schedule(&self, target: Target) -> usize {
        self.ask(|t| Cmd::Schedule(target, t)).await
    }

    /// `smtpctl remove ID|all`.
    pub async fn remove(&self, target: Target) -> usize {
        self.ask(|t| Cmd::Remove(target, t)).await
    }

    /// `smtpctl pause envelope ID|all`.
    pub async fn suspend(&self, target: Target) -> usize {
        self.ask(|t| Cmd::Suspend(target, t)).await
    }

    /// `smtpctl resume envelope ID|all`.
    pub async fn resume(&self, target: Target) -> usize {
        self.ask(|t| Cmd::Resume(target, t)).await
    }

    /// `smtpctl pause mda|mta` (true) / `resume mda|mta` (false). The
    /// caller logs `info: mda paused` etc.
    pub fn pause(&self, kind: DeliveryType, paused: bool) {
        let _ = self.tx.send(Cmd::Pause(kind, paused));
    }

    /// True when nothing is in flight and no bounce report is waiting (tests).
    pub async fn idle(&self) -> bool {
        self.ask(Cmd::Idle).await
    }

    /// Stops the runner; deliveries in flight finish unobserved (their
    /// envelopes stay queued and are tried again at the next start).
    pub async fn shutdown(&self) {
        self.ask(Cmd::Shutdown).await
    }
}

/// Starts the runner on the current tokio runtime with the envelopes
/// `Queue::load` returned.
pub fn start(
    queue: Queue,
    envelopes: Vec<Envelope>,
    agent: Arc<dyn Agent>,
    injector: Arc<dyn Injector>,
    settings: Settings,
) -> Handle {
    let (tx, rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let mut runner = Runner {
        queue,
        agent,
        injector,
        sched: Schedule::new(settings.limits),

        mda_sem: Arc::new(Semaphore::new(settings.mda_max_session)),
        user_sems: HashMap::new(),
        mda_users: HashMap::new(),
        settings,
        reports: Vec::new(),
        ev_tx,
    };
    runner
        .sched
        .pause(DeliveryType::Mda, runner.settings.mda_paused);
    runner
        .sched
        .pause(DeliveryType::Mta, runner.settings.mta_paused);
    // The queue hands what it loads at start to the scheduler as submitted, then committed.
    stat::increment("scheduler.envelope.incoming", envelopes.len());
    stat::decrement("scheduler.envelope.incoming", envelopes.len());
    runner.insert(envelopes);
    tokio::spawn(runner.run(rx, ev_rx));
    Handle { tx }
}

struct PendingReport {
    report: Report,
    timeout: Time,
}

struct Runner {
    queue: Queue,
    agent: Arc<dyn Agent>,
    injector: Arc<dyn Injector>,
    settings: Settings,
    sched: Schedule,
    mda_sem: Arc<Semaphore>,
    user_sems: HashMap<String, Arc<Semaphore>>,
    /// Local deliveries in flight per user (`mda.user` counts the users with any).
    mda_users: HashMap<String, usize>,
    /// Bounce reports being gathered (`bounce.c`'s pending list), sent one
    /// second after their last envelope joined.
    reports: Vec<PendingReport>,
    ev_tx: mpsc::UnboundedSender<Event>,
}

impl Runner {
    fn now(&self) -> Time {
        self.settings.clock.now()
    }

    fn insert(&mut self, envelopes: Vec<Envelope>) {
        Counters::add(&self.settings.counters.enqueued, envelopes.len() as u64);
        stat::increment("scheduler.envelope", envelopes.len());
        for env in envelopes {
            let ttl = self.settings.ttl_of(&env);
            self.sched
                .insert(env.id, env.kind, env.ctime, ttl, env.retry);
            if log::tracing(log::Trace::Scheduler) {
                log::trace(
                    log::Trace::Scheduler,
                    format_args!("scheduler: inserting evp:{}", env.id),
                );
            }
        }
    }

    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Cmd>,
        mut ev_rx: mpsc::UnboundedReceiver<Event>,
    ) {
        loop {
            let now = self.now();
            self.flush_reports(now);
            loop {
                let tasks = self.sched.batch(now);
                if tasks.is_empty() {
                    break;
                }
                for t in tasks {
                    self.task(t, now);
                }
            }
            let mut wake = self.sched.wakeup();
            if let Some(t) = self.reports.iter().map(|r| r.timeout).min() {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
            let clock = self.settings.clock.clone();
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => return,
                    Some(Cmd::Shutdown(done)) => {
                        let _ = done.send(());
                        return;
                    }
                    Some(c) => self.command(c),
                },
                Some(ev) = ev_rx.recv() => self.event(ev),
                _ = sleep_until(&clock, wake) => {}
            }
        }
    }

    fn command(&mut self, c: Cmd) {
        let now = self.now();
        match c {
            Cmd::Insert(envs) => self.insert(envs),
            Cmd::Discover(envs) => {
                let mut new = Vec::new();
                for e in envs {
                    if self.sched.contains(e.id) {
                        log::debug(&format!("debug: scheduler: evp:{} already scheduled", e.id));
                        continue;
                    }
                    log::trace(
                        log::Trace::Scheduler,
                        format_args!("scheduler: discovering evp:{}", e.id),
                    );
                    stat::increment("scheduler.envelope.incoming", 1);
                    new.push(e);
                }
                stat::decrement("scheduler.envelope.incoming", new.len());
                self.insert(new);
            }
            Cmd::List(tx) => {
                let _ = tx.send(self.sched.list());
            }
            Cmd::Schedule(t, tx) => {
                let _ = tx.send(self.sched.schedule_now(t, now));
            }
            Cmd::Remove(t, tx) => {
                let _ = tx.send(self.sched.remove(t, now));
            }
            Cmd::Suspend(t, tx) => {
                let _ = tx.send(self.sched.suspend(t));
            }
            Cmd::Resume(t, tx) => {
                let _ = tx.send(self.sched.resume(t));
            }
            Cmd::Pause(kind, p) => {
                // scheduler.c's lines, as it gets the order from the control process.
                log::trace(
                    log::Trace::Scheduler,
                    format_args!(
                        "scheduler: {} {}",
                        if p { "pausing" } else { "resuming" },
                        if kind == DeliveryType::Mda {
                            "mda"
                        } else {
                            "mta"
                        }
                    ),
                );
                self.sched.pause(kind, p)
            }
            Cmd::Idle(tx) => {
                let _ = tx.send(self.sched.inflight() == 0 && self.reports.is_empty());
            }
            Cmd::Shutdown(_) => {}
        }
    }

    fn load(&self, evpid: EvpId, what: &str) -> Option<Envelope> {
        match self.queue.envelope_load(evpid) {
            Ok(env) => Some(env),
            Err(_) => {
                log::warn(&format!("queue: {}: failed to load envelope", what));
                None
            }
        }
    }

    fn task(&mut self, task: Task, now: Time) {
        match task {
            Task::Remove(evpid) => {
                let c = &self.settings.counters;
                Counters::add(&c.removed, 1);
                Counters::add(&c.dequeued, 1);
                stat::increment("scheduler.envelope.removed", 1);
                stat::decrement("scheduler.envelope", 1);
                if let Ok(env) = self.queue.envelope_load(evpid) {
                    log::info(&queue_log_line(
                        &env,
                        now,
                        "Remove",
                        "Removed by administrator",
                    ));
                    let _ = self.queue.envelope_delete(evpid);
                }
            }
            Task::Expire(evpid) => {
                let c = &self.settings.counters;
                Counters::add(&c.expired, 1);
                Counters::add(&c.dequeued, 1);
                stat::increment("scheduler.envelope.expired", 1);
                stat::decrement("scheduler.envelope", 1);
                if let Ok(mut env) = self.queue.envelope_load(evpid) {
                    env.errorline = "Envelope expired".into();
                    env.esc_class = ESC_STATUS_TEMPFAIL;
                    env.esc_code = ESC_DELIVERY_TIME_EXPIRED;
                    self.queue_bounce(&env, BounceInfo::default(), now);
                    log::info(&queue_log_line(&env, now, "Expire", "Envelope expired"));
                    let _ = self.queue.envelope_delete(evpid);
                }
            }
            Task::Bounce(evpid) => {
                stat::increment("scheduler.envelope.inflight", 1);
                let Some(env) = self.load(evpid, "bounce") else {
                    self.sched.done(evpid);
                    return;
                };
                if env.kind != DeliveryType::Bounce {
                    log::warn(&format!(
                        "warn: bounce: evp:{} is not of type D_BOUNCE!",
                        evpid
                    ));
                    self.sched.done(evpid);
                    return;
                }
                let key = ReportKey::of(&env);
                let pos = self.reports.iter().position(|r| r.report.key == key);
                // bounce.c's bounce_add.
                stat::increment("bounce.envelope", 1);
                let mut p = match pos {
                    Some(i) => self.reports.remove(i),
                    None => {
                        stat::increment("bounce.message", 1);
                        PendingReport {
                            report: Report::new(&env),
                            timeout: 0,
                        }
                    }
                };
                p.report.add(&env);
                p.timeout = now + 1;
                self.reports.push(p);
            }
            Task::Deliver(evpid) | Task::Transfer(evpid) => {
                stat::increment("scheduler.envelope.inflight", 1);
                let Some(env) = self.load(evpid, "deliver") else {
                    self.sched.done(evpid);
                    return;
                };
                let local = matches!(task, Task::Deliver(_));
                let path = self.queue.message_path(evpid.msgid());
                let agent = self.agent.clone();
                let tx = self.ev_tx.clone();
                let (sem, usem) = if local {
                    let user = if env.mda_user.is_empty() {
                        env.dest.user.clone()
                    } else {
                        env.mda_user.clone()
                    };
                    // mda.c's counters: an envelope pending, then running, for a user.
                    stat::increment("mda.envelope", 1);
                    stat::increment("mda.pending", 1);
                    let active = self.mda_users.entry(user.clone()).or_insert(0);
                    if *active == 0 {
                        stat::increment("mda.user", 1);
                    }
                    *active += 1;
                    let per_user = self.settings.mda_max_user_session;
                    let usem = self
                        .user_sems
                        .entry(user)
                        .or_insert_with(|| Arc::new(Semaphore::new(per_user)))
                        .clone();
                    (Some(self.mda_sem.clone()), Some(usem))
                } else {
                    (None, None)
                };
                // Forget idle users now and then.
                if self.user_sems.len() > 1024 {
                    let max = self.settings.mda_max_user_session;
                    self.user_sems
                        .retain(|_, s| Arc::strong_count(s) > 1 || s.available_permits() != max);
                }
                tokio::spawn(async move {
                    let _p = match sem {
                        Some(s) => s.acquire_owned().await.ok(),
                        None => None,
                    };
                    let _u = match usem {
                        Some(s) => s.acquire_owned().await.ok(),
                        None => None,
                    };
                    let session = rand::random::<u64>();
                    if local {
                        stat::decrement("mda.pending", 1);
                        stat::increment("mda.running", 1);
                    }
                    let result = agent.deliver(&env, &path).await;
                    if local {
                        stat::decrement("mda.running", 1);
                        stat::decrement("mda.envelope", 1);
                    }
                    let _ = tx.send(Event::Delivered {
                        env: Box::new(env),
                        result,
                        session,
                    });
                });
            }
        }
    }

    /// `queue_bounce`: a bounce envelope of type bounce in the same message,
    /// unless NOTIFY=NEVER, the envelope is itself a bounce, or the sender is
    /// `<>`.
    fn queue_bounce(&mut self, env: &Envelope, info: BounceInfo, now: Time) {
        if env.dsn_notify & DSN_NEVER != 0 {
            return;
        }
        if env.kind == DeliveryType::Bounce {
            log::warn("warn: queue: double bounce!");
            return;
        }
        if env.sender.user.is_empty() {
            log::warn("warn: queue: no return path!");
            return;
        }
        let mut b = env.clone();
        b.kind = DeliveryType::Bounce;
        b.bounce = info;
        b.retry = 0;
        b.last_try = 0;
        b.ctime = now;
        b.ttl = bounce::BOUNCE_TTL;
        match self.queue.create_envelope(env.id.msgid(), &mut b) {
            Err(_) => log::warn("warn: queue: cannot bounce!"),
            Ok(id) => {
                log::debug(&format!(
                    "debug: queue: bouncing evp:{} as evp:{}",
                    env.id, id
                ));
                Counters::add(&self.settings.counters.bounce, 1);
                stat::increment("queue.bounce", 1);
                stat::increment("scheduler.envelope.incoming", 1);
                stat::decrement("scheduler.envelope.incoming", 1);
                self.insert(vec![b]);
            }
        }
    }

    fn event(&mut self, ev: Event) {
        let now = self.now();
        match ev {
            Event::Delivered {
                env,
                result,
                session,
            } => self.delivered(*env, result, session, now),
            Event::Bounced {
                report,
                timeout,
                result,
            } => self.bounced(report, timeout, result, now),
        }
    }

    fn delivered(&mut self, mut env: Envelope, result: AgentResult, session: u64, now: Time) {
        let evpid = env.id;
        let log_mda = env.kind == DeliveryType::Mda;
        self.count_result(&result);
        if env.kind == DeliveryType::Mda {
            let user = if env.mda_user.is_empty() {
                &env.dest.user
            } else {
                &env.mda_user
            };
            if let Some(active) = self.mda_users.get_mut(user) {
                *active = active.saturating_sub(1);
                if *active == 0 {
                    self.mda_users.remove(user);
                    stat::decrement("mda.user", 1);
                }
            }
        }
        match result {
            AgentResult::Ok => {
                if log_mda {
                    log::info(&mda_log_line(session, &env, now, "Ok", "Delivered"));
                }
                if env.dsn_notify & DSN_SUCCESS != 0 && env.kind == DeliveryType::Mda {
                    env.esc_class = ESC_STATUS_OK;
                    let info = BounceInfo {
                        kind: BounceType::Delivered,
                        ..BounceInfo::default()
                    };
                    self.queue_bounce(&env, info, now);
                }
                let _ = self.queue.envelope_delete(evpid);
                self.sched.done(evpid);
            }
            AgentResult::TempFail { error, stat, code } => {
                if log_mda {
                    log::info(&mda_log_line(session, &env, now, "TempFail", &stat));
                }
                env.errorline = error;
                env.esc_class = ESC_STATUS_TEMPFAIL;
                env.esc_code = code;
                env.retry = env.retry.saturating_add(1);
                self.tempfailed(env, now);
            }
            AgentResult::PermFail { error, stat, code } => {
                if log_mda {
                    log::info(&mda_log_line(session, &env, now, "PermFail", &stat));
                }
                env.errorline = error;
                env.esc_class = ESC_STATUS_PERMFAIL;
                env.esc_code = code;
                self.queue_bounce(&env, BounceInfo::default(), now);
                let _ = self.queue.envelope_delete(evpid);
                self.sched.done(evpid);
            }
            AgentResult::Loop => {
                if log_mda {
                    log::info(&mda_log_line(
                        session,
                        &env,
                        now,
                        "PermFail",
                        "Loop detected",
                    ));
                }
                env.errorline = "Loop detected".into();
                env.esc_class = ESC_STATUS_TEMPFAIL;
                env.esc_code = ESC_ROUTING_LOOP_DETECTED;
                self.queue_bounce(&env, BounceInfo::default(), now);
                let _ = self.queue.envelope_delete(evpid);
                self.sched.done(evpid);
            }
        }
    }

    /// `monitor`'s counters for a delivery's outcome (scheduler.c's `IMSG_QUEUE_DELIVERY_*`).
    fn count_result(&self, result: &AgentResult) {
        let c = &self.settings.counters;
        let (counter, done) = match result {
            AgentResult::Ok => (&c.ok, true),
            AgentResult::TempFail { .. } => (&c.tempfail, false),
            AgentResult::PermFail { .. } => (&c.permfail, true),
            AgentResult::Loop => (&c.looped, true),
        };
        Counters::add(counter, 1);
        if done {
            Counters::add(&c.dequeued, 1);
        }
        count_delivery(
            match result {
                AgentResult::Ok => "Ok",
                AgentResult::TempFail { .. } => "TempFail",
                AgentResult::PermFail { .. } => "PermFail",
                AgentResult::Loop => "Loop",
            },
            1,
        );
    }

    /// The envelope (retry already counted) failed temporarily: save it,
    /// reschedule it, and send the delay warning that is due, if any
    /// (`IMSG_QUEUE_DELIVERY_TEMPFAIL` in scheduler.c).
    fn tempfailed(&mut self, mut env: Envelope, now: Time) {
        if self.queue.envelope_update(&env).is_err() {
            log::warn(&format!("warn: could not update envelope {}", env.id));
        }
        let Some(next) = self.sched.tempfail(env.id, env.retry, now) else {
            return;
        };
        for &d in &self.settings.bounce_warn {
            if d == 0 {
                break;
            }
            let ts = env.ctime + d;
            if next >= ts && env.last_bounce < ts {
                let info = BounceInfo {
                    kind: BounceType::Delayed,
                    delay: d,
                    ttl: self.settings.ttl_of(&env),
                };
                self.queue_bounce(&env, info, now);
                env.last_bounce = ts;
                if self.queue.envelope_update(&env).is_err() {
                    log::warn(&format!("warn: could not update envelope {}", env.id));
                }
                break;
            }
        }
    }

    /// Sends the reports whose gathering second is over, one "session"
    /// (one boundary) per listener name.
    fn flush_reports(&mut self, now: Time) {
        if !self.reports.iter().any(|r| r.timeout <= now) {
            return;
        }
        let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reports)
            .into_iter()
            .partition(|r| r.timeout <= now);
        self.reports = rest;
        let mut sessions: Vec<(String, Vec<PendingReport>)> = Vec::new();
        for r in due {
            match sessions
                .iter_mut()
                .find(|(n, _)| *n == r.report.key.smtpname)
            {
                Some((_, v)) => v.push(r),
                None => sessions.push((r.report.key.smtpname.clone(), vec![r])),
            }
        }
        for (smtpname, reports) in sessions {
            let injector = self.injector.clone();
            let queue = self.queue.clone();
            let tx = self.ev_tx.clone();
            let date = crate::sys::date::time_to_text(now);
            tokio::spawn(async move {
                stat::increment("bounce.session", 1);
                let boundary = bounce::new_boundary();
                for p in reports {
                    let q = queue.clone();
                    let msgid = p.report.key.msgid;
                    let read = tokio::task::spawn_blocking(move || {
                        let mut msg = Vec::new();
                        std::io::Read::read_to_end(&mut q.open_message(msgid)?, &mut msg)?;
                        Ok::<_, std::io::Error>(msg)
                    })
                    .await;
                    let result = match read {
                        Err(_) | Ok(Err(_)) => Err("Could not open message fd".to_string()),
                        Ok(Ok(msg)) => {
                            let payload = bounce::compose(&p.report, &msg, &date, boundary);
                            injector.inject(&smtpname, &p.report.to, &payload).await
                        }
                    };
                    let _ = tx.send(Event::Bounced {
                        report: p.report,
                        timeout: p.timeout,
                        result,
                    });
                }
                stat::decrement("bounce.session", 1);
            });
        }
    }

    /// `bounce_delivery`.
    fn bounced(&mut self, report: Report, timeout: Time, result: Result<(), String>, now: Time) {
        let n = report.lines.len();
        let (verdict, status) = match &result {
            Ok(()) => ("Ok", String::new()),
            Err(s) if s.starts_with('5') || s.starts_with('6') => ("PermFail", s.clone()),
            Err(s) => ("TempFail", s.clone()),
        };
        // Each envelope of the report is a delivery for `monitor`, as bounce.c reports each to
        // the queue as ok, tempfail or permfail.
        let c = &self.settings.counters;
        let n64 = n as u64;
        match verdict {
            "Ok" => Counters::add(&c.ok, n64),
            "PermFail" => Counters::add(&c.permfail, n64),
            _ => Counters::add(&c.tempfail, n64),
        }
        if verdict != "TempFail" {
            Counters::add(&c.dequeued, n64);
        }
        count_delivery(verdict, n);
        stat::decrement("bounce.message", 1);
        stat::decrement("bounce.envelope", n);
        for line in &report.lines {
            if verdict == "TempFail" {
                let Ok(mut env) = self.queue.envelope_load(line.evpid) else {
                    self.sched.done(line.evpid);
                    continue;
                };
                env.retry = env.retry.saturating_add(1);
                env.last_try = timeout;
                env.errorline = status.clone();
                self.tempfailed(env, now);
            } else {
                self.sched.done(line.evpid);
                let _ = self.queue.envelope_delete(line.evpid);
            }
        }
        if verdict != "Ok" {
            log::warn(&format!(
                "warn: {} injecting failure report on message {} to <{}> for {} envelope{}: {}",
                verdict,
                report.key.msgid,
                report.to,
                n,
                if n > 1 { "s" } else { "" },
                status
            ));
        }
    }
}

async fn sleep_until(clock: &Clock, wake: Option<Time>) {
    match wake {
        Some(t) => clock.sleep_until(t).await,
        None => std::future::pending().await,
    }
}
