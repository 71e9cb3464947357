//! The statements that set one part of the daemon (parse.y's `include`, macros, `bounce`, `admd`,
//! `ca`, `pki`, `mda`, `mta`, `queue`, `scheduler`, `smtp`, `srs`, `proc`).

use super::*;

impl Parser<'_> {
    pub(super) fn include(&mut self) -> R<()> {
        self.bump();
        let path = self.string()?;
        if self.lx.depth() >= MAX_INCLUDE_DEPTH {
            // OpenSMTPD reaches this when it runs out of file descriptors; say it the same way.
            self.lx.messages.push(Message::Plain(format!(
                "pushfile: {}: Too many open files",
                path
            )));
            return self.fail(format!("failed to include file {}", path));
        }
        if !self.lx.pushfile(&path) {
            return self.fail(format!("failed to include file {}", path));
        }
        // OpenSMTPD pushes the statement's newline into the new file, so the include line
        // ends there and the parent's own newline becomes an empty line after the include.
        self.lx.lungetc_newline();
        Ok(())
    }

    pub(super) fn varset(&mut self) -> R<()> {
        let name = self.string()?;
        self.char(b'=')?;
        let value = self.string()?;
        // OpenSMTPD's loop starts checking at the second character.
        if name
            .bytes()
            .skip(1)
            .any(|b| b.is_ascii_whitespace() || b == 0x0b)
        {
            return self.fail("macro name cannot contain whitespace".into());
        }
        self.lx.symset(&name, &value, false);
        Ok(())
    }

    pub(super) fn bounce(&mut self) -> R<()> {
        self.bump();
        self.kw(K::WarnInterval)?;
        self.conf.options.bounce_warn.clear();
        loop {
            let s = self.string()?;
            let d = match delaytonum(&s) {
                Ok(d) => d,
                Err(t) => return self.fail(format!("invalid bounce delay: {}", t)),
            };
            if self.conf.options.bounce_warn.len() < 4 {
                self.conf.options.bounce_warn.push(d);
            }
            if !self.at_char(b',') {
                return Ok(());
            }
            self.bump();
        }
    }

    pub(super) fn admd(&mut self) -> R<()> {
        self.bump();
        let s = self.string()?;
        if s.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
            return self.fail("not a valid admd".into());
        }
        self.conf.options.admd = Some(s);
        Ok(())
    }

    pub(super) fn pki_name(&mut self) -> R<String> {
        let name = self.string()?;
        if name != "*" && !rsmtpd_protocol::address::res_hnok(name.as_bytes()) {
            return self.fail(format!("not a valid domain name: {}", name));
        }
        Ok(name.to_ascii_lowercase())
    }

    pub(super) fn ca(&mut self) -> R<()> {
        let at = self.here();
        self.bump();
        let name = self.pki_name()?;
        let idx = match self.conf.cas.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                self.conf.cas.push(Ca {
                    name,
                    cert: None,
                    at,
                });
                self.conf.order.push(Decl::Ca(self.conf.cas.len() - 1));
                self.conf.cas.len() - 1
            }
        };
        self.kw(K::Cert)?;
        let f = self.string()?;
        self.conf.cas[idx].cert = Some(f);
        Ok(())
    }

    pub(super) fn pki(&mut self) -> R<()> {
        let at = self.here();
        self.bump();
        let name = self.pki_name()?;
        let idx = match self.conf.pkis.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                self.conf.pkis.push(Pki {
                    name,
                    cert: None,
                    key: None,
                    dhe: None,
                    at,
                });
                self.conf.order.push(Decl::Pki(self.conf.pkis.len() - 1));
                self.conf.pkis.len() - 1
            }
        };
        loop {
            if self.eat_kw(K::Cert) {
                let f = self.string()?;
                self.conf.pkis[idx].cert = Some(f);
            } else if self.eat_kw(K::Key) {
                let f = self.string()?;
                self.conf.pkis[idx].key = Some(f);
            } else if self.eat_kw(K::Dhe) {
                let v = self.string()?;
                let d = match v.to_ascii_lowercase().as_str() {
                    "none" => Dhe::None,
                    "auto" => Dhe::Auto,
                    "legacy" => Dhe::Legacy,
                    _ => return self.fail(format!("invalid DHE keyword: {}", v)),
                };
                self.conf.pkis[idx].dhe = Some(d);
            } else {
                return Ok(());
            }
        }
    }

    pub(super) fn mda(&mut self) -> R<()> {
        self.bump();
        if self.eat_kw(K::Limit) {
            while self.at_str() {
                let key = self.string()?;
                let n = self.number()?;
                if !MDA_LIMIT_KEYS.contains(&key.as_str()) {
                    // sic: OpenSMTPD says "scheduler" here.
                    return self.fail(format!("invalid scheduler limit keyword: {}", key));
                }
                set_pair(&mut self.conf.options.mda_limits, key, n);
            }
            return Ok(());
        }
        self.kw(K::Wrapper)?;
        let name = self.string()?;
        let cmd = self.string()?;
        if self.conf.mda_wrappers.iter().any(|(n, _)| *n == name) {
            return self.fail(format!(
                "mda wrapper already declared with that name: {}",
                name
            ));
        }
        self.conf.mda_wrappers.push((name, cmd));
        self.conf
            .order
            .push(Decl::Wrapper(self.conf.mda_wrappers.len() - 1));
        Ok(())
    }

    pub(super) fn mta(&mut self) -> R<()> {
        self.bump();
        if self.eat_kw(K::MaxDeferred) {
            self.conf.options.mta_max_deferred = self.number()?;
            return Ok(());
        }
        self.kw(K::Limit)?;
        let domain = if self.eat_kw(K::For) {
            self.kw(K::Domain)?;
            Some(self.string()?)
        } else {
            None
        };
        let idx = match self
            .conf
            .options
            .mta_limits
            .iter()
            .position(|l| l.domain == domain)
        {
            Some(i) => i,
            None => {
                self.conf.options.mta_limits.push(MtaLimits {
                    domain,
                    family: None,
                    values: Vec::new(),
                });
                self.conf.options.mta_limits.len() - 1
            }
        };
        loop {
            if self.eat_kw(K::Inet4) {
                self.conf.options.mta_limits[idx].family = Some(Family::Inet4);
            } else if self.eat_kw(K::Inet6) {
                self.conf.options.mta_limits[idx].family = Some(Family::Inet6);
            } else if self.at_str() {
                let key = self.string()?;
                if MTA_LIMIT_KEYS_OURS.contains(&key.as_str()) {
                    let n = self.delay_seconds(&key)?;
                    set_pair(&mut self.conf.options.mta_limits[idx].values, key, n);
                    continue;
                }
                let n = self.number()?;
                if !MTA_LIMIT_KEYS.contains(&key.as_str()) {
                    return self.fail(format!("invalid mta limit keyword: {}", key));
                }
                set_pair(&mut self.conf.options.mta_limits[idx].values, key, n);
            } else {
                return Ok(());
            }
        }
    }

    /// The value of one of our delay keys: seconds, as every 6.8 `mta limit` delay, or a
    /// delay with its unit as `queue ttl` takes one (`1s`, `2m`; `delaytonum`). Whole
    /// seconds: the ISPs this is for ask for one second or more.
    fn delay_seconds(&mut self, key: &str) -> R<i64> {
        if self.at_str() {
            let s = self.string()?;
            return match delaytonum(&s) {
                Ok(n) => Ok(i64::from(n)),
                Err(t) => self.fail(format!("invalid {key}: {t}")),
            };
        }
        let n = self.number()?;
        if n < 0 {
            return self.fail(format!("invalid {key}: {n}"));
        }
        Ok(n)
    }

    pub(super) fn queue(&mut self) -> R<()> {
        self.bump();
        if self.eat_kw(K::Compression) {
            self.conf.options.queue_compression = true;
            return Ok(());
        }
        if self.eat_kw(K::Encryption) {
            if self.at_str() {
                let k = self.string()?;
                let k = if k.eq_ignore_ascii_case("stdin") || k == "-" {
                    "stdin".to_string()
                } else {
                    k
                };
                self.conf.options.queue_key = Some(k);
            }
            self.conf.options.queue_encryption = true;
            return Ok(());
        }
        self.kw(K::Ttl)?;
        let s = self.string()?;
        match delaytonum(&s) {
            Ok(d) => {
                self.conf.options.queue_ttl = d;
                Ok(())
            }
            Err(t) => self.fail(format!("invalid ttl delay: {}", t)),
        }
    }

    pub(super) fn scheduler(&mut self) -> R<()> {
        self.bump();
        self.kw(K::Limit)?;
        while self.at_str() {
            let key = self.string()?;
            let n = self.number()?;
            if !SCHEDULER_LIMIT_KEYS.contains(&key.as_str()) {
                return self.fail(format!("invalid scheduler limit keyword: {}", key));
            }
            set_pair(&mut self.conf.options.scheduler_limits, key, n);
        }
        Ok(())
    }

    pub(super) fn smtp(&mut self) -> R<()> {
        self.bump();
        if self.eat_kw(K::Limit) {
            while self.at_str() {
                let key = self.string()?;
                let n = self.number()?;
                match key.as_str() {
                    "max-rcpt" => self.conf.options.max_rcpt = n,
                    "max-mails" => self.conf.options.max_mails = n,
                    _ => return self.fail(format!("invalid session limit keyword: {}", key)),
                }
            }
            return Ok(());
        }
        if self.at_kw(K::Ciphers) {
            self.conf.options.ciphers_at = self.here();
        }
        if self.eat_kw(K::Ciphers) {
            self.conf.options.ciphers = Some(self.string()?);
            return Ok(());
        }
        if self.eat_kw(K::MaxMessageSize) {
            let size = match self.peek().clone() {
                Tok::Num(n) => {
                    self.bump();
                    if n < 0 {
                        return self.fail(format!("invalid size: {}", n));
                    }
                    n as u64
                }
                Tok::Str(s) => {
                    self.bump();
                    match scan_scaled(&s) {
                        Some(n) if n >= 0 => n as u64,
                        _ => return self.fail(format!("invalid size: {}", s)),
                    }
                }
                _ => return Err(Stop::Syntax),
            };
            self.conf.options.max_message_size = size;
            return Ok(());
        }
        self.kw(K::SubAddrDelim)?;
        let s = self.string()?;
        if s.len() != 1 {
            return self.fail("subaddressing-delimiter must be one character".into());
        }
        let c = s.as_bytes()[0];
        if c.is_ascii_whitespace() || !(0x20..0x7f).contains(&c) || c == b'@' {
            return self.fail("sub-addr-delim uses invalid character".into());
        }
        self.conf.options.sub_addr_delim = c as char;
        Ok(())
    }

    pub(super) fn srs(&mut self) -> R<()> {
        self.bump();
        if self.eat_kw(K::Key) {
            if self.eat_kw(K::Backup) {
                self.conf.options.srs_key_backup = Some(self.string()?);
            } else {
                self.conf.options.srs_key = Some(self.string()?);
            }
            return Ok(());
        }
        self.kw(K::Ttl)?;
        let s = self.string()?;
        let d = match delaytonum(&s) {
            Ok(d) => d,
            Err(t) => return self.fail(format!("ttl delay \"{}\" is invalid", t)),
        };
        if d / 86400 == 0 {
            // The unit was cut off by then, as in the invalid case.
            let shown = &s[..s.len() - 1];
            return self.fail(format!("ttl delay \"{}\" is too short", shown));
        }
        self.conf.options.srs_ttl_days = d / 86400;
        Ok(())
    }

    pub(super) fn proc_(&mut self) -> R<()> {
        let at = self.here();
        self.bump();
        let name = self.string()?;
        let command = self.string()?;
        if self.conf.procs.iter().any(|p| p.name == name) {
            return self.fail(format!("processor already exists with that name: {}", name));
        }
        let mut p = Proc {
            name,
            command,
            user: None,
            group: None,
            chroot: None,
            from_filter: false,
            at,
        };
        self.proc_params(&mut p)?;
        self.conf.procs.push(p);
        self.conf.order.push(Decl::Proc(self.conf.procs.len() - 1));
        Ok(())
    }

    pub(super) fn proc_params(&mut self, p: &mut Proc) -> R<()> {
        loop {
            let (slot, what) = match self.peek() {
                Tok::Kw(K::User) => (&mut p.user, "user"),
                Tok::Kw(K::Group) => (&mut p.group, "group"),
                Tok::Kw(K::Chroot) => (&mut p.chroot, "chroot"),
                _ => return Ok(()),
            };
            self.bump();
            let v = self.string()?;
            self.once(
                slot,
                v,
                &format!("{} already specified for this processor", what),
            )?;
        }
    }
}
