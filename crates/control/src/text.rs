//! Times and durations as OpenSMTPD's to.c writes them, for the daemon (headers, logs, bounces)
//! and smtpctl (`show queue`, sendmail's Date:) alike.
//!
//! `time_to_text`: local time, English names, no zero before the day:
//! `Wed, 5 Nov 2026 12:31:05 +0000 (UTC)`.

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The broken-down local time of a Unix time.
pub struct LocalTime {
    pub wday: usize,
    pub mday: i32,
    pub mon: usize,
    pub year: i32,
    pub hour: i32,
    pub min: i32,
    pub sec: i32,
    pub gmtoff: i64,
    pub zone: String,
}

extern "C" {
    /// POSIX tzset(3); the libc crate does not declare it.
    fn tzset();
}

pub fn local_time(when: i64) -> Option<LocalTime> {
    let t: libc::time_t = when;
    // SAFETY: tzset reads TZ (localtime_r does not); localtime_r writes into our zeroed struct;
    // tm_zone points into static storage of the C library, read right away.
    unsafe {
        tzset();
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return None;
        }
        let zone = if tm.tm_zone.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(tm.tm_zone)
                .to_string_lossy()
                .into_owned()
        };
        Some(LocalTime {
            wday: usize::try_from(tm.tm_wday).unwrap_or(0) % 7,
            mday: tm.tm_mday,
            mon: usize::try_from(tm.tm_mon).unwrap_or(0) % 12,
            year: tm.tm_year + 1900,
            hour: tm.tm_hour,
            min: tm.tm_min,
            sec: tm.tm_sec,
            gmtoff: tm.tm_gmtoff,
            zone,
        })
    }
}

/// `time_to_text()`.
pub fn time_to_text(when: i64) -> String {
    match local_time(when) {
        Some(t) => format_time(&t),
        None => String::new(),
    }
}

pub fn format_time(t: &LocalTime) -> String {
    let sign = if t.gmtoff >= 0 { '+' } else { '-' };
    let off = t.gmtoff.abs();
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} {}{:02}{:02} ({})",
        DAYS[t.wday],
        t.mday,
        MONTHS[t.mon],
        t.year,
        t.hour,
        t.min,
        t.sec,
        sign,
        off / 3600,
        (off % 3600) / 60,
        t.zone
    )
}

/// `ctime(3)` of a Unix time in local time: `Wed Nov 25 11:39:20 2026\n`, the day padded to two
/// places (mail.local's `From ` line). Empty when the time has no local time.
pub fn ctime_text(when: i64) -> String {
    match local_time(when) {
        Some(t) => format!(
            "{} {}{:3} {:02}:{:02}:{:02} {}\n",
            DAYS[t.wday], MONTHS[t.mon], t.mday, t.hour, t.min, t.sec, t.year
        ),
        None => String::new(),
    }
}

/// `duration_to_text()` (to.c): `0s`, `1m30s`, `2d1h`, `-10s`.
pub fn duration_to_text(t: i64) -> String {
    if t == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut t = if t < 0 {
        out.push('-');
        t.unsigned_abs()
    } else {
        t as u64
    };
    let s = t % 60;
    t /= 60;
    let m = t % 60;
    t /= 60;
    let h = t % 24;
    let d = t / 24;
    for (n, u) in [(d, 'd'), (h, 'h'), (m, 'm'), (s, 's')] {
        if n != 0 {
            out.push_str(&format!("{}{}", n, u));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format() {
        let t = LocalTime {
            wday: 5,
            mday: 30,
            mon: 3,
            year: 2021,
            hour: 18,
            min: 45,
            sec: 46,
            gmtoff: 7200,
            zone: "CEST".into(),
        };
        assert_eq!(format_time(&t), "Fri, 30 Apr 2021 18:45:46 +0200 (CEST)");
        let u = LocalTime {
            mday: 5,
            gmtoff: -16200,
            zone: "X".into(),
            ..t
        };
        assert_eq!(format_time(&u), "Fri, 5 Apr 2021 18:45:46 -0430 (X)");
    }

    #[test]
    fn durations() {
        assert_eq!(duration_to_text(0), "0s");
        assert_eq!(duration_to_text(93784), "1d2h3m4s");
        assert_eq!(duration_to_text(-60), "-1m");
    }
}

#[cfg(test)]
mod ctime_tests {
    /// The C library's own ctime_r, to compare with.
    fn libc_ctime(when: i64) -> String {
        let t: libc::time_t = when;
        let mut buf = [0 as libc::c_char; 64];
        // SAFETY: ctime_r writes at most 26 bytes into a buffer of 64, NUL-terminated.
        let p = unsafe { libc::ctime_r(&t, buf.as_mut_ptr()) };
        assert!(!p.is_null());
        // SAFETY: ctime_r returned a NUL-terminated string in buf.
        unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn ctime_text_is_the_c_librarys_ctime() {
        for when in [
            0,
            1,
            1_795_609_943,
            1_619_801_197,
            1_000_000_000,
            4_102_444_800,
        ] {
            assert_eq!(super::ctime_text(when), libc_ctime(when), "{when}");
        }
    }
}
