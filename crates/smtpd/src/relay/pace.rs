//! `mta limit [for domain D] destination-rate-delay N`, beyond OpenSMTPD (its issue #1278: some
//! ISPs, SFR and Free among them, blacklist a small server unless its messages arrive one by one
//! with a pause between them, and 6.8 cannot do that): deliveries to one destination go one at
//! a time, and the next transaction starts N seconds after the previous one ended, across all
//! the sessions, routes and relay actions to that destination. As Postfix's
//! `default_destination_rate_delay` ("delivery 1 starts, delivery 1 ends, N seconds, delivery 2
//! starts"), rather than N seconds between two starts: with start-to-start spacing a message
//! that takes longer than N to transfer overlaps the next one, which is what those ISPs count.
//!
//! The destination is what 6.8's `for domain` limits are chosen by: the destination domain of
//! an MX relay, the host name of a smarthost.
//!
//! A delivery first takes the destination's turn ([`Pace::try_take`]), in the order it asked
//! ([`Pace::enqueue`]), holds it while its session connects and runs the transaction, and gives
//! it back when the transaction ends ([`Pace::end`]: the pause runs from then) or without
//! having started one ([`Pace::release`]: the next may go at once). [`Pace`] is the pure
//! bookkeeping with the time as an input; [`Pacer`] and [`Turn`] are the shell's lock, wake-up
//! and guard around it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One destination's state.
#[derive(Debug, Default)]
struct Dest {
    /// When its last transaction ended, and the delay then in force (to forget it).
    last_end: Option<(Instant, Duration)>,
    /// Someone has the turn.
    held: bool,
    /// The tickets waiting for the turn, first come first served.
    queue: VecDeque<u64>,
    /// The end of the line of the deliveries sent back to the scheduler ([`Pace::later`]):
    /// the next one sent back comes back no earlier.
    later: Option<Instant>,
    /// Deliveries let in ([`Pace::admit`]) and not gone yet: those in line, and those on their
    /// way to it (resolving the route, reading the message).
    admitted: usize,
}

impl Dest {
    fn unused(&self, now: Instant) -> bool {
        !self.held
            && self.admitted == 0
            && self.queue.is_empty()
            && self.last_end.is_none_or(|(t, d)| now >= t + d)
            && self.later.is_none_or(|t| now >= t)
    }
}

/// Why a ticket cannot take the turn now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Another delivery has the turn, or is before this one in the queue: until it changes.
    Busy,
    /// The pause after the last transaction runs until then.
    Until(Instant),
}

/// The turns of every paced destination (lower-cased names).
#[derive(Debug, Default)]
pub struct Pace {
    dests: HashMap<String, Dest>,
    next_ticket: u64,
}

impl Pace {
    /// A place in `dest`'s queue.
    pub fn enqueue(&mut self, dest: &str) -> u64 {
        let t = self.next_ticket;
        self.next_ticket = self.next_ticket.wrapping_add(1);
        self.dests
            .entry(dest.to_string())
            .or_default()
            .queue
            .push_back(t);
        t
    }

    /// The turn for `ticket` when it is first in line, nobody holds the turn and `delay` has
    /// passed since the last transaction ended; it leaves the queue then.
    pub fn try_take(
        &mut self,
        dest: &str,
        ticket: u64,
        delay: Duration,
        now: Instant,
    ) -> Result<(), Wait> {
        self.forget(now);
        let Some(d) = self.dests.get_mut(dest) else {
            // Not enqueued (a caller's mistake): it would wait for ever; let it go.
            return Ok(());
        };
        if d.held || d.queue.front() != Some(&ticket) {
            return Err(Wait::Busy);
        }
        if let Some((end, _)) = d.last_end {
            if now < end + delay {
                return Err(Wait::Until(end + delay));
            }
        }
        d.queue.pop_front();
        d.held = true;
        Ok(())
    }

    /// A waiting ticket gave up (its delivery was dropped).
    pub fn cancel(&mut self, dest: &str, ticket: u64) {
        if let Some(d) = self.dests.get_mut(dest) {
            d.queue.retain(|t| *t != ticket);
        }
    }

