//! Property tests: the parser never panics, whatever the bytes, and generated configurations
//! survive parse → dump → parse unchanged.

mod common;

use common::*;
use proptest::prelude::*;
use rsmtpd_config::dump::quote;
use rsmtpd_config::{parse_file, StaticEnvironment};

fn env_with(text: &[u8]) -> StaticEnvironment {
    let mut e = StaticEnvironment::typical();
    e.files.push(("/c.conf".into(), text.to_vec()));
    e.files
        .push(("/inc.conf".into(), b"include \"/c.conf\"\n".to_vec()));
    e.files.push(("/t".into(), b"a b\nc d\n".to_vec()));
    e
}

/// Pieces of smtpd.conf, so that random sequences reach deep into the grammar.
fn token() -> impl Strategy<Value = String> {
    let words: Vec<String> = rsmtpd_config::keyword::Keyword::all()
        .map(str::to_string)
        .chain(
            [
                "{",
                "}",
                "<",
                ">",
                "!",
                "=",
                "=>",
                ",",
                "\n",
                "\\\n",
                "\"q s\"",
                "'x'",
                "$m",
                "m = v",
                "10",
                "-3",
                "4h",
                "10M",
                "/t",
                "file:/t",
                "<t>",
                "lo",
                "::1",
                "#c",
                "\"",
                "include \"/inc.conf\"",
                "\0",
                "%{rcpt}",
            ]
            .iter()
            .map(|s| s.to_string()),
        )
        .collect();
    prop::sample::select(words)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let env = env_with(&bytes);
        let _ = parse_file("/c.conf", &env, &strict());
    }

    #[test]
    fn never_panics_on_token_soup(toks in prop::collection::vec(token(), 0..60)) {
        let text = toks.join(" ");
        let env = env_with(text.as_bytes());
        let out = parse_file("/c.conf", &env, &strict());
        // Whatever happens, the outcome is either a config or at least one message.
        prop_assert!(out.config.is_some() || !out.messages.is_empty());
    }
}

fn value() -> impl Strategy<Value = String> {
    "[ -~]{1,12}".prop_filter("no trailing backslash", |s| !s.ends_with('\\'))
}

