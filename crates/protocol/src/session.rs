//! The smtp-in session state machine (`smtp_session.c`), sans I/O.
//!
//! The shell feeds bytes with [`Session::receive`], drains
//! [`Session::poll_event`], writes replies, and answers each
//! [`Request`] with the matching method. At most one request is outstanding
//! at a time; while one is, input is buffered but not processed, exactly as
//! OpenSMTPD stops reading while it waits for another process.

use std::collections::VecDeque;
use std::time::Duration;

use crate::address::{parse_path, valid_domainpart, Mailaddr};
use crate::command::{parse_mail_from, parse_rcpt_to, Command, MailFrom, Notify, RcptTo, Verb};
use crate::data::{DataLine, DotDecoder, Framed, LineBuffer};
use crate::message::{MessageError, MessageOptions, MessageProcessor};
use crate::received::{received_header, PeerAddr, ReceivedInfo, TlsInfo};
use crate::reply::{valid_smtp_response, EhloExtensions, Reply};
use crate::util::{b64_pton, strnvis};

/// `SMTPD_SESSION_TIMEOUT`.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(300);
/// Linux `LINE_MAX`: the `s->cmd` buffer. A command line this long or
/// longer is fatal.
pub const COMMAND_LINE_MAX: usize = 2048;
/// OpenSMTPD's default `max-message-size` (35 MiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 36_700_160;

/// Listener-level settings for one session.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The listener's `hostname`: default server name, and the domain
    /// appended to bare addresses in To/Cc/From headers.
    pub hostname: String,
    pub max_message_size: u64,
    /// `smtp max-rcpt` (default 1000).
    pub max_recipients: usize,
    /// `smtp max-mails` (default 100).
    pub max_mails: usize,
    /// Advertise and accept DSN (false with `no-dsn`).
    pub dsn: bool,
    /// Listener has `tls` or `tls-require`: STARTTLS offered.
    pub starttls: bool,
    /// `tls-require`: MAIL refused before STARTTLS.
    pub tls_required: bool,
    /// `smtps`: TLS handshake before the banner.
    pub smtps: bool,
    /// `auth` or `auth-optional`: AUTH offered once under TLS.
    pub auth: bool,
    /// `auth` (not `-optional`): MAIL refused before AUTH.
    pub auth_required: bool,
    /// Listener has `senders <table>`: authenticated MAIL FROM is checked.
    pub check_senders: bool,
    /// `senders <table> masquerade`.
    pub masquerade: bool,
    /// Listener has `filter`: every phase asks [`Request::Filter`].
    pub filtered: bool,
    /// `mask-src`.
    pub mask_source: bool,
    /// `received-auth`.
    pub received_auth: bool,
    /// Local listener or port 587: add missing Date/Message-ID.
    pub add_missing_headers: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            hostname: "localhost".into(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_recipients: 1000,
            max_mails: 100,
            dsn: true,
            starttls: false,
            tls_required: false,
            smtps: false,
            auth: false,
            auth_required: false,
            check_senders: false,
            masquerade: false,
            filtered: false,
            mask_source: false,
            received_auth: false,
            add_missing_headers: false,
        }
    }
}

/// Facts about the connection the shell learned before starting the
/// session.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub peer: PeerAddr,
    /// Reverse DNS name, or `<unknown>`.
    pub rdns: String,
    /// Server name for this session if a `hostnames` table gave one;
    /// otherwise the listener hostname is used.
    pub smtpname: Option<String>,
    /// Local enqueue (smtpctl/sendmail): the session starts authenticated.
    pub local_enqueue: bool,
}

/// Filter phases, as in OpenSMTPD's `enum filter_phase` (HELP and WIZ are
/// never filtered).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FilterPhase {
    Connect,
    Helo,
    Ehlo,
    StartTls,
    Auth,
    MailFrom,
    RcptTo,
    Data,
    Rset,
    Quit,
    Noop,
    Commit,
}

/// A filter's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterDecision {
    Proceed,
    /// Proceed, and mark the transaction (or session) as spam: an
    /// `X-Spam: Yes` header is added.
    Junk,
    /// Proceed with a replaced parameter (re-checked first).
    Rewrite(String),
    /// Send this reply line (4xx/5xx) and refuse the command; a `421`
    /// closes the connection.
    Reject(String),
    /// Send this reply line and close.
    Disconnect(String),
}

/// Three-way result of a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupResult {
    Ok,
    PermFail,
    TempFail,
}

/// Result of recipient expansion and envelope creation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecipientResult {
    /// Envelope(s) stored: `250 2.1.5`.
    Accepted,
    /// Refused with the lookup's line, e.g. `"550 Invalid recipient"`,
    /// `"451 Temporary failure"`, `"524 5.2.4 Mailing list expansion
    /// problem"`; the session appends `: <user@domain>`.
    Refused(String),
    /// Writing an envelope failed: `421 4.3.0 Temporary failure`, close.
    EnvelopeFailed,
}

