//! AUTH PLAIN and AUTH LOGIN (RFC 4954), as `smtp_rfc4954_auth_plain` / `_login`.
//!
//! The exchange lives in [`AuthState`]: the LOGIN user name travels inside the state that
//! waits for the password, and the decoded password goes straight into the
//! [`Request::Authenticate`] as a [`Secret`]; every buffer that held it is wiped on drop.

use zeroize::Zeroizing;

use crate::reply::Reply;
use crate::util::{b64_pton, strnvis};

use super::super::{
    AuthLog, LogEvent, LookupResult, Pending, Request, Secret, Session, State, UnexpectedAnswer,
    COMMAND_LINE_MAX,
};

/// Where an AUTH exchange is; it stays there while the shell checks the credentials.
#[derive(Debug)]
pub(in crate::server) enum AuthState {
    /// `AUTH PLAIN`: waiting for (or checking) the initial response.
    Plain,
    /// `AUTH LOGIN`: waiting for the user name.
    LoginUsername,
    /// `AUTH LOGIN`: waiting for (or checking) the password of `user`.
    LoginPassword { user: Vec<u8> },
}

impl AuthState {
    /// What `failed-command` shows instead of the secret line.
    pub(in crate::server) fn log_text(&self) -> &'static str {
        match self {
            AuthState::Plain => "AUTH PLAIN (...)",
            AuthState::LoginUsername => "AUTH LOGIN (username)",
            AuthState::LoginPassword { .. } => "AUTH LOGIN (password)",
        }
    }
}

impl Session {
    pub(in crate::server) fn advertise_auth(&self) -> bool {
        self.cfg.auth && self.tls.is_some() && !self.authenticated
    }

    pub(in crate::server) fn check_auth(&mut self, args: Option<&[u8]>) -> bool {
        if self.helo.is_empty() || self.tx().is_some() {
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

    pub(in crate::server) fn proceed_auth(&mut self, param: String) {
        let args = param.as_bytes();
        let sep = args
            .iter()
            .position(|&c| c == b' ')
            .or_else(|| args.iter().position(|&c| c == b'\t'));
        let (method, rest) = match sep {
            Some(p) => (&args[..p], Some(&args[p + 1..])),
            None => (args, None),
        };
        if method.eq_ignore_ascii_case(b"PLAIN") {
            self.state = State::Auth(AuthState::Plain);
            match rest {
                None => self.reply(Reply::auth_challenge("")),
                Some(r) => self.auth_plain(r),
            }
        } else if method.eq_ignore_ascii_case(b"LOGIN") {
            self.state = State::Auth(AuthState::LoginUsername);
            match rest {
                Some(r) if !r.is_empty() => self.auth_login_username(r),
                _ => self.reply(Reply::auth_challenge("VXNlcm5hbWU6")),
            }
        } else {
            let m = String::from_utf8_lossy(method).into_owned();
            self.reply(Reply::auth_method_not_supported(&m));
        }
    }

    /// A line read during the exchange.
    pub(in crate::server) fn auth_response(&mut self, line: &[u8]) {
        match &self.state {
            State::Auth(AuthState::Plain) => self.auth_plain(line),
            State::Auth(AuthState::LoginUsername) => self.auth_login_username(line),
            State::Auth(AuthState::LoginPassword { .. }) => self.auth_login_password(line),
            _ => self.auth_abort(),
        }
    }

    fn auth_abort(&mut self) {
        self.reply(Reply::auth_syntax_error());
        self.state = State::Command(None);
    }

    /// `authzid NUL authcid NUL passwd`, base64.
    fn auth_plain(&mut self, arg: &[u8]) {
        let Some(buf) = b64_pton(arg, 1023).map(Zeroizing::new) else {
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
        let user = &buf[user_start..p0];
        if user.len() >= 256 {
            return self.auth_abort();
        }
        // 6.8 checks `pass >= buf + len - 2` here, which refuses a one-character password
        // as a syntax error; only an empty password is malformed.
        let pass = &buf[p0 + 1..];
        if matches!(pass.first(), None | Some(0)) {
            return self.auth_abort();
        }
        let pass = match pass.iter().position(|&c| c == 0) {
            Some(n) => &pass[..n],
            None => pass,
        };
        self.username = user.to_vec();
        let req = Request::Authenticate {
            username: user.to_vec(),
            password: Secret::new(pass.to_vec()),
        };
        self.request(Pending::Auth, req);
    }

    fn auth_login_username(&mut self, arg: &[u8]) {
        let Some(mut user) = b64_pton(arg, 255) else {
            return self.auth_abort();
        };
        if let Some(n) = user.iter().position(|&c| c == 0) {
            user.truncate(n);
        }
        self.username = user.clone();
        self.state = State::Auth(AuthState::LoginPassword { user });
        self.reply(Reply::auth_challenge("UGFzc3dvcmQ6"));
    }

    fn auth_login_password(&mut self, arg: &[u8]) {
        let Some(mut pass) = b64_pton(arg, COMMAND_LINE_MAX - 1).map(Zeroizing::new) else {
            return self.auth_abort();
        };
        if let Some(n) = pass.iter().position(|&c| c == 0) {
            pass.truncate(n);
        }
        let State::Auth(AuthState::LoginPassword { user }) = &self.state else {
            return self.auth_abort();
        };
        let req = Request::Authenticate {
            username: user.clone(),
            password: Secret::new(pass.to_vec()),
        };
        self.request(Pending::Auth, req);
    }

    pub fn auth_result(&mut self, r: LookupResult) -> Result<(), UnexpectedAnswer> {
        self.take_pending(Pending::Auth)?;
        let user = strnvis(&self.username, 256, false, true);
        let (result, reply) = match r {
            LookupResult::Ok => (AuthLog::Ok, Reply::auth_succeeded()),
            LookupResult::PermFail => (AuthLog::PermFail, Reply::auth_failed()),
            LookupResult::TempFail => (AuthLog::TempFail, Reply::temporary_failure()),
        };
        // smtp_report_link_auth(): pass, fail or error, with the user as logged.
        let outcome = match r {
            LookupResult::Ok => "pass",
            LookupResult::PermFail => "fail",
            LookupResult::TempFail => "error",
        };
        let report = format!("{}|{}", user, outcome);
        self.log(LogEvent::Authentication { user, result });
        self.report("link-auth", report);
        if r == LookupResult::Ok {
            self.authenticated = true;
        }
        self.reply(reply);
        self.state = State::Command(None);
        self.process_input();
        Ok(())
    }
}
