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

mod action;
mod filter;
mod listen;
mod rule;
mod settings;
mod tables;

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

/// The `table-NAME` programs of opensmtpd-extras (what a typical machine of the tests has).
/// A backend is accepted only when its program exists, as `table_create()` stat()s it.
pub const EXTRAS_BACKENDS: &[&str] = &[
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
    // The unit is one ASCII byte, so cutting it off stays on a char boundary; anything else
    // (`1é`, which OpenSMTPD refuses as an unknown unit) is refused before any cut.
    let factor: i64 = match s.as_bytes().last() {
        Some(b's') => 1,
        Some(b'm') => 60,
        Some(b'h') => 3600,
        Some(b'd') => 86400,
        _ => return Err(s.to_string()),
    };
    let num = &s[..s.len() - 1];
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
        // A multibyte last character is an unknown unit (it once split the char and panicked).
        assert_eq!(delaytonum("1é"), Err("1é".into()));
        assert_eq!(delaytonum("é"), Err("é".into()));
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
