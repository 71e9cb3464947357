//! STARTTLS (and the handshake before the banner on `smtps`).

use crate::received::TlsInfo;
use crate::reply::Reply;

use super::super::{CloseReason, Event, Pending, Session, State, UnexpectedAnswer};

impl Session {
    pub(in crate::server) fn check_starttls(&mut self, args: Option<&[u8]>) -> bool {
        if self.helo.is_empty() || self.tx().is_some() {
            self.reply(Reply::not_allowed());
            return false;
        }
        if !self.cfg.starttls {
            self.reply(Reply::command_not_supported());
            return false;
        }
        if self.tls.is_some() {
            self.reply(Reply::channel_already_secured());
            return false;
        }
        if args.is_some() {
            self.reply(Reply::no_parameters_allowed());
            return false;
        }
        true
    }

    pub(in crate::server) fn proceed_starttls(&mut self, _: String) {
        self.reply(Reply::ready_to_start_tls());
        self.start_tls();
    }

    /// Hands the connection to the shell's TLS handshake.
    pub(in crate::server) fn start_tls(&mut self) {
        self.state = State::Tls;
        self.pending = Some(Pending::Tls);
        self.events.push_back(Event::StartTls);
    }

    /// The TLS handshake (and any required client-certificate check)
    /// succeeded.
    pub fn tls_established(&mut self, info: TlsInfo) -> Result<(), UnexpectedAnswer> {
        self.take_pending(Pending::Tls)?;
        // RFC 3207 §4.2: nothing received before the handshake may be taken as if it came
        // inside TLS. The pipelining refusal already ensures there is nothing; this is the
        // second lock on that door.
        self.input.clear();
        self.helo.clear();
        self.tls = Some(info);
        if self.cfg.smtps && !self.banner_sent {
            self.send_banner();
        } else {
            self.state = State::Command(None);
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
}
