//! Table lookups as OpenSMTPD's `table.c`/`table_static.c` answer them, one function per service.
//!
//! Every lookup first lower-cases its key (`table_lookup()`), and static tables store their keys
//! lower-cased, so exact services are one hash probe. The services that compare with a function
//! (`K_DOMAIN`, `K_NETADDR`, `K_MAILADDR`, `K_REGEX`) iterate the whole table in OpenSMTPD; here
//! the exact part is still a hash probe and only the entries that can match otherwise (wildcards,
//! networks, regexes) are scanned, each list built once per table.
//!
//! Backends: static tables (inline, `file:`), the builtin ones (filled from [`HostInfo`]),
//! `db:` files (ours or OpenSMTPD's makemap's, loaded into memory, following their file: see
//! [`DbFile`]), `<getpwnam>` (through [`Users`]) and external `table-NAME` backends (`proc`:
//! one request to the backend per lookup, started by [`Tables::start_backends`]).
//!
//! The daemon holds its tables in a [`LiveTables`], which `smtpctl update table` swaps one table
//! at a time (see there).
//!
//! This file: the answers' types and one method of [`Tables`] per service. Beside it: `index`
//! (a static table compiled for lookups), `db` (`db:` files that follow their file), `live`
//! (`LiveTables`, updates), `users` (`<getpwnam>`), `builtin` (`<localhost>`...), `keys`,
//! `netaddr`, `values` (how keys and values are read, as OpenSMTPD's util.c and table.c), and
//! `posix_regex` (glibc's regexes in the regex crate's syntax).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use regex::RegexSet;
use rsmtpd_config::table::{Table, TableSource};
use rsmtpd_config::Config;
use rsmtpd_protocol::address::Mailaddr;
use rustc_hash::FxHashMap;

mod builtin;
mod db;
mod index;
mod keys;
mod live;
mod netaddr;
mod posix_regex;
mod proc;
mod users;
mod values;
/// Public for the fuzz target of credential tables.
pub use values::parse_credentials;

use builtin::*;
use db::*;
// The RCPT path (inbound::session_io) runs its expansion under it too.
pub(crate) use db::blocking;
use index::*;
pub use keys::*;
pub use live::*;
pub use netaddr::*;
pub use posix_regex::*;
use proc::*;
use rsmtpd_protocol::table_protocol::Service;
pub use users::*;
pub use values::*;

/// What a lookup that returns a value found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    Found(T),
    NotFound,
    /// The backend failed or cannot answer (OpenSMTPD's `-1`).
    TempFail,
}

impl<T> Lookup<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Lookup<U> {
        match self {
            Lookup::Found(v) => Lookup::Found(f(v)),
            Lookup::NotFound => Lookup::NotFound,
            Lookup::TempFail => Lookup::TempFail,
        }
    }
}

/// A match could not be decided (backend error, key too long): OpenSMTPD's `-1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TempFail;

pub type Match = Result<bool, TempFail>;

/// What the builtin tables are made of: the host name and the addresses of every interface.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostInfo {
    pub hostname: String,
    pub local_addrs: Vec<IpAddr>,
}

/// The client side of a session as the `K_NETADDR` service sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The local (unix) socket: OpenSMTPD's `ss_to_text()` gives `local`.
    Local,
    Addr(IpAddr),
}

impl Source {
    /// `ss_to_text()`: `local`, `a.b.c.d` or `[v6]`.
    pub fn to_text(&self) -> String {
        match self {
            Source::Local => "local".to_string(),
            Source::Addr(IpAddr::V4(a)) => a.to_string(),
            Source::Addr(IpAddr::V6(a)) => format!("[{}]", a),
        }
    }
}

/// A `K_USERINFO` answer: the user's name as looked up, ids and home directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    pub uid: u32,
    pub gid: u32,
    pub directory: String,
}

/// A `K_CREDENTIALS` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// A table as [`Tables`] holds it.
// Each slot is alone in its Arc, allocated once: boxing the larger variant would only add a hop.
#[allow(clippy::large_enum_variant)]
enum Slot {
    /// Contents fixed until `update table` replaces the slot.
    Fixed(Compiled),
    /// A `db:` table, whose contents follow its file.
    Db(DbFile),
    /// An external backend's table, asked at each lookup.
    Proc(ProcTable),
}

