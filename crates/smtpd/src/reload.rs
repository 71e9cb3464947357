//! Reloading the configuration on SIGHUP (`systemctl reload`). Ours, on purpose: OpenSMTPD 6.8
//! has no reload (its parent ends on SIGHUP with `smtpd: smtpd: unexpected signal`, status 1)
//! and Debian's unit offers none, but an administrator expects `systemctl reload` to put a
//! changed smtpd.conf in service without dropping sessions or mail.
//!
//! What a reload promises, and why:
//!
//! - **All or nothing.** The new file is read and checked as at start (the parser's errors, the
//!   features this build refuses, the users actions need). Anything wrong, and nothing changes:
//!   each problem is logged with its file:line, then one line saying the previous configuration
//!   stays in service. Applying the good half of a file would run a configuration that is in no
//!   file, which no `smtpd -n` checked.
//! - **What is built once at start stays.** Listening sockets (bound as root, and by the parent
//!   once the daemon is split into processes), the TLS set-up of pkis and cas (certificate files
//!   that change are already reloaded by themselves), filter processes (restarting them would cut
//!   every session going through them), the queue's format (compression, encryption and its key)
//!   and the scheduler's settings. A new file that changes any of them is refused as a whole,
//!   each change named with its line and "needs a restart".
//! - **Everything else is in service for what starts after the reload**: rules, actions, tables
//!   (their files read again, as `update table` does), aliases, userbases, mda wrappers, the
//!   `smtp max-message-size`/`max-rcpt`/`max-mails`/`sub-addr-delim` settings. A session keeps
//!   the configuration it started with to its end; a delivery takes the one in service when it
//!   starts.
//! - **Nothing in the queue is lost.** A file whose actions no longer fit the envelopes waiting
//!   in the queue (an action gone, or turned from local delivery into relaying or back) is
//!   refused: those envelopes would fail. See also [`crate::server::unknown_dispatcher`].

use std::collections::BTreeMap;
use std::sync::Arc;

use rsmtpd_config::{Config, Method, Position};

use crate::queue::DeliveryType;
use crate::server::{Running, Server};
use crate::sys::log;

/// Where the configuration comes from, and how to read it again as the daemon read it at start
/// (same file, same `-D` macros, same checks; blocking).
pub struct Source {
    pub path: String,
    pub read: Box<dyn Fn() -> Result<Config, Vec<String>> + Send + Sync>,
}

/// One reload at a time: two at once would each compare with the same old configuration.
static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// SIGHUP: reads the configuration again and puts it in service, or logs why not and keeps the
/// running one. Returns whether the new one is in service.
pub async fn reload(server: &Arc<Server>, source: &Arc<Source>) -> bool {
    let _one = ONE.lock().await;
    log::info(&format!("info: smtpd: reloading {}", source.path));
    let read = {
        let source = source.clone();
        tokio::task::spawn_blocking(move || (source.read)()).await
    };
    let new = match read {
        Ok(r) => r,
        Err(e) => Err(vec![format!("reading the configuration failed: {e}")]),
    };
    let outcome = match new {
        Ok(conf) => apply(server, conf, &source.path).await,
        Err(lines) => Err(lines),
    };
    match outcome {
        Ok(generation) => {
            log::info(&format!(
                "info: smtpd: configuration reloaded from {} (generation {generation})",
                source.path
            ));
            true
        }
        Err(lines) => {
            for l in &lines {
                log::warn(&format!("warn: smtpd: reload: {l}"));
            }
            log::warn(&format!(
                "warn: smtpd: configuration not reloaded: {} has {} problem{}, the previous \
                 configuration stays in service",
                source.path,
                lines.len(),
                if lines.len() == 1 { "" } else { "s" }
            ));
            false
        }
    }
}

