//! A session's side of its filters: attached to the processes of its listener's chain while it
//! lives; the chain walk for a phase, which runs builtin members in place and suspends at a proc
//! member until its answer arrives on the session's channel (lka_filter.c's
//! filter_protocol_internal with its resume tokens); and the report events, each written to the
//! processes of the chain that registered it (report_smtp_broadcast); and the message's
//! stream through the chain's `data-line` members (filter_data_internal): each line goes to the
//! first, what one returns goes to the next, what the last returns goes to the queue file.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rsmtpd_config::{Config, FilterKind};
use rsmtpd_protocol::filter_protocol::{
    data_line, filter_line, phase_name, report_line, Response, Timestamp, DATA_LINE,
};
use rsmtpd_protocol::server::{FilterDecision, FilterPhase};
use tokio::sync::mpsc;

use crate::inbound::filter::{self, FilterFacts, Step, TraceHead};
use crate::procfilter::process::{Instance, ToSession};
use crate::procfilter::Procs;
use crate::routing::lookup::Tables;
use crate::sys::log::{self, Trace, TraceLines};

enum Member {
    Builtin(String),
    Proc {
        name: String,
        inst: Arc<Instance>,
        token: u64,
    },
}

/// Why a phase could not be decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// A process of the chain died or broke the protocol.
    Failed,
    /// No answer within the session timeout.
    Timeout,
}

pub struct FilterLink {
    sessid: u64,
    members: Vec<Member>,
    /// The distinct processes of the chain, in chain order.
    instances: Vec<Arc<Instance>>,
    rx: mpsc::UnboundedReceiver<ToSession>,
    /// The message being streamed through the data-line members, from the 354 to its commit or
    /// rollback.
    stream: Option<Stream>,
    /// A stream was closed: data lines a filter still sends for it are dropped, not taken for
    /// a protocol error.
    stale_lines: bool,
}

/// One message on its way through the chain (lka_filter.c's `FILTER_DATA_LINE` phase).
struct Stream {
    /// The proc members that registered `data-line`, in chain order, with their token.
    /// Builtin members have no data-line phase: they pass every line on.
    hops: Vec<(Arc<Instance>, u64)>,
    /// The client's final dot went into the chain.
    client_done: bool,
    /// The last hop returned its "." (lines it sends after are dropped).
    chain_done: bool,
}

/// What the chain's stream has for the session.
#[derive(Debug, PartialEq, Eq)]
pub enum DataOut {
    /// A line of the filtered message (dot-decoded), for `Session::filtered_line`.
    Line(Vec<u8>),
    /// The chain ended the message after the client did: `Session::filtered_end`.
    End,
    /// A process of the chain died or broke the protocol: the message is lost to it.
    Failed,
}

/// The time as report and filter lines carry it.
pub fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        usec: d.subsec_micros(),
    }
}

