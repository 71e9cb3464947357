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
//! Known differences: OpenSMTPD finds duplicate nodes with a red-black tree whose order it
//! corrupts by changing `realuser` after insertion; we compare with every node, which can
//! discard a duplicate OpenSMTPD would keep. SRS decoding of recipients is not done here.

use std::collections::VecDeque;

use rsmtpd_config::model::{Action, LocalDelivery, LocalMethod, Method};
use rsmtpd_config::Config;
use rsmtpd_protocol::address::Mailaddr;

use crate::routing::alias::{fparseln, parse_alias_value, parse_alias_value_partial, Item, Kind};
use crate::routing::forward::{ForwardFile, Forwards, MAX_FORWARD_SIZE};
use crate::routing::lookup::{Lookup, Tables, UserInfo};
use crate::routing::rule::{match_rule, RuleEnvelope, RuleMatch};
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
    /// so this stays false for alias and forward targets (only SRS would set it).
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

impl<'a, 'c> Session<'a, 'c> {
    fn run(&mut self) -> Result<(), ExpandError> {
        while let Some(i) = self.queue.pop_front() {
            self.expand_node(i)?;
        }
        Ok(())
    }

    fn action(&self, rule: usize) -> Option<(usize, &'c Action)> {
        let conf = self.cx.conf;
        let name = conf.rules.get(rule)?.action.as_deref()?;
        let idx = conf.actions.iter().position(|a| a.name == name)?;
        Some((idx, &conf.actions[idx]))
    }

