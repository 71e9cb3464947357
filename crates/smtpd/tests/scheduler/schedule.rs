//! The pure ram queue: backoff, expiry, control requests, limits.

use rsmtpd::queue::{DeliveryType, EvpId, MsgId};
use rsmtpd::scheduler::schedule::{backoff, next_try, Limits, RunState, Schedule, Target, Task};
use rsmtpd::scheduler::{duration_to_text, Time};

const T0: Time = 1_795_609_943;
const E1: EvpId = EvpId(0x898840a8_8eb2b16e);
const E2: EvpId = EvpId(0x898840a8_00000002);
const E3: EvpId = EvpId(0x2d6cf919_8b858ee8);

/// Drives one envelope that always fails until `until`: returns the times
/// (relative to ctime) of its tries and of its expiry.
fn drive(kind: DeliveryType, ttl: i64, until: i64) -> (Vec<i64>, Option<i64>) {
    let mut s = Schedule::new(Limits::default());
    s.insert(E1, kind, T0, ttl, 0);
    let mut tries = Vec::new();
    let mut retry = 0;
    let mut now = T0;
    while now <= T0 + until {
        for t in s.batch(now) {
            match t {
                Task::Deliver(e) | Task::Transfer(e) => {
                    assert_eq!(e, E1);
                    tries.push(now - T0);
                    retry += 1;
                    s.tempfail(e, retry, now);
                }
                Task::Expire(e) => {
                    assert_eq!(e, E1);
                    return (tries, Some(now - T0));
                }
                other => panic!("unexpected {:?}", other),
            }
        }
        // Jump to the wakeup, as the runner does.
        now = match s.wakeup() {
            Some(w) if w > now => w,
            Some(_) => now,
            None => return (tries, None),
        };
    }
    (tries, None)
}

#[test]
fn mda_backoff_is_ten_seconds_times_retry_squared() {
    let (tries, expired) = drive(DeliveryType::Mda, 4 * 86400, 400);
    // observed on OpenSMTPD: delay=0s, 10s, 40s, 1m30s, 2m40s, then 250 s, 360 s
    assert_eq!(tries, vec![0, 10, 40, 90, 160, 250, 360]);
    assert_eq!(expired, None);
}

#[test]
fn mta_backoff_is_four_hundred_seconds_times_retry_squared() {
    let (tries, _) = drive(DeliveryType::Mta, 4 * 86400, 10000);
    assert_eq!(tries, vec![0, 400, 1600, 3600, 6400, 10000]);
}

#[test]
fn expiry_at_ctime_plus_ttl_between_two_tries() {
    // `queue ttl 2m`: expired right at 2 min, after the 1m30s try.
    let (tries, expired) = drive(DeliveryType::Mda, 120, 1000);
    assert_eq!(tries, vec![0, 10, 40, 90]);
    assert_eq!(expired, Some(120));
}

#[test]
fn backoff_helpers() {
    assert_eq!(backoff(100, 10, 3), 190);
    // a try forced late (retry 6 at ctime+223) is next due at ctime+360
    assert_eq!(next_try(0, 10, 6, 223), 360);
    // steps forward past now
    assert_eq!(next_try(0, 10, 1, 100), 160);
}

#[test]
fn reloaded_envelope_resumes_its_backoff() {
    let mut s = Schedule::new(Limits::default());
    // retry 3 → due at ctime + 90
    assert_eq!(s.insert(E1, DeliveryType::Mda, T0, 86400, 3), T0 + 90);
    assert!(s.batch(T0 + 89).is_empty());
    assert_eq!(s.wakeup(), Some(T0 + 90));
    assert_eq!(s.batch(T0 + 90), vec![Task::Deliver(E1)]);
    // an envelope whose time has long passed runs at once
    s.insert(E2, DeliveryType::Mda, T0 - 1000, 86400, 2);
    assert_eq!(s.batch(T0 + 91), vec![Task::Deliver(E2)]);
}

#[test]
fn schedule_now_remove_and_list() {
    let mut s = Schedule::new(Limits::default());
    s.insert(E1, DeliveryType::Mda, T0, 86400, 0);
    s.insert(E2, DeliveryType::Mda, T0, 86400, 0);
    s.insert(E3, DeliveryType::Mta, T0, 86400, 0);
    let mut got = s.batch(T0);
    got.sort_by_key(|t| format!("{:?}", t));
    assert_eq!(got.len(), 3);
    s.tempfail(E1, 1, T0);
    s.tempfail(E2, 1, T0);
    s.tempfail(E3, 1, T0);
    let l = s.list();
    assert_eq!(l.len(), 3);
    assert_eq!(l[0].evpid, E3); // evpid order
    assert_eq!(l[0].time, T0 + 400);
    assert_eq!(l[1].state, RunState::Pending);
    assert_eq!(l[1].time, T0 + 10);

    // schedule one message: both of its envelopes
    assert_eq!(
        s.schedule_now(Target::Message(MsgId(0x898840a8)), T0 + 1),
        2
    );
    assert_eq!(s.batch(T0 + 1).len(), 2);
    // in flight: not scheduled again
    assert_eq!(s.schedule_now(Target::Envelope(E1), T0 + 1), 0);
    // remove while in flight: removed after the attempt
    assert_eq!(s.remove(Target::Envelope(E1), T0 + 1), 1);
    assert_eq!(s.tempfail(E1, 2, T0 + 2), None);
    assert_eq!(s.batch(T0 + 2), vec![Task::Remove(E1)]);
    assert!(!s.contains(E1));
    s.done(E2);
    // remove a pending one
    assert_eq!(s.remove(Target::All, T0 + 3), 1);
    assert_eq!(s.batch(T0 + 3), vec![Task::Remove(E3)]);
    assert!(s.is_empty());
    assert_eq!(s.wakeup(), None);
}

