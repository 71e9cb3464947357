//! The canonical dump: a configuration written back as smtpd.conf.
//!
//! Macros are expanded, includes inlined, every name and value quoted, defaults left out, and
//! declarations kept in the order they were made (anonymous tables and inline filter chains are
//! numbered in that order, so parsing the dump gives back the same configuration). Administrators
//! get a normalized view of what the server understood (`smtpd -n -v`); tests get a round trip.

use std::fmt::Write;

use crate::model::*;
use crate::table::{TableKind, TableSource};

/// Quotes a string so that the lexer reads back exactly `s` (see `lexer::next_token`).
///
/// Inside quotes a backslash only escapes the quote, a space or a tab; before anything else it
/// is kept. So backslashes are written as they are, quotes as `\"`, and a space or tab that
/// follows a backslash is escaped so that the backslash before it is not taken for its escape.
/// (A value cannot end with a backslash: no quoted string can produce one.)
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut prev = None;
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            ' ' | '\t' if prev == Some('\\') => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
        prev = Some(c);
    }
    out.push('"');
    out
}

struct Dumper<'c> {
    c: &'c Config,
    out: String,
}

pub fn dump(c: &Config) -> String {
    let mut d = Dumper {
        c,
        out: String::new(),
    };
    d.options();
    for decl in &c.order {
        d.decl(*decl);
    }
    d.out
}

fn delay(secs: u32) -> String {
    quote(&format!("{}s", secs))
}

