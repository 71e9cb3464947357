//! The daemon's clock. Formatting lives with smtpctl's in `rsmtpd_control::text` (to.c).

pub use rsmtpd_control::text::{format_time, local_time, time_to_text, LocalTime};

/// Now, as a Unix time.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
