//! The PROXY protocol, version 2 (haproxy's binary header), as a `proxy-v2` listener of
//! OpenSMTPD 6.8 reads it (proxy.c): a 16-byte prelude, then the addresses, then TLVs, which are
//! skipped. The shell reads exactly [`PRELUDE_LEN`] bytes, asks [`prelude`] how many follow,
//! reads exactly those and hands them to [`Prelude::finish`]: it never reads past the header, so
//! the SMTP bytes behind it stay for the session.
//!
//! Errors carry OpenSMTPD's two texts (`reason`, `detail`) for its log line
//! `proxy ... event=closed address=... reason="REASON (DETAIL)"`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Signature, version/command, family, length.
pub const PRELUDE_LEN: usize = 16;

const SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

const FAM_UNSPEC: u8 = 0x00;
const FAM_INET_STREAM: u8 = 0x11;
const FAM_INET6_STREAM: u8 = 0x21;
const FAM_UNIX_STREAM: u8 = 0x31;

const CMD_LOCAL: u8 = 0x0;
const CMD_PROXY: u8 = 0x1;

/// A validated prelude: what follows it and how to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prelude {
    ver_cmd: u8,
    fam: u8,
    /// Bytes after the prelude: addresses and TLVs.
    rest: usize,
    /// Of which the addresses.
    addr_len: usize,
}

/// Why a header was refused, in OpenSMTPD's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyError {
    pub reason: &'static str,
    pub detail: &'static str,
}

impl ProxyError {
    fn protocol(detail: &'static str) -> ProxyError {
        ProxyError {
            reason: "protocol error",
            detail,
        }
    }
}

/// Where the proxied client came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `LOCAL` command (the proxy's own health check): the connection's own address stays.
    Local,
    /// `PROXY` over TCP: the client's address and port.
    Inet(SocketAddr),
}

/// Checks the first [`PRELUDE_LEN`] bytes, in proxy.c's order: signature, version, family,
/// length.
pub fn prelude(b: &[u8; PRELUDE_LEN]) -> Result<Prelude, ProxyError> {
    if b[..12] != SIGNATURE {
        return Err(ProxyError::protocol("invalid signature"));
    }
    let ver_cmd = b[12];
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::protocol("invalid version"));
    }
    let fam = b[13];
    let addr_len = match fam {
        FAM_UNSPEC => 0,
        FAM_INET_STREAM => 12,
        FAM_INET6_STREAM => 36,
        FAM_UNIX_STREAM => 216,
        _ => return Err(ProxyError::protocol("unsupported address family")),
    };
    let rest = usize::from(u16::from_be_bytes([b[14], b[15]]));
    // proxy.c: the total (prelude included) must fit in 16 bits.
    if rest > usize::from(u16::MAX) - PRELUDE_LEN {
        return Err(ProxyError::protocol("header too long"));
    }
    if rest < addr_len {
        return Err(ProxyError::protocol("address info too short"));
    }
    Ok(Prelude {
        ver_cmd,
        fam,
        rest,
        addr_len,
    })
}

impl Prelude {
    /// How many bytes to read after the prelude.
    pub fn remaining(&self) -> usize {
        self.rest
    }

    /// The client's origin from the bytes after the prelude (exactly [`Self::remaining`]).
    pub fn finish(&self, rest: &[u8]) -> Result<Origin, ProxyError> {
        if rest.len() < self.addr_len {
            return Err(ProxyError::protocol("address info too short"));
        }
        match self.ver_cmd & 0x0F {
            CMD_LOCAL => Ok(Origin::Local),
            CMD_PROXY => self.translate(&rest[..self.addr_len]),
            _ => Err(ProxyError::protocol("unknown command")),
        }
    }

