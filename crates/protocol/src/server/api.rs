//! What the shell and the session say to each other: the listener settings, the facts about
//! the connection, the requests the machine makes and the answers it takes, and its events.

use std::fmt;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::address::Mailaddr;
use crate::command::RcptTo;
use crate::received::PeerAddr;
use crate::reply::Reply;

use super::log::{CloseReason, LogEvent, Trace};

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
    /// The message goes through a filter chain between reading and header processing
    /// (OpenSMTPD's `tx->filter` pipe): decoded lines come out as [`Event::FilterData`] and
    /// go back in with [`super::Session::filtered_line`] / [`super::Session::filtered_end`].
    /// Off: the lines go straight to the header processing, as without filters.
    pub filter_data: bool,
    /// `mask-src`.
    pub mask_source: bool,
    /// `received-auth`.
    pub received_auth: bool,
    /// Local listener or port 587: add missing Date/Message-ID.
    pub add_missing_headers: bool,
    /// `-T smtp`: emit [`Event::Trace`] for every line read and written.
    pub trace: bool,
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
            filter_data: false,
            mask_source: false,
            received_auth: false,
            add_missing_headers: false,
            trace: false,
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

/// A secret (an AUTH password): its bytes are wiped when it is dropped, and `Debug` does not
/// show them.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(Zeroizing::new(bytes))
    }
    /// The bytes, for the one place that checks them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Work only the shell can do. Each has exactly one answering method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Run the filter chain → [`super::Session::filter_result`].
    Filter { phase: FilterPhase, param: String },
    /// Check the `senders` table → [`super::Session::sender_result`].
    CheckSender { username: Vec<u8>, sender: Mailaddr },
    /// Create a message in the queue → [`super::Session::message_created`].
    CreateMessage,
    /// Match rules, expand, store envelopes → [`super::Session::recipient_result`].
    /// The transaction's sender and parameters are in
    /// [`super::Session::mail_from`].
    CheckRecipient { msgid: u32, rcpt: RcptTo },
    /// Open the message file (and, with [`SessionConfig::filter_data`], the filter chain's
    /// data stream) → [`super::Session::message_opened`]. Message bytes then arrive as
    /// [`Event::MessageData`].
    OpenMessage { msgid: u32 },
    /// Make the message durable → [`super::Session::commit_result`].
    CommitMessage { msgid: u32, size: u64 },
    /// Check credentials → [`super::Session::auth_result`]. On a permanent
    /// failure the shell must wait a random 0–1 s before answering
    /// (OpenSMTPD's timing-attack pause).
    Authenticate { username: Vec<u8>, password: Secret },
}

/// Output of the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Write this reply (`Reply::to_bytes`).
    Reply(Reply),
    Request(Request),
    /// Append to the open message file.
    MessageData(Vec<u8>),
    /// With [`SessionConfig::filter_data`]: one message line for the filter chain, without
    /// its line end and already dot-decoded (a line reading `.` is a line of the message,
    /// never the end). The first lines are the session's own `X-Spam:` and `Received:`
    /// headers, as OpenSMTPD writes them into the filter pipe.
    FilterData(Vec<u8>),
    /// With [`SessionConfig::filter_data`]: the client ended the message. Once the chain has
    /// given back its last line, call [`super::Session::filtered_end`].
    FilterDataEnd,
    /// Drop the message `msgid` from the queue (and end its filter data stream).
    Rollback {
        msgid: u32,
    },
    /// Flush all replies so far, then run the server-side TLS handshake and
    /// answer [`super::Session::tls_established`] or [`super::Session::tls_failed`].
    StartTls,
    Log(LogEvent),
    /// A report event for the session's `proc-exec` filters (only on filtered listeners, as
    /// OpenSMTPD's `SESSION_FILTERED`). The shell adds the time and the events it alone knows:
    /// `link-connect`, `tx-envelope`, `timeout`, `link-disconnect`.
    Report(crate::filter_protocol::Report),
    /// A `-T smtp` line (only with [`SessionConfig::trace`]).
    Trace(Trace),
    /// Flush all replies so far, then close. Nothing follows.
    Close(CloseReason),
}

/// Answer given in a state that did not ask for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnexpectedAnswer;

/// What the session waits for, the typed form of [`super::Session::wants_read`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wants {
    /// Bytes from the client ([`super::Session::receive`]).
    Input,
    /// The answer to the [`Request`] it emitted.
    Answer,
    /// The end of the TLS handshake it asked for with [`Event::StartTls`].
    Handshake,
    /// The filter chain's lines ([`super::Session::filtered_line`]) and its end
    /// ([`super::Session::filtered_end`]).
    FilteredData,
    /// Nothing: the session is closed.
    Nothing,
}
