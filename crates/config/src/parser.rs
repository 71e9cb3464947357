//! The smtpd.conf grammar, as a recursive-descent parser that behaves like OpenSMTPD's yacc one.
//!
//! Administrators read OpenSMTPD's messages, so we reproduce not only what it accepts but how it
//! fails: which line an error names, which later errors follow from an earlier one, and which
//! are not printed at all. Three rules of yacc do most of that and are kept here:
//!
//! * A statement's effects happen as soon as its grammar is complete, even if junk follows on the
//!   line (yacc reduces before it looks at the unexpected token). Some happen earlier still: a
//!   table or a builtin filter exists as soon as its name is read.
//! * After an error the rest of the line is skipped (`grammar: grammar error '\n'`).
//! * After an error, a syntax error within the next three tokens is not reported (`yyerrflag`).
//!
//! Checks run before the next token is read wherever yacc reduces without a lookahead, so that
//! the line in the message is the one OpenSMTPD prints.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::env::{Environment, Family};
use crate::format::Format;
use crate::keyword::Keyword as K;
use crate::lexer::{strerror, Lexer, Message, Tok};
use crate::model::*;
use crate::table::{Need, Service, Table, TableKind, TableSource};

/// How a statement ended when it did not parse.
#[derive(Debug)]
enum Stop {
    /// A token did not fit: yacc's "syntax error".
    Syntax,
    /// An action reported its own message (YYERROR).
    Reported,
    /// OpenSMTPD exits on the spot (fatalx / errx); the message is already recorded.
    Fatal,
}

type R<T> = Result<T, Stop>;

/// What the parser must remember about a filter name before its definition is complete.
#[derive(Debug, Clone)]
struct FilterName {
    is_chain: bool,
}

/// The tables OpenSMTPD creates before it reads the config (config.c `config_default`).
const BUILTIN_TABLES: &[&str] = &[
    "<anydestination>",
    "<getpwnam>",
    "<localnames>",
    "<anyhost>",
    "<localhost>",
];

/// Backends we know how to serve (or will), accepted whether or not a `table-NAME` program exists.
pub const KNOWN_BACKENDS: &[&str] = &[
    "ldap",
    "mysql",
    "passwd",
    "postgres",
    "redis",
    "socketmap",
    "sqlite",
];

/// How deep `include` may nest. OpenSMTPD has no limit and loops until it runs out of file
/// descriptors; we stop earlier with a clear message.
const MAX_INCLUDE_DEPTH: usize = 64;

pub struct Parser<'e> {
    lx: Lexer<'e>,
    env: &'e dyn Environment,
    la: Option<Tok>,
    errflag: u8,
    conf: Config,
    last_table_id: u32,
    last_dynchain_id: u32,
    filter_names: HashMap<String, FilterName>,
    fatal: bool,
    /// Deliberate extra checks (format strings, table contents) beyond OpenSMTPD's.
    strict: bool,
    /// Those checks, run once the config passed OpenSMTPD's own, so that where OpenSMTPD refuses
    /// a config we print exactly what it prints.
    pending: Vec<Pending>,
}

/// A deferred strict check and the place it refers to.
struct Pending {
    file: String,
    line: u32,
    check: PendingCheck,
}

enum PendingCheck {
    Table(String, Service),
    Format(String),
}

/// The result of reading a configuration: the config when it is valid, and every line that
/// OpenSMTPD would print on stderr, in order.
#[derive(Debug)]
pub struct Outcome {
    pub config: Option<Config>,
    pub messages: Vec<String>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.config.is_some()
    }
}

#[derive(Debug, Clone, Default)]
pub struct ParseOptions {
    /// `-D name=value` macros, in command-line order.
    pub macros: Vec<(String, String)>,
    /// Checks beyond OpenSMTPD's (see the README's list of deliberate differences).
    pub strict: bool,
}

/// Reads and checks a configuration file.
pub fn parse_file(path: &str, env: &dyn Environment, opts: &ParseOptions) -> Outcome {
    let mut p = Parser::new(env, opts);
    p.run(path);
    p.finish()
}

fn render(m: &Message) -> String {
    match m {
        Message::At { file, line, msg } => format!("{}:{}: {}", file, line, msg),
        Message::Plain(s) => s.clone(),
    }
}

impl<'e> Parser<'e> {
    fn new(env: &'e dyn Environment, opts: &ParseOptions) -> Self {
        let mut lx = Lexer::new(env);
        for (k, v) in &opts.macros {
            lx.define_persistent(k, v);
        }
        let mut conf = Config::default();
        for name in BUILTIN_TABLES {
            let source = if *name == "<getpwnam>" {
                TableSource::Getpwnam
            } else {
                TableSource::Builtin
            };
            let mut t = Table::new(name.to_string(), false, source);
            if t.kind == TableKind::Empty {
                // Filled with the machine's names when the daemon starts; a list either way.
                t.kind = TableKind::List;
            }
            conf.tables.push(t);
        }
        Parser {
            lx,
            env,
            la: None,
            errflag: 0,
            conf,
            last_table_id: 0,
            last_dynchain_id: 1,
            filter_names: HashMap::new(),
            fatal: false,
            strict: opts.strict,
            pending: Vec::new(),
        }
    }

    fn run(&mut self, path: &str) {
        self.lx.errfile = path.to_string();
        if !self.lx.pushfile(path) {
            self.fatal = true;
            return;
        }
        loop {
            match self.peek() {
                Tok::Eof => break,
                Tok::Newline => {
                    self.bump();
                    continue;
                }
                _ => {}
            }
            let r = self.statement().and_then(|_| self.expect_nl());
            match r {
                Ok(()) => {}
                Err(Stop::Fatal) => {
                    self.fatal = true;
                    return;
                }
                Err(e) => {
                    if matches!(e, Stop::Syntax) && self.errflag == 0 {
                        self.lx.yyerror("syntax error".into());
                    }
                    if !self.recover() {
                        break;
                    }
                }
            }
        }
    }

    fn finish(self) -> Outcome {
        let mut messages: Vec<String> = self.lx.messages.iter().map(render).collect();
        if self.fatal {
            return Outcome {
                config: None,
                messages,
            };
        }
        let mut errors = self.lx.errors;
        if self.conf.rules.is_empty() {
            messages.push("warn: no rules, nothing to do".into());
            errors += 1;
        }
        if errors == 0 {
            for p in &self.pending {
                let msg = match &p.check {
                    PendingCheck::Table(name, s) => self
                        .conf
                        .table(name)
                        .and_then(|t| crate::validate::table_contents(t, *s)),
                    PendingCheck::Format(e) => Some(e.clone()),
                };
                if let Some(m) = msg {
                    messages.push(format!("{}:{}: {}", p.file, p.line, m));
                    errors += 1;
                }
            }
        }
        Outcome {
            config: if errors == 0 { Some(self.conf) } else { None },
            messages,
        }
    }

    /// yacc's error recovery: skip to the end of the line. Returns false at end of input.
    fn recover(&mut self) -> bool {
        self.errflag = 3;
        loop {
            match self.peek() {
                Tok::Newline => {
                    self.bump();
                    return true;
                }
                Tok::Eof => return false,
                _ => {
                    self.la = None;
                }
            }
        }
    }

    // ----- tokens -----

    fn peek(&mut self) -> &Tok {
        if self.la.is_none() {
            self.la = Some(self.lx.next_token());
        }
        self.la.as_ref().unwrap_or(&Tok::Eof)
    }

    fn bump(&mut self) -> Tok {
        self.peek();
        self.errflag = self.errflag.saturating_sub(1);
        self.la.take().unwrap_or(Tok::Eof)
    }

    fn at_kw(&mut self, k: K) -> bool {
        matches!(self.peek(), Tok::Kw(x) if *x == k)
    }

    fn at_char(&mut self, c: u8) -> bool {
        self.peek().is(c)
    }

    fn at_str(&mut self) -> bool {
        matches!(self.peek(), Tok::Str(_))
    }