/// A table to look up in: fixed, or a `db:` table's current contents.
enum TableRef<'a> {
    Fixed(&'a Compiled),
    Db(arc_swap::Guard<Arc<DbVersion>>),
}

impl std::ops::Deref for TableRef<'_> {
    type Target = Compiled;
    fn deref(&self) -> &Compiled {
        match self {
            TableRef::Fixed(c) => c,
            TableRef::Db(v) => &v.compiled,
        }
    }
}

/// A table's contents, as [`Tables::table`] shows them.
pub struct TableContents<'a>(TableRef<'a>);

impl std::ops::Deref for TableContents<'_> {
    type Target = Table;
    fn deref(&self) -> &Table {
        &self.0.table
    }
}

/// Why a lookup failed (OpenSMTPD's `-1`): the `errno` text its `-T lookup` line shows, when
/// known.
#[derive(Debug, Default)]
pub(crate) struct Failed {
    why: Option<String>,
}

impl From<TempFail> for Failed {
    fn from(_: TempFail) -> Failed {
        Failed::default()
    }
}

/// The tables of a configuration, ready for lookups. Each table is behind an `Arc` so that an
/// update shares the unchanged ones with the tables it replaces.
pub struct Tables {
    map: FxHashMap<String, Arc<Slot>>,
    users: Arc<dyn Users>,
    delim: char,
}

impl std::fmt::Debug for Tables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tables")
            .field("tables", &self.map.len())
            .finish()
    }
}

impl Tables {
    /// Copies the configuration's tables, fills the builtin ones as `config.c` does, and compiles
    /// the regex tables the rules and filters use. For tests and tools; the daemon uses
    /// [`Tables::take_from`], which does not copy.
    pub fn new(conf: &Config, host: &HostInfo, users: Box<dyn Users>) -> Tables {
        Self::build(conf, conf.tables.clone(), host, users)
    }

    /// As [`Tables::new`], but moves the tables' contents out of the configuration instead of
    /// copying them, so that a large alias file is held once. `conf.tables` keeps every table's
    /// name, source and kind, which is all the daemon reads of it once it runs (the `smtpd -n`
    /// dump is made before, and validation at parse time); the contents are here only.
    pub fn take_from(conf: &mut Config, host: &HostInfo, users: Box<dyn Users>) -> Tables {
        let contents = conf
            .tables
            .iter_mut()
            .map(|t| {
                let mut shell = Table::new(t.name.clone(), t.anonymous, t.source.clone());
                shell.kind = t.kind;
                std::mem::replace(t, shell)
            })
            .collect();
        Self::build(conf, contents, host, users)
    }

    fn build(conf: &Config, tables: Vec<Table>, host: &HostInfo, users: Box<dyn Users>) -> Tables {
        let mut map = FxHashMap::default();
        for t in tables {
            let source = t.source.clone();
            let name = t.name.clone();
            let slot = match &source {
                TableSource::Db(path) => {
                    // stat() before reading, as table_db_open2() does: a change in between is
                    // then seen (and read again) at the next lookup rather than missed.
                    let stamp = Stamp::of(path).ok();
                    let loaded = db_table(&t.name, path).ok();
                    Slot::Db(DbFile::new(t, path, stamp, loaded))
                }
                TableSource::Builtin => {
                    let table = builtin(&t.name, host).unwrap_or(t);
                    Slot::Fixed(Compiled::new(table, source))
                }
                _ => Slot::Fixed(Compiled::new(t, source)),
            };
            map.insert(name, Arc::new(slot));
        }
        // A Config not made by the parser may lack them; rules still name them.
        for name in [
            "<localhost>",
            "<anyhost>",
            "<localnames>",
            "<anydestination>",
        ] {
            if !map.contains_key(name) {
                if let Some(t) = builtin(name, host) {
                    let c = Compiled::new(t, TableSource::Builtin);
                    map.insert(name.to_string(), Arc::new(Slot::Fixed(c)));
                }
            }
        }
        if !map.contains_key("<getpwnam>") {
            let t = Table::new("<getpwnam>".into(), false, TableSource::Getpwnam);
            let c = Compiled::new(t, TableSource::Getpwnam);
            map.insert("<getpwnam>".into(), Arc::new(Slot::Fixed(c)));
        }
        let tables = Tables {
            map,
            users: Arc::from(users),
            delim: conf.options.sub_addr_delim,
        };
        for name in regex_tables(conf) {
            if let Some(c) = tables.current(&name) {
                c.regexes();
            }
        }
        tables
    }

