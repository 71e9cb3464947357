//! DATA: the message, from the `354` to the commit.
//!
//! Two stages, as in OpenSMTPD: stage A reads the client's lines (the dot-decoding, the
//! `max-message-size` count); stage B turns lines into the queue file (the session's
//! `Received:` header, header rewriting, the loop count, added Date/Message-ID). Without a
//! data filter chain, stage A hands each line to stage B (`smtp_tx_dataline`). With one
//! ([`SessionConfig::filter_data`]), stage A hands it to the chain instead
//! (`smtp_tx_filtered_dataline`) and the chain's lines come back through
//! [`Session::filtered_line`] (`filter_session_io`); the session's own `X-Spam:` and
//! `Received:` lines go into the chain first, as `smtp_message_begin` writes them there.
//!
//! [`SessionConfig::filter_data`]: super::super::SessionConfig::filter_data

use crate::data::{DataLine, DotDecoder, RawLine};
use crate::message::{MessageError, MessageOptions, MessageProcessor};
use crate::received::{received_header, ReceivedInfo};
use crate::reply::Reply;

use super::super::{
    Body, Event, FilterPhase, LogEvent, MessageOpened, Pending, Request, Session, State, Trace,
    TxError, UnexpectedAnswer,
};

impl Session {
    pub(in crate::server) fn check_data(&mut self, args: Option<&[u8]>) -> bool {
        if !self.check_noparam(args) {
            return false;
        }
        let Some(tx) = self.tx() else {
            self.reply(Reply::not_allowed());
            return false;
        };
        if tx.rcpts.is_empty() {
            self.reply(Reply::no_recipient());
            return false;
        }
        true
    }

    pub(in crate::server) fn proceed_data(&mut self, _: String) {
        let msgid = self.tx().map_or(0, |t| t.msgid);
        self.request(Pending::Open, Request::OpenMessage { msgid });
    }

    pub fn message_opened(&mut self, r: Result<MessageOpened, ()>) -> Result<(), UnexpectedAnswer> {
        self.take_pending(Pending::Open)?;
        match r {
            Ok(opened) => self.message_begin(opened),
            Err(()) => {
                self.reply(Reply::temporary_error());
                self.enter_quit();
            }
        }
        self.process_input();
        Ok(())
    }