    /// The turn given back by a transaction that ended at `now`: the next waits `delay`.
    pub fn end(&mut self, dest: &str, delay: Duration, now: Instant) {
        let d = self.dests.entry(dest.to_string()).or_default();
        d.held = false;
        d.last_end = Some((now, delay));
    }

    /// The turn given back with no transaction started (no session could be had): the next
    /// may start at once, or when the last real one's pause is over.
    pub fn release(&mut self, dest: &str) {
        if let Some(d) = self.dests.get_mut(dest) {
            d.held = false;
        }
    }

    /// When a delivery that finds the line full should come back: after the line ahead of it
    /// (one `delay` each) and after those sent back before it, one `delay` apart, so that a
    /// backlog returns at the pace it can be sent rather than all at once.
    pub fn later(&mut self, dest: &str, delay: Duration, now: Instant) -> Instant {
        let d = self.dests.entry(dest.to_string()).or_default();
        let waiting = d.admitted.max(d.queue.len() + usize::from(d.held));
        let line = now + delay.saturating_mul(u32::try_from(waiting).unwrap_or(u32::MAX));
        let at = d.later.map_or(line, |l| l.max(line));
        d.later = Some(at + delay);
        at
    }

    /// Lets a delivery to `dest` in, unless `cap` are in already (then it should come back
    /// [`Pace::later`]); counted at once, before it gets in line, so that deliveries that ask
    /// together cannot all slip in.
    pub fn admit(&mut self, dest: &str, cap: usize) -> bool {
        let d = self.dests.entry(dest.to_string()).or_default();
        if d.admitted >= cap {
            return false;
        }
        d.admitted += 1;
        true
    }

    /// An admitted delivery is over.
    pub fn leave(&mut self, dest: &str) {
        if let Some(d) = self.dests.get_mut(dest) {
            d.admitted = d.admitted.saturating_sub(1);
        }
    }

    /// How many deliveries hold or wait for `dest`'s turn.
    pub fn waiting(&self, dest: &str) -> usize {
        self.dests
            .get(dest)
            .map_or(0, |d| d.queue.len() + usize::from(d.held))
    }

    /// Destinations with nobody waiting, nobody holding the turn and no pause left are as
    /// if never seen: dropped, so that a global delay does not keep every domain ever sent to.
    fn forget(&mut self, now: Instant) {
        self.dests.retain(|_, d| !d.unused(now));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.dests.len()
    }
}

/// [`Pace`] behind a lock, with a wake-up for the waiting deliveries.
#[derive(Default)]
pub struct Pacer {
    pace: Mutex<Pace>,
    changed: tokio::sync::Notify,
}

/// A delivery's hold on its destination's turn; given back when dropped: as the end of a
/// transaction when one was started on it ([`Turn::started`]), else with nothing sent.
pub struct Turn {
    pacer: Arc<Pacer>,
    dest: String,
    delay: Duration,
    started: bool,
}

impl Turn {
    /// The transaction's MAIL is on its way: from now on, giving the turn back counts as its
    /// end.
    pub fn started(&mut self) {
        self.started = true;
    }

    /// The transaction's final reply came at `now`.
    pub fn end(mut self, now: Instant) {
        self.give_back(Some(now));
    }

    fn give_back(&mut self, at: Option<Instant>) {
        let Ok(mut p) = self.pacer.pace.lock() else {
            return;
        };
        match (self.started, at) {
            (true, Some(t)) => p.end(&self.dest, self.delay, t),
            // A session that ended mid-transaction: its end is now.
            (true, None) => p.end(&self.dest, self.delay, Instant::now()),
            (false, _) => p.release(&self.dest),
        }
        // Given back once only.
        self.started = false;
        self.dest.clear();
        drop(p);
        self.pacer.changed.notify_waiters();
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if !self.dest.is_empty() {
            self.give_back(None);
        }
    }
}

/// An admitted delivery ([`Pacer::admit`]), counted until dropped.
pub struct Admitted {
    pacer: Arc<Pacer>,
    dest: String,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Ok(mut p) = self.pacer.pace.lock() {
            p.leave(&self.dest);
        }
    }
}