    /// `table_update()` on a copy: what the update of `name` does, and the tables with its new
    /// contents when it reloaded them. The other tables are shared, not copied.
    ///
    /// As OpenSMTPD's backends: a `file:` table reads its file again, keeping its kind
    /// (`table_static_update()`); an inline or builtin table has no file and is "updated" as it
    /// is; `db:` opens its file again, silently (`table_db_update()`), in its own slot, which
    /// every snapshot shares (so no new tables); `<getpwnam>` has nothing to do; an external
    /// backend is sent `UPDATE` and answers whether it reloaded (`table_proc_update()`).
    fn updated(&self, name: &str) -> (Update, Option<Tables>) {
        let Some(slot) = self.map.get(name) else {
            return (Update::NotFound, None);
        };
        let old = match &**slot {
            Slot::Db(db) => return (db.update(), None),
            Slot::Proc(p) => return (Self::proc_update(&p.backend), None),
            Slot::Fixed(c) => c,
        };
        let (outcome, table) = match &old.source {
            TableSource::Inline | TableSource::Builtin => return (Update::StaticUpdated, None),
            TableSource::Getpwnam => return (Update::Updated, None),
            // Db tables are always in a Slot::Db; a Proc one not in a Slot::Proc was not started.
            TableSource::Proc { .. } | TableSource::Db(_) => return (Update::Failed, None),
            TableSource::File(path) => match reload_file(&old.table, path) {
                Ok(t) => (Update::StaticUpdated, t),
                Err(line) => return (Update::StaticFailed(line), None),
            },
        };
        let fresh = Compiled::new(table, old.source.clone());
        fresh.prepare_like(old);
        let mut map = self.map.clone();
        map.insert(name.to_string(), Arc::new(Slot::Fixed(fresh)));
        let next = Tables {
            map,
            users: self.users.clone(),
            delim: self.delim,
        };
        (outcome, Some(next))
    }