    /// `smtp_message_begin`: the 354, then the session's own headers.
    fn message_begin(&mut self, opened: MessageOpened) {
        let junk = self.is_junk();
        let masquerade = self.authenticated && self.cfg.check_senders && self.cfg.masquerade;
        let tx = match std::mem::replace(&mut self.state, State::Command(None)) {
            State::Command(Some(tx)) => tx,
            other => {
                self.state = other;
                self.reply(Reply::temporary_error());
                self.enter_quit();
                return;
            }
        };
        let sender_text = tx.mail.sender.to_string();
        let rcpt = if tx.rcpts.len() == 1 {
            tx.rcpts.first().cloned()
        } else {
            None
        };
        let username = String::from_utf8_lossy(&self.username).into_owned();
        let header = received_header(&ReceivedInfo {
            helo: &self.helo,
            rdns: &self.conn.rdns,
            peer: &self.conn.peer,
            mask_source: self.cfg.mask_source,
            smtpname: &self.smtpname,
            esmtp: self.esmtp,
            tls: self.tls.as_ref(),
            authenticated: self.authenticated,
            received_auth: self.cfg.received_auth,
            // 6.8 writes `auth=yes user=NAME` after a failed AUTH too (it keeps the name it
            // was given); only an authenticated session says auth=yes here.
            username: self.authenticated.then_some(username.as_str()),
            msgid: tx.msgid,
            rcpt: rcpt.as_ref(),
            date: &opened.date,
        });
        let mut msg = MessageProcessor::new(MessageOptions {
            hostname: self.cfg.hostname.clone(),
            add_missing_headers: self.cfg.add_missing_headers,
            date: opened.date.clone(),
            message_id_uid: opened.message_id_uid,
            masquerade_from: masquerade.then_some(sender_text),
        });
        self.reply(Reply::enter_mail());
        // smtp_reply()'s tx-data for the 354 (the transaction is out of the state here).
        self.report("tx-data", format!("{:08x}|ok", tx.msgid));
        let mut own = Vec::new();
        if junk {
            own.extend_from_slice(b"X-Spam: Yes\n");
        }
        own.extend_from_slice(header.as_bytes());
        let filter_prefix = if self.cfg.filter_data {
            // Into the chain, one line at a time; they come back to stage B like the
            // client's lines (so the chain sees them, and our Received counts as a hop).
            for line in own.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                self.events.push_back(Event::FilterData(line.to_vec()));
            }
            Some(own.len() as u64)
        } else {
            msg.prepend(&own);
            self.events.push_back(Event::MessageData(msg.take_output()));
            None
        };
        self.state = State::Body(Box::new(Body {
            tx,
            dots: DotDecoder::new(),
            datain: 0,
            msg,
            error: None,
            filter_prefix,
        }));
    }

    /// Stage A, one line from the client. Returns true at the end of the message.
    pub(in crate::server) fn data_line(&mut self, line: RawLine) -> bool {
        let max = self.cfg.max_message_size;
        let trace = self.cfg.trace;
        let State::Body(body) = &mut self.state else {
            return true;
        };
        // Without a chain, this is `smtp_tx_dataline`, which traces the line as read.
        let traced = (trace && body.filter_prefix.is_none()).then(|| line.text.clone());
        let (dl, counted) = body.dots.decode(line);
        if let Some(t) = traced {
            self.trace(Trace::MessageLine(t));
        }
        let text = match dl {
            DataLine::End => {
                if !self.data_filtered() {
                    // smtp_tx_dataline() reports the final dot; with a chain, when it comes
                    // back from the chain (filtered_end).
                    self.report("protocol-client", ".");
                }
                if trace && !self.data_filtered() {
                    self.trace(Trace::EndOfMessage);
                }
                return true;
            }
            DataLine::Line(t) => t,
        };
        let State::Body(body) = &mut self.state else {
            return true;
        };
        body.datain = body.datain.saturating_add(counted as u64);
        if body.datain > max {
            body.error = Some(TxError::Size);
        }
        if body.error.is_some() {
            return false;
        }
        if body.filter_prefix.is_some() {
            self.events.push_back(Event::FilterData(text));
        } else {
            self.message_line(&text);
        }
        false
    }

    fn data_filtered(&self) -> bool {
        matches!(&self.state, State::Body(b) if b.filter_prefix.is_some())
    }

    /// Stage B, one line (dot-decoded, without its line end).
    fn message_line(&mut self, text: &[u8]) {
        let State::Body(body) = &mut self.state else {
            return;
        };
        if body.error.is_some() {
            return;
        }
        body.msg.line(text);
        let out = body.msg.take_output();
        let err = body.msg.error();
        if let Some(e) = err {
            body.error = Some(tx_error(e));
        }
        if !out.is_empty() {
            self.events.push_back(Event::MessageData(out));
        }
        if err == Some(MessageError::Loop) {
            self.log(LogEvent::LoopDetected);
        }
    }

    /// The client's final dot (no bytes may follow it: pipelining was checked).
    pub(in crate::server) fn end_of_data(&mut self) {
        if self.data_filtered() {
            self.events.push_back(Event::FilterDataEnd);
            self.pending = Some(Pending::FilteredData);
        } else {
            self.filter_phase(FilterPhase::Commit, String::new());
        }
    }

    /// A line the data filter chain gave back (dot-decoded, without its line end; bytes
    /// after a NUL are dropped, as OpenSMTPD's C strings drop them, and an LF inside ends
    /// a line). It goes through stage B to the queue file. Valid from the 354 until
    /// [`Session::filtered_end`].
    pub fn filtered_line(&mut self, line: &[u8]) -> Result<(), UnexpectedAnswer> {
        if !self.data_filtered() || !matches!(self.pending, None | Some(Pending::FilteredData)) {
            return Err(UnexpectedAnswer);
        }
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        for part in line.split(|&c| c == b'\n') {
            let part = match part.iter().position(|&c| c == 0) {
                Some(n) => &part[..n],
                None => part,
            };
            if self.cfg.trace {
                // `filter_session_io` hands the chain's (dot-stuffed) line to
                // `smtp_tx_dataline`, which traces it.
                let mut stuffed = Vec::with_capacity(part.len() + 1);
                if part.first() == Some(&b'.') {
                    stuffed.push(b'.');
                }
                stuffed.extend_from_slice(part);
                self.trace(Trace::MessageLine(stuffed));
            }
            self.message_line(part);
        }
        Ok(())
    }

    /// The data filter chain ended the message (its final `.`), after
    /// [`Event::FilterDataEnd`]: the message is checked and the commit phase runs.
    pub fn filtered_end(&mut self) -> Result<(), UnexpectedAnswer> {
        self.take_pending(Pending::FilteredData)?;
        self.report("protocol-client", ".");
        self.trace(Trace::MessageLine(b".".to_vec()));
        self.trace(Trace::EndOfMessage);
        self.filter_phase(FilterPhase::Commit, String::new());
        self.process_input();
        Ok(())
    }

    /// `smtp_message_end`: refuse the message for what went wrong, or commit it.
    pub(in crate::server) fn proceed_commit(&mut self, _: String) {
        let State::Body(body) = &mut self.state else {
            self.state = State::Command(None);
            return;
        };
        let mut out = Vec::new();
        if body.error.is_none() {
            let r = body.msg.end();
            out = body.msg.take_output();
            if let Err(e) = r {
                body.error = Some(tx_error(e));
            }
        }
        let reply = match body.error {
            None => None,
            Some(TxError::Size) => Some(Reply::message_too_big()),
            Some(TxError::Loop) => Some(Reply::loop_detected()),
            Some(TxError::Malformed) => Some(Reply::not_rfc2822()),
            Some(TxError::Io) => Some(Reply::temporary_error()),
        };
        let msgid = body.tx.msgid;
        let size = body.size();
        if !out.is_empty() {
            self.events.push_back(Event::MessageData(out));
        }
        match reply {
            None => self.request(Pending::Commit, Request::CommitMessage { msgid, size }),
            Some(reply) => {
                self.reply(reply);
                self.rollback_tx();
            }
        }
    }

    pub fn commit_result(&mut self, r: Result<(), ()>) -> Result<(), UnexpectedAnswer> {
        self.take_pending(Pending::Commit)?;
        let body = match std::mem::replace(&mut self.state, State::Command(None)) {
            State::Body(b) => b,
            other => {
                self.state = other;
                return Err(UnexpectedAnswer);
            }
        };
        match r {
            Ok(()) => {
                let tx = &body.tx;
                self.reply(Reply::message_accepted(tx.msgid));
                self.report("tx-commit", format!("{:08x}|{}", tx.msgid, body.size()));
                self.report("tx-reset", format!("{:08x}", tx.msgid));
                self.log(LogEvent::Message {
                    msgid: tx.msgid,
                    size: body.size(),
                    nrcpt: tx.rcpts.len(),
                    proto: if self.esmtp { "ESMTP" } else { "SMTP" },
                    sender: tx.mail.sender.clone(),
                    rcpts: tx.rcpts.clone(),
                });
                self.mailcount += 1;
            }
            Err(()) => {
                self.reply(Reply::temporary_failure());
                self.enter_quit();
            }
        }
        self.process_input();
        Ok(())
    }

    /// Writing message data to the queue failed: the message will be
    /// refused with `421 4.3.0 Temporary Error` at the final dot.
    pub fn message_write_failed(&mut self) {
        if let State::Body(body) = &mut self.state {
            body.error.get_or_insert(TxError::Io);
        }
    }
}

impl Body {
    /// The message size OpenSMTPD logs and reports (`odatalen`): what was written to the
    /// queue file, plus, with a data filter chain, the session's own headers once more,
    /// since `smtp_filter_printf` counts them on their way into the chain and
    /// `smtp_message_printf` again on their way out (seen on 6.8.0p2: 398 bytes with a
    /// filter where 251 without, the difference being the Received header).
    fn size(&self) -> u64 {
        self.msg.written() + self.filter_prefix.unwrap_or(0)
    }
}

fn tx_error(e: MessageError) -> TxError {
    match e {
        MessageError::Loop => TxError::Loop,
        MessageError::Malformed => TxError::Malformed,
    }
}
