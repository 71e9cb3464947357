//! Builtin filters: every check in every phase that allows it, with and without `!`, every
//! decision, and chains (bypass in the middle, report going on, first decision winning).

use std::net::IpAddr;

use rsmtpd::inbound::filter::{run, FilterFacts};
use rsmtpd::routing::lookup::{HostInfo, Source, SystemUsers, Tables};
use rsmtpd_config::{parse_file, ParseOptions, StaticEnvironment};
use rsmtpd_protocol::server::{FilterDecision, FilterPhase};

fn setup(filters: &str) -> (rsmtpd_config::Config, Tables) {
    let text = format!(
        "table nets {{ 192.0.2.0/24, \"2001:db8::/32\" }}\n\
         table names {{ mx.example.org, mx1.example.org, \"*.example.net\" }}\n\
         table rx {{ \"^mx[0-9]\\.\" }}\n\
         table froms {{ \"@example.org\" }}\n\
         table rcpts {{ \"postmaster@example.org\" }}\n\
         table users {{ alice }}\n\
         {filters}\n\
         listen on lo filter chk\n\
         match from any reject\n"
    );
    let env = StaticEnvironment::typical().with_file("/f.conf", &text);
    let out = parse_file("/f.conf", &env, &ParseOptions::default());
    let conf = out
        .config
        .unwrap_or_else(|| panic!("{}\n{}", text, out.messages.join("\n")));
    let tables = Tables::new(
        &conf,
        &HostInfo {
            hostname: "mx.example.org".into(),
            local_addrs: vec![],
        },
        Box::new(SystemUsers),
    );
    (conf, tables)
}

fn facts<'a>(src: &str, rdns: &'a str, fcrdns: bool) -> FilterFacts<'a> {
    let ip: IpAddr = src.parse().unwrap_or_else(|e| panic!("{e}"));
    FilterFacts {
        rdns,
        fcrdns,
        src: Some(Source::Addr(ip)),
        helo: Some("mx1.example.org"),
        username: None,
        mail_from: Some("bob@example.org"),
    }
}

const REJECT: &str = "550 no";

fn decide(filter: &str, phase: FilterPhase, param: &str, f: &FilterFacts) -> FilterDecision {
    let (conf, tables) = setup(&format!("filter chk {filter}"));
    run(&conf, &tables, "chk", phase, param, f, None).decision
}

/// (check, facts that make it hold, facts that make it fail)
fn checks() -> Vec<(&'static str, FilterFacts<'static>, FilterFacts<'static>)> {
    let good = facts("192.0.2.7", "mx.example.org", true);
    let bad = facts("198.51.100.1", "<unknown>", false);
    let mut helo_other = good.clone();
    helo_other.helo = Some("other.test");
    let mut from_other = good.clone();
    from_other.mail_from = Some("eve@example.com");
    let mut authed = good.clone();
    authed.username = Some("alice");
    vec![
        ("fcrdns", good.clone(), bad.clone()),
        ("rdns", good.clone(), bad.clone()),
        ("rdns <names>", good.clone(), bad.clone()),
        (
            "rdns regex <rx>",
            facts("192.0.2.7", "mx2.example.org", true),
            bad.clone(),
        ),
        ("src <nets>", good.clone(), bad.clone()),
        (
            "src regex { \"^192\\.0\\.2\\.\" }",
            good.clone(),
            bad.clone(),
        ),
        ("helo <names>", good.clone(), helo_other.clone()),
        ("helo regex <rx>", good.clone(), helo_other),
        ("mail-from <froms>", good.clone(), from_other.clone()),
        (
            "mail-from regex { \"@example\\.org$\" }",
            good.clone(),
            from_other,
        ),
        ("auth", authed.clone(), good.clone()),
        ("auth <users>", authed.clone(), good.clone()),
        ("auth regex { \"^al\" }", authed, good),
    ]
}

fn phases_allowing(check: &str) -> Vec<(&'static str, FilterPhase)> {
    let all = [
        ("connect", FilterPhase::Connect),
        ("helo", FilterPhase::Helo),
        ("ehlo", FilterPhase::Ehlo),
        ("mail-from", FilterPhase::MailFrom),
        ("rcpt-to", FilterPhase::RcptTo),
        ("data", FilterPhase::Data),
        ("commit", FilterPhase::Commit),
    ];
    let word = check.split(' ').next().unwrap_or("");
    all.into_iter()
        .filter(|(p, _)| match word {
            "helo" => *p != "connect",
            "auth" => !matches!(*p, "connect" | "helo" | "ehlo"),
            "mail-from" => !matches!(*p, "connect" | "helo" | "ehlo"),
            _ => true,
        })
        .collect()
}

#[test]
fn every_check_in_every_phase_with_and_without_negation() {
    let mut n = 0;
    for (check, holds, fails) in checks() {
        for (pname, phase) in phases_allowing(check) {
            let f = format!("phase {pname} match {check} reject \"{REJECT}\"");
            let nf = format!("phase {pname} match !{check} reject \"{REJECT}\"");
            let rej = FilterDecision::Reject(REJECT.into());
            assert_eq!(decide(&f, phase, "x", &holds), rej, "{f} should hold");
            assert_eq!(
                decide(&f, phase, "x", &fails),
                FilterDecision::Proceed,
                "{f} should fail"
            );
            assert_eq!(
                decide(&nf, phase, "x", &holds),
                FilterDecision::Proceed,
                "{nf}"
            );
            assert_eq!(decide(&nf, phase, "x", &fails), rej, "{nf}");
            n += 4;
        }
    }
    assert!(n > 250, "{n}");
}

