//! `table NAME ...` and the table references of other statements (`<NAME>`, `{ a, b }`), with the
//! checks of their contents.

use super::*;

impl Parser<'_> {
    pub(super) fn table_exists(&self, name: &str) -> bool {
        self.conf.tables.iter().any(|t| t.name == name)
    }

    pub(super) fn table_idx(&self, name: &str) -> Option<usize> {
        self.conf.tables.iter().position(|t| t.name == name)
    }

    /// `table_create()`. Named duplicates are fatal in OpenSMTPD.
    pub(super) fn table_create(&mut self, name: Option<String>, source: TableSource) -> R<usize> {
        let (name, anonymous) = match name {
            Some(n) => {
                if self.table_exists(&n) {
                    return self.fatal(&[format!(
                        "smtpd: table_create: table \"{}\" already defined",
                        n
                    )]);
                }
                (n, false)
            }
            None => {
                let n = format!("<dynamic:{}>", self.last_table_id);
                self.last_table_id += 1;
                (n, true)
            }
        };
        self.conf.tables.push(Table::new(name, anonymous, source));
        Ok(self.conf.tables.len() - 1)
    }

    pub(super) fn table_add(&mut self, idx: usize, key: &str, value: Option<&str>) {
        let t = &mut self.conf.tables[idx];
        if !t.add(key, value) {
            let line = format!("warn: failed to add \"{}\" in table \"{}\"", key, t.name);
            self.lx.messages.push(Message::Plain(line));
        }
    }

    pub(super) fn table(&mut self) -> R<()> {
        let at = self.here();
        self.bump();
        let name = self.string()?;
        if self.at_str() {
            let spec = self.string()?;
            return self.table_backend(name, spec, at);
        }
        let idx = self.table_create(Some(name), TableSource::Inline)?;
        self.conf.tables[idx].at = at;
        self.conf.order.push(Decl::Table(idx));
        self.char(b'{')?;
        self.tableval_list(idx)?;
        self.char(b'}')
    }

    pub(super) fn table_backend(&mut self, name: String, spec: String, at: Position) -> R<()> {
        let (backend, config) = if spec.starts_with('/') {
            ("static".to_string(), Some(spec.clone()))
        } else {
            match spec.split_once(':') {
                Some((b, c)) => (b.to_string(), Some(c.to_string())),
                None => (spec.clone(), None),
            }
        };
        if let Some(c) = &config {
            if !c.starts_with('/') {
                return self.fail(format!("invalid backend parameter for table: {}", name));
            }
        }
        let source = match backend.as_str() {
            "static" | "file" => match &config {
                Some(c) => TableSource::File(c.clone()),
                None => TableSource::Inline,
            },
            "db" => TableSource::Db(config.clone().unwrap_or_default()),
            "getpwnam" => TableSource::Getpwnam,
            b if self.env.table_backend_exists(b) => TableSource::Proc {
                backend: b.to_string(),
                config: config.clone(),
            },
            b => {
                return self.fatal(&[format!(
                    "smtpd: table_create: backend \"{}\" does not exist",
                    b
                )])
            }
        };
        let idx = self.table_create(Some(name.clone()), source)?;
        self.conf.tables[idx].at = at;
        self.conf.order.push(Decl::Table(idx));
        let cfg = config.unwrap_or_default();
        let source = self.conf.tables[idx].source.clone();
        let loaded = match &source {
            TableSource::File(path) => match self.env.read_file(path) {
                Ok(data) => self.conf.tables[idx]
                    .load_static(path, &data)
                    .map_err(|l| vec![l]),
                Err(e) => Err(vec![format!("{}: fopen: {}", path, strerror(&e))]),
            },
            TableSource::Db(path) => match self.env.read_file(path) {
                Ok(data) => crate::dbfile::check_db_file(path, &data),
                Err(_) => Err(Vec::new()),
            },
            _ => Ok(()),
        };
        if let Err(lines) = loaded {
            for line in lines {
                self.lx.messages.push(Message::Plain(line));
            }
            let shown = if cfg.is_empty() { "(null)" } else { &cfg };
            return self.fail(format!(
                "invalid configuration file {} for table {}",
                shown, name
            ));
        }
        Ok(())
    }

    /// `tableval_list`: the entries between braces, all keys or all `key = value`.
    pub(super) fn tableval_list(&mut self, idx: usize) -> R<()> {
        let first = self.string()?;
        let hash = self.at_char(b'=') || matches!(self.peek(), Tok::Arrow);
        let mut key = first;
        loop {
            if hash {
                if !(self.at_char(b'=') || matches!(self.peek(), Tok::Arrow)) {
                    return Err(Stop::Syntax);
                }
                self.bump();
                let v = self.string()?;
                self.table_add(idx, &key, Some(&v));
            } else {
                self.table_add(idx, &key, None);
            }
            if !self.comma() && self.at_char(b'}') {
                return Ok(());
            }
            key = self.string()?;
        }
    }

    /// `tables`: a single string, an inline `{ ... }`, or a reference `<name>`.
    pub(super) fn tables(&mut self) -> R<String> {
        match self.peek().clone() {
            Tok::Str(_) => {
                let s = self.string()?;
                let idx = self.table_create(None, TableSource::Inline)?;
                self.table_add(idx, &s, None);
                Ok(self.conf.tables[idx].name.clone())
            }
            Tok::Char(b'{') => {
                self.bump();
                let idx = self.table_create(None, TableSource::Inline)?;
                self.tableval_list(idx)?;
                self.char(b'}')?;
                Ok(self.conf.tables[idx].name.clone())
            }
            Tok::Char(b'<') => {
                self.bump();
                let name = self.string()?;
                self.char(b'>')?;
                if !self.table_exists(&name) {
                    return self.fail(format!("no such table: {}", name));
                }
                Ok(name)
            }
            _ => Err(Stop::Syntax),
        }
    }

    pub(super) fn table_starts(&mut self) -> bool {
        matches!(self.peek(), Tok::Str(_) | Tok::Char(b'{') | Tok::Char(b'<'))
    }

    pub(super) fn usable(&self, name: &str, need: Need, s: Service) -> bool {
        self.table_idx(name)
            .is_some_and(|i| self.conf.tables[i].usable_for(need, s))
    }

    /// Our own checks of a table's contents for its use (strict mode only), run at the end.
    pub(super) fn check_contents(&mut self, name: &str, s: Service) -> R<()> {
        self.defer(PendingCheck::Table(name.to_string(), s));
        Ok(())
    }

    pub(super) fn defer(&mut self, check: PendingCheck) {
        if self.strict {
            let file = self.lx.current_file_name().to_string();
            let line = self.lx.lineno;
            self.pending.push(Pending { file, line, check });
        }
    }
}
