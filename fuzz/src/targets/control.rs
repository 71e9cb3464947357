//! The control socket (smtpctl and sendmail talk to the daemon through it; the daemon answers),
//! and the offline files sendmail leaves in the spool when the daemon is down.

use rsmtpd_control::offline::{illegal_argument, read_offline};
use rsmtpd_control::{frame_len, payload_version, read_frame, Request, Response};

pub fn run(data: &[u8]) {
    if let Ok(h) = <[u8; 4]>::try_from(data.get(..4).unwrap_or_default()) {
        let _ = frame_len(h);
    }
    let _ = payload_version(data);
    let _ = Request::decode(data);
    let _ = Response::decode(data);
    // A stream of frames, as the daemon reads a client's.
    let mut r = data;
    while let Ok(Some(frame)) = read_frame(&mut r) {
        let _ = Request::decode(&frame);
        let _ = Response::decode(&frame);
    }
    if let Some((args, _message)) = read_offline(data) {
        let _ = illegal_argument(&args);
    }
}
