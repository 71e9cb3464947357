//! Builtin filters (`filter NAME phase PHASE match CHECK DECISION`) and chains, as OpenSMTPD's
//! lka_filter.c runs them: for one phase, the chain's filters of that phase in order; the first
//! whose check holds decides, except `report` (logged, the chain goes on) and `bypass` (the rest of
//! the chain is skipped, the command proceeds).
//!
//! Pure: the caller gives the session's facts and gets the decision and `-T filters` lines.

use rsmtpd_config::{BuiltinFilter, Config, Decision, FilterCheck, FilterKind, Phase};
use rsmtpd_protocol::server::{FilterDecision, FilterPhase};

use crate::routing::lookup::{Source, Tables};
use crate::sys::log::TraceLines;

/// What the filters know of a session (`struct filter_session`).
/// It borrows from the session: filters run at every command, and copying the session's names
/// for each would be work on the per-command path.
#[derive(Debug, Clone, Default)]
pub struct FilterFacts<'a> {
    /// Reverse name, or `<unknown>`.
    pub rdns: &'a str,
    pub fcrdns: bool,
    pub src: Option<Source>,
    pub helo: Option<&'a str>,
    pub username: Option<&'a str>,
    /// The MAIL FROM address without brackets, once given.
    pub mail_from: Option<&'a str>,
}

/// The decision of a chain for one command, with the trace lines OpenSMTPD prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub decision: FilterDecision,
    pub trace: TraceLines,
    /// `report "..."` texts to send to report subscribers (none exist without proc filters).
    pub reports: Vec<String>,
}

/// The phase name in traces, and which builtin phase a session phase runs (None: no builtin
/// filter can hook it, but OpenSMTPD still walks the empty chain and traces it).
fn phase_of(p: FilterPhase) -> (Option<Phase>, &'static str) {
    match p {
        FilterPhase::Connect => (Some(Phase::Connect), "connect"),
        FilterPhase::Helo => (Some(Phase::Helo), "helo"),
        FilterPhase::Ehlo => (Some(Phase::Ehlo), "ehlo"),
        FilterPhase::MailFrom => (Some(Phase::MailFrom), "mail-from"),
        FilterPhase::RcptTo => (Some(Phase::RcptTo), "rcpt-to"),
        FilterPhase::Data => (Some(Phase::Data), "data"),
        FilterPhase::Commit => (Some(Phase::Commit), "commit"),
        FilterPhase::StartTls => (None, "starttls"),
        FilterPhase::Auth => (None, "auth"),
        FilterPhase::Rset => (None, "rset"),
        FilterPhase::Quit => (None, "quit"),
        FilterPhase::Noop => (None, "noop"),
    }
}

/// The phase a builtin filter hooks. OpenSMTPD's parser never sets the phase of an `auth` filter,
/// so it keeps the zero value, FILTER_CONNECT: such filters run at connect. We do the same, so
/// that a config behaves as it did.
fn hooked_phase(b: &BuiltinFilter) -> Phase {
    if b.phase == Phase::Auth {
        Phase::Connect
    } else {
        b.phase
    }
}

/// The member names of a listener's `filter` name, in chain order (a single filter is a chain of
/// one).
pub fn chain_names<'c>(conf: &'c Config, name: &str) -> Vec<&'c str> {
    let Some(f) = conf.filter(name) else {
        return Vec::new();
    };
    match &f.kind {
        FilterKind::Chain(list) => list.iter().map(String::as_str).collect(),
        _ => vec![f.name.as_str()],
    }
}

/// The builtin filters of a listener's `filter` name, in chain order.
fn members<'c>(conf: &'c Config, name: &str) -> Vec<(&'c str, &'c BuiltinFilter)> {
    chain_names(conf, name)
        .into_iter()
        .filter_map(|n| match conf.filter(n).map(|f| &f.kind) {
            Some(FilterKind::Builtin(b)) => Some((n, b)),
            // proc filters are run by crate::procfilter's chain, which calls step() for these.
            _ => None,
        })
        .collect()
}

/// Whether builtin filter `b` hooks session phase `phase`.
pub fn hooks(b: &BuiltinFilter, phase: FilterPhase) -> bool {
    phase_of(phase).0 == Some(hooked_phase(b))
}

