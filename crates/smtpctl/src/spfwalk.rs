//! `smtpctl spf walk` (spfwalk.c): reads domains on standard input, one a line, and prints the
//! addresses and networks their SPF records allow, walking `include:`, `redirect=`, `a`, `mx`
//! and `exists:` through DNS. The pure part is here ([`Walk`]: a TXT record in, lines to print
//! and lookups to make out); the smtpctl personality asks the resolver.
//!
//! Records are handled as bytes, as spfwalk.c does: names go to DNS as the record spells them
//! (no IDNA), and a record is cut at a NUL byte as a C string would be.
//!
//! Where 6.8 on Debian and this walk differ, on purpose: OpenSMTPD checks `ip6:` networks with
//! inet_net_pton(3), which glibc implements for AF_INET only, so Debian's smtpctl never prints an
//! `ip6:` network (OpenBSD's does). A walk that silently drops every IPv6 network of a domain
//! makes a wrong allow list, so `ip6:` terms are printed as OpenBSD's inet_net_pton accepts them.
//! `ip4:` terms are checked as glibc's inet_net_pton does (`10/8`, `192.0.2`, `0x0a000000/8`
//! and `1.2.3.4.5` pass; `1.2.3.256` and `1.2.3.4/33` do not), which is what both builds print.

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, Ipv6Addr};

/// What spfwalk.c asks the resolver: the record type, the name (raw bytes, no final dot), and
/// the prefix lengths that `a:NAME/24/64` or `mx:NAME/24` put after the addresses found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    pub kind: Kind,
    pub name: Vec<u8>,
    pub cidr4: Option<u8>,
    pub cidr6: Option<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Txt,
    Mx,
    A,
    Aaaa,
}

/// spfwalk.c's buffer for a record's text: a record of this many bytes or more is skipped.
const TXT_MAX: usize = 4096;

/// The walk's state: the terms already seen (spfwalk.c's `seen`: a term is followed once over
/// the whole walk, so a bare `a` or `mx` is followed for the first domain that has it only, as
/// in 6.8), and the lookups still to make.
#[derive(Default)]
pub struct Walk {
    seen: HashSet<Vec<u8>>,
    pub pending: VecDeque<Lookup>,
    /// Lines for standard error (`lookup_record: NAME contains macros and can't be resolved`).
    pub warnings: Vec<String>,
}

impl Walk {
    /// A line of standard input: its trailing white space removed, a domain whose TXT records
    /// are walked (an empty line is skipped).
    pub fn start(&mut self, line: &[u8]) {
        let end = line
            .iter()
            .rposition(|b| !is_c_space(*b))
            .map_or(0, |i| i + 1);
        if end > 0 {
            self.lookup(Kind::Txt, &line[..end], None, None);
        }
    }

    /// `lookup_record()`: queued, unless the name holds SPF macros, which cannot be resolved.
    pub fn lookup(&mut self, kind: Kind, name: &[u8], cidr4: Option<u8>, cidr6: Option<u8>) {
        if name.contains(&b'%') {
            // isprint(3), byte by byte.
            let shown: String = name
                .iter()
                .map(|&b| {
                    if (0x20..0x7f).contains(&b) {
                        b as char
                    } else {
                        '?'
                    }
                })
                .collect();
            self.warnings.push(format!(
                "lookup_record: {shown} contains macros and can't be resolved"
            ));
            return;
        }
        self.pending.push_back(Lookup {
            kind,
            name: name.to_vec(),
            cidr4,
            cidr6,
        });
    }