    /// A table's contents as they are, without looking at a `db:` table's file.
    fn current(&self, name: &str) -> Option<TableRef<'_>> {
        Some(match &**self.map.get(name)? {
            Slot::Fixed(c) => TableRef::Fixed(c),
            Slot::Proc(p) => TableRef::Fixed(&p.shell),
            Slot::Db(db) => TableRef::Db(db.current.load()),
        })
    }

    /// The table a lookup is about to use: a `db:` table's file is stat()ed, and opened again
    /// when it changed (one stat per lookup, as table_db.c).
    fn lookup_in(&self, name: &str) -> Result<TableRef<'_>, Failed> {
        match self.map.get(name).map(|s| &**s) {
            None => Err(Failed::default()),
            Some(Slot::Fixed(c)) => Ok(TableRef::Fixed(c)),
            Some(Slot::Proc(p)) => Ok(TableRef::Fixed(&p.shell)),
            Some(Slot::Db(db)) => db.contents().map(TableRef::Db),
        }
    }

    /// `table_lookup()`'s `-T lookup` line for a match.
    fn trace_match(&self, table: &str, kind: &str, key: &str, r: &Result<bool, Failed>) {
        if crate::sys::log::tracing(crate::sys::log::Trace::Lookup) {
            let result = match r {
                Ok(true) => "true",
                Ok(false) => "false",
                Err(_) => "error: ",
            };
            self.trace_line("match", table, kind, key, result, failure_text(r));
        }
    }

    /// `table_lookup()`'s `-T lookup` line for a lookup with a value.
    fn trace_lookup(&self, table: &str, kind: &str, key: &str, r: &Result<Option<String>, Failed>) {
        if crate::sys::log::tracing(crate::sys::log::Trace::Lookup) {
            let result = match r {
                Ok(Some(v)) => format!("\"{}\"", v),
                Ok(None) => "none".to_string(),
                Err(_) => "error: ".to_string(),
            };
            self.trace_line("lookup", table, kind, key, &result, failure_text(r));
        }
    }

    fn trace_line(&self, verb: &str, table: &str, kind: &str, key: &str, result: &str, why: &str) {
        crate::sys::log::trace(
            crate::sys::log::Trace::Lookup,
            format_args!(
                "lookup: {} \"{}\" as {} in table {}:{} -> {}{}",
                verb,
                key,
                kind,
                self.backend_name(table),
                table,
                result,
                why
            ),
        );
    }

    /// The backend's name in traces (`static`, `getpwnam`, `db`, `proc`).
    fn backend_name(&self, table: &str) -> &'static str {
        match self.map.get(table).map(|s| &**s) {
            Some(Slot::Db(_)) => "db",
            Some(Slot::Proc(_)) => "proc",
            Some(Slot::Fixed(c)) => match c.source {
                TableSource::Getpwnam => "getpwnam",
                TableSource::Db(_) => "db",
                TableSource::Proc { .. } => "proc",
                _ => "static",
            },
            None => "static",
        }
    }

    /// The sub-address delimiter (`smtp sub-addr-delim`).
    pub fn delim(&self) -> char {
        self.delim
    }

    /// A table's contents (a `db:` table's as last read).
    pub fn table(&self, name: &str) -> Option<TableContents<'_>> {
        self.current(name).map(TableContents)
    }

    /// A table whose contents answer lookups here (not an external backend nor `<getpwnam>`).
    fn static_table(&self, name: &str) -> Result<TableRef<'_>, Failed> {
        let c = self.lookup_in(name)?;
        if c.backend == Backend::Static {
            Ok(c)
        } else {
            Err(Failed::default())
        }
    }

    /// `K_DOMAIN`: `hostname_match()` against every entry (`*` wildcards, case-insensitive).
    pub fn match_domain(&self, table: &str, domain: &str) -> Match {
        if let Some(b) = self.proc_backend(table) {
            return self.proc_match(b, table, Service::Domain, domain);
        }
        let r = self.match_domain_untraced(table, domain);
        self.trace_match(table, "DOMAIN", domain, &r);
        r.map_err(|_| TempFail)
    }

    fn match_domain_untraced(&self, table: &str, domain: &str) -> Result<bool, Failed> {
        let c = self.static_table(table)?;
        let key = lower_key(domain)?;
        if c.table.get(&key).is_some() {
            return Ok(true);
        }
        Ok(c.wild_domains().iter().any(|p| hostname_match(&key, p)))
    }

    /// `K_DOMAIN` with a value (relay `domain <t>`): the first matching entry in key order, as
    /// OpenSMTPD's sorted dict iteration finds it.
    pub fn lookup_domain(&self, table: &str, domain: &str) -> Lookup<String> {
        if let Some(b) = self.proc_backend(table) {
            return self.proc_value(b, table, Service::Domain, domain);
        }
        let Ok(c) = self.static_table(table) else {
            return Lookup::TempFail;
        };
        let Ok(key) = lower_key(domain) else {
            return Lookup::TempFail;
        };
        let mut best: Option<&str> = c.table.get(&key).map(|_| key.as_str());
        for p in c.wild_domains() {
            if hostname_match(&key, p) && best.is_none_or(|b| p.as_bytes() < b.as_bytes()) {
                best = Some(p);
            }
        }
        match best.and_then(|k| c.table.get(k)) {
            Some(Some(v)) => Lookup::Found(v.to_string()),
            Some(None) => Lookup::Found(String::new()),
            None => Lookup::NotFound,
        }
    }

    /// `K_NETADDR` for a session's source.
    pub fn match_netaddr(&self, table: &str, src: Source) -> Match {
        self.match_netaddr_text(table, &src.to_text())
    }

    /// `K_NETADDR` with a textual key, as `table_netaddr_match()` gets it: equal strings
    /// (case-insensitive) match, else both sides are parsed as networks and compared under the
    /// entry's mask. Used as such for `from rdns <t>`, where OpenSMTPD passes the host name.
    pub fn match_netaddr_text(&self, table: &str, key: &str) -> Match {
        if let Some(b) = self.proc_backend(table) {
            return self.proc_match(b, table, Service::Netaddr, key);
        }
        let r = self.match_netaddr_text_untraced(table, key);
        self.trace_match(table, "NETADDR", key, &r);
        r.map_err(|_| TempFail)
    }

    fn match_netaddr_text_untraced(&self, table: &str, key: &str) -> Result<bool, Failed> {
        let c = self.static_table(table)?;
        let key = lower_key(key)?;
        if c.table.get(&key).is_some() {
            return Ok(true);
        }
        let Some((addr, _)) = text_to_netaddr(&key) else {
            return Ok(false);
        };
        Ok(c.nets()
            .iter()
            .any(|&(net, bits)| net_contains(net, bits, addr)))
    }

    /// `K_MAILADDR` for an address.
    pub fn match_mailaddr(&self, table: &str, addr: &Mailaddr) -> Match {
        self.match_mailaddr_text(table, &format!("{}@{}", addr.user, addr.domain))
    }

    /// `K_MAILADDR` with a textual key (`user@domain`, `@` for the null sender, or a bare user as
    /// `from auth` passes it): `mailaddr_match()` against every entry. Entries are `@` (any),
    /// `@domain`, `user`, `user@domain`; a domain may have `*` wildcards; an entry's user without
    /// the sub-address delimiter also matches `user+tag`.
    pub fn match_mailaddr_text(&self, table: &str, key: &str) -> Match {
        if let Some(b) = self.proc_backend(table) {
            return self.proc_match(b, table, Service::Mailaddr, key);
        }
        let r = self.match_mailaddr_text_untraced(table, key);
        self.trace_match(table, "MAILADDR", key, &r);
        r.map_err(|_| TempFail)
    }

    fn match_mailaddr_text_untraced(&self, table: &str, key: &str) -> Result<bool, Failed> {
        let c = self.static_table(table)?;
        let key = lower_key(key)?;
        let (user, domain) = split_mailaddr(&key);
        let stripped = match user.find(self.delim) {
            Some(i) => &user[..i],
            None => user,
        };
        let t = &c.table;
        let has = |k: &str| t.get(k).is_some();
        if has("@") {
            return Ok(true);
        }
        if !domain.is_empty() && has(&format!("@{}", domain)) {
            return Ok(true);
        }
        for u in [user, stripped] {
            if u.is_empty() {
                continue;
            }
            // "u" and "u@" both have an empty domain part: no domain check.
            if has(u) || has(&format!("{}@", u)) {
                return Ok(true);
            }
            if !domain.is_empty() && has(&format!("{}@{}", u, domain)) {
                return Ok(true);
            }
        }
        let delim = self.delim;
        Ok(c.wild_mailaddrs().iter().any(|(eu, ed)| {
            if !hostname_match(domain, ed) {
                return false;
            }
            if eu.is_empty() {
                return true;
            }
            let u = if eu.contains(delim) { user } else { stripped };
            u == &**eu
        }))
    }

    /// `K_REGEX`: POSIX extended regexes, searched (not anchored) in the lower-cased key; a
    /// pattern starting with `(?i)` is case-insensitive (moot, since both sides are lower-cased).
    pub fn match_regex(&self, table: &str, key: &str) -> Match {
        if let Some(b) = self.proc_backend(table) {
            return self.proc_match(b, table, Service::Regex, key);
        }
        let r = self.match_regex_untraced(table, key);
        self.trace_match(table, "REGEX", key, &r);
        r.map_err(|_| TempFail)
    }

    fn match_regex_untraced(&self, table: &str, key: &str) -> Result<bool, Failed> {
        let c = self.static_table(table)?;
        let key = lower_key(key)?;
        Ok(c.regexes().is_match(&key))
    }

    /// `K_STRING`: exact (lower-cased) key.
    pub fn match_string(&self, table: &str, key: &str) -> Match {
        if let Some(b) = self.proc_backend(table) {
            return self.proc_match(b, table, Service::String, key);
        }
        let r = self.match_string_untraced(table, key);
        self.trace_match(table, "STRING", key, &r);
        r.map_err(|_| TempFail)
    }

    fn match_string_untraced(&self, table: &str, key: &str) -> Result<bool, Failed> {
        let c = self.static_table(table)?;
        let key = lower_key(key)?;
        Ok(c.table.get(&key).is_some())
    }

    /// The value of a key, exact (what `K_ALIAS`, `K_MAILADDRMAP`, `K_ADDRNAME`, `K_CREDENTIALS`
    /// and `K_RELAYHOST` look up in a static table).
    fn value(&self, table: &str, key: &str) -> Lookup<String> {
        self.value_of(table, Service::Alias, key)
    }

    /// [`value`] for a service, traced as `-T lookup` shows it.
    fn value_of(&self, table: &str, s: Service, key: &str) -> Lookup<String> {
        if let Some(b) = self.proc_backend(table) {
            return self.proc_value(b, table, s, key);
        }
        let kind = s.name();
        let r = self
            .static_table(table)
            .and_then(|c| Self::value_in(&c, key));
        self.trace_lookup(table, kind, key, &r);
        match r {
            Ok(Some(v)) => Lookup::Found(v),
            Ok(None) => Lookup::NotFound,
            Err(_) => Lookup::TempFail,
        }
    }

    fn value_in(c: &Compiled, key: &str) -> Result<Option<String>, Failed> {
        let key = lower_key(key)?;
        Ok(match c.table.get(&key) {
            Some(Some(v)) => Some(v.to_string()),
            // A list entry has no value: OpenSMTPD hands the dict's sentinel to the parser; treat
            // it as an empty value, which every value parser refuses.
            Some(None) => Some(String::new()),
            None => None,
        })
    }

    /// `K_ALIAS`: the raw value (parse it with [`crate::routing::alias::parse_alias_value`]).
    pub fn alias(&self, table: &str, key: &str) -> Lookup<String> {
        self.value(table, key)
    }

    /// `K_USERINFO`: a userbase entry `uid:gid:directory`, or the system's user for
    /// `<getpwnam>`. A malformed entry is a temporary failure, as in OpenSMTPD.
    pub fn userinfo(&self, table: &str, user: &str) -> Lookup<UserInfo> {
        let Ok(key) = lower_key(user) else {
            return Lookup::TempFail;
        };
        if let Some(b) = self.proc_backend(table) {
            return match self.proc_value(b, table, Service::Userinfo, &key) {
                Lookup::Found(v) => match parse_userinfo(&key, &v) {
                    Some(u) => Lookup::Found(u),
                    None => Lookup::TempFail,
                },
                Lookup::NotFound => Lookup::NotFound,
                Lookup::TempFail => Lookup::TempFail,
            };
        }
        // One resolution (one stat of a db: file) for the whole lookup.
        let c = match self.lookup_in(table) {
            Ok(c) => c,
            Err(e) => {
                self.trace_lookup(table, "USERINFO", &key, &Err(e));
                return Lookup::TempFail;
            }
        };
        let r = match c.backend {
            Backend::Getpwnam => return self.users.getpwnam(&key),
            Backend::Unsupported => return Lookup::TempFail,
            Backend::Static => Self::value_in(&c, &key),
        };
        self.trace_lookup(table, "USERINFO", &key, &r);
        match r {
            Ok(Some(v)) => match parse_userinfo(&key, &v) {
                Some(u) => Lookup::Found(u),
                None => Lookup::TempFail,
            },
            Ok(None) => Lookup::NotFound,
            Err(_) => Lookup::TempFail,
        }
    }

    /// `K_CREDENTIALS`: `user:password` or just `password` (the key being the user).
    pub fn credentials(&self, table: &str, user: &str) -> Lookup<Credentials> {
        match self.value_of(table, Service::Credentials, user) {
            Lookup::Found(v) => match parse_credentials(&user.to_ascii_lowercase(), &v) {
                Some(c) => Lookup::Found(c),
                None => Lookup::TempFail,
            },
            Lookup::NotFound => Lookup::NotFound,
            Lookup::TempFail => Lookup::TempFail,
        }
    }

    /// `K_MAILADDRMAP` (listener `senders <t>`): the addresses a user may send as.
    pub fn mailaddrmap(&self, table: &str, key: &str) -> Lookup<Vec<Mailaddr>> {
        match self.value_of(table, Service::Mailaddrmap, key) {
            Lookup::Found(v) => match parse_mailaddr_line(&v) {
                Some(list) => Lookup::Found(list),
                None => Lookup::TempFail,
            },
            Lookup::NotFound => Lookup::NotFound,
            Lookup::TempFail => Lookup::TempFail,
        }
    }

    /// `K_ADDRNAME` (listener `hostnames <t>`): the name to present on a local address.
    pub fn addrname(&self, table: &str, addr: IpAddr) -> Lookup<String> {
        let key = Source::Addr(addr).to_text();
        self.value_of(table, Service::Addrname, &key)
    }

    /// `K_RELAYHOST`: a relay URL by key.
    pub fn relayhost(&self, table: &str, key: &str) -> Lookup<String> {
        self.value_of(table, Service::Relayhost, key)
    }
}

