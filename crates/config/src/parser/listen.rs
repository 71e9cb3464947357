//! `listen on ...`: socket and interface listeners and their options.

use super::*;

impl Parser<'_> {
    pub(super) fn listen(&mut self) -> R<()> {
        let at = self.here();
        self.bump();
        self.kw(K::On)?;
        if self.eat_kw(K::Socket) {
            return self.socket_listener(at);
        }
        let on = self.string()?;
        self.if_listener(on, at)
    }

    /// `tag TAG` of a listener: at most 32 characters (SMTPD_TAG_SIZE).
    pub(super) fn listen_tag(&mut self, slot: &mut Option<String>) -> R<()> {
        self.bump();
        let t = self.string()?;
        if slot.is_some() {
            return self.fail("tag already specified".into());
        }
        if t.len() >= 33 {
            return self.fail("tag name too long".into());
        }
        *slot = Some(t);
        Ok(())
    }

    pub(super) fn socket_listener(&mut self, at: Position) -> R<()> {
        let mut s = SocketListener {
            declared: true,
            at,
            ..Default::default()
        };
        loop {
            match self.peek() {
                Tok::Kw(K::Filter) => {
                    let have = s.filter.is_some();
                    s.filter = Some(self.filter_option(have, "filter already specified")?);
                }
                Tok::Kw(K::MaskSrc) => {
                    self.flag(&mut s.mask_src, "mask-source already specified")?
                }
                Tok::Kw(K::Tag) => self.listen_tag(&mut s.tag)?,
                _ => break,
            }
        }
        if self.conf.socket.declared {
            return self.fail("socket listener already configured".into());
        }
        self.conf.socket = s;
        self.conf.order.push(Decl::Socket);
        Ok(())
    }

    /// `port N`, `port NAME`, `port smtp`: the port and how it was written.
    pub(super) fn listen_port(&mut self) -> R<(u16, PortSpec, String)> {
        let arg = self.bump();
        match arg {
            Tok::Num(n) if n <= 0 || n > 65535 => self.fail(format!("invalid port: {}", n)),
            Tok::Num(n) => Ok((n as u16, PortSpec::Number(n as u16), n.to_string())),
            // A quoted "25" is looked up as a service name, and is not one: OpenSMTPD refuses it.
            Tok::Str(_) | Tok::Kw(K::Smtp | K::Smtps) => {
                let name = match arg {
                    Tok::Str(s) => s,
                    Tok::Kw(k) => k.as_str().to_string(),
                    _ => String::new(),
                };
                match self.env.service_port(&name) {
                    Some(p) => Ok((p, PortSpec::Name, name)),
                    None => self.fail(format!("invalid port: {}", name)),
                }
            }
            _ => Err(Stop::Syntax),
        }
    }

    pub(super) fn if_listener(&mut self, on: String, at: Position) -> R<()> {
        let mut l = Listener::new(on);
        l.at = at;
        loop {
            let tok = self.peek().clone();
            let opt_at = self.here();
            let opt = match tok {
                Tok::Kw(K::Inet4) | Tok::Kw(K::Inet6) => {
                    self.bump();
                    let f = if tok == Tok::Kw(K::Inet4) {
                        Family::Inet4
                    } else {
                        Family::Inet6
                    };
                    self.once(&mut l.family, f, "address family already specified")?;
                    ListenOpt::Family
                }
                Tok::Kw(K::Port) => {
                    self.bump();
                    if !matches!(
                        self.peek(),
                        Tok::Num(_) | Tok::Str(_) | Tok::Kw(K::Smtp | K::Smtps)
                    ) {
                        return Err(Stop::Syntax);
                    }
                    if l.port_spec.is_some() {
                        self.bump();
                        return self.fail("port already specified".into());
                    }
                    let (port, spec, text) = self.listen_port()?;
                    l.port = port;
                    l.port_spec = Some((spec, text));
                    ListenOpt::Port
                }
                Tok::Kw(K::Filter) => {
                    let have = l.filter.is_some();
                    l.filter = Some(self.filter_option(have, "filter already specified")?);
                    ListenOpt::Filter
                }
                Tok::Kw(K::Smtps) | Tok::Kw(K::Tls) | Tok::Kw(K::TlsRequire) => {
                    self.bump();
                    let verify = tok != Tok::Kw(K::Tls) && self.eat_kw(K::Verify);
                    let mode = match tok {
                        Tok::Kw(K::Smtps) => TlsMode::Smtps,
                        Tok::Kw(K::Tls) => TlsMode::StartTls,
                        _ => TlsMode::StartTlsRequire,
                    };
                    self.once(&mut l.tls, mode, "TLS mode already specified")?;
                    l.tls_verify = verify;
                    ListenOpt::Tls
                }
                Tok::Kw(K::Pki) => {
                    self.bump();
                    let v = self.string()?;
                    self.once(&mut l.pki, v, "pki already specified")?;
                    ListenOpt::Pki
                }
                Tok::Kw(K::Ca) => {
                    self.bump();
                    let v = self.string()?;
                    self.once(&mut l.ca, v, "ca already specified")?;
                    ListenOpt::Ca
                }
                Tok::Kw(K::Auth) | Tok::Kw(K::AuthOptional) => {
                    self.bump();
                    let table = if self.table_starts() {
                        Some(self.tables()?)
                    } else {
                        None
                    };
                    let mode = if tok == Tok::Kw(K::Auth) {
                        AuthMode::Required(table)
                    } else {
                        AuthMode::Optional(table)
                    };
                    self.once(&mut l.auth, mode, "auth already specified")?;
                    ListenOpt::Auth
                }
                Tok::Kw(K::Tag) => {
                    self.listen_tag(&mut l.tag)?;
                    ListenOpt::Tag
                }
                Tok::Kw(K::Hostname) => {
                    self.bump();
                    let h = self.string()?;
                    self.once(&mut l.hostname, h, "hostname already specified")?;
                    ListenOpt::Hostname
                }
                Tok::Kw(K::Hostnames) | Tok::Kw(K::Senders) => {
                    self.bump();
                    let t = self.tables()?;
                    let senders = tok == Tok::Kw(K::Senders);
                    let masquerade = senders && self.eat_kw(K::Masquerade);
                    let (slot, what, service) = if senders {
                        (&mut l.senders, "senders", Service::Mailaddrmap)
                    } else {
                        (&mut l.hostnames, "hostnames", Service::Addrname)
                    };
                    if slot.is_some() {
                        return self.fail(format!("{} already specified", what));
                    }
                    if !self.usable(&t, Need::Hash, service) {
                        return self.fail(format!(
                            "invalid use of table \"{}\" as {} parameter",
                            t,
                            what.to_ascii_uppercase()
                        ));
                    }
                    *slot = Some(t);
                    if senders {
                        l.masquerade = masquerade;
                        ListenOpt::Senders
                    } else {
                        ListenOpt::Hostnames
                    }
                }
                Tok::Kw(K::MaskSrc) => {
                    self.flag(&mut l.mask_src, "mask-source already specified")?;
                    ListenOpt::MaskSrc
                }
                Tok::Kw(K::ReceivedAuth) => {
                    self.flag(&mut l.received_auth, "received-auth already specified")?;
                    ListenOpt::ReceivedAuth
                }
                Tok::Kw(K::NoDsn) => {
                    self.flag(&mut l.no_dsn, "no-dsn already specified")?;
                    ListenOpt::NoDsn
                }
                Tok::Kw(K::ProxyV2) => {
                    self.flag(&mut l.proxy_v2, "proxy-v2 already specified")?;
                    ListenOpt::ProxyV2
                }
                _ => break,
            };
            l.written.push(opt);
            l.options_at.push((opt, opt_at));
        }
        self.create_if_listener(l)
    }

    /// `create_if_listener()` and `config_listener()`: checks that OpenSMTPD makes fatal.
    pub(super) fn create_if_listener(&mut self, mut l: Listener) -> R<()> {
        if l.auth.is_some() && l.tls.is_none() {
            return self.fatal(&["smtpd: invalid listen option: auth requires tls/smtps".into()]);
        }
        if l.pki.is_some() && l.tls.is_none() {
            return self.fatal(&["smtpd: invalid listen option: pki requires tls/smtps".into()]);
        }
        if l.port_spec.is_none() {
            l.port = if l.tls == Some(TlsMode::Smtps) {
                465
            } else {
                25
            };
        }
        let mut addrs: Vec<IpAddr> = self.env.interface_addrs(&l.on);
        if addrs.is_empty() {
            if let Ok(a) = l.on.parse::<std::net::Ipv4Addr>() {
                if l.family != Some(Family::Inet6) {
                    addrs.push(IpAddr::V4(a));
                }
            }
        }
        if addrs.is_empty() && !l.on.contains('%') {
            if let Ok(a) = l.on.parse::<std::net::Ipv6Addr>() {
                if l.family != Some(Family::Inet4) {
                    addrs.push(IpAddr::V6(a));
                }
            }
        }
        if addrs.is_empty() {
            let literal_of_other_family = match l.family {
                Some(Family::Inet6) => l.on.parse::<std::net::Ipv4Addr>().is_ok(),
                Some(Family::Inet4) => l.on.parse::<std::net::Ipv6Addr>().is_ok(),
                None => false,
            };
            if literal_of_other_family {
                // getaddrinfo() fails; OpenSMTPD warns and creates no listener for this line.
                self.lx.messages.push(Message::Plain(format!(
                    "warn: host_dns: could not parse \"{}\": Address family for hostname not supported",
                    l.on
                )));
                return Ok(());
            }
            addrs = self.env.resolve_host(&l.on);
        }
        addrs.retain(|a| match l.family {
            Some(Family::Inet4) => a.is_ipv4(),
            Some(Family::Inet6) => a.is_ipv6(),
            None => true,
        });
        if addrs.is_empty() {
            return self.fatal(&[format!("smtpd: invalid virtual ip or interface: {}", l.on)]);
        }
        if let Some(p) = &l.pki {
            if self.conf.pki(&p.to_ascii_lowercase()).is_none() {
                return self.fatal(&[format!("pki name not found: {}", p), "smtpd".into()]);
            }
        }
        if let Some(c) = &l.ca {
            if self.conf.ca(&c.to_ascii_lowercase()).is_none() {
                return self.fatal(&[format!("ca name not found: {}", c), "smtpd".into()]);
            }
        }
        l.addrs = addrs;
        self.conf.listeners.push(l);
        self.conf
            .order
            .push(Decl::Listener(self.conf.listeners.len() - 1));
        Ok(())
    }
}
