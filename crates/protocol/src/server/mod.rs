//! The smtp-in session state machine (`smtp_session.c`), sans I/O.
//!
//! The shell feeds bytes with [`Session::receive`], drains
//! [`Session::poll_event`], writes replies, and answers each
//! [`Request`] with the matching method. At most one request is outstanding
//! at a time; while one is, input is buffered but not processed, exactly as
//! OpenSMTPD stops reading while it waits for another process.
//!
//! This file holds the session, its states, the input loop and the verb table
//! (`VERBS`, OpenSMTPD's `commands[]`); each verb's check and proceed live in
//! `verbs/`, the API types in [`api`], the log and trace texts in [`log`].
//!
//! The state carries the data of its phase (rustls's `ServerState` style): the open
//! transaction lives in `State::Command` or, once DATA began, in `State::Body`, so a
//! message without a transaction cannot be written; an AUTH exchange lives in
//! `State::Auth`, and the password never outlives the [`Request::Authenticate`] that
//! carries it (a [`Secret`], wiped on drop).

pub mod api;
pub mod log;
mod verbs;

use std::collections::VecDeque;
use std::time::Duration;

use crate::address::Mailaddr;
use crate::command::{Command, MailFrom, Notify, RcptTo, Verb};
use crate::data::{DotDecoder, Framed, LineBuffer};
use crate::message::MessageProcessor;
use crate::received::TlsInfo;
use crate::reply::{valid_smtp_response, Reply};
use crate::util::strnvis;

pub use api::*;
pub use log::*;
use verbs::auth::AuthState;

/// Where the session is. Each state holds what only it needs.
#[derive(Debug)]
enum State {
    /// Before the banner (connect filter pending, or rejected by it).
    New,
    /// Waiting for the TLS handshake.
    Tls,
    /// Reading commands, with the transaction MAIL FROM opened, if any.
    Command(Option<Tx>),
    /// In an AUTH exchange (never inside a transaction: AUTH is refused there).
    Auth(AuthState),
    /// Reading the message of the transaction (from the 354 to the commit answer).
    Body(Box<Body>),
    /// Closed: nothing more happens.
    Closed,
}

/// The one request (or handshake, or filter stream) the session waits on.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pending {
    Filter {
        phase: FilterPhase,
        param: String,
    },
    Sender,
    Create,
    Recipient(RcptTo),
    Open,
    Commit,
    Auth,
    Tls,
    /// The client's message ended; the filter chain has not given back its end yet.
    FilteredData,
}

/// An open transaction: MAIL FROM accepted, recipients so far.
#[derive(Debug)]
struct Tx {
    /// 0 until the queue created the message.
    msgid: u32,
    mail: MailFrom,
    rcpts: Vec<Mailaddr>,
    notify: Notify,
    /// A filter marked this transaction as junk.
    junk: bool,
}

/// Why a message is refused at the final dot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TxError {
    Size,
    Io,
    Loop,
    Malformed,
}

/// A transaction whose message is being received. Stage A (dot-decoding, the size count)
/// reads the client's lines; stage B (`msg`: header processing, the loop count) makes the
/// queue file. With a data filter chain, the chain sits between the two.
#[derive(Debug)]
struct Body {
    tx: Tx,
    dots: DotDecoder,
    /// Bytes counted against `max-message-size` (OpenSMTPD's `datain`).
    datain: u64,
    msg: MessageProcessor,
    error: Option<TxError>,
    /// With a data filter chain: the bytes of the session's own headers written into it,
    /// which OpenSMTPD counts in the message size a second time when they come back.
    filter_prefix: Option<u64>,
}

/// How a parameter rewritten by a filter is checked again before the verb proceeds.
#[derive(Clone, Copy, Debug)]
enum Recheck {
    /// The rewritten text is checked as the command's argument.
    Argument,
    /// The command's check runs again, without an argument.
    Bare,
    /// Not checked again.
    No,
}

