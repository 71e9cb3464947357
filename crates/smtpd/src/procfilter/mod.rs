//! External filters (`proc` and `filter ... proc-exec`), OpenSMTPD 6.8's filter protocol 0.6.
//!
//! - [`process`]: one filter process, its handshake and its pipes;
//! - `crate::inbound::filter_link`: a session's side: its attachment to the processes of its chain, the chain walk
//!   that mixes builtin and proc members and suspends at a proc member (no thread waits), and
//!   the report events;
//! - here: the processes of the configuration, started once at start as OpenSMTPD does, and
//!   restarted with a backoff when one dies (OpenSMTPD exits altogether; we keep serving, and the
//!   listeners using a filter that is down answer 421 at connect).

pub mod process;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rsmtpd_config::{Config, FilterKind, Proc};

use crate::sys::log;
use process::{Identity, Instance, StartError};

/// One configured process and its current instance (None while down).
pub struct Slot {
    pub proc_: Proc,
    who: Option<Identity>,
    config: String,
    current: RwLock<Option<Arc<Instance>>>,
    /// The wait before the next restart, doubled by each death of a short-lived instance.
    backoff: std::sync::Mutex<Duration>,
}

impl Slot {
    pub fn current(&self) -> Option<Arc<Instance>> {
        self.current
            .read()
            .ok()
            .and_then(|c| c.clone())
            .filter(|i| !i.is_dead())
    }
}

/// The filter processes of the configuration, by proc name.
#[derive(Default)]
pub struct Procs {
    slots: HashMap<String, Arc<Slot>>,
}

/// First and longest wait before restarting a filter that died.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A filter that lived this long is considered healthy again: the backoff starts over.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// The default user of filter processes: OpenSMTPD's `SMTPD_USER`, `opensmtpd` on Debian.
const FILTER_USERS: &[&str] = &["opensmtpd", "_smtpd"];

/// Who a filter runs as (when we are root; the parent of a split daemon asks this too).
pub fn identity(p: &Proc) -> Result<Option<Identity>, String> {
    if !nix::unistd::geteuid().is_root() {
        // Not root: we cannot switch, the filter runs as we do.
        return Ok(None);
    }
    let user = match &p.user {
        Some(u) => nix::unistd::User::from_name(u).ok().flatten(),
        None => FILTER_USERS
            .iter()
            .find_map(|u| nix::unistd::User::from_name(u).ok().flatten()),
    };
    let Some(user) = user else {
        return Err("smtpd: getpwnam: No such file or directory".into());
    };
    let gid = match &p.group {
        Some(g) => match nix::unistd::Group::from_name(g).ok().flatten() {
            Some(g) => g.gid.as_raw(),
            None => return Err("smtpd: getgrnam: No such file or directory".into()),
        },
        None => user.gid.as_raw(),
    };
    Ok(Some(Identity {
        uid: user.uid.as_raw(),
        gid,
        chroot: p.chroot.clone(),
    }))
}

impl Procs {
    /// Starts every `proc` of the configuration and waits for each `register|ready` (OpenSMTPD
    /// accepts no connection before). An error is fatal at start, as in OpenSMTPD.
    pub async fn start(conf: &Config, admd: &str) -> Result<Procs, String> {
        let mut slots = HashMap::new();
        for p in &conf.procs {
            let (smtp_in, smtp_out) = subsystems(conf, &p.name);
            let slot = Arc::new(Slot {
                proc_: p.clone(),
                who: identity(p)?,
                config: process::config_for(smtp_in, smtp_out, admd),
                current: RwLock::new(None),
                backoff: std::sync::Mutex::new(BACKOFF_FIRST),
            });
            let inst = launch(&slot, None).await.map_err(|e| e.0)?;
            if let Ok(mut c) = slot.current.write() {
                *c = Some(inst);
            }
            slots.insert(p.name.clone(), slot);
        }
        Ok(Procs { slots })
    }

    pub fn slot(&self, proc_name: &str) -> Option<&Arc<Slot>> {
        self.slots.get(proc_name)
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// Whether a proc serves smtp-in (a filter of a listener's chain uses it) or smtp-out (a relay
/// action's), for its `config|subsystem|` lines.
fn subsystems(conf: &Config, proc_name: &str) -> (bool, bool) {
    let uses = |filter: &Option<String>| -> bool {
        let Some(f) = filter else { return false };
        let names: Vec<&str> = match conf.filter(f).map(|x| &x.kind) {
            Some(FilterKind::Chain(list)) => list.iter().map(String::as_str).collect(),
            _ => vec![f.as_str()],
        };
        names.into_iter().any(|n| {
            matches!(conf.filter(n).map(|f| &f.kind), Some(FilterKind::Proc(p)) if p == proc_name)
        })
    };
    let smtp_in = conf.listeners.iter().any(|l| uses(&l.filter)) || uses(&conf.socket.filter);
    let smtp_out = conf.actions.iter().any(|a| match &a.method {
        rsmtpd_config::Method::Relay(r) => uses(&r.filter),
        _ => false,
    });
    (smtp_in, smtp_out)
}

/// Starts one instance of a slot; when it dies, it is logged and started again after a backoff.
fn launch(
    slot: &Arc<Slot>,
    limit: Option<Duration>,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Arc<Instance>, StartError>> + Send + '_>,
> {
    Box::pin(async move {
        let started = Instant::now();
        let again = slot.clone();
        let on_death: process::OnDeath = Box::new(move |why: String| {
            for l in why.lines() {
                log::warn(l);
            }
            if let Ok(mut c) = again.current.write() {
                *c = None;
            }
            let wait = match again.backoff.lock() {
                Ok(mut b) => {
                    if started.elapsed() >= HEALTHY_AFTER {
                        *b = BACKOFF_FIRST;
                    }
                    let w = *b;
                    *b = (w * 2).min(BACKOFF_MAX);
                    w
                }
                Err(_) => BACKOFF_MAX,
            };
            tokio::spawn(restart(again, wait));
        });
        process::start(
            &slot.proc_,
            slot.who.as_ref(),
            slot.config.clone(),
            limit,
            on_death,
        )
        .await
    })
}

async fn restart(slot: Arc<Slot>, mut wait: Duration) {
    loop {
        log::info(&format!(
            "info: restarting processor {} in {}s",
            slot.proc_.name,
            wait.as_secs()
        ));
        tokio::time::sleep(wait).await;
        match launch(&slot, Some(process::RESTART_HANDSHAKE)).await {
            Ok(inst) => {
                if let Ok(mut c) = slot.current.write() {
                    *c = Some(inst);
                }
                log::info(&format!("info: processor {} restarted", slot.proc_.name));
                return;
            }
            Err(e) => {
                log::warn(&e.0);
                wait = match slot.backoff.lock() {
                    Ok(mut b) => {
                        let w = *b;
                        *b = (w * 2).min(BACKOFF_MAX);
                        w
                    }
                    Err(_) => BACKOFF_MAX,
                };
            }
        }
    }
}
