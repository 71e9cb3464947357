//! The outbound SMTP/LMTP session as a state machine: bytes in, events out, time as an input.
//!
//! The shell connects, then loops:
//! - pass what it reads to [`Client::receive`] (EOF: [`Client::peer_closed`], error:
//!   [`Client::io_error`]);
//! - drain [`Client::poll_event`]: [`Event::Write`] (send the bytes), [`Event::StartTls`]
//!   (handshake, then [`Client::tls_established`] or [`Client::tls_failed`]), [`Event::Ready`]
//!   (idle: give it a [`Transaction`] with [`Client::send`], or let the keep-alive run out),
//!   [`Event::SendBody`] (stream the message through a
//!   [`DotStuffer`](super::DotStuffer) into [`Client::body`], then [`Client::body_end`]),
//!   [`Event::Done`] (one outcome per recipient), [`Event::Closed`] (close the socket; nothing
//!   follows);
//! - sleep until [`Client::poll_timeout`] at most and call [`Client::handle_timeout`].
//!
//! The per-phase deadlines are RFC 5321 §4.5.3.2's (initial 220: 5 min, MAIL 5, RCPT 5, DATA
//! initiation 2, data block 3, the final dot 10); the idle connection is kept
//! [`ClientConfig::keepalive`] (6.8: 10 s) for more messages, then `QUIT`.
//!
//! What 6.8 sends is kept (command bytes, `HELO` after a refused `EHLO`, `RSET` after a
//! failed transaction, DSN parameters only when the server offers DSN); beyond 6.8, on
//! purpose: PIPELINING (RFC 2920) when offered, `SIZE=` and `BODY=8BITMIME` on MAIL when
//! offered, a message larger than the server's SIZE refused before MAIL, and any number of
//! LMTP replies arriving together.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::reply::{ReplyParser, ServerReply};
use crate::util::b64_ntop;

/// RFC 5321 §4.5.3.2 client timeouts.
#[derive(Clone, Debug)]
pub struct Timeouts {
    pub greeting: Duration,
    pub helo: Duration,
    pub mail: Duration,
    pub rcpt: Duration,
    pub data_init: Duration,
    pub data_block: Duration,
    pub data_term: Duration,
    /// RSET, QUIT and STARTTLS replies.
    pub other: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let m = |n: u64| Duration::from_secs(60 * n);
        Timeouts {
            greeting: m(5),
            helo: m(5),
            mail: m(5),
            rcpt: m(5),
            data_init: m(2),
            data_block: m(3),
            data_term: m(10),
            other: m(5),
        }
    }
}

/// STARTTLS policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    /// `smtp+notls://`, `lmtp://`, or TLS already there (smtps).
    Off,
    /// `smtp://`: STARTTLS when offered, else in clear.
    Opportunistic,
    /// `smtp+tls://`, `tls`: no STARTTLS, no mail.
    Required,
}

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The name after EHLO/HELO/LHLO.
    pub helo: String,
    pub lmtp: bool,
    pub tls: Tls,
    /// Use PIPELINING when the server offers it (6.8 never does).
    pub pipelining: bool,
    /// Add `SIZE=` and `BODY=8BITMIME` when offered (6.8 never does).
    pub mail_parameters: bool,
    pub timeouts: Timeouts,
    /// How long an idle session waits for another message before `QUIT`.
    pub keepalive: Duration,
    /// `HELO` after a refused `EHLO` (6.8's mta); bounce.c gives up instead.
    pub helo_fallback: bool,
    /// `RSET` after a transaction that ended before its data (6.8's mta); bounce.c and
    /// mail.lmtp go straight on (to `QUIT`).
    pub rset_after_failure: bool,
    /// A refused recipient ends the transaction for all (sendmail: the message is not sent
    /// to anyone, it goes to dead.letter); otherwise each recipient has its own outcome.
    pub strict_recipients: bool,
    /// `auth <t>` credentials for the URL's label: AUTH after EHLO, on a TLS session only
    /// (6.8's mta: PLAIN with an initial response when offered, else LOGIN).
    pub auth: Option<AuthCredentials>,
    /// `mta limit max-failures-per-session N` (6.8: 25; 0: none): after N refused recipients
    /// in a row on the session, whatever transactions they were in, the transaction's other
    /// recipients fail temporarily with [`TOO_MANY_FAILURES`] and the session ends with QUIT.
    pub max_failures: usize,
    /// `mta limit session-transaction-delay N` (6.8: 0): how long the session waits after
    /// each transaction before it takes another; it counts in the keep-alive.
    pub transaction_delay: Duration,
}

