//! A static table compiled for lookups: the exact keys in a hash, and the entries that match
//! otherwise (wildcards, networks, regexes) in lists built once per table.

use super::*;

/// The longest key `table_lookup()` accepts (`char lkey[1024]` with its NUL).
pub(crate) const MAX_KEY: usize = 1023;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Static,
    Getpwnam,
    /// External backends, and a `db:` file that could not be read at start (until it is): every
    /// lookup fails temporarily.
    Unsupported,
}

pub(crate) struct Compiled {
    pub(crate) table: Table,
    /// Where the contents come from, as configured: what `update table` reloads (a loaded `db:`
    /// table's contents are an inline table, so `table.source` does not say).
    pub(crate) source: TableSource,
    pub(crate) backend: Backend,
    /// Keys with a `*`, the only ones `hostname_match()` can match other than by equality.
    pub(crate) wild_domains: OnceLock<Vec<Box<str>>>,
    /// Entries whose domain part has a `*`, as (user, domain).
    pub(crate) wild_mailaddrs: OnceLock<Vec<(Box<str>, Box<str>)>>,
    pub(crate) nets: OnceLock<Vec<(IpAddr, u8)>>,
    pub(crate) regexes: OnceLock<RegexSet>,
}

impl Compiled {
    /// `table` holds the contents, `source` is the configured one.
    pub(crate) fn new(table: Table, source: TableSource) -> Compiled {
        let backend = match table.source {
            TableSource::Inline | TableSource::File(_) | TableSource::Builtin => Backend::Static,
            TableSource::Getpwnam => Backend::Getpwnam,
            TableSource::Db(_) | TableSource::Proc { .. } => Backend::Unsupported,
        };
        Compiled {
            table,
            source,
            backend,
            wild_domains: OnceLock::new(),
            wild_mailaddrs: OnceLock::new(),
            nets: OnceLock::new(),
            regexes: OnceLock::new(),
        }
    }

    pub(crate) fn wild_domains(&self) -> &[Box<str>] {
        self.wild_domains.get_or_init(|| {
            self.table
                .entries()
                .filter(|(k, _)| k.contains('*'))
                .map(|(k, _)| k.into())
                .collect()
        })
    }

    pub(crate) fn wild_mailaddrs(&self) -> &[(Box<str>, Box<str>)] {
        self.wild_mailaddrs.get_or_init(|| {
            self.table
                .entries()
                .filter_map(|(k, _)| {
                    let (u, d) = split_mailaddr(k);
                    d.contains('*').then(|| (u.into(), d.into()))
                })
                .collect()
        })
    }

    pub(crate) fn nets(&self) -> &[(IpAddr, u8)] {
        self.nets.get_or_init(|| {
            self.table
                .entries()
                .filter_map(|(k, _)| text_to_netaddr(k))
                .collect()
        })
    }

    pub(crate) fn regexes(&self) -> &RegexSet {
        self.regexes.get_or_init(|| {
            // A pattern that does not compile never matches (regcomp() failing gives 0), so it is
            // left out rather than failing the whole set.
            let patterns: Vec<String> = self
                .table
                .entries()
                .filter_map(|(k, _)| compile_posix_ere(k).map(|(p, _)| p))
                .collect();
            RegexSet::new(&patterns).unwrap_or_else(|_| RegexSet::empty())
        })
    }

    /// Does now, before the table is swapped in, the work its first lookups would do: the key
    /// index, and whatever `old` (the table it replaces) had built, so that the first session after
    /// an update does not pay for scanning a large table.
    pub(crate) fn prepare_like(&self, old: &Compiled) {
        // Counting the distinct keys builds the index.
        self.table.len();
        if old.wild_domains.get().is_some() {
            self.wild_domains();
        }
        if old.wild_mailaddrs.get().is_some() {
            self.wild_mailaddrs();
        }
        if old.nets.get().is_some() {
            self.nets();
        }
        if old.regexes.get().is_some() {
            self.regexes();
        }
    }
}
