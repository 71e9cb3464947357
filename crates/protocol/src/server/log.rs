//! The session's log and trace texts, as OpenSMTPD writes them (`smtp_session.c`'s
//! `log_info` and `log_trace(TRACE_SMTP, ...)` calls).

use crate::address::Mailaddr;

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

/// One `-T smtp` line, at the point where OpenSMTPD's `log_trace(TRACE_SMTP, ...)` writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trace {
    /// `smtp: PTR: <<< LINE`: a line read in command mode, as `smtp_command` gets it (CR
    /// stripped, cut at a NUL), AUTH responses included. Lines refused before
    /// (pipelining, too long) are not traced, as in OpenSMTPD.
    Command(Vec<u8>),
    /// `smtp: PTR: >>> LINE`: one line of a reply.
    Reply(String),
    /// `<<< [MSG] LINE`: a message line as `smtp_tx_dataline` sees it, still dot-stuffed
    /// (the client's line; with a data filter chain, the chain's).
    MessageLine(Vec<u8>),
    /// `<<< [EOM]`, after the `[MSG] .` of the final dot.
    EndOfMessage,
}

impl Trace {
    /// The trace line; `ptr` stands for the session pointer OpenSMTPD prints.
    pub fn line(&self, ptr: &str) -> String {
        match self {
            Trace::Command(l) => format!("smtp: {ptr}: <<< {}", String::from_utf8_lossy(l)),
            Trace::Reply(l) => format!("smtp: {ptr}: >>> {l}"),
            Trace::MessageLine(l) => format!("<<< [MSG] {}", String::from_utf8_lossy(l)),
            Trace::EndOfMessage => "<<< [EOM]".to_string(),
        }
    }
}
