//! smtp-proto's shape: the same bytes, raw and folded onto the SMTP alphabet, through every
//! byte parser at once (the other targets give each its own structure).

use crate::input::smtpish;

pub fn run(data: &[u8]) {
    let folded = smtpish(data);
    for bytes in [data, &folded[..]] {
        super::command::run(bytes);
        super::address::run(bytes);
        super::data::run(bytes);
        super::alias::run(bytes);
        super::envelope::run(bytes);
        super::control::run(bytes);
        super::bdb::run(bytes);
    }
}
