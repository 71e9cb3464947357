//! The scheduler's log lines, as OpenSMTPD words them (mda.c `mda_log`, queue.c).

use crate::queue::{DeliveryType, Envelope};

use super::schedule::Time;

pub use rsmtpd_control::text::duration_to_text;

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