impl FilterLink {
    /// Attaches session `sessid` to the processes of chain `name`. `Err(proc)` when one is down.
    pub fn open(
        conf: &Config,
        procs: &Procs,
        name: &str,
        sessid: u64,
    ) -> Result<FilterLink, String> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut members = Vec::new();
        let mut instances: Vec<Arc<Instance>> = Vec::new();
        for n in filter::chain_names(conf, name) {
            match conf.filter(n).map(|f| &f.kind) {
                Some(FilterKind::Builtin(_)) => members.push(Member::Builtin(n.to_string())),
                Some(FilterKind::Proc(p)) => {
                    let inst = procs
                        .slot(p)
                        .and_then(|s| s.current())
                        .ok_or_else(|| p.clone())?;
                    if !instances.iter().any(|i| Arc::ptr_eq(i, &inst)) {
                        instances.push(inst.clone());
                    }
                    members.push(Member::Proc {
                        name: n.to_string(),
                        inst,
                        token: rand::random(),
                    });
                }
                _ => {}
            }
        }
        for i in &instances {
            i.attach(sessid, tx.clone());
        }
        Ok(FilterLink {
            sessid,
            members,
            instances,
            rx,
            stream: None,
            stale_lines: false,
        })
    }

    /// Whether any process of the chain is attached (else there is nobody to report to).
    pub fn has_procs(&self) -> bool {
        !self.instances.is_empty()
    }

    /// Writes a report event to the processes that registered it.
    pub fn report(&mut self, event: &str, params: &[u8]) {
        self.drain();
        let mut line: Option<String> = None;
        for i in &self.instances {
            if i.wants_report(event) {
                let l = line.get_or_insert_with(|| {
                    let mut s = String::new();
                    report_line(&mut s, now(), event, self.sessid, params);
                    s
                });
                i.write(l.clone().into_bytes());
            }
        }
    }

    /// Handles what arrived while the session was not waiting: filter reports are passed on,
    /// stale answers dropped.
    fn drain(&mut self) {
        let mut reports = Vec::new();
        while let Ok(m) = self.rx.try_recv() {
            if let ToSession::Report { name, message } = m {
                reports.push((name, message));
            }
        }
        for (name, r) in reports {
            self.filter_report(false, &name, &r);
        }
    }

    fn filter_report(&mut self, builtin: bool, name: &str, msg: &[u8]) {
        let mut p = format!("{}|{}|", if builtin { "builtin" } else { "proc" }, name).into_bytes();
        p.extend_from_slice(msg);
        let mut line = String::new();
        report_line(&mut line, now(), "filter-report", self.sessid, &p);
        for i in &self.instances {
            if i.wants_report("filter-report") {
                i.write(line.clone().into_bytes());
            }
        }
    }

    /// Walks the chain for one phase. `rdns` is the client's name (the connect query carries it).
    #[allow(clippy::too_many_arguments)]
    pub async fn phase(
        &mut self,
        conf: &Config,
        tables: &Tables,
        phase: FilterPhase,
        param: &str,
        facts: &FilterFacts<'_>,
        rdns: &str,
        timeout: Duration,
    ) -> Result<FilterDecision, Broken> {
        let tracing = log::tracing(Trace::Filters);
        let mut trace = TraceLines::new(tracing);
        let query = filter::query_param(phase, param);
        let (proto_phase, index) = phase_name(phase);
        let mut traced_phase = filter::phase_name(phase);
        let mut resume = false;
        let flush = |t: &mut TraceLines| {
            for l in t.lines.drain(..) {
                log::trace(Trace::Filters, format_args!("{}", l));
            }
        };
        for k in 0..self.members.len() {
            let head = TraceHead {
                sessid: self.sessid,
                phase: traced_phase,
                resume,
            };
            match &self.members[k] {
                Member::Builtin(name) => {
                    let Some(FilterKind::Builtin(b)) = conf.filter(name).map(|f| &f.kind) else {
                        continue;
                    };
                    if !filter::hooks(b, phase) {
                        continue;
                    }
                    resume = true;
                    match filter::step(tables, name, b, phase, query, facts, &head, &mut trace) {
                        Step::Next => {}
                        Step::Report(r) => {
                            let name = name.clone();
                            self.filter_report(true, &name, r.as_bytes());
                        }
                        Step::Done(d) => {
                            flush(&mut trace);
                            return Ok(d);
                        }
                    }
                }
                Member::Proc { name, inst, token } => {
                    if !inst.hooks(index) {
                        continue;
                    }
                    trace.line(format_args!(
                        "{:016x} filters protocol phase={}, resume={}, action=deferred, filter={}",
                        self.sessid,
                        traced_phase,
                        if resume { "y" } else { "n" },
                        name
                    ));
                    flush(&mut trace);
                    let (inst, token) = (inst.clone(), *token);
                    let mut line = String::new();
                    let q = if phase == FilterPhase::Connect {
                        format!("{rdns}|{query}")
                    } else {
                        query.to_string()
                    };
                    // One token per chain entry and phase, as lka_filter_ready() gives each.
                    let token = token.wrapping_add(index as u64);
                    filter_line(
                        &mut line,
                        now(),
                        proto_phase,
                        self.sessid,
                        token,
                        q.as_bytes(),
                    );
                    if !inst.write(line.into_bytes()) {
                        return Err(Broken::Failed);
                    }
                    let response = self.wait(&inst, token, timeout).await?;
                    // filter_protocol_next() resumes with phase 0: OpenSMTPD traces every later
                    // step of this phase as "connect".
                    resume = true;
                    traced_phase = "connect";
                    match response {
                        Response::Proceed => {}
                        Response::Junk if phase == FilterPhase::Commit => {
                            inst.abort("lookup: filter-reponse junk after DATA");
                            return Err(Broken::Failed);
                        }
                        Response::Junk => return Ok(FilterDecision::Junk),
                        Response::Rewrite(p) => return Ok(FilterDecision::Rewrite(p)),
                        Response::Reject(p) => return Ok(FilterDecision::Reject(p)),
                        Response::Disconnect(p) => return Ok(FilterDecision::Disconnect(p)),
                    }
                }
            }
        }
        trace.line(format_args!(
            "{:016x} filters protocol phase={}, resume={}, action=proceed",
            self.sessid,
            traced_phase,
            if resume { "y" } else { "n" }
        ));
        flush(&mut trace);
        Ok(FilterDecision::Proceed)
    }

    /// Waits for the answer with `token` from `inst`; reports that come meanwhile are passed on.
    async fn wait(
        &mut self,
        inst: &Arc<Instance>,
        token: u64,
        timeout: Duration,
    ) -> Result<Response, Broken> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let m = match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => return Err(Broken::Timeout),
                Ok(None) | Ok(Some(ToSession::Failed)) => return Err(Broken::Failed),
                Ok(Some(m)) => m,
            };
            match m {
                ToSession::Result {
                    token: t, response, ..
                } if t == token => return Ok(response),
                ToSession::Result { .. } => {
                    // An answer for another member: lka_filter.c finds no such entry for the
                    // phase and gives up ("misbehaving filter").
                    inst.abort("lookup: misbehaving filter");
                    return Err(Broken::Failed);
                }
                // A line of a message that was rolled back, late.
                ToSession::DataLine { .. } if self.stale_lines => {}
                ToSession::DataLine { .. } => {
                    inst.abort("lookup: filter-dataline out of dataline phase");
                    return Err(Broken::Failed);
                }
                ToSession::Report { name, message } => self.filter_report(false, &name, &message),
                ToSession::Failed => return Err(Broken::Failed),
            }
        }
    }
}

