//! The Sender Rewriting Scheme of OpenSMTPD 6.8 (srs.c): a relay action with `srs` rewrites
//! the sender of forwarded mail into an address of the forwarding domain (SRS0, or SRS1 when
//! the sender is already an SRS address), and a bounce to such an address is decoded back to
//! the original sender when it comes in. Pure: the key and the time are given.
//!
//! The formats, byte for byte as srs.c writes them:
//! - `SRS0=HHHH=TT=<orig domain>=<orig user>@<new domain>`: HHHH the first 4 characters of
//!   the URL-safe base64 of SHA1(key ‖ everything after `HHHH=`), TT the day number modulo
//!   1024 in two base32 characters;
//! - `SRS1=HHHH=<SRS0 domain>==<SRS0 user part>@<new domain>` for an SRS0 sender;
//! - `SRS1=HHHH=<rest>@<new domain>` for an SRS1 sender, the previous hop's hash dropped.

/// `SMTPD_MAXLOCALPARTSIZE`, `SMTPD_MAXDOMAINPARTSIZE`, `SMTPD_MAXMAILADDRSIZE`: the buffers of
/// srs.c, whose overflow leaves the address as it was.
const MAX_PART: usize = 255;
const MAX_ADDR: usize = 255;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The keys and lifetime of `srs key`, `srs key backup` and `srs ttl`.
#[derive(Clone, Debug)]
pub struct Keys<'a> {
    pub key: &'a str,
    pub backup: Option<&'a str>,
    /// `srs ttl`, in days (6.8's default: the queue expiry, 4 days).
    pub ttl_days: u32,
}

/// The 10-bit day number of `now` (seconds since the epoch).
fn timestamp(now: i64) -> u16 {
    (now.div_euclid(86400).rem_euclid(1024)) as u16
}

/// The 4 characters of an SRS hash: `base64_encode_rfc3548` (`+/` as `-_`) of SHA1(key, value).
fn hash(key: &str, value: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.as_bytes());
    ctx.update(value.as_bytes());
    let b64 = rsmtpd_protocol::util::b64_ntop(ctx.finish().as_ref());
    b64.chars()
        .take(4)
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect()
}

/// `text_to_mailaddr`: user and domain split at the last `@` (no `@`: all user), None when a
/// part does not fit its buffer.
fn split(addr: &str) -> Option<(&str, &str)> {
    let (u, d) = addr.rsplit_once('@').unwrap_or((addr, ""));
    (u.len() <= MAX_PART && d.len() <= MAX_PART).then_some((u, d))
}

fn fits(s: String) -> Option<String> {
    (s.len() <= MAX_ADDR).then_some(s)
}

/// The 2-character base32 timestamp at the start of `s`.
fn decode_timestamp(s: &[u8]) -> Option<u16> {
    let pos = |c: u8| BASE32.iter().position(|&b| b == c).map(|p| p as u16);
    Some((pos(*s.first()?)? << 5) | pos(*s.get(1)?)?)
}

/// Whether `t2` is at most `ttl` days before `tref` or one day after, modulo 1024 (srs.c's
/// `timestamp_check_range`).
fn in_range(tref: u16, t2: u16, ttl: u32) -> bool {
    let (tref, t2, drift) = (i64::from(tref), i64::from(t2), i64::from(ttl));
    let min = if tref > drift {
        t2 <= tref && t2 >= tref - drift
    } else {
        t2 <= tref || t2 >= 1024 - (drift - tref)
    };
    let max = if tref + 1 < 1024 {
        t2 >= tref && t2 <= tref + 1
    } else {
        t2 >= tref || t2 <= (tref + 1) % 1024
    };
    min || max
}

fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `srs_encode`: the sender of a message forwarded for a recipient of `rcpt_domain`. An
/// address srs.c cannot rewrite (too long, an SRS1 without its hash) is left as it was.
/// Deliberate difference: srs.c then returns the sender without its `SRS0=`/`SRS1=` prefix
/// (a pointer past it), which names nobody; we keep the whole sender.
pub fn encode(keys: &Keys<'_>, sender: &str, rcpt_domain: &str, now: i64) -> String {
    let out = if let Some(rest) = strip_prefix_ci(sender, "SRS0=") {
        split(rest).and_then(|(user, domain)| {
            let tmp = fits(format!("{domain}=={user}@{rcpt_domain}"))?;
            fits(format!("SRS1={}={tmp}", hash(keys.key, &tmp)))
        })
    } else if let Some(rest) = strip_prefix_ci(sender, "SRS1=") {
        split(rest).and_then(|(user, _)| {
            let tmp = fits(format!("{user}@{rcpt_domain}"))?;
            if !matches!(tmp.as_bytes().get(4), Some(b'=' | b'+' | b'-')) {
                return None;
            }
            let rest = &tmp[5..];
            fits(format!("SRS1={}={rest}", hash(keys.key, rest)))
        })
    } else {
        split(sender).and_then(|(user, domain)| {
            let t = timestamp(now);
            let tmp = fits(format!(
                "{}{}={domain}={user}@{rcpt_domain}",
                char::from(BASE32[usize::from((t >> 5) & 0x1f)]),
                char::from(BASE32[usize::from(t & 0x1f)]),
            ))?;
            fits(format!("SRS0={}={tmp}", hash(keys.key, &tmp)))
        })
    };
    out.unwrap_or_else(|| sender.to_string())
}

/// Whether `s` (`HHHH=rest`) carries the hash of its rest under the key or the backup key.
fn hash_ok(keys: &Keys<'_>, s: &str) -> bool {
    let (Some(given), Some(rest)) = (s.get(..4), s.get(5..)) else {
        return false;
    };
    hash(keys.key, rest) == given || keys.backup.is_some_and(|b| hash(b, rest) == given)
}

