//! `smtpctl show stats`: OpenSMTPD's named counters, as its "ram" stat backend keeps them. A
//! counter exists from its first change on (OpenSMTPD ignores changes by 0, and shows a counter
//! only once it was set, at 0 after it went back down), so `show stats` lists what happened
//! since start, by the names scripts written for OpenSMTPD read.
//!
//! Not counted: OpenSMTPD's `queue.evpcache.*` and `scheduler.ramqueue.*`, the state of its
//! envelope cache and its scheduler backend's lists, which we do not have; we do not make up
//! their values.

use std::collections::BTreeMap;
use std::sync::Mutex;

static COUNTERS: Mutex<BTreeMap<&'static str, i64>> = Mutex::new(BTreeMap::new());

fn change(name: &'static str, delta: i64) {
    if delta == 0 {
        return;
    }
    if let Ok(mut c) = COUNTERS.lock() {
        *c.entry(name).or_insert(0) += delta;
    }
}

/// `stat_increment(name, n)`.
pub fn increment(name: &'static str, n: usize) {
    change(name, i64::try_from(n).unwrap_or(i64::MAX));
}

/// `stat_decrement(name, n)`.
pub fn decrement(name: &'static str, n: usize) {
    change(name, -i64::try_from(n).unwrap_or(i64::MAX));
}

/// Every counter set since start, by name.
pub fn snapshot() -> Vec<(String, i64)> {
    COUNTERS
        .lock()
        .map(|c| c.iter().map(|(k, v)| (k.to_string(), *v)).collect())
        .unwrap_or_default()
}