impl Dumper<'_> {
    fn line(&mut self, s: String) {
        self.out.push_str(&s);
        self.out.push('\n');
    }

    fn options(&mut self) {
        let o = &self.c.options;
        let d = Options::default();
        let mut lines = Vec::new();
        if o.max_message_size != d.max_message_size {
            lines.push(format!("smtp max-message-size {}", o.max_message_size));
        }
        if o.max_rcpt != d.max_rcpt || o.max_mails != d.max_mails {
            lines.push(format!(
                "smtp limit \"max-rcpt\" {} \"max-mails\" {}",
                o.max_rcpt, o.max_mails
            ));
        }
        if o.sub_addr_delim != d.sub_addr_delim {
            lines.push(format!(
                "smtp sub-addr-delim {}",
                quote(&o.sub_addr_delim.to_string())
            ));
        }
        if let Some(c) = &o.ciphers {
            lines.push(format!("smtp ciphers {}", quote(c)));
        }
        if o.queue_compression {
            lines.push("queue compression".into());
        }
        if o.queue_encryption {
            match &o.queue_key {
                Some(k) => lines.push(format!("queue encryption {}", quote(k))),
                None => lines.push("queue encryption".into()),
            }
        }
        if o.queue_ttl != d.queue_ttl {
            lines.push(format!("queue ttl {}", delay(o.queue_ttl)));
        }
        if o.bounce_warn != d.bounce_warn {
            let v: Vec<String> = o.bounce_warn.iter().map(|s| delay(*s)).collect();
            lines.push(format!("bounce warn-interval {}", v.join(", ")));
        }
        if o.mta_max_deferred != d.mta_max_deferred {
            lines.push(format!("mta max-deferred {}", o.mta_max_deferred));
        }
        for l in &o.mta_limits {
            let mut s = String::from("mta limit");
            if let Some(dom) = &l.domain {
                let _ = write!(s, " for domain {}", quote(dom));
            }
            match l.family {
                Some(crate::env::Family::Inet4) => s.push_str(" inet4"),
                Some(crate::env::Family::Inet6) => s.push_str(" inet6"),
                None => {}
            }
            for (k, v) in &l.values {
                let _ = write!(s, " {} {}", quote(k), v);
            }
            lines.push(s);
        }
        for (kw, pairs) in [("mda", &o.mda_limits), ("scheduler", &o.scheduler_limits)] {
            if !pairs.is_empty() {
                let mut s = format!("{} limit", kw);
                for (k, v) in pairs.iter() {
                    let _ = write!(s, " {} {}", quote(k), v);
                }
                lines.push(s);
            }
        }
        if let Some(k) = &o.srs_key {
            lines.push(format!("srs key {}", quote(k)));
        }
        if let Some(k) = &o.srs_key_backup {
            lines.push(format!("srs key backup {}", quote(k)));
        }
        if o.srs_ttl_days != d.srs_ttl_days {
            lines.push(format!("srs ttl \"{}d\"", o.srs_ttl_days));
        }
        if let Some(a) = &o.admd {
            lines.push(format!("admd {}", quote(a)));
        }
        for l in lines {
            self.line(l);
        }
    }

    fn table_body(&self, name: &str) -> String {
        let Some(t) = self.c.table(name) else {
            return "{ }".into();
        };
        let items: Vec<String> = t
            .entries()
            .map(|(k, v)| match (t.kind, v) {
                (TableKind::Hash, Some(v)) => format!("{} = {}", quote(k), quote(v)),
                _ => quote(k),
            })
            .collect();
        format!("{{ {} }}", items.join(", "))
    }

    /// A table where a `tables` argument is expected: anonymous ones inline, others by name.
    fn tref(&self, name: &str) -> String {
        match self.c.table(name) {
            Some(t) if t.anonymous => self.table_body(name),
            _ => format!("<{}>", quote(name)),
        }
    }

    fn filter_ref(&self, name: &str) -> String {
        match self.c.filter(name) {
            Some(Filter {
                kind: FilterKind::Chain(list),
                anonymous: true,
                ..
            }) => {
                let v: Vec<String> = list.iter().map(|f| quote(f)).collect();
                format!("filter {{ {} }}", v.join(", "))
            }
            _ => format!("filter {}", quote(name)),
        }
    }

    fn decl(&mut self, d: Decl) {
        let c = self.c;
        let s = match d {
            Decl::Table(i) => {
                let t = &c.tables[i];
                match &t.source {
                    TableSource::Inline if t.is_empty() => {
                        format!("table {} \"static\"", quote(&t.name))
                    }
                    TableSource::Inline => {
                        format!("table {} {}", quote(&t.name), self.table_body(&t.name))
                    }
                    TableSource::File(p) => {
                        format!("table {} {}", quote(&t.name), quote(&format!("file:{}", p)))
                    }
                    TableSource::Db(p) => {
                        format!("table {} {}", quote(&t.name), quote(&format!("db:{}", p)))
                    }
                    TableSource::Getpwnam => format!("table {} \"getpwnam\"", quote(&t.name)),
                    TableSource::Proc { backend, config } => {
                        let spec = match config {
                            Some(cfg) => format!("{}:{}", backend, cfg),
                            None => backend.clone(),
                        };
                        format!("table {} {}", quote(&t.name), quote(&spec))
                    }
                    TableSource::Builtin => return,
                }
            }
            Decl::Pki(i) => {
                let p = &c.pkis[i];
                let mut s = format!("pki {}", quote(&p.name));
                if let Some(x) = &p.cert {
                    let _ = write!(s, " cert {}", quote(x));
                }
                if let Some(x) = &p.key {
                    let _ = write!(s, " key {}", quote(x));
                }
                if let Some(x) = p.dhe {
                    s.push_str(match x {
                        Dhe::None => " dhe \"none\"",
                        Dhe::Auto => " dhe \"auto\"",
                        Dhe::Legacy => " dhe \"legacy\"",
                    });
                }
                s
            }
            Decl::Ca(i) => {
                let ca = &c.cas[i];
                format!(
                    "ca {} cert {}",
                    quote(&ca.name),
                    quote(ca.cert.as_deref().unwrap_or(""))
                )
            }
            Decl::Proc(i) => {
                let p = &c.procs[i];
                if p.from_filter {
                    return;
                }
                format!(
                    "proc {} {}{}",
                    quote(&p.name),
                    quote(&p.command),
                    proc_params(p)
                )
            }
            Decl::Filter(i) => self.filter(&c.filters[i]),
            Decl::Socket => {
                let s = &c.socket;
                let mut out = String::from("listen on socket");
                if let Some(f) = &s.filter {
                    let _ = write!(out, " {}", self.filter_ref(f));
                }
                if s.mask_src {
                    out.push_str(" mask-src");
                }
                if let Some(t) = &s.tag {
                    let _ = write!(out, " tag {}", quote(t));
                }
                out
            }
            Decl::Listener(i) => self.listener(&c.listeners[i]),
            Decl::Action(i) => self.action(&c.actions[i]),
            Decl::Rule(i) => self.rule(&c.rules[i]),
            Decl::Wrapper(i) => {
                let (n, cmd) = &c.mda_wrappers[i];
                format!("mda wrapper {} {}", quote(n), quote(cmd))
            }
        };
        self.line(s);
    }

    fn filter(&self, f: &Filter) -> String {
        match &f.kind {
            FilterKind::Chain(list) => {
                let v: Vec<String> = list.iter().map(|x| quote(x)).collect();
                format!("filter {} chain {{ {} }}", quote(&f.name), v.join(", "))
            }
            FilterKind::Proc(p) => match self.c.proc_(p) {
                Some(pr) if pr.from_filter && pr.name == f.name => format!(
                    "filter {} proc-exec {}{}",
                    quote(&f.name),
                    quote(&pr.command),
                    proc_params(pr)
                ),
                _ => format!("filter {} proc {}", quote(&f.name), quote(p)),
            },
            FilterKind::Builtin(b) => {
                use FilterCheck::*;
                let check = match &b.check {
                    Fcrdns => "fcrdns".to_string(),
                    Rdns => "rdns".to_string(),
                    Auth => "auth".to_string(),
                    RdnsTable(t) => format!("rdns {}", self.tref(t)),
                    RdnsRegex(t) => format!("rdns regex {}", self.tref(t)),
                    SrcTable(t) => format!("src {}", self.tref(t)),
                    SrcRegex(t) => format!("src regex {}", self.tref(t)),
                    HeloTable(t) => format!("helo {}", self.tref(t)),
                    HeloRegex(t) => format!("helo regex {}", self.tref(t)),
                    AuthTable(t) => format!("auth {}", self.tref(t)),
                    AuthRegex(t) => format!("auth regex {}", self.tref(t)),
                    MailFromTable(t) => format!("mail-from {}", self.tref(t)),
                    MailFromRegex(t) => format!("mail-from regex {}", self.tref(t)),
                    RcptToTable(t) => format!("rcpt-to {}", self.tref(t)),
                    RcptToRegex(t) => format!("rcpt-to regex {}", self.tref(t)),
                };
                let decision = match &b.decision {
                    Decision::Reject(s) => format!("reject {}", quote(s)),
                    Decision::Disconnect(s) => format!("disconnect {}", quote(s)),
                    Decision::Rewrite(s) => format!("rewrite {}", quote(s)),
                    Decision::Report(s) => format!("report {}", quote(s)),
                    Decision::Junk => "junk".into(),
                    Decision::Bypass => "bypass".into(),
                };
                format!(
                    "filter {} phase {} match {}{} {}",
                    quote(&f.name),
                    b.phase.as_str(),
                    if b.negate { "!" } else { "" },
                    check,
                    decision
                )
            }
        }
    }

    fn listener(&self, l: &Listener) -> String {
        let mut s = format!("listen on {}", quote(&l.on));
        for o in &l.written {
            let part = match o {
                ListenOpt::Family => match l.family {
                    Some(crate::env::Family::Inet4) => "inet4".to_string(),
                    _ => "inet6".to_string(),
                },
                ListenOpt::Port => match &l.port_spec {
                    Some((PortSpec::Number(n), _)) => format!("port {}", n),
                    Some((PortSpec::Name, name)) => format!("port {}", quote(name)),
                    None => continue,
                },
                ListenOpt::Filter => match &l.filter {
                    Some(f) => self.filter_ref(f),
                    None => continue,
                },
                ListenOpt::Tls => {
                    let v = if l.tls_verify { " verify" } else { "" };
                    match l.tls {
                        Some(TlsMode::Smtps) => format!("smtps{}", v),
                        Some(TlsMode::StartTls) => "tls".to_string(),
                        _ => format!("tls-require{}", v),
                    }
                }
                ListenOpt::Pki => format!("pki {}", quote(l.pki.as_deref().unwrap_or(""))),
                ListenOpt::Ca => format!("ca {}", quote(l.ca.as_deref().unwrap_or(""))),
                ListenOpt::Auth => match &l.auth {
                    Some(AuthMode::Required(t)) => match t {
                        Some(t) => format!("auth {}", self.tref(t)),
                        None => "auth".into(),
                    },
                    Some(AuthMode::Optional(t)) => match t {
                        Some(t) => format!("auth-optional {}", self.tref(t)),
                        None => "auth-optional".into(),
                    },
                    None => continue,
                },
                ListenOpt::Tag => format!("tag {}", quote(l.tag.as_deref().unwrap_or(""))),
                ListenOpt::Hostname => {
                    format!("hostname {}", quote(l.hostname.as_deref().unwrap_or("")))
                }
                ListenOpt::Hostnames => {
                    format!(
                        "hostnames {}",
                        self.tref(l.hostnames.as_deref().unwrap_or(""))
                    )
                }
                ListenOpt::MaskSrc => "mask-src".into(),
                ListenOpt::ReceivedAuth => "received-auth".into(),
                ListenOpt::NoDsn => "no-dsn".into(),
                ListenOpt::ProxyV2 => "proxy-v2".into(),
                ListenOpt::Senders => format!(
                    "senders {}{}",
                    self.tref(l.senders.as_deref().unwrap_or("")),
                    if l.masquerade { " masquerade" } else { "" }
                ),
            };
            s.push(' ');
            s.push_str(&part);
        }
        s
    }

    fn action(&self, a: &Action) -> String {
        let mut s = format!("action {}", quote(&a.name));
        match &a.method {
            Method::Local(d) => {
                s.push(' ');
                s.push_str(&match &d.method {
                    LocalMethod::Mbox => "mbox".to_string(),
                    LocalMethod::Maildir { path, junk } => {
                        let mut m = "maildir".to_string();
                        if let Some(p) = path {
                            let _ = write!(m, " {}", quote(&p.raw));
                        }
                        if *junk {
                            m.push_str(" junk");
                        }
                        m
                    }
                    LocalMethod::Lmtp {
                        destination,
                        rcpt_to,
                    } => format!(
                        "lmtp {}{}",
                        quote(&destination.raw),
                        if *rcpt_to { " rcpt-to" } else { "" }
                    ),
                    LocalMethod::Mda { command } => format!("mda {}", quote(&command.raw)),
                    LocalMethod::ForwardOnly => "forward-only".into(),
                    LocalMethod::ExpandOnly => "expand-only".into(),
                });
                for o in &d.written {
                    let part = match o {
                        LocalOpt::User => {
                            format!("user {}", quote(d.user.as_deref().unwrap_or("")))
                        }
                        LocalOpt::Alias => {
                            format!("alias {}", self.tref(d.alias.as_deref().unwrap_or("")))
                        }
                        LocalOpt::Virtual => {
                            format!("virtual {}", self.tref(d.virtual_.as_deref().unwrap_or("")))
                        }
                        LocalOpt::Userbase => format!("userbase {}", self.tref(d.userbase())),
                        LocalOpt::Wrapper => {
                            format!("wrapper {}", quote(d.wrapper.as_deref().unwrap_or("")))
                        }
                    };
                    s.push(' ');
                    s.push_str(&part);
                }
            }
            Method::Relay(r) => {
                s.push_str(" relay");
                for o in &r.written {
                    let opt = |x: &Option<String>| x.as_deref().unwrap_or("").to_string();
                    let part = match o {
                        RelayOpt::Helo => format!("helo {}", quote(&opt(&r.helo))),
                        RelayOpt::HeloSrc => format!("helo-src {}", self.tref(&opt(&r.helo_src))),
                        RelayOpt::Pki => format!("pki {}", quote(&opt(&r.pki))),
                        RelayOpt::Ca => format!("ca {}", quote(&opt(&r.ca))),
                        RelayOpt::Src => format!("src {}", self.tref(&opt(&r.src))),
                        RelayOpt::MailFrom => format!("mail-from {}", quote(&opt(&r.mail_from))),
                        RelayOpt::Backup => match &r.backup {
                            Some(Some(mx)) => format!("backup mx {}", quote(mx)),
                            _ => "backup".into(),
                        },
                        RelayOpt::Host => format!("host {}", self.tref(&opt(&r.host))),
                        RelayOpt::Domain => format!("domain {}", self.tref(&opt(&r.domain))),
                        RelayOpt::Tls => {
                            if r.tls == Some(true) {
                                "tls no-verify".into()
                            } else {
                                "tls".into()
                            }
                        }
                        RelayOpt::Auth => format!("auth {}", self.tref(&opt(&r.auth))),
                        RelayOpt::Filter => self.filter_ref(&opt(&r.filter)),
                        RelayOpt::Srs => "srs".into(),
                    };
                    s.push(' ');
                    s.push_str(&part);
                }
            }
        }
        if let Some(t) = a.ttl {
            let _ = write!(s, " ttl {}", delay(t));
        }
        s
    }

    /// `[!]KW [regex] TABLE`, or just `[!]KW` without a table.
    fn criterion(&self, kw: &str, neg: bool, t: Option<&TableTest>) -> String {
        let mut s = format!("{}{}", if neg { "!" } else { "" }, kw);
        if let Some(t) = t {
            s.push(' ');
            if t.regex {
                s.push_str("regex ");
            }
            s.push_str(&self.tref(&t.table));
        }
        s
    }

    fn table_criterion(&self, kw: &str, c: &Option<Criterion<TableTest>>) -> String {
        match c {
            Some(c) => self.criterion(kw, c.negate, Some(&c.test)),
            None => String::new(),
        }
    }

    fn rule(&self, r: &Rule) -> String {
        let mut s = String::from("match");
        for w in &r.written {
            let part = match w {
                Written::From => match &r.from {
                    Some(f) => match &f.test {
                        From::Any => self.criterion("from any", f.negate, None),
                        From::Local => self.criterion("from local", f.negate, None),
                        From::Socket => self.criterion("from socket", f.negate, None),
                        From::Src(t) => self.criterion("from src", f.negate, Some(t)),
                        From::Rdns(t) => self.criterion("from rdns", f.negate, t.as_ref()),
                        From::Auth => match &r.auth {
                            Some(a) => self.criterion("from auth", a.negate, a.test.as_ref()),
                            None => String::new(),
                        },
                        From::MailFrom => self.table_criterion("from mail-from", &r.mail_from),
                    },
                    None => String::new(),
                },
                Written::For => match &r.for_ {
                    Some(f) => match &f.test {
                        For::Any => self.criterion("for any", f.negate, None),
                        For::Local => self.criterion("for local", f.negate, None),
                        For::Domain(t) => self.criterion("for domain", f.negate, Some(t)),
                        For::RcptTo => self.table_criterion("for rcpt-to", &r.rcpt_to),
                    },
                    None => String::new(),
                },
                Written::Tag => self.table_criterion("tag", &r.tag),
                Written::Helo => self.table_criterion("helo", &r.helo),
                Written::MailFrom => self.table_criterion("mail-from", &r.mail_from),
                Written::RcptTo => self.table_criterion("rcpt-to", &r.rcpt_to),
                Written::Tls => self.criterion("tls", r.tls == Some(false), None),
                Written::Auth => match &r.auth {
                    Some(c) => self.criterion("auth", c.negate, c.test.as_ref()),
                    None => String::new(),
                },
            };
            s.push(' ');
            s.push_str(&part);
        }
        match &r.action {
            Some(a) => {
                let _ = write!(s, " action {}", quote(a));
            }
            None => s.push_str(" reject"),
        }
        s
    }
}

fn proc_params(p: &Proc) -> String {
    let mut s = String::new();
    if let Some(u) = &p.user {
        let _ = write!(s, " user {}", quote(u));
    }
    if let Some(g) = &p.group {
        let _ = write!(s, " group {}", quote(g));
    }
    if let Some(c) = &p.chroot {
        let _ = write!(s, " chroot {}", quote(c));
    }
    s
}