/// 6.8's text for the recipients a session gives up on after `max-failures-per-session`.
pub const TOO_MANY_FAILURES: &str = "Too many consecutive errors, closing connection";

/// A user name and password to authenticate with.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for AuthCredentials {
    // Never the password, not even in a debug trace.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    pub fn new(helo: impl Into<String>) -> Self {
        ClientConfig {
            helo: helo.into(),
            lmtp: false,
            tls: Tls::Off,
            pipelining: true,
            mail_parameters: true,
            timeouts: Timeouts::default(),
            keepalive: Duration::from_secs(10),
            helo_fallback: true,
            rset_after_failure: true,
            strict_recipients: false,
            auth: None,
            max_failures: 0,
            transaction_delay: Duration::ZERO,
        }
    }
}

/// One recipient of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// The address between `<>`.
    pub address: String,
    /// `NOTIFY=` value (`SUCCESS,FAILURE`...), sent only when the server offers DSN.
    pub notify: Option<String>,
    /// `ORCPT=rfc822;` value, likewise.
    pub orcpt: Option<String>,
}

impl Recipient {
    pub fn new(address: impl Into<String>) -> Self {
        Recipient {
            address: address.into(),
            notify: None,
            orcpt: None,
        }
    }
}

/// One message to one destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// The reverse path between `<>` (empty for a bounce).
    pub mail_from: String,
    pub recipients: Vec<Recipient>,
    /// Size of the message on the wire, for `SIZE=` and the server's limit.
    pub size: Option<u64>,
    /// The message has bytes above 127 (`BODY=8BITMIME` when offered).
    pub eight_bit: bool,
    /// `RET=` and `ENVID=`, sent only when the server offers DSN.
    pub ret: Option<String>,
    pub envid: Option<String>,
    /// The exact MAIL line (without CRLF) instead of the built one: the local clients
    /// (sendmail, bounce injection) keep their own bytes.
    pub mail_line: Option<String>,
    /// Likewise for each RCPT line (same order as `recipients`).
    pub rcpt_lines: Option<Vec<String>>,
}

impl Transaction {
    pub fn new(mail_from: impl Into<String>, recipients: Vec<Recipient>) -> Self {
        Transaction {
            mail_from: mail_from.into(),
            recipients,
            size: None,
            eight_bit: false,
            ret: None,
            envid: None,
            mail_line: None,
            rcpt_lines: None,
        }
    }
}

/// What became of one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server took it (its reply to the final dot, or the LMTP reply for it).
    Delivered(ServerReply),
    /// Try again later; the reply (or the session error) as one line.
    TempFail(String, Option<ServerReply>),
    /// Bounce.
    PermFail(String, Option<ServerReply>),
}

impl Outcome {
    fn of(r: &ServerReply) -> Outcome {
        match r.class() {
            2 => Outcome::Delivered(r.clone()),
            5 => Outcome::PermFail(r.line(), Some(r.clone())),
            _ => Outcome::TempFail(r.line(), Some(r.clone())),
        }
    }
}

/// Why the session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Close {
    /// `QUIT` was answered: `mta disconnected reason=quit messages=N`.
    Quit { messages: usize },
    /// `mta error reason=TEXT`. `reply` holds the refusal that ended the session, if one
    /// did: a non-2xx greeting (6.8 disables the route for a 421 banner), or a refused
    /// EHLO/HELO/LHLO.
    Error {
        reason: String,
        reply: Option<ServerReply>,
        messages: usize,
    },
}

/// Output of the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Write(Vec<u8>),
    /// The server said 220 to STARTTLS: handshake now.
    StartTls,
    /// Greeted and idle: [`Client::send`] a transaction, or [`Client::quit`].
    Ready,
    /// DATA was accepted: send the body.
    SendBody,
    /// The transaction is over: one outcome per recipient, in order.
    Done(Vec<Outcome>),
    Closed(Close),
}

/// The server's EHLO extensions we use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    pub starttls: bool,
    pub pipelining: bool,
    pub dsn: bool,
    pub eight_bit_mime: bool,
    pub size: Option<u64>,
    /// `AUTH` was offered (with any mechanisms).
    pub auth: bool,
    pub auth_plain: bool,
    pub auth_login: bool,
}

