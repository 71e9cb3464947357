//! Alias table values, `.forward` files and `:include:` files, read as `expand.c` reads them;
//! and the other table values a file or db table hands the daemon (userinfo, mail addresses).

use rsmtpd::routing::alias::{fparseln, parse_alias_value, parse_alias_value_partial, split_line};
use rsmtpd::routing::lookup::{parse_mailaddr_line, parse_userinfo, split_mailaddr};

pub fn run(data: &[u8]) {
    // An :include: file, and an alias file's lines.
    for line in fparseln(data, b'\\', b'\\', Some(b'#')) {
        let _ = parse_alias_value(&line);
    }
    // A .forward file: '#' continues a line and there is no comment.
    for line in fparseln(data, b'\\', b'#', None) {
        let _ = parse_alias_value_partial(&line);
    }
    let text = String::from_utf8_lossy(data);
    let _ = split_line(&text);
    let _ = parse_alias_value(&text);
    let _ = parse_userinfo("user", &text);
    let _ = parse_mailaddr_line(&text);
    let _ = split_mailaddr(&text);
}
