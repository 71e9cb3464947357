//! smtpd.conf, read the way `smtpd -n -f FILE` reads it, on a machine described in memory.

use rsmtpd_config::{parse_file, ParseOptions, StaticEnvironment};

pub fn run(data: &[u8]) {
    let mut env = StaticEnvironment::typical();
    env.files.push(("/etc/smtpd.conf".into(), data.to_vec()));
    // A second file for `include` and `file:` tables: the same bytes.
    env.files.push(("/etc/mail/included".into(), data.to_vec()));
    for strict in [false, true] {
        let opts = ParseOptions {
            macros: vec![("m".into(), "v".into())],
            strict,
        };
        let out = parse_file("/etc/smtpd.conf", &env, &opts);
        if let Some(c) = &out.config {
            // What `smtpd -n -v` would print of it.
            let _ = rsmtpd_config::dump(c);
        }
    }
}
