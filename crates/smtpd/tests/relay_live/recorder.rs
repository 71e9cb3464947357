//! The MX hosts of `mx`: the common sink (`common/sink.rs`) with the recorder's texts, which
//! records what a relaying client sends (every line, with the time since the connection was
//! accepted) and accepts everything, or refuses every RCPT with a 4xx or a 5xx.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::sink::Script;
pub use crate::common::sink::{Conn, Sink as Recorder};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// EHLO offers DSN and 8BITMIME; every command accepted.
    Accept,
    /// Every RCPT answered `451 4.7.1 greylisted, try again later`.
    TempRcpt,
    /// Every RCPT answered `550 5.7.1 relaying denied`.
    PermRcpt,
}

/// Listens on `addr` (in the network namespace of the calling thread).
pub fn bind(addr: SocketAddr, answer: Answer) -> Recorder {
    let rcpt = match answer {
        Answer::Accept => "250 2.1.5 ok",
        Answer::TempRcpt => "451 4.7.1 greylisted, try again later",
        Answer::PermRcpt => "550 5.7.1 relaying denied",
    };
    Recorder::bind(
        addr,
        Script {
            rcpt: Arc::new(move |_| rcpt.to_string()),
            ..Script::recorder()
        },
    )
}

/// Waits until `cond` holds; fails with `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, cond: impl Fn() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "not in {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
