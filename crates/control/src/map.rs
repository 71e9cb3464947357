//! The `db:` map files our `makemap` and `newaliases` write, and the reading of their text
//! sources (makemap.c's rules).
//!
//! # File format (version 1)
//!
//! ```text
//! "RSMTPD-MAP\n"            MAP_MAGIC (rsmtpd_config::table::MAP_MAGIC)
//! version: u8 = 1
//! kind: u8                  0 = plain map (key value), 1 = aliases, 2 = set (keys only)
//! count: u32 big-endian
//! count entries, sorted by key bytes, keys unique and lower-cased:
//!     key length: u32 BE, key bytes (UTF-8)
//!     value length: u32 BE, value bytes (UTF-8; empty for a set)
//! ```
//!
//! Nothing follows the last entry. The daemon loads a map with [`read_map`]; a Berkeley DB file
//! (OpenSMTPD's makemap) is read by the `rsmtpd-bdb` crate instead
//! (`rsmtpd_config::dbfile::bdb_entries`).

use std::fmt;

/// The first bytes of the file (the same as `rsmtpd_config::table::MAP_MAGIC`).
pub const MAP_MAGIC: &[u8] = b"RSMTPD-MAP\n";
/// The format version after the magic.
pub const MAP_VERSION: u8 = 1;

/// `makemap -t`: what the entries are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MapKind {
    Plain,
    Aliases,
    Set,
}

/// A map: entries sorted by key, keys unique. A set's values are `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Map {
    pub kind: MapKind,
    pub entries: Vec<(String, Option<String>)>,
}

impl Map {
    /// Looks a key up (keys are stored lower-cased: pass a lower-cased key).
    pub fn get(&self, key: &str) -> Option<Option<&str>> {
        self.entries
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.entries[i].1.as_deref())
    }
}

/// Why a map file could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapError {
    NotAMap,
    Version(u8),
    Corrupt(&'static str),
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::NotAMap => write!(f, "not a map file"),
            MapError::Version(v) => write!(f, "unsupported map version {v}"),
            MapError::Corrupt(why) => write!(f, "corrupt map file: {why}"),
        }
    }
}

impl std::error::Error for MapError {}

