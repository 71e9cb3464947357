//! parse → dump → parse gives the same configuration for every config of the corpus that we
//! accept, and for the examples below.

mod common;

use common::*;
use rsmtpd_config::parse_file;

#[test]
fn corpus_configs_round_trip() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/config-corpus");
    let mut env = TestEnv::new();
    env.cwd = Some(corpus.join("valid"));
    env.dir = Some(corpus.to_string_lossy().into_owned());
    let mut n = 0;
    let mut files: Vec<_> = std::fs::read_dir(corpus.join("valid"))
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    files.sort();
    for f in files {
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        let out = parse_file(&name, &env, &strict());
        let Some(c) = out.config else { continue };
        assert_round_trip(&env, &c);
        n += 1;
    }
    assert!(n > 250, "only {n} corpus configs round-tripped");
}

#[test]
fn tricky_values_round_trip() {
    let env = TestEnv::new();
    let text = r#"
q = "postmaster"
table t { "a b" = $q, "quoted \"value\" with 'both' quotes" = x, 'x\"y' = "back\\slash\ tab", "action" = "match" }
table l { "with space", 'it''s', "*.example.org" }
action "a b" maildir "~/Maildir/%{rcpt.user:lowercase}" junk alias <t> user "nobody"
action r relay host { "smtp+tls://label@mx.example.org:587" } auth <t> tls no-verify helo "h" ttl 2d
filter f phase rcpt-to match !rcpt-to regex { "^a", "b$" } reject "550 no"
filter g phase connect match src { "10.0.0.0/8", "::1" } bypass
listen on lo port 2525 tag "T" filter { f, g } hostname "mx" no-dsn
match !from src { "10.0.0.0/8" } for domain <l> tls !auth action "a b"
match from auth for rcpt-to regex { ".*" } !tag "T" action r
match from mail-from "@example.org" !helo { "h" } reject
"#;
    let c = parse_text(&env, "/t.conf", text).unwrap_or_else(|e| panic!("{e:?}"));
    assert_round_trip(&env, &c);
}

/// `destination-rate-delay` (ours, beyond 6.8): seconds, or a delay with its unit; kept in
/// seconds beside 6.8's keys of its set, printed back as a number that parses to the same
/// configuration; a negative, zero-with-unit or unknown-unit value is refused with its line.
#[test]
fn destination_rate_delay_parses_dumps_and_round_trips() {
    let env = TestEnv::new();
    let text = "mta limit destination-rate-delay 2 max-conn-per-host 3\n\
                mta limit for domain \"sfr.fr\" destination-rate-delay 1s\n\
                mta limit for domain free.fr destination-rate-delay 2m\n\
                mta limit for domain free.fr destination-rate-delay 0\n\
                action r relay\nmatch for any action r\n";
    let c = parse_text(&env, "/t.conf", text).unwrap_or_else(|e| panic!("{e:?}"));
    type Set<'a> = (Option<&'a str>, Vec<(&'a str, i64)>);
    let sets: Vec<Set> = c
        .options
        .mta_limits
        .iter()
        .map(|l| {
            (
                l.domain.as_deref(),
                l.values.iter().map(|(k, v)| (k.as_str(), *v)).collect(),
            )
        })
        .collect();
    assert_eq!(
        sets,
        vec![
            (
                None,
                vec![("destination-rate-delay", 2), ("max-conn-per-host", 3)]
            ),
            (Some("sfr.fr"), vec![("destination-rate-delay", 1)]),
            // The last value of a key wins, as for 6.8's keys.
            (Some("free.fr"), vec![("destination-rate-delay", 0)]),
        ]
    );
    let dumped = rsmtpd_config::dump(&c);
    assert!(
        dumped.contains("mta limit for domain \"sfr.fr\" \"destination-rate-delay\" 1"),
        "{dumped}"
    );
    assert_round_trip(&env, &c);

    for (value, want) in [
        ("-1", "invalid destination-rate-delay: -1"),
        ("0s", "invalid destination-rate-delay: 0"),
        ("1w", "invalid destination-rate-delay: 1w"),
        ("\"1é\"", "invalid destination-rate-delay: 1é"),
    ] {
        let bad = format!(
            "action r relay\nmta limit destination-rate-delay {value}\nmatch for any action r\n"
        );
        let errs = parse_text(&env, "/t.conf", &bad).expect_err(value);
        assert!(
            errs.iter().any(|e| e.contains(":2: ") && e.contains(want)),
            "{value}: {errs:?}"
        );
    }
}
