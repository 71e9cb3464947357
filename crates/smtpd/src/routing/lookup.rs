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
//! [`DbFile`]) and `<getpwnam>` (through [`Users`]) are served. External `table-NAME` backends
//! are not yet: every lookup in them is a temporary failure, which the callers turn into
//! `451`/`424` replies, so mail is deferred rather than misrouted.
//!
//! The daemon holds its tables in a [`LiveTables`], which `smtpctl update table` swaps one table
//! at a time (see there).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use regex::RegexSet;
use rsmtpd_config::table::{Table, TableSource};
use rsmtpd_config::Config;
use rsmtpd_protocol::address::Mailaddr;
use rustc_hash::FxHashMap;

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

/// The system's user database, behind `<getpwnam>`.
pub trait Users: Send + Sync {
    fn getpwnam(&self, name: &str) -> Lookup<UserInfo>;
}

/// `getpwnam(3)` through nix.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemUsers;

impl Users for SystemUsers {
    fn getpwnam(&self, name: &str) -> Lookup<UserInfo> {
        match nix::unistd::User::from_name(name) {
            // table_getpwnam formats "uid:gid:dir" and parses it back with the key as username.
            Ok(Some(u)) => Lookup::Found(UserInfo {
                username: name.to_string(),
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
                directory: u.dir.to_string_lossy().into_owned(),
            }),
            Ok(None) => Lookup::NotFound,
            Err(_) => Lookup::TempFail,
        }
    }
}

/// The longest key `table_lookup()` accepts (`char lkey[1024]` with its NUL).
const MAX_KEY: usize = 1023;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Static,
    Getpwnam,
    /// External backends, and a `db:` file that could not be read at start (until it is): every
    /// lookup fails temporarily.
    Unsupported,
}

struct Compiled {
    table: Table,
    /// Where the contents come from, as configured: what `update table` reloads (a loaded `db:`
    /// table's contents are an inline table, so `table.source` does not say).
    source: TableSource,
    backend: Backend,
    /// Keys with a `*`, the only ones `hostname_match()` can match other than by equality.
    wild_domains: OnceLock<Vec<Box<str>>>,
    /// Entries whose domain part has a `*`, as (user, domain).
    wild_mailaddrs: OnceLock<Vec<(Box<str>, Box<str>)>>,
    nets: OnceLock<Vec<(IpAddr, u8)>>,
    regexes: OnceLock<RegexSet>,
}

impl Compiled {
    /// `table` holds the contents, `source` is the configured one.
    fn new(table: Table, source: TableSource) -> Compiled {
        let backend = match table.source {
            TableSource::Inline | TableSource::File(_) | TableSource::Builtin => Backend::Static,
            TableSource::Getpwnam => Backend::Getpwnam,
            TableSource::Db(_) | TableSource::Proc { .. } => Backend::Unsupported,
        };
        Compiled {
            table,
            source,
            backend,
            wild_domains: OnceLock::new(),
            wild_mailaddrs: OnceLock::new(),
            nets: OnceLock::new(),
            regexes: OnceLock::new(),
        }
    }

    fn wild_domains(&self) -> &[Box<str>] {
        self.wild_domains.get_or_init(|| {
            self.table
                .entries()
                .filter(|(k, _)| k.contains('*'))
                .map(|(k, _)| k.into())
                .collect()
        })
    }

    fn wild_mailaddrs(&self) -> &[(Box<str>, Box<str>)] {
        self.wild_mailaddrs.get_or_init(|| {
            self.table
                .entries()
                .filter_map(|(k, _)| {
                    let (u, d) = split_mailaddr(k);
                    d.contains('*').then(|| (u.into(), d.into()))
                })
                .collect()
        })
    }

    fn nets(&self) -> &[(IpAddr, u8)] {
        self.nets.get_or_init(|| {
            self.table
                .entries()
                .filter_map(|(k, _)| text_to_netaddr(k))
                .collect()
        })
    }

    fn regexes(&self) -> &RegexSet {
        self.regexes.get_or_init(|| {
            // A pattern that does not compile never matches (regcomp() failing gives 0), so it is
            // left out rather than failing the whole set.
            let patterns: Vec<String> = self
                .table
                .entries()
                .filter_map(|(k, _)| compile_posix_ere(k).map(|(p, _)| p))
                .collect();
            RegexSet::new(&patterns).unwrap_or_else(|_| RegexSet::empty())
        })
    }