#[test]
fn rcpt_to_checks_look_at_the_recipient() {
    let f = facts("192.0.2.7", "mx.example.org", true);
    for check in ["rcpt-to <rcpts>", "rcpt-to regex { \"^postmaster@\" }"] {
        let filter = format!("phase rcpt-to match {check} reject \"{REJECT}\"");
        assert_eq!(
            decide(&filter, FilterPhase::RcptTo, "<postmaster@example.org>", &f),
            FilterDecision::Reject(REJECT.into()),
            "{filter}"
        );
        assert_eq!(
            decide(&filter, FilterPhase::RcptTo, "<bob@example.org>", &f),
            FilterDecision::Proceed
        );
    }
}

#[test]
fn every_decision() {
    let f = facts("198.51.100.1", "<unknown>", false);
    for (d, want) in [
        ("reject \"550 no\"", FilterDecision::Reject("550 no".into())),
        (
            "disconnect \"421 bye\"",
            FilterDecision::Disconnect("421 bye".into()),
        ),
        (
            "rewrite \"451 later\"",
            FilterDecision::Rewrite("451 later".into()),
        ),
        ("junk", FilterDecision::Junk),
        ("bypass", FilterDecision::Proceed),
        ("report \"seen\"", FilterDecision::Proceed),
    ] {
        let filter = format!("phase connect match !rdns {d}");
        assert_eq!(
            decide(&filter, FilterPhase::Connect, "198.51.100.1", &f),
            want,
            "{d}"
        );
    }
}

#[test]
fn filters_of_other_phases_do_not_run() {
    let f = facts("198.51.100.1", "<unknown>", false);
    let filter = "phase mail-from match !rdns reject \"550 no\"";
    assert_eq!(
        decide(filter, FilterPhase::Connect, "x", &f),
        FilterDecision::Proceed
    );
    assert_eq!(
        decide(filter, FilterPhase::MailFrom, "<a@b>", &f),
        FilterDecision::Reject("550 no".into())
    );
}

#[test]
fn chains_bypass_report_and_first_decision() {
    let defs = "filter rep phase connect match !rdns report \"no rdns\"\n\
                filter pass phase connect match src <nets> bypass\n\
                filter mark phase connect match !rdns junk\n\
                filter rej phase connect match !fcrdns reject \"550 no\"\n\
                filter chk chain { rep, pass, mark, rej }";
    let (conf, tables) = setup(defs);
    // Trusted source: report is logged, bypass stops the chain before junk and reject.
    let trusted = facts("192.0.2.7", "<unknown>", false);
    let out = run(
        &conf,
        &tables,
        "chk",
        FilterPhase::Connect,
        "192.0.2.7",
        &trusted,
        Some(0x2a),
    );
    assert_eq!(out.decision, FilterDecision::Proceed);
    assert_eq!(out.reports, vec!["no rdns".to_string()]);
    assert_eq!(
        out.trace.lines,
        vec![
            "000000000000002a filters protocol phase=connect, resume=n, action=report, filter=rep, query=192.0.2.7 response=no rdns",
            "000000000000002a filters protocol phase=connect, resume=n, action=proceed, filter=rep, query=192.0.2.7",
            "000000000000002a filters protocol phase=connect, resume=y, action=bypass, filter=pass, query=192.0.2.7",
        ]
    );
    // Untrusted: junk decides before reject is reached.
    let other = facts("198.51.100.1", "<unknown>", false);
    let out = run(
        &conf,
        &tables,
        "chk",
        FilterPhase::Connect,
        "198.51.100.1",
        &other,
        Some(1),
    );
    assert_eq!(out.decision, FilterDecision::Junk);
    assert!(out
        .trace
        .lines
        .last()
        .is_some_and(|l| l.contains("action=junk, filter=mark")));
    // A phase without filters is walked and proceeds.
    let out = run(
        &conf,
        &tables,
        "chk",
        FilterPhase::Quit,
        "",
        &other,
        Some(1),
    );
    assert_eq!(
        out.trace.lines,
        vec!["0000000000000001 filters protocol phase=quit, resume=n, action=proceed"]
    );
}

#[test]
fn auth_phase_filters_run_at_connect_as_in_opensmtpd() {
    // 6.8's parser never sets the phase of an `auth` filter: it stays connect.
    let f = facts("198.51.100.1", "<unknown>", false);
    let filter = "phase auth match !rdns reject \"550 no\"";
    assert_eq!(
        decide(filter, FilterPhase::Connect, "198.51.100.1", &f),
        FilterDecision::Reject("550 no".into())
    );
}

#[test]
fn init_trace_lists_filters_then_chains_by_name() {
    let (conf, _) = setup(
        "filter b phase mail-from match !rdns junk\nfilter a phase connect match rdns junk\n\
         filter chk chain { a, b }",
    );
    assert_eq!(
        rsmtpd::inbound::filter::init_trace(&conf),
        vec![
            "filters init type=builtin, name=a, hooks=00000001",
            "filters init type=builtin, name=b, hooks=00000020",
            "filters init type=chain, name=chk { a, b }",
        ]
    );
}