/// What one builtin filter decided for a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No decision: the next member of the chain runs.
    Next,
    /// `report "MSG"`: a `filter-report` event, then the next member runs.
    Report(String),
    /// The chain ends with this decision (`bypass` ends it with proceed).
    Done(FilterDecision),
}

/// The `-T filters` line head of a step: session, phase name as traced, and whether the walk
/// resumed (every step after the first).
pub struct TraceHead<'a> {
    pub sessid: u64,
    pub phase: &'a str,
    pub resume: bool,
}

/// Runs builtin filter `fname` for one phase (lka_filter.c's filter_protocol_internal for a
/// builtin entry), with its trace line. `param` is already without brackets at MAIL/RCPT.
#[allow(clippy::too_many_arguments)]
pub fn step(
    tables: &Tables,
    fname: &str,
    b: &BuiltinFilter,
    phase: FilterPhase,
    param: &str,
    facts: &FilterFacts,
    head: &TraceHead,
    trace: &mut TraceLines,
) -> Step {
    let head = format_args!(
        "{:016x} filters protocol phase={}, resume={}",
        head.sessid,
        head.phase,
        if head.resume { "y" } else { "n" }
    );
    let (action, response, end) = if !check(tables, b, phase, param, facts) {
        ("proceed", None, Step::Next)
    } else {
        match &b.decision {
            Decision::Rewrite(r) => (
                "rewrite",
                Some(r),
                Step::Done(FilterDecision::Rewrite(r.clone())),
            ),
            Decision::Disconnect(r) => (
                "disconnect",
                Some(r),
                Step::Done(FilterDecision::Disconnect(r.clone())),
            ),
            Decision::Reject(r) => (
                "reject",
                Some(r),
                Step::Done(FilterDecision::Reject(r.clone())),
            ),
            Decision::Junk => ("junk", None, Step::Done(FilterDecision::Junk)),
            // A bypass ends the chain but decides nothing: the command proceeds.
            Decision::Bypass => ("bypass", None, Step::Done(FilterDecision::Proceed)),
            Decision::Report(r) => {
                // sic: no comma before "response", as OpenSMTPD prints it.
                trace.line(format_args!(
                    "{}, action=report, filter={}, query={} response={}",
                    head, fname, param, r
                ));
                // OpenSMTPD goes on to its proceed line for the same filter.
                trace.line(format_args!(
                    "{}, action=proceed, filter={}, query={}",
                    head, fname, param
                ));
                return Step::Report(r.clone());
            }
        }
    };
    match response {
        Some(r) => trace.line(format_args!(
            "{}, action={}, filter={}, query={}, response={}",
            head, action, fname, param, r
        )),
        None => trace.line(format_args!(
            "{}, action={}, filter={}, query={}",
            head, action, fname, param
        )),
    }
    end
}

/// Runs the builtin chain `name` for one session phase. `param` is what the session passes (the
/// client address at connect, the HELO name, `<addr>` at MAIL/RCPT). `trace_as` is the session
/// id when the `-T filters` lines are wanted; without it none is formatted.
pub fn run(
    conf: &Config,
    tables: &Tables,
    name: &str,
    phase: FilterPhase,
    param: &str,
    facts: &FilterFacts,
    trace_as: Option<u64>,
) -> Outcome {
    let sessid = trace_as.unwrap_or(0);
    let mut out = Outcome {
        decision: FilterDecision::Proceed,
        trace: TraceLines::new(trace_as.is_some()),
        reports: Vec::new(),
    };
    let pname = phase_name(phase);
    let param = query_param(phase, param);
    // OpenSMTPD walks the chain recursively; every step after the first is a "resume".
    let mut resume = false;
    for (fname, b) in members(conf, name)
        .into_iter()
        .filter(|(_, b)| hooks(b, phase))
    {
        let head = TraceHead {
            sessid,
            phase: pname,
            resume,
        };
        resume = true;
        match step(tables, fname, b, phase, param, facts, &head, &mut out.trace) {
            Step::Next => {}
            Step::Report(r) => out.reports.push(r),
            Step::Done(d) => {
                out.decision = d;
                return out;
            }
        }
    }
    out.trace.line(format_args!(
        "{:016x} filters protocol phase={}, resume={}, action=proceed",
        sessid,
        pname,
        if resume { "y" } else { "n" }
    ));
    out
}

/// The phase name in traces.
pub fn phase_name(phase: FilterPhase) -> &'static str {
    phase_of(phase).1
}

