//! A `proxy-v2` listener's first bytes: the PROXY header that names the real client, read
//! before the session starts (OpenSMTPD's proxy.c; the parsing is the protocol crate's).

use std::net::SocketAddr;
use std::time::Duration;

use rsmtpd_protocol::proxy::{self, Origin, ProxyError, PRELUDE_LEN};
use rsmtpd_protocol::received::PeerAddr;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::sys::log;

/// proxy.c's PROXY_SESSION_TIMEOUT.
const TIMEOUT: Duration = Duration::from_secs(300);

/// Reads the header from `stream` (exactly its bytes, nothing of the SMTP dialogue behind it)
/// and returns the client's address: the proxied one, or `peer` for a `LOCAL` header. `None`
/// when the connection is to be dropped, after OpenSMTPD's `event=closed` line.
pub async fn read_origin<S: AsyncRead + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
) -> Option<SocketAddr> {
    let id: u64 = rand::random();
    let address = PeerAddr::Inet(peer.ip().to_canonical()).text();
    log::info(&format!("{:016x} smtp event=proxy address={}", id, address));
    let closed = |reason: &str, detail: Option<String>| {
        // OpenSMTPD prints the session's pointer here (`proxy %p`); ours is the same shape.
        let what = match detail {
            Some(d) => format!("{} ({})", reason, d),
            None => reason.to_string(),
        };
        log::info(&format!(
            "proxy 0x{:012x} event=closed address={} reason=\"{}\"",
            id & 0xffff_ffff_ffff,
            address,
            what
        ));
    };
    let refused = |e: ProxyError| closed(e.reason, Some(e.detail.to_string()));
    let read = async {
        let mut pre = [0u8; PRELUDE_LEN];
        stream.read_exact(&mut pre).await?;
        let p = match proxy::prelude(&pre) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let mut rest = vec![0u8; p.remaining()];
        stream.read_exact(&mut rest).await?;
        Ok::<_, std::io::Error>(p.finish(&rest))
    };
    match tokio::time::timeout(TIMEOUT, read).await {
        Err(_) => {
            closed("timeout", None);
            None
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            closed("disconnected", None);
            None
        }
        Ok(Err(e)) => {
            closed("IO error", Some(e.to_string()));
            None
        }
        Ok(Ok(Err(e))) => {
            refused(e);
            None
        }
        Ok(Ok(Ok(Origin::Local))) => Some(peer),
        Ok(Ok(Ok(Origin::Inet(a)))) => Some(a),
    }
}
