//! The scheduler's state without I/O: OpenSMTPD's `scheduler_ramqueue.c`.
//!
//! Every envelope the queue holds is here, with the time of its next try and
//! its expiry. The caller feeds events (`insert`, `tempfail`, `done`, control
//! requests) with the current time and asks `batch(now)` what to run; between
//! batches it sleeps until `wakeup()`.
//!
//! Backoff (`scheduler_backoff`): the N-th retry is due at `ctime + base × N²`
//! with base 10 s for local delivery and bounces, 400 s for relaying; after a
//! failure the step grows until that time is in the future
//! (`scheduler_next`). Expiry at `ctime + ttl`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::queue::{DeliveryType, EvpId, MsgId};

/// Seconds since the epoch.
pub type Time = i64;

/// `BACKOFF_DELIVERY`: local deliveries and bounces.
pub const BACKOFF_DELIVERY: i64 = 10;
/// `BACKOFF_TRANSFER`: relaying.
pub const BACKOFF_TRANSFER: i64 = 400;

/// `scheduler_backoff`.
pub fn backoff(t0: Time, base: i64, step: u32) -> Time {
    let step = i64::from(step);
    t0.saturating_add(base.saturating_mul(step).saturating_mul(step))
}

/// `scheduler_next`: the first backoff step strictly after `now`.
pub fn next_try(t0: Time, base: i64, mut step: u32, now: Time) -> Time {
    loop {
        let t = backoff(t0, base, step);
        if t > now || step == u32::MAX {
            return t;
        }
        step += 1;
    }
}

fn base_of(kind: DeliveryType) -> i64 {
    match kind {
        DeliveryType::Mta => BACKOFF_TRANSFER,
        DeliveryType::Mda | DeliveryType::Bounce => BACKOFF_DELIVERY,
    }
}

/// What the runner is told to do with one envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Removed by the administrator: log `Remove`, delete it.
    Remove(EvpId),
    /// Past its ttl: log `Expire`, bounce it, delete it.
    Expire(EvpId),
    /// A bounce envelope: hand it to the bounce composer (`IMSG_SCHED_ENVELOPE_INJECT`).
    Bounce(EvpId),
    /// Local delivery.
    Deliver(EvpId),
    /// Relay.
    Transfer(EvpId),
}

/// Where an envelope is, as `smtpctl show queue` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Waiting for its next try.
    Pending,
    /// Due, waiting for a free agent (OpenSMTPD reports it as `pending`).
    Scheduled,
    /// Being delivered.
    Inflight,
}

/// One line of `list()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvelopeState {
    pub evpid: EvpId,
    pub kind: DeliveryType,
    pub state: RunState,
    /// Next try (pending), time it became due (scheduled) or started (inflight).
    pub time: Time,
    pub expire: Time,
    /// `smtpctl pause envelope`.
    pub suspended: bool,
}

/// Which envelopes a control request means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    All,
    Message(MsgId),
    Envelope(EvpId),
}

impl Target {
    /// smtpctl's argument: 16 hex digits an envelope, up to 8 a message.
    pub fn from_id(id: u64) -> Target {
        if id > 0xffff_ffff {
            Target::Envelope(EvpId(id))
        } else {
            Target::Message(MsgId(id as u32))
        }
    }

    fn range(self) -> (EvpId, EvpId) {
        match self {
            Target::All => (EvpId(0), EvpId(u64::MAX)),
            Target::Message(m) => {
                let lo = u64::from(m.0) << 32;
                (EvpId(lo), EvpId(lo | 0xffff_ffff))
            }
            Target::Envelope(e) => (e, e),
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    kind: DeliveryType,
    ctime: Time,
    expire: Time,
    sched: Time,
    state: RunState,
    /// When it became due / went in flight.
    since: Time,
    removed: bool,
    /// Past its ttl, waiting in the expired queue.
    expired: bool,
    suspended: bool,
}

impl Entry {
    fn key(&self) -> Time {
        self.sched.min(self.expire)
    }
}

/// The limits OpenSMTPD's scheduler applies (`scheduler limit ...`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `max-inflight` (5000): no new work above it.
    pub max_inflight: usize,
    /// `max-schedule` (10): tasks per batch.
    pub max_schedule: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_inflight: 5000,
            max_schedule: 10,
        }
    }
}