    /// Does now, before the table is swapped in, the work its first lookups would do: the key
    /// index, and whatever `old` (the table it replaces) had built, so that the first session after
    /// an update does not pay for scanning a large table.
    fn prepare_like(&self, old: &Compiled) {
        // Counting the distinct keys builds the index.
        self.table.len();
        if old.wild_domains.get().is_some() {
            self.wild_domains();
        }
        if old.wild_mailaddrs.get().is_some() {
            self.wild_mailaddrs();
        }
        if old.nets.get().is_some() {
            self.nets();
        }
        if old.regexes.get().is_some() {
            self.regexes();
        }
    }
}

/// A table as [`Tables`] holds it.
// Each slot is alone in its Arc, allocated once: boxing the larger variant would only add a hop.
#[allow(clippy::large_enum_variant)]
enum Slot {
    /// Contents fixed until `update table` replaces the slot.
    Fixed(Compiled),
    /// A `db:` table, whose contents follow its file.
    Db(DbFile),
}

/// A `db:` table that follows its file as OpenSMTPD's table_db.c does: every lookup stat()s the
/// file first; while that fails the lookup fails temporarily (`-1`, so a RCPT gets `424`/`451`
/// and the mail waits); when the file changed, it is opened again before the lookup, and if it
/// cannot be (libdb refuses what is there now) the lookup answers from the contents it had, and
/// the next lookup tries again. So `makemap aliases` takes effect at the next lookup, without
/// `smtpctl update table`.
///
/// The contents are behind an `ArcSwap` of their own rather than swapped through [`LiveTables`]:
/// a lookup has only its [`Tables`] snapshot, and every snapshot shares this one slot, so a
/// reopen is seen by all of them at once, as the single handle of OpenSMTPD's lookup process is.
/// A lookup of an unchanged file costs one stat() and an atomic load.
struct DbFile {
    name: String,
    path: String,
    current: ArcSwap<DbVersion>,
    /// One reopen at a time, and the file version that last failed to open: while the file stays
    /// as it was, lookups repeat libdb's lines (OpenSMTPD calls dbopen() at each lookup, and
    /// libdb prints them each time) without reading the whole file again.
    reopening: Mutex<Option<(Stamp, Vec<String>)>>,
}

struct DbVersion {
    compiled: Compiled,
    /// The file they were read from; `None` when it could not be stat()ed at start.
    stamp: Option<Stamp>,
}

/// What tells a new version of a file. OpenSMTPD compares `st_mtime` in whole seconds, and so
/// misses a map rebuilt in the second it last opened it (until the next change); we compare the
/// time to the nanosecond, and the inode (makemap renames a new file into place), so no rebuild
/// goes unnoticed. The change time also counts, so a file made readable again (chmod) is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(path: &str) -> std::io::Result<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

impl DbFile {
    /// `table_db_open()` at start: `loaded` is what [`db_table`] read, if it could.
    fn new(shell: Table, path: &str, stamp: Option<Stamp>, loaded: Option<Table>) -> DbFile {
        let source = shell.source.clone();
        let name = shell.name.clone();
        let compiled = Compiled::new(loaded.unwrap_or(shell), source);
        DbFile {
            name,
            path: path.to_string(),
            current: ArcSwap::from_pointee(DbVersion { compiled, stamp }),
            reopening: Mutex::new(None),
        }
    }

    /// The contents to look up in: `table_db_lookup()`'s stat(), and its reopen when the file
    /// changed. The error is the stat()'s `strerror()`, which `-T lookup` shows.
    fn contents(&self) -> Result<arc_swap::Guard<Arc<DbVersion>>, Failed> {
        let stamp = Stamp::of(&self.path).map_err(|e| Failed {
            why: Some(rsmtpd_config::lexer::strerror(&e)),
        })?;
        let cur = self.current.load();
        if cur.stamp == Some(stamp) {
            return Ok(cur);
        }
        drop(cur);
        blocking(|| self.reopen(stamp, false));
        Ok(self.current.load())
    }