/// `srs_decode`: the address an SRS recipient stands for, None when it is not one of ours
/// (bad hash, expired, malformed).
pub fn decode(keys: &Keys<'_>, rcpt: &str, now: i64) -> Option<String> {
    if let Some(rest) = strip_prefix_ci(rcpt, "SRS0=") {
        if !hash_ok(keys, rest) {
            return None;
        }
        let rest = rest.get(5..)?;
        if rest.len() < 3 {
            return None;
        }
        let ts = decode_timestamp(rest.as_bytes())?;
        let rest = rest.get(3..)?;
        let now_ts = timestamp(now);
        if now_ts != ts && !in_range(now_ts, ts, keys.ttl_days) {
            return None;
        }
        let (user, _) = split(rest)?;
        let (domain, user) = user.split_once('=')?;
        fits(format!("{user}@{domain}"))
    } else if let Some(rest) = strip_prefix_ci(rcpt, "SRS1=") {
        if !hash_ok(keys, rest) {
            return None;
        }
        let (user, _) = split(rest.get(5..)?)?;
        let (domain, p) = user.split_once('=')?;
        // p is `=HHHH=TT=...`: the SRS0 part, whose hash only its own host can check.
        let dest = fits(format!("SRS0{p}@{domain}"))?;
        let p = p.as_bytes().get(6..)?;
        if p.len() < 3 || !matches!(p[2], b'=' | b'+' | b'-') {
            return None;
        }
        let ts = decode_timestamp(p)?;
        let now_ts = timestamp(now);
        if now_ts != ts && !in_range(now_ts, ts, keys.ttl_days) {
            return None;
        }
        Some(dest)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: Keys<'static> = Keys {
        key: "secret",
        backup: None,
        ttl_days: 4,
    };
    // 2026-12-02 12:00 UTC: day 20789, timestamp 20789 % 1024 = 309 = "JV".
    const NOW: i64 = 20789 * 86400 + 43200;

    #[test]
    fn srs0_round_trip() {
        let e = encode(&KEYS, "bob@orig.test", "fwd.test", NOW);
        assert!(e.starts_with("SRS0="), "{e}");
        assert!(e.ends_with("=JV=orig.test=bob@fwd.test"), "{e}");
        assert_eq!(e.len(), "SRS0=HHHH=JV=orig.test=bob@fwd.test".len());
        assert_eq!(decode(&KEYS, &e, NOW).as_deref(), Some("bob@orig.test"));
        // Case of the prefix does not matter; of the hash it does.
        let lower = format!("srs0{}", &e[4..]);
        assert_eq!(decode(&KEYS, &lower, NOW).as_deref(), Some("bob@orig.test"));
        let other = Keys {
            key: "other",
            ..KEYS
        };
        assert_eq!(decode(&other, &e, NOW), None);
        let rotated = Keys {
            key: "other",
            backup: Some("secret"),
            ttl_days: 4,
        };
        assert_eq!(decode(&rotated, &e, NOW).as_deref(), Some("bob@orig.test"));
    }

    #[test]
    fn srs0_expires_after_ttl() {
        let e = encode(&KEYS, "bob@orig.test", "fwd.test", NOW);
        for days in 0..=4 {
            assert!(decode(&KEYS, &e, NOW + days * 86400).is_some(), "{days}");
        }
        assert_eq!(decode(&KEYS, &e, NOW + 5 * 86400), None);
        // One day in the future is accepted (clock drift), two are not.
        assert!(decode(&KEYS, &e, NOW - 86400).is_some());
        assert_eq!(decode(&KEYS, &e, NOW - 2 * 86400), None);
    }

    #[test]
    fn wraps_around_1024_days() {
        let t = 1023 * 86400 + 5;
        let e = encode(&KEYS, "a@b.test", "fwd.test", t);
        assert!(e.contains("=77=b.test=a@"), "{e}");
        assert!(decode(&KEYS, &e, t + 3 * 86400).is_some());
        assert!(in_range(2, 1022, 4));
        assert!(!in_range(2, 1020, 4));
        assert!(in_range(1023, 0, 4));
    }

    #[test]
    fn srs1_from_srs0_and_srs1() {
        let s0 = encode(&KEYS, "bob@orig.test", "fwd.test", NOW);
        let s1 = encode(&KEYS, &s0, "fwd2.test", NOW);
        let tail = format!(
            "=fwd.test=={}@fwd2.test",
            &s0[5..s0.len() - "@fwd.test".len()]
        );
        assert!(
            s1.starts_with("SRS1=") && s1.ends_with(&tail),
            "{s1} {tail}"
        );
        // The second forwarder decodes it back to the SRS0 address of the first.
        assert_eq!(decode(&KEYS, &s1, NOW).as_deref(), Some(s0.as_str()));
        // A third hop keeps the first hop's part and hashes anew.
        let s1b = encode(&KEYS, &s1, "fwd3.test", NOW);
        assert!(
            s1b.starts_with("SRS1=") && s1b.ends_with("@fwd3.test"),
            "{s1b}"
        );
        assert_eq!(&s1b[10..s1b.len() - 10], &s1[10..s1.len() - 10]);
        assert_eq!(decode(&KEYS, &s1b, NOW).as_deref(), Some(s0.as_str()));
    }

    #[test]
    fn malformed_and_oversized() {
        for bad in [
            "SRS0=",
            "SRS0=abcd",
            "SRS0=abcd=JV",
            "SRS1=x@y",
            "bob@fwd.test",
            "SRS0=ééé=JV=a=b@c",
        ] {
            assert_eq!(decode(&KEYS, bad, NOW), None, "{bad}");
        }
        let long = format!("{}@orig.test", "x".repeat(240));
        assert_eq!(encode(&KEYS, &long, "fwd.test", NOW), long);
        // An SRS1 sender without a hash delimiter stays as it is.
        assert_eq!(encode(&KEYS, "SRS1=ab@c", "fwd.test", NOW), "SRS1=ab@c");
    }
}