/// What the shell gives when the queue opened the message file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageOpened {
    /// Local time as `Www, D Mon YYYY HH:MM:SS +HHMM (TZ)`.
    pub date: String,
    /// Random value for an added `Message-ID:`.
    pub message_id_uid: u64,
}

/// Work only the shell can do. Each has exactly one answering method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Run the filter chain → [`Session::filter_result`].
    Filter { phase: FilterPhase, param: String },
    /// Check the `senders` table → [`Session::sender_result`].
    CheckSender { username: Vec<u8>, sender: Mailaddr },
    /// Create a message in the queue → [`Session::message_created`].
    CreateMessage,
    /// Match rules, expand, store envelopes → [`Session::recipient_result`].
    /// The transaction's sender and parameters are in
    /// [`Session::mail_from`].
    CheckRecipient { msgid: u32, rcpt: RcptTo },
    /// Open the message file → [`Session::message_opened`]. Message bytes
    /// then arrive as [`Event::MessageData`].
    OpenMessage { msgid: u32 },
    /// Make the message durable → [`Session::commit_result`].
    CommitMessage { msgid: u32, size: u64 },
    /// Check credentials → [`Session::auth_result`]. On a permanent
    /// failure the shell must wait a random 0–1 s before answering
    /// (OpenSMTPD's timing-attack pause).
    Authenticate {
        username: Vec<u8>,
        password: Vec<u8>,
    },
}

/// Why the connection ends (`smtp disconnected reason=...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// QUIT, or any reply after which smtpd closes (line too long,
    /// pipelining, 421...).
    Quit,
    Timeout,
    /// The peer closed.
    Disconnected,
    IoError(String),
    /// The CA for client certificates could not be loaded.
    CaFailure,
    /// Required client certificate missing or invalid (`no-ca`,
    /// `no-client-cert`, `cert-invalid`, `cert-check-failed`).
    CertCheck(String),
}

impl CloseReason {
    /// The `reason=` value as logged.
    pub fn log_text(&self) -> String {
        match self {
            CloseReason::Quit => "quit".into(),
            CloseReason::Timeout => "timeout".into(),
            CloseReason::Disconnected => "disconnect".into(),
            CloseReason::IoError(e) => format!("\"io-error: {e}\""),
            CloseReason::CaFailure => "ca-failure".into(),
            CloseReason::CertCheck(r) => r.clone(),
        }
    }

    /// The whole `smtp disconnected` line, including the double space smtpd
    /// prints before a certificate-check reason.
    pub fn log_line(&self, id: u64) -> String {
        match self {
            CloseReason::CertCheck(r) => format!("{id:016x} smtp disconnected  reason={r}"),
            _ => format!("{id:016x} smtp disconnected reason={}", self.log_text()),
        }
    }
}

/// `smtp authentication ... result=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthLog {
    Ok,
    PermFail,
    TempFail,
}

/// Log-worthy facts, in the order OpenSMTPD logs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogEvent {
    /// Any 4xx/5xx reply. `command` is already escaped like `strnvis`.
    FailedCommand {
        command: String,
        result: String,
    },
    /// A 4xx/5xx reply after bad input (line too long, pipelining).
    BadInput {
        result: String,
    },
    Authentication {
        user: String,
        result: AuthLog,
    },
    /// A committed message. The shell adds one `smtp envelope` line per
    /// recipient with its envelope ids (see [`envelope_log_line`]).
    Message {
        msgid: u32,
        size: u64,
        nrcpt: usize,
        proto: &'static str,
        sender: Mailaddr,
        rcpts: Vec<Mailaddr>,
    },
    /// `warn: loop detected` (logged when the 100th Received is seen).
    LoopDetected,
}

impl LogEvent {
    /// The log line as OpenSMTPD writes it, `id` being the session id.
    pub fn line(&self, id: u64) -> String {
        match self {
            LogEvent::FailedCommand { command, result } => {
                format!("{id:016x} smtp failed-command command=\"{command}\" result=\"{result}\"")
            }
            LogEvent::BadInput { result } => {
                format!("{id:016x} smtp bad-input result=\"{result}\"")
            }
            LogEvent::Authentication { user, result } => {
                let r = match result {
                    AuthLog::Ok => "ok",
                    AuthLog::PermFail => "permfail",
                    AuthLog::TempFail => "tempfail",
                };
                format!("{id:016x} smtp authentication user={user} result={r}")
            }
            LogEvent::Message {
                msgid,
                size,
                nrcpt,
                proto,
                ..
            } => {
                format!("{id:016x} smtp message msgid={msgid:08x} size={size} nrcpt={nrcpt} proto={proto}")
            }
            LogEvent::LoopDetected => "warn: loop detected".into(),
        }
    }
}

/// `SESSID smtp envelope evpid=... from=<...> to=<...>`.
pub fn envelope_log_line(id: u64, evpid: u64, from: &Mailaddr, to: &Mailaddr) -> String {
    format!(
        "{id:016x} smtp envelope evpid={evpid:016x} from=<{}> to=<{}>",
        from.log_text(),
        to.log_text()
    )
}