    fn translate(&self, a: &[u8]) -> Result<Origin, ProxyError> {
        let port_at = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
        match self.fam {
            FAM_INET_STREAM => {
                let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
                Ok(Origin::Inet(SocketAddr::new(IpAddr::V4(ip), port_at(8))))
            }
            FAM_INET6_STREAM => {
                let mut o = [0u8; 16];
                o.copy_from_slice(&a[..16]);
                let ip = Ipv6Addr::from(o).to_canonical();
                Ok(Origin::Inet(SocketAddr::new(ip, port_at(32))))
            }
            FAM_UNSPEC => Err(ProxyError {
                reason: "address translation",
                detail: "UNSPEC family not supported for PROXYing",
            }),
            // On purpose unlike OpenSMTPD, which takes the path as the client's address: its
            // text is then "local", and `from local` rules would match a remote client for
            // whatever a proxy claims. A proxied client is always remote here.
            _ => Err(ProxyError {
                reason: "address translation",
                detail: "Unix socket sources are not accepted",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(ver_cmd: u8, fam: u8, addr: &[u8], tlv: &[u8]) -> Vec<u8> {
        let mut v = SIGNATURE.to_vec();
        v.push(ver_cmd);
        v.push(fam);
        v.extend_from_slice(&((addr.len() + tlv.len()) as u16).to_be_bytes());
        v.extend_from_slice(addr);
        v.extend_from_slice(tlv);
        v
    }

    fn parse(h: &[u8]) -> Result<Origin, ProxyError> {
        let mut p = [0u8; PRELUDE_LEN];
        p.copy_from_slice(&h[..PRELUDE_LEN]);
        let pre = prelude(&p)?;
        let rest = &h[PRELUDE_LEN..];
        assert_eq!(rest.len(), pre.remaining());
        pre.finish(rest)
    }

    #[test]
    fn ipv4_with_tlvs() {
        let addr = [192, 0, 2, 7, 10, 0, 0, 1, 0xC3, 0x50, 0, 25];
        let h = header(0x21, FAM_INET_STREAM, &addr, &[0x04, 0, 1, 0]);
        assert_eq!(
            parse(&h),
            Ok(Origin::Inet("192.0.2.7:50000".parse().unwrap()))
        );
    }

    #[test]
    fn ipv6_and_mapped() {
        let mut addr = vec![0u8; 36];
        addr[0] = 0x20;
        addr[1] = 0x01;
        addr[2] = 0x0d;
        addr[3] = 0xb8;
        addr[15] = 9;
        addr[32] = 0x01;
        addr[33] = 0x00;
        let h = header(0x21, FAM_INET6_STREAM, &addr, &[]);
        assert_eq!(
            parse(&h),
            Ok(Origin::Inet("[2001:db8::9]:256".parse().unwrap()))
        );
        let mut mapped = vec![0u8; 36];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..16].copy_from_slice(&[198, 51, 100, 1]);
        let h = header(0x21, FAM_INET6_STREAM, &mapped, &[]);
        assert_eq!(
            parse(&h),
            Ok(Origin::Inet("198.51.100.1:0".parse().unwrap()))
        );
    }

    #[test]
    fn local_command_keeps_the_connection() {
        assert_eq!(
            parse(&header(0x20, FAM_UNSPEC, &[], &[])),
            Ok(Origin::Local)
        );
        let addr = [192, 0, 2, 7, 10, 0, 0, 1, 0, 1, 0, 25];
        assert_eq!(
            parse(&header(0x20, FAM_INET_STREAM, &addr, &[])),
            Ok(Origin::Local)
        );
    }

    #[test]
    fn refusals_in_opensmtpds_words() {
        let mut bad = header(0x21, FAM_UNSPEC, &[], &[]);
        bad[0] = b'P';
        assert_eq!(parse(&bad).unwrap_err().detail, "invalid signature");
        assert_eq!(
            parse(&header(0x11, FAM_UNSPEC, &[], &[]))
                .unwrap_err()
                .detail,
            "invalid version"
        );
        assert_eq!(
            parse(&header(0x21, 0x12, &[], &[])).unwrap_err().detail,
            "unsupported address family"
        );
        assert_eq!(
            parse(&header(0x21, FAM_INET_STREAM, &[1, 2, 3], &[]))
                .unwrap_err()
                .detail,
            "address info too short"
        );
        assert_eq!(
            parse(&header(0x23, FAM_UNSPEC, &[], &[]))
                .unwrap_err()
                .detail,
            "unknown command"
        );
        let e = parse(&header(0x21, FAM_UNSPEC, &[], &[])).unwrap_err();
        assert_eq!(e.reason, "address translation");
        let e = parse(&header(0x21, FAM_UNIX_STREAM, &[0; 216], &[])).unwrap_err();
        assert_eq!(e.reason, "address translation");
        let mut long = SIGNATURE.to_vec();
        long.extend_from_slice(&[0x21, FAM_UNSPEC, 0xFF, 0xFF]);
        let mut p = [0u8; PRELUDE_LEN];
        p.copy_from_slice(&long);
        assert_eq!(prelude(&p).unwrap_err().detail, "header too long");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(pre in proptest::array::uniform16(proptest::num::u8::ANY),
                        rest in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            if let Ok(p) = prelude(&pre) {
                let _ = p.finish(&rest);
            }
        }
    }
}