/// Puts `new` in service if it changes nothing a reload cannot change and fits the queue, else
/// the lines that say why not. The generation now in service.
///
/// For a caller that read and checked the file itself (a privileged parent process passing the
/// configuration on, for example).
pub async fn apply(server: &Arc<Server>, new: Config, path: &str) -> Result<u64, Vec<String>> {
    let old = server.running();
    let mut problems = needs_restart(&old.config, &new, path);
    if problems.is_empty() {
        problems = queue_conflicts(server, &new, path).await;
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let generation = old.generation + 1;
    drop(old);
    // Reads the tables' files: off the async workers.
    let hostname = server.hostname.clone();
    let next = tokio::task::spawn_blocking(move || Running::new(new, &hostname, generation))
        .await
        .map_err(|e| vec![format!("loading the tables failed: {e}")])??;
    // An `update table` that ran on the previous tables since they were read is not lost: the
    // new tables were read from the files after it.
    let previous = server.replace_running(next);
    // Freed now unless a session or delivery still holds it (then when the last one ends).
    drop(previous);
    crate::routing::lookup::trim_heap();
    Ok(generation)
}

/// What `new` changes of the parts built once at start, one line each (file:line where the new
/// file has the line, else where the old one had it).
pub fn needs_restart(old: &Config, new: &Config, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let restart = ": needs a restart";
    // Listeners are compared whole (their positions do not count): a listener is one of the
    // old ones, or it is new.
    for l in &new.listeners {
        if !old.listeners.contains(l) {
            out.push(format!(
                "{}: listener on {} port {} added or changed{restart}",
                l.at, l.on, l.port
            ));
        }
    }
    for l in &old.listeners {
        if !new.listeners.contains(l) {
            out.push(format!(
                "listener on {} port {} (was {}) removed or changed{restart}",
                l.on, l.port, l.at
            ));
        }
    }
    if old.socket != new.socket {
        let at = if new.socket.declared {
            &new.socket.at
        } else {
            &old.socket.at
        };
        out.push(format!("{at}: listen on socket changed{restart}"));
    }
    named(&mut out, "pki", &old.pkis, &new.pkis, |p| (&p.name, &p.at));
    named(&mut out, "ca", &old.cas, &new.cas, |c| (&c.name, &c.at));
    named(&mut out, "proc", &old.procs, &new.procs, |p| {
        (&p.name, &p.at)
    });
    named(&mut out, "filter", &old.filters, &new.filters, |f| {
        (&f.name, &f.at)
    });
    // The scheduler's settings, read once when it starts.
    for a in &new.actions {
        if let Some(o) = old.actions.iter().find(|o| o.name == a.name) {
            if o.ttl != a.ttl {
                out.push(format!(
                    "{}: action \"{}\": ttl changed{restart}",
                    a.at, a.name
                ));
            }
        }
    }
    let (o, n) = (&old.options, &new.options);
    let settings: [(&str, bool); 14] = [
        (
            "queue compression",
            o.queue_compression != n.queue_compression,
        ),
        ("queue encryption", o.queue_encryption != n.queue_encryption),
        ("queue encryption key", o.queue_key != n.queue_key),
        ("queue ttl", o.queue_ttl != n.queue_ttl),
        ("bounce warn-interval", o.bounce_warn != n.bounce_warn),
        ("smtp ciphers", o.ciphers != n.ciphers),
        ("admd", o.admd != n.admd),
        ("mda limit", o.mda_limits != n.mda_limits),
        ("scheduler limit", o.scheduler_limits != n.scheduler_limits),
        ("mta limit", o.mta_limits != n.mta_limits),
        ("mta max-deferred", o.mta_max_deferred != n.mta_max_deferred),
        ("srs key", o.srs_key != n.srs_key),
        ("srs key backup", o.srs_key_backup != n.srs_key_backup),
        ("srs ttl", o.srs_ttl_days != n.srs_ttl_days),
    ];
    for (name, changed) in settings {
        if changed {
            out.push(format!("{path}: \"{name}\" changed{restart}"));
        }
    }
    out
}

/// Declarations by name: added, changed or removed.
fn named<T: PartialEq>(
    out: &mut Vec<String>,
    what: &str,
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> (&String, &Position),
) {
    for n in new {
        let (name, at) = key(n);
        match old.iter().find(|o| key(o).0 == name) {
            Some(o) if o == n => {}
            Some(_) => out.push(format!("{at}: {what} \"{name}\" changed: needs a restart")),
            None => out.push(format!("{at}: {what} \"{name}\" added: needs a restart")),
        }
    }
    for o in old {
        let (name, at) = key(o);
        if !new.iter().any(|n| key(n).0 == name) {
            out.push(format!(
                "{what} \"{name}\" (was {at}) removed: needs a restart"
            ));
        }
    }
}

/// Actions of `new` that the envelopes waiting in the queue would not find, or find of the
/// other kind (a local envelope's action turned into a relay, or back): one line per action.
async fn queue_conflicts(server: &Arc<Server>, new: &Config, path: &str) -> Vec<String> {
    let Some(scheduler) = server.scheduler.get() else {
        return Vec::new();
    };
    let listed = scheduler.list().await;
    let queue = server.queue.clone();
    // The envelope files say which action each one waits for (blocking reads).
    let used = tokio::task::spawn_blocking(move || {
        let mut used: BTreeMap<(String, bool), usize> = BTreeMap::new();
        for e in listed {
            let local = match e.kind {
                DeliveryType::Mda => true,
                DeliveryType::Mta => false,
                // Bounces go through a local session and its rules, not an action of theirs.
                _ => continue,
            };
            if let Ok(env) = queue.envelope_load(e.evpid) {
                *used.entry((env.dispatcher, local)).or_default() += 1;
            }
        }
        used
    })
    .await
    .unwrap_or_default();
    let mut out = Vec::new();
    for ((action, local), count) in used {
        let what = match new
            .action(&action)
            .map(|a| matches!(a.method, Method::Local(_)))
        {
            Some(l) if l == local => continue,
            Some(_) if local => "is no longer a local delivery",
            Some(_) => "is no longer a relay",
            None => "is gone",
        };
        out.push(format!(
            "{path}: action \"{action}\" {what}, but {count} envelope{} in the queue wait{} for it \
             (let them be delivered, or remove them with smtpctl, first)",
            if count == 1 { "" } else { "s" },
            if count == 1 { "s" } else { "" },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsmtpd_config::env::StaticEnvironment;

    fn parse(text: &str) -> Config {
        let env = StaticEnvironment::typical().with_file("/etc/smtpd.conf", text);
        let out = rsmtpd_config::parse_file("/etc/smtpd.conf", &env, &Default::default());
        out.config.unwrap_or_else(|| panic!("{:?}", out.messages))
    }

    const BASE: &str = "listen on 127.0.0.1 port 2525\n\
                        action \"l\" maildir\n\
                        match for local action \"l\"\n";

    #[test]
    fn rules_actions_and_tables_reload() {
        let old = parse(BASE);
        let new = parse(
            "table a { x = y }\n\
             listen on 127.0.0.1 port 2525\n\
             action \"l\" maildir \"/tmp/%{user.username}\"\n\
             action \"m\" mbox alias <a>\n\
             match from any for domain \"x.test\" reject\n\
             match for local action \"m\"\n\
             smtp max-message-size 10M\n",
        );
        assert_eq!(
            needs_restart(&old, &new, "/etc/smtpd.conf"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn listeners_filters_and_queue_settings_need_a_restart() {
        let old = parse(BASE);
        let new = parse(
            "filter f phase connect match rdns disconnect \"550 no\"\n\
             listen on 127.0.0.1 port 2526\n\
             queue compression\n\
             action \"l\" maildir\n\
             match for local action \"l\"\n",
        );
        assert_eq!(
            needs_restart(&old, &new, "/etc/smtpd.conf"),
            vec![
                "/etc/smtpd.conf:2: listener on 127.0.0.1 port 2526 added or changed: needs a restart",
                "listener on 127.0.0.1 port 2525 (was /etc/smtpd.conf:1) removed or changed: needs a restart",
                "/etc/smtpd.conf:1: filter \"f\" added: needs a restart",
                "/etc/smtpd.conf: \"queue compression\" changed: needs a restart",
            ]
        );
    }

    #[test]
    fn moving_a_listener_to_another_line_changes_nothing() {
        let old = parse(BASE);
        let new = parse(&format!("# a comment\n\n{BASE}"));
        assert_eq!(
            needs_restart(&old, &new, "/etc/smtpd.conf"),
            Vec::<String>::new()
        );
    }
}