/// One verb: how it is checked, which filter phase it passes, how it proceeds
/// (`smtp_session.c`'s `commands[]`).
struct VerbSpec {
    /// None for the commit of a message, reached by the end of DATA, not by a command.
    verb: Option<Verb>,
    /// None for HELP and WIZ, which are never filtered.
    phase: Option<FilterPhase>,
    check: fn(&mut Session, Option<&[u8]>) -> bool,
    recheck: Recheck,
    proceed: fn(&mut Session, String),
}

/// The verb set, written once.
const VERBS: &[VerbSpec] = &[
    VerbSpec {
        verb: Some(Verb::Helo),
        phase: Some(FilterPhase::Helo),
        check: Session::check_helo,
        recheck: Recheck::Argument,
        proceed: Session::proceed_helo,
    },
    VerbSpec {
        verb: Some(Verb::Ehlo),
        phase: Some(FilterPhase::Ehlo),
        check: Session::check_ehlo,
        recheck: Recheck::Argument,
        proceed: Session::proceed_ehlo,
    },
    VerbSpec {
        verb: Some(Verb::StartTls),
        phase: Some(FilterPhase::StartTls),
        check: Session::check_starttls,
        recheck: Recheck::Bare,
        proceed: Session::proceed_starttls,
    },
    VerbSpec {
        verb: Some(Verb::Auth),
        phase: Some(FilterPhase::Auth),
        check: Session::check_auth,
        recheck: Recheck::Argument,
        proceed: Session::proceed_auth,
    },
    VerbSpec {
        verb: Some(Verb::MailFrom),
        phase: Some(FilterPhase::MailFrom),
        check: Session::check_mail_from,
        recheck: Recheck::Argument,
        proceed: Session::proceed_mail_from,
    },
    VerbSpec {
        verb: Some(Verb::RcptTo),
        phase: Some(FilterPhase::RcptTo),
        check: Session::check_rcpt_to,
        recheck: Recheck::Argument,
        proceed: Session::proceed_rcpt_to,
    },
    VerbSpec {
        verb: Some(Verb::Data),
        phase: Some(FilterPhase::Data),
        check: Session::check_data,
        recheck: Recheck::Bare,
        proceed: Session::proceed_data,
    },
    VerbSpec {
        verb: Some(Verb::Rset),
        phase: Some(FilterPhase::Rset),
        check: Session::check_rset,
        recheck: Recheck::Bare,
        proceed: Session::proceed_rset,
    },
    VerbSpec {
        verb: Some(Verb::Quit),
        phase: Some(FilterPhase::Quit),
        check: Session::check_noparam,
        recheck: Recheck::No,
        proceed: Session::proceed_quit,
    },
    VerbSpec {
        verb: Some(Verb::Noop),
        phase: Some(FilterPhase::Noop),
        check: Session::check_noparam,
        recheck: Recheck::No,
        proceed: Session::proceed_noop,
    },
    VerbSpec {
        verb: Some(Verb::Help),
        phase: None,
        check: Session::check_noparam,
        recheck: Recheck::No,
        proceed: Session::proceed_help,
    },
    VerbSpec {
        verb: Some(Verb::Wiz),
        phase: None,
        check: Session::check_noparam,
        recheck: Recheck::No,
        proceed: Session::proceed_wiz,
    },
    VerbSpec {
        verb: None,
        phase: Some(FilterPhase::Commit),
        check: |_, _| true,
        recheck: Recheck::No,
        proceed: Session::proceed_commit,
    },
];

