//! `action NAME ...`: local deliveries and relaying, with their options.

use super::*;

impl Parser<'_> {
    pub(super) fn action(&mut self) -> R<()> {
        let at = self.here();
        self.bump();
        let name = self.string()?;
        if self.conf.action(&name).is_some() {
            return self.fail(format!(
                "dispatcher already declared with that name: {}",
                name
            ));
        }
        let method = if self.eat_kw(K::Relay) {
            Method::Relay(self.relay_options()?)
        } else {
            Method::Local(self.local_delivery()?)
        };
        let mut ttl = None;
        while self.eat_kw(K::Ttl) {
            let s = self.string()?;
            if ttl.is_some() {
                return self.fail("ttl already specified for this dispatcher".into());
            }
            match delaytonum(&s) {
                Ok(d) => ttl = Some(d),
                Err(t) => return self.fail(format!("ttl delay \"{}\" is invalid", t)),
            }
        }
        self.conf.actions.push(Action {
            name,
            method,
            ttl,
            at,
        });
        self.conf
            .order
            .push(Decl::Action(self.conf.actions.len() - 1));
        Ok(())
    }

    pub(super) fn format(&mut self, s: &str) -> R<Format> {
        match Format::parse(s) {
            Ok(f) => Ok(f),
            Err(e) => {
                self.defer(PendingCheck::Format(e.to_string()));
                // Kept as written; delivery fails on it as OpenSMTPD's does.
                Ok(Format {
                    raw: s.to_string(),
                    parts: vec![crate::format::Part::Literal(s.to_string())],
                })
            }
        }
    }

    pub(super) fn local_delivery(&mut self) -> R<LocalDelivery> {
        let tok = self.peek().clone();
        let method = match tok {
            Tok::Kw(K::Mbox) => {
                self.bump();
                LocalMethod::Mbox
            }
            Tok::Kw(K::Maildir) => {
                self.bump();
                if self.eat_kw(K::Junk) {
                    LocalMethod::Maildir {
                        path: None,
                        junk: true,
                    }
                } else if self.at_str() {
                    let p = self.string()?;
                    let junk = self.eat_kw(K::Junk);
                    let path = Some(self.format(&p)?);
                    LocalMethod::Maildir { path, junk }
                } else {
                    LocalMethod::Maildir {
                        path: None,
                        junk: false,
                    }
                }
            }
            Tok::Kw(K::Lmtp) => {
                self.bump();
                let d = self.string()?;
                let rcpt_to = self.eat_kw(K::RcptTo);
                let destination = self.format(&d)?;
                LocalMethod::Lmtp {
                    destination,
                    rcpt_to,
                }
            }
            Tok::Kw(K::Mda) => {
                self.bump();
                let c = self.string()?;
                let command = self.format(&c)?;
                LocalMethod::Mda { command }
            }
            Tok::Kw(K::ForwardOnly) => {
                self.bump();
                LocalMethod::ForwardOnly
            }
            Tok::Kw(K::ExpandOnly) => {
                self.bump();
                LocalMethod::ExpandOnly
            }
            _ => return Err(Stop::Syntax),
        };
        let mut d = LocalDelivery {
            method,
            alias: None,
            virtual_: None,
            userbase: None,
            user: None,
            wrapper: None,
            written: Vec::new(),
        };
        const DUP: &str = "already specified for this dispatcher";
        loop {
            let tok = self.peek().clone();
            let opt = match tok {
                Tok::Kw(K::User) => {
                    self.bump();
                    let u = self.string()?;
                    let refused = match d.method {
                        LocalMethod::Mbox => Some("this dispatcher"),
                        LocalMethod::ForwardOnly => Some("forward-only"),
                        LocalMethod::ExpandOnly => Some("expand-only"),
                        _ => None,
                    };
                    if let Some(what) = refused {
                        return self.fail(format!("user may not be specified for {}", what));
                    }
                    self.once(&mut d.user, u, &format!("user {}", DUP))?;
                    LocalOpt::User
                }
                Tok::Kw(K::Alias) | Tok::Kw(K::Virtual) => {
                    self.bump();
                    let is_virtual = tok == Tok::Kw(K::Virtual);
                    // alias and virtual share one slot: the same name first, then the other.
                    let (mine, other) = if is_virtual {
                        (&d.virtual_, &d.alias)
                    } else {
                        (&d.alias, &d.virtual_)
                    };
                    let (me, them) = if is_virtual {
                        ("virtual", "alias")
                    } else {
                        ("alias", "virtual")
                    };
                    let dup = if mine.is_some() {
                        Some(format!("{} mapping {}", me, DUP))
                    } else if other.is_some() {
                        Some(format!("{} mapping {}", them, DUP))
                    } else {
                        None
                    };
                    let t = self.checked_tables(dup, Need::Hash, Service::Alias, me)?;
                    if is_virtual {
                        d.virtual_ = Some(t);
                        LocalOpt::Virtual
                    } else {
                        d.alias = Some(t);
                        LocalOpt::Alias
                    }
                }
                Tok::Kw(K::Userbase) => {
                    self.bump();
                    let dup = d
                        .userbase
                        .is_some()
                        .then(|| format!("userbase mapping {}", DUP));
                    let t = self.checked_tables(dup, Need::Hash, Service::Userinfo, "userbase")?;
                    d.userbase = Some(t);
                    LocalOpt::Userbase
                }
                Tok::Kw(K::Wrapper) => {
                    self.bump();
                    let w = self.string()?;
                    if !self.conf.mda_wrappers.iter().any(|(n, _)| *n == w) {
                        return self.fail(format!("no mda wrapper with that name: {}", w));
                    }
                    d.wrapper = Some(w);
                    LocalOpt::Wrapper
                }
                _ => return Ok(d),
            };
            d.written.push(opt);
        }
    }

    pub(super) fn relay_options(&mut self) -> R<Relay> {
        let mut r = Relay::default();
        const DUP: &str = "already specified for this dispatcher";
        loop {
            let tok = self.peek().clone();
            let opt = match tok {
                Tok::Kw(K::Helo) | Tok::Kw(K::Pki) | Tok::Kw(K::Ca) | Tok::Kw(K::MailFrom) => {
                    self.bump();
                    let v = self.string()?;
                    let (slot, what, opt) = match tok {
                        Tok::Kw(K::Helo) => (&mut r.helo, "helo", RelayOpt::Helo),
                        Tok::Kw(K::Pki) => (&mut r.pki, "pki", RelayOpt::Pki),
                        Tok::Kw(K::Ca) => (&mut r.ca, "ca", RelayOpt::Ca),
                        _ => (&mut r.mail_from, "mail-from", RelayOpt::MailFrom),
                    };
                    self.once(slot, v, &format!("{} {}", what, DUP))?;
                    opt
                }
                Tok::Kw(K::HeloSrc) => {
                    self.bump();
                    let dup = r
                        .helo_src
                        .is_some()
                        .then(|| format!("helo-source mapping {}", DUP));
                    let t =
                        self.checked_tables(dup, Need::Hash, Service::Addrname, "helo-source")?;
                    r.helo_src = Some(t);
                    RelayOpt::HeloSrc
                }
                Tok::Kw(K::Src) => {
                    self.bump();
                    let dup = r.src.is_some().then(|| format!("source mapping {}", DUP));
                    r.src =
                        Some(self.checked_tables(dup, Need::List, Service::Source, "source")?);
                    RelayOpt::Src
                }
                Tok::Kw(K::Backup) => {
                    self.bump();
                    let mx = if self.eat_kw(K::Mx) {
                        Some(self.string()?)
                    } else {
                        None
                    };
                    if r.host.is_some() || r.domain.is_some() {
                        if r.backup.is_some() {
                            return self.fail(format!("backup {}", DUP));
                        }
                        return self.fail("backup and host are mutually exclusive".into());
                    }
                    self.once(&mut r.backup, mx, &format!("backup {}", DUP))?;
                    RelayOpt::Backup
                }
                Tok::Kw(K::Host) | Tok::Kw(K::Domain) => {
                    self.bump();
                    let is_host = tok == Tok::Kw(K::Host);
                    // host and domain share OpenSMTPD's one smarthost slot.
                    let dup = if r.host.is_some() || r.domain.is_some() {
                        Some(format!("host mapping {}", DUP))
                    } else if r.backup.is_some() {
                        let what = if is_host { "host" } else { "domain" };
                        Some(format!("backup and {} are mutually exclusive", what))
                    } else {
                        None
                    };
                    let need = if is_host { Need::List } else { Need::Hash };
                    let t = self.checked_tables(dup, need, Service::Relayhost, "host")?;
                    if is_host {
                        r.host = Some(t);
                        RelayOpt::Host
                    } else {
                        r.domain = Some(t);
                        RelayOpt::Domain
                    }
                }
                Tok::Kw(K::Tls) => {
                    self.bump();
                    let no_verify = self.eat_kw(K::NoVerify);
                    self.once(&mut r.tls, no_verify, &format!("tls {}", DUP))?;
                    RelayOpt::Tls
                }
                Tok::Kw(K::Auth) => {
                    self.bump();
                    let dup = if r.host.is_none() && r.domain.is_none() {
                        Some("auth may not be specified without host on a dispatcher".to_string())
                    } else if r.auth.is_some() {
                        Some(format!("auth mapping {}", DUP))
                    } else {
                        None
                    };
                    let t = self.checked_tables(dup, Need::Hash, Service::Credentials, "auth")?;
                    r.auth = Some(t);
                    RelayOpt::Auth
                }
                Tok::Kw(K::Filter) => {
                    let have = r.filter.is_some();
                    r.filter = Some(self.filter_option(have, &format!("filter {}", DUP))?);
                    RelayOpt::Filter
                }
                Tok::Kw(K::Srs) => {
                    self.bump();
                    if self.conf.options.srs_key.is_none() {
                        return self.fail(
                            "an srs key is required for srs to be specified in an action".into(),
                        );
                    }
                    self.flag_after_bump(&mut r.srs, &format!("srs {}", DUP))?;
                    RelayOpt::Srs
                }
                _ => return Ok(r),
            };
            r.written.push(opt);
        }
    }
}