/// One generated configuration, written as an administrator might write it.
fn config() -> impl Strategy<Value = String> {
    let tables = prop::collection::vec(
        (
            prop::bool::ANY,
            prop::collection::vec((value(), value()), 1..4),
        ),
        1..4,
    );
    let phases = prop::sample::select(vec![
        ("connect", "rdns"),
        ("connect", "fcrdns"),
        ("connect", "src { \"10.0.0.0/8\", \"::1\" }"),
        ("helo", "helo regex { \"^mx\" }"),
        ("ehlo", "rdns regex { \"example\" }"),
        ("mail-from", "mail-from { \"@example.org\" }"),
        ("rcpt-to", "rcpt-to regex { \"^postmaster@\" }"),
        ("data", "auth"),
        ("commit", "mail-from regex { \"x\" }"),
    ]);
    let decisions = prop::sample::select(vec![
        "junk",
        "bypass",
        "reject \"550 no\"",
        "disconnect \"421 bye\"",
        "report \"r\"",
        "rewrite \"451 later\"",
    ]);
    let filters = prop::collection::vec((phases, prop::bool::ANY, decisions), 0..4);
    let methods = prop::sample::select(vec![
        "mbox",
        "maildir",
        "maildir junk",
        "maildir \"~/Maildir/%{rcpt.user:lowercase}\" junk",
        "lmtp \"/run/dovecot/lmtp\" rcpt-to",
        "mda \"/usr/bin/procmail -f %{sender}\"",
        "forward-only",
        "expand-only",
        "relay",
        "relay host \"smtp+tls://mx.example.org:587\" tls no-verify",
        "relay backup mx \"mx.example.org\" helo \"me\"",
    ]);
    let actions = prop::collection::vec((methods, prop::option::of("[0-9]{1,3}[smhd]")), 1..4);
    let listens = prop::collection::vec(
        (
            prop::sample::select(vec!["lo", "127.0.0.1", "::1"]),
            prop::option::of(1u16..65535),
            prop::option::of("[a-z]{1,8}"),
            prop::bool::ANY,
        ),
        0..3,
    );
    let crit = prop::sample::select(vec![
        "from any",
        "from local",
        "from socket",
        "from src { \"192.168.0.0/16\" }",
        "from rdns",
        "from auth",
        "from mail-from \"@example.org\"",
        "for any",
        "for local",
        "for domain { \"example.org\", \"*.example.org\" }",
        "for domain regex { \"\\.org$\" }",
        "for rcpt-to { \"a@example.org\" }",
        "tag \"t\"",
        "helo { \"mx\" }",
        "tls",
        "auth",
    ]);
    let matches = prop::collection::vec(
        (
            prop::collection::vec((prop::bool::ANY, crit), 0..3),
            prop::option::of(0usize..4),
        ),
        1..5,
    );
    (tables, filters, actions, listens, matches).prop_map(
        |(tables, filters, actions, listens, matches)| {
            let mut out = String::new();
            for (i, (is_map, entries)) in tables.iter().enumerate() {
                let items: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| {
                        if *is_map {
                            format!("{} = {}", quote(k), quote(v))
                        } else {
                            quote(k)
                        }
                    })
                    .collect();
                out.push_str(&format!("table t{} {{ {} }}\n", i, items.join(", ")));
            }
            for (i, ((phase, check), neg, decision)) in filters.iter().enumerate() {
                let decision =
                    if *phase == "commit" && (*decision == "junk" || *decision == "bypass") {
                        "reject \"550 no\""
                    } else {
                        decision
                    };
                out.push_str(&format!(
                    "filter f{} phase {} match {}{} {}\n",
                    i,
                    phase,
                    if *neg { "!" } else { "" },
                    check,
                    decision
                ));
            }
            if filters.len() > 1 {
                out.push_str("filter ch chain { f0, f1 }\n");
            }
            for (i, (m, ttl)) in actions.iter().enumerate() {
                let ttl = ttl
                    .as_ref()
                    .map(|t| format!(" ttl {}", t))
                    .unwrap_or_default();
                out.push_str(&format!("action a{} {}{}\n", i, m, ttl));
            }
            for (on, port, tag, filt) in &listens {
                let mut l = format!("listen on {}", on);
                if let Some(p) = port {
                    l.push_str(&format!(" port {}", p));
                }
                if let Some(t) = tag {
                    l.push_str(&format!(" tag {}", t));
                }
                if *filt && !filters.is_empty() {
                    l.push_str(" filter f0");
                }
                out.push_str(&l);
                out.push('\n');
            }
            for (crits, action) in &matches {
                let mut m = String::from("match");
                for (neg, c) in crits {
                    m.push(' ');
                    if *neg {
                        m.push('!');
                    }
                    m.push_str(c);
                }
                match action {
                    Some(a) if *a < actions.len() => m.push_str(&format!(" action a{}", a)),
                    _ => m.push_str(" reject"),
                }
                out.push_str(&m);
                out.push('\n');
            }
            out
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn generated_configs_round_trip(text in config()) {
        let env = TestEnv::new();
        // Duplicate criteria (`from any from local`) are refused, as OpenSMTPD refuses them;
        // everything the parser accepts must round-trip.
        if let Ok(c) = parse_text(&env, "/gen.conf", &text) {
            assert_round_trip(&env, &c);
        }
    }
}

/// The generator is only useful if most of what it writes is accepted.
#[test]
fn generator_mostly_writes_valid_configs() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let env = TestEnv::new();
    let strategy = config();
    let mut ok = 0;
    for _ in 0..200 {
        let text = strategy
            .new_tree(&mut runner)
            .unwrap_or_else(|e| panic!("{e}"))
            .current();
        if parse_text(&env, "/gen.conf", &text).is_ok() {
            ok += 1;
        }
    }
    assert!(ok >= 100, "only {ok}/200 generated configs parse");
}