/// A ticket in a destination's queue, taken out of it if its delivery is dropped while it
/// waits.
struct Ticket<'a> {
    pacer: &'a Pacer,
    dest: &'a str,
    id: u64,
    taken: bool,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        if let Ok(mut p) = self.pacer.pace.lock() {
            p.cancel(self.dest, self.id);
        }
        // It may have been first in line.
        self.pacer.changed.notify_waiters();
    }
}

impl Pacer {
    /// Waits for `dest`'s turn (lower-cased), after the deliveries that asked before, then
    /// `delay` after the last transaction ended. Sleeps until a turn is given back or the
    /// pause is over; holds no connection meanwhile.
    pub async fn turn(self: &Arc<Self>, dest: &str, delay: Duration) -> Turn {
        let id = match self.pace.lock() {
            Ok(mut p) => p.enqueue(dest),
            // A poisoned lock: no pacing rather than no delivery.
            Err(_) => return self.unpaced(dest, delay),
        };
        let mut ticket = Ticket {
            pacer: self,
            dest,
            id,
            taken: false,
        };
        loop {
            // Registered before looking, so that a turn given back meanwhile is not missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = Instant::now();
            let got = match self.pace.lock() {
                Ok(mut p) => p.try_take(dest, id, delay, now),
                Err(_) => Ok(()),
            };
            match got {
                Ok(()) => {
                    ticket.taken = true;
                    return Turn {
                        pacer: self.clone(),
                        dest: dest.to_string(),
                        delay,
                        started: false,
                    };
                }
                Err(Wait::Busy) => changed.await,
                Err(Wait::Until(t)) => {
                    tokio::select! {
                        _ = changed => {}
                        _ = tokio::time::sleep_until(t.into()) => {}
                    }
                }
            }
        }
    }

    /// [`Pace::later`].
    pub fn later(&self, dest: &str, delay: Duration, now: Instant) -> Instant {
        self.pace
            .lock()
            .map_or(now + delay, |mut p| p.later(dest, delay, now))
    }

    /// [`Pace::admit`]: the guard counts the delivery in until it is dropped.
    pub fn admit(self: &Arc<Self>, dest: &str, cap: usize) -> Option<Admitted> {
        let admitted = self.pace.lock().map_or(true, |mut p| p.admit(dest, cap));
        admitted.then(|| Admitted {
            pacer: self.clone(),
            dest: dest.to_string(),
        })
    }

