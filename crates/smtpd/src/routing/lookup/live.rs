//! The daemon's tables while it runs: [`LiveTables`], which `smtpctl update table` swaps one
//! table at a time.

use super::*;

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
    /// external backend that did not reload (or is down). The table keeps its contents.
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
    pub(crate) current: ArcSwap<Tables>,
    /// Updates one at a time: two concurrent ones would each start from the same tables, and the
    /// last stored would undo the other.
    pub(crate) updating: Mutex<()>,
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
pub(crate) fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim() only releases free memory; it is thread-safe and takes no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `table_static_priv_load()` for an update: the file read again into a new table of the same
/// name and kind. The error is the line OpenSMTPD logs (`PATH: fopen: REASON`, `PATH: invalid map
/// entry line N`).
pub(crate) fn reload_file(old: &Table, path: &str) -> Result<Table, String> {
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
