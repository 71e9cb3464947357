//! Network addresses as OpenSMTPD's `text_to_netaddr()` reads them (glibc's `inet_net_pton`)
//! and matches them.

use super::*;
use crate::sys::compat::strip_prefix_ci;

/// `text_to_netaddr()`: an IPv4 network as glibc's `inet_net_pton()` reads it (dotted decimal,
/// 1 to 4 octets, class-based width when no `/bits`), else an IPv6 address with optional
/// `/bits`, brackets and `IPv6:` prefixes allowed. Hexadecimal IPv4 forms are not supported.
pub fn text_to_netaddr(s: &str) -> Option<(IpAddr, u8)> {
    let s = strip_prefix_ci(s, "ipv6:").unwrap_or(s);
    if let Some(v4) = inet_net_pton4(s) {
        return Some(v4);
    }
    let inner = if let Some(rest) = s.strip_prefix('[') {
        let rest = strip_prefix_ci(rest, "ipv6:").unwrap_or(rest);
        rest.strip_suffix(']')?
    } else {
        s
    };
    let (addr, bits) = match inner.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (inner, None),
    };
    let a: Ipv6Addr = addr.parse().ok()?;
    let bits = match bits {
        None => 128,
        Some(b) => {
            let n: u32 = b.trim_start().parse().ok()?;
            if n > 128 {
                return None;
            }
            n as u8
        }
    };
    Some((IpAddr::V6(a), bits))
}

pub(crate) fn inet_net_pton4(s: &str) -> Option<(IpAddr, u8)> {
    let b = s.as_bytes();
    let mut octets: Vec<u8> = Vec::with_capacity(4);
    let mut i = 0;
    if !b.first()?.is_ascii_digit() {
        return None;
    }
    loop {
        let mut v: u32 = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            v = v * 10 + u32::from(b[i] - b'0');
            if v > 255 {
                return None;
            }
            i += 1;
        }
        if octets.len() == 4 {
            return None;
        }
        octets.push(v as u8);
        if i == b.len() || b[i] == b'/' {
            break;
        }
        if b[i] != b'.' {
            return None;
        }
        i += 1;
        if i >= b.len() || !b[i].is_ascii_digit() {
            return None;
        }
    }
    let mut bits: Option<u32> = None;
    if i < b.len() {
        // b[i] == '/': a width must follow, and nothing after it.
        i += 1;
        if i >= b.len() || !b[i].is_ascii_digit() {
            return None;
        }
        let mut n = 0u32;
        while i < b.len() && b[i].is_ascii_digit() {
            n = n * 10 + u32::from(b[i] - b'0');
            if n > 32 {
                return None;
            }
            i += 1;
        }
        if i != b.len() {
            return None;
        }
        bits = Some(n);
    }
    let bits = match bits {
        Some(n) => n,
        None => {
            let first = octets[0];
            let mut n = if first >= 240 {
                32
            } else if first >= 224 {
                4
            } else if first >= 192 {
                24
            } else if first >= 128 {
                16
            } else {
                8
            };
            let given = 8 * octets.len() as u32;
            if n < given {
                n = given;
            }
            if n == 8 && first == 224 {
                n = 4;
            }
            n
        }
    };
    octets.resize(4, 0);
    let a = Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]);
    Some((IpAddr::V4(a), bits as u8))
}

/// `table_inet4_match()`/`table_inet6_match()`: same family, equal under the entry's mask.
pub(crate) fn net_contains(net: IpAddr, bits: u8, addr: IpAddr) -> bool {
    match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits.min(32)))
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits.min(128)))
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}
