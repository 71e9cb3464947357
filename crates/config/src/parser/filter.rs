//! `filter NAME ...`: builtin, proc and chain filters, and the filters listeners and relays name.

use super::*;

impl Parser<'_> {
    /// `filter NAME` or an inline chain `filter { a, b }` (named `<dynchain:N>`), on a listener
    /// or a relay action; `dup` is the message when a filter was already given.
    pub(super) fn filter_option(&mut self, have: bool, dup: &str) -> R<String> {
        self.bump();
        if self.at_str() {
            let name = self.string()?;
            if have {
                return self.fail(dup.to_string());
            }
            if !self.filter_names.contains_key(&name) {
                return self.fail(format!("no filter exist with that name: {}", name));
            }
            return Ok(name);
        }
        if have {
            return self.fail(dup.to_string());
        }
        let name = self.dynchain_name();
        self.char(b'{')?;
        let list = self.filter_list()?;
        self.char(b'}')?;
        self.register_chain(name.clone(), list, true);
        Ok(name)
    }

    pub(super) fn dynchain_name(&mut self) -> String {
        loop {
            let n = format!("<dynchain:{:08x}>", self.last_dynchain_id);
            self.last_dynchain_id += 1;
            if !self.filter_names.contains_key(&n) {
                return n;
            }
        }
    }

    pub(super) fn register_chain(&mut self, name: String, list: Vec<String>, anonymous: bool) {
        self.filter_names
            .insert(name.clone(), FilterName { is_chain: true });
        self.add_filter(name, FilterKind::Chain(list), anonymous);
    }

    /// Refuses a filter name already declared.
    pub(super) fn new_filter_name(&mut self, name: &str) -> R<()> {
        if self.filter_names.contains_key(name) {
            return self.fail(format!("filter already exists with that name: {}", name));
        }
        Ok(())
    }

    /// Adds a filter; anonymous ones (chains a listener names inline) are not dumped.
    pub(super) fn add_filter(&mut self, name: String, kind: FilterKind, anonymous: bool) {
        let at = self.here();
        self.conf.filters.push(Filter {
            name,
            kind,
            anonymous,
            at,
        });
        if !anonymous {
            self.conf
                .order
                .push(Decl::Filter(self.conf.filters.len() - 1));
        }
    }

    pub(super) fn filter(&mut self) -> R<()> {
        let at = self.here();
        let r = self.filter_declaration();
        // The filter (and a proc-exec's process) is where its `filter` keyword is.
        if r.is_ok() {
            if let Some(f) = self.conf.filters.last_mut() {
                f.at = at.clone();
            }
            if let Some(p) = self.conf.procs.last_mut() {
                if p.from_filter && p.at.line == 0 {
                    p.at = at;
                }
            }
        }
        r
    }

    pub(super) fn filter_declaration(&mut self) -> R<()> {
        self.bump();
        let name = self.string()?;
        let tok = self.peek().clone();
        match tok {
            Tok::Kw(K::Proc) => {
                self.bump();
                let p = self.string()?;
                self.new_filter_name(&name)?;
                if self.conf.proc_(&p).is_none() {
                    return self.fail(format!("no processor exist with that name: {}", p));
                }
                self.filter_names
                    .insert(name.clone(), FilterName { is_chain: false });
                self.add_filter(name, FilterKind::Proc(p), false);
                Ok(())
            }
            Tok::Kw(K::ProcExec) => {
                self.bump();
                let command = self.string()?;
                self.new_filter_name(&name)?;
                self.filter_names
                    .insert(name.clone(), FilterName { is_chain: false });
                let mut p = Proc {
                    name: name.clone(),
                    command,
                    user: None,
                    group: None,
                    chroot: None,
                    from_filter: true,
                    at: Position::default(),
                };
                self.proc_params(&mut p)?;
                // A proc-exec filter's process shares the filter's name; it replaces any `proc`
                // of that name, as OpenSMTPD's dictionary does.
                self.conf.procs.retain(|q| q.name != p.name);
                self.conf.procs.push(p);
                self.add_filter(name.clone(), FilterKind::Proc(name), false);
                Ok(())
            }
            Tok::Kw(K::Phase) => {
                self.bump();
                self.new_filter_name(&name)?;
                self.filter_names
                    .insert(name.clone(), FilterName { is_chain: false });
                let b = self.filter_phase()?;
                self.add_filter(name, FilterKind::Builtin(b), false);
                Ok(())
            }
            Tok::Kw(K::Chain) => {
                self.bump();
                self.new_filter_name(&name)?;
                self.char(b'{')?;
                let list = self.filter_list()?;
                self.char(b'}')?;
                self.register_chain(name, list, false);
                Ok(())
            }
            _ => Err(Stop::Syntax),
        }
    }

    pub(super) fn filter_list(&mut self) -> R<Vec<String>> {
        let mut list: Vec<String> = Vec::new();
        loop {
            let f = self.string()?;
            let Some(info) = self.filter_names.get(&f).cloned() else {
                return self.fail(format!("no filter exist with that name: {}", f));
            };
            if info.is_chain {
                return self.fail(format!(
                    "no filter chain allowed within a filter chain: {}",
                    f
                ));
            }
            if list.contains(&f) {
                return self.fail(format!(
                    "no filter allowed twice within a filter chain: {}",
                    f
                ));
            }
            // OpenSMTPD also means to refuse two filters of one proc in a chain, but its check
            // looks up a value it stored as NULL and never fires; such chains are accepted.
            list.push(f);
            if !self.comma() && self.at_char(b'}') {
                return Ok(list);
            }
        }
    }

    pub(super) fn filter_phase(&mut self) -> R<BuiltinFilter> {
        let tok = self.peek().clone();
        let phase = match tok {
            Tok::Kw(K::Connect) => Phase::Connect,
            Tok::Kw(K::Helo) => Phase::Helo,
            Tok::Kw(K::Ehlo) => Phase::Ehlo,
            Tok::Kw(K::Auth) => Phase::Auth,
            Tok::Kw(K::MailFrom) => Phase::MailFrom,
            Tok::Kw(K::RcptTo) => Phase::RcptTo,
            Tok::Kw(K::Data) => Phase::Data,
            Tok::Kw(K::Commit) => Phase::Commit,
            _ => return Err(Stop::Syntax),
        };
        self.bump();
        self.kw(K::Match)?;
        let negate = self.negation();
        let allowed = |k: K| -> bool {
            use Phase::*;
            match k {
                K::Fcrdns | K::Rdns | K::Src => true,
                K::Helo => phase != Connect,
                K::Auth => !matches!(phase, Connect | Helo | Ehlo),
                K::MailFrom => !matches!(phase, Connect | Helo | Ehlo | Auth),
                K::RcptTo => phase == RcptTo,
                _ => false,
            }
        };
        let kw = match self.peek() {
            Tok::Kw(k) if allowed(*k) => *k,
            _ => return Err(Stop::Syntax),
        };
        self.bump();
        let check = match kw {
            K::Fcrdns => FilterCheck::Fcrdns,
            K::Rdns | K::Auth => match self.opt_regex_tables()? {
                None if kw == K::Rdns => FilterCheck::Rdns,
                None => FilterCheck::Auth,
                Some(t) => match (kw, t.regex) {
                    (K::Rdns, false) => FilterCheck::RdnsTable(t.table),
                    (K::Rdns, true) => FilterCheck::RdnsRegex(t.table),
                    (_, false) => FilterCheck::AuthTable(t.table),
                    (_, true) => FilterCheck::AuthRegex(t.table),
                },
            },
            _ => {
                let regex = self.eat_kw(K::Regex);
                let t = self.tables()?;
                match (kw, regex) {
                    (K::Src, false) => FilterCheck::SrcTable(t),
                    (K::Src, true) => FilterCheck::SrcRegex(t),
                    (K::Helo, false) => FilterCheck::HeloTable(t),
                    (K::Helo, true) => FilterCheck::HeloRegex(t),
                    (K::MailFrom, false) => FilterCheck::MailFromTable(t),
                    (K::MailFrom, true) => FilterCheck::MailFromRegex(t),
                    (_, false) => FilterCheck::RcptToTable(t),
                    (_, true) => FilterCheck::RcptToRegex(t),
                }
            }
        };
        if self.strict {
            if let Some((t, s)) = crate::validate::filter_check_table(&check) {
                self.check_contents(&t, s)?;
            }
        }
        let tok = self.peek().clone();
        let decision = match tok {
            Tok::Kw(K::Junk) if phase != Phase::Commit => {
                self.bump();
                Decision::Junk
            }
            Tok::Kw(K::Bypass) if phase != Phase::Commit => {
                self.bump();
                Decision::Bypass
            }
            Tok::Kw(k @ (K::Reject | K::Disconnect | K::Rewrite | K::Report)) => {
                self.bump();
                let s = self.string()?;
                match k {
                    K::Reject => Decision::Reject(s),
                    K::Disconnect => Decision::Disconnect(s),
                    K::Rewrite => Decision::Rewrite(s),
                    _ => Decision::Report(s),
                }
            }
            _ => return Err(Stop::Syntax),
        };
        Ok(BuiltinFilter {
            phase,
            negate,
            check,
            decision,
        })
    }
}
