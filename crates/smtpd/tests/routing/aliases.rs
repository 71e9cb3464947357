//! Alias and virtual tables through the real daemon, with `-v`: the replies, and the debug lines
//! OpenSMTPD's aliases.c writes for each expansion (`aliases_get: returned N aliases`,
//! `aliases_virtual_get: 'KEY' resolved to N nodes`), the same as the real program's.

use crate::common::*;

/// The lines of the session, and the alias debug lines, in order.
fn alias_lines(log: &[String]) -> Vec<String> {
    log.iter()
        .filter(|l| l.starts_with("debug: aliases_") || l.contains(" smtp failed-command "))
        .map(|l| match l.split_once(" smtp ") {
            Some((_, rest)) => format!("smtp {rest}"),
            None => l.clone(),
        })
        .collect()
}

fn run(bin: &str) -> (Vec<String>, Vec<String>) {
    let config = "table aliases { root = \"bob, carol\", bob = \"bob\" }\n\
         table virt { \"jim@example.org\" = \"bob, carol, dave\", \"@example.net\" = \"eve\" }\n\
         listen on 127.0.0.1 port @PORT@\n\
         action \"local\" mbox alias <aliases>\n\
         action \"virtual\" mbox virtual <virt>\n\
         match from any for domain { \"example.org\", \"example.net\" } action \"virtual\"\n\
         match from any for local action \"local\"\n";
    let d = Daemon::start_with(bin, config, &["-P", "mda"]);
    let replies = converse(
        "127.0.0.1",
        d.addr(),
        &[
            "HELO x",
            "MAIL FROM:<a@b.test>",
            "RCPT TO:<root@localhost>",
            "RCPT TO:<jim@example.org>",
            "RCPT TO:<anyone@example.net>",
            "RCPT TO:<nobody@example.org>",
            "QUIT",
        ],
    );
    d.wait_log(|l| l.contains("smtp disconnected"));
    (replies, alias_lines(&d.log()))
}

#[test]
fn alias_expansions_are_logged_as_opensmtpd_s() {
    let ours = run(env!("CARGO_BIN_EXE_smtpd"));
    let lines = &ours.1;
    assert!(
        lines.contains(&"debug: aliases_get: returned 2 aliases".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"debug: aliases_virtual_get: 'jim@example.org' resolved to 3 nodes".into()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"debug: aliases_virtual_get: '@example.net' resolved to 1 nodes".into()),
        "{lines:?}"
    );
    if require_real("the re-check against OpenSMTPD") {
        let _one = real_lock();
        let theirs = run(REAL_SMTPD);
        assert_eq!(theirs, ours, "OpenSMTPD and rsmtpd differ");
    }
}
