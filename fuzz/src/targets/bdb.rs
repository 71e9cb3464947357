//! `db:` tables: Berkeley DB files written by makemap (ours or OpenSMTPD's), and the makemap
//! sources they are made from.

use rsmtpd_control::map::{parse_source, MapKind};

pub fn run(data: &[u8]) {
    let _ = rsmtpd_bdb::probe(data);
    if let Ok(db) = rsmtpd_bdb::read(data) {
        let _ = format!("{db:?}");
    }
    let text = String::from_utf8_lossy(data);
    for kind in [MapKind::Plain, MapKind::Aliases, MapKind::Set] {
        let _ = parse_source(&text, kind);
    }
}