    fn eat_kw(&mut self, k: K) -> bool {
        if self.at_kw(k) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn kw(&mut self, k: K) -> R<()> {
        if self.eat_kw(k) {
            Ok(())
        } else {
            Err(Stop::Syntax)
        }
    }

    fn char(&mut self, c: u8) -> R<()> {
        if self.at_char(c) {
            self.bump();
            Ok(())
        } else {
            Err(Stop::Syntax)
        }
    }

    fn string(&mut self) -> R<String> {
        if self.at_str() {
            if let Tok::Str(s) = self.bump() {
                return Ok(s);
            }
        }
        Err(Stop::Syntax)
    }

    fn number(&mut self) -> R<i64> {
        if let Tok::Num(_) = self.peek() {
            if let Tok::Num(n) = self.bump() {
                return Ok(n);
            }
        }
        Err(Stop::Syntax)
    }

    /// The position of the last token read (the one just peeked at, or bumped).
    fn here(&self) -> Position {
        Position {
            file: self.lx.current_file_name().to_string(),
            line: self.lx.lineno,
        }
    }

    fn expect_nl(&mut self) -> R<()> {
        if matches!(self.peek(), Tok::Newline) {
            self.bump();
            Ok(())
        } else {
            Err(Stop::Syntax)
        }
    }

    /// yyerror + YYERROR.
    fn fail<T>(&mut self, msg: String) -> R<T> {
        self.lx.yyerror(msg);
        Err(Stop::Reported)
    }

    /// fatalx(): a line on its own (`smtpd: ...` or a bare warning), then exit.
    fn fatal<T>(&mut self, lines: &[String]) -> R<T> {
        for l in lines {
            self.lx.messages.push(Message::Plain(l.clone()));
        }
        Err(Stop::Fatal)
    }

    fn negation(&mut self) -> bool {
        if self.at_char(b'!') {
            self.bump();
            true
        } else {
            false
        }
    }

    /// `comma: ',' | nl | /* empty */` inside braces. Returns whether one was there: after a
    /// comma or a newline another element must follow, so `{ a,}` and `{ a\n}` are errors.
    fn comma(&mut self) -> bool {
        if self.at_char(b',') {
            self.bump();
            true
        } else if matches!(self.peek(), Tok::Newline) {
            while matches!(self.peek(), Tok::Newline) {
                self.bump();
            }
            true
        } else {
            false
        }
    }

    // ----- statements -----

    fn statement(&mut self) -> R<()> {
        let tok = self.peek().clone();
        match tok {
            Tok::Kw(K::Include) => self.include(),
            Tok::Str(_) => self.varset(),
            Tok::Kw(K::Bounce) => self.bounce(),
            Tok::Kw(K::Admd) => self.admd(),
            Tok::Kw(K::Ca) => self.ca(),
            Tok::Kw(K::Mda) => self.mda(),
            Tok::Kw(K::Mta) => self.mta(),
            Tok::Kw(K::Pki) => self.pki(),
            Tok::Kw(K::Proc) => self.proc_(),
            Tok::Kw(K::Queue) => self.queue(),
            Tok::Kw(K::Scheduler) => self.scheduler(),
            Tok::Kw(K::Smtp) => self.smtp(),
            Tok::Kw(K::Srs) => self.srs(),
            Tok::Kw(K::Listen) => self.listen(),
            Tok::Kw(K::Table) => self.table(),
            Tok::Kw(K::Action) => self.action(),
            Tok::Kw(K::Match) => self.match_(),
            Tok::Kw(K::Filter) => self.filter(),
            _ => Err(Stop::Syntax),
        }
    }

    fn include(&mut self) -> R<()> {
        self.bump();
        let path = self.string()?;
        if self.lx.depth() >= MAX_INCLUDE_DEPTH {
            // OpenSMTPD reaches this when it runs out of file descriptors; say it the same way.
            self.lx.messages.push(Message::Plain(format!(
                "pushfile: {}: Too many open files",
                path
            )));
            return self.fail(format!("failed to include file {}", path));
        }
        if !self.lx.pushfile(&path) {
            return self.fail(format!("failed to include file {}", path));
        }
        // OpenSMTPD pushes the statement's newline into the new file, so the include line
        // ends there and the parent's own newline becomes an empty line after the include.
        self.lx.lungetc_newline();
        Ok(())
    }

    fn varset(&mut self) -> R<()> {
        let name = self.string()?;
        self.char(b'=')?;
        let value = self.string()?;
        // OpenSMTPD's loop starts checking at the second character.
        if name
            .bytes()
            .skip(1)
            .any(|b| b.is_ascii_whitespace() || b == 0x0b)
        {
            return self.fail("macro name cannot contain whitespace".into());
        }
        self.lx.symset(&name, &value, false);
        Ok(())
    }

    fn bounce(&mut self) -> R<()> {
        self.bump();
        self.kw(K::WarnInterval)?;
        self.conf.options.bounce_warn.clear();
        loop {
            let s = self.string()?;
            let d = match delaytonum(&s) {
                Ok(d) => d,
                Err(t) => return self.fail(format!("invalid bounce delay: {}", t)),
            };
            if self.conf.options.bounce_warn.len() < 4 {
                self.conf.options.bounce_warn.push(d);
            }
            if !self.at_char(b',') {
                return Ok(());
            }
            self.bump();
        }
    }

    fn admd(&mut self) -> R<()> {
        self.bump();
        let s = self.string()?;
        if s.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
            return self.fail("not a valid admd".into());
        }
        self.conf.options.admd = Some(s);
        Ok(())
    }

    fn pki_name(&mut self) -> R<String> {
        let name = self.string()?;
        if name != "*" && !rsmtpd_protocol::address::res_hnok(name.as_bytes()) {
            return self.fail(format!("not a valid domain name: {}", name));
        }
        Ok(name.to_ascii_lowercase())
    }

