//! SMTP command lines, each as the session frames it (CR removed, LF the separator).

use rsmtpd_protocol::command::{parse_mail_from, parse_rcpt_to, Command, Notify};

pub fn run(data: &[u8]) {
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        one(line);
    }
}

pub fn one(line: &[u8]) {
    let c = Command::parse(line);
    let args = c.args.unwrap_or_default();
    for dsn in [true, false] {
        let _ = parse_mail_from(&args, "mx.test", dsn);
        let mut notify = Notify::default();
        let _ = parse_rcpt_to(&args, "mx.test", dsn, &mut notify);
        // A second RCPT in the same transaction keeps the first one's NOTIFY (see parse_rcpt_to).
        let _ = parse_rcpt_to(&args, "mx.test", dsn, &mut notify);
    }
}