    /// `dispatch_txt()`: one TXT record whose owner is `owner` (the name as DNS answered it,
    /// without its final dot) and whose character strings are `strings`; the lines to print.
    /// Records that are not `v=spf1 ...` are ignored.
    pub fn txt(&mut self, owner: &[u8], strings: &[&[u8]]) -> Vec<String> {
        let mut out = Vec::new();
        let mut text: Vec<u8> = strings.concat();
        if text.len() >= TXT_MAX {
            return out;
        }
        if let Some(nul) = text.iter().position(|&b| b == 0) {
            text.truncate(nul);
        }
        if !text
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"v=spf1 "))
        {
            return out;
        }
        for term in text.split(|&b| b == b' ') {
            if term.is_empty() || term.eq_ignore_ascii_case(b"v=spf1") {
                continue;
            }
            let term = term.strip_suffix(b".").unwrap_or(term);
            if !self.seen.insert(term.to_vec()) {
                continue;
            }
            if term.starts_with(b"-") || term.starts_with(b"~") {
                continue;
            }
            let t = term
                .strip_prefix(b"+")
                .or_else(|| term.strip_prefix(b"?"))
                .unwrap_or(term);
            if let Some(net) = strip_ci(t, b"ip4:") {
                if inet_net_pton4(net) {
                    out.push(String::from_utf8_lossy(net).into_owned());
                }
            } else if let Some(net) = strip_ci(t, b"ip6:") {
                if inet_net_pton6(net) {
                    out.push(String::from_utf8_lossy(net).into_owned());
                }
            } else if t.eq_ignore_ascii_case(b"a") {
                self.lookup(Kind::A, owner, None, None);
                self.lookup(Kind::Aaaa, owner, None, None);
            } else if let Some(rest) = strip_ci(t, b"a:") {
                if let Some((name, c4, c6)) = target(rest) {
                    self.lookup(Kind::A, name, c4, c6);
                    self.lookup(Kind::Aaaa, name, c4, c6);
                }
            } else if let Some(name) = strip_ci(t, b"exists:") {
                self.lookup(Kind::A, name, None, None);
            } else if let Some(name) = strip_ci(t, b"include:") {
                self.lookup(Kind::Txt, name, None, None);
            } else if let Some(name) = strip_ci(t, b"redirect=") {
                self.lookup(Kind::Txt, name, None, None);
            } else if t.eq_ignore_ascii_case(b"mx") {
                self.lookup(Kind::Mx, owner, None, None);
            } else if let Some(rest) = strip_ci(t, b"mx:") {
                if let Some((name, c4, c6)) = target(rest) {
                    self.lookup(Kind::Mx, name, c4, c6);
                }
            }
        }
        out
    }

    /// `dispatch_mx()`: an exchange found for `from` (as DNS answered it, without its final
    /// dot); its addresses are looked up next, with the prefix lengths of the lookup that found
    /// it.
    pub fn mx(&mut self, from: &Lookup, exchange: &[u8]) {
        let name = exchange.strip_suffix(b".").unwrap_or(exchange);
        self.lookup(Kind::A, name, from.cidr4, from.cidr6);
        self.lookup(Kind::Aaaa, name, from.cidr4, from.cidr6);
    }
}

/// A name as print_dname() writes it, without the final dot: the labels' bytes joined by dots.
pub fn dname<'a>(labels: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, l) in labels.enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        out.extend_from_slice(l);
    }
    out
}

/// `dispatch_a()`/`dispatch_aaaa()`: an address found, with the lookup's prefix length.
pub fn address_line(addr: &IpAddr, from: &Lookup) -> String {
    let (text, cidr) = match addr {
        IpAddr::V4(a) => (a.to_string(), from.cidr4),
        IpAddr::V6(a) => (inet_ntop6(a), from.cidr6),
    };
    match cidr {
        Some(c) => format!("{text}/{c}"),
        None => text,
    }
}

/// inet_ntop(3) for AF_INET6 as glibc writes it: RFC 5952 (as std does), except that an
/// address whose first 96 bits are zero and whose seventh group is not shows as `::a.b.c.d`
/// (std writes `::c000:21a`).
fn inet_ntop6(a: &Ipv6Addr) -> String {
    let s = a.segments();
    if s[..6].iter().all(|&w| w == 0) && s[6] != 0 {
        let [.., b0, b1, b2, b3] = a.octets();
        return format!("::{b0}.{b1}.{b2}.{b3}");
    }
    a.to_string()
}

/// isspace(3) in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn strip_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// strtonum(3) over `[min, max]`: optional sign, decimal digits, nothing else.
fn strtonum(s: &[u8], min: i64, max: i64) -> Option<i64> {
    let text = std::str::from_utf8(s).ok()?;
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = text.parse().ok()?;
    (min..=max).contains(&n).then_some(n)
}