/// The ram queue.
#[derive(Debug, Default)]
pub struct Schedule {
    entries: BTreeMap<EvpId, Entry>,
    /// Pending, not suspended, ordered by `min(sched, expire)`.
    pending: BTreeSet<(Time, EvpId)>,
    q_removed: VecDeque<EvpId>,
    q_expired: VecDeque<EvpId>,
    q_bounce: VecDeque<EvpId>,
    q_mda: VecDeque<EvpId>,
    q_mta: VecDeque<EvpId>,
    inflight: usize,
    limits: Limits,
    mda_paused: bool,
    mta_paused: bool,
}

impl Schedule {
    pub fn new(limits: Limits) -> Schedule {
        Schedule {
            limits,
            ..Schedule::default()
        }
    }

    /// Envelopes known.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn inflight(&self) -> usize {
        self.inflight
    }

    pub fn contains(&self, evpid: EvpId) -> bool {
        self.entries.contains_key(&evpid)
    }

    /// `scheduler_ram_insert` + commit: a new (or reloaded) envelope, first
    /// due at `ctime + base × retry²` (at once for a new one). Returns that time.
    pub fn insert(
        &mut self,
        evpid: EvpId,
        kind: DeliveryType,
        ctime: Time,
        ttl: i64,
        retry: u16,
    ) -> Time {
        if self.entries.contains_key(&evpid) {
            return self.entries[&evpid].sched;
        }
        let sched = backoff(ctime, base_of(kind), u32::from(retry));
        let e = Entry {
            kind,
            ctime,
            expire: ctime.saturating_add(ttl),
            sched,
            state: RunState::Pending,
            since: 0,
            removed: false,
            expired: false,
            suspended: false,
        };
        self.pending.insert((e.key(), evpid));
        self.entries.insert(evpid, e);
        sched
    }

    /// `rq_queue_schedule`: moves what is due to the run queues.
    fn promote(&mut self, now: Time) {
        while let Some(&(key, evpid)) = self.pending.first() {
            if key > now {
                break;
            }
            self.pending.pop_first();
            let e = self.entries.get_mut(&evpid).expect("pending entry");
            e.state = RunState::Scheduled;
            e.since = now;
            if e.expire <= now {
                e.expired = true;
                self.q_expired.push_back(evpid);
            } else {
                match e.kind {
                    DeliveryType::Mda => self.q_mda.push_back(evpid),
                    DeliveryType::Mta => self.q_mta.push_back(evpid),
                    DeliveryType::Bounce => self.q_bounce.push_back(evpid),
                }
            }
        }
    }

    /// `scheduler_ram_batch`: up to `max-schedule` tasks, taken round-robin
    /// from the removed, expired, bounce, mda and mta queues. Removed and
    /// expired envelopes leave the schedule here; the others go in flight
    /// until `done` or `tempfail`.
    pub fn batch(&mut self, now: Time) -> Vec<Task> {
        self.promote(now);
        let mut out = Vec::new();
        let open = self.inflight < self.limits.max_inflight;
        let max = self.limits.max_schedule.max(1);
        loop {
            let before = out.len();
            macro_rules! take {
                ($cond:expr, $q:ident, $task:ident, $fly:expr) => {
                    if out.len() < max && $cond {
                        if let Some(evpid) = self.$q.pop_front() {
                            if $fly {
                                let e = self.entries.get_mut(&evpid).expect("entry");
                                e.state = RunState::Inflight;
                                e.since = now;
                                self.inflight += 1;
                            } else {
                                self.entries.remove(&evpid);
                            }
                            out.push(Task::$task(evpid));
                        }
                    }
                };
            }
            take!(open, q_removed, Remove, false);
            take!(open, q_expired, Expire, false);
            take!(open, q_bounce, Bounce, true);
            take!(open && !self.mda_paused, q_mda, Deliver, true);
            take!(open && !self.mta_paused, q_mta, Transfer, true);
            if out.len() == before || out.len() >= max {
                break;
            }
        }
        out
    }

    /// When `batch` may have something again: the earliest next try or
    /// expiry of a pending envelope; `Some(now)`-ish when a run queue is not
    /// empty and runnable; `None` = sleep until an event.
    pub fn wakeup(&self) -> Option<Time> {
        let open = self.inflight < self.limits.max_inflight;
        let ready = open
            && (!self.q_removed.is_empty()
                || !self.q_expired.is_empty()
                || !self.q_bounce.is_empty()
                || (!self.mda_paused && !self.q_mda.is_empty())
                || (!self.mta_paused && !self.q_mta.is_empty()));
        if ready {
            return Some(Time::MIN);
        }
        self.pending.first().map(|&(k, _)| k)
    }

    /// Delivered, permanently failed, looped or bounced: forget it.
    pub fn done(&mut self, evpid: EvpId) {
        if let Some(e) = self.entries.remove(&evpid) {
            if e.state == RunState::Inflight {
                self.inflight -= 1;
            } else {
                self.unlink(evpid, &e);
            }
        }
    }

    /// `scheduler_ram_update` after a temporary failure (`retry` already
    /// counts it). Returns the next try, or `None` when the envelope was
    /// removed meanwhile (it then comes out of `batch` as `Remove`).
    pub fn tempfail(&mut self, evpid: EvpId, retry: u16, now: Time) -> Option<Time> {
        self.back_from_flight(evpid, now, |e| {
            next_try(e.ctime, base_of(e.kind), u32::from(retry), now)
        })
    }

    /// Given back untried ([`super::AgentResult::Later`]): pending until `at`, its retries as
    /// they were. `None` when removed meanwhile, as [`Schedule::tempfail`].
    pub fn postpone(&mut self, evpid: EvpId, at: Time, now: Time) -> Option<Time> {
        self.back_from_flight(evpid, now, |_| at.max(now))
    }

    /// An envelope back from its agent without being done: pending again at the time `when`
    /// gives, or handed to `batch` as `Remove` when it was removed meanwhile (`None`).
    fn back_from_flight(
        &mut self,
        evpid: EvpId,
        now: Time,
        when: impl FnOnce(&Entry) -> Time,
    ) -> Option<Time> {
        let e = self.entries.get_mut(&evpid)?;
        if e.state == RunState::Inflight {
            self.inflight -= 1;
        }
        if e.removed {
            e.state = RunState::Scheduled;
            e.since = now;
            self.q_removed.push_back(evpid);
            return None;
        }
        e.sched = when(e);
        e.state = RunState::Pending;
        let (key, sched, suspended) = (e.key(), e.sched, e.suspended);
        if !suspended {
            self.pending.insert((key, evpid));
        }
        Some(sched)
    }

    fn unlink(&mut self, evpid: EvpId, e: &Entry) {
        match e.state {
            RunState::Pending => {
                self.pending.remove(&(e.key(), evpid));
            }
            RunState::Scheduled => {
                for q in [
                    &mut self.q_removed,
                    &mut self.q_expired,
                    &mut self.q_bounce,
                    &mut self.q_mda,
                    &mut self.q_mta,
                ] {
                    q.retain(|x| *x != evpid);
                }
            }
            RunState::Inflight => {}
        }
    }

    fn ids(&self, target: Target) -> Vec<EvpId> {
        let (lo, hi) = target.range();
        self.entries.range(lo..=hi).map(|(k, _)| *k).collect()
    }

    /// `smtpctl schedule`: due at once (in-flight ones are left alone).
    /// Returns how many were scheduled.
    pub fn schedule_now(&mut self, target: Target, now: Time) -> usize {
        let mut n = 0;
        for evpid in self.ids(target) {
            let e = self.entries[&evpid].clone();
            if e.state != RunState::Pending || e.removed {
                continue;
            }
            if !e.suspended {
                self.pending.remove(&(e.key(), evpid));
            }
            let ent = self.entries.get_mut(&evpid).expect("entry");
            ent.state = RunState::Scheduled;
            ent.since = now;
            ent.suspended = false;
            match e.kind {
                DeliveryType::Mda => self.q_mda.push_back(evpid),
                DeliveryType::Mta => self.q_mta.push_back(evpid),
                DeliveryType::Bounce => self.q_bounce.push_back(evpid),
            }
            n += 1;
        }
        n
    }

    /// `smtpctl remove`: removed at the next batch (after its delivery when
    /// in flight). Returns how many were marked.
    pub fn remove(&mut self, target: Target, now: Time) -> usize {
        let mut n = 0;
        for evpid in self.ids(target) {
            let e = self.entries[&evpid].clone();
            if e.removed || e.expired {
                continue;
            }
            n += 1;
            if e.state == RunState::Inflight {
                self.entries.get_mut(&evpid).expect("entry").removed = true;
                continue;
            }
            self.unlink(evpid, &e);
            let ent = self.entries.get_mut(&evpid).expect("entry");
            ent.removed = true;
            ent.state = RunState::Scheduled;
            ent.since = now;
            self.q_removed.push_back(evpid);
        }
        n
    }

    /// `smtpctl pause envelope`.
    pub fn suspend(&mut self, target: Target) -> usize {
        let mut n = 0;
        for evpid in self.ids(target) {
            let e = self.entries[&evpid].clone();
            if e.suspended || e.removed {
                continue;
            }
            if e.state == RunState::Pending {
                self.pending.remove(&(e.key(), evpid));
            }
            self.entries.get_mut(&evpid).expect("entry").suspended = true;
            n += 1;
        }
        n
    }

    /// `smtpctl resume envelope`.
    pub fn resume(&mut self, target: Target) -> usize {
        let mut n = 0;
        for evpid in self.ids(target) {
            let e = self.entries.get_mut(&evpid).expect("entry");
            if !e.suspended {
                continue;
            }
            e.suspended = false;
            if e.state == RunState::Pending {
                let key = e.key();
                self.pending.insert((key, evpid));
            }
            n += 1;
        }
        n
    }

    /// `smtpctl pause mda|mta`.
    pub fn pause(&mut self, kind: DeliveryType, paused: bool) {
        match kind {
            DeliveryType::Mda => self.mda_paused = paused,
            DeliveryType::Mta => self.mta_paused = paused,
            DeliveryType::Bounce => {}
        }
    }

    pub fn paused(&self, kind: DeliveryType) -> bool {
        match kind {
            DeliveryType::Mda => self.mda_paused,
            DeliveryType::Mta => self.mta_paused,
            DeliveryType::Bounce => false,
        }
    }

    /// `scheduler_ram_envelopes`: every envelope not being removed, in evpid order.
    pub fn list(&self) -> Vec<EnvelopeState> {
        self.entries
            .iter()
            .filter(|(_, e)| !e.removed && !e.expired)
            .map(|(k, e)| EnvelopeState {
                evpid: *k,
                kind: e.kind,
                state: e.state,
                time: match e.state {
                    RunState::Pending => e.sched,
                    _ => e.since,
                },
                expire: e.expire,
                suspended: e.suspended,
            })
            .collect()
    }

    /// One envelope's state.
    pub fn get(&self, evpid: EvpId) -> Option<EnvelopeState> {
        let e = self.entries.get(&evpid)?;
        Some(EnvelopeState {
            evpid,
            kind: e.kind,
            state: e.state,
            time: if e.state == RunState::Pending {
                e.sched
            } else {
                e.since
            },
            expire: e.expire,
            suspended: e.suspended,
        })
    }
}