/// The file's bytes for these entries (sorted and deduplicated here, last value wins).
pub fn write_map(kind: MapKind, entries: &[(String, Option<String>)]) -> Vec<u8> {
    let mut sorted: Vec<&(String, Option<String>)> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut uniq: Vec<&(String, Option<String>)> = Vec::with_capacity(sorted.len());
    for e in sorted {
        match uniq.last_mut() {
            Some(last) if last.0 == e.0 => *last = e,
            _ => uniq.push(e),
        }
    }
    let mut out = MAP_MAGIC.to_vec();
    out.push(MAP_VERSION);
    out.push(match kind {
        MapKind::Plain => 0,
        MapKind::Aliases => 1,
        MapKind::Set => 2,
    });
    out.extend_from_slice(&(uniq.len() as u32).to_be_bytes());
    for (k, v) in uniq {
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        let v = if kind == MapKind::Set {
            ""
        } else {
            v.as_deref().unwrap_or("")
        };
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// Reads a file written by [`write_map`]. Never panics on any input.
pub fn read_map(data: &[u8]) -> Result<Map, MapError> {
    let rest = data.strip_prefix(MAP_MAGIC).ok_or(MapError::NotAMap)?;
    let (&version, rest) = rest.split_first().ok_or(MapError::Corrupt("truncated"))?;
    if version != MAP_VERSION {
        return Err(MapError::Version(version));
    }
    let (&kind, mut rest) = rest.split_first().ok_or(MapError::Corrupt("truncated"))?;
    let kind = match kind {
        0 => MapKind::Plain,
        1 => MapKind::Aliases,
        2 => MapKind::Set,
        _ => return Err(MapError::Corrupt("bad kind")),
    };
    let count = take_u32(&mut rest)? as usize;
    if count.saturating_mul(8) > rest.len() {
        return Err(MapError::Corrupt("truncated"));
    }
    let mut entries: Vec<(String, Option<String>)> = Vec::with_capacity(count);
    for _ in 0..count {
        let k = take_str(&mut rest)?;
        let v = take_str(&mut rest)?;
        if let Some((last, _)) = entries.last() {
            if last.as_bytes() >= k.as_bytes() {
                return Err(MapError::Corrupt("keys not sorted"));
            }
        }
        entries.push((k, if kind == MapKind::Set { None } else { Some(v) }));
    }
    if !rest.is_empty() {
        return Err(MapError::Corrupt("trailing data"));
    }
    Ok(Map { kind, entries })
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, MapError> {
    if rest.len() < 4 {
        return Err(MapError::Corrupt("truncated"));
    }
    let (a, b) = rest.split_at(4);
    *rest = b;
    Ok(u32::from_be_bytes([a[0], a[1], a[2], a[3]]))
}

fn take_str(rest: &mut &[u8]) -> Result<String, MapError> {
    let n = take_u32(rest)? as usize;
    if rest.len() < n {
        return Err(MapError::Corrupt("truncated"));
    }
    let (a, b) = rest.split_at(n);
    *rest = b;
    String::from_utf8(a.to_vec()).map_err(|_| MapError::Corrupt("bad utf-8"))
}

/// Why a source line was refused: makemap's messages, without the `makemap: ` prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceError {
    /// `SOURCE:LINE: invalid entry`
    Invalid { line: usize },
    /// `SOURCE:LINE: duplicate entry for KEY`
    Duplicate { line: usize, key: String },
}

impl SourceError {
    pub fn message(&self, source: &str) -> String {
        match self {
            SourceError::Invalid { line } => format!("{source}:{line}: invalid entry"),
            SourceError::Duplicate { line, key } => {
                format!("{source}:{line}: duplicate entry for {key}")
            }
        }
    }
}

/// The logical lines of a source as fparseln(3) returns them with `FPARSELN_UNESCCOMM`:
/// `#` starts a comment unless escaped (then the `\` goes), a `\` at the end of a line joins the
/// next one. Each with the number of its last physical line.
pub fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut joining = false;
    let mut lineno = 0;
    for raw in text.split_inclusive('\n') {
        lineno += 1;
        let mut s = raw.strip_suffix('\n').unwrap_or(raw).to_string();
        // comment
        let b = s.as_bytes();
        let mut cut = None;
        for (i, &c) in b.iter().enumerate() {
            if c == b'#' && !escaped(b, i) {
                cut = Some(i);
                break;
            }
        }
        if let Some(i) = cut {
            s.truncate(i);
        }
        let cont = s.ends_with('\\') && !escaped(s.as_bytes(), s.len() - 1);
        if cont {
            s.pop();
        }
        cur.push_str(&s);
        joining = cont;
        if !joining {
            out.push((lineno, cur.replace("\\#", "#")));
            cur = String::new();
        }
    }
    if joining || !cur.is_empty() {
        out.push((lineno, cur.replace("\\#", "#")));
    }
    out
}

fn escaped(b: &[u8], i: usize) -> bool {
    let mut n = 0;
    let mut j = i;
    while j > 0 && b[j - 1] == b'\\' {
        n += 1;
        j -= 1;
    }
    n % 2 == 1
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Parses a makemap source (parse_mapentry / parse_setentry): `key[ \t:]+value` or, for a set,
/// one key per line; keys lower-cased; blank lines skipped; a duplicate key is an error.
pub fn parse_source(
    text: &str,
    kind: MapKind,
) -> Result<Vec<(String, Option<String>)>, SourceError> {
    parse_source_checked(text, kind, &|_| true)
}

/// [`parse_source`], where each comma-separated part of an alias value must also pass
/// `alias_ok` (makemap's make_aliases() runs text_to_expandnode() on each: the alias grammar
/// lives in the daemon's routing layer).
pub fn parse_source_checked(
    text: &str,
    kind: MapKind,
    alias_ok: &dyn Fn(&str) -> bool,
) -> Result<Vec<(String, Option<String>)>, SourceError> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (line, l) in logical_lines(text) {
        let keyp = l.trim_start_matches(is_space);
        if keyp.is_empty() {
            continue;
        }
        let (key, value) = if kind == MapKind::Set {
            (keyp.to_string(), None)
        } else {
            let Some(i) = keyp.find([' ', '\t', ':']) else {
                return Err(SourceError::Invalid { line });
            };
            if i == 0 {
                return Err(SourceError::Invalid { line });
            }
            let val = keyp[i + 1..].trim_start_matches(|c| c == ':' || is_space(c));
            if val.is_empty() {
                return Err(SourceError::Invalid { line });
            }
            if kind == MapKind::Aliases
                && val.split(',').any(|r| {
                    let r = r.trim_matches(is_space);
                    r.is_empty() || !alias_ok(r)
                })
            {
                return Err(SourceError::Invalid { line });
            }
            (keyp[..i].to_string(), Some(val.to_string()))
        };
        let key = key.to_ascii_lowercase();
        if !seen.insert(key.clone()) {
            return Err(SourceError::Duplicate { line, key });
        }
        out.push((key, value));
    }
    Ok(out)
}