impl FilterLink {
    /// Opens the message's stream at the 354 (lka_filter_data_begin). False when a process of
    /// the chain is down: the message cannot go through it.
    pub fn data_begin(&mut self) -> bool {
        let mut hops = Vec::new();
        for m in &self.members {
            if let Member::Proc { inst, token, .. } = m {
                if inst.is_dead() {
                    return false;
                }
                if inst.hooks(DATA_LINE) {
                    hops.push((inst.clone(), token.wrapping_add(DATA_LINE as u64)));
                }
            }
        }
        self.drain();
        self.stream = Some(Stream {
            hops,
            client_done: false,
            chain_done: false,
        });
        true
    }

    /// Whether a message is streaming through data-line members (the session must then also
    /// listen to the chain, not only to its client).
    pub fn streaming(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| !s.hops.is_empty())
    }

    /// The message is committed or rolled back (lka_filter_data_end).
    pub fn data_close(&mut self) {
        if self.stream.take().is_some() {
            self.stale_lines = true;
        }
    }

    /// A line of the session (dot-decoded, no line end) into the chain. `Some(line)`: no member
    /// takes data lines, the line comes straight back. Err: the first hop is gone.
    pub fn data_line(&mut self, line: Vec<u8>) -> Result<Option<Vec<u8>>, Broken> {
        let Some(s) = self.stream.as_ref() else {
            return Ok(Some(line));
        };
        let Some((inst, token)) = s.hops.first() else {
            return Ok(Some(line));
        };
        if s.chain_done {
            // The chain already ended the message: the rest is not part of it.
            return Ok(None);
        }
        // The pipe carries the lines as the client sent them: dot-stuffed.
        let mut out = Vec::with_capacity(line.len() + 80);
        let stuffed;
        let sent: &[u8] = if line.first() == Some(&b'.') {
            let mut v = Vec::with_capacity(line.len() + 1);
            v.push(b'.');
            v.extend_from_slice(&line);
            stuffed = v;
            &stuffed
        } else {
            &line
        };
        data_line(&mut out, now(), self.sessid, *token, sent);
        if inst.write(out) {
            Ok(None)
        } else {
            Err(Broken::Failed)
        }
    }

    /// The client's final dot into the chain. True: the message is complete now (no data-line
    /// member, or the chain already sent its "."); else its end comes as [`DataOut::End`].
    pub fn data_end(&mut self) -> Result<bool, Broken> {
        let sessid = self.sessid;
        let Some(s) = self.stream.as_mut() else {
            return Ok(true);
        };
        let Some((inst, token)) = s.hops.first() else {
            return Ok(true);
        };
        s.client_done = true;
        if s.chain_done {
            return Ok(true);
        }
        let mut out = Vec::with_capacity(80);
        data_line(&mut out, now(), sessid, *token, b".");
        if !inst.write(out) {
            return Err(Broken::Failed);
        }
        Ok(s.chain_done)
    }

    /// The processes the stream writes to, for [`room`].
    pub fn hops(&self) -> Vec<Arc<Instance>> {
        self.stream
            .as_ref()
            .map(|s| s.hops.iter().map(|(i, _)| i.clone()).collect())
            .unwrap_or_default()
    }

    /// Whether a process of the stream has so much queued that the client must wait.
    pub fn congested(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(|s| s.hops.iter().any(|(i, _)| i.congested()))
    }

    /// The process an answer came from, by its serial.
    fn instance(&self, serial: u64) -> Option<Arc<Instance>> {
        self.instances.iter().find(|i| i.serial == serial).cloned()
    }

    /// The next thing the stream has for the session: a line for the queue file, the end, or
    /// a failure. Lines a hop returns go on to the next hop here; reports are passed on.
    /// Cancel-safe: it only waits in the channel's `recv`.
    pub async fn data_event(&mut self) -> DataOut {
        loop {
            let Some(m) = self.rx.recv().await else {
                return DataOut::Failed;
            };
            let (from, token, line) = match m {
                ToSession::Failed => return DataOut::Failed,
                ToSession::Report { name, message } => {
                    self.filter_report(false, &name, &message);
                    continue;
                }
                ToSession::Result { from, .. } => {
                    if let Some(i) = self.instance(from) {
                        i.abort("lookup: filter-result in dataline phase");
                    }
                    return DataOut::Failed;
                }
                ToSession::DataLine { from, token, line } => (from, token, line),
            };
            let sessid = self.sessid;
            let Some(s) = self.stream.as_mut() else {
                continue;
            };
            let Some(k) = s.hops.iter().position(|(_, t)| *t == token) else {
                // A token of no data-line entry: lka_filter.c's "misbehaving filter".
                if let Some(i) = self.instance(from) {
                    i.abort("lookup: misbehaving filter");
                }
                return DataOut::Failed;
            };
            if let Some((next, next_token)) = s.hops.get(k + 1) {
                // Between filters the line goes as it came (still dot-stuffed, "." included).
                let mut out = Vec::with_capacity(line.len() + 80);
                data_line(&mut out, now(), sessid, *next_token, &line);
                if !next.write(out) {
                    return DataOut::Failed;
                }
                continue;
            }
            if s.chain_done {
                continue;
            }
            if line == b"." {
                s.chain_done = true;
                if s.client_done {
                    return DataOut::End;
                }
                // The chain ended the message before the client did: what the client still
                // sends is dropped, and the message ends with the client's dot.
                continue;
            }
            // smtp_tx_dataline() on the chain's output: a leading dot is unstuffed.
            let mut line = line;
            if line.first() == Some(&b'.') {
                line.remove(0);
            }
            return DataOut::Line(line);
        }
    }
}

/// Returns once every process in `hops` has room in its queue again.
pub async fn room(hops: Vec<Arc<Instance>>) {
    for i in hops {
        i.room().await;
    }
}

impl Drop for FilterLink {
    fn drop(&mut self) {
        for i in &self.instances {
            i.detach(self.sessid);
        }
    }
}

/// `link-connect`'s parameters: `RDNS|FCRDNS|SRC|DEST`.
pub fn link_connect_params(
    rdns: &str,
    fcrdns: bool,
    sockets: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
) -> Vec<u8> {
    let (src, dest) = match sockets {
        Some((peer, local)) => (sock_text(peer), sock_text(local)),
        None => {
            // OpenSMTPD prints its compiled-in socket path, whatever the daemon listens on.
            let s = "unix:/var/run/smtpd.sock".to_string();
            (s.clone(), s)
        }
    };
    format!(
        "{}|{}|{}|{}",
        rdns,
        if fcrdns { "pass" } else { "fail" },
        src,
        dest
    )
    .into_bytes()
}

fn sock_text(a: std::net::SocketAddr) -> String {
    let ip = a.ip().to_canonical();
    format!("{}:{}", crate::sys::compat::addr_text(&ip), a.port())
}