    fn unpaced(self: &Arc<Self>, dest: &str, delay: Duration) -> Turn {
        Turn {
            pacer: self.clone(),
            dest: dest.to_string(),
            delay,
            started: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D: Duration = Duration::from_secs(1);

    #[test]
    fn one_at_a_time_then_the_delay_after_the_end() {
        let mut p = Pace::default();
        let t0 = Instant::now();
        let a = p.enqueue("sfr.fr");
        let b = p.enqueue("sfr.fr");
        assert_eq!(
            p.try_take("sfr.fr", b, D, t0),
            Err(Wait::Busy),
            "b is second"
        );
        assert_eq!(p.waiting("sfr.fr"), 2);
        assert_eq!(p.try_take("sfr.fr", a, D, t0), Ok(()));
        assert_eq!(p.waiting("sfr.fr"), 2, "a holds it, b waits");
        // However long a's transaction takes, b waits for its end...
        let later = t0 + Duration::from_secs(30);
        assert_eq!(p.try_take("sfr.fr", b, D, later), Err(Wait::Busy));
        p.end("sfr.fr", D, later);
        // ... then the delay.
        assert_eq!(
            p.try_take("sfr.fr", b, D, later),
            Err(Wait::Until(later + D))
        );
        assert_eq!(p.try_take("sfr.fr", b, D, later + D), Ok(()));
    }

    #[test]
    fn other_destinations_are_not_held() {
        let mut p = Pace::default();
        let t0 = Instant::now();
        let a = p.enqueue("sfr.fr");
        assert_eq!(p.try_take("sfr.fr", a, D, t0), Ok(()));
        let o = p.enqueue("other.test");
        assert_eq!(p.try_take("other.test", o, D, t0), Ok(()));
    }

    #[test]
    fn a_turn_given_back_unused_lets_the_next_go_at_once() {
        let mut p = Pace::default();
        let t0 = Instant::now();
        let a = p.enqueue("d");
        let b = p.enqueue("d");
        assert_eq!(p.try_take("d", a, D, t0), Ok(()));
        p.release("d");
        assert_eq!(p.try_take("d", b, D, t0), Ok(()));
    }

    #[test]
    fn a_cancelled_ticket_does_not_block_the_line() {
        let mut p = Pace::default();
        let t0 = Instant::now();
        let a = p.enqueue("d");
        let b = p.enqueue("d");
        p.cancel("d", a);
        assert_eq!(p.try_take("d", b, D, t0), Ok(()));
    }

    #[test]
    fn deliveries_sent_back_return_one_delay_apart_after_the_line() {
        let mut p = Pace::default();
        let t0 = Instant::now();
        let a = p.enqueue("d");
        let b = p.enqueue("d");
        assert_eq!(p.try_take("d", a, D, t0), Ok(()));
        // Two in line (a holds the turn, b waits): back after them, then one D apart.
        assert_eq!(p.later("d", D, t0), t0 + 2 * D);
        assert_eq!(p.later("d", D, t0), t0 + 3 * D);
        assert_eq!(p.later("d", D, t0 + D), t0 + 4 * D);
        // Remembered until the last one is due, with nobody in line.
        p.end("d", D, t0);
        p.cancel("d", b);
        let c = p.enqueue("x");
        assert_eq!(p.try_take("x", c, D, t0 + 4 * D), Ok(()));
        assert_eq!(p.len(), 2, "d's line of sent-back deliveries runs");
        p.forget(t0 + 5 * D);
        assert_eq!(p.len(), 1, "only x, held");
    }

    #[test]
    fn admission_is_counted_before_the_line_and_capped() {
        let mut p = Pace::default();
        let t0 = Instant::now();
        assert!(p.admit("d", 2));
        assert!(p.admit("d", 2));
        assert!(
            !p.admit("d", 2),
            "two on their way: full, before either is in line"
        );
        // Sent back after the two.
        assert_eq!(p.later("d", D, t0), t0 + 2 * D);
        p.leave("d");
        assert!(p.admit("d", 2));
        p.leave("d");
        p.leave("d");
        p.forget(t0 + 3 * D);
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn idle_destinations_are_forgotten_once_their_pause_is_over() {
        let mut p = Pace::default();
        let t0 = Instant::now();
        let a = p.enqueue("d");
        assert_eq!(p.try_take("d", a, D, t0), Ok(()));
        p.end("d", D, t0);
        let b = p.enqueue("e");
        assert_eq!(p.try_take("e", b, D, t0), Ok(()));
        p.release("e");
        assert_eq!(p.len(), 2, "d's pause runs");
        let c = p.enqueue("x");
        assert_eq!(p.try_take("x", c, D, t0 + D), Ok(()));
        assert_eq!(p.len(), 1, "only x, held");
    }

    #[tokio::test]
    async fn the_shell_waits_then_hands_the_turn_in_order() {
        let d = Duration::from_millis(300);
        let pacer = Arc::new(Pacer::default());
        let mut first = pacer.turn("d", d).await;
        first.started();
        let p2 = pacer.clone();
        let second = tokio::spawn(async move { p2.turn("d", d).await });
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!second.is_finished(), "held while the first runs");
        let ended = Instant::now();
        first.end(ended);
        let turn = second.await.unwrap();
        assert!(Instant::now() >= ended + d);
        drop(turn);
        // Given back unused: the next is not held.
        let third = tokio::time::timeout(Duration::from_secs(5), pacer.turn("d", d)).await;
        assert!(third.is_ok(), "not given");
        drop(third);
        // A waiter dropped while in line does not block the one after it.
        let mut held = pacer.turn("d", d).await;
        held.started();
        let p3 = pacer.clone();
        let gone = tokio::spawn(async move { p3.turn("d", d).await });
        let p4 = pacer.clone();
        let after = tokio::spawn(async move { p4.turn("d", d).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        gone.abort();
        held.end(Instant::now());
        let got = tokio::time::timeout(Duration::from_secs(10), after).await;
        assert!(matches!(got, Ok(Ok(_))), "the next in line got it");
    }

    /// What a run of the bookkeeping does, step by step.
    #[derive(Clone, Debug)]
    enum Op {
        /// Time passes (milliseconds).
        Wait(u64),
        /// A new delivery to destination 0 or 1 gets in line.
        Enqueue(usize),
        /// The n-th waiting ticket (of all, in order) tries.
        Try(usize),
        /// The n-th waiting ticket gives up.
        Cancel(usize),
        /// The holder of destination 0 or 1 ends its transaction, or gives the turn back
        /// unused.
        End(usize, bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..1500).prop_map(Op::Wait),
            (0usize..2).prop_map(Op::Enqueue),
            (0usize..8).prop_map(Op::Try),
            (0usize..8).prop_map(Op::Cancel),
            ((0usize..2), any::<bool>()).prop_map(|(d, used)| Op::End(d, used)),
        ]
    }

    proptest! {
        /// Whatever the interleaving: at most one holder per destination; a transaction
        /// starts `delay` or more after the previous one ended; tickets get the turn in the
        /// order they asked; and a ticket first in line, with the turn free and the pause
        /// over, gets it (no one waits for nothing).
        #[test]
        fn turns_are_exclusive_spaced_ordered_and_live(ops in prop::collection::vec(op(), 1..200)) {
            let names = ["sfr.fr", "other.test"];
            let t0 = Instant::now();
            let mut now = t0;
            let mut p = Pace::default();
            // (ticket, dest) in line, in order of asking.
            let mut waiting: Vec<(u64, usize)> = Vec::new();
            let mut holder: [Option<u64>; 2] = [None, None];
            let mut last_end: [Option<Instant>; 2] = [None, None];
            let mut last_taken: [Option<u64>; 2] = [None, None];
            for op in ops {
                match op {
                    Op::Wait(ms) => now += Duration::from_millis(ms),
                    Op::Enqueue(d) => waiting.push((p.enqueue(names[d]), d)),
                    Op::Try(i) => {
                        let Some(&(t, d)) = waiting.get(i) else { continue };
                        let first = waiting.iter().find(|(_, dd)| *dd == d).map(|(t, _)| *t);
                        let free = holder[d].is_none();
                        let paused = last_end[d].is_some_and(|e| now < e + D);
                        match p.try_take(names[d], t, D, now) {
                            Ok(()) => {
                                prop_assert!(free, "two holders");
                                prop_assert_eq!(first, Some(t), "out of order");
                                prop_assert!(!paused, "inside the pause");
                                if let (Some(prev), Some(e)) = (last_taken[d], last_end[d]) {
                                    prop_assert!(t > prev);
                                    prop_assert!(now >= e + D);
                                }
                                holder[d] = Some(t);
                                last_taken[d] = Some(t);
                                waiting.retain(|(w, _)| *w != t);
                            }
                            Err(Wait::Until(at)) => {
                                prop_assert!(free && first == Some(t) && paused);
                                prop_assert_eq!(Some(at), last_end[d].map(|e| e + D));
                            }
                            Err(Wait::Busy) => prop_assert!(!free || first != Some(t)),
                        }
                    }
                    Op::Cancel(i) => {
                        if i < waiting.len() {
                            let (t, d) = waiting.remove(i);
                            p.cancel(names[d], t);
                        }
                    }
                    Op::End(d, used) => {
                        if holder[d].take().is_some() {
                            if used {
                                p.end(names[d], D, now);
                                last_end[d] = Some(now);
                            } else {
                                p.release(names[d]);
                            }
                        }
                    }
                }
            }
        }
    }
}