    /// `table_db_update()`: opens the file again; when libdb refuses it, its lines are logged and
    /// the table keeps its contents. `force` (an `update table`) reads the file even if it did
    /// not change, or failed the same way before. Returns whether the table now reflects it.
    fn reopen(&self, stamp: Stamp, force: bool) -> bool {
        // A poisoned lock only means a reopen panicked; the contents are whole.
        let mut failed = self.reopening.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.current.load_full();
        if !force {
            // Another lookup may have reopened it while this one waited.
            if old.stamp == Some(stamp) {
                return true;
            }
            if let Some((s, lines)) = &*failed {
                if *s == stamp {
                    log_libdb(lines);
                    return false;
                }
            }
        }
        match db_table(&self.name, &self.path) {
            Ok(table) => {
                let fresh = Compiled::new(table, old.compiled.source.clone());
                fresh.prepare_like(&old.compiled);
                self.current.store(Arc::new(DbVersion {
                    compiled: fresh,
                    stamp: Some(stamp),
                }));
                *failed = None;
                drop(old);
                trim_heap();
                true
            }
            Err(lines) => {
                log_libdb(&lines);
                *failed = Some((stamp, lines));
                false
            }
        }
    }

    /// `update table NAME` on a `db:` table.
    fn update(&self) -> Update {
        match Stamp::of(&self.path) {
            Ok(stamp) if self.reopen(stamp, true) => Update::Updated,
            _ => Update::Failed,
        }
    }
}

/// libdb writes why it refused a file on stderr, bare (no `warn:`): with `-d` the lines are
/// among the log's, detached they go where the daemon's stderr goes, as OpenSMTPD's do.
fn log_libdb(lines: &[String]) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    for l in lines {
        let _ = writeln!(err, "{}", l);
    }
}

/// Runs `f`, which may read a large file, without holding up the other tasks of the async worker
/// it is called on (a lookup at RCPT time runs on one); elsewhere it just runs it.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
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
struct Failed {
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

/// What `update table NAME` did, for the caller to answer and log as OpenSMTPD's
/// `table_update()` and its backends do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// No table of that name (`warn: Lookup table not found: "NAME"`).
    NotFound,
    /// A static table (file, inline, builtin) reloaded, or with no file to reload
    /// (`info: Table "NAME" successfully updated`).
    StaticUpdated,
    /// A static table whose file could not be read or parsed: the loader's line, then
    /// `info: Failed to update table "NAME"`. The table keeps its contents.
    StaticFailed(String),
    /// `db:` reopened, or `<getpwnam>` (nothing to do): no log line.
    Updated,
    /// `db:` file missing or refused (libdb's lines, if it has any, are on stderr), or an
    /// external backend (which we cannot ask). The table keeps its contents.
    Failed,
}

/// The daemon's tables, swapped whole by `update table`.
///
/// Every RCPT, filter check and delivery reads the tables; an update is rare. Readers call
/// [`LiveTables::load`], which with arc-swap is a few atomic loads and no write to a shared
/// counter in the common case, so sessions on different cores do not bounce a cache line as
/// they would on a `RwLock`'s reader count or on an `Arc`'s count cloned per use; and a reader
/// never waits for an update. An update builds the new [`Tables`] aside (off the async workers:
/// reading a million-line file takes a while), sharing every unchanged table, and stores it in
/// one step: a lookup sees the old table or the new one, whole, and a reader still holding the
/// old one keeps it alive until it is done. (arc-swap: small, no dependencies, maintained.)
///
/// Callers take one snapshot per unit of work (a RCPT's rules and expansion, a filter check, a
/// delivery's user lookup) and do not hold it across an `.await`.
pub struct LiveTables {
    current: ArcSwap<Tables>,
    /// Updates one at a time: two concurrent ones would each start from the same tables, and the
    /// last stored would undo the other.
    updating: Mutex<()>,
}

impl LiveTables {
    pub fn new(tables: Tables) -> LiveTables {
        LiveTables {
            current: ArcSwap::from_pointee(tables),
            updating: Mutex::new(()),
        }
    }

    /// The tables now. Keep the guard for one unit of work, not across an `.await`.
    pub fn load(&self) -> arc_swap::Guard<Arc<Tables>> {
        self.current.load()
    }

