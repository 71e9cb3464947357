//! Tables as the configuration declares them, and the static table file format.
//!
//! OpenSMTPD gives every table a *kind* (list, hash, or dynamic when it is served by a backend
//! that answers lookups itself) and every backend a set of *services* (the lookups it can answer).
//! Each use of a table in the grammar checks both; [`Table::usable_for`] is that check.

pub use crate::entries::Entries;

/// The shape of a table's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// A static table that received no entry yet (never seen once parsing is done).
    Empty,
    List,
    Hash,
    /// Served by a backend (db, getpwnam, an external `table-NAME` program): its shape is its own.
    Dynamic,
}

/// Where a table's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableSource {
    /// `{ ... }` in the config, or a single string used where a table is expected.
    Inline,
    /// `file:/path` or `/path`: a text file, loaded when the configuration is read.
    File(String),
    /// `db:/path`: a map built by `makemap`.
    Db(String),
    /// The system's user database (`<getpwnam>`).
    Getpwnam,
    /// Any other backend: an external program `table-BACKEND` speaking the table protocol
    /// (`sqlite:`, `postgres:`, `redis:`, `ldap:`...). Kept for the daemon to start.
    Proc {
        backend: String,
        config: Option<String>,
    },
    /// One of the tables OpenSMTPD defines itself, filled from the machine's names and addresses
    /// when the daemon starts.
    Builtin,
}

/// The lookup services of OpenSMTPD (`K_*` in smtpd.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Alias,
    Domain,
    Credentials,
    Netaddr,
    Userinfo,
    Source,
    Mailaddr,
    Addrname,
    Mailaddrmap,
    Relayhost,
    String,
    Regex,
}

/// Which kinds a use accepts besides dynamic tables (`T_LIST` or `T_HASH` in parse.y).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    List,
    Hash,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The name given in the config, or `<dynamic:N>` for an anonymous table.
    pub name: String,
    pub anonymous: bool,
    pub source: TableSource,
    pub kind: TableKind,
    /// Keys lower-cased as OpenSMTPD stores them; a list entry has no value.
    entries: Entries,
    /// Where a named table was declared (anonymous and builtin ones: nowhere).
    pub at: crate::model::Position,
}

impl Table {
    pub fn new(name: String, anonymous: bool, source: TableSource) -> Table {
        let kind = match source {
            TableSource::Inline | TableSource::File(_) | TableSource::Builtin => TableKind::Empty,
            _ => TableKind::Dynamic,
        };
        Table {
            name,
            anonymous,
            source,
            kind,
            entries: Entries::default(),
            at: crate::model::Position::default(),
        }
    }

    /// `table_static_add()`: a list takes only keys, a hash only key/value pairs. Returns false
    /// when the entry does not fit the table's kind (OpenSMTPD then warns and drops it).
    pub fn add(&mut self, key: &str, value: Option<&str>) -> bool {
        match (self.kind, value) {
            (TableKind::Empty, v) => {
                self.kind = if v.is_some() {
                    TableKind::Hash
                } else {
                    TableKind::List
                }
            }
            (TableKind::List, Some(_)) | (TableKind::Hash, None) | (TableKind::Dynamic, _) => {
                return false
            }
            _ => {}
        }
        self.entries.push(key, value).is_ok()
    }

    /// The entry for a (lower-cased) key: `Some(None)` for a list entry, `Some(Some(v))` for a map.
    pub fn get(&self, key: &str) -> Option<Option<&str>> {
        self.entries.get(key)
    }

    /// The entries in the order given, one per key.
    pub fn entries(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The services the table's backend can answer.
    pub fn serves(&self, s: Service) -> bool {
        use Service::*;
        match &self.source {
            TableSource::Inline | TableSource::File(_) | TableSource::Builtin => true,
            TableSource::Db(_) => !matches!(s, Relayhost | String | Regex),
            TableSource::Getpwnam => s == Userinfo,
            TableSource::Proc { .. } => true,
        }
    }

    /// `table_check_use(t, T_DYNAMIC|need, service)`.
    pub fn usable_for(&self, need: Need, s: Service) -> bool {
        let kind_ok = matches!(
            (self.kind, need),
            (TableKind::Dynamic, _) | (TableKind::List, Need::List) | (TableKind::Hash, Need::Hash)
        );
        kind_ok && self.serves(s)
    }

    /// Loads a static table file (`table_static_priv_load()`), replacing any entries.
    ///
    /// The format: one entry per line, blank lines and `#` comments ignored. A line with a space,
    /// tab or `:` is a `key value` pair (the separator and following blanks, or `:` followed by a
    /// blank, are skipped), else a list entry. The first data line decides the kind of a table that
    /// has none yet, unless a `# @list` comment comes first. An empty file is a hash.
    ///
    /// A table that already has a kind keeps it, as `table_static_config()` starts from the
    /// table's type when `update table` reloads the file: a hash reloaded from a file of bare
    /// keys fails with "invalid map entry line", and a list takes `key value` lines as keys.
    pub fn load_static(&mut self, path: &str, data: &[u8]) -> Result<(), String> {
        self.entries.clear();
        let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
        self.entries.reserve(lines, data.len());
        let too_large = || format!("{}: table too large", path);
        let mut kind = match self.kind {
            TableKind::List | TableKind::Hash => self.kind,
            TableKind::Empty | TableKind::Dynamic => TableKind::Empty,
        };
        // One UTF-8 check for the whole file (borrowed when valid, as it nearly always is) rather
        // than one per line: this loop runs a million times for a large alias file.
        let whole = match std::str::from_utf8(data) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(data),
        };
        let is_sep = |b: u8| b == b' ' || b == b'\t' || b == b':';
        for (n, raw) in whole.split('\n').enumerate() {
            let lineno = n + 1;
            let text = trim_c_space(raw);
            if text.is_empty() {
                continue;
            }
            if let Some(comment) = text.strip_prefix('#') {
                if kind == TableKind::Empty && trim_c_space(comment) == "@list" {
                    kind = TableKind::List;
                }
                continue;
            }
            if kind == TableKind::Empty {
                kind = if text.bytes().any(is_sep) {
                    TableKind::Hash
                } else {
                    TableKind::List
                };
            }
            if kind == TableKind::List {
                self.entries.push(text, None).map_err(|_| too_large())?;
                continue;
            }
            let Some(sep) = text.bytes().position(is_sep) else {
                return Err(format!("{}: invalid map entry line {}", path, lineno));
            };
            let key = &text[..sep];
            let rest = &text.as_bytes()[sep + 1..];
            let mut i = 0;
            while i < rest.len() {
                let b = rest[i];
                let blank = is_c_space(b);
                let colon_blank = b == b':' && rest.get(i + 1).is_some_and(|&n| is_c_space(n));
                if !blank && !colon_blank {
                    break;
                }
                i += 1;
            }
            if i >= rest.len() {
                return Err(format!("{}: invalid map entry line {}", path, lineno));
            }
            let value = &text[sep + 1 + i..];
            self.entries
                .push(key, Some(value))
                .map_err(|_| too_large())?;
        }
        self.kind = if kind == TableKind::Empty {
            TableKind::Hash
        } else {
            kind
        };
        Ok(())
    }
}

