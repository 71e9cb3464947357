//! `match ...`: the rules, their `from` and `for` criteria and the tables they test.

use super::*;

impl Parser<'_> {
    pub(super) fn match_(&mut self) -> R<()> {
        let mut rule = Rule {
            at: self.here(),
            ..Default::default()
        };
        self.bump();
        loop {
            let negate = self.negation();
            let tok = self.peek().clone();
            let criterion_at = self.here();
            let written = match tok {
                Tok::Kw(K::Tag) | Tok::Kw(K::Helo) | Tok::Kw(K::MailFrom) | Tok::Kw(K::RcptTo) => {
                    self.bump();
                    let (written, what, plain) = match tok {
                        Tok::Kw(K::Tag) => (Written::Tag, "tag", Service::String),
                        Tok::Kw(K::Helo) => (Written::Helo, "helo", Service::Domain),
                        Tok::Kw(K::MailFrom) => (Written::MailFrom, "mail-from", Service::Mailaddr),
                        _ => (Written::RcptTo, "rcpt-to", Service::Mailaddr),
                    };
                    let dup = rule.table_criterion(written).is_some();
                    let test = self.criterion_table(dup, what, plain, what)?;
                    *rule.table_criterion(written) = Some(Criterion { negate, test });
                    written
                }
                Tok::Kw(K::Tls) => {
                    self.bump();
                    if rule.tls.is_some() {
                        return self.fail("tls already specified for this rule".into());
                    }
                    rule.tls = Some(!negate);
                    Written::Tls
                }
                Tok::Kw(K::Auth) => {
                    self.bump();
                    let test = self.auth_tables(rule.auth.is_some(), "auth", "auth")?;
                    rule.auth = Some(Criterion { negate, test });
                    Written::Auth
                }
                Tok::Kw(K::From) => {
                    self.bump();
                    self.match_from(&mut rule, negate)?;
                    Written::From
                }
                Tok::Kw(K::For) => {
                    self.bump();
                    self.match_for(&mut rule, negate)?;
                    Written::For
                }
                _ if negate => return Err(Stop::Syntax),
                _ => break,
            };
            rule.written.push(written);
            rule.criteria_at.push((written, criterion_at));
        }
        if self.eat_kw(K::Reject) {
            rule.action = None;
        } else {
            self.kw(K::Action)?;
            let a = self.string()?;
            if self.conf.action(&a).is_none() {
                return self.fail(format!("no such dispatcher: {}", a));
            }
            rule.action = Some(a);
        }
        self.conf.rules.push(rule);
        self.conf.order.push(Decl::Rule(self.conf.rules.len() - 1));
        Ok(())
    }

    /// A `tables` argument checked in OpenSMTPD's order: the option given twice (`dup`, the
    /// message), then the table's kind for the lookup (`table "T" may not be used for LOOKUP
    /// lookups`), then (strict mode, at the end) its contents.
    pub(super) fn checked_tables(
        &mut self,
        dup: Option<String>,
        need: Need,
        service: Service,
        lookup: &str,
    ) -> R<String> {
        let table = self.tables()?;
        if let Some(msg) = dup {
            return self.fail(msg);
        }
        if !self.usable(&table, need, service) {
            return self.fail(format!(
                "table \"{}\" may not be used for {} lookups",
                table, lookup
            ));
        }
        self.check_contents(&table, service)?;
        Ok(table)
    }

    /// `[regex] tables` of a rule criterion, checked in OpenSMTPD's order: the criterion given
    /// twice (`WHAT already specified for this rule`), then the table's kind for the lookup
    /// (`table "T" may not be used for LOOKUP lookups`).
    pub(super) fn criterion_table(
        &mut self,
        dup: bool,
        what: &str,
        plain: Service,
        lookup: &str,
    ) -> R<TableTest> {
        let regex = self.eat_kw(K::Regex);
        let service = if regex { Service::Regex } else { plain };
        let dup = dup.then(|| format!("{} already specified for this rule", what));
        let table = self.checked_tables(dup, Need::List, service, lookup)?;
        Ok(TableTest { table, regex })
    }

    /// The optional `[regex] tables` after `auth` or `rdns`.
    pub(super) fn opt_regex_tables(&mut self) -> R<Option<TableTest>> {
        let regex = self.eat_kw(K::Regex);
        if !regex && !self.table_starts() {
            return Ok(None);
        }
        let table = self.tables()?;
        Ok(Some(TableTest { table, regex }))
    }

    /// `auth [[regex] tables]`: a plain table may serve strings or credentials.
    pub(super) fn auth_tables(
        &mut self,
        dup: bool,
        what: &str,
        lookup: &str,
    ) -> R<Option<TableTest>> {
        let test = self.opt_regex_tables()?;
        if dup {
            return self.fail(format!("{} already specified for this rule", what));
        }
        if let Some(tt) = &test {
            let ok = if tt.regex {
                self.usable(&tt.table, Need::List, Service::Regex)
            } else {
                // K_STRING|K_CREDENTIALS: any backend serving one of them.
                self.usable(&tt.table, Need::List, Service::String)
                    || self.usable(&tt.table, Need::List, Service::Credentials)
            };
            if !ok {
                return self.fail(format!(
                    "table \"{}\" may not be used for {} lookups",
                    tt.table, lookup
                ));
            }
            let s = if tt.regex {
                Service::Regex
            } else {
                Service::String
            };
            self.check_contents(&tt.table, s)?;
        }
        Ok(test)
    }

    pub(super) fn match_from(&mut self, rule: &mut Rule, negate: bool) -> R<()> {
        let dup = rule.from.is_some();
        let tok = self.peek().clone();
        let from = match tok {
            Tok::Kw(K::Socket) | Tok::Kw(K::Local) | Tok::Kw(K::Any) => {
                self.bump();
                if dup {
                    return self.fail("from already specified for this rule".into());
                }
                match tok {
                    Tok::Kw(K::Socket) => From::Socket,
                    Tok::Kw(K::Local) => From::Local,
                    _ => From::Any,
                }
            }
            Tok::Kw(K::Src) => {
                self.bump();
                let t = self.criterion_table(dup, "from", Service::Netaddr, "from")?;
                From::Src(t)
            }
            Tok::Kw(K::Rdns) => {
                self.bump();
                let test = self.opt_regex_tables()?;
                if dup {
                    return self.fail("from already specified for this rule".into());
                }
                if let Some(tt) = &test {
                    // OpenSMTPD checks K_DOMAIN for `rdns regex` too.
                    if !self.usable(&tt.table, Need::List, Service::Domain) {
                        return self.fail(format!(
                            "table \"{}\" may not be used for rdns lookups",
                            tt.table
                        ));
                    }
                    let s = if tt.regex {
                        Service::Regex
                    } else {
                        Service::Domain
                    };
                    self.check_contents(&tt.table, s)?;
                }
                From::Rdns(test)
            }
            Tok::Kw(K::Auth) => {
                // `from auth` is `from any` plus an auth criterion that carries the negation.
                self.bump();
                let test = self.auth_tables(dup, "from", "from")?;
                rule.auth = Some(Criterion { negate, test });
                rule.from = Some(Criterion {
                    negate: false,
                    test: From::Auth,
                });
                return Ok(());
            }
            Tok::Kw(K::MailFrom) => {
                // `from mail-from T` is `from any` plus a mail-from criterion.
                self.bump();
                let test = self.criterion_table(dup, "from", Service::Mailaddr, "from")?;
                rule.mail_from = Some(Criterion { negate, test });
                rule.from = Some(Criterion {
                    negate: false,
                    test: From::MailFrom,
                });
                return Ok(());
            }
            _ => return Err(Stop::Syntax),
        };
        rule.from = Some(Criterion { negate, test: from });
        Ok(())
    }

    pub(super) fn match_for(&mut self, rule: &mut Rule, negate: bool) -> R<()> {
        let dup = rule.for_.is_some();
        let tok = self.peek().clone();
        let test = match tok {
            Tok::Kw(K::Local) | Tok::Kw(K::Any) => {
                self.bump();
                if dup {
                    return self.fail("for already specified for this rule".into());
                }
                if tok == Tok::Kw(K::Local) {
                    For::Local
                } else {
                    For::Any
                }
            }
            Tok::Kw(K::Domain) => {
                self.bump();
                For::Domain(self.criterion_table(dup, "for", Service::Domain, "'for'")?)
            }
            Tok::Kw(K::RcptTo) => {
                // `for rcpt-to T` is `for any` plus a rcpt-to criterion.
                self.bump();
                let test = self.criterion_table(dup, "for", Service::Mailaddr, "for")?;
                rule.rcpt_to = Some(Criterion { negate, test });
                rule.for_ = Some(Criterion {
                    negate: false,
                    test: For::RcptTo,
                });
                return Ok(());
            }
            _ => return Err(Stop::Syntax),
        };
        rule.for_ = Some(Criterion { negate, test });
        Ok(())
    }
}