/// Whether glibc's inet_net_pton(AF_INET, text, dst, 16) accepts `text` (the ISC algorithm of
/// 1996, which Debian's smtpctl calls): hexadecimal `0x` nybbles, or dotted decimal octets of at
/// most 255 (up to 16 of them), then an optional `/BITS` of at most 32.
pub fn inet_net_pton4(text: &[u8]) -> bool {
    const SIZE: usize = 16;
    let mut i = 0;
    let at = |i: usize| text.get(i).copied().unwrap_or(0);
    let mut first = 0u8;
    let mut octets = 0usize;
    let mut ch;
    if at(0) == b'0' && matches!(at(1), b'x' | b'X') && at(2).is_ascii_hexdigit() {
        i = 2;
        let mut nybbles = 0usize;
        loop {
            ch = at(i);
            i += 1;
            if !ch.is_ascii_hexdigit() {
                break;
            }
            if nybbles == 0 {
                first = (ch as char).to_digit(16).unwrap_or(0) as u8;
            } else if nybbles == 1 {
                first = first << 4 | (ch as char).to_digit(16).unwrap_or(0) as u8;
            }
            nybbles += 1;
        }
        if nybbles == 1 {
            // An odd trailing nybble is the high half of its octet.
            first <<= 4;
        }
        octets = nybbles.div_ceil(2);
    } else if at(0).is_ascii_digit() {
        ch = at(i);
        i += 1;
        loop {
            let mut value = 0u32;
            loop {
                value = value * 10 + u32::from(ch - b'0');
                if value > 255 {
                    return false;
                }
                ch = at(i);
                i += 1;
                if !ch.is_ascii_digit() {
                    break;
                }
            }
            if octets == 0 {
                first = value as u8;
            }
            octets += 1;
            if ch == 0 || ch == b'/' {
                break;
            }
            if ch != b'.' {
                return false;
            }
            ch = at(i);
            i += 1;
            if !ch.is_ascii_digit() {
                return false;
            }
        }
    } else {
        return false;
    }
    if octets > SIZE {
        return false;
    }
    let mut bits = None;
    if ch == b'/' && at(i).is_ascii_digit() {
        let mut b = 0u32;
        loop {
            ch = at(i);
            i += 1;
            if !ch.is_ascii_digit() {
                break;
            }
            b = b * 10 + u32::from(ch - b'0');
            if b > 32 {
                return false;
            }
        }
        bits = Some(b as usize);
    }
    // Nothing may follow (the term has no NUL: the record was cut at the first).
    if ch != 0 {
        return false;
    }
    let bits = bits.unwrap_or_else(|| {
        let class = match first {
            240.. => 32,
            224.. => 4,
            192.. => 24,
            128.. => 16,
            _ => 8,
        };
        class.max(octets * 8)
    });
    // The network is extended with zero octets up to its mask, within the 16 bytes.
    bits.div_ceil(8) <= SIZE
}

/// Whether OpenBSD's inet_net_pton(AF_INET6, ...) accepts `text`: an address inet_pton(3)
/// reads, then an optional `/BITS` of at most 128, in at most 50 bytes.
pub fn inet_net_pton6(text: &[u8]) -> bool {
    // Its buffer: INET6_ADDRSTRLEN (46) + sizeof("/128") (5), the NUL included.
    if text.len() > 50 {
        return false;
    }
    let (addr, bits) = match text.iter().position(|&b| b == b'/') {
        Some(p) => (&text[..p], Some(&text[p + 1..])),
        None => (text, None),
    };
    let addr_ok = std::str::from_utf8(addr).is_ok_and(|a| a.parse::<Ipv6Addr>().is_ok());
    addr_ok && bits.is_none_or(|b| strtonum(b, 0, 128).is_some())
}

