//! The typed configuration: what every other part of the server reads.
//!
//! Names follow smtpd.conf's own words (listener, action, rule, filter, table) rather than
//! OpenSMTPD's internal ones (dispatcher, ruleset), so that the code reads like the config.
//! References between objects are by name, exactly as the config writes them; the parser has
//! already checked that every name resolves.

use std::net::IpAddr;

use crate::env::Family;
use crate::format::Format;
use crate::table::Table;

/// smtpd.conf's defaults (smtpd.h / config.c).
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 35 * 1024 * 1024;
pub const DEFAULT_MAX_RCPT: i64 = 1000;
pub const DEFAULT_MAX_MAILS: i64 = 100;
pub const DEFAULT_QUEUE_TTL: u32 = 4 * 24 * 3600;
pub const DEFAULT_BOUNCE_WARN: u32 = 4 * 3600;
pub const DEFAULT_SRS_TTL_DAYS: u32 = 4;
pub const DEFAULT_MTA_MAX_DEFERRED: i64 = 100;
/// The control socket OpenSMTPD listens on for `smtpctl` and local submission.
pub const DEFAULT_SOCKET_PATH: &str = "/var/run/smtpd.sock";

/// Where something was written: the file as the config names it (as error lines name it) and
/// the line. It is not part of what the config means, so any two positions compare equal: a
/// config and the config read back from its dump are equal. The daemon uses positions to name
/// the line of a feature it refuses at start.
#[derive(Debug, Clone, Default)]
pub struct Position {
    pub file: String,
    pub line: u32,
}

impl PartialEq for Position {
    fn eq(&self, _: &Position) -> bool {
        true
    }
}

impl Eq for Position {}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Options of one declaration with the positions they were written at (a declaration may span
/// lines: lists in braces, `\` continuations).
pub type Placed<T> = Vec<(T, Position)>;

/// The position of the first option `opt` in `placed`, else `default` (the declaration's).
pub fn position_of<'a, T: PartialEq>(
    placed: &'a Placed<T>,
    opt: T,
    default: &'a Position,
) -> &'a Position {
    placed
        .iter()
        .find(|(o, _)| *o == opt)
        .map(|(_, p)| p)
        .unwrap_or(default)
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// Every table, the builtin ones first, in creation order (anonymous ones are numbered in
    /// that order, which is why the canonical dump keeps declarations in source order).
    pub tables: Vec<Table>,
    pub pkis: Vec<Pki>,
    pub cas: Vec<Ca>,
    pub procs: Vec<Proc>,
    pub filters: Vec<Filter>,
    /// The `listen on socket` options; the socket exists even when the config does not say so.
    pub socket: SocketListener,
    pub listeners: Vec<Listener>,
    pub actions: Vec<Action>,
    pub rules: Vec<Rule>,
    pub mda_wrappers: Vec<(String, String)>,
    pub options: Options,
    /// Declarations in the order the config made them, for the canonical dump.
    pub order: Vec<Decl>,
}

/// A top-level declaration, by index into the matching list of [`Config`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decl {
    Table(usize),
    Pki(usize),
    Ca(usize),
    Proc(usize),
    Filter(usize),
    Socket,
    Listener(usize),
    Action(usize),
    Rule(usize),
    Wrapper(usize),
}

/// The global `smtp`, `queue`, `mta`, `mda`, `scheduler`, `srs`, `bounce` and `admd` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub max_message_size: u64,
    pub max_rcpt: i64,
    pub max_mails: i64,
    pub sub_addr_delim: char,
    pub ciphers: Option<String>,
    pub queue_compression: bool,
    pub queue_encryption: bool,
    /// The key, or `stdin` when it is to be asked for at start.
    pub queue_key: Option<String>,
    pub queue_ttl: u32,
    /// `bounce warn-interval`: up to 4 delays, in seconds.
    pub bounce_warn: Vec<u32>,
    pub mta_max_deferred: i64,
    /// `mta limit` settings: the default set, then per-domain sets.
    pub mta_limits: Vec<MtaLimits>,
    pub mda_limits: Vec<(String, i64)>,
    pub scheduler_limits: Vec<(String, i64)>,
    pub srs_key: Option<String>,
    pub srs_key_backup: Option<String>,
    pub srs_ttl_days: u32,
    pub admd: Option<String>,
    /// Where `smtp ciphers` was written.
    pub ciphers_at: Position,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_rcpt: DEFAULT_MAX_RCPT,
            max_mails: DEFAULT_MAX_MAILS,
            sub_addr_delim: '+',
            ciphers: None,
            queue_compression: false,
            queue_encryption: false,
            queue_key: None,
            queue_ttl: DEFAULT_QUEUE_TTL,
            bounce_warn: vec![DEFAULT_BOUNCE_WARN],
            mta_max_deferred: DEFAULT_MTA_MAX_DEFERRED,
            mta_limits: Vec::new(),
            mda_limits: Vec::new(),
            scheduler_limits: Vec::new(),
            srs_key: None,
            srs_key_backup: None,
            srs_ttl_days: DEFAULT_SRS_TTL_DAYS,
            admd: None,
            ciphers_at: Position::default(),
        }
    }
}

