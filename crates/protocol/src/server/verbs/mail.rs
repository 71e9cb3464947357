//! MAIL FROM: opens the transaction (checked against `senders` when authenticated), then
//! the queue creates the message.

use crate::address::parse_path;
use crate::command::{parse_mail_from, Notify};
use crate::reply::Reply;

use super::super::{LookupResult, Pending, Request, Session, State, Tx, UnexpectedAnswer};

impl Session {
    pub(in crate::server) fn check_mail_from(&mut self, args: Option<&[u8]>) -> bool {
        if self.helo.is_empty() || self.tx().is_some() {
            self.reply(Reply::not_allowed());
            return false;
        }
        if self.cfg.tls_required && self.tls.is_none() {
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
        if parse_path(args.unwrap_or(b""), true, &self.smtpname).is_err() {
            self.reply(Reply::sender_syntax_error());
            return false;
        }
        true
    }

    pub(in crate::server) fn proceed_mail_from(&mut self, param: String) {
        let mail = match parse_mail_from(param.as_bytes(), &self.smtpname, self.cfg.dsn) {
            Ok(m) => m,
            Err(r) => {
                self.reply(r);
                return;
            }
        };
        let sender = mail.sender.clone();
        self.state = State::Command(Some(Tx {
            msgid: 0,
            mail,
            rcpts: Vec::new(),
            notify: Notify::default(),
            junk: false,
        }));
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

    fn drop_tx(&mut self) {
        if let State::Command(tx) = &mut self.state {
            *tx = None;
        }
    }

    pub fn sender_result(&mut self, r: LookupResult) -> Result<(), UnexpectedAnswer> {
        self.take_pending(Pending::Sender)?;
        match r {
            LookupResult::Ok => self.create_message(),
            LookupResult::PermFail => {
                self.drop_tx();
                self.reply(Reply::sender_rejected());
            }
            LookupResult::TempFail => {
                self.drop_tx();
                self.reply(Reply::temporary_error());
            }
        }
        self.process_input();
        Ok(())
    }

    /// `Ok(msgid)` (non-zero, chosen by the queue) or `Err(())`.
    pub fn message_created(&mut self, r: Result<u32, ()>) -> Result<(), UnexpectedAnswer> {
        self.take_pending(Pending::Create)?;
        match (r, self.tx_mut()) {
            (Ok(msgid), Some(tx)) => {
                tx.msgid = msgid;
                self.reply(Reply::ok());
            }
            _ => {
                self.reply(Reply::temporary_error());
                self.drop_tx();
                self.enter_quit();
            }
        }
        self.process_input();
        Ok(())
    }
}