    fn ca(&mut self) -> R<()> {
        let at = self.here();
        self.bump();
        let name = self.pki_name()?;
        let idx = match self.conf.cas.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                self.conf.cas.push(Ca {
                    name,
                    cert: None,
                    at,
                });
                self.conf.order.push(Decl::Ca(self.conf.cas.len() - 1));
                self.conf.cas.len() - 1
            }
        };
        self.kw(K::Cert)?;
        let f = self.string()?;
        self.conf.cas[idx].cert = Some(f);
        Ok(())
    }

    fn pki(&mut self) -> R<()> {
        let at = self.here();
        self.bump();
        let name = self.pki_name()?;
        let idx = match self.conf.pkis.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                self.conf.pkis.push(Pki {
                    name,
                    cert: None,
                    key: None,
                    dhe: None,
                    at,
                });
                self.conf.order.push(Decl::Pki(self.conf.pkis.len() - 1));
                self.conf.pkis.len() - 1
            }
        };
        loop {
            if self.eat_kw(K::Cert) {
                let f = self.string()?;
                self.conf.pkis[idx].cert = Some(f);
            } else if self.eat_kw(K::Key) {
                let f = self.string()?;
                self.conf.pkis[idx].key = Some(f);
            } else if self.eat_kw(K::Dhe) {
                let v = self.string()?;
                let d = match v.to_ascii_lowercase().as_str() {
                    "none" => Dhe::None,
                    "auto" => Dhe::Auto,
                    "legacy" => Dhe::Legacy,
                    _ => return self.fail(format!("invalid DHE keyword: {}", v)),
                };
                self.conf.pkis[idx].dhe = Some(d);
            } else {
                return Ok(());
            }
        }
    }

    fn mda(&mut self) -> R<()> {
        self.bump();
        if self.eat_kw(K::Limit) {
            while self.at_str() {
                let key = self.string()?;
                let n = self.number()?;
                if !MDA_LIMIT_KEYS.contains(&key.as_str()) {
                    // sic: OpenSMTPD says "scheduler" here.
                    return self.fail(format!("invalid scheduler limit keyword: {}", key));
                }
                set_pair(&mut self.conf.options.mda_limits, key, n);
            }
            return Ok(());
        }
        self.kw(K::Wrapper)?;
        let name = self.string()?;
        let cmd = self.string()?;
        if self.conf.mda_wrappers.iter().any(|(n, _)| *n == name) {
            return self.fail(format!(
                "mda wrapper already declared with that name: {}",
                name
            ));
        }
        self.conf.mda_wrappers.push((name, cmd));
        self.conf
            .order
            .push(Decl::Wrapper(self.conf.mda_wrappers.len() - 1));
        Ok(())
    }

    fn mta(&mut self) -> R<()> {
        self.bump();
        if self.eat_kw(K::MaxDeferred) {
            self.conf.options.mta_max_deferred = self.number()?;
            return Ok(());
        }
        self.kw(K::Limit)?;
        let domain = if self.eat_kw(K::For) {
            self.kw(K::Domain)?;
            Some(self.string()?)
        } else {
            None
        };
        let idx = match self
            .conf
            .options
            .mta_limits
            .iter()
            .position(|l| l.domain == domain)
        {
            Some(i) => i,
            None => {
                self.conf.options.mta_limits.push(MtaLimits {
                    domain,
                    family: None,
                    values: Vec::new(),
                });
                self.conf.options.mta_limits.len() - 1
            }
        };
        loop {
            if self.eat_kw(K::Inet4) {
                self.conf.options.mta_limits[idx].family = Some(Family::Inet4);
            } else if self.eat_kw(K::Inet6) {
                self.conf.options.mta_limits[idx].family = Some(Family::Inet6);
            } else if self.at_str() {
                let key = self.string()?;
                let n = self.number()?;
                if !MTA_LIMIT_KEYS.contains(&key.as_str()) {
                    return self.fail(format!("invalid mta limit keyword: {}", key));
                }
                set_pair(&mut self.conf.options.mta_limits[idx].values, key, n);
            } else {
                return Ok(());
            }
        }
    }

    fn queue(&mut self) -> R<()> {
        self.bump();
        if self.eat_kw(K::Compression) {
            self.conf.options.queue_compression = true;
            return Ok(());
        }
        if self.eat_kw(K::Encryption) {
            if self.at_str() {
                let k = self.string()?;
                let k = if k.eq_ignore_ascii_case("stdin") || k == "-" {
                    "stdin".to_string()
                } else {
                    k
                };
                self.conf.options.queue_key = Some(k);
            }
            self.conf.options.queue_encryption = true;
            return Ok(());
        }
        self.kw(K::Ttl)?;
        let s = self.string()?;
        match delaytonum(&s) {
            Ok(d) => {
                self.conf.options.queue_ttl = d;
                Ok(())
            }
            Err(t) => self.fail(format!("invalid ttl delay: {}", t)),
        }
    }

    fn scheduler(&mut self) -> R<()> {
        self.bump();
        self.kw(K::Limit)?;
        while self.at_str() {
            let key = self.string()?;
            let n = self.number()?;
            if !SCHEDULER_LIMIT_KEYS.contains(&key.as_str()) {
                return self.fail(format!("invalid scheduler limit keyword: {}", key));
            }
            set_pair(&mut self.conf.options.scheduler_limits, key, n);
        }
        Ok(())
    }

    fn smtp(&mut self) -> R<()> {
        self.bump();
        if self.eat_kw(K::Limit) {
            while self.at_str() {
                let key = self.string()?;
                let n = self.number()?;
                match key.as_str() {
                    "max-rcpt" => self.conf.options.max_rcpt = n,
                    "max-mails" => self.conf.options.max_mails = n,
                    _ => return self.fail(format!("invalid session limit keyword: {}", key)),
                }
            }
            return Ok(());
        }
        if self.at_kw(K::Ciphers) {
            self.conf.options.ciphers_at = self.here();
        }
        if self.eat_kw(K::Ciphers) {
            self.conf.options.ciphers = Some(self.string()?);
            return Ok(());
        }
        if self.eat_kw(K::MaxMessageSize) {
            let size = match self.peek().clone() {
                Tok::Num(n) => {
                    self.bump();
                    if n < 0 {
                        return self.fail(format!("invalid size: {}", n));
                    }
                    n as u64
                }
                Tok::Str(s) => {
                    self.bump();
                    match scan_scaled(&s) {
                        Some(n) if n >= 0 => n as u64,
                        _ => return self.fail(format!("invalid size: {}", s)),
                    }
                }
                _ => return Err(Stop::Syntax),
            };
            self.conf.options.max_message_size = size;
            return Ok(());
        }
        self.kw(K::SubAddrDelim)?;
        let s = self.string()?;
        if s.len() != 1 {
            return self.fail("subaddressing-delimiter must be one character".into());
        }
        let c = s.as_bytes()[0];
        if c.is_ascii_whitespace() || !(0x20..0x7f).contains(&c) || c == b'@' {
            return self.fail("sub-addr-delim uses invalid character".into());
        }
        self.conf.options.sub_addr_delim = c as char;
        Ok(())
    }

    fn srs(&mut self) -> R<()> {
        self.bump();
        if self.eat_kw(K::Key) {
            if self.eat_kw(K::Backup) {
                self.conf.options.srs_key_backup = Some(self.string()?);
            } else {
                self.conf.options.srs_key = Some(self.string()?);
            }
            return Ok(());
        }
        self.kw(K::Ttl)?;
        let s = self.string()?;
        let d = match delaytonum(&s) {
            Ok(d) => d,
            Err(t) => return self.fail(format!("ttl delay \"{}\" is invalid", t)),
        };
        if d / 86400 == 0 {
            // The unit was cut off by then, as in the invalid case.
            let shown = &s[..s.len() - 1];
            return self.fail(format!("ttl delay \"{}\" is too short", shown));
        }
        self.conf.options.srs_ttl_days = d / 86400;
        Ok(())
    }

    fn proc_(&mut self) -> R<()> {
        let at = self.here();
        self.bump();
        let name = self.string()?;
        let command = self.string()?;
        if self.conf.procs.iter().any(|p| p.name == name) {
            return self.fail(format!("processor already exists with that name: {}", name));
        }
        let mut p = Proc {
            name,
            command,
            user: None,
            group: None,
            chroot: None,
            from_filter: false,
            at,
        };
        self.proc_params(&mut p)?;
        self.conf.procs.push(p);
        self.conf.order.push(Decl::Proc(self.conf.procs.len() - 1));
        Ok(())
    }

    fn proc_params(&mut self, p: &mut Proc) -> R<()> {
        loop {
            let (slot, what) = match self.peek() {
                Tok::Kw(K::User) => (&mut p.user, "user"),
                Tok::Kw(K::Group) => (&mut p.group, "group"),
                Tok::Kw(K::Chroot) => (&mut p.chroot, "chroot"),
                _ => return Ok(()),
            };
            self.bump();
            let v = self.string()?;
            self.once(
                slot,
                v,
                &format!("{} already specified for this processor", what),
            )?;
        }
    }

    // ----- tables -----

    fn table_exists(&self, name: &str) -> bool {
        self.conf.tables.iter().any(|t| t.name == name)
    }

    fn table_idx(&self, name: &str) -> Option<usize> {
        self.conf.tables.iter().position(|t| t.name == name)
    }

    /// `table_create()`. Named duplicates are fatal in OpenSMTPD.
    fn table_create(&mut self, name: Option<String>, source: TableSource) -> R<usize> {
        let (name, anonymous) = match name {
            Some(n) => {
                if self.table_exists(&n) {
                    return self.fatal(&[format!(
                        "smtpd: table_create: table \"{}\" already defined",
                        n
                    )]);
                }
                (n, false)
            }
            None => {
                let n = format!("<dynamic:{}>", self.last_table_id);
                self.last_table_id += 1;
                (n, true)
            }
        };
        self.conf.tables.push(Table::new(name, anonymous, source));
        Ok(self.conf.tables.len() - 1)
    }

    fn table_add(&mut self, idx: usize, key: &str, value: Option<&str>) {
        let t = &mut self.conf.tables[idx];
        if !t.add(key, value) {
            let line = format!("warn: failed to add \"{}\" in table \"{}\"", key, t.name);
            self.lx.messages.push(Message::Plain(line));
        }
    }

    fn table(&mut self) -> R<()> {
        let at = self.here();
        self.bump();
        let name = self.string()?;
        if self.at_str() {
            let spec = self.string()?;
            return self.table_backend(name, spec, at);
        }
        let idx = self.table_create(Some(name), TableSource::Inline)?;
        self.conf.tables[idx].at = at;
        self.conf.order.push(Decl::Table(idx));
        self.char(b'{')?;
        self.tableval_list(idx)?;
        self.char(b'}')
    }

    fn table_backend(&mut self, name: String, spec: String, at: Position) -> R<()> {
        let (backend, config) = if spec.starts_with('/') {
            ("static".to_string(), Some(spec.clone()))
        } else {
            match spec.split_once(':') {
                Some((b, c)) => (b.to_string(), Some(c.to_string())),
                None => (spec.clone(), None),
            }
        };
        if let Some(c) = &config {
            if !c.starts_with('/') {
                return self.fail(format!("invalid backend parameter for table: {}", name));
            }
        }
        let source = match backend.as_str() {
            "static" | "file" => match &config {
                Some(c) => TableSource::File(c.clone()),
                None => TableSource::Inline,
            },
            "db" => TableSource::Db(config.clone().unwrap_or_default()),
            "getpwnam" => TableSource::Getpwnam,
            b if KNOWN_BACKENDS.contains(&b) || self.env.table_backend_exists(b) => {
                TableSource::Proc {
                    backend: b.to_string(),
                    config: config.clone(),
                }
            }
            b => {
                return self.fatal(&[format!(
                    "smtpd: table_create: backend \"{}\" does not exist",
                    b
                )])
            }
        };
        let idx = self.table_create(Some(name.clone()), source)?;
        self.conf.tables[idx].at = at;
        self.conf.order.push(Decl::Table(idx));
        let cfg = config.unwrap_or_default();
        let source = self.conf.tables[idx].source.clone();
        let loaded = match &source {
            TableSource::File(path) => match self.env.read_file(path) {
                Ok(data) => self.conf.tables[idx]
                    .load_static(path, &data)
                    .map_err(|l| vec![l]),
                Err(e) => Err(vec![format!("{}: fopen: {}", path, strerror(&e))]),
            },
            TableSource::Db(path) => match self.env.read_file(path) {
                Ok(data) => crate::dbfile::check_db_file(path, &data),
                Err(_) => Err(Vec::new()),
            },
            _ => Ok(()),
        };
        if let Err(lines) = loaded {
            for line in lines {
                self.lx.messages.push(Message::Plain(line));
            }
            let shown = if cfg.is_empty() { "(null)" } else { &cfg };
            return self.fail(format!(
                "invalid configuration file {} for table {}",
                shown, name
            ));
        }
        Ok(())
    }

    /// `tableval_list`: the entries between braces, all keys or all `key = value`.
    fn tableval_list(&mut self, idx: usize) -> R<()> {
        let first = self.string()?;
        let hash = self.at_char(b'=') || matches!(self.peek(), Tok::Arrow);
        let mut key = first;
        loop {
            if hash {
                if !(self.at_char(b'=') || matches!(self.peek(), Tok::Arrow)) {
                    return Err(Stop::Syntax);
                }
                self.bump();
                let v = self.string()?;
                self.table_add(idx, &key, Some(&v));
            } else {
                self.table_add(idx, &key, None);
            }
            if !self.comma() && self.at_char(b'}') {
                return Ok(());
            }
            key = self.string()?;
        }
    }

    /// `tables`: a single string, an inline `{ ... }`, or a reference `<name>`.
    fn tables(&mut self) -> R<String> {
        match self.peek().clone() {
            Tok::Str(_) => {
                let s = self.string()?;
                let idx = self.table_create(None, TableSource::Inline)?;
                self.table_add(idx, &s, None);
                Ok(self.conf.tables[idx].name.clone())
            }
            Tok::Char(b'{') => {
                self.bump();
                let idx = self.table_create(None, TableSource::Inline)?;
                self.tableval_list(idx)?;
                self.char(b'}')?;
                Ok(self.conf.tables[idx].name.clone())
            }
            Tok::Char(b'<') => {
                self.bump();
                let name = self.string()?;
                self.char(b'>')?;
                if !self.table_exists(&name) {
                    return self.fail(format!("no such table: {}", name));
                }
                Ok(name)
            }
            _ => Err(Stop::Syntax),
        }
    }

    fn table_starts(&mut self) -> bool {
        matches!(self.peek(), Tok::Str(_) | Tok::Char(b'{') | Tok::Char(b'<'))
    }

    fn usable(&self, name: &str, need: Need, s: Service) -> bool {
        self.table_idx(name)
            .is_some_and(|i| self.conf.tables[i].usable_for(need, s))
    }

    /// Our own checks of a table's contents for its use (strict mode only), run at the end.
    fn check_contents(&mut self, name: &str, s: Service) -> R<()> {
        self.defer(PendingCheck::Table(name.to_string(), s));
        Ok(())
    }

    fn defer(&mut self, check: PendingCheck) {
        if self.strict {
            let file = self.lx.current_file_name().to_string();
            let line = self.lx.lineno;
            self.pending.push(Pending { file, line, check });
        }
    }

    // ----- listen -----

    fn listen(&mut self) -> R<()> {
        let at = self.here();
        self.bump();
        self.kw(K::On)?;
        if self.eat_kw(K::Socket) {
            return self.socket_listener(at);
        }
        let on = self.string()?;
        self.if_listener(on, at)
    }

    /// `filter NAME` or an inline chain `filter { a, b }` (named `<dynchain:N>`), on a listener
    /// or a relay action; `dup` is the message when a filter was already given.
    fn filter_option(&mut self, have: bool, dup: &str) -> R<String> {
        self.bump();
        if self.at_str() {
            let name = self.string()?;
            if have {
                return self.fail(dup.to_string());
            }
            if !self.filter_names.contains_key(&name) {
                return self.fail(format!("no filter exist with that name: {}", name));
            }
            return Ok(name);
        }
        if have {
            return self.fail(dup.to_string());
        }
        let name = self.dynchain_name();
        self.char(b'{')?;
        let list = self.filter_list()?;
        self.char(b'}')?;
        self.register_chain(name.clone(), list, true);
        Ok(name)
    }

    fn dynchain_name(&mut self) -> String {
        loop {
            let n = format!("<dynchain:{:08x}>", self.last_dynchain_id);
            self.last_dynchain_id += 1;
            if !self.filter_names.contains_key(&n) {
                return n;
            }
        }
    }

    fn register_chain(&mut self, name: String, list: Vec<String>, anonymous: bool) {
        self.filter_names
            .insert(name.clone(), FilterName { is_chain: true });
        self.add_filter(name, FilterKind::Chain(list), anonymous);
    }

    /// Refuses a filter name already declared.
    fn new_filter_name(&mut self, name: &str) -> R<()> {
        if self.filter_names.contains_key(name) {
            return self.fail(format!("filter already exists with that name: {}", name));
        }
        Ok(())
    }

    /// Adds a filter; anonymous ones (chains a listener names inline) are not dumped.
    fn add_filter(&mut self, name: String, kind: FilterKind, anonymous: bool) {
        let at = self.here();
        self.conf.filters.push(Filter {
            name,
            kind,
            anonymous,
            at,
        });
        if !anonymous {
            self.conf
                .order
                .push(Decl::Filter(self.conf.filters.len() - 1));
        }
    }

    /// Sets an option that may be given once, else `MSG` (`... already specified`).
    fn once<T>(&mut self, slot: &mut Option<T>, value: T, msg: &str) -> R<()> {
        if slot.is_some() {
            return self.fail(msg.to_string());
        }
        *slot = Some(value);
        Ok(())
    }

    /// Reads a flag keyword that may be given once.
    fn flag(&mut self, slot: &mut bool, msg: &str) -> R<()> {
        self.bump();
        self.flag_after_bump(slot, msg)
    }

    fn flag_after_bump(&mut self, slot: &mut bool, msg: &str) -> R<()> {
        if *slot {
            return self.fail(msg.to_string());
        }
        *slot = true;
        Ok(())
    }

    /// `tag TAG` of a listener: at most 32 characters (SMTPD_TAG_SIZE).
    fn listen_tag(&mut self, slot: &mut Option<String>) -> R<()> {
        self.bump();
        let t = self.string()?;
        if slot.is_some() {
            return self.fail("tag already specified".into());
        }
        if t.len() >= 33 {
            return self.fail("tag name too long".into());
        }
        *slot = Some(t);
        Ok(())
    }

    fn socket_listener(&mut self, at: Position) -> R<()> {
        let mut s = SocketListener {
            declared: true,
            at,
            ..Default::default()
        };
        loop {
            match self.peek() {
                Tok::Kw(K::Filter) => {
                    let have = s.filter.is_some();
                    s.filter = Some(self.filter_option(have, "filter already specified")?);
                }
                Tok::Kw(K::MaskSrc) => {
                    self.flag(&mut s.mask_src, "mask-source already specified")?
                }
                Tok::Kw(K::Tag) => self.listen_tag(&mut s.tag)?,
                _ => break,
            }
        }
        if self.conf.socket.declared {
            return self.fail("socket listener already configured".into());
        }
        self.conf.socket = s;
        self.conf.order.push(Decl::Socket);
        Ok(())
    }

    /// `port N`, `port NAME`, `port smtp`: the port and how it was written.
    fn listen_port(&mut self) -> R<(u16, PortSpec, String)> {
        let arg = self.bump();
        match arg {
            Tok::Num(n) if n <= 0 || n > 65535 => self.fail(format!("invalid port: {}", n)),
            Tok::Num(n) => Ok((n as u16, PortSpec::Number(n as u16), n.to_string())),
            // A quoted "25" is looked up as a service name, and is not one: OpenSMTPD refuses it.
            Tok::Str(_) | Tok::Kw(K::Smtp | K::Smtps) => {
                let name = match arg {
                    Tok::Str(s) => s,
                    Tok::Kw(k) => k.as_str().to_string(),
                    _ => String::new(),
                };
                match self.env.service_port(&name) {
                    Some(p) => Ok((p, PortSpec::Name, name)),
                    None => self.fail(format!("invalid port: {}", name)),
                }
            }
            _ => Err(Stop::Syntax),
        }
    }

    fn if_listener(&mut self, on: String, at: Position) -> R<()> {
        let mut l = Listener::new(on);
        l.at = at;
        loop {
            let tok = self.peek().clone();
            let opt_at = self.here();
            let opt = match tok {
                Tok::Kw(K::Inet4) | Tok::Kw(K::Inet6) => {
                    self.bump();
                    let f = if tok == Tok::Kw(K::Inet4) {
                        Family::Inet4
                    } else {
                        Family::Inet6
                    };
                    self.once(&mut l.family, f, "address family already specified")?;
                    ListenOpt::Family
                }
                Tok::Kw(K::Port) => {
                    self.bump();
                    if !matches!(
                        self.peek(),
                        Tok::Num(_) | Tok::Str(_) | Tok::Kw(K::Smtp | K::Smtps)
                    ) {
                        return Err(Stop::Syntax);
                    }
                    if l.port_spec.is_some() {
                        self.bump();
                        return self.fail("port already specified".into());
                    }
                    let (port, spec, text) = self.listen_port()?;
                    l.port = port;
                    l.port_spec = Some((spec, text));
                    ListenOpt::Port
                }
                Tok::Kw(K::Filter) => {
                    let have = l.filter.is_some();
                    l.filter = Some(self.filter_option(have, "filter already specified")?);
                    ListenOpt::Filter
                }
                Tok::Kw(K::Smtps) | Tok::Kw(K::Tls) | Tok::Kw(K::TlsRequire) => {
                    self.bump();
                    let verify = tok != Tok::Kw(K::Tls) && self.eat_kw(K::Verify);
                    let mode = match tok {
                        Tok::Kw(K::Smtps) => TlsMode::Smtps,
                        Tok::Kw(K::Tls) => TlsMode::StartTls,
                        _ => TlsMode::StartTlsRequire,
                    };
                    self.once(&mut l.tls, mode, "TLS mode already specified")?;
                    l.tls_verify = verify;
                    ListenOpt::Tls
                }
                Tok::Kw(K::Pki) => {
                    self.bump();
                    let v = self.string()?;
                    self.once(&mut l.pki, v, "pki already specified")?;
                    ListenOpt::Pki
                }
                Tok::Kw(K::Ca) => {
                    self.bump();
                    let v = self.string()?;
                    self.once(&mut l.ca, v, "ca already specified")?;
                    ListenOpt::Ca
                }
                Tok::Kw(K::Auth) | Tok::Kw(K::AuthOptional) => {
                    self.bump();
                    let table = if self.table_starts() {
                        Some(self.tables()?)
                    } else {
                        None
                    };
                    let mode = if tok == Tok::Kw(K::Auth) {
                        AuthMode::Required(table)
                    } else {
                        AuthMode::Optional(table)
                    };
                    self.once(&mut l.auth, mode, "auth already specified")?;
                    ListenOpt::Auth
                }
                Tok::Kw(K::Tag) => {
                    self.listen_tag(&mut l.tag)?;
                    ListenOpt::Tag
                }
                Tok::Kw(K::Hostname) => {
                    self.bump();
                    let h = self.string()?;
                    self.once(&mut l.hostname, h, "hostname already specified")?;
                    ListenOpt::Hostname
                }
                Tok::Kw(K::Hostnames) | Tok::Kw(K::Senders) => {
                    self.bump();
                    let t = self.tables()?;
                    let senders = tok == Tok::Kw(K::Senders);
                    let masquerade = senders && self.eat_kw(K::Masquerade);
                    let (slot, what, service) = if senders {
                        (&mut l.senders, "senders", Service::Mailaddrmap)
                    } else {
                        (&mut l.hostnames, "hostnames", Service::Addrname)
                    };
                    if slot.is_some() {
                        return self.fail(format!("{} already specified", what));
                    }
                    if !self.usable(&t, Need::Hash, service) {
                        return self.fail(format!(
                            "invalid use of table \"{}\" as {} parameter",
                            t,
                            what.to_ascii_uppercase()
                        ));
                    }
                    *slot = Some(t);
                    if senders {
                        l.masquerade = masquerade;
                        ListenOpt::Senders
                    } else {
                        ListenOpt::Hostnames
                    }
                }
                Tok::Kw(K::MaskSrc) => {
                    self.flag(&mut l.mask_src, "mask-source already specified")?;
                    ListenOpt::MaskSrc
                }
                Tok::Kw(K::ReceivedAuth) => {
                    self.flag(&mut l.received_auth, "received-auth already specified")?;
                    ListenOpt::ReceivedAuth
                }
                Tok::Kw(K::NoDsn) => {
                    self.flag(&mut l.no_dsn, "no-dsn already specified")?;
                    ListenOpt::NoDsn
                }
                Tok::Kw(K::ProxyV2) => {
                    self.flag(&mut l.proxy_v2, "proxy-v2 already specified")?;
                    ListenOpt::ProxyV2
                }
                _ => break,
            };
            l.written.push(opt);
            l.options_at.push((opt, opt_at));
        }
        self.create_if_listener(l)
    }

    /// `create_if_listener()` and `config_listener()`: checks that OpenSMTPD makes fatal.
    fn create_if_listener(&mut self, mut l: Listener) -> R<()> {
        if l.auth.is_some() && l.tls.is_none() {
            return self.fatal(&["smtpd: invalid listen option: auth requires tls/smtps".into()]);
        }
        if l.pki.is_some() && l.tls.is_none() {
            return self.fatal(&["smtpd: invalid listen option: pki requires tls/smtps".into()]);
        }
        if l.port_spec.is_none() {
            l.port = if l.tls == Some(TlsMode::Smtps) {
                465
            } else {
                25
            };
        }
        let mut addrs: Vec<IpAddr> = self.env.interface_addrs(&l.on);
        if addrs.is_empty() {
            if let Ok(a) = l.on.parse::<std::net::Ipv4Addr>() {
                if l.family != Some(Family::Inet6) {
                    addrs.push(IpAddr::V4(a));
                }
            }
        }
        if addrs.is_empty() && !l.on.contains('%') {
            if let Ok(a) = l.on.parse::<std::net::Ipv6Addr>() {
                if l.family != Some(Family::Inet4) {
                    addrs.push(IpAddr::V6(a));
                }
            }
        }
        if addrs.is_empty() {
            let literal_of_other_family = match l.family {
                Some(Family::Inet6) => l.on.parse::<std::net::Ipv4Addr>().is_ok(),
                Some(Family::Inet4) => l.on.parse::<std::net::Ipv6Addr>().is_ok(),
                None => false,
            };
            if literal_of_other_family {
                // getaddrinfo() fails; OpenSMTPD warns and creates no listener for this line.
                self.lx.messages.push(Message::Plain(format!(
                    "warn: host_dns: could not parse \"{}\": Address family for hostname not supported",
                    l.on
                )));
                return Ok(());
            }
            addrs = self.env.resolve_host(&l.on);
        }
        addrs.retain(|a| match l.family {
            Some(Family::Inet4) => a.is_ipv4(),
            Some(Family::Inet6) => a.is_ipv6(),
            None => true,
        });
        if addrs.is_empty() {
            return self.fatal(&[format!("smtpd: invalid virtual ip or interface: {}", l.on)]);
        }
        if let Some(p) = &l.pki {
            if self.conf.pki(&p.to_ascii_lowercase()).is_none() {
                return self.fatal(&[format!("pki name not found: {}", p), "smtpd".into()]);
            }
        }
        if let Some(c) = &l.ca {
            if self.conf.ca(&c.to_ascii_lowercase()).is_none() {
                return self.fatal(&[format!("ca name not found: {}", c), "smtpd".into()]);
            }
        }
        l.addrs = addrs;
        self.conf.listeners.push(l);
        self.conf
            .order
            .push(Decl::Listener(self.conf.listeners.len() - 1));
        Ok(())
    }

    // ----- action -----

    fn action(&mut self) -> R<()> {
        let at = self.here();
        self.bump();
        let name = self.string()?;
        if self.conf.action(&name).is_some() {
            return self.fail(format!(
                "dispatcher already declared with that name: {}",
                name
            ));
        }
        let method = if self.eat_kw(K::Relay) {
            Method::Relay(self.relay_options()?)
        } else {
            Method::Local(self.local_delivery()?)
        };
        let mut ttl = None;
        while self.eat_kw(K::Ttl) {
            let s = self.string()?;
            if ttl.is_some() {
                return self.fail("ttl already specified for this dispatcher".into());
            }
            match delaytonum(&s) {
                Ok(d) => ttl = Some(d),
                Err(t) => return self.fail(format!("ttl delay \"{}\" is invalid", t)),
            }
        }
        self.conf.actions.push(Action {
            name,
            method,
            ttl,
            at,
        });
        self.conf
            .order
            .push(Decl::Action(self.conf.actions.len() - 1));
        Ok(())
    }

    fn format(&mut self, s: &str) -> R<Format> {
        match Format::parse(s) {
            Ok(f) => Ok(f),
            Err(e) => {
                self.defer(PendingCheck::Format(e.to_string()));
                // Kept as written; delivery fails on it as OpenSMTPD's does.
                Ok(Format {
                    raw: s.to_string(),
                    parts: vec![crate::format::Part::Literal(s.to_string())],
                })
            }
        }
    }

    fn local_delivery(&mut self) -> R<LocalDelivery> {
        let tok = self.peek().clone();
        let method = match tok {
            Tok::Kw(K::Mbox) => {
                self.bump();
                LocalMethod::Mbox
            }
            Tok::Kw(K::Maildir) => {
                self.bump();
                if self.eat_kw(K::Junk) {
                    LocalMethod::Maildir {
                        path: None,
                        junk: true,
                    }
                } else if self.at_str() {
                    let p = self.string()?;
                    let junk = self.eat_kw(K::Junk);
                    let path = Some(self.format(&p)?);
                    LocalMethod::Maildir { path, junk }
                } else {
                    LocalMethod::Maildir {
                        path: None,
                        junk: false,
                    }
                }
            }
            Tok::Kw(K::Lmtp) => {
                self.bump();
                let d = self.string()?;
                let rcpt_to = self.eat_kw(K::RcptTo);
                let destination = self.format(&d)?;
                LocalMethod::Lmtp {
                    destination,
                    rcpt_to,
                }
            }
            Tok::Kw(K::Mda) => {
                self.bump();
                let c = self.string()?;
                let command = self.format(&c)?;
                LocalMethod::Mda { command }
            }
            Tok::Kw(K::ForwardOnly) => {
                self.bump();
                LocalMethod::ForwardOnly
            }
            Tok::Kw(K::ExpandOnly) => {
                self.bump();
                LocalMethod::ExpandOnly
            }
            _ => return Err(Stop::Syntax),
        };
        let mut d = LocalDelivery {
            method,
            alias: None,
            virtual_: None,
            userbase: None,
            user: None,
            wrapper: None,
            written: Vec::new(),
        };
        const DUP: &str = "already specified for this dispatcher";
        loop {
            let tok = self.peek().clone();
            let opt = match tok {
                Tok::Kw(K::User) => {
                    self.bump();
                    let u = self.string()?;
                    let refused = match d.method {
                        LocalMethod::Mbox => Some("this dispatcher"),
                        LocalMethod::ForwardOnly => Some("forward-only"),
                        LocalMethod::ExpandOnly => Some("expand-only"),
                        _ => None,
                    };
                    if let Some(what) = refused {
                        return self.fail(format!("user may not be specified for {}", what));
                    }
                    self.once(&mut d.user, u, &format!("user {}", DUP))?;
                    LocalOpt::User
                }
                Tok::Kw(K::Alias) | Tok::Kw(K::Virtual) => {
                    self.bump();
                    let is_virtual = tok == Tok::Kw(K::Virtual);
                    // alias and virtual share one slot: the same name first, then the other.
                    let (mine, other) = if is_virtual {
                        (&d.virtual_, &d.alias)
                    } else {
                        (&d.alias, &d.virtual_)
                    };
                    let (me, them) = if is_virtual {
                        ("virtual", "alias")
                    } else {
                        ("alias", "virtual")
                    };
                    let dup = if mine.is_some() {
                        Some(format!("{} mapping {}", me, DUP))
                    } else if other.is_some() {
                        Some(format!("{} mapping {}", them, DUP))
                    } else {
                        None
                    };
                    let t = self.checked_tables(dup, Need::Hash, Service::Alias, me)?;
                    if is_virtual {
                        d.virtual_ = Some(t);
                        LocalOpt::Virtual
                    } else {
                        d.alias = Some(t);
                        LocalOpt::Alias
                    }
                }
                Tok::Kw(K::Userbase) => {
                    self.bump();
                    let dup = d
                        .userbase
                        .is_some()
                        .then(|| format!("userbase mapping {}", DUP));
                    let t = self.checked_tables(dup, Need::Hash, Service::Userinfo, "userbase")?;
                    d.userbase = Some(t);
                    LocalOpt::Userbase
                }
                Tok::Kw(K::Wrapper) => {
                    self.bump();
                    let w = self.string()?;
                    if !self.conf.mda_wrappers.iter().any(|(n, _)| *n == w) {
                        return self.fail(format!("no mda wrapper with that name: {}", w));
                    }
                    d.wrapper = Some(w);
                    LocalOpt::Wrapper
                }
                _ => return Ok(d),
            };
            d.written.push(opt);
        }
    }

    fn relay_options(&mut self) -> R<Relay> {
        let mut r = Relay::default();
        const DUP: &str = "already specified for this dispatcher";
        loop {
            let tok = self.peek().clone();
            let opt = match tok {
                Tok::Kw(K::Helo) | Tok::Kw(K::Pki) | Tok::Kw(K::Ca) | Tok::Kw(K::MailFrom) => {
                    self.bump();
                    let v = self.string()?;
                    let (slot, what, opt) = match tok {
                        Tok::Kw(K::Helo) => (&mut r.helo, "helo", RelayOpt::Helo),
                        Tok::Kw(K::Pki) => (&mut r.pki, "pki", RelayOpt::Pki),
                        Tok::Kw(K::Ca) => (&mut r.ca, "ca", RelayOpt::Ca),
                        _ => (&mut r.mail_from, "mail-from", RelayOpt::MailFrom),
                    };
                    self.once(slot, v, &format!("{} {}", what, DUP))?;
                    opt
                }
                Tok::Kw(K::HeloSrc) => {
                    self.bump();
                    let dup = r
                        .helo_src
                        .is_some()
                        .then(|| format!("helo-source mapping {}", DUP));
                    let t =
                        self.checked_tables(dup, Need::Hash, Service::Addrname, "helo-source")?;
                    r.helo_src = Some(t);
                    RelayOpt::HeloSrc
                }
                Tok::Kw(K::Src) => {
                    self.bump();
                    let dup = r.src.is_some().then(|| format!("source mapping {}", DUP));
                    r.src =
                        Some(self.checked_tables(dup, Need::List, Service::Source, "source")?);
                    RelayOpt::Src
                }
                Tok::Kw(K::Backup) => {
                    self.bump();
                    let mx = if self.eat_kw(K::Mx) {
                        Some(self.string()?)
                    } else {
                        None
                    };
                    if r.host.is_some() || r.domain.is_some() {
                        if r.backup.is_some() {
                            return self.fail(format!("backup {}", DUP));
                        }
                        return self.fail("backup and host are mutually exclusive".into());
                    }
                    self.once(&mut r.backup, mx, &format!("backup {}", DUP))?;
                    RelayOpt::Backup
                }
                Tok::Kw(K::Host) | Tok::Kw(K::Domain) => {
                    self.bump();
                    let is_host = tok == Tok::Kw(K::Host);
                    // host and domain share OpenSMTPD's one smarthost slot.
                    let dup = if r.host.is_some() || r.domain.is_some() {
                        Some(format!("host mapping {}", DUP))
                    } else if r.backup.is_some() {
                        let what = if is_host { "host" } else { "domain" };
                        Some(format!("backup and {} are mutually exclusive", what))
                    } else {
                        None
                    };
                    let need = if is_host { Need::List } else { Need::Hash };
                    let t = self.checked_tables(dup, need, Service::Relayhost, "host")?;
                    if is_host {
                        r.host = Some(t);
                        RelayOpt::Host
                    } else {
                        r.domain = Some(t);
                        RelayOpt::Domain
                    }
                }
                Tok::Kw(K::Tls) => {
                    self.bump();
                    let no_verify = self.eat_kw(K::NoVerify);
                    self.once(&mut r.tls, no_verify, &format!("tls {}", DUP))?;
                    RelayOpt::Tls
                }
                Tok::Kw(K::Auth) => {
                    self.bump();
                    let dup = if r.host.is_none() && r.domain.is_none() {
                        Some("auth may not be specified without host on a dispatcher".to_string())
                    } else if r.auth.is_some() {
                        Some(format!("auth mapping {}", DUP))
                    } else {
                        None
                    };
                    let t = self.checked_tables(dup, Need::Hash, Service::Credentials, "auth")?;
                    r.auth = Some(t);
                    RelayOpt::Auth
                }
                Tok::Kw(K::Filter) => {
                    let have = r.filter.is_some();
                    r.filter = Some(self.filter_option(have, &format!("filter {}", DUP))?);
                    RelayOpt::Filter
                }
                Tok::Kw(K::Srs) => {
                    self.bump();
                    if self.conf.options.srs_key.is_none() {
                        return self.fail(
                            "an srs key is required for srs to be specified in an action".into(),
                        );
                    }
                    self.flag_after_bump(&mut r.srs, &format!("srs {}", DUP))?;
                    RelayOpt::Srs
                }
                _ => return Ok(r),
            };
            r.written.push(opt);
        }
    }

    // ----- match -----

    fn match_(&mut self) -> R<()> {
        let mut rule = Rule {
            at: self.here(),
            ..Default::default()
        };
        self.bump();
        loop {
            let negate = self.negation();
            let tok = self.peek().clone();
            let criterion_at = self.here();
            let written = match tok {
                Tok::Kw(K::Tag) | Tok::Kw(K::Helo) | Tok::Kw(K::MailFrom) | Tok::Kw(K::RcptTo) => {
                    self.bump();
                    let (written, what, plain) = match tok {
                        Tok::Kw(K::Tag) => (Written::Tag, "tag", Service::String),
                        Tok::Kw(K::Helo) => (Written::Helo, "helo", Service::Domain),
                        Tok::Kw(K::MailFrom) => (Written::MailFrom, "mail-from", Service::Mailaddr),
                        _ => (Written::RcptTo, "rcpt-to", Service::Mailaddr),
                    };
                    let dup = rule.table_criterion(written).is_some();
                    let test = self.criterion_table(dup, what, plain, what)?;
                    *rule.table_criterion(written) = Some(Criterion { negate, test });
                    written
                }
                Tok::Kw(K::Tls) => {
                    self.bump();
                    if rule.tls.is_some() {
                        return self.fail("tls already specified for this rule".into());
                    }
                    rule.tls = Some(!negate);
                    Written::Tls
                }
                Tok::Kw(K::Auth) => {
                    self.bump();
                    let test = self.auth_tables(rule.auth.is_some(), "auth", "auth")?;
                    rule.auth = Some(Criterion { negate, test });
                    Written::Auth
                }
                Tok::Kw(K::From) => {
                    self.bump();
                    self.match_from(&mut rule, negate)?;
                    Written::From
                }
                Tok::Kw(K::For) => {
                    self.bump();
                    self.match_for(&mut rule, negate)?;
                    Written::For
                }
                _ if negate => return Err(Stop::Syntax),
                _ => break,
            };
            rule.written.push(written);
            rule.criteria_at.push((written, criterion_at));
        }
        if self.eat_kw(K::Reject) {
            rule.action = None;
        } else {
            self.kw(K::Action)?;
            let a = self.string()?;
            if self.conf.action(&a).is_none() {
                return self.fail(format!("no such dispatcher: {}", a));
            }
            rule.action = Some(a);
        }
        self.conf.rules.push(rule);
        self.conf.order.push(Decl::Rule(self.conf.rules.len() - 1));
        Ok(())
    }

    /// A `tables` argument checked in OpenSMTPD's order: the option given twice (`dup`, the
    /// message), then the table's kind for the lookup (`table "T" may not be used for LOOKUP
    /// lookups`), then (strict mode, at the end) its contents.
    fn checked_tables(
        &mut self,
        dup: Option<String>,
        need: Need,
        service: Service,
        lookup: &str,
    ) -> R<String> {
        let table = self.tables()?;
        if let Some(msg) = dup {
            return self.fail(msg);
        }
        if !self.usable(&table, need, service) {
            return self.fail(format!(
                "table \"{}\" may not be used for {} lookups",
                table, lookup
            ));
        }
        self.check_contents(&table, service)?;
        Ok(table)
    }

    /// `[regex] tables` of a rule criterion, checked in OpenSMTPD's order: the criterion given
    /// twice (`WHAT already specified for this rule`), then the table's kind for the lookup
    /// (`table "T" may not be used for LOOKUP lookups`).
    fn criterion_table(
        &mut self,
        dup: bool,
        what: &str,
        plain: Service,
        lookup: &str,
    ) -> R<TableTest> {
        let regex = self.eat_kw(K::Regex);
        let service = if regex { Service::Regex } else { plain };
        let dup = dup.then(|| format!("{} already specified for this rule", what));
        let table = self.checked_tables(dup, Need::List, service, lookup)?;
        Ok(TableTest { table, regex })
    }

    /// The optional `[regex] tables` after `auth` or `rdns`.
    fn opt_regex_tables(&mut self) -> R<Option<TableTest>> {
        let regex = self.eat_kw(K::Regex);
        if !regex && !self.table_starts() {
            return Ok(None);
        }
        let table = self.tables()?;
        Ok(Some(TableTest { table, regex }))
    }

    /// `auth [[regex] tables]`: a plain table may serve strings or credentials.
    fn auth_tables(&mut self, dup: bool, what: &str, lookup: &str) -> R<Option<TableTest>> {
        let test = self.opt_regex_tables()?;
        if dup {
            return self.fail(format!("{} already specified for this rule", what));
        }
        if let Some(tt) = &test {
            let ok = if tt.regex {
                self.usable(&tt.table, Need::List, Service::Regex)
            } else {
                // K_STRING|K_CREDENTIALS: any backend serving one of them.
                self.usable(&tt.table, Need::List, Service::String)
                    || self.usable(&tt.table, Need::List, Service::Credentials)
            };
            if !ok {
                return self.fail(format!(
                    "table \"{}\" may not be used for {} lookups",
                    tt.table, lookup
                ));
            }
            let s = if tt.regex {
                Service::Regex
            } else {
                Service::String
            };
            self.check_contents(&tt.table, s)?;
        }
        Ok(test)
    }

    fn match_from(&mut self, rule: &mut Rule, negate: bool) -> R<()> {
        let dup = rule.from.is_some();
        let tok = self.peek().clone();
        let from = match tok {
            Tok::Kw(K::Socket) | Tok::Kw(K::Local) | Tok::Kw(K::Any) => {
                self.bump();
                if dup {
                    return self.fail("from already specified for this rule".into());
                }
                match tok {
                    Tok::Kw(K::Socket) => From::Socket,
                    Tok::Kw(K::Local) => From::Local,
                    _ => From::Any,
                }
            }
            Tok::Kw(K::Src) => {
                self.bump();
                let t = self.criterion_table(dup, "from", Service::Netaddr, "from")?;
                From::Src(t)
            }
            Tok::Kw(K::Rdns) => {
                self.bump();
                let test = self.opt_regex_tables()?;
                if dup {
                    return self.fail("from already specified for this rule".into());
                }
                if let Some(tt) = &test {
                    // OpenSMTPD checks K_DOMAIN for `rdns regex` too.
                    if !self.usable(&tt.table, Need::List, Service::Domain) {
                        return self.fail(format!(
                            "table \"{}\" may not be used for rdns lookups",
                            tt.table
                        ));
                    }
                    let s = if tt.regex {
                        Service::Regex
                    } else {
                        Service::Domain
                    };
                    self.check_contents(&tt.table, s)?;
                }
                From::Rdns(test)
            }
            Tok::Kw(K::Auth) => {
                // `from auth` is `from any` plus an auth criterion that carries the negation.
                self.bump();
                let test = self.auth_tables(dup, "from", "from")?;
                rule.auth = Some(Criterion { negate, test });
                rule.from = Some(Criterion {
                    negate: false,
                    test: From::Auth,
                });
                return Ok(());
            }
            Tok::Kw(K::MailFrom) => {
                // `from mail-from T` is `from any` plus a mail-from criterion.
                self.bump();
                let test = self.criterion_table(dup, "from", Service::Mailaddr, "from")?;
                rule.mail_from = Some(Criterion { negate, test });
                rule.from = Some(Criterion {
                    negate: false,
                    test: From::MailFrom,
                });
                return Ok(());
            }
            _ => return Err(Stop::Syntax),
        };
        rule.from = Some(Criterion { negate, test: from });
        Ok(())
    }

    fn match_for(&mut self, rule: &mut Rule, negate: bool) -> R<()> {
        let dup = rule.for_.is_some();
        let tok = self.peek().clone();
        let test = match tok {
            Tok::Kw(K::Local) | Tok::Kw(K::Any) => {
                self.bump();
                if dup {
                    return self.fail("for already specified for this rule".into());
                }
                if tok == Tok::Kw(K::Local) {
                    For::Local
                } else {
                    For::Any
                }
            }
            Tok::Kw(K::Domain) => {
                self.bump();
                For::Domain(self.criterion_table(dup, "for", Service::Domain, "'for'")?)
            }
            Tok::Kw(K::RcptTo) => {
                // `for rcpt-to T` is `for any` plus a rcpt-to criterion.
                self.bump();
                let test = self.criterion_table(dup, "for", Service::Mailaddr, "for")?;
                rule.rcpt_to = Some(Criterion { negate, test });
                rule.for_ = Some(Criterion {
                    negate: false,
                    test: For::RcptTo,
                });
                return Ok(());
            }
            _ => return Err(Stop::Syntax),
        };
        rule.for_ = Some(Criterion { negate, test });
        Ok(())
    }

    // ----- filter -----

    fn filter(&mut self) -> R<()> {
        let at = self.here();
        let r = self.filter_declaration();
        // The filter (and a proc-exec's process) is where its `filter` keyword is.
        if r.is_ok() {
            if let Some(f) = self.conf.filters.last_mut() {
                f.at = at.clone();
            }
            if let Some(p) = self.conf.procs.last_mut() {
                if p.from_filter && p.at.line == 0 {
                    p.at = at;
                }
            }
        }
        r
    }

    fn filter_declaration(&mut self) -> R<()> {
        self.bump();
        let name = self.string()?;
        let tok = self.peek().clone();
        match tok {
            Tok::Kw(K::Proc) => {
                self.bump();
                let p = self.string()?;
                self.new_filter_name(&name)?;
                if self.conf.proc_(&p).is_none() {
                    return self.fail(format!("no processor exist with that name: {}", p));
                }
                self.filter_names
                    .insert(name.clone(), FilterName { is_chain: false });
                self.add_filter(name, FilterKind::Proc(p), false);
                Ok(())
            }
            Tok::Kw(K::ProcExec) => {
                self.bump();
                let command = self.string()?;
                self.new_filter_name(&name)?;
                self.filter_names
                    .insert(name.clone(), FilterName { is_chain: false });
                let mut p = Proc {
                    name: name.clone(),
                    command,
                    user: None,
                    group: None,
                    chroot: None,
                    from_filter: true,
                    at: Position::default(),
                };
                self.proc_params(&mut p)?;
                // A proc-exec filter's process shares the filter's name; it replaces any `proc`
                // of that name, as OpenSMTPD's dictionary does.
                self.conf.procs.retain(|q| q.name != p.name);
                self.conf.procs.push(p);
                self.add_filter(name.clone(), FilterKind::Proc(name), false);
                Ok(())
            }
            Tok::Kw(K::Phase) => {
                self.bump();
                self.new_filter_name(&name)?;
                self.filter_names
                    .insert(name.clone(), FilterName { is_chain: false });
                let b = self.filter_phase()?;
                self.add_filter(name, FilterKind::Builtin(b), false);
                Ok(())
            }
            Tok::Kw(K::Chain) => {
                self.bump();
                self.new_filter_name(&name)?;
                self.char(b'{')?;
                let list = self.filter_list()?;
                self.char(b'}')?;
                self.register_chain(name, list, false);
                Ok(())
            }
            _ => Err(Stop::Syntax),
        }
    }

    fn filter_list(&mut self) -> R<Vec<String>> {
        let mut list: Vec<String> = Vec::new();
        loop {
            let f = self.string()?;
            let Some(info) = self.filter_names.get(&f).cloned() else {
                return self.fail(format!("no filter exist with that name: {}", f));
            };
            if info.is_chain {
                return self.fail(format!(
                    "no filter chain allowed within a filter chain: {}",
                    f
                ));
            }
            if list.contains(&f) {
                return self.fail(format!(
                    "no filter allowed twice within a filter chain: {}",
                    f
                ));
            }
            // OpenSMTPD also means to refuse two filters of one proc in a chain, but its check
            // looks up a value it stored as NULL and never fires; such chains are accepted.
            list.push(f);
            if !self.comma() && self.at_char(b'}') {
                return Ok(list);
            }
        }
    }

    fn filter_phase(&mut self) -> R<BuiltinFilter> {
        let tok = self.peek().clone();
        let phase = match tok {
            Tok::Kw(K::Connect) => Phase::Connect,
            Tok::Kw(K::Helo) => Phase::Helo,
            Tok::Kw(K::Ehlo) => Phase::Ehlo,
            Tok::Kw(K::Auth) => Phase::Auth,
            Tok::Kw(K::MailFrom) => Phase::MailFrom,
            Tok::Kw(K::RcptTo) => Phase::RcptTo,
            Tok::Kw(K::Data) => Phase::Data,
            Tok::Kw(K::Commit) => Phase::Commit,
            _ => return Err(Stop::Syntax),
        };
        self.bump();
        self.kw(K::Match)?;
        let negate = self.negation();
        let allowed = |k: K| -> bool {
            use Phase::*;
            match k {
                K::Fcrdns | K::Rdns | K::Src => true,
                K::Helo => phase != Connect,
                K::Auth => !matches!(phase, Connect | Helo | Ehlo),
                K::MailFrom => !matches!(phase, Connect | Helo | Ehlo | Auth),
                K::RcptTo => phase == RcptTo,
                _ => false,
            }
        };
        let kw = match self.peek() {
            Tok::Kw(k) if allowed(*k) => *k,
            _ => return Err(Stop::Syntax),
        };
        self.bump();
        let check = match kw {
            K::Fcrdns => FilterCheck::Fcrdns,
            K::Rdns | K::Auth => match self.opt_regex_tables()? {
                None if kw == K::Rdns => FilterCheck::Rdns,
                None => FilterCheck::Auth,
                Some(t) => match (kw, t.regex) {
                    (K::Rdns, false) => FilterCheck::RdnsTable(t.table),
                    (K::Rdns, true) => FilterCheck::RdnsRegex(t.table),
                    (_, false) => FilterCheck::AuthTable(t.table),
                    (_, true) => FilterCheck::AuthRegex(t.table),
                },
            },
            _ => {
                let regex = self.eat_kw(K::Regex);
                let t = self.tables()?;
                match (kw, regex) {
                    (K::Src, false) => FilterCheck::SrcTable(t),
                    (K::Src, true) => FilterCheck::SrcRegex(t),
                    (K::Helo, false) => FilterCheck::HeloTable(t),
                    (K::Helo, true) => FilterCheck::HeloRegex(t),
                    (K::MailFrom, false) => FilterCheck::MailFromTable(t),
                    (K::MailFrom, true) => FilterCheck::MailFromRegex(t),
                    (_, false) => FilterCheck::RcptToTable(t),
                    (_, true) => FilterCheck::RcptToRegex(t),
                }
            }
        };
        if self.strict {
            if let Some((t, s)) = crate::validate::filter_check_table(&check) {
                self.check_contents(&t, s)?;
            }
        }
        let tok = self.peek().clone();
        let decision = match tok {
            Tok::Kw(K::Junk) if phase != Phase::Commit => {
                self.bump();
                Decision::Junk
            }
            Tok::Kw(K::Bypass) if phase != Phase::Commit => {
                self.bump();
                Decision::Bypass
            }
            Tok::Kw(k @ (K::Reject | K::Disconnect | K::Rewrite | K::Report)) => {
                self.bump();
                let s = self.string()?;
                match k {
                    K::Reject => Decision::Reject(s),
                    K::Disconnect => Decision::Disconnect(s),
                    K::Rewrite => Decision::Rewrite(s),
                    _ => Decision::Report(s),
                }
            }
            _ => return Err(Stop::Syntax),
        };
        Ok(BuiltinFilter {
            phase,
            negate,
            check,
            decision,
        })
    }
}

