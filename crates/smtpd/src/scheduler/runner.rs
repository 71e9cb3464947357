//! The async runner: it owns the [`Queue`], runs an [`Agent`] per due envelope (bounded),
//! applies results to the queue, queues bounces, hands finished reports to an [`Injector`],
//! and logs. The [`super::Handle`] talks to it through [`Cmd`]s.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::queue::envelope::{DSN_NEVER, DSN_SUCCESS};
use crate::queue::{BounceInfo, BounceType, DeliveryType, Envelope, EvpId, Queue};
use crate::sys::log;
use crate::sys::stat;

use super::bounce::{Report, ReportKey};
use super::schedule::{EnvelopeState, Schedule, Target, Task, Time};
use super::{
    mda_log_line, queue_log_line, Agent, AgentResult, Clock, Counters, Injector, Settings,
};

use super::bounce::{
    self, ESC_DELIVERY_TIME_EXPIRED, ESC_ROUTING_LOOP_DETECTED, ESC_STATUS_OK, ESC_STATUS_PERMFAIL,
    ESC_STATUS_TEMPFAIL,
};

pub(super) enum Cmd {
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

pub(super) enum Event {
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

struct PendingReport {
    report: Report,
    timeout: Time,
}

pub(super) struct Runner {
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
    /// The runner, and the receiving end of the events its tasks send back.
    pub(super) fn new(
        queue: Queue,
        envelopes: Vec<Envelope>,
        agent: Arc<dyn Agent>,
        injector: Arc<dyn Injector>,
        settings: Settings,
    ) -> (Runner, mpsc::UnboundedReceiver<Event>) {
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
        (runner, ev_rx)
    }

    fn now(&self) -> Time {
        self.settings.clock.now()
    }

    pub(super) fn insert(&mut self, envelopes: Vec<Envelope>) {
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

    pub(super) async fn run(
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
                    let mut report = DeliveryReport {
                        tx,
                        env: Some(Box::new(env)),
                        session,
                    };
                    let result = match report.env.as_deref() {
                        Some(env) => agent.deliver(env, &path).await,
                        None => AgentResult::temp("internal error"),
                    };
                    if local {
                        stat::decrement("mda.running", 1);
                        stat::decrement("mda.envelope", 1);
                    }
                    report.send(result);
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
            AgentResult::Later { after } => {
                self.sched
                    .postpone(evpid, now.saturating_add(after.max(1)), now);
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
        let (counter, done, verdict) = match result {
            AgentResult::Ok => (&c.ok, true, "Ok"),
            AgentResult::TempFail { .. } => (&c.tempfail, false, "TempFail"),
            AgentResult::PermFail { .. } => (&c.permfail, true, "PermFail"),
            AgentResult::Loop => (&c.looped, true, "Loop"),
            // No delivery happened: only no longer in flight.
            AgentResult::Later { .. } => {
                stat::decrement("scheduler.envelope.inflight", 1);
                return;
            }
        };
        Counters::add(counter, 1);
        if done {
            Counters::add(&c.dequeued, 1);
        }
        count_delivery(verdict, 1);
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

/// The answer a delivery task owes the runner. Sent with the agent's result; if the agent
/// panics instead, sent from `drop` during the unwind as `TempFail("internal error")`, so that
/// the envelope is tried again later rather than left in flight until the next restart. (A task
/// cancelled at shutdown says nothing, as before.)
struct DeliveryReport {
    tx: mpsc::UnboundedSender<Event>,
    env: Option<Box<Envelope>>,
    session: u64,
}

impl DeliveryReport {
    fn send(&mut self, result: AgentResult) {
        if let Some(env) = self.env.take() {
            let _ = self.tx.send(Event::Delivered {
                env,
                result,
                session: self.session,
            });
        }
    }
}

impl Drop for DeliveryReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.send(AgentResult::temp("internal error"));
        }
    }
}

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
