//! One packet over a `SOCK_SEQPACKET` socket, with up to [`MAX_FDS`] descriptors beside it
//! (`SCM_RIGHTS`): the only I/O of the split.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags};

use super::proto::MAX_PACKET;

/// A filter's three pipes are the most a packet carries.
pub const MAX_FDS: usize = 3;

/// Sends one packet. `MSG_NOSIGNAL`: a peer that died is an `EPIPE` error, not a signal.
pub fn send(sock: BorrowedFd<'_>, data: &[u8], fds: &[RawFd]) -> nix::Result<()> {
    if data.len() > MAX_PACKET || fds.len() > MAX_FDS {
        return Err(Errno::EMSGSIZE);
    }
    let iov = [IoSlice::new(data)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
    loop {
        match socket::sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(n) if n == data.len() => return Ok(()),
            // A seqpacket send is all or nothing; anything else is a broken peer.
            Ok(_) => return Err(Errno::EMSGSIZE),
        }
    }
}

/// Receives one packet; `None` at the end (the other process is gone). Descriptors arrive
/// close-on-exec; a packet cut short or with too many descriptors is an error (those that came
/// are closed).
pub fn recv(sock: BorrowedFd<'_>) -> nix::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut buf = vec![0u8; MAX_PACKET];
    Ok(recv_into(sock, &mut buf)?.map(|(n, fds)| {
        buf.truncate(n);
        (buf, fds)
    }))
}

/// [`recv`] into a buffer the caller keeps (at least [`MAX_PACKET`] long): a signature
/// request is a few hundred bytes, and a fresh zeroed 128 KiB for each would cost more than
/// the round trip. The packet's length, and its descriptors.
pub fn recv_into(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> nix::Result<Option<(usize, Vec<OwnedFd>)>> {
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match socket::recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(m) => m,
        };
        let mut fds = Vec::new();
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmRights(v) = c {
                    for f in v {
                        // SAFETY: the kernel just installed this descriptor for us; nobody
                        // else owns it.
                        fds.push(unsafe { OwnedFd::from_raw_fd(f) });
                    }
                }
            }
        }
        if msg
            .flags
            .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC)
            || fds.len() > MAX_FDS
        {
            return Err(Errno::EMSGSIZE);
        }
        let n = msg.bytes;
        if n == 0 && fds.is_empty() {
            return Ok(None);
        }
        return Ok(Some((n, fds)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsFd;

    #[test]
    fn packets_and_descriptors_cross() {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .expect("socketpair");
        let (r, w) = nix::unistd::pipe().expect("pipe");
        send(a.as_fd(), b"hello", &[r.as_raw_fd(), w.as_raw_fd()]).expect("send");
        let (data, fds) = recv(b.as_fd()).expect("recv").expect("packet");
        assert_eq!(data, b"hello");
        assert_eq!(fds.len(), 2);
        drop(a);
        assert!(recv(b.as_fd()).expect("recv").is_none(), "EOF");
        assert_eq!(
            send(b.as_fd(), &vec![0; MAX_PACKET + 1], &[]),
            Err(Errno::EMSGSIZE)
        );
    }
}
