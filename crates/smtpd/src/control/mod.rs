//! The control socket's server side: smtpctl's commands and sendmail's local submission, over
//! the protocol of the `rsmtpd-control` crate (see its crate doc for the framing).
//!
//! The daemon accepts a connection on the control socket and calls [`serve`] with a
//! [`ControlContext`]: the queue, scheduler, tables and log operations the commands need.
//! `serve` checks the peer's credentials (SO_PEERCRED; root may do everything, other users only
//! submit, as OpenSMTPD's control.c), answers requests until the client closes, and for
//! `Enqueue` answers `Ok` and hands the connection to [`ControlContext::enqueue`], which runs a
//! local SMTP session on it (client address `local`).

pub mod ctx;
pub mod offline;

use std::future::Future;
use std::pin::Pin;

use rsmtpd_control::{
    frame_len, Digest, EnvelopeInfo, LogLevel, Request, Response, ShowWhat, StatValue, Status,
    Subsystem, Target, ENVELOPE_PAGE,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::sys::log;

/// glibc's `LINE_MAX`.
const LINE_MAX: usize = 2048;

/// A boxed future, so that [`ControlContext`] can be used as `&dyn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the control commands need of the daemon. Methods with a default are optional (the
/// default answers as a daemon without that subsystem would).
pub trait ControlContext: Send + Sync {
    /// Up to `limit` envelopes with id >= `from` (of message `msgid`, or of all), in increasing id
    /// order, with their scheduler state (`show queue`).
    fn list_envelopes(
        &self,
        msgid: Option<u32>,
        from: u64,
        limit: usize,
    ) -> BoxFuture<'_, Vec<EnvelopeInfo>>;

    /// Schedules the envelopes for an attempt now; how many were.
    fn schedule(&self, target: Target) -> BoxFuture<'_, u64>;

    /// Removes the envelopes from the queue (no bounce); how many were.
    fn remove(&self, target: Target) -> BoxFuture<'_, u64>;

    /// Suspends the envelopes (flag `suspend`); how many were.
    fn pause_envelopes(&self, target: Target) -> BoxFuture<'_, u64>;

    /// Resumes suspended envelopes; how many were.
    fn resume_envelopes(&self, target: Target) -> BoxFuture<'_, u64>;

    /// Loads envelopes found on disk but unknown to the scheduler; how many.
    fn discover(&self, _target: Target) -> BoxFuture<'_, u64> {
        Box::pin(async { 0 })
    }

    /// Sets a subsystem's paused state (`serve` has checked it was not already so, and logs).
    /// Pausing smtp must close the listeners; pausing mda/mta stops handing envelopes to them.
    fn set_paused(&self, subsystem: Subsystem, paused: bool) -> BoxFuture<'_, ()>;

    /// Which subsystems are paused.
    fn status(&self) -> Status;

    /// The daemon's start time (epoch seconds) and its counters (`show stats`), in any order.
    fn stats(&self) -> (i64, Vec<(String, StatValue)>);

    /// `monitor`'s counters.
    fn digest(&self) -> Digest {
        Digest::default()
    }

    /// `log brief` / `log verbose`: debug lines off or on.
    fn set_verbose(&self, verbose: bool);

    /// `trace`/`untrace`: the trace mask's new value is passed (already combined with the old
    /// one). The default sets the log module's mask.
    fn set_traces(&self, mask: u32) {
        log::set_traces(mask);
    }

    /// `update table NAME`: reloads a table as OpenSMTPD's `table_update()` does, logging what it
    /// logs; whether it worked (false too when there is no such table).
    fn update_table(&self, name: &str) -> BoxFuture<'_, bool>;

    /// `show hosts|relays|routes|hoststats|mta paused`: the lines to print.
    fn show(&self, _what: ShowWhat) -> Vec<String> {
        Vec::new()
    }

    /// `pause|resume mta from ADDR for DOMAIN`.
    fn mta_block(&self, _block: bool, _addr: &str, _domain: &str) -> bool {
        false
    }

    /// `resume route ID`.
    fn resume_route(&self, _id: u64) -> bool {
        false
    }

    /// Runs a local SMTP session on the connection (client address `local`, peer uid given),
    /// to its end. The daemon has already written `Ok`; the client speaks next after the
    /// session's banner.
    fn enqueue(&self, conn: UnixStream, uid: u32) -> BoxFuture<'_, ()>;
}

