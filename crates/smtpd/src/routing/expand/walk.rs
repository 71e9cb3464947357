//! The expansion walk: nodes taken in FIFO order, deduplicated, routed through the ruleset and
//! expanded by kind (address, username, leaf) into deliveries.

use rsmtpd_config::model::{Action, LocalDelivery, LocalMethod, Method};
use rsmtpd_protocol::address::Mailaddr;

use crate::routing::alias::{Item, Kind};
use crate::routing::forward::ForwardFile;
use crate::routing::lookup::Lookup;
use crate::routing::rule::{match_rule, RuleEnvelope, RuleMatch};

use super::{
    dispatcher_ptr, node_ptr, rule_ptr, Delivery, DeliveryType, ExpandError, Node, Session, Target,
    EXPAND_DEPTH, EXPAND_ID, PERM_EXPANSION, TEMP_EXPANSION,
};

/// What log_warn appends to `SRS failed to decode`: srs_decode sets no errno, so 6.8 prints
/// the one an earlier call of its lookup process left, EAFNOSUPPORT on the real program
/// (Debian's 6.8.0p2, recorded in tests/fixtures/relay/srs.txt).
const SRS_ERRNO: &str = "Address family not supported by protocol";

impl<'a, 'c> Session<'a, 'c> {
    pub(super) fn run(&mut self) -> Result<(), ExpandError> {
        while let Some(i) = self.queue.pop_front() {
            self.expand_node(i)?;
        }
        Ok(())
    }

    pub(super) fn action(&self, rule: usize) -> Option<(usize, &'c Action)> {
        let conf = self.cx.conf;
        let name = conf.rules.get(rule)?.action.as_deref()?;
        let idx = conf.actions.iter().position(|a| a.name == name)?;
        Some((idx, &conf.actions[idx]))
    }

    pub(super) fn local(&self, rule: usize) -> Option<&'c LocalDelivery> {
        match &self.action(rule)?.1.method {
            Method::Local(l) => Some(l),
            Method::Relay(_) => None,
        }
    }

    pub(super) fn info(&self, item: &Item, parent: Option<usize>, rule: Option<usize>) -> String {
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
    pub(super) fn insert(&mut self, item: Item) -> bool {
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

    pub(super) fn ancestor(&self, mut p: Option<usize>, kind: Kind) -> Option<usize> {
        while let Some(i) = p {
            if self.nodes[i].item.kind == kind {
                return Some(i);
            }
            p = self.nodes[i].parent;
        }
        None
    }

    /// `expand_cmp() == 0`.
    pub(super) fn same(&self, a: &Node, b: &Node) -> bool {
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

    pub(super) fn expand_node(&mut self, i: usize) -> Result<(), ExpandError> {
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

    pub(super) fn expand_address(&mut self, i: usize) -> Result<(), ExpandError> {
        let (user, domain) = self.nodes[i].item.addr.clone();
        self.trace.line(format_args!(
            "expand: lka_expand: address: {}@{} [depth={}]",
            user, domain, self.nodes[i].depth
        ));
        let mut env = self.base.clone();
        env.dest = Mailaddr::new(user.clone(), domain.clone());
        env.internal = self.base.internal || self.nodes[i].parent.is_some();
        // A bounce to an SRS address of ours: the original sender is the recipient from now
        // on (lka_expand's "handle SRS"). The rule is still matched on the SRS address, as
        // 6.8 does: only what the rule's action does next sees the decoded one.
        let (user, domain) = match self.srs_decode(i, &env) {
            Some(decoded) => {
                env.internal = true;
                decoded
            }
            None => (user, domain),
        };
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

    /// The recipient decoded, when the srs key is set, the sender is empty and the RCPT (as
    /// decoded so far) is an SRS address; the session's envelope takes the decoded RCPT and
    /// the internal flag, the node the decoded address. One that does not decode is logged
    /// and goes on as it is.
    fn srs_decode(&mut self, i: usize, env: &RuleEnvelope) -> Option<(String, String)> {
        let o = &self.cx.conf.options;
        let key = o.srs_key.as_deref()?;
        let user = &self.rcpt.user;
        let is_srs = ["SRS0=", "SRS1="]
            .iter()
            .any(|p| user.get(..5).is_some_and(|h| h.eq_ignore_ascii_case(p)));
        if !env.sender.user.is_empty() || !is_srs {
            return None;
        }
        let text = format!("{}@{}", self.rcpt.user, self.rcpt.domain);
        let keys = crate::routing::srs::Keys {
            key,
            backup: o.srs_key_backup.as_deref(),
            ttl_days: o.srs_ttl_days,
        };
        let decoded = crate::routing::srs::decode(&keys, &text, self.cx.now);
        let Some((u, d)) = decoded
            .as_deref()
            .map(|a| a.rsplit_once('@').unwrap_or((a, "")))
        else {
            self.warnings
                .push(format!("SRS failed to decode: {text}: {SRS_ERRNO}"));
            return None;
        };
        let (u, d) = (u.to_string(), d.to_string());
        self.rcpt = Mailaddr::new(u.clone(), d.clone());
        self.base.internal = true;
        self.nodes[i].item.addr = (u.clone(), d.clone());
        Some((u, d))
    }

    pub(super) fn expand_username(&mut self, i: usize) -> Result<(), ExpandError> {
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

    pub(super) fn expand_leaf(&mut self, i: usize) -> Result<(), ExpandError> {
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
    pub(super) fn submit(&mut self, rule: usize, i: usize) {
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
            internal: self.base.internal,
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
}