    /// `table_update()`: reloads the table's file (blocking: call it off the async workers) and,
    /// when that worked, makes the new contents current.
    pub fn update(&self, name: &str) -> Update {
        // A poisoned lock only means an earlier update panicked; the tables are still whole.
        let _one = self.updating.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.current.load_full();
        let (outcome, next) = now.updated(name);
        if let Some(next) = next {
            self.current.store(Arc::new(next));
            // Frees the old contents, unless a session still reads them (then it frees them).
            drop(now);
            trim_heap();
        }
        outcome
    }
}

/// Gives freed memory back to the system. The file and the new table were allocated on a
/// blocking-pool thread, in a malloc arena of its own, and glibc keeps the freed pages of such
/// arenas: without this, each update of a large table left tens of MiB resident (measured: 55 MiB
/// after start with a million aliases, 190 MiB after a few updates; see bench/config-check).
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim() only releases free memory; it is thread-safe and takes no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl std::fmt::Debug for Tables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tables")
            .field("tables", &self.map.len())
            .finish()
    }
}

/// `table_static_priv_load()` for an update: the file read again into a new table of the same
/// name and kind. The error is the line OpenSMTPD logs (`PATH: fopen: REASON`, `PATH: invalid map
/// entry line N`).
fn reload_file(old: &Table, path: &str) -> Result<Table, String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)
        .map_err(|e| format!("{}: fopen: {}", path, rsmtpd_config::lexer::strerror(&e)))?;
    let mut data = Vec::new();
    // fopen() of a directory works and its getline() fails (EISDIR): so does this read.
    file.read_to_end(&mut data)
        .map_err(|e| format!("{}: getline: {}", path, rsmtpd_config::lexer::strerror(&e)))?;
    let mut t = Table::new(old.name.clone(), old.anonymous, old.source.clone());
    t.kind = old.kind;
    t.load_static(path, &data)?;
    Ok(t)
}

