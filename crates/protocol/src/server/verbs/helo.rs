//! HELO and EHLO.

use crate::address::valid_domainpart;
use crate::reply::{EhloExtensions, Reply};

use super::super::{Session, State};

impl Session {
    pub(in crate::server) fn check_helo(&mut self, args: Option<&[u8]>) -> bool {
        self.check_greeting(args, false)
    }

    pub(in crate::server) fn check_ehlo(&mut self, args: Option<&[u8]>) -> bool {
        self.check_greeting(args, true)
    }

    fn check_greeting(&mut self, args: Option<&[u8]>, esmtp: bool) -> bool {
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

    pub(in crate::server) fn proceed_helo(&mut self, param: String) {
        self.greet(param, false);
    }

    pub(in crate::server) fn proceed_ehlo(&mut self, param: String) {
        self.greet(param, true);
    }

    fn greet(&mut self, name: String, esmtp: bool) {
        self.helo = name;
        self.esmtp = esmtp;
        self.bounce = false;
        if !matches!(self.state, State::Command(_)) {
            self.state = State::Command(None);
        }
        let method = if esmtp { "EHLO" } else { "HELO" };
        self.report("link-identify", format!("{}|{}", method, self.helo));
        let peer = self.conn.peer.bracketed();
        let r = if esmtp {
            let ext = EhloExtensions {
                max_message_size: self.cfg.max_message_size,
                dsn: self.cfg.dsn,
                starttls: self.cfg.starttls && self.tls.is_none(),
                auth: self.advertise_auth(),
            };
            Reply::ehlo(&self.smtpname, &self.helo, &peer, &ext)
        } else {
            Reply::helo(&self.smtpname, &self.helo, &peer)
        };
        self.reply(r);
    }
}
