//! `relay ... filter NAME`: what 6.8 does with it, checked on the real program. Its mta asks
//! no filter anything on the outbound session; it sends the smtp-out report events
//! (`report|0.6|TIME|smtp-out|EVENT|SESSID|...`) of each relay session to the processes of
//! the chain that registered them (`register|report|smtp-out|EVENT` or `*`): link-connect,
//! link-greeting, link-identify, link-tls, link-auth, protocol-client (AUTH masked),
//! protocol-server, tx-begin, tx-mail, tx-envelope, tx-rcpt, tx-data, tx-commit,
//! tx-rollback, tx-reset, timeout, link-disconnect.
//!
//! [`Reports`] follows the session from the bytes the shell writes and reads: commands are
//! answered in order, so each complete reply is the answer to the oldest command waiting.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use rsmtpd_config::{Config, FilterKind};
use rsmtpd_protocol::filter_protocol::report_line_for;

use crate::procfilter::process::Instance;
use crate::procfilter::Procs;

/// What a command sent waits to be answered as.
#[derive(Debug)]
enum Sent {
    Mail,
    Rcpt(usize),
    Data,
    Dot,
    Rset,
    Other,
}

/// The transaction being sent: what its reports name.
#[derive(Clone, Debug, Default)]
pub struct TxInfo {
    pub msgid: u32,
    pub sender: String,
    /// Per recipient: its envelope id and address, in the order of the RCPTs.
    pub rcpts: Vec<(u64, String)>,
    /// The message as sent (dot-stuffed), for tx-commit.
    pub size: usize,
}

/// One relay session's reports to its filter's processes.
pub struct Reports {
    sessid: u64,
    instances: Vec<Arc<Instance>>,
    sent: VecDeque<Sent>,
    greeted: bool,
    /// Bytes of a line not complete yet, written and read.
    out_partial: Vec<u8>,
    in_partial: Vec<u8>,
    /// Between the 354 and the final dot: the message's lines are not reported.
    in_body: bool,
    tx: Option<TxInfo>,
    rcpt_next: usize,
    /// Command lines still to mask (AUTH LOGIN's user and password).
    masked: u8,
}

fn chain_procs(conf: &Config, procs: &Procs, name: &str) -> Vec<Arc<Instance>> {
    let mut out: Vec<Arc<Instance>> = Vec::new();
    for n in crate::inbound::filter::chain_names(conf, name) {
        if let Some(FilterKind::Proc(p)) = conf.filter(n).map(|f| &f.kind) {
            if let Some(inst) = procs.slot(p).and_then(|s| s.current()) {
                if !out.iter().any(|i| Arc::ptr_eq(i, &inst)) {
                    out.push(inst);
                }
            }
        }
    }
    out
}

impl Reports {
    /// The reports of session `sessid` of a relay with `filter NAME`; None when no process of
    /// the chain registered a smtp-out event.
    pub fn open(conf: &Config, procs: &Procs, name: &str, sessid: u64) -> Option<Reports> {
        let instances: Vec<_> = chain_procs(conf, procs, name)
            .into_iter()
            .filter(|i| i.reports_out != 0)
            .collect();
        (!instances.is_empty()).then(|| Reports {
            sessid,
            instances,
            sent: VecDeque::new(),
            greeted: false,
            out_partial: Vec::new(),
            in_partial: Vec::new(),
            in_body: false,
            tx: None,
            rcpt_next: 0,
            masked: 0,
        })
    }

    fn report(&self, event: &str, params: &str) {
        let mut line: Option<String> = None;
        for i in &self.instances {
            if i.wants_report_out(event) {
                let l = line.get_or_insert_with(|| {
                    let mut s = String::new();
                    report_line_for(
                        &mut s,
                        crate::inbound::filter_link::now(),
                        "smtp-out",
                        event,
                        self.sessid,
                        params.as_bytes(),
                    );
                    s
                });
                i.write(l.clone().into_bytes());
            }
        }
    }

    /// The TCP connection is up: `link-connect|RDNS|pass|SRC|DEST` (6.8 counts the
    /// destination's name as forward-confirmed).
    pub fn connected(&self, rdns: Option<&str>, src: Option<SocketAddr>, dest: SocketAddr) {
        let text = |a: SocketAddr| {
            format!(
                "{}:{}",
                crate::sys::compat::addr_text(&a.ip().to_canonical()),
                a.port()
            )
        };
        self.report(
            "link-connect",
            &format!(
                "{}|pass|{}|{}",
                rdns.unwrap_or("(null)"),
                src.map_or_else(|| "0.0.0.0:0".to_string(), text),
                text(dest)
            ),
        );
    }

    /// The next transaction's names, before its MAIL is written.
    pub fn begin(&mut self, tx: TxInfo) {
        self.tx = Some(tx);
        self.rcpt_next = 0;
    }

    fn msgid(&self) -> String {
        format!("{:08x}", self.tx.as_ref().map_or(0, |t| t.msgid))
    }