/// A `db:` table loaded into memory as a static table: written by our makemap, or a Berkeley DB
/// hash written by OpenSMTPD's (read as its table_db.c finds entries). A file neither can read
/// gives the lines libdb prints when `dbopen()` refuses it (none when the file cannot be read at
/// all: libdb says nothing then either).
fn db_table(name: &str, path: &str) -> Result<Table, Vec<String>> {
    let data = std::fs::read(path).map_err(|_| Vec::new())?;
    let mut t = Table::new(name.to_string(), false, TableSource::Inline);
    match rsmtpd_control::map::read_map(&data) {
        Ok(map) => {
            for (k, v) in &map.entries {
                t.add(k, v.as_deref());
            }
        }
        Err(_) => {
            let Some(entries) = rsmtpd_config::dbfile::bdb_entries(&data) else {
                return Err(rsmtpd_config::dbfile::check_db_file(path, &data)
                    .err()
                    .unwrap_or_default());
            };
            for (k, v) in entries {
                t.add(&k, Some(&v));
            }
        }
    }
    Ok(t)
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
    /// every snapshot shares (so no new tables); `<getpwnam>` has nothing to do. External
    /// backends would be asked to update; we have none to ask, so it fails.
    fn updated(&self, name: &str) -> (Update, Option<Tables>) {
        let Some(slot) = self.map.get(name) else {
            return (Update::NotFound, None);
        };
        let old = match &**slot {
            Slot::Db(db) => return (db.update(), None),
            Slot::Fixed(c) => c,
        };
        let (outcome, table) = match &old.source {
            TableSource::Inline | TableSource::Builtin => return (Update::StaticUpdated, None),
            TableSource::Getpwnam => return (Update::Updated, None),
            // Db tables are always in a Slot::Db.
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
            Slot::Db(db) => TableRef::Db(db.current.load()),
        })
    }

    /// The table a lookup is about to use: a `db:` table's file is stat()ed, and opened again
    /// when it changed (one stat per lookup, as table_db.c).
    fn lookup_in(&self, name: &str) -> Result<TableRef<'_>, Failed> {
        match self.map.get(name).map(|s| &**s) {
            None => Err(Failed::default()),
            Some(Slot::Fixed(c)) => Ok(TableRef::Fixed(c)),
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
        self.value_of(table, "ALIAS", key)
    }

    /// [`value`] for a service, traced as `-T lookup` shows it.
    fn value_of(&self, table: &str, kind: &str, key: &str) -> Lookup<String> {
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
        match self.value_of(table, "CREDENTIALS", user) {
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
        match self.value_of(table, "MAILADDRMAP", key) {
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
        self.value_of(table, "ADDRNAME", &key)
    }

    /// `K_RELAYHOST`: a relay URL by key.
    pub fn relayhost(&self, table: &str, key: &str) -> Lookup<String> {
        self.value_of(table, "RELAYHOST", key)
    }
}

/// The `strerror()` text a failed lookup's trace ends with, when there is one.
fn failure_text<T>(r: &Result<T, Failed>) -> &str {
    match r {
        Err(Failed { why: Some(w) }) => w,
        _ => "",
    }
}

/// The contents of a builtin table (`config.c` `set_local()`, `set_localaddrs()`,
/// `config_default()`).
fn builtin(name: &str, host: &HostInfo) -> Option<Table> {
    let mut t = Table::new(name.to_string(), false, TableSource::Builtin);
    let mut add = |k: &str| {
        t.add(k, None);
    };
    match name {
        "<anyhost>" => {
            add("local");
            add("0.0.0.0/0");
            add("::/0");
        }
        "<localhost>" => {
            add("local");
            for a in &host.local_addrs {
                add(&Source::Addr(*a).to_text());
            }
        }
        "<localnames>" => {
            add("localhost");
            add(&host.hostname);
            for a in &host.local_addrs {
                // ss_to_text() already brackets v6 addresses, hence "[[::1]]" and
                // "[ipv6:[::1]]": the literal forms that match are "[::1]" and, for v4,
                // "[127.0.0.1]".
                let text = Source::Addr(*a).to_text();
                add(&text);
                add(&format!("[{}]", text));
                if a.is_ipv6() {
                    add(&format!("[ipv6:{}]", text));
                }
            }
        }
        "<anydestination>" => {
            add("*");
            let short = host.hostname.split('.').next().unwrap_or("");
            if short != host.hostname {
                add(short);
            }
        }
        _ => return None,
    }
    Some(t)
}

/// Tables used with `regex` by rules and filters, compiled when the tables are built.
fn regex_tables(conf: &Config) -> Vec<String> {
    use rsmtpd_config::model::{FilterCheck, FilterKind, For, From};
    let mut v = Vec::new();
    for r in &conf.rules {
        for tt in [&r.tag, &r.helo, &r.mail_from, &r.rcpt_to]
            .into_iter()
            .flatten()
        {
            if tt.test.regex {
                v.push(tt.test.table.clone());
            }
        }
        if let Some(a) = &r.auth {
            if let Some(tt) = &a.test {
                if tt.regex {
                    v.push(tt.table.clone());
                }
            }
        }
        if let Some(f) = &r.from {
            match &f.test {
                From::Src(tt) | From::Rdns(Some(tt)) if tt.regex => v.push(tt.table.clone()),
                _ => {}
            }
        }
        if let Some(f) = &r.for_ {
            if let For::Domain(tt) = &f.test {
                if tt.regex {
                    v.push(tt.table.clone());
                }
            }
        }
    }
    for f in &conf.filters {
        if let FilterKind::Builtin(b) = &f.kind {
            match &b.check {
                FilterCheck::RdnsRegex(t)
                | FilterCheck::SrcRegex(t)
                | FilterCheck::HeloRegex(t)
                | FilterCheck::AuthRegex(t)
                | FilterCheck::MailFromRegex(t)
                | FilterCheck::RcptToRegex(t) => v.push(t.clone()),
                _ => {}
            }
        }
    }
    v
}

/// `lowercase(lkey, key, 1024)`: keys that do not fit fail the lookup.
fn lower_key(key: &str) -> Result<String, TempFail> {
    if key.len() > MAX_KEY {
        return Err(TempFail);
    }
    Ok(key.to_ascii_lowercase())
}

/// `text_to_mailaddr()`: split at the last `@`; no `@` is a user alone.
pub fn split_mailaddr(s: &str) -> (&str, &str) {
    match s.rfind('@') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

/// `hostname_match()` from util.c, byte for byte: `*` skips up to the next occurrence of the
/// pattern's following character, so `*.example.org` matches one label only
/// (`a.example.org`, not `b.a.example.org` nor `example.org`; verified against smtpd 6.8.0p2).
pub fn hostname_match(hostname: &str, pattern: &str) -> bool {
    let h = hostname.as_bytes();
    let p = pattern.as_bytes();
    let (mut i, mut j) = (0, 0);
    while j < p.len() && i < h.len() {
        if p[j] == b'*' {
            while j < p.len() && p[j] == b'*' {
                j += 1;
            }
            let next = p.get(j).copied().unwrap_or(0).to_ascii_lowercase();
            while i < h.len() && h[i].to_ascii_lowercase() != next {
                i += 1;
            }
            continue;
        }
        if !p[j].eq_ignore_ascii_case(&h[i]) {
            return false;
        }
        i += 1;
        j += 1;
    }
    i == h.len() && j == p.len()
}

/// `text_to_netaddr()`: an IPv4 network as glibc's `inet_net_pton()` reads it (dotted decimal,
/// 1 to 4 octets, class-based width when no `/bits`), else an IPv6 address with optional
/// `/bits`, brackets and `IPv6:` prefixes allowed. Hexadecimal IPv4 forms are not supported.
pub fn text_to_netaddr(s: &str) -> Option<(IpAddr, u8)> {
    let s = strip_prefix_ci(s, "ipv6:").unwrap_or(s);
    if let Some(v4) = inet_net_pton4(s) {
        return Some(v4);
    }
    let inner = if let Some(rest) = s.strip_prefix('[') {
        let rest = strip_prefix_ci(rest, "ipv6:").unwrap_or(rest);
        rest.strip_suffix(']')?
    } else {
        s
    };
    let (addr, bits) = match inner.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (inner, None),
    };
    let a: Ipv6Addr = addr.parse().ok()?;
    let bits = match bits {
        None => 128,
        Some(b) => {
            let n: u32 = b.trim_start().parse().ok()?;
            if n > 128 {
                return None;
            }
            n as u8
        }
    };
    Some((IpAddr::V6(a), bits))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn inet_net_pton4(s: &str) -> Option<(IpAddr, u8)> {
    let b = s.as_bytes();
    let mut octets: Vec<u8> = Vec::with_capacity(4);
    let mut i = 0;
    if !b.first()?.is_ascii_digit() {
        return None;
    }
    loop {
        let mut v: u32 = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            v = v * 10 + u32::from(b[i] - b'0');
            if v > 255 {
                return None;
            }
            i += 1;
        }
        if octets.len() == 4 {
            return None;
        }
        octets.push(v as u8);
        if i == b.len() || b[i] == b'/' {
            break;
        }
        if b[i] != b'.' {
            return None;
        }
        i += 1;
        if i >= b.len() || !b[i].is_ascii_digit() {
            return None;
        }
    }
    let mut bits: Option<u32> = None;
    if i < b.len() {
        // b[i] == '/': a width must follow, and nothing after it.
        i += 1;
        if i >= b.len() || !b[i].is_ascii_digit() {
            return None;
        }
        let mut n = 0u32;
        while i < b.len() && b[i].is_ascii_digit() {
            n = n * 10 + u32::from(b[i] - b'0');
            if n > 32 {
                return None;
            }
            i += 1;
        }
        if i != b.len() {
            return None;
        }
        bits = Some(n);
    }
    let bits = match bits {
        Some(n) => n,
        None => {
            let first = octets[0];
            let mut n = if first >= 240 {
                32
            } else if first >= 224 {
                4
            } else if first >= 192 {
                24
            } else if first >= 128 {
                16
            } else {
                8
            };
            let given = 8 * octets.len() as u32;
            if n < given {
                n = given;
            }
            if n == 8 && first == 224 {
                n = 4;
            }
            n
        }
    };
    octets.resize(4, 0);
    let a = Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]);
    Some((IpAddr::V4(a), bits as u8))
}

