//! Mail addresses and domains as they come in MAIL FROM / RCPT TO paths and headers, and the
//! byte helpers that read peer input (AUTH's base64, the log's vis encoding).

use rsmtpd_protocol::address::{
    parse_path, res_hnok, text_to_mailaddr, valid_domainpart, valid_localpart,
};
use rsmtpd_protocol::util::{b64_pton, strnvis};

pub fn run(data: &[u8]) {
    for mailfrom in [true, false] {
        let _ = parse_path(data, mailfrom, "mx.test");
    }
    let _ = text_to_mailaddr(data);
    let _ = valid_localpart(data);
    let _ = valid_domainpart(data);
    let _ = res_hnok(data);
    for size in [0, 1, 3, 64, 1024] {
        let _ = b64_pton(data, size);
    }
    for (cstyle, white) in [(true, false), (false, true), (true, true)] {
        for size in [0, 1, 2, 5, 64, 4096] {
            let _ = strnvis(data, size, cstyle, white);
        }
    }
}