/// filter_protocol(): MAIL FROM and RCPT TO are matched and queried without their brackets.
pub fn query_param(phase: FilterPhase, param: &str) -> &str {
    match phase {
        FilterPhase::MailFrom | FilterPhase::RcptTo => strip_brackets(param),
        _ => param,
    }
}

/// A MAIL FROM or RCPT TO parameter without its brackets, as filters and their tables see it.
pub fn strip_brackets(param: &str) -> &str {
    param
        .strip_prefix('<')
        .map(|s| s.split('>').next().unwrap_or(s))
        .unwrap_or(param)
}

/// `filter_builtins_*`: whether the filter's check holds (negation applied).
fn check(
    tables: &Tables,
    b: &BuiltinFilter,
    phase: FilterPhase,
    param: &str,
    f: &FilterFacts,
) -> bool {
    use FilterCheck::*;
    // A failed lookup counts as no match, as `table_match() > 0` does.
    let yes = |m: crate::routing::lookup::Match| m.unwrap_or(false);
    let raw = match &b.check {
        Fcrdns => f.fcrdns,
        // "<unknown>", or a name that is really an address, is no reverse name.
        Rdns => f.rdns != "<unknown>" && crate::routing::lookup::text_to_netaddr(f.rdns).is_none(),
        RdnsTable(t) => yes(tables.match_domain(t, f.rdns)),
        RdnsRegex(t) => yes(tables.match_regex(t, f.rdns)),
        SrcTable(t) => match f.src {
            Some(s) => yes(tables.match_netaddr(t, s)),
            None => false,
        },
        SrcRegex(t) => yes(tables.match_regex(t, &f.src.map(|s| s.to_text()).unwrap_or_default())),
        HeloTable(t) => f.helo.is_some_and(|h| yes(tables.match_domain(t, h))),
        HeloRegex(t) => f.helo.is_some_and(|h| yes(tables.match_regex(t, h))),
        Auth => f.username.is_some(),
        AuthTable(t) => f.username.is_some_and(|u| {
            yes(tables.match_string(t, u))
                || matches!(
                    tables.credentials(t, u),
                    crate::routing::lookup::Lookup::Found(_)
                )
        }),
        AuthRegex(t) => f.username.is_some_and(|u| yes(tables.match_regex(t, u))),
        MailFromTable(t) => f
            .mail_from
            .is_some_and(|m| yes(tables.match_mailaddr_text(t, m))),
        MailFromRegex(t) => f.mail_from.is_some_and(|m| yes(tables.match_regex(t, m))),
        // Only the rcpt-to phase looks at the recipient.
        RcptToTable(t) => phase == FilterPhase::RcptTo && yes(tables.match_mailaddr_text(t, param)),
        RcptToRegex(t) => phase == FilterPhase::RcptTo && yes(tables.match_regex(t, param)),
    };
    raw != b.negate
}

/// OpenSMTPD's `enum filter_phase` index of a builtin filter's hook.
fn phase_index(p: Phase) -> u32 {
    match p {
        Phase::Connect | Phase::Auth => 0,
        Phase::Helo => 1,
        Phase::Ehlo => 2,
        Phase::MailFrom => 5,
        Phase::RcptTo => 6,
        Phase::Data => 7,
        Phase::Commit => 14,
    }
}

/// The `filters init ...` trace lines OpenSMTPD prints at start: single filters, then chains,
/// each in name order (its dictionary's order).
pub fn init_trace(conf: &Config) -> Vec<String> {
    let mut filters: Vec<&rsmtpd_config::Filter> = conf.filters.iter().collect();
    filters.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = Vec::new();
    for f in &filters {
        match &f.kind {
            FilterKind::Builtin(b) => out.push(format!(
                "filters init type=builtin, name={}, hooks={:08x}",
                f.name,
                1u32 << phase_index(b.phase)
            )),
            FilterKind::Proc(p) => out.push(format!(
                "filters init type=proc, name={}, proc={}",
                f.name, p
            )),
            FilterKind::Chain(_) => {}
        }
    }
    for f in &filters {
        if let FilterKind::Chain(list) = &f.kind {
            out.push(format!(
                "filters init type=chain, name={} {{ {} }}",
                f.name,
                list.join(", ")
            ));
        }
    }
    out
}