/// One SMTP server session.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    conn: ConnectionInfo,
    smtpname: String,
    state: State,
    pending: Option<Pending>,
    input: LineBuffer,
    events: VecDeque<Event>,
    /// What the client said in its last HELO/EHLO; empty before (and after STARTTLS).
    helo: String,
    esmtp: bool,
    banner_sent: bool,
    /// Under TLS since this handshake.
    tls: Option<TlsInfo>,
    /// AUTH succeeded, or a local enqueue.
    authenticated: bool,
    /// The user name of the last AUTH exchange, which OpenSMTPD keeps in `s->username` even
    /// when it failed or was aborted after the name.
    username: Vec<u8>,
    /// Local enqueue from `localhost` before any HELO: envelopes get the bounce flag.
    bounce: bool,
    /// A connect-phase filter marked the session as junk.
    junk: bool,
    mailcount: usize,
    /// The last command line, for `failed-command` lines.
    cmd: Vec<u8>,
    /// The verb of the last command (`s->last_cmd`): which `tx-*` report a reply makes.
    last_verb: Option<Verb>,
}

impl Session {
    /// Start a session on an accepted connection. The first events are a
    /// connect-phase [`Request::Filter`], a [`Event::StartTls`] (smtps) or
    /// the banner.
    pub fn new(cfg: SessionConfig, conn: ConnectionInfo) -> Session {
        let smtpname = conn
            .smtpname
            .clone()
            .unwrap_or_else(|| cfg.hostname.clone());
        let local = conn.local_enqueue;
        let bounce = local && conn.rdns == "localhost";
        let mut s = Session {
            cfg,
            conn,
            smtpname,
            state: State::New,
            pending: None,
            input: LineBuffer::new(),
            events: VecDeque::new(),
            helo: String::new(),
            esmtp: false,
            banner_sent: false,
            tls: None,
            authenticated: local,
            username: Vec::new(),
            bounce,
            junk: false,
            mailcount: 0,
            cmd: Vec::new(),
            last_verb: None,
        };
        let param = s.conn.peer.text();
        s.filter_phase(FilterPhase::Connect, param);
        s
    }

    // ------------------------------------------------------------------
    // Inputs from the shell
    // ------------------------------------------------------------------

    /// Bytes read from the client. Call only when [`wants_read`] is true
    /// and pass what one read returned: OpenSMTPD's pipelining refusal
    /// depends on what arrived together.
    ///
    /// [`wants_read`]: Session::wants_read
    pub fn receive(&mut self, data: &[u8]) {
        if self.is_closed() {
            return;
        }
        self.input.push(data);
        self.process_input();
    }

    /// Next output, in order.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// What the session waits for now (after every event was handled).
    pub fn wants(&self) -> Wants {
        match (&self.state, &self.pending) {
            (State::Closed, _) => Wants::Nothing,
            (_, Some(Pending::Tls)) => Wants::Handshake,
            (_, Some(Pending::FilteredData)) => Wants::FilteredData,
            (_, Some(_)) => Wants::Answer,
            (State::New | State::Tls, None) => Wants::Nothing,
            (_, None) => Wants::Input,
        }
    }

    /// Whether the shell should read from the client now (after writing
    /// every pending reply).
    pub fn wants_read(&self) -> bool {
        self.wants() == Wants::Input
    }

    /// The inactivity timeout for the current wait, `None` once closed.
    pub fn timeout(&self) -> Option<Duration> {
        if self.is_closed() {
            None
        } else {
            Some(SESSION_TIMEOUT)
        }
    }

    /// The timeout expired: closes without a reply.
    pub fn timed_out(&mut self) {
        self.close(CloseReason::Timeout);
    }

    /// The client closed the connection.
    pub fn peer_closed(&mut self) {
        self.close(CloseReason::Disconnected);
    }

    /// A read or write failed.
    pub fn io_error(&mut self, msg: &str) {
        self.close(CloseReason::IoError(msg.to_string()));
    }

    /// The server cannot go on with this session for a reason of its own, outside any request
    /// (a filter process the session depends on died while the message streamed through it):
    /// `421 4.3.0 Temporary failure`, the open transaction rolled back (nothing of it is
    /// queued), and the session closed, as a filter's `disconnect|421` would.
    pub fn fail_temporarily(&mut self) {
        if self.is_closed() {
            return;
        }
        self.pending = None;
        self.reply(Reply::temporary_failure());
        self.enter_quit();
    }

