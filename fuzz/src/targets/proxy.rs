//! The PROXY v2 header of a `proxy-v2` listener (protocol::proxy): the first bytes of a
//! connection, before any SMTP, from whoever connects. Read as the listener reads it: 16 bytes
//! of prelude, then exactly what it announces.

use rsmtpd_protocol::proxy::{self, Origin, PRELUDE_LEN};

pub fn run(data: &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<PRELUDE_LEN>() else {
        return;
    };
    let Ok(p) = proxy::prelude(head) else {
        return;
    };
    // At most the u16 length of the header: the listener allocates this much.
    assert!(p.remaining() <= usize::from(u16::MAX), "{}", p.remaining());
    let announced = rest.get(..p.remaining()).unwrap_or(rest);
    match p.finish(announced) {
        Ok(Origin::Local) | Err(_) => {}
        Ok(Origin::Inet(addr)) => {
            // A proxied client is never a local one.
            let _ = addr.ip();
        }
    }
}