/// Output of the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Write this reply (`Reply::to_bytes`).
    Reply(Reply),
    Request(Request),
    /// Append to the open message file.
    MessageData(Vec<u8>),
    /// Drop the message `msgid` from the queue.
    Rollback {
        msgid: u32,
    },
    /// Flush all replies so far, then run the server-side TLS handshake and
    /// answer [`Session::tls_established`] or [`Session::tls_failed`].
    StartTls,
    Log(LogEvent),
    /// Flush all replies so far, then close. Nothing follows.
    Close(CloseReason),
}

/// Answer given in a state that did not ask for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnexpectedAnswer;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before the banner (connect filter pending, or rejected by it).
    New,
    Tls,
    Ready,
    AuthInit,
    AuthUsername,
    AuthPassword,
    Body,
    Quit,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pending {
    Filter { phase: FilterPhase, param: String },
    Sender,
    Create,
    Recipient(RcptTo),
    Open,
    Commit,
    Auth,
    Tls,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TxError {
    Size,
    Io,
    Loop,
    Malformed,
}

#[derive(Debug)]
struct Tx {
    msgid: u32,
    mail: MailFrom,
    rcpts: Vec<Mailaddr>,
    notify: Notify,
    junk: bool,
    error: Option<TxError>,
    datain: u64,
    dots: DotDecoder,
    msg: Option<MessageProcessor>,
}

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
    banner_sent: bool,
    helo: String,
    ehlo: bool,
    secure: bool,
    authenticated: bool,
    bounce: bool,
    badinput: bool,
    tls: Option<TlsInfo>,
    username: Vec<u8>,
    password: Vec<u8>,
    mailcount: usize,
    junk: bool,
    cmd: Vec<u8>,
    tx: Option<Tx>,
    closed: bool,
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
            banner_sent: false,
            helo: String::new(),
            ehlo: false,
            secure: false,
            authenticated: local,
            bounce,
            badinput: false,
            tls: None,
            username: Vec::new(),
            password: Vec::new(),
            mailcount: 0,
            junk: false,
            cmd: Vec::new(),
            tx: None,
            closed: false,
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
        if self.closed {
            return;
        }
        self.input.push(data);
        self.process_input();
    }

    /// Next output, in order.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether the shell should read from the client now (after writing
    /// every pending reply).
    pub fn wants_read(&self) -> bool {
        !self.closed
            && self.pending.is_none()
            && !matches!(self.state, State::New | State::Tls | State::Quit)
    }

    /// The inactivity timeout for the current wait, `None` once closed.
    pub fn timeout(&self) -> Option<Duration> {
        if self.closed {
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

    /// Writing message data to the queue failed: the message will be
    /// refused with `421 4.3.0 Temporary Error` at the final dot.
    pub fn message_write_failed(&mut self) {
        if let Some(tx) = self.tx.as_mut() {
            tx.error.get_or_insert(TxError::Io);
        }
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
            let reply = Reply::from_line(&text).unwrap_or_else(Reply::internal_server_error);
            self.filter_refused(phase, reply, disconnect);
            self.process_input();
            return Ok(());
        }
        match decision {
            FilterDecision::Reject(_) | FilterDecision::Disconnect(_) => {}
            FilterDecision::Junk | FilterDecision::Proceed => {
                if decision == FilterDecision::Junk {
                    match self.tx.as_mut() {
                        Some(tx) => tx.junk = true,
                        None => self.junk = true,
                    }
                }
                self.proceed(phase, param);
            }
            FilterDecision::Rewrite(p) => {
                if phase == FilterPhase::Connect || self.check(phase, p.as_bytes()) {
                    self.proceed(phase, p);
                }
            }
        }
        self.process_input();
        Ok(())
    }

    pub fn sender_result(&mut self, r: LookupResult) -> Result<(), UnexpectedAnswer> {
        self.take_pending(Pending::Sender)?;
        match r {
            LookupResult::Ok => self.create_message(),
            LookupResult::PermFail => {
                self.tx = None;
                self.reply(Reply::sender_rejected());
            }
            LookupResult::TempFail => {
                self.tx = None;
                self.reply(Reply::temporary_error());
            }
        }
        self.process_input();
        Ok(())
    }

    /// `Ok(msgid)` (non-zero, chosen by the queue) or `Err(())`.
    pub fn message_created(&mut self, r: Result<u32, ()>) -> Result<(), UnexpectedAnswer> {
        self.take_pending(Pending::Create)?;
        match (r, self.tx.as_mut()) {
            (Ok(msgid), Some(tx)) => {
                tx.msgid = msgid;
                self.reply(Reply::ok());
            }
            _ => {
                self.reply(Reply::temporary_error());
                self.tx = None;
                self.enter_quit();
            }
        }
        self.process_input();
        Ok(())
    }

    pub fn recipient_result(&mut self, r: RecipientResult) -> Result<(), UnexpectedAnswer> {
        let Some(Pending::Recipient(rcpt)) = self.pending.clone() else {
            return Err(UnexpectedAnswer);
        };
        self.pending = None;
        match r {
            RecipientResult::Accepted => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.rcpts.push(rcpt.rcpt);
                }
                self.reply(Reply::recipient_ok());
            }
            RecipientResult::Refused(line) => {
                let addr = if rcpt.rcpt.user.is_empty() {
                    String::new()
                } else if rcpt.rcpt.domain.is_empty() {
                    rcpt.rcpt.user.clone()
                } else {
                    rcpt.rcpt.to_string()
                };
                self.reply(Reply::recipient_refused(&line, &addr));
            }
            RecipientResult::EnvelopeFailed => {
                self.reply(Reply::temporary_failure());
                self.enter_quit();
            }
        }
        self.process_input();
        Ok(())
    }

    pub fn message_opened(&mut self, r: Result<MessageOpened, ()>) -> Result<(), UnexpectedAnswer> {
        self.take_pending(Pending::Open)?;
        match r {
            Ok(opened) => self.message_begin(opened),
            Err(()) => {
                self.reply(Reply::temporary_error());
                self.enter_quit();
            }
        }
        self.process_input();
        Ok(())
    }

    pub fn commit_result(&mut self, r: Result<(), ()>) -> Result<(), UnexpectedAnswer> {
        self.take_pending(Pending::Commit)?;
        let Some(tx) = self.tx.take() else {
            return Err(UnexpectedAnswer);
        };
        match r {
            Ok(()) => {
                self.reply(Reply::message_accepted(tx.msgid));
                let size = tx.msg.as_ref().map_or(0, MessageProcessor::written);
                self.log(LogEvent::Message {
                    msgid: tx.msgid,
                    size,
                    nrcpt: tx.rcpts.len(),
                    proto: if self.ehlo { "ESMTP" } else { "SMTP" },
                    sender: tx.mail.sender.clone(),
                    rcpts: tx.rcpts.clone(),
                });
                self.mailcount += 1;
                self.state = State::Ready;
            }
            Err(()) => {
                self.reply(Reply::temporary_failure());
                self.enter_quit();
            }
        }
        self.process_input();
        Ok(())
    }

    pub fn auth_result(&mut self, r: LookupResult) -> Result<(), UnexpectedAnswer> {
        self.take_pending(Pending::Auth)?;
        let user = strnvis(&self.username, 256, false, true);
        match r {
            LookupResult::Ok => {
                self.log(LogEvent::Authentication {
                    user,
                    result: AuthLog::Ok,
                });
                self.authenticated = true;
                self.reply(Reply::auth_succeeded());
            }
            LookupResult::PermFail => {
                self.log(LogEvent::Authentication {
                    user,
                    result: AuthLog::PermFail,
                });
                self.reply(Reply::auth_failed());
            }
            LookupResult::TempFail => {
                self.log(LogEvent::Authentication {
                    user,
                    result: AuthLog::TempFail,
                });
                self.reply(Reply::temporary_failure());
            }
        }
        self.password.clear();
        self.state = State::Ready;
        self.process_input();
        Ok(())
    }

    /// The TLS handshake (and any required client-certificate check)
    /// succeeded.
    pub fn tls_established(&mut self, info: TlsInfo) -> Result<(), UnexpectedAnswer> {
        self.take_pending(Pending::Tls)?;
        self.secure = true;
        self.helo.clear();
        self.tls = Some(info);
        if self.cfg.smtps && !self.banner_sent {
            self.send_banner();
        } else {
            self.state = State::Ready;
        }
        self.process_input();
        Ok(())
    }

    /// The handshake or the required client-certificate check failed.
    pub fn tls_failed(&mut self, reason: CloseReason) -> Result<(), UnexpectedAnswer> {
        self.take_pending(Pending::Tls)?;
        self.close(reason);
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
        self.ehlo
    }
    pub fn is_secure(&self) -> bool {
        self.secure
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
        self.tx.as_ref().map(|t| &t.mail)
    }
    /// Accepted recipients of the current transaction.
    pub fn recipients(&self) -> &[Mailaddr] {
        self.tx.as_ref().map_or(&[], |t| &t.rcpts)
    }
    /// A filter marked the session or the transaction as junk.
    pub fn is_junk(&self) -> bool {
        self.junk || self.tx.as_ref().is_some_and(|t| t.junk)
    }
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    // ------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------

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

    /// `smtp_reply`: queue the reply and log 4xx/5xx the way smtpd does.
    fn reply(&mut self, r: Reply) {
        if r.is_error() {
            let result = r.text();
            let ev = if self.badinput {
                LogEvent::BadInput { result }
            } else {
                let command = match self.state {
                    State::AuthInit => "AUTH PLAIN (...)".to_string(),
                    State::AuthUsername => "AUTH LOGIN (username)".to_string(),
                    State::AuthPassword => "AUTH LOGIN (password)".to_string(),
                    _ => strnvis(&self.cmd, 4096, true, false),
                };
                LogEvent::FailedCommand { command, result }
            };
            self.log(ev);
        }
        self.events.push_back(Event::Reply(r));
    }

    fn enter_quit(&mut self) {
        self.state = State::Quit;
        self.close(CloseReason::Quit);
    }

    fn rollback_tx(&mut self) {
        if let Some(tx) = self.tx.take() {
            if tx.msgid != 0 {
                self.events.push_back(Event::Rollback { msgid: tx.msgid });
            }
        }
    }

    fn close(&mut self, reason: CloseReason) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.pending = None;
        self.rollback_tx();
        self.events.push_back(Event::Close(reason));
    }

    fn fatal_input(&mut self, r: Reply) {
        self.badinput = true;
        self.reply(r);
        self.enter_quit();
    }

    fn process_input(&mut self) {
        loop {
            if self.closed
                || self.pending.is_some()
                || matches!(self.state, State::New | State::Tls | State::Quit)
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
            let mut eom = false;
            if self.state == State::Body {
                eom = self.data_line(line.clone());
                if !eom {
                    continue;
                }
            }
            if !self.input.is_empty() {
                self.fatal_input(Reply::pipelining_not_supported());
                return;
            }
            if eom {
                self.filter_phase(FilterPhase::Commit, String::new());
                continue;
            }
            if line.text.len() >= COMMAND_LINE_MAX {
                self.fatal_input(Reply::command_line_too_long());
                return;
            }
            self.cmd = line.text.clone();
            self.command(&line.text);
        }
    }

    /// Returns true at end of data.
    fn data_line(&mut self, line: crate::data::RawLine) -> bool {
        let max = self.cfg.max_message_size;
        let Some(tx) = self.tx.as_mut() else {
            return true;
        };
        let (dl, counted) = tx.dots.decode(line);
        let text = match dl {
            DataLine::End => return true,
            DataLine::Line(t) => t,
        };
        tx.datain = tx.datain.saturating_add(counted as u64);
        if tx.datain > max {
            tx.error = Some(TxError::Size);
        }
        if tx.error.is_some() {
            return false;
        }
        let Some(msg) = tx.msg.as_mut() else {
            return false;
        };
        msg.line(&text);
        let out = msg.take_output();
        let err = msg.error();
        if let Some(e) = err {
            tx.error = Some(match e {
                MessageError::Loop => TxError::Loop,
                MessageError::Malformed => TxError::Malformed,
            });
        }
        if !out.is_empty() {
            self.events.push_back(Event::MessageData(out));
        }
        if err == Some(MessageError::Loop) {
            self.log(LogEvent::LoopDetected);
        }
        false
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
            self.state = State::Ready;
        } else if phase == FilterPhase::Connect {
            // smtpd keeps reading with no banner sent: HELO/EHLO get 503.
            self.state = State::Ready;
        }
    }

    fn check(&mut self, phase: FilterPhase, args: &[u8]) -> bool {
        match phase {
            FilterPhase::Helo => self.check_helo(Some(args), false),
            FilterPhase::Ehlo => self.check_helo(Some(args), true),
            FilterPhase::StartTls => self.check_starttls(None),
            FilterPhase::Auth => self.check_auth(Some(args)),
            FilterPhase::MailFrom => self.check_mail_from(args),
            FilterPhase::RcptTo => self.check_rcpt_to(args),
            FilterPhase::Data => self.check_data(None),
            FilterPhase::Rset => self.check_rset(None),
            FilterPhase::Quit | FilterPhase::Noop | FilterPhase::Commit | FilterPhase::Connect => {
                true
            }
        }
    }

    fn proceed(&mut self, phase: FilterPhase, param: String) {
        match phase {
            FilterPhase::Connect => {
                if self.cfg.smtps {
                    self.state = State::Tls;
                    self.pending = Some(Pending::Tls);
                    self.events.push_back(Event::StartTls);
                } else {
                    self.send_banner();
                }
            }
            FilterPhase::Helo | FilterPhase::Ehlo => {
                let esmtp = phase == FilterPhase::Ehlo;
                self.helo = param;
                self.ehlo = esmtp;
                self.bounce = false;
                self.state = State::Ready;
                let peer = self.conn.peer.bracketed();
                let r = if esmtp {
                    let ext = EhloExtensions {
                        max_message_size: self.cfg.max_message_size,
                        dsn: self.cfg.dsn,
                        starttls: self.cfg.starttls && !self.secure,
                        auth: self.advertise_auth(),
                    };
                    Reply::ehlo(&self.smtpname, &self.helo, &peer, &ext)
                } else {
                    Reply::helo(&self.smtpname, &self.helo, &peer)
                };
                self.reply(r);
            }
            FilterPhase::StartTls => {
                self.reply(Reply::ready_to_start_tls());
                self.state = State::Tls;
                self.pending = Some(Pending::Tls);
                self.events.push_back(Event::StartTls);
            }
            FilterPhase::Auth => self.proceed_auth(param.as_bytes()),
            FilterPhase::MailFrom => self.proceed_mail_from(param.as_bytes()),
            FilterPhase::RcptTo => self.proceed_rcpt_to(param.as_bytes()),
            FilterPhase::Data => {
                let msgid = self.tx.as_ref().map_or(0, |t| t.msgid);
                self.request(Pending::Open, Request::OpenMessage { msgid });
            }
            FilterPhase::Rset => {
                self.reply(Reply::reset_state());
                self.rollback_tx();
            }
            FilterPhase::Quit => {
                self.reply(Reply::bye());
                self.enter_quit();
            }
            FilterPhase::Noop => self.reply(Reply::ok()),
            FilterPhase::Commit => self.message_end(),
        }
    }

    fn send_banner(&mut self) {
        self.reply(Reply::banner(&self.smtpname.clone()));
        self.banner_sent = true;
        self.state = State::Ready;
    }

    fn advertise_auth(&self) -> bool {
        self.cfg.auth && self.secure && !self.authenticated
    }

    fn command(&mut self, line: &[u8]) {
        match self.state {
            State::AuthInit => {
                self.auth_plain(Some(line));
                return;
            }
            State::AuthUsername | State::AuthPassword => {
                self.auth_login(Some(line));
                return;
            }
            _ => {}
        }
        let Command { verb, args } = Command::parse(line);
        let a = args.as_deref();
        let text = |a: Option<&[u8]>| String::from_utf8_lossy(a.unwrap_or(b"")).into_owned();
        match verb {
            Verb::Helo | Verb::Ehlo => {
                let esmtp = verb == Verb::Ehlo;
                if self.check_helo(a, esmtp) {
                    let phase = if esmtp {
                        FilterPhase::Ehlo
                    } else {
                        FilterPhase::Helo
                    };
                    self.filter_phase(phase, text(a));
                }
            }
            Verb::StartTls => {
                if self.check_starttls(a) {
                    self.filter_phase(FilterPhase::StartTls, String::new());
                }
            }
            Verb::Auth => {
                if self.check_auth(a) {
                    self.filter_phase(FilterPhase::Auth, text(a));
                }
            }
            Verb::MailFrom => {
                if self.check_mail_from(a.unwrap_or(b"")) {
                    self.filter_phase(FilterPhase::MailFrom, text(a));
                }
            }
            Verb::RcptTo => {
                if self.check_rcpt_to(a.unwrap_or(b"")) {
                    self.filter_phase(FilterPhase::RcptTo, text(a));
                }
            }
            Verb::Rset => {
                if self.check_rset(a) {
                    self.filter_phase(FilterPhase::Rset, String::new());
                }
            }
            Verb::Data => {
                if self.check_data(a) {
                    self.filter_phase(FilterPhase::Data, String::new());
                }
            }
            Verb::Quit => {
                if self.check_noparam(a) {
                    self.filter_phase(FilterPhase::Quit, String::new());
                }
            }
            Verb::Noop => {
                if self.check_noparam(a) {
                    self.filter_phase(FilterPhase::Noop, String::new());
                }
            }
            Verb::Help => {
                if self.check_noparam(a) {
                    self.reply(Reply::help());
                }
            }
            Verb::Wiz => {
                if self.check_noparam(a) {
                    self.reply(Reply::wiz());
                }
            }
            Verb::Dot | Verb::Unknown => self.reply(Reply::command_unrecognized()),
        }
    }

    fn check_noparam(&mut self, args: Option<&[u8]>) -> bool {
        if args.is_some() {
            self.reply(Reply::no_arguments_accepted());
            return false;
        }
        true
    }

    fn check_rset(&mut self, args: Option<&[u8]>) -> bool {
        if !self.check_noparam(args) {
            return false;
        }
        if self.helo.is_empty() {
            self.reply(Reply::not_allowed());
            return false;
        }
        true
    }

    fn check_helo(&mut self, args: Option<&[u8]>, esmtp: bool) -> bool {
        if !self.banner_sent {
            self.reply(Reply::not_allowed());
            return false;
        }
        if !self.helo.is_empty() {
            self.reply(Reply::already_identified());
            return false;
        }
        let Some(args) = args else {
            self.reply(if esmtp {
                Reply::ehlo_requires_domain()
            } else {
                Reply::helo_requires_domain()
            });
            return false;
        };
        if !valid_domainpart(args) {
            self.reply(Reply::invalid_domain_name());
            return false;
        }
        true
    }

    fn check_auth(&mut self, args: Option<&[u8]>) -> bool {
        if self.helo.is_empty() || self.tx.is_some() {
            self.reply(Reply::not_allowed());
            return false;
        }
        if self.authenticated {
            self.reply(Reply::already_authenticated());
            return false;
        }
        if !self.advertise_auth() {
            self.reply(Reply::command_not_supported());
            return false;
        }
        if args.is_none() {
            self.reply(Reply::no_parameters_given());
            return false;
        }
        true
    }

    fn check_starttls(&mut self, args: Option<&[u8]>) -> bool {
        if self.helo.is_empty() || self.tx.is_some() {
            self.reply(Reply::not_allowed());
            return false;
        }
        if !self.cfg.starttls {
            self.reply(Reply::command_not_supported());
            return false;
        }
        if self.secure {
            self.reply(Reply::channel_already_secured());
            return false;
        }
        if args.is_some() {
            self.reply(Reply::no_parameters_allowed());
            return false;
        }
        true
    }

    fn check_mail_from(&mut self, args: &[u8]) -> bool {
        if self.helo.is_empty() || self.tx.is_some() {
            self.reply(Reply::not_allowed());
            return false;
        }
        if self.cfg.tls_required && !self.secure {
            self.reply(Reply::must_starttls());
            return false;
        }
        if self.cfg.auth_required && !self.authenticated {
            self.reply(Reply::must_auth());
            return false;
        }
        if self.mailcount >= self.cfg.max_mails {
            self.reply(Reply::too_many_messages());
            return false;
        }
        if parse_path(args, true, &self.smtpname).is_err() {
            self.reply(Reply::sender_syntax_error());
            return false;
        }
        true
    }

    fn check_rcpt_to(&mut self, args: &[u8]) -> bool {
        let Some(tx) = self.tx.as_ref() else {
            self.reply(Reply::not_allowed());
            return false;
        };
        if tx.rcpts.len() >= self.cfg.max_recipients {
            self.reply(Reply::too_many_recipients());
            return false;
        }
        if parse_path(args, false, &self.smtpname).is_err() {
            self.reply(Reply::recipient_syntax_error());
            return false;
        }
        true
    }

    fn check_data(&mut self, args: Option<&[u8]>) -> bool {
        if !self.check_noparam(args) {
            return false;
        }
        let Some(tx) = self.tx.as_ref() else {
            self.reply(Reply::not_allowed());
            return false;
        };
        if tx.rcpts.is_empty() {
            self.reply(Reply::no_recipient());
            return false;
        }
        true
    }

    fn proceed_mail_from(&mut self, args: &[u8]) {
        let mail = match parse_mail_from(args, &self.smtpname, self.cfg.dsn) {
            Ok(m) => m,
            Err(r) => {
                self.reply(r);
                return;
            }
        };
        let sender = mail.sender.clone();
        self.tx = Some(Tx {
            msgid: 0,
            mail,
            rcpts: Vec::new(),
            notify: Notify::default(),
            junk: false,
            error: None,
            datain: 0,
            dots: DotDecoder::new(),
            msg: None,
        });
        if self.authenticated && self.cfg.check_senders {
            let username = self.username.clone();
            self.request(Pending::Sender, Request::CheckSender { username, sender });
        } else {
            self.create_message();
        }
    }

    fn create_message(&mut self) {
        self.request(Pending::Create, Request::CreateMessage);
    }

    fn proceed_rcpt_to(&mut self, args: &[u8]) {
        let dsn = self.cfg.dsn;
        let max = self.cfg.max_recipients;
        let smtpname = self.smtpname.clone();
        let Some(tx) = self.tx.as_mut() else {
            self.reply(Reply::not_allowed());
            return;
        };
        if tx.rcpts.len() >= max {
            self.reply(Reply::too_many_recipients());
            return;
        }
        let msgid = tx.msgid;
        match parse_rcpt_to(args, &smtpname, dsn, &mut tx.notify) {
            Ok(rcpt) => {
                self.request(
                    Pending::Recipient(rcpt.clone()),
                    Request::CheckRecipient { msgid, rcpt },
                );
            }
            Err(r) => self.reply(r),
        }
    }

    fn message_begin(&mut self, opened: MessageOpened) {
        let junk = self.is_junk();
        let masquerade = self.authenticated && self.cfg.check_senders && self.cfg.masquerade;
        let Some(tx) = self.tx.as_ref() else {
            self.reply(Reply::temporary_error());
            self.enter_quit();
            return;
        };
        let sender_text = tx.mail.sender.to_string();
        let rcpt = if tx.rcpts.len() == 1 {
            tx.rcpts.first().cloned()
        } else {
            None
        };
        let username = String::from_utf8_lossy(&self.username).into_owned();
        let header = received_header(&ReceivedInfo {
            helo: &self.helo,
            rdns: &self.conn.rdns,
            peer: &self.conn.peer,
            mask_source: self.cfg.mask_source,
            smtpname: &self.smtpname,
            esmtp: self.ehlo,
            tls: self.tls.as_ref().filter(|_| self.secure),
            authenticated: self.authenticated,
            received_auth: self.cfg.received_auth,
            username: Some(username.as_str()),
            msgid: tx.msgid,
            rcpt: rcpt.as_ref(),
            date: &opened.date,
        });
        let mut msg = MessageProcessor::new(MessageOptions {
            hostname: self.cfg.hostname.clone(),
            add_missing_headers: self.cfg.add_missing_headers,
            date: opened.date.clone(),
            message_id_uid: opened.message_id_uid,
            masquerade_from: masquerade.then_some(sender_text),
        });
        if junk {
            msg.prepend(b"X-Spam: Yes\n");
        }
        msg.prepend(header.as_bytes());
        let out = msg.take_output();
        self.reply(Reply::enter_mail());
        self.events.push_back(Event::MessageData(out));
        if let Some(tx) = self.tx.as_mut() {
            tx.msg = Some(msg);
            tx.dots = DotDecoder::new();
            tx.datain = 0;
        }
        self.state = State::Body;
    }

    fn message_end(&mut self) {
        let Some(tx) = self.tx.as_mut() else {
            self.state = State::Ready;
            return;
        };
        if tx.error.is_none() {
            if let Some(msg) = tx.msg.as_mut() {
                let r = msg.end();
                let out = msg.take_output();
                if let Err(e) = r {
                    tx.error = Some(match e {
                        MessageError::Loop => TxError::Loop,
                        MessageError::Malformed => TxError::Malformed,
                    });
                }
                if !out.is_empty() {
                    self.events.push_back(Event::MessageData(out));
                }
            }
        }
        let Some(tx) = self.tx.as_ref() else { return };
        let reply = match tx.error {
            None => {
                let msgid = tx.msgid;
                let size = tx.msg.as_ref().map_or(0, MessageProcessor::written);
                self.request(Pending::Commit, Request::CommitMessage { msgid, size });
                return;
            }
            Some(TxError::Size) => Reply::message_too_big(),
            Some(TxError::Loop) => Reply::loop_detected(),
            Some(TxError::Malformed) => Reply::not_rfc2822(),
            Some(TxError::Io) => Reply::temporary_error(),
        };
        self.reply(reply);
        self.rollback_tx();
        self.state = State::Ready;
    }

    fn proceed_auth(&mut self, args: &[u8]) {
        let sep = args
            .iter()
            .position(|&c| c == b' ')
            .or_else(|| args.iter().position(|&c| c == b'\t'));
        let (method, rest) = match sep {
            Some(p) => (&args[..p], Some(&args[p + 1..])),
            None => (args, None),
        };
        if method.eq_ignore_ascii_case(b"PLAIN") {
            self.auth_plain(rest);
        } else if method.eq_ignore_ascii_case(b"LOGIN") {
            self.auth_login(rest);
        } else {
            let m = String::from_utf8_lossy(method).into_owned();
            self.reply(Reply::auth_method_not_supported(&m));
        }
    }

    fn auth_abort(&mut self) {
        self.reply(Reply::auth_syntax_error());
        self.state = State::Ready;
    }

    fn auth_plain(&mut self, arg: Option<&[u8]>) {
        if self.state == State::Ready && arg.is_none() {
            self.state = State::AuthInit;
            self.reply(Reply::auth_challenge(""));
            return;
        }
        self.state = State::AuthInit;
        let Some(buf) = b64_pton(arg.unwrap_or(b""), 1023) else {
            return self.auth_abort();
        };
        let len = buf.len();
        let Some(u0) = buf.iter().position(|&c| c == 0) else {
            return self.auth_abort();
        };
        if u0 + 2 >= len {
            return self.auth_abort();
        }
        let user_start = u0 + 1;
        let Some(p_rel) = buf[user_start..].iter().position(|&c| c == 0) else {
            return self.auth_abort();
        };
        let p0 = user_start + p_rel;
        if p0 + 2 >= len {
            return self.auth_abort();
        }
        let user = &buf[user_start..p0];
        if user.len() >= 256 {
            return self.auth_abort();
        }
        let pass = &buf[p0 + 1..];
        let pass = match pass.iter().position(|&c| c == 0) {
            Some(n) => &pass[..n],
            None => pass,
        };
        self.username = user.to_vec();
        let req = Request::Authenticate {
            username: user.to_vec(),
            password: pass.to_vec(),
        };
        self.request(Pending::Auth, req);
    }

    fn auth_login(&mut self, arg: Option<&[u8]>) {
        match self.state {
            State::Ready => {
                self.state = State::AuthUsername;
                match arg {
                    Some(a) if !a.is_empty() => self.auth_login(Some(a)),
                    _ => self.reply(Reply::auth_challenge("VXNlcm5hbWU6")),
                }
            }
            State::AuthUsername => {
                let Some(mut u) = b64_pton(arg.unwrap_or(b""), 255) else {
                    return self.auth_abort();
                };
                if let Some(n) = u.iter().position(|&c| c == 0) {
                    u.truncate(n);
                }
                self.username = u;
                self.state = State::AuthPassword;
                self.reply(Reply::auth_challenge("UGFzc3dvcmQ6"));
            }
            State::AuthPassword => {
                let Some(mut p) = b64_pton(arg.unwrap_or(b""), COMMAND_LINE_MAX - 1) else {
                    return self.auth_abort();
                };
                if let Some(n) = p.iter().position(|&c| c == 0) {
                    p.truncate(n);
                }
                self.password = p.clone();
                let req = Request::Authenticate {
                    username: self.username.clone(),
                    password: p,
                };
                self.request(Pending::Auth, req);
            }
            _ => self.auth_abort(),
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
