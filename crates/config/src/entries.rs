//! The contents of a static table, stored for tables of millions of entries.
//!
//! An alias file of a million lines is common on a large site, and `smtpd -n` must read it
//! faster than OpenSMTPD does. So keys and values live in one string, each entry is four
//! offsets, and the lookup index is only built the first time something looks up (never, for
//! `smtpd -n`). Loading is then a single sequential pass with no per-entry allocation.
//!
//! A key given twice keeps its last value, as in OpenSMTPD; in iteration order it stands where
//! it was last given.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::OnceLock;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// Marks a list entry (no value) in `Span::value_len`.
const NO_VALUE: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Span {
    key_start: u32,
    key_len: u32,
    value_start: u32,
    value_len: u32,
}

#[derive(Default)]
pub struct Entries {
    text: String,
    spans: Vec<Span>,
    /// Key → index of its last span. FxHash is fine: keys come from the administrator's files,
    /// and a lookup with a client-chosen key cannot change the table's shape.
    index: OnceLock<HashTable<u32>>,
}

/// Where an entry's text does not fit: a table's text is limited to 4 GiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge;

impl Entries {
    /// Room for about `n` entries of `bytes` bytes of text in all.
    pub fn reserve(&mut self, n: usize, bytes: usize) {
        self.spans.reserve(n);
        self.text.reserve(bytes);
    }

    /// Adds an entry; the key is lower-cased as OpenSMTPD stores it.
    pub fn push(&mut self, key: &str, value: Option<&str>) -> Result<(), TooLarge> {
        let key_start = self.offset()?;
        self.text.push_str(key);
        // In place: ASCII lower-casing never changes the length.
        self.text[key_start as usize..].make_ascii_lowercase();
        let value_start = self.offset()?;
        let value_len = match value {
            Some(v) => {
                self.text.push_str(v);
                u32::try_from(v.len()).map_err(|_| TooLarge)?
            }
            None => NO_VALUE,
        };
        self.offset()?;
        self.spans.push(Span {
            key_start,
            key_len: value_start - key_start,
            value_start,
            value_len,
        });
        self.index = OnceLock::new();
        Ok(())
    }

    fn offset(&self) -> Result<u32, TooLarge> {
        u32::try_from(self.text.len()).map_err(|_| TooLarge)
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.spans.clear();
        self.index = OnceLock::new();
    }

    fn key(&self, s: &Span) -> &str {
        &self.text[s.key_start as usize..(s.key_start + s.key_len) as usize]
    }

    fn value(&self, s: &Span) -> Option<&str> {
        (s.value_len != NO_VALUE)
            .then(|| &self.text[s.value_start as usize..(s.value_start + s.value_len) as usize])
    }

    fn index(&self) -> &HashTable<u32> {
        self.index.get_or_init(|| {
            let h = FxBuildHasher;
            let mut t: HashTable<u32> = HashTable::with_capacity(self.spans.len());
            for (i, s) in self.spans.iter().enumerate() {
                let k = self.key(s);
                let hash = h.hash_one(k);
                match t.find_mut(hash, |&j| self.key(&self.spans[j as usize]) == k) {
                    Some(slot) => *slot = i as u32,
                    None => {
                        t.insert_unique(hash, i as u32, |&j| {
                            h.hash_one(self.key(&self.spans[j as usize]))
                        });
                    }
                }
            }
            t
        })
    }

    /// The entry for a lower-cased key: `Some(None)` for a list entry, `Some(Some(v))` in a map.
    pub fn get(&self, key: &str) -> Option<Option<&str>> {
        let hash = FxBuildHasher.hash_one(key);
        self.index()
            .find(hash, |&j| self.key(&self.spans[j as usize]) == key)
            .map(|&j| self.value(&self.spans[j as usize]))
    }

    /// Entries, one per key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        let dedup = self.spans.len() != self.index().len();
        self.spans
            .iter()
            .enumerate()
            .filter(move |(i, s)| !dedup || self.is_last(*i, s))
            .map(|(_, s)| (self.key(s), self.value(s)))
    }

    fn is_last(&self, i: usize, s: &Span) -> bool {
        let k = self.key(s);
        self.index()
            .find(FxBuildHasher.hash_one(k), |&j| {
                self.key(&self.spans[j as usize]) == k
            })
            .is_some_and(|&j| j as usize == i)
    }

    /// Number of distinct keys.
    pub fn len(&self) -> usize {
        self.index().len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

impl Clone for Entries {
    fn clone(&self) -> Self {
        Entries {
            text: self.text.clone(),
            spans: self.spans.clone(),
            index: OnceLock::new(),
        }
    }
}

impl PartialEq for Entries {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Entries {}

impl fmt::Debug for Entries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_value_wins_and_keys_are_lowercased() {
        let mut e = Entries::default();
        for (k, v) in [
            ("Root", Some("a")),
            ("abuse", Some("root")),
            ("ROOT", Some("b")),
        ] {
            assert_eq!(e.push(k, v), Ok(()));
        }
        assert_eq!(e.len(), 2);
        assert_eq!(e.get("root"), Some(Some("b")));
        assert_eq!(e.get("Root"), None, "lookups take lower-cased keys");
        assert_eq!(
            e.iter().collect::<Vec<_>>(),
            vec![("abuse", Some("root")), ("root", Some("b"))]
        );
        let mut l = Entries::default();
        assert_eq!(l.push("x", None), Ok(()));
        assert_eq!(l.get("x"), Some(None));
        assert_eq!(l.get("y"), None);
    }

    #[test]
    fn equality_is_on_contents() {
        let mut a = Entries::default();
        let mut b = Entries::default();
        let _ = a.push("k", Some("1"));
        let _ = a.push("k", Some("2"));
        let _ = b.push("K", Some("2"));
        assert_eq!(a, b);
        let _ = b.push("z", None);
        assert_ne!(a, b);
    }
}
