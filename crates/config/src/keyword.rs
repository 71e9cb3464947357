//! The reserved words of smtpd.conf. A bare word equal to one of these is never a name: it must
//! be quoted to be used as one (which is why `table alias { ... }` is a syntax error).

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keyword {
    Action,
    Admd,
    Alias,
    Any,
    Auth,
    AuthOptional,
    Backup,
    Bounce,
    Bypass,
    Ca,
    Cert,
    Chain,
    Chroot,
    Ciphers,
    Commit,
    Compression,
    Connect,
    Data,
    DataLine,
    Dhe,
    Disconnect,
    Domain,
    Ehlo,
    Encryption,
    ExpandOnly,
    Fcrdns,
    Filter,
    For,
    ForwardOnly,
    From,
    Group,
    Helo,
    HeloSrc,
    Host,
    Hostname,
    Hostnames,
    Include,
    Inet4,
    Inet6,
    Junk,
    Key,
    Limit,
    Listen,
    Lmtp,
    Local,
    MailFrom,
    Maildir,
    MaskSrc,
    Masquerade,
    Match,
    MaxDeferred,
    MaxMessageSize,
    Mbox,
    Mda,
    Mta,
    Mx,
    NoDsn,
    NoVerify,
    Noop,
    On,
    Phase,
    Pki,
    Port,
    Proc,
    ProcExec,
    ProxyV2,
    Queue,
    Quit,
    RcptTo,
    Rdns,
    ReceivedAuth,
    Recipient,
    Regex,
    Reject,
    Relay,
    Report,
    Rewrite,
    Rset,
    Scheduler,
    Senders,
    Smtp,
    SmtpIn,
    SmtpOut,
    Smtps,
    Socket,
    Src,
    Srs,
    SubAddrDelim,
    Table,
    Tag,
    Tagged,
    Tls,
    TlsRequire,
    Ttl,
    User,
    Userbase,
    Verify,
    Virtual,
    WarnInterval,
    Wrapper,
}

/// Sorted, as OpenSMTPD's table is, so that lookup is a binary search.
const KEYWORDS: &[(&str, Keyword)] = &[
    ("action", Keyword::Action),
    ("admd", Keyword::Admd),
    ("alias", Keyword::Alias),
    ("any", Keyword::Any),
    ("auth", Keyword::Auth),
    ("auth-optional", Keyword::AuthOptional),
    ("backup", Keyword::Backup),
    ("bounce", Keyword::Bounce),
    ("bypass", Keyword::Bypass),
    ("ca", Keyword::Ca),
    ("cert", Keyword::Cert),
    ("chain", Keyword::Chain),
    ("chroot", Keyword::Chroot),
    ("ciphers", Keyword::Ciphers),
    ("commit", Keyword::Commit),
    ("compression", Keyword::Compression),
    ("connect", Keyword::Connect),
    ("data", Keyword::Data),
    ("data-line", Keyword::DataLine),
    ("dhe", Keyword::Dhe),
    ("disconnect", Keyword::Disconnect),
    ("domain", Keyword::Domain),
    ("ehlo", Keyword::Ehlo),
    ("encryption", Keyword::Encryption),
    ("expand-only", Keyword::ExpandOnly),
    ("fcrdns", Keyword::Fcrdns),
    ("filter", Keyword::Filter),
    ("for", Keyword::For),
    ("forward-only", Keyword::ForwardOnly),
    ("from", Keyword::From),
    ("group", Keyword::Group),
    ("helo", Keyword::Helo),
    ("helo-src", Keyword::HeloSrc),
    ("host", Keyword::Host),
    ("hostname", Keyword::Hostname),
    ("hostnames", Keyword::Hostnames),
    ("include", Keyword::Include),
    ("inet4", Keyword::Inet4),
    ("inet6", Keyword::Inet6),
    ("junk", Keyword::Junk),
    ("key", Keyword::Key),
    ("limit", Keyword::Limit),
    ("listen", Keyword::Listen),
    ("lmtp", Keyword::Lmtp),
    ("local", Keyword::Local),
    ("mail-from", Keyword::MailFrom),
    ("maildir", Keyword::Maildir),
    ("mask-src", Keyword::MaskSrc),
    ("masquerade", Keyword::Masquerade),
    ("match", Keyword::Match),
    ("max-deferred", Keyword::MaxDeferred),
    ("max-message-size", Keyword::MaxMessageSize),
    ("mbox", Keyword::Mbox),
    ("mda", Keyword::Mda),
    ("mta", Keyword::Mta),
    ("mx", Keyword::Mx),
    ("no-dsn", Keyword::NoDsn),
    ("no-verify", Keyword::NoVerify),
    ("noop", Keyword::Noop),
    ("on", Keyword::On),
    ("phase", Keyword::Phase),
    ("pki", Keyword::Pki),
    ("port", Keyword::Port),
    ("proc", Keyword::Proc),
    ("proc-exec", Keyword::ProcExec),
    ("proxy-v2", Keyword::ProxyV2),
    ("queue", Keyword::Queue),
    ("quit", Keyword::Quit),
    ("rcpt-to", Keyword::RcptTo),
    ("rdns", Keyword::Rdns),
    ("received-auth", Keyword::ReceivedAuth),
    ("recipient", Keyword::Recipient),
    ("regex", Keyword::Regex),
    ("reject", Keyword::Reject),
    ("relay", Keyword::Relay),
    ("report", Keyword::Report),
    ("rewrite", Keyword::Rewrite),
    ("rset", Keyword::Rset),
    ("scheduler", Keyword::Scheduler),
    ("senders", Keyword::Senders),
    ("smtp", Keyword::Smtp),
    ("smtp-in", Keyword::SmtpIn),
    ("smtp-out", Keyword::SmtpOut),
    ("smtps", Keyword::Smtps),
    ("socket", Keyword::Socket),
    ("src", Keyword::Src),
    ("srs", Keyword::Srs),
    ("sub-addr-delim", Keyword::SubAddrDelim),
    ("table", Keyword::Table),
    ("tag", Keyword::Tag),
    ("tagged", Keyword::Tagged),
    ("tls", Keyword::Tls),
    ("tls-require", Keyword::TlsRequire),
    ("ttl", Keyword::Ttl),
    ("user", Keyword::User),
    ("userbase", Keyword::Userbase),
    ("verify", Keyword::Verify),
    ("virtual", Keyword::Virtual),
    ("warn-interval", Keyword::WarnInterval),
    ("wrapper", Keyword::Wrapper),
];

impl Keyword {
    pub fn lookup(word: &str) -> Option<Keyword> {
        KEYWORDS
            .binary_search_by(|(k, _)| (*k).cmp(word))
            .ok()
            .map(|i| KEYWORDS[i].1)
    }

    pub fn as_str(self) -> &'static str {
        KEYWORDS
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(s, _)| *s)
            .unwrap_or("")
    }

    pub fn all() -> impl Iterator<Item = &'static str> {
        KEYWORDS.iter().map(|(s, _)| *s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_round_trips() {
        for w in KEYWORDS.windows(2) {
            assert!(w[0].0 < w[1].0, "{} >= {}", w[0].0, w[1].0);
        }
        for (s, k) in KEYWORDS {
            assert_eq!(Keyword::lookup(s), Some(*k));
            assert_eq!(k.as_str(), *s);
        }
        assert_eq!(Keyword::lookup("aliases"), None);
        assert_eq!(Keyword::lookup("Alias"), None);
    }
}