/// The `strerror()` text a failed lookup's trace ends with, when there is one.
fn failure_text<T>(r: &Result<T, Failed>) -> &str {
    match r {
        Err(Failed { why: Some(w) }) => w,
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_match_cases() {
        let cases: &[(&str, &str, bool)] = &[
            ("bsdsx.fr", "bsdsx.fr", true),
            ("BSDSX.fr", "bsdsx.fr", true),
            ("a.bsdsx.fr", "*.bsdsx.fr", true),
            ("b.a.bsdsx.fr", "*.bsdsx.fr", false),
            ("bsdsx.fr", "*.bsdsx.fr", false),
            ("absdsx.fr", "*.bsdsx.fr", false),
            ("x", "*", true),
            ("", "*", false),
            ("abc", "a*c", true),
            ("abc", "a*", true),
            ("mail.example.org", "mail.*", true),
            ("mail.example.org", "mail.*.org", true),
        ];
        for &(h, p, want) in cases {
            assert_eq!(hostname_match(h, p), want, "{} vs {}", h, p);
        }
    }

    #[test]
    fn netaddr_parse() {
        let v4 = |s: &str| text_to_netaddr(s);
        assert_eq!(
            v4("10.0.0.0/8"),
            Some((
                "10.0.0.0"
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                8
            ))
        );
        assert_eq!(v4("10").map(|x| x.1), Some(8));
        assert_eq!(v4("10.1").map(|x| x.1), Some(16));
        assert_eq!(v4("192.168.1").map(|x| x.1), Some(24));
        assert_eq!(v4("1.2.3.4").map(|x| x.1), Some(32));
        assert_eq!(v4("300.0.0.0/8"), None);
        assert_eq!(v4("1.2.3.4/33"), None);
        assert_eq!(v4("1.2.3.4.5"), None);
        assert_eq!(v4("::1").map(|x| x.1), Some(128));
        assert_eq!(v4("[::1]").map(|x| x.1), Some(128));
        assert_eq!(v4("IPv6:fe80::/10").map(|x| x.1), Some(10));
        assert_eq!(v4("[IPv6:::1]").map(|x| x.1), Some(128));
        assert_eq!(v4("local"), None);
    }

    #[test]
    fn posix_translation() {
        let ok = |p: &str| compile_posix_ere(p).map(|x| x.0);
        assert_eq!(ok("a\\d").as_deref(), Some("ad"));
        assert_eq!(ok("[\\]").as_deref(), Some("[\\\\]"));
        assert_eq!(ok("[]a]").as_deref(), Some("[\\]a]"));
        assert_eq!(ok("[[:alpha:]]+").as_deref(), Some("[[:alpha:]]+"));
        assert_eq!(ok("(a)\\1"), None);
        assert!(ok("^.*@example\\.com$").is_some());
    }
}
