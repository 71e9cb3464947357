//! `db:` tables: Berkeley DB or our own maps loaded into memory, following their file as
//! OpenSMTPD's table_db.c does.

use super::*;

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
pub(crate) struct DbFile {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) current: ArcSwap<DbVersion>,
    /// One reopen at a time, and the file version that last failed to open: while the file stays
    /// as it was, lookups repeat libdb's lines (OpenSMTPD calls dbopen() at each lookup, and
    /// libdb prints them each time) without reading the whole file again.
    pub(crate) reopening: Mutex<Option<(Stamp, Vec<String>)>>,
}

pub(crate) struct DbVersion {
    pub(crate) compiled: Compiled,
    /// The file they were read from; `None` when it could not be stat()ed at start.
    pub(crate) stamp: Option<Stamp>,
}

/// What tells a new version of a file. OpenSMTPD compares `st_mtime` in whole seconds, and so
/// misses a map rebuilt in the second it last opened it (until the next change); we compare the
/// time to the nanosecond, and the inode (makemap renames a new file into place), so no rebuild
/// goes unnoticed. The change time also counts, so a file made readable again (chmod) is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) mtime: (i64, i64),
    pub(crate) ctime: (i64, i64),
}

impl Stamp {
    pub(crate) fn of(path: &str) -> std::io::Result<Stamp> {
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
    pub(crate) fn new(
        shell: Table,
        path: &str,
        stamp: Option<Stamp>,
        loaded: Option<Table>,
    ) -> DbFile {
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
    pub(crate) fn contents(&self) -> Result<arc_swap::Guard<Arc<DbVersion>>, Failed> {
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
    pub(crate) fn reopen(&self, stamp: Stamp, force: bool) -> bool {
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
    pub(crate) fn update(&self) -> Update {
        match Stamp::of(&self.path) {
            Ok(stamp) if self.reopen(stamp, true) => Update::Updated,
            _ => Update::Failed,
        }
    }
}

/// libdb writes why it refused a file on stderr, bare (no `warn:`): with `-d` the lines are
/// among the log's, detached they go where the daemon's stderr goes, as OpenSMTPD's do.
pub(crate) fn log_libdb(lines: &[String]) {
    let mut err = std::io::stderr().lock();
    for l in lines {
        let _ = crate::sys::log::write_line(&mut err, l);
    }
}

/// Runs `f`, which may read a large file, without holding up the other tasks of the async worker
/// it is called on (a lookup at RCPT time runs on one); elsewhere it just runs it.
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A `db:` table loaded into memory as a static table: written by our makemap, or a Berkeley DB
/// hash written by OpenSMTPD's (read as its table_db.c finds entries). A file neither can read
/// gives the lines libdb prints when `dbopen()` refuses it (none when the file cannot be read at
/// all: libdb says nothing then either).
pub(crate) fn db_table(name: &str, path: &str) -> Result<Table, Vec<String>> {
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