/// The first bytes of a map file written by our `makemap`.
pub const MAP_MAGIC: &[u8] = b"RSMTPD-MAP\n";

/// Trims C `isspace()` characters (ASCII only) from both ends.
fn trim_c_space(s: &str) -> &str {
    let b = s.as_bytes();
    let start = b.iter().position(|&c| !is_c_space(c)).unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|&c| !is_c_space(c))
        .map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Table, String> {
        let mut t = Table::new("t".into(), false, TableSource::File("/f".into()));
        t.load_static("/f", text.as_bytes()).map(|_| t)
    }

    #[test]
    fn file_kinds() {
        assert_eq!(load("").map(|t| t.kind), Ok(TableKind::Hash));
        assert_eq!(load("# c\n\n").map(|t| t.kind), Ok(TableKind::Hash));
        assert_eq!(load("a\nb\n").map(|t| t.kind), Ok(TableKind::List));
        assert_eq!(load("a b\n").map(|t| t.kind), Ok(TableKind::Hash));
        assert_eq!(load("# @list\na b\n").map(|t| t.kind), Ok(TableKind::List));
        assert_eq!(load("#@list\na:b\n").map(|t| t.kind), Ok(TableKind::List));
    }

    #[test]
    fn file_values() {
        let t = load("Root:  foo, bar\npostmaster: root\nx\ty\nk: : v\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.get("root").flatten(), Some("foo, bar"));
        assert_eq!(t.get("postmaster").flatten(), Some("root"));
        assert_eq!(t.get("x").flatten(), Some("y"));
        assert_eq!(t.get("k").flatten(), Some("v"));
        // a key whose line has no value in a hash
        assert_eq!(
            load("a b\nlonely\n").err(),
            Some("/f: invalid map entry line 2".to_string())
        );
        assert_eq!(
            load("a b\nc:\n").err(),
            Some("/f: invalid map entry line 2".to_string())
        );
    }

    #[test]
    fn reload_keeps_the_kind() {
        let reload = |kind: TableKind, text: &str| {
            let mut t = Table::new("t".into(), false, TableSource::File("/f".into()));
            t.kind = kind;
            t.load_static("/f", text.as_bytes()).map(|_| t)
        };
        assert_eq!(
            reload(TableKind::Hash, "a\n").err(),
            Some("/f: invalid map entry line 1".to_string())
        );
        let l = reload(TableKind::List, "# @list\na b\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.kind, TableKind::List);
        assert_eq!(l.get("a b"), Some(None));
        let h = reload(TableKind::Hash, "").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.kind, TableKind::Hash);
        let l = reload(TableKind::List, "").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.kind, TableKind::List);
    }

    #[test]
    fn inline_add_kinds() {
        let mut t = Table::new("x".into(), false, TableSource::Inline);
        assert!(t.add("A", None));
        assert!(!t.add("b", Some("c")));
        assert_eq!(t.kind, TableKind::List);
        assert!(t.get("a").is_some());
        let mut h = Table::new("h".into(), false, TableSource::Inline);
        assert!(h.add("k", Some("1")));
        assert!(h.add("K", Some("2")));
        assert_eq!(h.len(), 1);
        assert_eq!(h.get("k").flatten(), Some("2"));
    }

    #[test]
    fn usability() {
        let mut l = Table::new("l".into(), false, TableSource::Inline);
        l.add("a", None);
        assert!(l.usable_for(Need::List, Service::Domain));
        assert!(!l.usable_for(Need::Hash, Service::Alias));
        let g = Table::new("<getpwnam>".into(), false, TableSource::Getpwnam);
        assert!(g.usable_for(Need::Hash, Service::Userinfo));
        assert!(!g.usable_for(Need::Hash, Service::Alias));
        let d = Table::new("d".into(), false, TableSource::Db("/x.db".into()));
        assert!(d.usable_for(Need::Hash, Service::Alias));
        assert!(!d.usable_for(Need::List, Service::Regex));
    }
}
