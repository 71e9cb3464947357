//! Byte helpers OpenSMTPD takes from libc/libbsd whose exact behaviour shows
//! up on the wire or in the logs: `strnvis(3)` and `b64_pton(3)`.

/// `strnvis(dst, src, dstsize, flags)` for the flag sets smtpd uses:
/// `VIS_SAFE | VIS_CSTYLE` (failed-command lines) and `VIS_WHITE | VIS_SAFE`
/// (user names). `dstsize` bounds the output like the C buffer does,
/// never splitting an escape.
pub fn strnvis(src: &[u8], dstsize: usize, cstyle: bool, white: bool) -> String {
    let mut out = String::new();
    for (i, &c) in src.iter().enumerate() {
        if c == 0 {
            // C strings end here.
            break;
        }
        let next = src.get(i + 1).copied().unwrap_or(0);
        let enc = vis_char(c, next, cstyle, white);
        if out.len() + enc.len() >= dstsize {
            break;
        }
        out.push_str(&enc);
    }
    out
}

fn vis_char(c: u8, next: u8, cstyle: bool, white: bool) -> String {
    let graph = c.is_ascii_graphic();
    let visible = graph
        || (!white && (c == b' ' || c == b'\t' || c == b'\n'))
        || c == 0x08
        || c == 0x07
        || c == b'\r';
    if visible {
        if c == b'\\' {
            return "\\\\".into();
        }
        return (c as char).to_string();
    }
    if cstyle {
        let s = match c {
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            0x08 => Some("\\b"),
            0x07 => Some("\\a"),
            0x0b => Some("\\v"),
            b'\t' => Some("\\t"),
            0x0c => Some("\\f"),
            b' ' => Some("\\s"),
            _ => None,
        };
        if let Some(s) = s {
            return s.into();
        }
        if c == 0 {
            return if (b'0'..=b'7').contains(&next) {
                "\\000".into()
            } else {
                "\\0".into()
            };
        }
    }
    if c & 0x7f == b' ' {
        return format!("\\{}{}{}", (c >> 6) & 7, (c >> 3) & 7, c & 7);
    }
    let mut s = String::from("\\");
    let mut c = c;
    if c & 0x80 != 0 {
        c &= 0x7f;
        s.push('M');
    }
    if c.is_ascii_control() {
        s.push('^');
        s.push(if c == 0x7f { '?' } else { (c + b'@') as char });
    } else {
        s.push('-');
        s.push(c as char);
    }
    s
}

/// Standard base64 with padding (`b64_ntop`), for AUTH on the client side.
pub fn b64_ntop(src: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(src.len().div_ceil(3) * 4);
    for chunk in src.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `b64_pton` as in OpenBSD libc: whitespace anywhere is skipped, padding is
/// checked strictly, trailing garbage after padding is refused, and the
/// decoded length must fit `targsize`. `None` is the C function's `-1`.
pub fn b64_pton(src: &[u8], targsize: usize) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u8> {
        match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let src = match src.iter().position(|&c| c == 0) {
        Some(n) => &src[..n],
        None => src,
    };
    let mut out: Vec<u8> = Vec::new();
    let mut state = 0;
    let mut i = 0;
    let mut pad = false;
    // The partial byte that would be written past the last full one.
    let mut spill: u8 = 0;
    while i < src.len() {
        let ch = src[i];
        i += 1;
        if is_space(ch) {
            continue;
        }
        if ch == b'=' {
            pad = true;
            break;
        }
        let v = val(ch)?;
        match state {
            0 => {
                if out.len() >= targsize {
                    return None;
                }
                spill = v << 2;
                state = 1;
            }
            1 => {
                if out.len() >= targsize {
                    return None;
                }
                out.push(spill | (v >> 4));
                spill = (v & 0x0f) << 4;
                if out.len() >= targsize && spill != 0 {
                    return None;
                }
                state = 2;
            }
            2 => {
                if out.len() >= targsize {
                    return None;
                }
                out.push(spill | (v >> 2));
                spill = (v & 0x03) << 6;
                if out.len() >= targsize && spill != 0 {
                    return None;
                }
                state = 3;
            }
            _ => {
                if out.len() >= targsize {
                    return None;
                }
                out.push(spill | v);
                spill = 0;
                state = 0;
            }
        }
    }
    if pad {
        let mut rest = src[i..].iter().copied();
        match state {
            0 | 1 => return None,
            2 => {
                // One byte of information: a second '=' must follow.
                let mut second = false;
                for c in rest.by_ref() {
                    if is_space(c) {
                        continue;
                    }
                    if c != b'=' {
                        return None;
                    }
                    second = true;
                    break;
                }
                if !second {
                    return None;
                }
            }
            _ => {}
        }
        if rest.any(|c| !is_space(c)) {
            return None;
        }
        if spill != 0 {
            return None;
        }
    } else if state != 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64_ntop_round_trips() {
        for (raw, enc) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"\0alice\0alicepass", "AGFsaWNlAGFsaWNlcGFzcw=="),
        ] {
            assert_eq!(b64_ntop(raw), enc);
            assert_eq!(b64_pton(enc.as_bytes(), 64).as_deref(), Some(raw));
        }
    }

    #[test]
    fn vis_matches_binary() {
        // ✔ all three captured from the real smtpd's failed-command lines.
        assert_eq!(
            strnvis(b"XYZ\tx\x01\xe9\\ \"q\"\r\x7f", 4096, true, false),
            "XYZ\tx\\^A\\M-i\\\\ \"q\"\r\\^?"
        );
        assert_eq!(strnvis(b"X\x00junk", 4096, true, false), "X");
        assert_eq!(
            strnvis(b"X\x081\x07\x1b\x0c\x80\xff", 4096, true, false),
            "X\x081\x07\\^[\\f\\M^@\\M^?"
        );
        assert_eq!(strnvis(b"\x0b\xa0", 4096, true, false), "\\v\\240");
        assert_eq!(strnvis(b"a b\tc", 4096, false, true), "a\\040b\\^Ic");
    }

    #[test]
    fn vis_truncates_on_escape_boundary() {
        assert_eq!(strnvis(b"ab\x01", 4, true, false), "ab");
        assert_eq!(strnvis(b"abc", 3, true, false), "ab");
    }

    #[test]
    fn base64() {
        assert_eq!(
            b64_pton(b"AGZvbwBiYXI=", 1023).as_deref(),
            Some(&b"\0foo\0bar"[..])
        );
        assert_eq!(b64_pton(b"Zm9v", 100).as_deref(), Some(&b"foo"[..]));
        assert_eq!(b64_pton(b"Zm8=", 100).as_deref(), Some(&b"fo"[..]));
        assert_eq!(b64_pton(b"Zg==", 100).as_deref(), Some(&b"f"[..]));
        assert_eq!(b64_pton(b"Z g = =", 100).as_deref(), Some(&b"f"[..]));
        assert_eq!(b64_pton(b"", 100).as_deref(), Some(&b""[..]));
        assert_eq!(b64_pton(b"Zg=", 100), None);
        assert_eq!(b64_pton(b"Zh==", 100), None); // non-zero spilled bits
        assert_eq!(b64_pton(b"Zm9", 100), None);
        assert_eq!(b64_pton(b"*", 100), None);
        assert_eq!(b64_pton(b"Zm9v=", 100), None);
        assert_eq!(b64_pton(b"Zg==x", 100), None);
        assert_eq!(b64_pton(b"Zm9v", 2), None);
        assert_eq!(b64_pton(b"Zm9v", 3).as_deref(), Some(&b"foo"[..]));
    }
}