impl Extensions {
    /// 6.8's extension matching (`mta_io`): exact keywords, `SIZE n`, `AUTH ...`.
    fn parse(reply: &ServerReply) -> Extensions {
        let mut e = Extensions::default();
        for l in reply.extensions() {
            let upper = l.to_ascii_uppercase();
            let mut words = upper.split(' ');
            match words.next().unwrap_or("") {
                "STARTTLS" if upper == "STARTTLS" => e.starttls = true,
                "PIPELINING" if upper == "PIPELINING" => e.pipelining = true,
                "DSN" if upper == "DSN" => e.dsn = true,
                "8BITMIME" if upper == "8BITMIME" => e.eight_bit_mime = true,
                "SIZE" => e.size = words.next().and_then(|n| n.parse().ok()),
                "AUTH" => {
                    e.auth = true;
                    for w in words {
                        e.auth_plain |= w == "PLAIN";
                        e.auth_login |= w == "LOGIN";
                    }
                }
                _ => {}
            }
        }
        e
    }
}

/// A command whose reply is awaited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmd {
    Banner,
    Ehlo,
    Helo,
    Lhlo,
    StartTls,
    AuthPlain,
    AuthLogin,
    AuthLoginUser,
    AuthLoginPass,
    Mail,
    Rcpt(usize),
    Data,
    /// The final dot; under LMTP one reply per accepted recipient.
    Dot,
    Rset,
    Quit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Banner, EHLO/HELO, STARTTLS.
    Greeting,
    /// Waiting for the shell's TLS handshake.
    Handshake,
    Idle,
    /// `session-transaction-delay`: after a transaction, before the next.
    Pause,
    Transaction,
    /// DATA accepted, the shell is writing the body.
    Body,
    /// `max-failures-per-session` reached under PIPELINING: the replies to what was already
    /// sent are read (nothing more is sent), then QUIT.
    Draining,
    Quitting,
    Closed,
}

#[derive(Debug)]
struct Tx {
    tx: Transaction,
    outcomes: Vec<Option<Outcome>>,
    /// The MAIL reply failed: later replies are only consumed.
    failed: bool,
    accepted: Vec<usize>,
    /// LMTP: which accepted recipient the next post-dot reply is for.
    lmtp_next: usize,
}

impl Tx {
    fn new(tx: Transaction) -> Tx {
        let n = tx.recipients.len();
        Tx {
            tx,
            outcomes: vec![None; n],
            failed: false,
            accepted: Vec::new(),
            lmtp_next: 0,
        }
    }
}

/// One client session.
#[derive(Debug)]
pub struct Client {
    cfg: ClientConfig,
    phase: Phase,
    input: ReplyParser,
    /// Commands sent and not answered yet, with the [`Client::receive`] call they were
    /// written in (a reply to a command cannot come in the same read that triggered it).
    awaiting: VecDeque<(Cmd, u64)>,
    reads: u64,
    events: VecDeque<Event>,
    ext: Extensions,
    secure: bool,
    tx: Option<Tx>,
    /// The next transaction, its commands sent right after the final dot of `tx` (PIPELINING:
    /// RFC 2920 lets MAIL, RCPT and DATA follow the message content in one group).
    queued: Option<Tx>,
    messages: usize,
    /// Refused recipients in a row on this session (6.8's `s->failures`).
    failures: usize,
    deadline: Option<Instant>,
}

