//! One file per verb family, as Stalwart's `inbound/{ehlo,mail,rcpt,data,auth}.rs`: each
//! holds the verb's check (the refusals before the filter phase) and its proceed (what
//! happens once the filters let it through), plus the answers to the requests it makes.
//! The verbs without a parameter (RSET, QUIT, NOOP, HELP, WIZ) are here.

pub(super) mod auth;
mod data;
mod helo;
mod mail;
mod rcpt;
mod starttls;

use super::Session;
use crate::reply::Reply;

impl Session {
    pub(super) fn check_noparam(&mut self, args: Option<&[u8]>) -> bool {
        if args.is_some() {
            self.reply(Reply::no_arguments_accepted());
            return false;
        }
        true
    }

    pub(super) fn check_rset(&mut self, args: Option<&[u8]>) -> bool {
        if !self.check_noparam(args) {
            return false;
        }
        if self.helo.is_empty() {
            self.reply(Reply::not_allowed());
            return false;
        }
        true
    }

    pub(super) fn proceed_rset(&mut self, _: String) {
        self.reply(Reply::reset_state());
        self.rollback_tx();
    }

    pub(super) fn proceed_quit(&mut self, _: String) {
        self.reply(Reply::bye());
        self.enter_quit();
    }

    pub(super) fn proceed_noop(&mut self, _: String) {
        self.reply(Reply::ok());
    }

    pub(super) fn proceed_help(&mut self, _: String) {
        self.reply(Reply::help());
    }

    pub(super) fn proceed_wiz(&mut self, _: String) {
        self.reply(Reply::wiz());
    }
}