    pub fn filter_result(&mut self, decision: FilterDecision) -> Result<(), UnexpectedAnswer> {
        let Some(Pending::Filter { phase, param }) = self.pending.clone() else {
            return Err(UnexpectedAnswer);
        };
        self.pending = None;
        let refusal = match &decision {
            FilterDecision::Reject(t) => Some((t.clone(), false)),
            FilterDecision::Disconnect(t) => Some((t.clone(), true)),
            _ => None,
        };
        if let Some((text, mut disconnect)) = refusal {
            // smtpd replaces anything but a well-formed 4xx/5xx line.
            let text = if matches!(decision_kind(&text), Some(b'4') | Some(b'5')) {
                text
            } else {
                "421 Internal server error".to_string()
            };
            if text.starts_with("421") {
                disconnect = true;
            }
            let kind = if disconnect { "disconnect" } else { "reject" };
            self.report_filter_response(phase, kind, Some(&text));
            let reply = Reply::from_line(&text).unwrap_or_else(Reply::internal_server_error);
            self.filter_refused(phase, reply, disconnect);
            self.process_input();
            return Ok(());
        }
        match decision {
            FilterDecision::Reject(_) | FilterDecision::Disconnect(_) => {}
            FilterDecision::Junk | FilterDecision::Proceed => {
                let kind = if decision == FilterDecision::Junk {
                    "junk"
                } else {
                    "proceed"
                };
                self.report_filter_response(phase, kind, None);
                if decision == FilterDecision::Junk {
                    match self.tx_mut() {
                        Some(tx) => tx.junk = true,
                        None => self.junk = true,
                    }
                }
                self.proceed(phase, param);
            }
            FilterDecision::Rewrite(p) => {
                self.report_filter_response(phase, "rewrite", Some(&p));
                if phase == FilterPhase::Connect || self.recheck(phase, p.as_bytes()) {
                    self.proceed(phase, p);
                }
            }
        }
        self.process_input();
        Ok(())
    }

    // ------------------------------------------------------------------
    // Accessors for the shell
    // ------------------------------------------------------------------