impl Client {
    /// A session on a fresh connection (or right after the smtps handshake, with
    /// `secure`): it waits for the banner.
    pub fn new(cfg: ClientConfig, now: Instant, secure: bool) -> Client {
        let deadline = Some(now + cfg.timeouts.greeting);
        Client {
            cfg,
            phase: Phase::Greeting,
            input: ReplyParser::new(),
            awaiting: VecDeque::from([(Cmd::Banner, 0)]),
            reads: 0,
            events: VecDeque::new(),
            ext: Extensions::default(),
            secure,
            tx: None,
            queued: None,
            messages: 0,
            failures: 0,
            deadline,
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Client::handle_timeout`] wants to be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Deadlines that have passed; spurious calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(d) = self.deadline else { return };
        if now < d {
            return;
        }
        self.deadline = None;
        match self.phase {
            Phase::Idle => self.quit(now),
            Phase::Pause => self.idle_after_pause(now),
            Phase::Closed => {}
            _ => self.error("Connection timeout".into()),
        }
    }

    /// The server's extensions (after EHLO).
    pub fn extensions(&self) -> &Extensions {
        &self.ext
    }

    pub fn is_secure(&self) -> bool {
        self.secure
    }

    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Messages the server accepted on this session.
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// True while the session can take a transaction.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Idle
    }

    /// True while the session waits out `session-transaction-delay`: its deadline is not a
    /// timeout.
    pub fn is_pausing(&self) -> bool {
        self.phase == Phase::Pause
    }

    pub fn receive(&mut self, now: Instant, data: &[u8]) {
        if self.phase == Phase::Closed {
            return;
        }
        self.reads += 1;
        self.input.push(data);
        while let Some(r) = self.input.next_reply() {
            match r {
                Err(e) => return self.error(e.text()),
                Ok(reply) => {
                    let cmd = match self.awaiting.pop_front() {
                        Some((cmd, read)) if read < self.reads => cmd,
                        // 6.8 ends a session whose server talks unasked; so do we, also
                        // under PIPELINING (a reply to a command written after this read
                        // began cannot be in it).
                        _ => return self.error("Remote host sent too much data".into()),
                    };
                    self.reply(now, cmd, reply);
                    if self.phase == Phase::Closed {
                        return;
                    }
                }
            }
        }
        if self.awaiting.is_empty() && self.input.has_pending_input() {
            self.error("Remote host sent too much data".into());
        }
    }

    pub fn peer_closed(&mut self) {
        if self.phase == Phase::Quitting {
            // A server that closes right after QUIT without answering: done all the same.
            return self.close(Close::Quit {
                messages: self.messages,
            });
        }
        if self.phase != Phase::Closed {
            self.error("Connection closed unexpectedly".into());
        }
    }

    /// A read or write failed: `IO Error: TEXT`.
    pub fn io_error(&mut self, text: &str) {
        if self.phase != Phase::Closed {
            self.error(format!("IO Error: {text}"));
        }
    }

    pub fn tls_established(&mut self, now: Instant) {
        if self.phase != Phase::Handshake {
            return;
        }
        self.secure = true;
        self.phase = Phase::Greeting;
        // RFC 3207: forget what was said in clear, greet again.
        self.ext = Extensions::default();
        self.command(now, Cmd::Ehlo, format!("EHLO {}", self.cfg.helo));
    }

    pub fn tls_failed(&mut self, reason: &str) {
        if self.phase == Phase::Handshake {
            self.error(reason.to_string());
        }
    }

    /// Starts a transaction on an idle session. Recipients come back in [`Event::Done`].
    pub fn send(&mut self, now: Instant, tx: Transaction) {
        let n = tx.recipients.len();
        if self.phase != Phase::Idle || n == 0 {
            let why = "Internal error: session not ready".to_string();
            self.events.push_back(Event::Done(
                (0..n)
                    .map(|_| Outcome::TempFail(why.clone(), None))
                    .collect(),
            ));
            return;
        }
        if let (Some(max), Some(size)) = (self.ext.size, tx.size) {
            if max > 0 && size > max {
                let why = format!("552 5.3.4 Message too big for the remote host ({max} bytes)");
                self.events.push_back(Event::Done(
                    (0..n)
                        .map(|_| Outcome::PermFail(why.clone(), None))
                        .collect(),
                ));
                self.events.push_back(Event::Ready);
                return;
            }
        }
        let mail = self.mail_line(&tx);
        self.phase = Phase::Transaction;
        if self.pipelining() {
            self.write_group(&tx, mail);
            self.deadline = Some(now + self.cfg.timeouts.mail);
        } else {
            self.command(now, Cmd::Mail, mail);
        }
        self.tx = Some(Tx::new(tx));
    }

    /// MAIL, every RCPT and DATA in one write (PIPELINING).
    fn write_group(&mut self, tx: &Transaction, mail: String) {
        let mut out = format!("{mail}\r\n");
        self.awaiting.push_back((Cmd::Mail, self.reads));
        for i in 0..tx.recipients.len() {
            out.push_str(&self.rcpt_line(tx, i));
            out.push_str("\r\n");
            self.awaiting.push_back((Cmd::Rcpt(i), self.reads));
        }
        out.push_str("DATA\r\n");
        self.awaiting.push_back((Cmd::Data, self.reads));
        self.events.push_back(Event::Write(out.into_bytes()));
    }

    /// True when [`Client::send_next`] can take a transaction now: under PIPELINING, the
    /// current one's final dot is sent and nothing else is pending, and no pause between
    /// transactions is asked for.
    pub fn can_send_next(&self) -> bool {
        self.pipelining()
            && self.cfg.transaction_delay.is_zero()
            && self.phase == Phase::Transaction
            && self.queued.is_none()
            && self.tx.as_ref().is_some_and(|t| !t.failed)
            && self.awaiting.len() == 1
            && matches!(self.awaiting.front(), Some((Cmd::Dot, _)))
    }

    /// Sends the next transaction's commands behind the current one's final dot, without
    /// waiting for its reply (one round trip per message instead of two). Its outcomes come
    /// in [`Event::Done`] after the current one's; no [`Event::Ready`] comes between them.
    /// Err gives the transaction back when it cannot go now (see [`Client::can_send_next`],
    /// or it is over the server's SIZE: [`Client::send`] refuses it once idle).
    pub fn send_next(&mut self, tx: Transaction) -> Result<(), Box<Transaction>> {
        let too_big =
            matches!((self.ext.size, tx.size), (Some(max), Some(size)) if max > 0 && size > max);
        if !self.can_send_next() || tx.recipients.is_empty() || too_big {
            return Err(Box::new(tx));
        }
        let mail = self.mail_line(&tx);
        self.write_group(&tx, mail);
        self.queued = Some(Tx::new(tx));
        Ok(())
    }

    /// Body bytes, already in wire form (dot-stuffed, CRLF).
    pub fn body(&mut self, now: Instant, bytes: Vec<u8>) {
        if self.phase == Phase::Body && !bytes.is_empty() {
            self.events.push_back(Event::Write(bytes));
            self.deadline = Some(now + self.cfg.timeouts.data_block);
        }
    }

    /// The body is written: send the final dot.
    pub fn body_end(&mut self, now: Instant) {
        if self.phase != Phase::Body {
            return;
        }
        self.phase = Phase::Transaction;
        self.awaiting.push_back((Cmd::Dot, self.reads));
        self.events.push_back(Event::Write(b".\r\n".to_vec()));
        self.deadline = Some(now + self.cfg.timeouts.data_term);
    }

    /// The message could not be read: give up this session (6.8: `Error reading content
    /// file`, a temporary failure).
    pub fn body_failed(&mut self, reason: &str) {
        if self.phase == Phase::Body {
            self.error(reason.to_string());
        }
    }

    /// Ends an idle session with `QUIT`.
    pub fn quit(&mut self, now: Instant) {
        if self.phase == Phase::Idle {
            self.phase = Phase::Quitting;
            self.command(now, Cmd::Quit, "QUIT".into());
        }
    }

    fn pipelining(&self) -> bool {
        self.cfg.pipelining && self.ext.pipelining && !self.cfg.lmtp
    }

    fn mail_line(&self, tx: &Transaction) -> String {
        if let Some(l) = &tx.mail_line {
            return l.clone();
        }
        let mut s = format!("MAIL FROM:<{}>", tx.mail_from);
        if self.cfg.mail_parameters {
            if let (Some(_), Some(size)) = (self.ext.size, tx.size) {
                s.push_str(&format!(" SIZE={size}"));
            }
            if self.ext.eight_bit_mime && tx.eight_bit {
                s.push_str(" BODY=8BITMIME");
            }
        }
        if self.ext.dsn {
            if let Some(r) = &tx.ret {
                s.push_str(&format!(" RET={r}"));
            }
            if let Some(e) = tx.envid.as_deref().filter(|e| !e.is_empty()) {
                s.push_str(&format!(" ENVID={e}"));
            }
        }
        s
    }

    fn rcpt_line(&self, tx: &Transaction, i: usize) -> String {
        rcpt_line(&self.ext, tx, i)
    }
}

fn rcpt_line(ext: &Extensions, tx: &Transaction, i: usize) -> String {
    {
        if let Some(l) = tx.rcpt_lines.as_ref().and_then(|v| v.get(i)) {
            return l.clone();
        }
        let r = &tx.recipients[i];
        let mut s = format!("RCPT TO:<{}>", r.address);
        if ext.dsn {
            if let Some(n) = &r.notify {
                s.push_str(&format!(" NOTIFY={n}"));
            }
            if let Some(o) = &r.orcpt {
                s.push_str(&format!(" ORCPT=rfc822;{o}"));
            }
        }
        s
    }
}

impl Client {
    fn timeout_of(&self, cmd: Cmd) -> Duration {
        let t = &self.cfg.timeouts;
        match cmd {
            Cmd::Banner => t.greeting,
            Cmd::Ehlo | Cmd::Helo | Cmd::Lhlo => t.helo,
            Cmd::Mail => t.mail,
            Cmd::Rcpt(_) => t.rcpt,
            Cmd::Data => t.data_init,
            Cmd::Dot => t.data_term,
            Cmd::StartTls
            | Cmd::AuthPlain
            | Cmd::AuthLogin
            | Cmd::AuthLoginUser
            | Cmd::AuthLoginPass
            | Cmd::Rset
            | Cmd::Quit => t.other,
        }
    }

    fn command(&mut self, now: Instant, cmd: Cmd, line: String) {
        self.awaiting.push_back((cmd, self.reads));
        self.events
            .push_back(Event::Write(format!("{line}\r\n").into_bytes()));
        self.deadline = Some(now + self.timeout_of(cmd));
    }

    fn idle(&mut self, now: Instant) {
        self.phase = Phase::Idle;
        self.deadline = Some(now + self.cfg.keepalive);
        self.events.push_back(Event::Ready);
    }

    fn close(&mut self, c: Close) {
        self.phase = Phase::Closed;
        self.deadline = None;
        self.awaiting.clear();
        self.events.push_back(Event::Closed(c));
    }

    /// The session ends on an error; an open transaction's undecided recipients fail
    /// temporarily with the same text (6.8's `mta_error` → `mta_flush_task(TEMPFAIL)`).
    fn error(&mut self, reason: String) {
        self.error_with(reason, None)
    }

    fn error_with(&mut self, reason: String, reply: Option<ServerReply>) {
        if self.phase == Phase::Closed {
            return;
        }
        for t in [self.tx.take(), self.queued.take()].into_iter().flatten() {
            let outcomes = t
                .outcomes
                .into_iter()
                .map(|o| o.unwrap_or_else(|| Outcome::TempFail(reason.clone(), None)))
                .collect();
            self.events.push_back(Event::Done(outcomes));
        }
        self.close(Close::Error {
            reason,
            reply,
            messages: self.messages,
        });
    }

    fn reply(&mut self, now: Instant, cmd: Cmd, r: ServerReply) {
        let ok = r.is_positive();
        match cmd {
            Cmd::Banner => {
                if !ok {
                    return self.error_with(format!("BANNER rejected: {}", r.line()), Some(r));
                }
                if self.cfg.lmtp {
                    self.command(now, Cmd::Lhlo, format!("LHLO {}", self.cfg.helo));
                } else {
                    self.command(now, Cmd::Ehlo, format!("EHLO {}", self.cfg.helo));
                }
            }
            Cmd::Ehlo => {
                if !ok {
                    if (self.cfg.tls == Tls::Required && !self.secure) || !self.cfg.helo_fallback {
                        return self.error_with(format!("EHLO rejected: {}", r.line()), Some(r));
                    }
                    self.ext = Extensions::default();
                    return self.command(now, Cmd::Helo, format!("HELO {}", self.cfg.helo));
                }
                self.ext = Extensions::parse(&r);
                self.after_ehlo(now);
            }
            Cmd::Helo | Cmd::Lhlo => {
                if !ok {
                    let verb = if cmd == Cmd::Helo { "HELO" } else { "LHLO" };
                    return self.error_with(format!("{verb} rejected: {}", r.line()), Some(r));
                }
                if cmd == Cmd::Lhlo {
                    self.ext = Extensions::parse(&r);
                }
                if self.cfg.tls == Tls::Required && !self.secure {
                    return self.error("TLS required but not supported by remote host".into());
                }
                self.auth_or_idle(now);
            }
            Cmd::StartTls => {
                if !ok {
                    if self.cfg.tls == Tls::Required {
                        return self.error(format!("STARTTLS rejected: {}", r.line()));
                    }
                    // 6.8: on a refusal, carry on in clear.
                    return self.auth_or_idle(now);
                }
                self.phase = Phase::Handshake;
                self.deadline = Some(now + self.cfg.timeouts.other);
                self.events.push_back(Event::StartTls);
            }
            Cmd::AuthPlain | Cmd::AuthLoginPass => {
                if !ok {
                    return self.error_with(format!("AUTH rejected: {}", r.line()), Some(r));
                }
                self.idle(now);
            }
            Cmd::AuthLogin | Cmd::AuthLoginUser => {
                if r.code != 334 {
                    return self.error_with(format!("AUTH rejected: {}", r.line()), Some(r));
                }
                let Some(c) = &self.cfg.auth else {
                    return self.error("Internal error: no credentials".into());
                };
                let (next, text) = if cmd == Cmd::AuthLogin {
                    (Cmd::AuthLoginUser, b64_ntop(c.username.as_bytes()))
                } else {
                    (Cmd::AuthLoginPass, b64_ntop(c.password.as_bytes()))
                };
                self.command(now, next, text);
            }
            Cmd::Mail => {
                let pipelined = self.pipelining();
                let Some(t) = self.tx.as_mut() else { return };
                if !ok {
                    t.failed = true;
                    for o in t.outcomes.iter_mut() {
                        *o = Some(Outcome::of(&r));
                    }
                    if !self.awaiting.iter().any(|(c, _)| *c == Cmd::Data) {
                        self.finish_tx(now, true);
                    }
                    return;
                }
                if !pipelined {
                    let line = rcpt_line(&self.ext, &t.tx, 0);
                    self.command(now, Cmd::Rcpt(0), line);
                } else {
                    self.deadline = Some(now + self.cfg.timeouts.rcpt);
                }
            }
            Cmd::Rcpt(i) => {
                let pipelined = self.pipelining();
                let Some(t) = self.tx.as_mut() else { return };
                if self.phase == Phase::Draining {
                    return;
                }
                if !t.failed {
                    if ok {
                        t.accepted.push(i);
                        self.failures = 0;
                    } else if self.cfg.strict_recipients {
                        t.failed = true;
                        for o in t.outcomes.iter_mut() {
                            *o = Some(Outcome::of(&r));
                        }
                        if !pipelined {
                            return self.finish_tx(now, true);
                        }
                    } else {
                        if let Some(o) = t.outcomes.get_mut(i) {
                            *o = Some(Outcome::of(&r));
                        }
                        self.failures += 1;
                        if self.cfg.max_failures > 0 && self.failures == self.cfg.max_failures {
                            return self.give_up(now);
                        }
                    }
                }
                let n = t.tx.recipients.len();
                if pipelined {
                    self.deadline = Some(now + self.cfg.timeouts.data_init);
                    return;
                }
                if i + 1 < n {
                    let line = rcpt_line(&self.ext, &t.tx, i + 1);
                    return self.command(now, Cmd::Rcpt(i + 1), line);
                }
                if t.accepted.is_empty() {
                    return self.finish_tx(now, true);
                }
                self.command(now, Cmd::Data, "DATA".into());
            }
            Cmd::Data => {
                if self.phase == Phase::Draining {
                    if r.class() == 3 {
                        // The server waits for a body that must not go: only closing the
                        // connection without the final dot takes the message back.
                        return self.error(TOO_MANY_FAILURES.into());
                    }
                    self.phase = Phase::Quitting;
                    return self.command(now, Cmd::Quit, "QUIT".into());
                }
                let Some(t) = self.tx.as_mut() else { return };
                if r.class() == 3 && (t.failed || t.accepted.is_empty()) {
                    // RFC 2920: a pipelined DATA the server accepted although no recipient
                    // was: an empty message ends it, its reply is only consumed.
                    self.awaiting.push_back((Cmd::Dot, self.reads));
                    self.events.push_back(Event::Write(b".\r\n".to_vec()));
                    self.deadline = Some(now + self.cfg.timeouts.data_term);
                    t.failed = true;
                    return;
                }
                if t.failed || t.accepted.is_empty() {
                    return self.finish_tx(now, true);
                }
                if r.class() == 3 || r.class() == 2 {
                    self.phase = Phase::Body;
                    self.deadline = Some(now + self.cfg.timeouts.data_block);
                    self.events.push_back(Event::SendBody);
                    return;
                }
                for &i in &t.accepted {
                    t.outcomes[i] = Some(Outcome::of(&r));
                }
                self.finish_tx(now, true);
            }
            Cmd::Dot => {
                let lmtp = self.cfg.lmtp;
                let Some(t) = self.tx.as_mut() else { return };
                if t.failed {
                    return self.finish_tx(now, true);
                }
                if lmtp {
                    if let Some(&i) = t.accepted.get(t.lmtp_next) {
                        t.outcomes[i] = Some(Outcome::of(&r));
                    }
                    t.lmtp_next += 1;
                    if t.lmtp_next < t.accepted.len() {
                        self.awaiting.push_front((Cmd::Dot, 0));
                        return;
                    }
                } else {
                    for &i in &t.accepted {
                        t.outcomes[i] = Some(Outcome::of(&r));
                    }
                }
                if t.outcomes
                    .iter()
                    .any(|o| matches!(o, Some(Outcome::Delivered(_))))
                {
                    self.messages += 1;
                }
                self.finish_tx(now, false);
            }
            Cmd::Rset => self.after_tx(now),
            Cmd::Quit => self.close(Close::Quit {
                messages: self.messages,
            }),
        }
    }

    fn after_ehlo(&mut self, now: Instant) {
        if !self.secure && self.cfg.tls != Tls::Off {
            if self.ext.starttls {
                return self.command(now, Cmd::StartTls, "STARTTLS".into());
            }
            if self.cfg.tls == Tls::Required {
                return self.error("TLS required but not supported by remote host".into());
            }
        }
        self.auth_or_idle(now);
    }

    /// 6.8's `MTA_AUTH` state: with credentials, AUTH PLAIN (initial response) when offered,
    /// else AUTH LOGIN; never on a session without TLS.
    fn auth_or_idle(&mut self, now: Instant) {
        let Some(c) = &self.cfg.auth else {
            return self.idle(now);
        };
        if !self.secure {
            return self.error("Refuse to AUTH over unsecure channel".into());
        }
        if !self.ext.auth {
            return self.error("AUTH not advertised".into());
        }
        if self.ext.auth_plain {
            let mut raw = Vec::with_capacity(c.username.len() + c.password.len() + 2);
            raw.push(0);
            raw.extend_from_slice(c.username.as_bytes());
            raw.push(0);
            raw.extend_from_slice(c.password.as_bytes());
            let line = format!("AUTH PLAIN {}", b64_ntop(&raw));
            return self.command(now, Cmd::AuthPlain, line);
        }
        if self.ext.auth_login {
            return self.command(now, Cmd::AuthLogin, "AUTH LOGIN".into());
        }
        self.error("no supported AUTH method".into())
    }

    /// Reports the transaction. 6.8 sends `RSET` before the next one when the transaction
    /// ended before its data (MAIL, every RCPT or DATA refused), not after the final dot.
    fn finish_tx(&mut self, now: Instant, rset: bool) {
        let Some(t) = self.tx.take() else { return };
        let outcomes = t
            .outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::TempFail("No reply".into(), None)))
            .collect();
        self.events.push_back(Event::Done(outcomes));
        if let Some(q) = self.queued.take() {
            // The next one's commands are out already: its replies follow.
            self.tx = Some(q);
            self.phase = Phase::Transaction;
            self.deadline = Some(now + self.cfg.timeouts.mail);
            return;
        }
        if rset && self.cfg.rset_after_failure {
            self.phase = Phase::Transaction;
            self.command(now, Cmd::Rset, "RSET".into());
        } else {
            self.after_tx(now);
        }
    }