/// One `mta limit [for domain D]` set, as the settings were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtaLimits {
    pub domain: Option<String>,
    pub family: Option<Family>,
    pub values: Vec<(String, i64)>,
}

/// The keys `mta limit` accepts (limit.c `limit_mta_set`).
pub const MTA_LIMIT_KEYS: &[&str] = &[
    "max-conn-per-host",
    "max-conn-per-route",
    "max-conn-per-source",
    "max-conn-per-connector",
    "max-conn-per-relay",
    "max-conn-per-domain",
    "conn-delay-host",
    "conn-delay-route",
    "conn-delay-source",
    "conn-delay-connector",
    "conn-delay-relay",
    "conn-delay-domain",
    "reconn-delay-route",
    "session-mail-max",
    "session-transaction-delay",
    "session-keepalive",
    "max-failures-per-session",
    "task-hiwat",
    "task-lowat",
    "task-release",
];

/// `mta limit` keys of ours, beyond 6.8 (which refuses them: `invalid mta limit keyword`):
/// `destination-rate-delay N|Ns|Nm|Nh|Nd`, one delivery at a time to a destination and N
/// seconds between the end of one and the start of the next (OpenSMTPD's issue #1278).
pub const MTA_LIMIT_KEYS_OURS: &[&str] = &["destination-rate-delay"];

pub const MDA_LIMIT_KEYS: &[&str] = &[
    "max-session",
    "max-session-per-user",
    "task-lowat",
    "task-hiwat",
    "task-release",
];

