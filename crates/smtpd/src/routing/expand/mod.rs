//! Recipient expansion at RCPT time: OpenSMTPD's `lka_session.c`, `expand.c`, `aliases.c`,
//! `forward.c`, as one pure function.
//!
//! The RCPT becomes an *address* node; nodes are expanded in FIFO order. An address goes
//! through the ruleset (so alias targets are routed like any recipient, flagged internal); a
//! relay action makes an mta delivery, a local one a *username* node (or a virtual lookup). A
//! username is replaced by its aliases, else checked against the userbase and its `~/.forward`
//! read. Aliases and forwards produce usernames, addresses, `/files`, `|commands`, `:include:`s
//! and `error:` nodes. Depth 10 or an empty result is `524 5.2.4`.
//!
//! The only I/O, `~/.forward` and `:include:` files, goes through [`Forwards`].
//!
//! Here the results, errors and [`expand`]; `walk.rs` the walk over the nodes (dedup, rules,
//! addresses, usernames, leaves); `sources.rs` where a username's nodes come from (alias and
//! virtual tables, `:include:`, `~/.forward`).
//!
//! Known differences: OpenSMTPD finds duplicate nodes with a red-black tree whose order it
//! corrupts by changing `realuser` after insertion; we compare with every node, which can
//! discard a duplicate OpenSMTPD would keep.

mod sources;
mod walk;

use std::collections::VecDeque;

use rsmtpd_config::Config;
use rsmtpd_protocol::address::Mailaddr;

use crate::routing::alias::{Item, Kind};
use crate::routing::forward::Forwards;
use crate::routing::lookup::{Tables, UserInfo};
use crate::routing::rule::RuleEnvelope;
use crate::sys::log::TraceLines;

/// `EXPAND_DEPTH`.
pub const EXPAND_DEPTH: u32 = 10;
/// forward.c's `MAX_EXPAND_NODES`.
pub const MAX_EXPAND_NODES: usize = 100;

const PERM_EXPANSION: &str = "524 5.2.4 Mailing list expansion problem";
const TEMP_EXPANSION: &str = "424 4.2.4 Mailing list expansion problem";

/// Whether an envelope goes to a local delivery agent or to the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryType {
    Mda,
    Mta,
}

/// How an mda envelope delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Relay (mta envelope).
    Relay,
    /// The action's own method (maildir, mbox, lmtp, mda) for `mda_user`.
    Action,
    /// Append to this file (`mail.mboxfile -f %{mbox.from} PATH`), from an alias or .forward.
    File(String),
    /// Pipe to this command (`/bin/sh -c`), from an alias or .forward.
    Pipe(String),
}

/// One envelope to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The action (OpenSMTPD's dispatcher) name.
    pub action: String,
    pub kind: DeliveryType,
    /// The original RCPT.
    pub rcpt: Mailaddr,
    /// Where it goes: for mda, the nearest address up the expansion; for mta, the address.
    pub dest: Mailaddr,
    /// `mda-user` (mda only): the user the delivery runs as.
    pub mda_user: Option<String>,
    /// `mda-subaddress`: the `+tag` of the username, if any.
    pub subaddress: String,
    /// The userbase entry behind `mda_user`, when one was looked up (not for the smtpd user).
    pub user: Option<UserInfo>,
    pub target: Target,
    /// `EF_INTERNAL` on the stored envelope: OpenSMTPD submits copies of the session's envelope,
    /// so this stays false for alias and forward targets; a decoded SRS recipient sets it.
    pub internal: bool,
}