/// `parse_target()`: `NAME[/CIDR4[/CIDR6]]` (6.8 reads the IPv6 length after one slash, so
/// RFC 7208's `a:NAME/24//64` is refused and `a:NAME//64` is an IPv6 length alone); None when
/// a length is not a number in range.
fn target(text: &[u8]) -> Option<(&[u8], Option<u8>, Option<u8>)> {
    let mut parts = text.splitn(3, |&b| b == b'/');
    let name = parts.next().unwrap_or_default();
    let len = |s: &[u8], max: i64| strtonum(s, 0, max).map(|n| n as u8);
    let c4 = match parts.next() {
        None => return Some((name, None, None)),
        Some(b"") => None,
        Some(s) => Some(len(s, 32)?),
    };
    let c6 = match parts.next() {
        None => None,
        Some(s) => Some(len(s, 128)?),
    };
    Some((name, c4, c6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms() {
        let mut w = Walk::default();
        let out = w.txt(
            b"example.org",
            &[
                b"v=spf1 ip4:192.0.2.0/24 +ip6:2001:db8::/32 ip4:bad a mx:mail.example.org/24 ",
                b"include:_spf.example.net ~all",
            ],
        );
        assert_eq!(out, vec!["192.0.2.0/24", "2001:db8::/32"]);
        let kinds: Vec<(Kind, &[u8], Option<u8>)> = w
            .pending
            .iter()
            .map(|l| (l.kind, l.name.as_slice(), l.cidr4))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (Kind::A, &b"example.org"[..], None),
                (Kind::Aaaa, b"example.org", None),
                (Kind::Mx, b"mail.example.org", Some(24)),
                (Kind::Txt, b"_spf.example.net", None),
            ]
        );
        // Seen terms are not followed twice, a bare `a` neither; other records are ignored.
        assert!(w.txt(b"x", &[b"v=spf1 ip4:192.0.2.0/24 a"]).is_empty());
        assert_eq!(w.pending.len(), 4);
        assert!(w.txt(b"x", &[b"google-site-verification=abc"]).is_empty());
        assert!(w.txt(b"x", &[b"v=spf1\0 ip4:192.0.2.1"]).is_empty());
        assert_eq!(
            w.txt(b"x", &[b"V=SPF1 ip4:192.0.2.2\0ip4:192.0.2.3"]),
            vec!["192.0.2.2"]
        );
        assert!(w.txt(b"x", &[&[b'v'; TXT_MAX][..]]).is_empty());
        w.lookup(Kind::Txt, b"%{d}.\xc3\xa9xample.org", None, None);
        assert_eq!(
            w.warnings,
            vec!["lookup_record: %{d}.??xample.org contains macros and can't be resolved"]
        );
    }

    #[test]
    fn stdin_lines() {
        let mut w = Walk::default();
        w.start(b"example.org \t\r\n");
        w.start(b"  \n");
        assert_eq!(w.pending.len(), 1);
        assert_eq!(w.pending[0].name, b"example.org");
    }

    #[test]
    fn targets() {
        assert_eq!(target(b"a.org"), Some((&b"a.org"[..], None, None)));
        assert_eq!(target(b"a.org/"), Some((&b"a.org"[..], None, None)));
        assert_eq!(target(b"a.org/24"), Some((&b"a.org"[..], Some(24), None)));
        assert_eq!(
            target(b"a.org/24/64"),
            Some((&b"a.org"[..], Some(24), Some(64)))
        );
        assert_eq!(target(b"a.org//64"), Some((&b"a.org"[..], None, Some(64))));
        assert_eq!(target(b"a.org/24//64"), None);
        assert_eq!(target(b"a.org/24/"), None);
        assert_eq!(target(b"a.org/33"), None);
        assert_eq!(target(b"a.org/0x1"), None);
    }

    /// Recorded with glibc 2.36's inet_net_pton(AF_INET, text, buf, 16) (libresolv, through
    /// python3's ctypes): the answers OpenSMTPD's check gets on Debian.
    #[test]
    fn ipv4_networks_as_glibc() {
        let yes = [
            "10/8",
            "192.0.2",
            "0x0a000000/8",
            "1.2.3.4.5",
            "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16",
            "0xA",
            "0xAbC/12",
            "1.2.3.4/0",
            "1.2.3.4/32",
            "1.2.3.4/032",
            "01.002.3.4",
            "0000000000255",
            "0x0102030405060708090a0b0c0d0e0f10",
            "0X1f",
            "224",
            "240/4",
            "1.2.3.4/000000000032",
            "1.2.3.4.5/8",
        ];
        let no = [
            "1.2.3.4/33",
            "1.2.3.256",
            "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17",
            "0x",
            "0x/8",
            "0xg",
            "1.2.3.4/",
            "/8",
            "",
            "1..2",
            "256",
            "1.2.3.4 ",
            "1.2.3.4/8x",
            "0x0102030405060708090a0b0c0d0e0f1011",
            "0x0102030405060708090a0b0c0d0e0f101",
            "1.2.3.",
            "-1",
            "+1",
            "1.2.3.4/+8",
            "1.2.3.4/1/2",
            "0x1.2",
            "1.2.3.4/00000000033",
            "0x1/40",
            "1.2.3.4.5/40",
        ];
        for t in yes {
            assert!(inet_net_pton4(t.as_bytes()), "{t} is a network for glibc");
        }
        for t in no {
            assert!(
                !inet_net_pton4(t.as_bytes()),
                "{t} is not a network for glibc"
            );
        }
    }

    #[test]
    fn ipv6_networks_and_addresses() {
        assert!(inet_net_pton6(b"2001:db8::/32"));
        assert!(inet_net_pton6(b"::1"));
        assert!(inet_net_pton6(b"::ffff:192.0.2.1/128"));
        assert!(!inet_net_pton6(b"2001:db8::/129"));
        assert!(!inet_net_pton6(b"2001:db8::/"));
        assert!(!inet_net_pton6(b"192.0.2.1"));
        let line = |a: &str| {
            let l = Lookup {
                kind: Kind::Aaaa,
                name: Vec::new(),
                cidr4: None,
                cidr6: Some(64),
            };
            address_line(&a.parse().unwrap(), &l)
        };
        assert_eq!(line("::192.0.2.26"), "::192.0.2.26/64");
        assert_eq!(line("::ffff:192.0.2.27"), "::ffff:192.0.2.27/64");
        assert_eq!(line("::1"), "::1/64");
        assert_eq!(line("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1/64");
        assert_eq!(line("192.0.2.1"), "192.0.2.1");
    }
}
