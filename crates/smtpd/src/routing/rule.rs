//! The ruleset: which `match` line an envelope falls under (OpenSMTPD's `ruleset.c`).
//!
//! Rules are tried in order and the first whose criteria all hold wins; `reject` rules win too
//! (their action is None). Each criterion gives true, false or a temporary failure; a failure
//! stops the walk and the recipient gets `451 Temporary failure`.

use rsmtpd_config::model::{Criterion, For, From, Rule, TableTest};
use rsmtpd_config::Config;
use rsmtpd_protocol::address::Mailaddr;

use crate::routing::lookup::{Match, Source, Tables, TempFail};
use crate::sys::log::TraceLines;

/// What the ruleset looks at in an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleEnvelope {
    /// The client: `Source::Local` for the unix socket (local enqueue).
    pub source: Source,
    /// The client's reverse DNS name, `<unknown>` when it has none (as in the envelope).
    pub hostname: String,
    /// The HELO/EHLO argument ("" if none).
    pub helo: String,
    /// The listener's tag ("" if none).
    pub tag: String,
    /// Whether the session is under TLS (`match ... tls`).
    pub tls: bool,
    /// The authenticated user, if the session authenticated.
    pub auth_user: Option<String>,
    pub sender: Mailaddr,
    /// The address being routed: the RCPT, or an address an alias expanded to.
    pub dest: Mailaddr,
    /// Set for addresses produced by expansion (`EF_INTERNAL`): the source is then `local`.
    pub internal: bool,
}

/// The outcome of [`match_rule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleMatch<'c> {
    /// Rule `index` (0-based) matched; a `reject` rule has no action.
    Matched {
        index: usize,
        rule: &'c Rule,
    },
    NoMatch,
    TempFail,
}

/// `ruleset_match()`. Appends the `-T rules` trace line to `trace`.
pub fn match_rule<'c>(
    conf: &'c Config,
    tables: &Tables,
    env: &RuleEnvelope,
    trace: &mut TraceLines,
) -> RuleMatch<'c> {
    for (index, rule) in conf.rules.iter().enumerate() {
        match rule_matches(rule, tables, env) {
            Ok(true) => {
                trace.line(format_args!(
                    "rule #{} matched: {}",
                    index + 1,
                    rule_to_text(rule)
                ));
                return RuleMatch::Matched { index, rule };
            }
            Ok(false) => {}
            Err(TempFail) => {
                trace.line(format_args!("temporary failure in processing of a rule"));
                return RuleMatch::TempFail;
            }
        }
    }
    trace.line(format_args!("no rule matched"));
    RuleMatch::NoMatch
}

