//! What the scheduler takes from the configuration (ttl, bounce warnings, limits), and its
//! counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::queue::{DeliveryType, Envelope};

use super::schedule::Limits;
use super::Clock;

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
    pub(super) fn add(counter: &AtomicU64, n: u64) {
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