    fn local(&self, rule: usize) -> Option<&'c LocalDelivery> {
        match &self.action(rule)?.1.method {
            Method::Local(l) => Some(l),
            Method::Relay(_) => None,
        }
    }

    fn info(&self, item: &Item, parent: Option<usize>, rule: Option<usize>) -> String {
        let mut s = format!("{}:{}", item.kind.name(), item.value_text());
        s.push_str(&format!(
            "[parent={}, rule={}",
            parent.map_or("(nil)".to_string(), node_ptr),
            rule.map_or("(nil)".to_string(), rule_ptr)
        ));
        if let Some(r) = rule {
            let d = self.action(r).map_or(0, |(i, _)| i);
            s.push_str(&format!(", dispatcher={}", dispatcher_ptr(d)));
        }
        s.push(']');
        s
    }

    /// `expand_insert()` into the session's tree.
    fn insert(&mut self, item: Item) -> bool {
        let parent = self.cur_parent;
        let rule = self.cur_rule;
        let info = self.info(&item, parent, rule);
        self.trace.line(format_args!(
            "expand: {:#x}: expand_insert() called for {}",
            EXPAND_ID, info
        ));
        let mut sameuser = false;
        if item.kind == Kind::Username {
            if let Some(p) = parent {
                let pn = &self.nodes[p];
                if pn.item.kind == Kind::Username && pn.item.text == item.text {
                    self.trace.line(format_args!(
                        "expand: {:#x}: setting sameuser = 1",
                        EXPAND_ID
                    ));
                    sameuser = true;
                }
            }
        }
        let candidate = Node {
            item,
            sameuser,
            realuser: false,
            forwarded: false,
            rule,
            parent,
            depth: parent.map_or(0, |p| self.nodes[p].depth + 1),
            subaddress: String::new(),
            userinfo: None,
        };
        if self.nodes.iter().any(|n| self.same(n, &candidate)) {
            self.trace.line(format_args!(
                "expand: {:#x}: node found, discarding",
                EXPAND_ID
            ));
            return false;
        }
        let idx = self.nodes.len();
        self.nodes.push(candidate);
        self.queue.push_back(idx);
        self.trace.line(format_args!(
            "expand: {:#x}: inserted node {}",
            EXPAND_ID,
            node_ptr(idx)
        ));
        true
    }

    fn ancestor(&self, mut p: Option<usize>, kind: Kind) -> Option<usize> {
        while let Some(i) = p {
            if self.nodes[i].item.kind == kind {
                return Some(i);
            }
            p = self.nodes[i].parent;
        }
        None
    }

    /// `expand_cmp() == 0`.
    fn same(&self, a: &Node, b: &Node) -> bool {
        if a.item.kind != b.item.kind
            || a.sameuser != b.sameuser
            || a.realuser != b.realuser
            || a.item != b.item
        {
            return false;
        }
        if a.parent == b.parent {
            return true;
        }
        if a.parent.is_none() || b.parent.is_none() {
            return false;
        }
        // The same node may be expanded for different destinations: compare those.
        if self.ancestor(a.parent, Kind::Address) != self.ancestor(b.parent, Kind::Address) {
            return false;
        }
        if !matches!(a.item.kind, Kind::Filename | Kind::Filter) {
            return true;
        }
        self.ancestor(a.parent, Kind::Username) == self.ancestor(b.parent, Kind::Username)
    }

    fn expand_node(&mut self, i: usize) -> Result<(), ExpandError> {
        let depth = self.nodes[i].depth;
        if depth >= EXPAND_DEPTH {
            self.trace
                .line(format_args!("expand: lka_expand: node too deep."));
            return Err(ExpandError::perm(Some(PERM_EXPANSION)));
        }
        match self.nodes[i].item.kind {
            Kind::Address => self.expand_address(i),
            Kind::Username => self.expand_username(i),
            Kind::Filename | Kind::Filter | Kind::Error => self.expand_leaf(i),
            // Includes are resolved when the alias value is merged; never queued.
            Kind::Include => Ok(()),
        }
    }

    fn expand_address(&mut self, i: usize) -> Result<(), ExpandError> {
        let (user, domain) = self.nodes[i].item.addr.clone();
        self.trace.line(format_args!(
            "expand: lka_expand: address: {}@{} [depth={}]",
            user, domain, self.nodes[i].depth
        ));
        let mut env = self.base.clone();
        env.dest = Mailaddr::new(user.clone(), domain.clone());
        env.internal = self.nodes[i].parent.is_some();
        let m = match_rule(self.cx.conf, self.cx.tables, &env, &mut self.trace);
        let rule = match m {
            RuleMatch::Matched { index, rule } if rule.action.is_some() => index,
            RuleMatch::TempFail => return Err(ExpandError::temp(None)),
            _ => return Err(ExpandError::perm(None)),
        };
        let Some((_, action)) = self.action(rule) else {
            return Err(ExpandError::temp(None));
        };
        match &action.method {
            Method::Relay(_) => {
                self.submit(rule, i);
                Ok(())
            }
            Method::Local(l) if l.virtual_.is_some() => {
                self.cur_rule = Some(rule);
                self.cur_parent = Some(i);
                let table = l.virtual_.as_deref().unwrap_or_default();
                let addr = Mailaddr::new(user.to_ascii_lowercase(), domain);
                match self.virtual_get(table, &addr) {
                    Lookup::Found(n) if n > 0 => Ok(()),
                    Lookup::TempFail => {
                        self.trace.line(format_args!(
                            "expand: lka_expand: error in virtual alias lookup"
                        ));
                        Err(ExpandError::temp(Some(TEMP_EXPANSION)))
                    }
                    _ => {
                        self.trace
                            .line(format_args!("expand: lka_expand: no aliases for virtual"));
                        Err(ExpandError::perm(Some(PERM_EXPANSION)))
                    }
                }
            }
            Method::Local(_) => {
                self.cur_rule = Some(rule);
                self.cur_parent = Some(i);
                self.nodes[i].rule = Some(rule);
                self.insert(Item {
                    kind: Kind::Username,
                    text: user.to_ascii_lowercase(),
                    addr: Default::default(),
                });
                Ok(())
            }
        }
    }

    fn expand_username(&mut self, i: usize) -> Result<(), ExpandError> {
        let n = &self.nodes[i];
        self.trace.line(format_args!(
            "expand: lka_expand: username: {} [depth={}, sameuser={}]",
            n.item.text,
            n.depth,
            u8::from(n.sameuser)
        ));
        let Some(rule) = n.rule else {
            return Err(ExpandError::temp(None));
        };
        let Some(local) = self.local(rule) else {
            return Err(ExpandError::temp(None));
        };
        self.cur_rule = Some(rule);
        self.cur_parent = Some(i);

        if !self.nodes[i].sameuser && (local.alias.is_some() || local.virtual_.is_some()) {
            let user = self.nodes[i].item.text.clone();
            let mut r = Lookup::NotFound;
            if let Some(t) = &local.alias {
                r = self.aliases_get(t, &user);
            }
            if let Some(t) = &local.virtual_ {
                // The username node read as a mailaddr: the user with an empty domain.
                r = self.virtual_get(t, &Mailaddr::new(user, ""));
            }
            match r {
                Lookup::TempFail => {
                    self.trace
                        .line(format_args!("expand: lka_expand: error in alias lookup"));
                    return Err(ExpandError::temp(Some(TEMP_EXPANSION)));
                }
                Lookup::Found(n) if n > 0 => return Ok(()),
                _ => {}
            }
        }

        // gilles+hackers@ -> gilles@
        let delim = self.cx.tables.delim();
        if let Some(p) = self.nodes[i].item.text.find(delim) {
            let tag = self.nodes[i].item.text[p + delim.len_utf8()..].to_string();
            self.nodes[i].item.text.truncate(p);
            self.nodes[i].subaddress = tag;
        }
        let user = self.nodes[i].item.text.clone();
        let info = match self.cx.tables.userinfo(local.userbase(), &user) {
            Lookup::Found(u) => u,
            Lookup::TempFail => {
                self.trace.line(format_args!(
                    "expand: lka_expand: backend error while searching user"
                ));
                return Err(ExpandError::temp(None));
            }
            Lookup::NotFound => {
                self.trace.line(format_args!(
                    "expand: lka_expand: user-part does not match system user"
                ));
                return Err(ExpandError::perm(None));
            }
        };
        self.nodes[i].realuser = true;
        self.nodes[i].userinfo = Some(info.clone());

        let parent_forwarded = self.nodes[i]
            .parent
            .is_some_and(|p| self.nodes[p].forwarded);
        if self.nodes[i].sameuser && parent_forwarded {
            self.trace
                .line(format_args!("expand: lka_expand: same user, submitting"));
            self.submit(rule, i);
            return Ok(());
        }

        self.nodes[i].forwarded = true;
        let forward_only = matches!(local.method, LocalMethod::ForwardOnly);
        let expand_only = matches!(local.method, LocalMethod::ExpandOnly);
        let name = &info.username;
        let no_forward = |s: &mut Self, what: &str| -> Result<(), ExpandError> {
            if forward_only {
                s.trace.line(format_args!(
                    "expand: {} .forward for user {} on forward-only rule",
                    what, name
                ));
                Err(ExpandError::temp(Some(TEMP_EXPANSION)))
            } else if expand_only {
                s.trace.line(format_args!(
                    "expand: {} .forward for user {} and no default action on rule",
                    what, name
                ));
                Err(ExpandError::perm(Some(PERM_EXPANSION)))
            } else {
                s.trace.line(format_args!(
                    "expand: {} .forward for user {}, just deliver",
                    what, name
                ));
                s.submit(rule, i);
                Ok(())
            }
        };
        match self.cx.forwards.forward(&info) {
            ForwardFile::Missing => no_forward(self, "no"),
            ForwardFile::PermFail => {
                self.trace
                    .line(format_args!("expand: ~/.forward failed for user {}", name));
                Err(ExpandError::perm(Some(PERM_EXPANSION)))
            }
            ForwardFile::TempFail => Err(ExpandError::temp(Some(TEMP_EXPANSION))),
            ForwardFile::Content(data) => {
                self.cur_rule = Some(rule);
                self.cur_parent = Some(i);
                match self.forwards_get(&data) {
                    None => {
                        self.trace.line(format_args!(
                            "expand: temporary forward error for user {}",
                            name
                        ));
                        Err(ExpandError::temp(Some(TEMP_EXPANSION)))
                    }
                    Some(false) => no_forward(self, "empty"),
                    Some(true) => Ok(()),
                }
            }
        }
    }

    /// `forwards_get()`: Some(true) when nodes were added, Some(false) when none, None on error.
    fn forwards_get(&mut self, data: &[u8]) -> Option<bool> {
        if data.is_empty() {
            self.infos.push("info: forward file is empty".into());
            return Some(false);
        }
        if data.len() >= MAX_FORWARD_SIZE {
            self.infos
                .push("info: forward file exceeds max size".into());
            return None;
        }
        let save = self.nodes.len();
        for line in fparseln(data, b'\\', b'\\', Some(b'#')) {
            let Some(items) = parse_alias_value(&line) else {
                self.infos.push("info: parse error in forward file".into());
                return None;
            };
            for it in items {
                if it.kind != Kind::Include {
                    self.insert(it);
                }
            }
            if self.nodes.len() > MAX_EXPAND_NODES {
                self.infos
                    .push("info: forward file expanded too many nodes".into());
                return None;
            }
        }
        Some(self.nodes.len() > save)
    }

    fn expand_leaf(&mut self, i: usize) -> Result<(), ExpandError> {
        let Some(rule) = self.nodes[i].rule else {
            return Err(ExpandError::temp(None));
        };
        let forward_only = self
            .local(rule)
            .is_some_and(|l| matches!(l.method, LocalMethod::ForwardOnly));
        let kind = self.nodes[i].item.kind;
        if forward_only {
            self.trace.line(format_args!(
                "expand: {} matched on forward-only rule",
                kind.name()
            ));
            return Err(ExpandError::temp(None));
        }
        let text = self.nodes[i].item.text.clone();
        self.trace.line(format_args!(
            "expand: lka_expand: {}: {} [depth={}]",
            kind.name(),
            text,
            self.nodes[i].depth
        ));
        if kind == Kind::Error {
            return Err(if text.starts_with('4') {
                ExpandError::temp(Some(&text))
            } else {
                ExpandError::perm(Some(&text))
            });
        }
        self.submit(rule, i);
        Ok(())
    }

    /// `lka_submit()`.
    fn submit(&mut self, rule: usize, i: usize) {
        let Some((_, action)) = self.action(rule) else {
            return;
        };
        let node = &self.nodes[i];
        let mut d = Delivery {
            action: action.name.clone(),
            kind: DeliveryType::Mda,
            rcpt: self.rcpt.clone(),
            dest: Mailaddr::default(),
            mda_user: None,
            subaddress: String::new(),
            user: None,
            target: Target::Action,
            internal: false,
        };
        match &action.method {
            Method::Relay(_) => {
                d.kind = DeliveryType::Mta;
                d.target = Target::Relay;
                d.dest = Mailaddr::new(node.item.addr.0.clone(), node.item.addr.1.clone());
            }
            Method::Local(_) => {
                if let Some(a) = self.ancestor(Some(i), Kind::Address) {
                    let (u, dom) = &self.nodes[a].item.addr;
                    d.dest = Mailaddr::new(u.clone(), dom.clone());
                }
                match node.item.kind {
                    Kind::Username => {
                        d.mda_user = Some(node.item.text.clone());
                        d.subaddress = node.subaddress.clone();
                        d.user = node.userinfo.clone();
                    }
                    kind => {
                        let parent = node.parent.map(|p| &self.nodes[p]);
                        match parent.filter(|p| p.realuser) {
                            Some(p) => {
                                d.mda_user = Some(p.item.text.clone());
                                d.user = p.userinfo.clone();
                            }
                            None => {
                                d.mda_user = Some(self.cx.smtpd_user.to_string());
                                if kind == Kind::Filter {
                                    self.warnings.push(format!(
                                        "commands executed from aliases run with {} privileges",
                                        self.cx.smtpd_user
                                    ));
                                }
                            }
                        }
                        d.target = if kind == Kind::Filename {
                            Target::File(node.item.text.clone())
                        } else {
                            Target::Pipe(node.item.text.clone())
                        };
                    }
                }
            }
        }
        self.deliveries.push(d);
    }

    /// A `K_ALIAS` lookup parsed into its own little tree, as `table_parse_lookup()` does:
    /// deduplicated and ordered by (type, value), with its own trace lines.
    fn alias_lookup(&mut self, table: &str, key: &str) -> Lookup<Vec<Item>> {
        let value = match self.cx.tables.alias(table, key) {
            Lookup::Found(v) => v,
            Lookup::NotFound => return Lookup::NotFound,
            Lookup::TempFail => return Lookup::TempFail,
        };
        let Some(items) = parse_alias_value(&value) else {
            return Lookup::TempFail;
        };
        let mut tree: Vec<Item> = Vec::new();
        for (n, it) in items.into_iter().enumerate() {
            self.trace.line(format_args!(
                "expand: {:#x}: expand_insert() called for {}:{}[parent=(nil), rule=(nil)]",
                SUBTREE_ID,
                it.kind.name(),
                it.value_text()
            ));
            if tree.contains(&it) {
                self.trace.line(format_args!(
                    "expand: {:#x}: node found, discarding",
                    SUBTREE_ID
                ));
                continue;
            }
            self.trace.line(format_args!(
                "expand: {:#x}: inserted node {:#x}",
                SUBTREE_ID,
                0x5600_0030_0000u64 + 0x60 * n as u64
            ));
            tree.push(it);
        }
        tree.sort();
        Lookup::Found(tree)
    }

    /// Merges a looked-up value into the session's tree; includes are read here.
    fn merge(&mut self, items: Vec<Item>) -> usize {
        let mut n = 0;
        for it in items {
            if it.kind == Kind::Include {
                n += self.include(&it.text);
            } else {
                self.insert(it);
                n += 1;
            }
        }
        self.trace.line(format_args!(
            "expand: {:#x}: clearing expand tree",
            SUBTREE_ID
        ));
        self.trace.line(format_args!(
            "expand: {:#x}: freeing expand tree",
            SUBTREE_ID
        ));
        n
    }

    /// `aliases_expand_include()`: 1 if the file could be read, whatever it held.
    fn include(&mut self, path: &str) -> usize {
        let Some(data) = self.cx.forwards.include(path) else {
            return 0;
        };
        // fparseln with { '\\', '#', '\0' }: '#' continues a line, and there is no comment
        // character, as in OpenSMTPD.
        for line in fparseln(&data, b'\\', b'#', None) {
            // expand_line() inserts what precedes a bad item, and the failure is ignored.
            if let Some(items) = parse_alias_value_partial(&line) {
                for it in items {
                    if it.kind != Kind::Include {
                        self.insert(it);
                    }
                }
            }
        }
        1
    }

    /// `aliases_get()`.
    fn aliases_get(&mut self, table: &str, user: &str) -> Lookup<usize> {
        let mut key = user.to_ascii_lowercase();
        let delim = self.cx.tables.delim();
        if let Some(p) = key.find(delim) {
            match self.alias_lookup(table, &key) {
                Lookup::TempFail => return Lookup::TempFail,
                Lookup::Found(items) => return Lookup::Found(self.merge_alias(items)),
                Lookup::NotFound => key.truncate(p),
            }
        }
        match self.alias_lookup(table, &key) {
            Lookup::Found(items) => Lookup::Found(self.merge_alias(items)),
            Lookup::NotFound => Lookup::NotFound,
            Lookup::TempFail => Lookup::TempFail,
        }
    }

    /// Merges what an alias lookup found, with aliases_get()'s `-v` line.
    fn merge_alias(&mut self, items: Vec<Item>) -> usize {
        let n = self.merge(items);
        crate::sys::log::debug(&format!("debug: aliases_get: returned {n} aliases"));
        n
    }

    /// `aliases_virtual_get()`: `user+tag@domain`, `user@domain`, `user+tag`, `user`, then (with
    /// a domain) `@domain` and `@`.
    fn virtual_get(&mut self, table: &str, addr: &Mailaddr) -> Lookup<usize> {
        let delim = self.cx.tables.delim();
        let mut user = addr.user.to_ascii_lowercase();
        let domain = addr.domain.to_ascii_lowercase();
        let mut tag = String::new();
        if let Some(p) = user.find(delim) {
            tag = user[p + delim.len_utf8()..].to_string();
            user.truncate(p);
        }
        let mut keys = Vec::new();
        if !tag.is_empty() {
            keys.push(format!("{}{}{}@{}", user, delim, tag, domain));
        }
        keys.push(format!("{}@{}", user, domain));
        if !tag.is_empty() {
            keys.push(format!("{}{}{}", user, delim, tag));
        }
        keys.push(user.clone());
        if !domain.is_empty() {
            keys.push(format!("@{}", domain));
            keys.push("@".to_string());
        }
        // aliases_virtual_get() logs the key in its buffer: the one that matched, except for
        // the global catch-all, looked up as a literal "@" after "@domain" was formatted.
        let mut shown = String::new();
        for k in keys {
            if k != "@" {
                shown.clone_from(&k);
            }
            match self.alias_lookup(table, &k) {
                Lookup::Found(items) => {
                    let n = self.merge(items);
                    crate::sys::log::debug(&format!(
                        "debug: aliases_virtual_get: '{shown}' resolved to {n} nodes"
                    ));
                    return Lookup::Found(n);
                }
                Lookup::TempFail => return Lookup::TempFail,
                Lookup::NotFound => {}
            }
        }
        Lookup::Found(0)
    }
}
