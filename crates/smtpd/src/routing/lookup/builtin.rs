//! The builtin tables (`<localhost>`, `<localnames>`, ...) and which tables rules and filters
//! use as regexes.

use super::*;

/// The contents of a builtin table (`config.c` `set_local()`, `set_localaddrs()`,
/// `config_default()`).
pub(crate) fn builtin(name: &str, host: &HostInfo) -> Option<Table> {
    let mut t = Table::new(name.to_string(), false, TableSource::Builtin);
    let mut add = |k: &str| {
        t.add(k, None);
    };
    match name {
        "<anyhost>" => {
            add("local");
            add("0.0.0.0/0");
            add("::/0");
        }
        "<localhost>" => {
            add("local");
            for a in &host.local_addrs {
                add(&Source::Addr(*a).to_text());
            }
        }
        "<localnames>" => {
            add("localhost");
            add(&host.hostname);
            for a in &host.local_addrs {
                // ss_to_text() already brackets v6 addresses, hence "[[::1]]" and
                // "[ipv6:[::1]]": the literal forms that match are "[::1]" and, for v4,
                // "[127.0.0.1]".
                let text = Source::Addr(*a).to_text();
                add(&text);
                add(&format!("[{}]", text));
                if a.is_ipv6() {
                    add(&format!("[ipv6:{}]", text));
                }
            }
        }
        "<anydestination>" => {
            add("*");
            let short = host.hostname.split('.').next().unwrap_or("");
            if short != host.hostname {
                add(short);
            }
        }
        _ => return None,
    }
    Some(t)
}

/// Tables used with `regex` by rules and filters, compiled when the tables are built.
pub(crate) fn regex_tables(conf: &Config) -> Vec<String> {
    use rsmtpd_config::model::{FilterCheck, FilterKind, For, From};
    let mut v = Vec::new();
    for r in &conf.rules {
        for tt in [&r.tag, &r.helo, &r.mail_from, &r.rcpt_to]
            .into_iter()
            .flatten()
        {
            if tt.test.regex {
                v.push(tt.test.table.clone());
            }
        }
        if let Some(a) = &r.auth {
            if let Some(tt) = &a.test {
                if tt.regex {
                    v.push(tt.table.clone());
                }
            }
        }
        if let Some(f) = &r.from {
            match &f.test {
                From::Src(tt) | From::Rdns(Some(tt)) if tt.regex => v.push(tt.table.clone()),
                _ => {}
            }
        }
        if let Some(f) = &r.for_ {
            if let For::Domain(tt) = &f.test {
                if tt.regex {
                    v.push(tt.table.clone());
                }
            }
        }
    }
    for f in &conf.filters {
        if let FilterKind::Builtin(b) = &f.kind {
            match &b.check {
                FilterCheck::RdnsRegex(t)
                | FilterCheck::SrcRegex(t)
                | FilterCheck::HeloRegex(t)
                | FilterCheck::AuthRegex(t)
                | FilterCheck::MailFromRegex(t)
                | FilterCheck::RcptToRegex(t) => v.push(t.clone()),
                _ => {}
            }
        }
    }
    v
}