fn set_pair(v: &mut Vec<(String, i64)>, key: String, n: i64) {
    match v.iter_mut().find(|(k, _)| *k == key) {
        Some(p) => p.1 = n,
        None => v.push((key, n)),
    }
}

/// `delaytonum()`: digits followed by one of `s m h d`, at least 1 and at most INT_MAX seconds.
/// On failure, the text OpenSMTPD prints: it cuts the unit off before it parses the number, so a
/// known unit is missing from the message (`invalid ttl delay: 0` for `0s`).
pub fn delaytonum(s: &str) -> Result<u32, String> {
    if s.len() < 2 {
        return Err(s.to_string());
    }
    let (num, unit) = s.split_at(s.len() - 1);
    let factor: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(s.to_string()),
    };
    // strtonum accepts leading blanks and a sign, as strtoll does.
    let n: i64 = num.trim_start().parse().map_err(|_| num.to_string())?;
    if n < 1 || n > i64::from(i32::MAX) / factor {
        return Err(num.to_string());
    }
    u32::try_from(n * factor).map_err(|_| num.to_string())
}

/// OpenBSD's `scan_scaled()`: a number with an optional fraction and a unit among B K M G T P E.
pub fn scan_scaled(s: &str) -> Option<i64> {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (whole, rest) = t.split_at(digits_end);
    let (frac, rest) = match rest.strip_prefix('.') {
        Some(r) => {
            let e = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            (&r[..e], &r[e..])
        }
        None => ("", rest),
    };
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    let shift: u32 = match rest {
        "" | "b" | "B" => 0,
        "k" | "K" => 1,
        "m" | "M" => 2,
        "g" | "G" => 3,
        "t" | "T" => 4,
        "p" | "P" => 5,
        "e" | "E" => 6,
        _ => return None,
    };
    let w: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let scale: i64 = 1i64.checked_shl(10 * shift)?;
    let mut v = w.checked_mul(scale)?;
    if !frac.is_empty() && shift > 0 {
        // fractional part scaled and truncated, as scan_scaled does
        let f: f64 = format!("0.{}", frac).parse().ok()?;
        v = v.checked_add((f * scale as f64) as i64)?;
    }
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays() {
        assert_eq!(delaytonum("4d"), Ok(4 * 86400));
        assert_eq!(delaytonum("90s"), Ok(90));
        assert_eq!(delaytonum("1m"), Ok(60));
        assert_eq!(delaytonum("s"), Err("s".into()));
        assert_eq!(delaytonum("0h"), Err("0".into()));
        assert_eq!(delaytonum("4w"), Err("4w".into()));
        assert_eq!(delaytonum("4"), Err("4".into()));
        assert_eq!(delaytonum("99999999d"), Err("99999999".into()));
    }

    #[test]
    fn sizes() {
        assert_eq!(scan_scaled("10M"), Some(10 << 20));
        assert_eq!(scan_scaled("512k"), Some(512 << 10));
        assert_eq!(scan_scaled("1G"), Some(1 << 30));
        assert_eq!(scan_scaled("1.5K"), Some(1536));
        assert_eq!(scan_scaled("100B"), Some(100));
        assert_eq!(scan_scaled("10X"), None);
        assert_eq!(scan_scaled("M"), None);
    }
}