/// The trace bits of `smtpctl trace NAME` (smtpctl.c's str_to_trace), `all` = every bit.
pub fn trace_bits(name: &str) -> Option<u32> {
    if name == "all" {
        return Some(!0x0001u32);
    }
    // smtpctl accepts fewer names than `smtpd -T` (no aliases, no tables/queue).
    match name {
        "imsg" | "io" | "smtp" | "filters" | "mta" | "bounce" | "scheduler" | "lookup" | "stat"
        | "rules" | "mproc" | "expand" => log::Trace::from_name(name).map(|t| t as u32),
        _ => None,
    }
}

fn current_traces() -> u32 {
    use log::Trace::*;
    [
        Imsg, Io, Smtp, Filters, Mta, Bounce, Scheduler, Lookup, Stat, Rules, Mproc, Expand,
        Tables, Queue,
    ]
    .into_iter()
    .filter(|t| log::tracing(*t))
    .fold(0, |m, t| m | t as u32)
}

/// The largest frame read from a peer that is not root, which may only ask for `Enqueue` (two
/// bytes): OpenSMTPD's imsg limit (`MAX_IMSGSIZE`). Root's requests may be up to `MAX_FRAME`;
/// reading that much for anyone would let every local user make the daemon hold 16 MiB per
/// connection (found by tests/attacks.rs: 32 connections of nobody, 540 MB).
const UNPRIVILEGED_FRAME: usize = 16 * 1024;

async fn read_frame(conn: &mut UnixStream, limit: usize) -> Option<Result<Vec<u8>, ()>> {
    let mut hdr = [0u8; 4];
    match conn.read_exact(&mut hdr).await {
        Ok(_) => {}
        Err(_) => return None,
    }
    let Ok(n) = frame_len(hdr) else {
        return Some(Err(()));
    };
    if n > limit {
        return Some(Err(()));
    }
    let mut payload = vec![0u8; n];
    match conn.read_exact(&mut payload).await {
        Ok(_) => Some(Ok(payload)),
        Err(_) => None,
    }
}

/// Serves one control connection until the client closes it (or hands it to a local SMTP
/// session for `Enqueue`), then logs its end as OpenSMTPD's control process does with `-v`: its
/// mproc read EOF (`debug: control -> client: pipe closed`), then control_close() cleared it
/// (`debug: clearing p=client, fd=N, pid=0`; a client's mproc has no pid). The fd is ours, as
/// theirs is their control process's.
pub async fn serve(conn: UnixStream, ctx: &dyn ControlContext) {
    use std::os::fd::AsRawFd;
    let fd = conn.as_raw_fd();
    // control.c counts its clients, this one included while it asks for `show stats`.
    crate::sys::stat::increment("control.session", 1);
    serve_requests(conn, ctx).await;
    crate::sys::stat::decrement("control.session", 1);
    log::debug("debug: control -> client: pipe closed");
    log::debug(&format!("debug: clearing p=client, fd={fd}, pid=0"));
}

async fn serve_requests(mut conn: UnixStream, ctx: &dyn ControlContext) {
    let uid = match conn.peer_cred() {
        Ok(c) => c.uid(),
        Err(_) => return,
    };
    // What root may do, the user the daemon runs as may do too: OpenSMTPD always runs as root,
    // but run unprivileged (the quick start, the tests) the daemon's own user owns the spool
    // and the process already, so refusing it `show queue` or `pause` protects nothing.
    let privileged = uid == 0 || uid == nix::unistd::geteuid().as_raw();
    let rights = if privileged { 0 } else { uid };
    loop {
        // Each request gets one answer; `go_on` says whether the connection survives it.
        let limit = if privileged {
            rsmtpd_control::MAX_FRAME as usize
        } else {
            UNPRIVILEGED_FRAME
        };
        let (resp, go_on) = match read_frame(&mut conn, limit).await {
            None => return,
            Some(Err(())) => (Response::Fail(None), false),
            Some(Ok(payload)) => match Request::decode(&payload) {
                // The client sees our version in the answer: "incompatible smtpctl and smtpd".
                Err(rsmtpd_control::DecodeError::Version(_)) => (Response::Fail(None), true),
                Err(_) => (Response::Fail(None), false),
                Ok(req) if !req.allowed_for(rights) => (Response::Fail(None), true),
                Ok(Request::Enqueue) if ctx.status().smtp_paused => (Response::Fail(None), false),
                Ok(Request::Enqueue) => {
                    if conn.write_all(&Response::Ok.encode()).await.is_ok() {
                        ctx.enqueue(conn, uid).await;
                    }
                    return;
                }
                Ok(req) => (answer(req, ctx).await, true),
            },
        };
        if conn.write_all(&resp.encode()).await.is_err() || !go_on {
            return;
        }
    }
}

