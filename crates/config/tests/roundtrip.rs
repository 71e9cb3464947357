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
