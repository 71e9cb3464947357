//! What the scheduler drives: an [`Agent`] makes one delivery attempt of an envelope, an
//! [`Injector`] submits a bounce. Traits, so that the runner is tested with fakes.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use crate::queue::Envelope;

use super::bounce::ESC_OTHER_MAIL_SYSTEM_STATUS;

/// A boxed future, so that the traits stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How one delivery attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentResult {
    /// Logged `result=Ok stat=Delivered`.
    Ok,
    /// Tried again later. `error` goes to the envelope's `errorline` (and
    /// the DSN: `"last line"`, `exited abnormally`...), `stat` to the log
    /// (`Error (temporary failure: "last line")`), `code` is the enhanced
    /// status detail (30 → 4.3.0).
    TempFail {
        error: String,
        stat: String,
        code: u8,
    },
    /// Bounced at once.
    PermFail {
        error: String,
        stat: String,
        code: u8,
    },
    /// The message already holds `Delivered-To: <dest>`: logged `PermFail
    /// stat=Loop detected`, bounced as OpenSMTPD does (a delayed DSN, 4.4.6).
    Loop,
    /// Not tried, and not a failure (ours: `destination-rate-delay`, whose backlog to one
    /// destination would otherwise fill the in-flight slots that every destination shares):
    /// due again in `after` seconds, no retry counted, nothing logged, the envelope untouched.
    Later { after: i64 },
}

impl AgentResult {
    /// A temporary failure whose log text is `Error (ERROR)`.
    pub fn temp(error: impl Into<String>) -> AgentResult {
        let error = error.into();
        AgentResult::TempFail {
            stat: format!("Error ({})", error),
            error,
            code: ESC_OTHER_MAIL_SYSTEM_STATUS,
        }
    }

    /// A permanent failure whose log text is `Error (ERROR)`.
    pub fn perm(error: impl Into<String>) -> AgentResult {
        let error = error.into();
        AgentResult::PermFail {
            stat: format!("Error ({})", error),
            error,
            code: ESC_OTHER_MAIL_SYSTEM_STATUS,
        }
    }
}

/// Delivers one envelope (local: maildir, mbox, mda, lmtp; or relay). The
/// envelope is as loaded from the queue; `message` is the queued message
/// file (`queue/XX/MSGID/message`). The agent must not touch the queue: the
/// runner updates or deletes the envelope from the result. For `type: mda`
/// envelopes the runner writes the `mda delivery` log line; a relay agent
/// (`type: mta`) logs its own `mta delivery` lines.
pub trait Agent: Send + Sync + 'static {
    fn deliver<'a>(&'a self, env: &'a Envelope, message: &'a Path) -> BoxFuture<'a, AgentResult>;
}

/// Submits a bounce the way OpenSMTPD's bounce session does, through a
/// local SMTP session (`address=local`): `EHLO SMTPNAME`, `MAIL FROM: <>`,
/// `RCPT TO: <TO>`, `DATA`, then `payload` (already CRLF, already "stuffed"
/// as bounce.c does it) followed by `.\r\n`, then `QUIT`.
/// `Ok` once the final dot got a 2xx; `Err(reply line)` otherwise: a
/// `5xx`/`6xx` line drops the bounce (PermFail), anything else (4xx, I/O
/// error text) retries it later.
pub trait Injector: Send + Sync + 'static {
    fn inject<'a>(
        &'a self,
        smtpname: &'a str,
        to: &'a str,
        payload: &'a [u8],
    ) -> BoxFuture<'a, Result<(), String>>;
}