impl Delivery {
    /// `mda-exec` as OpenSMTPD stores it for file and pipe targets.
    pub fn mda_exec(&self, libexec: &str) -> Option<String> {
        match &self.target {
            Target::File(p) => Some(format!("{}/mail.mboxfile -f %{{mbox.from}} {}", libexec, p)),
            Target::Pipe(c) => Some(c.clone()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    Temporary,
    Permanent,
}

/// Why a recipient is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    pub kind: FailKind,
    /// The reply as expansion set it (`524 5.2.4 ...`, an `error:` node's text), if any.
    pub message: Option<String>,
}

impl ExpandError {
    /// The reply the session sends, before `: <rcpt>` (see `RecipientResult::Refused`).
    pub fn reply_line(&self) -> String {
        match (&self.message, self.kind) {
            (Some(m), _) => m.clone(),
            (None, FailKind::Permanent) => "550 Invalid recipient".to_string(),
            (None, FailKind::Temporary) => "451 Temporary failure".to_string(),
        }
    }

    fn perm(message: Option<&str>) -> ExpandError {
        ExpandError {
            kind: FailKind::Permanent,
            message: message.map(str::to_string),
        }
    }

    fn temp(message: Option<&str>) -> ExpandError {
        ExpandError {
            kind: FailKind::Temporary,
            message: message.map(str::to_string),
        }
    }
}

/// What [`expand`] needs beside the recipient.
pub struct ExpandContext<'a> {
    pub conf: &'a Config,
    pub tables: &'a Tables,
    pub forwards: &'a dyn Forwards,
    /// The unprivileged user files and commands from system aliases run as (`_smtpd` upstream,
    /// `opensmtpd` in Debian's build).
    pub smtpd_user: &'a str,
    /// Whether the trace lines will be logged (`-T expand` or `-T rules`); off, none is built.
    pub trace: bool,
    /// The time (seconds since the epoch), for the age of SRS addresses.
    pub now: i64,
}

/// The result, with the `-T expand`/`-T rules` trace lines and warnings to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    pub result: Result<Vec<Delivery>, ExpandError>,
    /// `expand: ...` and rule lines, in OpenSMTPD's order (pointer values are made up).
    pub trace: Vec<String>,
    /// `log_warnx` lines (`commands executed from aliases run with ... privileges`).
    pub warnings: Vec<String>,
    /// `log_info` lines (forward.c: `info: forward file is empty`, `parse error in forward
    /// file`...).
    pub infos: Vec<String>,
}

#[derive(Debug, Clone)]
struct Node {
    item: Item,
    sameuser: bool,
    realuser: bool,
    forwarded: bool,
    rule: Option<usize>,
    parent: Option<usize>,
    depth: u32,
    subaddress: String,
    userinfo: Option<UserInfo>,
}

/// Made-up pointers for the trace: stable within one expansion, distinct per object.
const EXPAND_ID: u64 = 0x5600_0000_1000;
const SUBTREE_ID: u64 = 0x5600_0000_2000;
fn node_ptr(i: usize) -> String {
    format!("{:#x}", 0x5600_0010_0000u64 + 0x60 * i as u64)
}
fn rule_ptr(i: usize) -> String {
    format!("{:#x}", 0x5600_0020_0000u64 + 0x100 * i as u64)
}
fn dispatcher_ptr(i: usize) -> String {
    format!("{:#x}", 0x5600_0020_0080u64 + 0x100 * i as u64)
}

struct Session<'a, 'c> {
    cx: &'a ExpandContext<'c>,
    base: RuleEnvelope,
    rcpt: Mailaddr,
    nodes: Vec<Node>,
    queue: VecDeque<usize>,
    /// expand->rule and expand->parent for the next inserts.
    cur_rule: Option<usize>,
    cur_parent: Option<usize>,
    deliveries: Vec<Delivery>,
    trace: TraceLines,
    warnings: Vec<String>,
    infos: Vec<String>,
}

/// Expands a recipient. `env` carries the session's facts (source, helo, tag, auth, sender);
/// its `dest` and `internal` are ignored: the RCPT is `rcpt` (after default domain completion).
pub fn expand(cx: &ExpandContext<'_>, env: &RuleEnvelope, rcpt: &Mailaddr) -> Expansion {
    let mut s = Session {
        cx,
        base: env.clone(),
        rcpt: rcpt.clone(),
        nodes: Vec::new(),
        queue: VecDeque::new(),
        cur_rule: None,
        cur_parent: None,
        deliveries: Vec::new(),
        trace: TraceLines::new(cx.trace),
        warnings: Vec::new(),
        infos: Vec::new(),
    };
    s.base.internal = false;
    let start = Item {
        kind: Kind::Address,
        text: String::new(),
        addr: (rcpt.user.clone(), rcpt.domain.clone()),
    };
    s.insert(start);
    let mut result = s.run();
    if result.is_ok() && s.deliveries.is_empty() {
        s.trace.line(format_args!(
            "expand: lka_done: expanded to empty delivery list"
        ));
        result = Err(ExpandError::perm(Some(PERM_EXPANSION)));
    }
    s.trace.line(format_args!(
        "expand: {:#x}: clearing expand tree",
        EXPAND_ID
    ));
    let deliveries = std::mem::take(&mut s.deliveries);
    Expansion {
        result: result.map(|()| deliveries),
        trace: s.trace.lines,
        warnings: s.warnings,
        infos: s.infos,
    }
}