/// `table_inet4_match()`/`table_inet6_match()`: same family, equal under the entry's mask.
fn net_contains(net: IpAddr, bits: u8, addr: IpAddr) -> bool {
    match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits.min(32)))
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits.min(128)))
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// `text_to_userinfo("key:value")`: `uid:gid:directory` with numeric ids.
pub fn parse_userinfo(user: &str, value: &str) -> Option<UserInfo> {
    let mut parts = value.splitn(3, ':');
    let uid = parse_id(parts.next()?)?;
    let gid = parse_id(parts.next()?)?;
    let directory = parts.next()?;
    if user.contains(':') {
        return None;
    }
    Some(UserInfo {
        username: user.to_string(),
        uid,
        gid,
        directory: directory.to_string(),
    })
}

/// `strtonum(s, 0, UID_MAX)`: strtoll's leading blanks and sign, then digits only.
fn parse_id(s: &str) -> Option<u32> {
    let t = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// `table_parse_lookup(K_CREDENTIALS)`.
fn parse_credentials(key: &str, line: &str) -> Option<Credentials> {
    if line.len() < 3 {
        return None;
    }
    match line.find(':') {
        None => Some(Credentials {
            username: key.to_string(),
            password: line.to_string(),
        }),
        Some(0) => None,
        Some(i) if i == line.len() - 1 => None,
        Some(i) => Some(Credentials {
            username: line[..i].to_string(),
            password: line[i + 1..].to_string(),
        }),
    }
}

/// `mailaddr_line()`: a comma-separated list of addresses (quotes and `\` as in alias values).
pub fn parse_mailaddr_line(s: &str) -> Option<Vec<Mailaddr>> {
    let items = crate::routing::alias::split_line(s)?;
    Some(
        items
            .iter()
            .map(|i| i.trim_matches(|c: char| c.is_ascii_whitespace()))
            .filter(|i| !i.is_empty())
            .map(|i| {
                let (u, d) = split_mailaddr(i);
                Mailaddr::new(u, d)
            })
            .collect(),
    )
}

/// Translates a POSIX extended regex (glibc's dialect, as `regcomp(REG_EXTENDED)` reads it) to
/// the regex crate's syntax. Returns the pattern and whether it was `(?i)`-prefixed. `None` when
/// it cannot be expressed (back-references, collating elements), which OpenSMTPD would either
/// reject or match in ways we do not reproduce: such an entry never matches.
pub fn compile_posix_ere(pattern: &str) -> Option<(String, bool)> {
    let (icase, pat) = match pattern.strip_prefix("(?i)") {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    let chars: Vec<char> = pat.chars().collect();
    let mut out = String::with_capacity(pat.len() + 8);
    if icase {
        out.push_str("(?i)");
    }
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let n = *chars.get(i + 1)?;
                i += 2;
                match n {
                    'w' | 'W' | 's' | 'S' | 'b' | 'B' => {
                        out.push('\\');
                        out.push(n);
                    }
                    '<' | '>' => out.push_str("\\b"),
                    '`' => out.push_str("\\A"),
                    '\'' => out.push_str("\\z"),
                    '1'..='9' => return None,
                    _ => push_literal(&mut out, n),
                }
                continue;
            }
            '[' => {
                let end = translate_bracket(&chars, i, &mut out)?;
                i = end;
                continue;
            }
            _ => out.push(c),
        }
        i += 1;
    }
    regex::Regex::new(&out).ok()?;
    Some((out, icase))
}