    /// HELO/EHLO argument, empty before identification.
    pub fn helo(&self) -> &str {
        &self.helo
    }
    pub fn smtpname(&self) -> &str {
        &self.smtpname
    }
    pub fn is_esmtp(&self) -> bool {
        self.esmtp
    }
    pub fn is_secure(&self) -> bool {
        self.tls.is_some()
    }
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }
    /// Local enqueue from `localhost` before any HELO: envelopes get the
    /// bounce flag (HELO/EHLO clears it, as in OpenSMTPD).
    pub fn is_bounce(&self) -> bool {
        self.bounce
    }
    /// The AUTH user name (kept after a failed attempt, as OpenSMTPD does).
    pub fn username(&self) -> &[u8] {
        &self.username
    }
    /// The current transaction's MAIL FROM.
    pub fn mail_from(&self) -> Option<&MailFrom> {
        self.tx().map(|t| &t.mail)
    }
    /// Accepted recipients of the current transaction.
    pub fn recipients(&self) -> &[Mailaddr] {
        self.tx().map_or(&[], |t| &t.rcpts)
    }
    /// A filter marked the session or the transaction as junk.
    pub fn is_junk(&self) -> bool {
        self.junk || self.tx().is_some_and(|t| t.junk)
    }
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    // ------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------

    fn tx(&self) -> Option<&Tx> {
        match &self.state {
            State::Command(tx) => tx.as_ref(),
            State::Body(b) => Some(&b.tx),
            _ => None,
        }
    }

    fn tx_mut(&mut self) -> Option<&mut Tx> {
        match &mut self.state {
            State::Command(tx) => tx.as_mut(),
            State::Body(b) => Some(&mut b.tx),
            _ => None,
        }
    }

    fn take_pending(&mut self, want: Pending) -> Result<(), UnexpectedAnswer> {
        if self.pending.as_ref() == Some(&want) {
            self.pending = None;
            Ok(())
        } else {
            Err(UnexpectedAnswer)
        }
    }

    fn request(&mut self, pending: Pending, req: Request) {
        self.pending = Some(pending);
        self.events.push_back(Event::Request(req));
    }

    fn log(&mut self, l: LogEvent) {
        self.events.push_back(Event::Log(l));
    }

    fn trace(&mut self, t: Trace) {
        if self.cfg.trace {
            self.events.push_back(Event::Trace(t));
        }
    }

    /// `smtp_reply`: trace the reply, log a 4xx/5xx the way smtpd does, queue it.
    fn reply(&mut self, r: Reply) {
        let command = r.is_error().then(|| match &self.state {
            State::Auth(a) => a.log_text().to_string(),
            _ => strnvis(&masked_auth(&self.cmd), 4096, true, false),
        });
        self.reply_logged(r, |result| LogEvent::FailedCommand {
            command: command.unwrap_or_default(),
            result,
        });
    }

    fn reply_logged(&mut self, r: Reply, failed: impl FnOnce(String) -> LogEvent) {
        if self.cfg.filtered {
            self.report_reply(&r);
        }
        if self.cfg.trace {
            for i in 0..r.lines.len().max(1) {
                self.trace(Trace::Reply(r.line_text(i)));
            }
        }
        if r.is_error() {
            self.log(failed(r.text()));
        }
        self.events.push_back(Event::Reply(r));
    }

    fn enter_quit(&mut self) {
        self.close(CloseReason::Quit);
    }

    /// Drops the transaction, if any, and asks the queue to forget its message.
    fn rollback_tx(&mut self) {
        let tx = match std::mem::replace(&mut self.state, State::Command(None)) {
            State::Command(tx) => tx,
            State::Body(b) => Some(b.tx),
            other => {
                self.state = other;
                None
            }
        };
        if let Some(tx) = tx {
            if tx.msgid != 0 {
                self.events.push_back(Event::Rollback { msgid: tx.msgid });
                self.report("tx-rollback", format!("{:08x}", tx.msgid));
                self.report("tx-reset", format!("{:08x}", tx.msgid));
            }
        }
    }

    fn close(&mut self, reason: CloseReason) {
        if self.is_closed() {
            return;
        }
        self.pending = None;
        self.rollback_tx();
        self.state = State::Closed;
        self.events.push_back(Event::Close(reason));
    }

    /// Bad input (line too long, pipelining): smtpd logs `bad-input`, replies and closes.
    fn fatal_input(&mut self, r: Reply) {
        self.reply_logged(r, |result| LogEvent::BadInput { result });
        self.enter_quit();
    }

    fn process_input(&mut self) {
        loop {
            if self.pending.is_some()
                || !matches!(
                    self.state,
                    State::Command(_) | State::Auth(_) | State::Body(_)
                )
            {
                return;
            }
            let line = match self.input.next_line() {
                None => return,
                Some(Framed::TooLong) => {
                    self.fatal_input(Reply::line_too_long());
                    return;
                }
                Some(Framed::Line(l)) => l,
            };
            if matches!(self.state, State::Body(_)) {
                if !self.data_line(line) {
                    continue;
                }
                if !self.input.is_empty() {
                    self.fatal_input(Reply::pipelining_not_supported());
                    return;
                }
                self.end_of_data();
                continue;
            }
            if !self.input.is_empty() {
                self.fatal_input(Reply::pipelining_not_supported());
                return;
            }
            if line.text.len() >= COMMAND_LINE_MAX {
                self.fatal_input(Reply::command_line_too_long());
                return;
            }
            if self.cfg.trace {
                self.trace(Trace::Command(line.text.clone()));
            }
            if let State::Auth(_) = self.state {
                // smtp_command(): credentials never reach a filter.
                self.report("protocol-client", "********");
                // An AUTH response carries a secret: it is neither kept as the last command
                // nor left in memory once decoded.
                let line = zeroize::Zeroizing::new(line.text);
                self.auth_response(&line);
                continue;
            }
            self.cmd = line.text;
            let cmd = self.cmd.clone();
            self.command(&cmd);
        }
    }

    fn command(&mut self, line: &[u8]) {
        if self.cfg.filtered {
            let masked: &[u8] = if !self.helo.is_empty()
                && line.len() >= 11
                && line[..11].eq_ignore_ascii_case(b"AUTH PLAIN ")
            {
                b"AUTH PLAIN ********"
            } else {
                line
            };
            let masked = masked.to_vec();
            self.report("protocol-client", masked);
        }
        let Command { verb, args } = Command::parse(line);
        self.last_verb = Some(verb);
        let a = args.as_deref();
        let Some(spec) = VERBS.iter().find(|v| v.verb == Some(verb)) else {
            self.reply(Reply::command_unrecognized());
            return;
        };
        if !(spec.check)(self, a) {
            return;
        }
        let param = String::from_utf8_lossy(a.unwrap_or(b"")).into_owned();
        match spec.phase {
            Some(phase) => self.filter_phase(phase, param),
            None => (spec.proceed)(self, param),
        }
    }

    fn filter_phase(&mut self, phase: FilterPhase, param: String) {
        if self.cfg.filtered {
            let p = param.clone();
            self.request(
                Pending::Filter { phase, param },
                Request::Filter { phase, param: p },
            );
        } else {
            self.proceed(phase, param);
        }
    }

    fn filter_refused(&mut self, phase: FilterPhase, reply: Reply, disconnect: bool) {
        self.reply(reply);
        if disconnect {
            self.enter_quit();
        } else if phase == FilterPhase::Commit {
            self.rollback_tx();
        } else if phase == FilterPhase::Connect {
            // smtpd keeps reading with no banner sent: HELO/EHLO get 503.
            self.state = State::Command(None);
        }
    }

    /// A filter rewrote the parameter: the verb's check runs again (`commands[i].check`).
    fn recheck(&mut self, phase: FilterPhase, param: &[u8]) -> bool {
        let Some(spec) = VERBS.iter().find(|v| v.phase == Some(phase)) else {
            return true;
        };
        match spec.recheck {
            Recheck::Argument => (spec.check)(self, Some(param)),
            Recheck::Bare => (spec.check)(self, None),
            Recheck::No => true,
        }
    }

    fn proceed(&mut self, phase: FilterPhase, param: String) {
        if phase == FilterPhase::Connect {
            self.proceed_connected();
            return;
        }
        if let Some(spec) = VERBS.iter().find(|v| v.phase == Some(phase)) {
            (spec.proceed)(self, param);
        }
    }

    /// `smtp_proceed_connected`: the TLS handshake first on `smtps`, else the banner.
    fn proceed_connected(&mut self) {
        if self.cfg.smtps {
            self.start_tls();
        } else {
            self.send_banner();
        }
    }

    fn send_banner(&mut self) {
        self.reply(Reply::banner(&self.smtpname.clone()));
        self.banner_sent = true;
        self.state = State::Command(None);
        self.report("link-greeting", self.smtpname.clone());
    }

    fn report(&mut self, event: &'static str, params: impl Into<Vec<u8>>) {
        if self.cfg.filtered {
            self.events
                .push_back(Event::Report(crate::filter_protocol::Report {
                    event,
                    params: params.into(),
                }));
        }
    }

    fn report_filter_response(&mut self, phase: FilterPhase, kind: &str, param: Option<&str>) {
        let mut p = format!(
            "{}|{}",
            crate::filter_protocol::response_phase_name(phase),
            kind
        );
        if let Some(param) = param {
            p.push('|');
            p.push_str(param);
        }
        self.report("filter-response", p);
    }

    /// `smtp_reply()`'s reports: each line as `protocol-server`, then what the reply means for
    /// the transaction of the last command (`tx-begin`, `tx-mail`, `tx-rcpt`, `tx-data`).
    fn report_reply(&mut self, r: &Reply) {
        for i in 0..r.lines.len().max(1) {
            let line = r.line_text(i);
            self.report("protocol-server", line);
        }
        let Some(tx) = self.tx() else {
            return;
        };
        let msgid = tx.msgid;
        let rcpts = tx.rcpts.len();
        let result = match r.code / 100 {
            2 | 3 => "ok",
            4 => "tempfail",
            5 => "permfail",
            _ => return,
        };
        // The address between the command's first '<' and the '>' after it, as the client sent
        // it (smtp_report_tx_mail); without brackets, no report.
        let addr = |cmd: &[u8], skip: usize| -> Option<Vec<u8>> {
            let rest = cmd.get(skip..)?;
            let lt = rest.iter().position(|&b| b == b'<')?;
            let inner = &rest[lt + 1..];
            let gt = inner.iter().position(|&b| b == b'>')?;
            Some(inner[..gt].to_vec())
        };
        match (self.last_verb, r.code / 100) {
            (Some(Verb::MailFrom), c) if c != 3 => {
                if let Some(a) = addr(&self.cmd, 10) {
                    if c == 2 {
                        self.report("tx-begin", format!("{msgid:08x}"));
                    }
                    let mut p = format!("{msgid:08x}|{result}|").into_bytes();
                    p.extend_from_slice(&a);
                    self.report("tx-mail", p);
                }
            }
            (Some(Verb::RcptTo), c) if c != 3 => {
                if let Some(a) = addr(&self.cmd, 8) {
                    let mut p = format!("{msgid:08x}|{result}|").into_bytes();
                    p.extend_from_slice(&a);
                    self.report("tx-rcpt", p);
                }
            }
            (Some(Verb::Data), 3) => self.report("tx-data", format!("{msgid:08x}|ok")),
            (Some(Verb::Data), 4 | 5) if rcpts > 0 => {
                self.report("tx-data", format!("{msgid:08x}|{result}"))
            }
            _ => {}
        }
    }
}