pub const SCHEDULER_LIMIT_KEYS: &[&str] = &[
    "max-inflight",
    "max-evp-batch-size",
    "max-msg-batch-size",
    "max-schedule",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dhe {
    None,
    Auto,
    Legacy,
}

/// `pki NAME ...`: lines with the same name add to one pki.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pki {
    /// Lower-cased, `*` or a host name.
    pub name: String,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub dhe: Option<Dhe>,
    /// Its first line.
    pub at: Position,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ca {
    pub name: String,
    pub cert: Option<String>,
    /// Its first line.
    pub at: Position,
}

/// `proc NAME "COMMAND"`, and the process a `proc-exec` filter starts (named after the filter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub name: String,
    pub command: String,
    pub user: Option<String>,
    pub group: Option<String>,
    pub chroot: Option<String>,
    /// True for the process of a `filter NAME proc-exec` (dumped with its filter).
    pub from_filter: bool,
    pub at: Position,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub name: String,
    pub kind: FilterKind,
    /// `<dynchain:N>` chains written inline in `listen on ... filter { a, b }` or in a relay action.
    pub anonymous: bool,
    pub at: Position,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterKind {
    Builtin(BuiltinFilter),
    /// `filter NAME proc PROC` or `filter NAME proc-exec` (whose proc is named after the filter).
    Proc(String),
    Chain(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Connect,
    Helo,
    Ehlo,
    Auth,
    MailFrom,
    RcptTo,
    Data,
    Commit,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Helo => "helo",
            Phase::Ehlo => "ehlo",
            Phase::Auth => "auth",
            Phase::MailFrom => "mail-from",
            Phase::RcptTo => "rcpt-to",
            Phase::Data => "data",
            Phase::Commit => "commit",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltinFilter {
    pub phase: Phase,
    pub negate: bool,
    pub check: FilterCheck,
    pub decision: Decision,
}

/// What a builtin filter looks at. Tables are referenced by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterCheck {
    Fcrdns,
    Rdns,
    RdnsTable(String),
    RdnsRegex(String),
    SrcTable(String),
    SrcRegex(String),
    HeloTable(String),
    HeloRegex(String),
    Auth,
    AuthTable(String),
    AuthRegex(String),
    MailFromTable(String),
    MailFromRegex(String),
    RcptToTable(String),
    RcptToRegex(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Reject(String),
    Disconnect(String),
    Rewrite(String),
    Report(String),
    Junk,
    Bypass,
}

/// `listen on socket`: the local control socket, also used by `sendmail` to submit mail.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SocketListener {
    /// Whether the config has a `listen on socket` line (else the defaults apply).
    pub declared: bool,
    pub filter: Option<String>,
    pub mask_src: bool,
    pub tag: Option<String>,
    pub at: Position,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// `tls`: STARTTLS offered.
    StartTls,
    /// `tls-require [verify]`: STARTTLS required before MAIL.
    StartTlsRequire,
    /// `smtps`: TLS from the first byte.
    Smtps,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortSpec {
    Number(u16),
    /// A service name as written (`smtp`, `submission`); its number is in `Listener::port`.
    Name,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    Required(Option<String>),
    Optional(Option<String>),
}

/// `listen on IFACE|ADDR|HOST [options]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The interface, address or host name as written.
    pub on: String,
    /// The addresses it stands for on this machine, resolved as OpenSMTPD does: interface name,
    /// then IPv4 literal, then IPv6 literal, then host name.
    pub addrs: Vec<IpAddr>,
    pub family: Option<Family>,
    /// The port as written (number or service name), if given.
    pub port_spec: Option<(PortSpec, String)>,
    /// The effective port: given, or 465 for `smtps`, or 25.
    pub port: u16,
    pub tls: Option<TlsMode>,
    pub tls_verify: bool,
    pub pki: Option<String>,
    pub ca: Option<String>,
    pub auth: Option<AuthMode>,
    pub tag: Option<String>,
    pub hostname: Option<String>,
    pub hostnames: Option<String>,
    pub mask_src: bool,
    pub received_auth: bool,
    pub no_dsn: bool,
    pub proxy_v2: bool,
    pub senders: Option<String>,
    pub masquerade: bool,
    pub filter: Option<String>,
    /// Options in the order written, for the dump (anonymous tables are numbered in that order).
    pub written: Vec<ListenOpt>,
    /// The `listen` keyword's position, and each option's.
    pub at: Position,
    pub options_at: Placed<ListenOpt>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenOpt {
    Family,
    Port,
    Filter,
    Tls,
    Pki,
    Ca,
    Auth,
    Tag,
    Hostname,
    Hostnames,
    MaskSrc,
    ReceivedAuth,
    NoDsn,
    ProxyV2,
    Senders,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalOpt {
    User,
    Alias,
    Virtual,
    Userbase,
    Wrapper,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayOpt {
    Helo,
    HeloSrc,
    Pki,
    Ca,
    Src,
    MailFrom,
    Backup,
    Host,
    Domain,
    Tls,
    Auth,
    Filter,
    Srs,
}

impl Listener {
    pub fn new(on: String) -> Listener {
        Listener {
            on,
            addrs: Vec::new(),
            family: None,
            port_spec: None,
            port: 25,
            tls: None,
            tls_verify: false,
            pki: None,
            ca: None,
            auth: None,
            tag: None,
            hostname: None,
            hostnames: None,
            mask_src: false,
            received_auth: false,
            no_dsn: false,
            proxy_v2: false,
            senders: None,
            masquerade: false,
            filter: None,
            written: Vec::new(),
            at: Position::default(),
            options_at: Vec::new(),
        }
    }

    /// Where option `opt` was written (the `listen` line if it was not).
    pub fn option_at(&self, opt: ListenOpt) -> &Position {
        position_of(&self.options_at, opt, &self.at)
    }

    /// A loopback listener is "local" for `from local` rules, as OpenSMTPD decides.
    pub fn is_loopback(addr: &IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => a.octets() == [127, 0, 0, 1],
            IpAddr::V6(a) => a.is_loopback(),
        }
    }
}

/// `action NAME METHOD [options]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub name: String,
    pub method: Method,
    /// `ttl DELAY`, in seconds.
    pub ttl: Option<u32>,
    pub at: Position,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Local(LocalDelivery),
    Relay(Relay),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalMethod {
    Mbox,
    Maildir { path: Option<Format>, junk: bool },
    Lmtp { destination: Format, rcpt_to: bool },
    Mda { command: Format },
    ForwardOnly,
    ExpandOnly,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDelivery {
    pub method: LocalMethod,
    pub alias: Option<String>,
    pub virtual_: Option<String>,
    /// The `userbase` table if given; see [`LocalDelivery::userbase`].
    pub userbase: Option<String>,
    pub user: Option<String>,
    pub wrapper: Option<String>,
    pub written: Vec<LocalOpt>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Relay {
    pub helo: Option<String>,
    pub helo_src: Option<String>,
    pub pki: Option<String>,
    pub ca: Option<String>,
    pub src: Option<String>,
    pub mail_from: Option<String>,
    /// `backup [mx NAME]`.
    pub backup: Option<Option<String>>,
    /// `host <t>`: smarthosts (a list of relay URLs).
    pub host: Option<String>,
    /// `domain <t>`: smarthost per destination domain (a map).
    pub domain: Option<String>,
    /// `tls [no-verify]`: Some(no_verify).
    pub tls: Option<bool>,
    pub auth: Option<String>,
    pub filter: Option<String>,
    pub srs: bool,
    pub written: Vec<RelayOpt>,
}

/// A criterion of a `match` rule: whether it is negated, and what it tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Criterion<T> {
    pub negate: bool,
    pub test: T,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum From {
    Any,
    Local,
    Socket,
    Src(TableTest),
    Rdns(Option<TableTest>),
    /// `from auth [...]`: any source; the auth criterion (and its negation) is in `Rule::auth`.
    Auth,
    /// `from mail-from <t>`: any source; the criterion is in `Rule::mail_from`.
    MailFrom,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum For {
    Any,
    Local,
    Domain(TableTest),
    /// `for rcpt-to <t>`: any destination; the criterion is in `Rule::rcpt_to`.
    RcptTo,
}

/// A table-valued criterion (`tag`, `helo`, `mail-from`, `rcpt-to`, `auth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableTest {
    pub table: String,
    pub regex: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    /// None means the default, `from local`.
    pub from: Option<Criterion<From>>,
    /// None means the default, `for local`.
    pub for_: Option<Criterion<For>>,
    pub tag: Option<Criterion<TableTest>>,
    pub helo: Option<Criterion<TableTest>>,
    pub mail_from: Option<Criterion<TableTest>>,
    pub rcpt_to: Option<Criterion<TableTest>>,
    pub tls: Option<bool>,
    /// `auth` (table None) or `auth <t>` / `auth regex <t>`; Some(negate, table).
    pub auth: Option<Criterion<Option<TableTest>>>,
    /// Criteria in the order written, for the dump.
    pub written: Vec<Written>,
    /// None for `reject`.
    pub action: Option<String>,
    /// The `match` keyword's position, and each criterion's.
    pub at: Position,
    pub criteria_at: Placed<Written>,
}

/// Which criterion came where in a `match` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    From,
    For,
    Tag,
    Helo,
    MailFrom,
    RcptTo,
    Tls,
    Auth,
}

impl LocalDelivery {
    /// The table of users: the one given, else `<getpwnam>`, the system's users.
    pub fn userbase(&self) -> &str {
        self.userbase.as_deref().unwrap_or("<getpwnam>")
    }
}

impl Rule {
    /// Where criterion `w` was written (the `match` line if it was not).
    pub fn criterion_at(&self, w: Written) -> &Position {
        position_of(&self.criteria_at, w, &self.at)
    }

    /// The slot of a table-valued criterion (`tag`, `helo`, `mail-from`, `rcpt-to`).
    pub fn table_criterion(&mut self, w: Written) -> &mut Option<Criterion<TableTest>> {
        match w {
            Written::Tag => &mut self.tag,
            Written::Helo => &mut self.helo,
            Written::MailFrom => &mut self.mail_from,
            _ => &mut self.rcpt_to,
        }
    }
}

impl Config {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }
    pub fn action(&self, name: &str) -> Option<&Action> {
        self.actions.iter().find(|a| a.name == name)
    }
    pub fn filter(&self, name: &str) -> Option<&Filter> {
        self.filters.iter().find(|f| f.name == name)
    }
    pub fn pki(&self, name: &str) -> Option<&Pki> {
        self.pkis.iter().find(|p| p.name == name)
    }
    pub fn ca(&self, name: &str) -> Option<&Ca> {
        self.cas.iter().find(|c| c.name == name)
    }
    pub fn proc_(&self, name: &str) -> Option<&Proc> {
        self.procs.iter().find(|p| p.name == name)
    }
}