/// All criteria of one rule, in OpenSMTPD's order (the order matters only for which failure is
/// seen first).
pub fn rule_matches(rule: &Rule, tables: &Tables, env: &RuleEnvelope) -> Match {
    let checks: [&dyn Fn() -> Match; 8] = [
        &|| match_tag(rule, tables, env),
        &|| match_from(rule, tables, env),
        &|| match_for(rule, tables, env),
        &|| match_helo(rule, tables, env),
        &|| match_auth(rule, tables, env),
        &|| match_tls(rule, env),
        &|| match_mail_from(rule, tables, env),
        &|| match_rcpt_to(rule, tables, env),
    ];
    for check in checks {
        if !check()? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `MATCH_RESULT(r, neg)`.
fn result(r: Match, negate: bool) -> Match {
    r.map(|b| b != negate)
}

fn table_test(
    tables: &Tables,
    tt: &TableTest,
    plain: fn(&Tables, &str, &str) -> Match,
    key: &str,
) -> Match {
    if tt.regex {
        tables.match_regex(&tt.table, key)
    } else {
        plain(tables, &tt.table, key)
    }
}

fn match_tag(rule: &Rule, tables: &Tables, env: &RuleEnvelope) -> Match {
    let Some(c) = &rule.tag else { return Ok(true) };
    result(
        table_test(tables, &c.test, Tables::match_string, &env.tag),
        c.negate,
    )
}

fn match_from(rule: &Rule, tables: &Tables, env: &RuleEnvelope) -> Match {
    // No `from` means `from local`; `from auth`/`from mail-from` are `from any`, their negation
    // belonging to the auth/mail-from criterion.
    let (negate, test) = match &rule.from {
        None => (false, &From::Local),
        Some(Criterion { negate, test }) => (*negate, test),
    };
    let (table, regex): (Option<&str>, bool) = match test {
        From::Any | From::Auth | From::MailFrom => (Some("<anyhost>"), false),
        From::Local => (Some("<localhost>"), false),
        From::Src(tt) => (Some(&tt.table), tt.regex),
        From::Rdns(tt) => (
            tt.as_ref().map(|t| t.table.as_str()),
            tt.as_ref().is_some_and(|t| t.regex),
        ),
        From::Socket => (None, false),
    };
    let key: String;
    if env.internal {
        // An address an alias produced comes "from local"; rules without a table never match it.
        let Some(_) = table else { return Ok(false) };
        key = "local".to_string();
    } else if let From::Rdns(_) = test {
        let has_rdns = env.hostname != "<unknown>";
        let Some(_) = table else {
            return result(Ok(has_rdns), negate);
        };
        if !has_rdns {
            return Ok(false);
        }
        key = env.hostname.clone();
    } else {
        key = env.source.to_text();
        if let From::Socket = test {
            return Ok(if key == "local" { !negate } else { negate });
        }
    }
    let Some(table) = table else { return Ok(false) };
    // Without `regex`, even `from rdns <t>` compares as K_NETADDR, i.e. case-insensitive
    // equality for a host name (no wildcards).
    let r = if regex {
        tables.match_regex(table, &key)
    } else {
        tables.match_netaddr_text(table, &key)
    };
    result(r, negate)
}

fn match_for(rule: &Rule, tables: &Tables, env: &RuleEnvelope) -> Match {
    let (negate, test) = match &rule.for_ {
        None => (false, &For::Local),
        Some(Criterion { negate, test }) => (*negate, test),
    };
    let domain = &env.dest.domain;
    let r = match test {
        For::Local => tables.match_domain("<localnames>", domain),
        For::Any | For::RcptTo => tables.match_domain("<anydestination>", domain),
        For::Domain(tt) => table_test(tables, tt, Tables::match_domain, domain),
    };
    result(r, negate)
}

fn match_helo(rule: &Rule, tables: &Tables, env: &RuleEnvelope) -> Match {
    let Some(c) = &rule.helo else { return Ok(true) };
    result(
        table_test(tables, &c.test, Tables::match_domain, &env.helo),
        c.negate,
    )
}

fn match_auth(rule: &Rule, tables: &Tables, env: &RuleEnvelope) -> Match {
    let Some(c) = &rule.auth else { return Ok(true) };
    let r = match (&env.auth_user, &c.test) {
        (None, _) => Ok(false),
        (Some(_), None) => Ok(true),
        (Some(user), Some(tt)) => {
            if tt.regex {
                tables.match_regex(&tt.table, user)
            } else if user.contains('@') {
                tables.match_mailaddr_text(&tt.table, user)
            } else {
                tables.match_string(&tt.table, user)
            }
        }
    };
    result(r, c.negate)
}

/// `tls` / `!tls`: whether the session is under TLS. OpenSMTPD 6.8.0p2 cannot evaluate it ("not
/// until TLS flag is added to envelope") and fails every rule with it that gets this far with
/// `451 Temporary failure`, negated or not; we evaluate it, on purpose (README).
fn match_tls(rule: &Rule, env: &RuleEnvelope) -> Match {
    match rule.tls {
        None => Ok(true),
        Some(positive) => Ok(env.tls == positive),
    }
}

fn match_mail_from(rule: &Rule, tables: &Tables, env: &RuleEnvelope) -> Match {
    let Some(c) = &rule.mail_from else {
        return Ok(true);
    };
    let key = format!("{}@{}", env.sender.user, env.sender.domain);
    result(
        table_test(tables, &c.test, Tables::match_mailaddr_text, &key),
        c.negate,
    )
}

fn match_rcpt_to(rule: &Rule, tables: &Tables, env: &RuleEnvelope) -> Match {
    let Some(c) = &rule.rcpt_to else {
        return Ok(true);
    };
    let key = format!("{}@{}", env.dest.user, env.dest.domain);
    result(
        table_test(tables, &c.test, Tables::match_mailaddr_text, &key),
        c.negate,
    )
}

/// `rule_to_text()`: the rule as `-T rules` prints it (tables by bare name, `regex` not shown,
/// defaults spelled out).
pub fn rule_to_text(r: &Rule) -> String {
    let mut s = String::from("match");
    let neg = |s: &mut String, n: bool| {
        if n {
            s.push_str(" !");
        }
    };
    if let Some(c) = &r.tag {
        neg(&mut s, c.negate);
        s.push_str(" tag ");
        s.push_str(&c.test.table);
    }
    match &r.from {
        None => s.push_str(" from local"),
        Some(c) => {
            neg(&mut s, c.negate);
            match &c.test {
                From::Socket => s.push_str(" from socket"),
                From::Rdns(t) => {
                    s.push_str(" from rdns");
                    if let Some(t) = t {
                        s.push(' ');
                        s.push_str(&t.table);
                    }
                }
                From::Any | From::Auth | From::MailFrom => s.push_str(" from any"),
                From::Local => s.push_str(" from local"),
                From::Src(t) => {
                    s.push_str(" from src ");
                    s.push_str(&t.table);
                }
            }
        }
    }
    match &r.for_ {
        None => s.push_str(" for local"),
        Some(c) => {
            neg(&mut s, c.negate);
            match &c.test {
                For::Any | For::RcptTo => s.push_str(" for any"),
                For::Local => s.push_str(" for local"),
                For::Domain(t) => {
                    s.push_str(" for domain ");
                    s.push_str(&t.table);
                }
            }
        }
    }
    if let Some(c) = &r.helo {
        neg(&mut s, c.negate);
        s.push_str(" helo ");
        s.push_str(&c.test.table);
    }
    if let Some(c) = &r.auth {
        neg(&mut s, c.negate);
        s.push_str(" auth");
        if let Some(t) = &c.test {
            s.push(' ');
            s.push_str(&t.table);
        }
    }
    if let Some(positive) = r.tls {
        neg(&mut s, !positive);
        s.push_str(" tls");
    }
    if let Some(c) = &r.mail_from {
        neg(&mut s, c.negate);
        s.push_str(" mail-from ");
        s.push_str(&c.test.table);
    }
    if let Some(c) = &r.rcpt_to {
        neg(&mut s, c.negate);
        s.push_str(" rcpt-to ");
        s.push_str(&c.test.table);
    }
    s.push_str(" action ");
    s.push_str(r.action.as_deref().unwrap_or("reject"));
    s
}