/// The answer to one (permitted, non-Enqueue) request.
pub async fn answer(req: Request, ctx: &dyn ControlContext) -> Response {
    match req {
        Request::Enqueue => Response::Fail(None),
        Request::ListEnvelopes { msgid, from } => {
            Response::Envelopes(ctx.list_envelopes(msgid, from, ENVELOPE_PAGE).await)
        }
        Request::Schedule(t) => Response::Count(ctx.schedule(t).await),
        Request::Remove(t) => Response::Count(ctx.remove(t).await),
        Request::PauseEnvelope(t) => Response::Count(ctx.pause_envelopes(t).await),
        Request::ResumeEnvelope(t) => Response::Count(ctx.resume_envelopes(t).await),
        Request::Discover(Target::All) => Response::Fail(None),
        Request::Discover(t) => Response::Count(ctx.discover(t).await),
        Request::Pause(s) | Request::Resume(s) => {
            let pause = matches!(req, Request::Pause(_));
            let st = ctx.status();
            let paused = match s {
                Subsystem::Mda => st.mda_paused,
                Subsystem::Mta => st.mta_paused,
                Subsystem::Smtp => st.smtp_paused,
            };
            if paused == pause {
                return Response::Fail(None);
            }
            let name = match s {
                Subsystem::Mda => "mda",
                Subsystem::Mta => "mta",
                Subsystem::Smtp => "smtp",
            };
            log::info(&format!(
                "info: {name} {}",
                if pause { "paused" } else { "resumed" }
            ));
            ctx.set_paused(s, pause).await;
            Response::Ok
        }
        Request::ResumeRoute(id) => ok_fail(ctx.resume_route(id)),
        Request::MtaBlock {
            block,
            addr,
            domain,
        } => ok_fail(ctx.mta_block(block, &addr, &domain)),
        Request::ShowStatus => Response::Status(ctx.status()),
        Request::ShowStats => {
            let (started, entries) = ctx.stats();
            Response::Stats { started, entries }
        }
        Request::GetDigest => Response::Digest(ctx.digest()),
        Request::Show(w) => Response::Lines(ctx.show(w)),
        Request::Log(l) => {
            // OpenSMTPD keeps `-v` and the traces in one word (`tracing`, TRACE_DEBUG being its
            // low bit), and `log brief|verbose` sets that word to 0 or TRACE_DEBUG
            // (log_trace_verbose): it turns the traces off too. The same here, so that a
            // script that relies on it sees the same log.
            ctx.set_verbose(l == LogLevel::Verbose);
            ctx.set_traces(0);
            Response::Ok
        }
        Request::Trace { enable, name } => match trace_bits(&name) {
            None => Response::Fail(None),
            Some(bits) => {
                let cur = current_traces();
                ctx.set_traces(if enable { cur | bits } else { cur & !bits });
                Response::Ok
            }
        },
        Request::Profile { name, .. } => ok_fail(name == "imsg" || name == "queue"),
        // control.c refuses a name of LINE_MAX bytes or more before asking the lookup process.
        Request::UpdateTable(name) if name.len() >= LINE_MAX => Response::Fail(None),
        Request::UpdateTable(name) => ok_fail(ctx.update_table(&name).await),
    }
}

fn ok_fail(ok: bool) -> Response {
    if ok {
        Response::Ok
    } else {
        Response::Fail(None)
    }
}
