//! The seed's configurations (tests/fixtures/seed/configs, copied from the seed document),
//! step by step: each gets OpenSMTPD's
//! verdict, and the accepted ones are read the way the blog's author meant them.

mod common;

use common::*;
use rsmtpd_config::*;

fn seed(name: &str) -> String {
    let p = format!(
        "{}/../../tests/fixtures/seed/configs/{}",
        env!("CARGO_MANIFEST_DIR"),
        name
    );
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn ok(name: &str) -> Config {
    let env = TestEnv::new();
    let c = parse_text(&env, name, &seed(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    assert_round_trip(&env, &c);
    c
}

fn list(c: &Config, t: &str) -> Vec<String> {
    let t = c.table(t).unwrap_or_else(|| panic!("no table {t}"));
    assert_eq!(t.kind, TableKind::List, "{} is a list", t.name);
    t.entries().map(|(k, _)| k.to_string()).collect()
}

fn map(c: &Config, t: &str) -> Vec<(String, String)> {
    let t = c.table(t).unwrap_or_else(|| panic!("no table {t}"));
    assert_eq!(t.kind, TableKind::Hash, "{} is a map", t.name);
    t.entries()
        .map(|(k, v)| (k.to_string(), v.unwrap_or_default().to_string()))
        .collect()
}

fn builtin(c: &Config, name: &str) -> BuiltinFilter {
    match &c
        .filter(name)
        .unwrap_or_else(|| panic!("no filter {name}"))
        .kind
    {
        FilterKind::Builtin(b) => b.clone(),
        k => panic!("{name} is {k:?}"),
    }
}

fn chain(c: &Config, name: &str) -> Vec<String> {
    match &c
        .filter(name)
        .unwrap_or_else(|| panic!("no filter {name}"))
        .kind
    {
        FilterKind::Chain(v) => v.clone(),
        k => panic!("{name} is {k:?}"),
    }
}

#[test]
fn step0_minimal() {
    let c = ok("0-minimal.conf");
    assert!(c.listeners.is_empty());
    assert!(!c.socket.declared, "only the implicit control socket");
    assert_eq!(c.rules.len(), 1);
    let r = &c.rules[0];
    assert_eq!(r.action, None, "reject");
    assert_eq!(r.from.as_ref().map(|f| &f.test), Some(&From::Any));
    assert_eq!(r.for_, None, "for local by default");
}

#[test]
fn step1_listen() {
    let c = ok("1-listen.conf");
    assert_eq!(c.listeners.len(), 1);
    let l = &c.listeners[0];
    assert_eq!(l.on, "::1");
    assert_eq!(
        l.addrs,
        vec!["::1"
            .parse::<std::net::IpAddr>()
            .unwrap_or_else(|e| panic!("{e}"))]
    );
    assert_eq!(l.port, 2525);
    assert_eq!(
        (l.tls, l.auth.clone(), l.filter.clone()),
        (None, None, None)
    );
    assert!(!l.no_dsn, "DSN is on by default");
}

#[test]
fn step2_dns_filters() {
    let c = ok("2-dns-filters.conf");
    let r = builtin(&c, "check_rdns");
    assert_eq!(
        (r.phase, r.negate, r.check.clone(), r.decision.clone()),
        (
            Phase::Connect,
            true,
            FilterCheck::Rdns,
            Decision::Disconnect("550 no rDNS please fix".into())
        )
    );
    let f = builtin(&c, "check_fcrdns");
    assert_eq!(
        (f.phase, f.negate, f.check.clone(), f.decision.clone()),
        (
            Phase::Connect,
            true,
            FilterCheck::Fcrdns,
            Decision::Disconnect("550 no FCrDNS please fix".into())
        )
    );
    assert_eq!(chain(&c, "check_dns"), vec!["check_rdns", "check_fcrdns"]);
    assert_eq!(c.listeners[0].filter.as_deref(), Some("check_dns"));
}

fn users_and_aliases(c: &Config) {
    assert_eq!(
        map(c, "aliases"),
        vec![
            ("abuse".into(), "postmaster".into()),
            ("postmaster".into(), "root".into()),
            ("root".into(), "foo".into())
        ]
    );
    assert_eq!(
        map(c, "users"),
        vec![
            ("foo".into(), "2000:2000:/var/empty".into()),
            ("bar".into(), "2000:2000:/var/empty".into())
        ]
    );
    let a = c
        .action("local_mail")
        .unwrap_or_else(|| panic!("no action"));
    let Method::Local(d) = &a.method else {
        panic!("local")
    };
    assert_eq!(
        d.method,
        LocalMethod::Maildir {
            path: None,
            junk: false
        }
    );
    assert_eq!(d.alias.as_deref(), Some("aliases"));
    assert_eq!(d.userbase(), "users");
    assert_eq!(d.virtual_, None);
}

#[test]
fn step3_users() {
    let c = ok("3-users-fixed.conf");
    users_and_aliases(&c);
    let r = &c.rules[0];
    assert_eq!(r.action.as_deref(), Some("local_mail"));
    assert_eq!(r.for_, None, "for local: the host's own names");
}

#[test]
fn steps3_and_4_as_printed_are_refused_like_opensmtpd() {
    for (name, last) in [("3-users.conf", 12), ("4-domain.conf", 12)] {
        let env = TestEnv::new();
        let err = parse_text(&env, name, &seed(name)).expect_err("refused");
        assert_eq!(
            err,
            vec![
                format!("{name}:7: syntax error"),
                format!("{name}:10: syntax error"),
                format!("{name}:{last}: no such dispatcher: local_mail"),
                "warn: no rules, nothing to do".to_string(),
            ]
        );
    }
}

#[test]
fn step4_domain() {
    let c = ok("4-domain-fixed.conf");
    users_and_aliases(&c);
    let f = c.rules[0].for_.clone().unwrap_or_else(|| panic!("for"));
    let For::Domain(TableTest {
        table,
        regex: false,
    }) = &f.test
    else {
        panic!("{f:?}")
    };
    assert!(!f.negate);
    assert!(c.table(table).is_some_and(|t| t.anonymous));
    assert_eq!(list(&c, table), vec!["bsdsx.fr"]);
}

#[test]
fn step5_domains_table() {
    let c = ok("5-domains-table.conf");
    assert_eq!(list(&c, "domains"), vec!["bsdsx.fr", "*.bsdsx.fr"]);
    let f = c.rules[0].for_.clone().unwrap_or_else(|| panic!("for"));
    assert_eq!(
        f.test,
        For::Domain(TableTest {
            table: "domains".into(),
            regex: false
        })
    );
}

#[test]
fn step6_mail_from() {
    let c = ok("6-mail-from.conf");
    assert_eq!(list(&c, "trusted"), vec!["2001:db8:666::/64"]);
    assert_eq!(
        list(&c, "myfroms"),
        vec!["@bsdsx\\.fr$", "@.*\\.bsdsx\\.fr$"]
    );
    let t = builtin(&c, "check_trusted");
    assert_eq!(
        (t.phase, t.negate, t.check.clone(), t.decision.clone()),
        (
            Phase::MailFrom,
            false,
            FilterCheck::SrcTable("trusted".into()),
            Decision::Bypass
        )
    );
    let m = builtin(&c, "check_myfroms");
    assert_eq!(m.check, FilterCheck::MailFromRegex("myfroms".into()));
    assert_eq!(
        m.decision,
        Decision::Disconnect("550 invalid mail from".into())
    );
    assert_eq!(
        chain(&c, "check_mail_from"),
        vec!["check_trusted", "check_myfroms"]
    );
    assert_eq!(c.listeners[0].filter.as_deref(), Some("check_mail_from"));
}

#[test]
fn step7_deliver() {
    let c = ok("7-deliver.conf");
    assert_eq!(builtin(&c, "check_rdns").decision, Decision::Junk);
    assert_eq!(builtin(&c, "check_fcrdns").decision, Decision::Junk);
    assert_eq!(
        chain(&c, "filters"),
        vec![
            "check_rdns",
            "check_fcrdns",
            "check_trusted",
            "check_myfroms"
        ]
    );
    assert_eq!(c.listeners[0].filter.as_deref(), Some("filters"));
    let Method::Local(d) = &c
        .action("local_mail")
        .unwrap_or_else(|| panic!("action"))
        .method
    else {
        panic!("local")
    };
    let LocalMethod::Maildir {
        path: Some(p),
        junk: true,
    } = &d.method
    else {
        panic!("{:?}", d.method)
    };
    assert_eq!(p.raw, "/opt/vmail/%{user.username}");
    assert!(matches!(&p.parts[1], format::Part::Token(t) if t.name == "user.username"));
    assert_eq!(d.userbase(), "users");
    assert_eq!(d.alias.as_deref(), Some("aliases"));
}

/// The copies under tests/fixtures/seed are the seed's files, byte for byte, when the test is
/// told where the seed document is (`RSMTPD_SEED_DIR`, the folder holding its `configs/`); a
/// clone alone has only the copies, and says so. The tests never look outside the repository
/// on their own.
#[test]
fn fixtures_match_the_shared_seed() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let ours = root.join("tests/fixtures/seed/configs");
    let Some(seed) = std::env::var_os("RSMTPD_SEED_DIR") else {
        eprintln!(
            "SKIPPED: fixtures_match_the_shared_seed: RSMTPD_SEED_DIR is not set (the folder of the \
             seed document): the copies in tests/fixtures/seed are used as they are"
        );
        return;
    };
    let shared = std::path::Path::new(&seed).join("configs");
    assert!(
        shared.is_dir(),
        "RSMTPD_SEED_DIR: {} is no folder",
        shared.display()
    );
    let names = |d: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&shared),
        names(&ours),
        "tests/fixtures/seed/configs has other files than {}: copy them again",
        shared.display()
    );
    for n in names(&shared) {
        let a = std::fs::read(shared.join(&n)).unwrap_or_default();
        let b = std::fs::read(ours.join(&n)).unwrap_or_default();
        assert!(
            a == b,
            "tests/fixtures/seed/configs/{n} differs from the seed's: copy it again"
        );
    }
}
