//! RCPT TO: the shell matches the rules, expands and stores the envelopes.

use crate::address::parse_path;
use crate::command::parse_rcpt_to;
use crate::reply::Reply;

use super::super::{Pending, RecipientResult, Request, Session, UnexpectedAnswer};

impl Session {
    pub(in crate::server) fn check_rcpt_to(&mut self, args: Option<&[u8]>) -> bool {
        let max = self.cfg.max_recipients;
        let Some(tx) = self.tx() else {
            self.reply(Reply::not_allowed());
            return false;
        };
        if tx.rcpts.len() >= max {
            self.reply(Reply::too_many_recipients());
            return false;
        }
        if parse_path(args.unwrap_or(b""), false, &self.smtpname).is_err() {
            self.reply(Reply::recipient_syntax_error());
            return false;
        }
        true
    }

    pub(in crate::server) fn proceed_rcpt_to(&mut self, param: String) {
        let dsn = self.cfg.dsn;
        let max = self.cfg.max_recipients;
        let smtpname = self.smtpname.clone();
        let Some(tx) = self.tx_mut() else {
            self.reply(Reply::not_allowed());
            return;
        };
        if tx.rcpts.len() >= max {
            self.reply(Reply::too_many_recipients());
            return;
        }
        let msgid = tx.msgid;
        match parse_rcpt_to(param.as_bytes(), &smtpname, dsn, &mut tx.notify) {
            Ok(rcpt) => {
                self.request(
                    Pending::Recipient(rcpt.clone()),
                    Request::CheckRecipient { msgid, rcpt },
                );
            }
            Err(r) => self.reply(r),
        }
    }

    pub fn recipient_result(&mut self, r: RecipientResult) -> Result<(), UnexpectedAnswer> {
        let Some(Pending::Recipient(rcpt)) = self.pending.clone() else {
            return Err(UnexpectedAnswer);
        };
        self.pending = None;
        match r {
            RecipientResult::Accepted => {
                if let Some(tx) = self.tx_mut() {
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
}
