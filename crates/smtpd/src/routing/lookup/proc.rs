//! Tables served by an external backend (`table-sqlite`...): each service is one request to the
//! backend, which does the matching itself (6.8's `table_proc` backend has no match functions:
//! `CHECK` and `LOOKUP` carry the lower-cased key, and what the backend answers is the answer).
//! The values are parsed as a static table's are.
//!
//! A request is a blocking round trip (see `crate::tableproc`), run under [`blocking`] so that
//! an async worker hands its other tasks over while it waits.

use super::*;
use crate::tableproc::{self, Backend, Down};
use rsmtpd_protocol::table_protocol::{Answer, Service};

/// A table whose backend is a `table-NAME` process.
pub(crate) struct ProcTable {
    /// The configuration's table (no contents: the backend has them).
    pub(crate) shell: Compiled,
    pub(crate) backend: Arc<Backend>,
}

impl Tables {
    pub(super) fn proc_backend(&self, table: &str) -> Option<&Arc<Backend>> {
        match self.map.get(table).map(|s| &**s) {
            Some(Slot::Proc(p)) => Some(&p.backend),
            _ => None,
        }
    }

    /// `table_open_all()`: starts the backend of every external table, in the order 6.8's
    /// dictionary of tables gives (by name). An error is what 6.8 logs before it exits.
    pub fn start_backends(&mut self) -> Result<(), Vec<String>> {
        let mut names: Vec<String> = self
            .map
            .iter()
            .filter(|(_, s)| matches!(&***s, Slot::Fixed(c) if matches!(c.source, TableSource::Proc { .. })))
            .map(|(n, _)| n.clone())
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        names.sort();
        let who = tableproc::identity().map_err(|e| vec![e])?;
        for name in names {
            let Some(slot) = self.map.get(&name).cloned() else {
                continue;
            };
            let Slot::Fixed(c) = &*slot else { continue };
            let TableSource::Proc { backend, config } = &c.source else {
                continue;
            };
            let Some(program) = tableproc::program(backend) else {
                return Err(vec![format!(
                    "table_create: backend \"{}\" does not exist",
                    backend
                )]);
            };
            let spec = tableproc::Spec {
                table: name.clone(),
                backend: backend.clone(),
                arg: config.clone(),
                program,
                who: who.clone(),
            };
            let b = Backend::start(spec)?;
            let shell = Compiled::new(c.table.clone(), c.source.clone());
            self.map.insert(
                name,
                Arc::new(Slot::Proc(ProcTable {
                    shell,
                    backend: Arc::new(b),
                })),
            );
        }
        Ok(())
    }

    /// A match (`CHECK`) in an external table, traced as `table_lookup()` does.
    pub(super) fn proc_match(&self, b: &Backend, table: &str, s: Service, key: &str) -> Match {
        let r = match lower_key(key) {
            Err(_) => Err(Failed::default()),
            Ok(k) => match blocking(|| b.check(s, &k)) {
                Ok(Answer::Yes(_)) => Ok(true),
                Ok(Answer::No) => Ok(false),
                Ok(Answer::Failed(_)) | Err(_) => Err(proc_failure()),
            },
        };
        self.trace_match(table, s.name(), key, &r);
        r.map_err(|_| TempFail)
    }

    /// A value (`LOOKUP`) in an external table, traced as `table_lookup()` does.
    pub(super) fn proc_value(
        &self,
        b: &Backend,
        table: &str,
        s: Service,
        key: &str,
    ) -> Lookup<String> {
        let r = match lower_key(key) {
            Err(_) => Err(Failed::default()),
            Ok(k) => answer_value(blocking(|| b.lookup(s, &k))),
        };
        self.trace_lookup(table, s.name(), key, &r);
        match r {
            Ok(Some(v)) => Lookup::Found(v),
            Ok(None) => Lookup::NotFound,
            Err(_) => Lookup::TempFail,
        }
    }

    /// `table_fetch()`: the backend's next entry for a service (relay `src <t>`), traced as 6.8
    /// does. `None` when the table is not an external one.
    pub fn fetch(&self, table: &str, s: Service) -> Option<Lookup<String>> {
        let b = self.proc_backend(table)?;
        let r = answer_value(blocking(|| b.fetch(s)));
        self.trace_fetch(table, s, &r);
        Some(match r {
            Ok(Some(v)) => Lookup::Found(v),
            Ok(None) => Lookup::NotFound,
            Err(_) => Lookup::TempFail,
        })
    }

    /// `table_fetch(K_RELAYHOST)` for relay `host`: an external table's next entry, a static
    /// table's first.
    pub fn fetch_relayhost(&self, table: &str) -> Lookup<String> {
        if let Some(got) = self.fetch(table, Service::Relayhost) {
            return got;
        }
        let first = self
            .table(table)
            .and_then(|c| c.entries().next().map(|(k, _)| k.to_string()));
        let r = Ok(first);
        self.trace_fetch(table, Service::Relayhost, &r);
        match r {
            Ok(Some(v)) => Lookup::Found(v),
            _ => Lookup::NotFound,
        }
    }

    fn trace_fetch(&self, table: &str, s: Service, r: &Result<Option<String>, Failed>) {
        if crate::sys::log::tracing(crate::sys::log::Trace::Lookup) {
            let result = match r {
                Ok(Some(v)) => format!("\"{}\"", v),
                Ok(None) => "none".to_string(),
                Err(_) => "error: ".to_string(),
            };
            crate::sys::log::trace(
                crate::sys::log::Trace::Lookup,
                format_args!(
                    "lookup: fetch {} from table {}:{} -> {}{}",
                    s.name(),
                    self.backend_name(table),
                    table,
                    result,
                    failure_text(r)
                ),
            );
        }
    }

    /// `table_proc_update()`: the backend reloads its configuration.
    pub(super) fn proc_update(b: &Backend) -> Update {
        match blocking(|| b.update()) {
            Ok(Answer::Yes(_)) => Update::Updated,
            _ => Update::Failed,
        }
    }
}

fn answer_value(a: Result<Answer, Down>) -> Result<Option<String>, Failed> {
    match a {
        Ok(Answer::Yes(v)) => Ok(Some(v.unwrap_or_default())),
        Ok(Answer::No) => Ok(None),
        Ok(Answer::Failed(_)) | Err(_) => Err(proc_failure()),
    }
}

/// What `-T lookup` shows after `error: ` when a backend fails: 6.8 prints `strerror(errno)`,
/// and errno is whatever its lookup process's last failed call left, which on Linux is `ESRCH`
/// (checked with Debian's 6.8.0p2 and a table-sqlite without the query for the service).
fn proc_failure() -> Failed {
    Failed {
        why: Some("No such process".to_string()),
    }
}
