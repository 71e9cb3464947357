//! The scheduler: when each queued envelope is tried, what happens after a
//! try, and the bounces (DSN) — OpenSMTPD's `scheduler.c` +
//! `scheduler_ramqueue.c`, the delivery-result half of `queue.c`, and
//! `bounce.c`.
//!
//! * [`schedule`]: the pure ram queue (times in, tasks out);
//! * [`bounce`]: the pure DSN composer;
//! * [`runner`]: the async runner that owns the [`Queue`], runs an [`Agent`]
//!   per due envelope (bounded), applies results to the queue, queues
//!   bounces, hands finished reports to an [`Injector`], and logs;
//! * [`agent`], [`clock`], [`settings`], [`logline`]: what it is given and what it says;
//! * this file: the [`Handle`] that sessions and the control socket talk to.
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

pub mod agent;
pub mod bounce;
pub mod clock;
pub mod logline;
mod runner;
pub mod schedule;
pub mod settings;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::queue::{DeliveryType, Envelope, Queue};

pub use bounce::{Report, ReportKey};
pub use schedule::{EnvelopeState, Limits, RunState, Schedule, Target, Task, Time};

pub use agent::{Agent, AgentResult, BoxFuture, Injector};
pub use clock::{Clock, ManualClock};
pub use logline::{duration_to_text, mda_log_line, queue_log_line};
use runner::{Cmd, Runner};
pub use settings::{Counters, Settings};

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
    let (runner, ev_rx) = Runner::new(queue, envelopes, agent, injector, settings);
    tokio::spawn(runner.run(rx, ev_rx));
    Handle { tx }
}