    /// After a transaction (its final reply, or the RSET after a failed one): idle, or first
    /// the `session-transaction-delay` pause (6.8's `MTA_HANGON` after EOM and RSET).
    fn after_tx(&mut self, now: Instant) {
        if self.cfg.transaction_delay.is_zero() {
            return self.idle(now);
        }
        self.phase = Phase::Pause;
        self.deadline = Some(now + self.cfg.transaction_delay);
    }

    /// The pause is over: idle for what is left of the keep-alive (6.8 counts the pause in
    /// its `hangon` seconds).
    fn idle_after_pause(&mut self, now: Instant) {
        self.phase = Phase::Idle;
        let left = self
            .cfg
            .keepalive
            .saturating_sub(self.cfg.transaction_delay);
        self.deadline = Some(now + left);
        self.events.push_back(Event::Ready);
    }

    /// `max-failures-per-session` reached (6.8's `mta_flush_task(TEMPFAIL, "Too many
    /// consecutive errors...")` then `MTA_QUIT`): every recipient of the transaction not yet
    /// refused fails temporarily, accepted ones too (the message is not sent), and the
    /// session ends; under PIPELINING once the replies to what was sent are in.
    fn give_up(&mut self, now: Instant) {
        if let Some(t) = self.tx.take() {
            let outcomes = t
                .outcomes
                .into_iter()
                .map(|o| o.unwrap_or_else(|| Outcome::TempFail(TOO_MANY_FAILURES.into(), None)))
                .collect();
            self.events.push_back(Event::Done(outcomes));
        }
        if self.awaiting.iter().any(|(c, _)| *c == Cmd::Data) {
            self.phase = Phase::Draining;
            return;
        }
        // Replies to pipelined RCPTs may still come: they are read before QUIT's.
        self.phase = Phase::Quitting;
        self.command(now, Cmd::Quit, "QUIT".into());
    }
}