fn push_literal(out: &mut String, c: char) {
    let mut buf = [0u8; 4];
    out.push_str(&regex::escape(c.encode_utf8(&mut buf)));
}

/// A POSIX bracket expression starting at `chars[start] == '['`: `\` is literal inside, `]`
/// first is literal, `[:class:]` kept. Returns the index after the closing `]`.
fn translate_bracket(chars: &[char], start: usize, out: &mut String) -> Option<usize> {
    let mut i = start + 1;
    out.push('[');
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true;
    loop {
        let c = *chars.get(i)?;
        if c == ']' && !first {
            out.push(']');
            return Some(i + 1);
        }
        first = false;
        if c == '[' {
            match chars.get(i + 1) {
                Some(':') => {
                    let rest: String = chars[i..].iter().collect();
                    let close = rest.find(":]")?;
                    out.push_str(&rest[..close + 2]);
                    i += rest[..close + 2].chars().count();
                    continue;
                }
                Some('.') | Some('=') => return None,
                _ => {
                    out.push_str("\\[");
                    i += 1;
                    continue;
                }
            }
        }
        match c {
            '\\' | ']' | '&' | '~' | '^' => {
                out.push('\\');
                out.push(c);
            }
            '-' => {
                // A range dash stays; "--" would be a set difference for the regex crate.
                if chars.get(i + 1) == Some(&'-') || chars.get(i + 1) == Some(&']') {
                    out.push_str("\\-");
                } else {
                    out.push('-');
                }
            }
            _ => out.push(c),
        }
        i += 1;
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
