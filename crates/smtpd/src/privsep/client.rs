//! The engine's side: one blocking call per request, over channels that each carry one
//! request at a time.
//!
//! Why several channels: a PAM check may take seconds (pam_unix delays a failure), and it must
//! not hold up a `.forward` lookup, nor a handshake's signature. So signatures have channels of
//! their own (as many as the parent has signing threads, so that two handshakes sign at once as
//! they did in one process), PAM one, `~/.forward` reads (one per RCPT of a user) a few of their
//! own, so that concurrent sessions do not wait for each other's, and the rest (filter processes,
//! table backends, pki polls, delivery processes: rare and short) share one.

use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::sync::Mutex;

use zeroize::Zeroize;

use super::proto::{Reply, Request};
use super::wire;

/// One socket to the parent, with its receive buffer; a call holds it from the request to its
/// answer.
pub struct Channel(Mutex<(OwnedFd, Vec<u8>)>);

impl Channel {
    pub fn new(fd: OwnedFd) -> Channel {
        Channel(Mutex::new((fd, vec![0u8; super::proto::MAX_PACKET])))
    }

    /// Sends `req` with `fds` and waits for the answer (with the descriptors it brought).
    pub fn call(&self, req: &Request, fds: &[RawFd]) -> Result<(Reply, Vec<OwnedFd>), String> {
        let mut held = self.0.lock().map_err(|_| "privsep channel poisoned")?;
        call_locked(&mut held, req, fds)
    }
}

fn call_locked(
    held: &mut (OwnedFd, Vec<u8>),
    req: &Request,
    fds: &[RawFd],
) -> Result<(Reply, Vec<OwnedFd>), String> {
    let (sock, buf) = held;
    let mut data = req.encode();
    let sent = wire::send(sock.as_fd(), &data, fds);
    // It may hold a password (Auth) or what a handshake signs.
    data.zeroize();
    sent.map_err(|e| format!("privsep: send: {}", e.desc()))?;
    {
        match wire::recv_into(sock.as_fd(), buf) {
            Ok(Some((n, fds))) => Reply::decode(buf.get(..n).unwrap_or_default())
                .map(|r| (r, fds))
                .map_err(|e| format!("privsep: bad reply: {e}")),
            Ok(None) => Err("privsep: the parent process is gone".into()),
            Err(e) => Err(format!("privsep: recv: {}", e.desc())),
        }
    }
}

/// Every channel of the engine.
pub struct Client {
    pub control: Channel,
    pub auth: Channel,
    pub ca: Vec<Channel>,
    pub forward: Vec<Channel>,
}

impl Client {
    /// A signature from the `ca` side.
    pub fn sign(&self, req: &Request) -> Result<Reply, String> {
        any_of(&self.ca, req)
    }

    /// A `Forward` request, on a channel of its own.
    pub fn forward(&self, req: &Request) -> Result<Reply, String> {
        any_of(&self.forward, req)
    }
}

/// The first free channel of `pool`, else the one this thread's turn falls on.
fn any_of(pool: &[Channel], req: &Request) -> Result<Reply, String> {
    for c in pool {
        if let Ok(mut held) = c.0.try_lock() {
            return call_locked(&mut held, req, &[]).map(|(r, _)| r);
        }
    }
    let n = pool.len().max(1);
    let i = thread_index() % n;
    let c = pool.get(i).ok_or("privsep: no channel")?;
    c.call(req, &[]).map(|(r, _)| r)
}

fn thread_index() -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::thread::current().id().hash(&mut h);
    h.finish() as usize
}