fn decision_kind(text: &str) -> Option<u8> {
    if valid_smtp_response(text) {
        text.as_bytes().first().copied()
    } else {
        None
    }
}

/// A refused `AUTH METHOD RESPONSE` line as the log shows it: the initial response (base64 of
/// the credentials) replaced by `(...)`, as smtpd already logs failed AUTH exchanges.
/// OpenSMTPD 6.8 logs the whole line when AUTH is refused outright (before STARTTLS, on a
/// listener without auth, after a success, an unknown mechanism), which writes passwords and
/// tokens into the mail log; we do not, on purpose.
fn masked_auth(cmd: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let verb_end = cmd.iter().position(|&c| c == b' ').unwrap_or(cmd.len());
    if !cmd[..verb_end].eq_ignore_ascii_case(b"AUTH") {
        return std::borrow::Cow::Borrowed(cmd);
    }
    let rest = &cmd[verb_end..];
    let method_start = rest.iter().position(|&c| c != b' ').unwrap_or(rest.len());
    let after_method = rest[method_start..]
        .iter()
        .position(|&c| c == b' ')
        .map(|i| method_start + i);
    match after_method {
        Some(i) if rest[i..].iter().any(|&c| c != b' ') => {
            let mut out = cmd[..verb_end + i].to_vec();
            out.extend_from_slice(b" (...)");
            std::borrow::Cow::Owned(out)
        }
        _ => std::borrow::Cow::Borrowed(cmd),
    }
}