    /// Bytes the session writes.
    pub fn written(&mut self, bytes: &[u8]) {
        self.out_partial.extend_from_slice(bytes);
        while let Some(i) = self.out_partial.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.out_partial.drain(..=i).collect();
            let line = String::from_utf8_lossy(&raw)
                .trim_end_matches(['\r', '\n'])
                .to_string();
            self.command(&line);
        }
    }

    fn command(&mut self, line: &str) {
        if self.in_body {
            if line == "." {
                self.in_body = false;
                self.report("protocol-client", ".");
                self.sent.push_back(Sent::Dot);
            }
            return;
        }
        let upper = line.to_ascii_uppercase();
        let verb = upper.split(' ').next().unwrap_or("");
        // AUTH's secrets are masked as 6.8 reports them: PLAIN's initial response, LOGIN's
        // user and password lines.
        let shown = if self.masked > 0 {
            self.masked -= 1;
            self.report("protocol-client", "********");
            self.sent.push_back(Sent::Other);
            return;
        } else if upper.starts_with("AUTH PLAIN ") {
            "AUTH PLAIN ********".to_string()
        } else {
            if upper == "AUTH LOGIN" {
                self.masked = 2;
            }
            line.to_string()
        };
        self.report("protocol-client", &shown);
        let sent = match verb {
            "EHLO" | "HELO" | "LHLO" => {
                let name = line.get(5..).unwrap_or("");
                self.report("link-identify", &format!("{verb}|{name}"));
                Sent::Other
            }
            "MAIL" => Sent::Mail,
            "RCPT" => {
                let i = self.rcpt_next;
                self.rcpt_next += 1;
                if let Some((evpid, _)) = self.tx.as_ref().and_then(|t| t.rcpts.get(i)) {
                    let params = format!("{}|{evpid:016x}", self.msgid());
                    self.report("tx-envelope", &params);
                }
                Sent::Rcpt(i)
            }
            "DATA" => Sent::Data,
            "RSET" => Sent::Rset,
            _ => Sent::Other,
        };
        self.sent.push_back(sent);
    }

    /// Bytes the session read.
    pub fn read(&mut self, bytes: &[u8]) {
        self.in_partial.extend_from_slice(bytes);
        while let Some(i) = self.in_partial.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.in_partial.drain(..=i).collect();
            let line = String::from_utf8_lossy(&raw)
                .trim_end_matches(['\r', '\n'])
                .to_string();
            self.report("protocol-server", &line);
            if line.as_bytes().get(3) == Some(&b'-') {
                continue;
            }
            self.reply(&line);
        }
    }

    fn reply(&mut self, line: &str) {
        let class = line.as_bytes().first().copied().unwrap_or(b'5');
        let result = match class {
            b'2' | b'3' => "ok",
            b'4' => "tempfail",
            _ => "permfail",
        };
        if !self.greeted {
            self.greeted = true;
            // The greeting's first word, when it is a domain (`valid_domainpart`).
            let domain = line
                .get(4..)
                .and_then(|r| r.split(' ').next())
                .unwrap_or("");
            let ok = !domain.is_empty()
                && domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            self.report("link-greeting", if ok { domain } else { "" });
            return;
        }
        let msgid = self.msgid();
        let rollback = |me: &Self| {
            me.report("tx-rollback", &msgid);
            me.report("tx-reset", &msgid);
        };
        match self.sent.pop_front() {
            Some(Sent::Mail) if class == b'2' => {
                let sender = self.tx.as_ref().map_or("", |t| t.sender.as_str());
                self.report("tx-begin", &msgid);
                self.report("tx-mail", &format!("{msgid}|ok|{sender}"));
            }
            Some(Sent::Mail) => self.tx = None,
            Some(Sent::Rcpt(i)) => {
                if let Some((_, addr)) = self.tx.as_ref().and_then(|t| t.rcpts.get(i)) {
                    self.report("tx-rcpt", &format!("{msgid}|{result}|{addr}"));
                }
            }
            Some(Sent::Data) => {
                self.report("tx-data", &format!("{msgid}|{result}"));
                if class == b'2' || class == b'3' {
                    self.in_body = true;
                } else {
                    rollback(self);
                }
            }
            Some(Sent::Dot) => {
                if class == b'2' {
                    let size = self.tx.as_ref().map_or(0, |t| t.size);
                    self.report("tx-commit", &format!("{msgid}|{size}"));
                    self.report("tx-reset", &msgid);
                } else {
                    rollback(self);
                }
                self.tx = None;
            }
            Some(Sent::Rset) => {
                if self.tx.take().is_some() {
                    rollback(self);
                }
            }
            Some(Sent::Other) | None => {}
        }
    }

    /// The TLS handshake is done: `link-tls|VERSION:CIPHER:BITS` as the mta's log shows it.
    pub fn tls(&self, text: &str) {
        self.report("link-tls", text);
    }

    pub fn timeout(&self) {
        self.report("timeout", "");
    }

    pub fn disconnected(&self) {
        self.report("link-disconnect", "");
    }
}