#[test]
fn pause_mda_keeps_mta_running() {
    let mut s = Schedule::new(Limits::default());
    s.insert(E1, DeliveryType::Mda, T0, 86400, 0);
    s.insert(E3, DeliveryType::Mta, T0, 86400, 0);
    s.pause(DeliveryType::Mda, true);
    assert_eq!(s.batch(T0), vec![Task::Transfer(E3)]);
    assert!(s.batch(T0 + 100).is_empty());
    let l = s.list();
    assert_eq!(
        l.iter().find(|e| e.evpid == E1).unwrap().state,
        RunState::Scheduled
    );
    s.pause(DeliveryType::Mda, false);
    assert_eq!(s.batch(T0 + 100), vec![Task::Deliver(E1)]);
}

#[test]
fn suspended_envelope_waits_for_resume() {
    let mut s = Schedule::new(Limits::default());
    s.insert(E1, DeliveryType::Mda, T0, 86400, 0);
    assert_eq!(s.suspend(Target::Envelope(E1)), 1);
    assert!(s.batch(T0 + 10).is_empty());
    assert_eq!(s.resume(Target::All), 1);
    assert_eq!(s.batch(T0 + 10), vec![Task::Deliver(E1)]);
}

#[test]
fn batches_are_bounded_and_inflight_is_limited() {
    let mut s = Schedule::new(Limits {
        max_inflight: 15,
        max_schedule: 10,
    });
    for i in 0..30u64 {
        s.insert(EvpId((1u64 << 32) | i), DeliveryType::Mda, T0, 86400, 0);
    }
    assert_eq!(s.batch(T0).len(), 10);
    assert_eq!(s.batch(T0).len(), 10);
    // 20 in flight ≥ 15: nothing more until some finish
    assert!(s.batch(T0).is_empty());
    for i in 0..10u64 {
        s.done(EvpId((1u64 << 32) | i));
    }
    assert_eq!(s.batch(T0).len(), 10);
}

#[test]
fn bounces_run_before_deliveries_and_round_robin() {
    let mut s = Schedule::new(Limits::default());
    s.insert(E1, DeliveryType::Mda, T0, 86400, 0);
    s.insert(E2, DeliveryType::Bounce, T0, 86400, 0);
    assert_eq!(s.batch(T0), vec![Task::Bounce(E2), Task::Deliver(E1)]);
}

#[test]
fn duration_to_text_as_to_c() {
    for (t, s) in [
        (0, "0s"),
        (10, "10s"),
        (40, "40s"),
        (90, "1m30s"),
        (160, "2m40s"),
        (120, "2m"),
        (3605, "1h5s"),
        (90000, "1d1h"),
        (-10, "-10s"),
        (4 * 86400, "4d"),
    ] {
        assert_eq!(duration_to_text(t), s, "{}", t);
    }
}

/// `postpone` (a paced relay's backlog given back untried, `AgentResult::Later`): pending
/// until the given time, no longer in flight, and its backoff as it was: the next failure
/// after it is scheduled as the first one would have been.
#[test]
fn a_postponed_envelope_keeps_its_backoff() {
    let mut s = Schedule::new(Limits::default());
    s.insert(E3, DeliveryType::Mta, T0, 86400, 0);
    assert_eq!(s.batch(T0), vec![Task::Transfer(E3)]);
    assert_eq!(s.inflight(), 1);
    assert_eq!(s.postpone(E3, T0 + 7, T0), Some(T0 + 7));
    assert_eq!(s.inflight(), 0);
    assert_eq!(s.list()[0].state, RunState::Pending);
    assert!(s.batch(T0 + 6).is_empty());
    assert_eq!(s.batch(T0 + 7), vec![Task::Transfer(E3)]);
    // A time already past is now.
    assert_eq!(s.postpone(E3, T0, T0 + 8), Some(T0 + 8));
    assert_eq!(s.batch(T0 + 8), vec![Task::Transfer(E3)]);
    // Still its first retry's delay (400 s for a relay, counted from its creation).
    assert_eq!(s.tempfail(E3, 1, T0 + 9), Some(T0 + 400));
}
