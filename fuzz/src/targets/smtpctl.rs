//! smtpctl's and sendmail's command lines (arguments separated by NUL bytes here; smtpctl is
//! run by any local user), and the message sendmail reads on stdin; the same bytes as the TXT
//! record `spf walk` reads from DNS (strings of up to 255 bytes) and as its terms.

use rsmtpd_smtpctl::sendmail::{parse_args, parse_message};
use rsmtpd_smtpctl::spfwalk::{self, Kind, Walk};
use rsmtpd_smtpctl::{parse_makemap, parser};

use crate::input::{fields, Input};

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let len = input.byte() as usize;
    let args = fields(input.take(len));
    let message = input.rest();
    let _ = parser::parse(&args);
    let _ = parse_args(&args);
    let _ = parse_makemap(&args, flags & 1 != 0);
    let _ = parse_message(message, flags & 2 != 0, flags & 4 != 0, "mx.test");
    let mut walk = Walk::default();
    for a in &args {
        walk.start(a.as_bytes());
        let _ = spfwalk::inet_net_pton4(a.as_bytes());
        let _ = spfwalk::inet_net_pton6(a.as_bytes());
    }
    let strings: Vec<&[u8]> = message.chunks(255).collect();
    let _ = walk.txt(b"example.org", &strings);
    for l in walk.pending.clone() {
        if l.kind == Kind::Mx {
            walk.mx(&l, &l.name);
        }
    }
}
