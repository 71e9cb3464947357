//! `crypt_checkpass()` for the hashes credential tables hold: SHA-512-crypt (`$6$`, what
//! `smtpctl encrypt` makes) and bcrypt (`$2b$`, `$2a$`, `$2y$`, which administrators bring from
//! elsewhere). Any other scheme never matches, as crypt(3) fails on a hash it does not know.
//!
//! A hash costs milliseconds to compute on purpose: call [`check`] off the async workers.

/// The crypt(3) base-64 alphabet.
const ALPHABET: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// glibc's bounds on `rounds=`: values outside are clamped, not refused.
const ROUNDS_MIN: u32 = 1_000;
const ROUNDS_MAX: u32 = 999_999_999;
const ROUNDS_DEFAULT: u32 = 5_000;

/// Whether `password` matches `hash`.
pub fn check(password: &[u8], hash: &str) -> bool {
    if hash.starts_with("$6$") {
        match sha512_crypt(password, hash) {
            Some(made) => constant_time_eq(made.as_bytes(), hash.as_bytes()),
            None => false,
        }
    } else if hash.starts_with("$2") {
        bcrypt::verify(password, hash).unwrap_or(false)
    } else {
        false
    }
}

/// The SHA-512-crypt of `password` with the salt and rounds of `setting` (a full hash or its
/// `$6$[rounds=N$]SALT` prefix), in crypt(3)'s text form; None if `setting` is malformed.
pub fn sha512_crypt(password: &[u8], setting: &str) -> Option<String> {
    let rest = setting.strip_prefix("$6$")?;
    let (rounds, explicit, rest) = match rest.strip_prefix("rounds=") {
        Some(r) => {
            let (n, rest) = r.split_once('$')?;
            let n: u64 = n.parse().ok()?;
            let n = u32::try_from(n.clamp(ROUNDS_MIN as u64, ROUNDS_MAX as u64)).ok()?;
            (n, true, rest)
        }
        None => (ROUNDS_DEFAULT, false, rest),
    };
    // The salt ends at the next '$' (or the end) and is at most 16 characters.
    let salt_end = rest.find('$').unwrap_or(rest.len());
    let salt: String = rest[..salt_end].chars().take(16).collect();
    let params = sha_crypt::Params::new(rounds).ok()?;
    let raw = sha_crypt::sha512_crypt(password, salt.as_bytes(), params);
    let mut out = String::from("$6$");
    if explicit {
        out.push_str(&format!("rounds={}$", rounds));
    }
    out.push_str(&salt);
    out.push('$');
    let mut push = |b2: u8, b1: u8, b0: u8, n: usize| {
        let mut w = ((b2 as u32) << 16) | ((b1 as u32) << 8) | b0 as u32;
        for _ in 0..n {
            out.push(ALPHABET[(w & 0x3f) as usize] as char);
            w >>= 6;
        }
    };
    for i in 0..21 {
        let (a, b, c) = match i % 3 {
            0 => (i, i + 21, i + 42),
            1 => (i + 21, i + 42, i),
            _ => (i + 42, i, i + 21),
        };
        push(raw[a], raw[b], raw[c], 4);
    }
    push(0, 0, raw[63], 2);
    Some(out)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha512_crypt_as_glibc() {
        // Drepper's reference vectors (explicit rounds, a salt cut at 16 characters).
        let h = "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.";
        assert!(check(b"Hello world!", h));
        assert!(!check(b"Hello world", h));
        let long = "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0";
        assert!(check(b"This is just a test", long));
        let plain = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
        assert!(check(b"Hello world!", plain));
    }

    #[test]
    fn bcrypt_and_others() {
        let h = bcrypt::hash("bobpass", 4).unwrap_or_default();
        assert!(check(b"bobpass", &h));
        assert!(!check(b"bobpas", &h));
        assert!(!check(b"x", "plaintext"));
        assert!(!check(b"x", "$1$abc$def"));
        assert!(!check(b"x", "$6$"));
    }
}
