//! What all sessions share: the configuration, the tables, DNS, the queue; and the work a
//! session asks of them (rules and expansion at RCPT, the queue at DATA).

use std::net::SocketAddr;
use std::path::Path;

use rsmtpd_config::Config;
use rsmtpd_protocol::address::Mailaddr;
use rsmtpd_protocol::command::{MailFrom, RcptTo};
use rsmtpd_protocol::received::PeerAddr;
use rsmtpd_protocol::session::{FilterDecision, FilterPhase, RecipientResult, Session};

use crate::dns::Dns;
use crate::session::Client;

/// One listening address and the options its sessions run with.
#[derive(Clone, Debug)]
pub struct Listening {
    /// None for the control socket.
    pub addr: Option<SocketAddr>,
    pub port: u16,
    /// The name in the banner and Received lines.
    pub hostname: String,
    pub tag: Option<String>,
    pub filter: Option<String>,
    pub no_dsn: bool,
    pub mask_src: bool,
    pub received_auth: bool,
    /// Loopback or the control socket: `from local` rules match.
    pub local: bool,
    /// OpenSMTPD's listener flags, for its debug line.
    pub flags: u32,
    pub pki: String,
    pub ca: String,
}

pub struct Server {
    pub config: Config,
    pub hostname: String,
    pub dns: Dns,
}

/// Per-session state the shell keeps next to the protocol machine.
pub struct Transaction {
    pub id: u64,
    pub client: Client,
    pub listen: std::sync::Arc<Listening>,
    envelopes: Vec<(u64, Mailaddr)>,
}

/// The session facts rules and expansion look at.
pub struct Facts {
    pub helo: String,
    pub tls: bool,
    pub auth: Option<String>,
}

impl Transaction {
    pub fn new(id: u64, client: Client, listen: std::sync::Arc<Listening>) -> Transaction {
        Transaction {
            id,
            client,
            listen,
            envelopes: Vec::new(),
        }
    }

    /// Envelope ids and recipients of the message being received.
    pub fn envelopes(&self) -> &[(u64, Mailaddr)] {
        &self.envelopes
    }

    pub fn write(&mut self, _data: &[u8]) {}

    pub fn facts(&self, sess: &Session) -> Facts {
        Facts {
            helo: sess.helo().to_string(),
            tls: sess.is_secure(),
            auth: sess
                .is_authenticated()
                .then(|| String::from_utf8_lossy(sess.username()).into_owned()),
        }
    }
}

impl Server {
    pub fn new(
        config: Config,
        hostname: String,
        _spool: &Path,
        dns: Dns,
    ) -> Result<Server, String> {
        Ok(Server {
            config,
            hostname,
            dns,
        })
    }

    pub async fn filter(
        &self,
        _tx: &mut Transaction,
        _phase: FilterPhase,
        _param: &str,
    ) -> Option<FilterDecision> {
        None
    }

    pub fn create_message(&self, _tx: &mut Transaction) -> std::io::Result<u32> {
        Ok(rand::random())
    }

    pub fn recipient(
        &self,
        _tx: &mut Transaction,
        _facts: &Facts,
        _msgid: u32,
        _mail: Option<&MailFrom>,
        _rcpt: &RcptTo,
    ) -> RecipientResult {
        RecipientResult::Refused("550 Invalid recipient".into())
    }

    pub fn open_message(&self, _tx: &mut Transaction, _msgid: u32) -> std::io::Result<()> {
        Err(std::io::Error::other("queue not available"))
    }

    pub async fn commit(&self, _tx: &mut Transaction, _msgid: u32) -> std::io::Result<()> {
        Err(std::io::Error::other("queue not available"))
    }

    pub fn rollback(&self, tx: &mut Transaction, _msgid: u32) {
        tx.envelopes.clear();
    }

    pub fn rollback_open(&self, tx: &mut Transaction) {
        tx.envelopes.clear();
    }
}

/// The `Date:` of a message that has none, and of the Received line.
pub fn rfc5322_date() -> String {
    crate::date::time_to_text(crate::date::now())
}

/// `address=` text of a client.
pub fn peer_text(p: &PeerAddr) -> String {
    p.text()
}
