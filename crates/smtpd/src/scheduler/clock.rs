//! Where the scheduler's "now" comes from: the wall clock, or a clock that moves only when
//! told, so that tests go through days of retries in milliseconds.

use std::sync::Arc;

use super::schedule::Time;

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
    pub(super) async fn sleep_until(&self, t: Time) {
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
