//! A read-only reader of Berkeley DB 5.3 hash and btree files, the `db:` tables that OpenSMTPD's
//! `makemap` writes (Debian builds OpenSMTPD against Berkeley DB 5.3; `makemap` writes a hash
//! unless given `-d btree`).
//!
//! Why our own: crates.io has no maintained pure-Rust reader of this format. `libdb`/`libdb-sys`
//! bind the C library (a C build and the Sleepycat licence), `db185` reads only the older 4.4BSD
//! `dbopen(3)` btree format, and `rpmdb` only pulls RPM headers out of a Packages hash. What a
//! mail server needs is small: every key/value pair of one file, read once into memory.
//!
//! The input is a byte slice, usually a whole file from disk, so nothing here trusts it: every
//! offset is bounds-checked, every page chain is bounded, and anything unexpected is an
//! [`Error`], never a panic.
//!
//! # What is read
//!
//! The layouts are those of `dbinc/db_page.h` in Berkeley DB 5.3:
//!
//! - page 0 is the metadata page: magic at 12 (its byte order is the file's), version at 16,
//!   page size at 20, encryption at 24, flags at 26 and 48;
//! - a hash keeps `max_bucket` at 72 and the 32 `spares` at 96; bucket B starts on page
//!   `B + spares[log2(B + 1)]` and continues through `next_pgno`;
//! - a btree keeps its root page number at 88; internal pages point to their children, leaves
//!   hold the pairs;
//! - items longer than a quarter page live in chains of overflow pages.
//!
//! Refused with an [`Error`]: encrypted files, files with page checksums, duplicate keys
//! (`DB_DUP`), sub-databases, compressed btrees, partitions, recno/queue/heap databases, and
//! hash versions before 7 or btree versions before 8 (which `db_upgrade` would have to convert).
//! `makemap` never writes any of those.

#![forbid(unsafe_code)]

use std::fmt;

/// `DB_HASHMAGIC`.
pub const HASH_MAGIC: u32 = 0x0006_1561;
/// `DB_BTREEMAGIC`.
pub const BTREE_MAGIC: u32 = 0x0005_3162;
const QUEUE_MAGIC: u32 = 0x0004_2253;
const HEAP_MAGIC: u32 = 0x0007_4582;
/// `DBMETASIZE`: the metadata page is read as this many bytes, whatever the page size.
pub const META_SIZE: usize = 512;

/// `SIZEOF_PAGE`: the header of every page; the item index follows it.
const PAGE_HEADER: usize = 26;

const P_IBTREE: u8 = 3;
const P_LBTREE: u8 = 5;
const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASH: u8 = 13;

const H_KEYDATA: u8 = 1;
const H_DUPLICATE: u8 = 2;
const H_OFFPAGE: u8 = 3;
const H_OFFDUP: u8 = 4;

const B_KEYDATA: u8 = 1;
const B_DUPLICATE: u8 = 2;
const B_OVERFLOW: u8 = 3;
const B_DELETE: u8 = 0x80;

const DBMETA_CHKSUM: u8 = 0x01;
const DBMETA_PART_RANGE: u8 = 0x02;
const DBMETA_PART_CALLBACK: u8 = 0x04;

const DB_HASH_DUP: u32 = 0x01;
const DB_HASH_SUBDB: u32 = 0x02;
const BTM_DUP: u32 = 0x001;
const BTM_RECNO: u32 = 0x002;
const BTM_SUBDB: u32 = 0x020;
const BTM_COMPRESS: u32 = 0x080;

/// The access method of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Hash,
    Btree,
}

/// The byte order of the integers in a file: that of the machine that wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    Little,
    Big,
}

/// A stored key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A whole database: its pairs in the order a cursor walks them (bucket order for a hash, key
/// order for a btree). Keys and values are the stored bytes, trailing NULs included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Database {
    pub kind: Kind,
    pub order: ByteOrder,
    pub page_size: u32,
    pub entries: Vec<Entry>,
}

/// Why a file could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than a metadata page.
    TooShort,
    /// No Berkeley DB magic number where it belongs.
    NotBerkeleyDb,
    /// A Berkeley DB access method other than hash and btree.
    UnsupportedMethod(&'static str),
    /// A format version this reader does not know.
    UnsupportedVersion { kind: Kind, version: u32 },
    /// Encrypted with a password (`DB_ENCRYPT`).
    Encrypted,
    /// Written with page checksums (`DB_CHKSUM`).
    Checksummed,
    /// A feature `makemap` never uses: duplicates, sub-databases, compression, partitions...
    Unsupported(&'static str),
    /// A page size that Berkeley DB never writes.
    BadPageSize(u32),
    /// Inconsistent contents: truncated file, bad offsets, looping page chains...
    Corrupt { page: u32, what: &'static str },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TooShort => write!(f, "file too short for a Berkeley DB database"),
            Error::NotBerkeleyDb => write!(f, "not a Berkeley DB database"),
            Error::UnsupportedMethod(m) => {
                write!(f, "Berkeley DB {m} databases are not supported")
            }
            Error::UnsupportedVersion { kind, version } => write!(
                f,
                "unsupported Berkeley DB {} version {version}",
                match kind {
                    Kind::Hash => "hash",
                    Kind::Btree => "btree",
                }
            ),
            Error::Encrypted => write!(f, "encrypted Berkeley DB databases are not supported"),
            Error::Checksummed => {
                write!(
                    f,
                    "Berkeley DB databases with page checksums are not supported"
                )
            }
            Error::Unsupported(what) => write!(f, "Berkeley DB {what} are not supported"),
            Error::BadPageSize(n) => write!(f, "invalid Berkeley DB page size {n}"),
            Error::Corrupt { page, what } => {
                write!(f, "corrupt Berkeley DB database: page {page}: {what}")
            }
        }
    }
}

impl std::error::Error for Error {}

/// The access method and byte order named by the metadata page's magic number, without reading
/// further (`None`: not a hash or btree file).
pub fn probe(data: &[u8]) -> Option<(Kind, ByteOrder)> {
    let m = data.get(12..16)?;
    let b = [m[0], m[1], m[2], m[3]];
    for (order, magic) in [
        (ByteOrder::Little, u32::from_le_bytes(b)),
        (ByteOrder::Big, u32::from_be_bytes(b)),
    ] {
        match magic {
            HASH_MAGIC => return Some((Kind::Hash, order)),
            BTREE_MAGIC => return Some((Kind::Btree, order)),
            _ => {}
        }
    }
    None
}

/// Reads every key/value pair of a hash or btree database.
pub fn read(data: &[u8]) -> Result<Database, Error> {
    if data.len() < META_SIZE {
        return Err(Error::TooShort);
    }
    let Some((kind, order)) = probe(data) else {
        let m = u32_at(data, 12, ByteOrder::Little).unwrap_or(0);
        return Err(if [m, m.swap_bytes()].contains(&QUEUE_MAGIC) {
            Error::UnsupportedMethod("queue")
        } else if [m, m.swap_bytes()].contains(&HEAP_MAGIC) {
            Error::UnsupportedMethod("heap")
        } else {
            Error::NotBerkeleyDb
        });
    };
    let meta_u32 = |off: usize| u32_at(data, off, order).unwrap_or(0);
    let version = meta_u32(16);
    let supported = match kind {
        Kind::Hash => (7..=9).contains(&version),
        Kind::Btree => (8..=9).contains(&version),
    };
    if !supported {
        return Err(Error::UnsupportedVersion { kind, version });
    }
    let encrypt_alg = data[24];
    let metaflags = data[26];
    if encrypt_alg != 0 {
        return Err(Error::Encrypted);
    }
    if metaflags & DBMETA_CHKSUM != 0 {
        return Err(Error::Checksummed);
    }
    if metaflags & (DBMETA_PART_RANGE | DBMETA_PART_CALLBACK) != 0 {
        return Err(Error::Unsupported("partitioned databases"));
    }
    let page_size = meta_u32(20);
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(Error::BadPageSize(page_size));
    }
    let flags = meta_u32(48);
    let mut r = Reader {
        data,
        order,
        page_size: page_size as usize,
        // Every byte of a key or value is stored once in the file: more output than that means
        // items or chains that are shared or loop, which a crafted file could use to make us
        // allocate without bound.
        budget: data.len(),
        visited: vec![false; data.len() / page_size as usize],
    };
    let entries = match kind {
        Kind::Hash => {
            if flags & DB_HASH_DUP != 0 {
                return Err(Error::Unsupported("duplicate keys (DB_DUP)"));
            }
            if flags & DB_HASH_SUBDB != 0 {
                return Err(Error::Unsupported("sub-databases"));
            }
            r.hash()?
        }
        Kind::Btree => {
            if flags & BTM_RECNO != 0 {
                return Err(Error::UnsupportedMethod("recno"));
            }
            if flags & BTM_DUP != 0 {
                return Err(Error::Unsupported("duplicate keys (DB_DUP)"));
            }
            if flags & BTM_SUBDB != 0 {
                return Err(Error::Unsupported("sub-databases"));
            }
            if flags & BTM_COMPRESS != 0 {
                return Err(Error::Unsupported("compressed btrees"));
            }
            r.btree(meta_u32(88))?
        }
    };
    Ok(Database {
        kind,
        order,
        page_size,
        entries,
    })
}

fn u32_at(data: &[u8], off: usize, order: ByteOrder) -> Option<u32> {
    let b = data.get(off..off.checked_add(4)?)?;
    let b = [b[0], b[1], b[2], b[3]];
    Some(match order {
        ByteOrder::Little => u32::from_le_bytes(b),
        ByteOrder::Big => u32::from_be_bytes(b),
    })
}

fn u16_at(data: &[u8], off: usize, order: ByteOrder) -> Option<u16> {
    let b = data.get(off..off.checked_add(2)?)?;
    let b = [b[0], b[1]];
    Some(match order {
        ByteOrder::Little => u16::from_le_bytes(b),
        ByteOrder::Big => u16::from_be_bytes(b),
    })
}

/// `__db_log2()`: the smallest i with 2^i >= n.
fn log2_ceil(n: u32) -> u32 {
    let mut i = 0;
    let mut limit: u64 = 1;
    while limit < u64::from(n) {
        limit <<= 1;
        i += 1;
    }
    i
}

/// One page, its header decoded.
struct Page<'a> {
    no: u32,
    bytes: &'a [u8],
    next: u32,
    entries: usize,
    hf_offset: usize,
    level: u8,
    kind: u8,
}

struct Reader<'a> {
    data: &'a [u8],
    order: ByteOrder,
    page_size: usize,
    budget: usize,
    /// Pages already walked as bucket or tree pages: reaching one again means a loop.
    visited: Vec<bool>,
}

impl<'a> Reader<'a> {
    fn corrupt(page: u32, what: &'static str) -> Error {
        Error::Corrupt { page, what }
    }

    fn page(&self, no: u32) -> Result<Page<'a>, Error> {
        let start = (no as usize)
            .checked_mul(self.page_size)
            .ok_or(Self::corrupt(no, "page number out of range"))?;
        let bytes = start
            .checked_add(self.page_size)
            .and_then(|end| self.data.get(start..end))
            .ok_or(Self::corrupt(no, "page past the end of the file"))?;
        let o = self.order;
        let field = |off| u32_at(bytes, off, o).unwrap_or(0);
        let page = Page {
            no,
            bytes,
            next: field(16),
            entries: usize::from(u16_at(bytes, 20, o).unwrap_or(0)),
            hf_offset: usize::from(u16_at(bytes, 22, o).unwrap_or(0)),
            level: bytes[24],
            kind: bytes[25],
        };
        // A page that was allocated but never written reads as zeros; anything else must say
        // where it is, or the chain that led here is wrong.
        if page.kind != 0 && field(8) != no {
            return Err(Self::corrupt(no, "page number mismatch"));
        }
        Ok(page)
    }

    /// Marks a page as walked; false if it already was.
    fn visit(&mut self, no: u32) -> bool {
        match self.visited.get_mut(no as usize) {
            Some(v) if !*v => {
                *v = true;
                true
            }
            _ => false,
        }
    }

    /// The offset of item `i` of a page, checked to lie past the index and inside the page.
    fn item_offset(&self, p: &Page<'_>, i: usize) -> Result<usize, Error> {
        let index_end = PAGE_HEADER + 2 * p.entries;
        let off = u16_at(p.bytes, PAGE_HEADER + 2 * i, self.order)
            .map(usize::from)
            .ok_or(Self::corrupt(p.no, "item index past the end of the page"))?;
        if off < index_end || off >= self.page_size {
            return Err(Self::corrupt(p.no, "item offset out of the page"));
        }
        Ok(off)
    }

    fn take(&mut self, no: u32, bytes: &[u8]) -> Result<Vec<u8>, Error> {
        self.budget = self
            .budget
            .checked_sub(bytes.len())
            .ok_or(Self::corrupt(no, "items overlap"))?;
        Ok(bytes.to_vec())
    }

    /// An item stored on overflow pages (`__db_goff()`): `tlen` bytes from the chain at `first`.
    fn overflow(&mut self, from: u32, first: u32, tlen: u32) -> Result<Vec<u8>, Error> {
        let tlen = tlen as usize;
        if tlen > self.budget {
            return Err(Self::corrupt(from, "overflow item longer than the file"));
        }
        self.budget -= tlen;
        let mut out = Vec::with_capacity(tlen);
        let mut no = first;
        // A chain longer than the file has pages loops.
        let mut steps = self.visited.len();
        while out.len() < tlen {
            if no == 0 || steps == 0 {
                return Err(Self::corrupt(from, "overflow chain too short"));
            }
            steps -= 1;
            let p = self.page(no)?;
            if p.kind != P_OVERFLOW {
                return Err(Self::corrupt(no, "not an overflow page"));
            }
            let chunk =
                p.bytes
                    .get(PAGE_HEADER..PAGE_HEADER + p.hf_offset)
                    .ok_or(Self::corrupt(
                        no,
                        "overflow length past the end of the page",
                    ))?;
            if chunk.len() > tlen - out.len() {
                return Err(Self::corrupt(no, "overflow chain longer than its item"));
            }
            out.extend_from_slice(chunk);
            no = p.next;
        }
        Ok(out)
    }

    fn hash(&mut self) -> Result<Vec<Entry>, Error> {
        let meta = self.data;
        let o = self.order;
        let max_bucket = u32_at(meta, 72, o).unwrap_or(0);
        // Each bucket has a page of its own: more buckets than pages is nonsense, and checking
        // it here keeps the loop below from running billions of times.
        if max_bucket as usize >= self.visited.len() {
            return Err(Self::corrupt(0, "more buckets than pages"));
        }
        let mut out = Vec::new();
        for bucket in 0..=max_bucket {
            let spare = u32_at(
                meta,
                96 + 4 * log2_ceil(bucket.saturating_add(1)) as usize,
                o,
            )
            .unwrap_or(0);
            let mut no = bucket
                .checked_add(spare)
                .ok_or(Self::corrupt(0, "bucket page out of range"))?;
            while no != 0 {
                let p = self.page(no)?;
                if !self.visit(no) {
                    return Err(Self::corrupt(no, "bucket page reached twice"));
                }
                match p.kind {
                    P_HASH | P_HASH_UNSORTED => self.hash_page(&p, &mut out)?,
                    0 if p.entries == 0 => {}
                    _ => return Err(Self::corrupt(no, "not a hash page")),
                }
                no = p.next;
            }
        }
        Ok(out)
    }

    fn hash_page(&mut self, p: &Page<'_>, out: &mut Vec<Entry>) -> Result<(), Error> {
        if !p.entries.is_multiple_of(2) {
            return Err(Self::corrupt(p.no, "odd number of hash items"));
        }
        let mut end = self.page_size;
        let mut pair: Option<Vec<u8>> = None;
        for i in 0..p.entries {
            // LEN_HITEM(): items are packed from the end of the page down, in index order.
            let off = self.item_offset(p, i)?;
            if off >= end {
                return Err(Self::corrupt(p.no, "hash items out of order"));
            }
            let item = &p.bytes[off..end];
            end = off;
            let bytes = match item[0] {
                H_KEYDATA => self.take(p.no, &item[1..])?,
                H_OFFPAGE => {
                    let pgno = u32_at(item, 4, self.order);
                    let tlen = u32_at(item, 8, self.order);
                    let (Some(pgno), Some(tlen)) = (pgno, tlen) else {
                        return Err(Self::corrupt(p.no, "short overflow reference"));
                    };
                    self.overflow(p.no, pgno, tlen)?
                }
                H_DUPLICATE | H_OFFDUP => {
                    return Err(Error::Unsupported("duplicate keys (DB_DUP)"))
                }
                _ => return Err(Self::corrupt(p.no, "unknown hash item type")),
            };
            match pair.take() {
                None => pair = Some(bytes),
                Some(key) => out.push((key, bytes)),
            }
        }
        Ok(())
    }

    fn btree(&mut self, root: u32) -> Result<Vec<Entry>, Error> {
        let mut out = Vec::new();
        // Depth first, children pushed last to first so that leaves come out in key order. Each
        // page carries the level its parent expects, so a child pointing back up is caught even
        // before the visited check.
        let mut stack: Vec<(u32, Option<u8>)> = vec![(root, None)];
        while let Some((no, want_level)) = stack.pop() {
            let p = self.page(no)?;
            if no == 0 || !self.visit(no) {
                return Err(Self::corrupt(no, "btree page reached twice"));
            }
            if want_level.is_some_and(|l| l != p.level) || p.level == 0 {
                return Err(Self::corrupt(no, "btree level mismatch"));
            }
            match p.kind {
                P_IBTREE if p.level > 1 => {
                    for i in (0..p.entries).rev() {
                        let off = self.item_offset(&p, i)?;
                        // BINTERNAL: len u16, type u8, unused u8, pgno u32, nrecs u32, key.
                        let child = u32_at(p.bytes, off + 4, self.order)
                            .ok_or(Self::corrupt(no, "internal item past the end of the page"))?;
                        stack.push((child, Some(p.level - 1)));
                    }
                }
                P_LBTREE if p.level == 1 => self.btree_leaf(&p, &mut out)?,
                _ => return Err(Self::corrupt(no, "not a btree page")),
            }
        }
        Ok(out)
    }

    fn btree_leaf(&mut self, p: &Page<'_>, out: &mut Vec<Entry>) -> Result<(), Error> {
        if !p.entries.is_multiple_of(2) {
            return Err(Self::corrupt(p.no, "odd number of btree items"));
        }
        for i in (0..p.entries).step_by(2) {
            let key = self.btree_item(p, i)?;
            let value = self.btree_item(p, i + 1)?;
            // An item deleted under an open cursor stays on the page, flagged, until the cursor
            // moves on; a cursor walk skips it.
            if let (Some(k), Some(v)) = (key, value) {
                out.push((k, v));
            }
        }
        Ok(())
    }

    /// A leaf item (`None` if flagged deleted).
    fn btree_item(&mut self, p: &Page<'_>, i: usize) -> Result<Option<Vec<u8>>, Error> {
        let off = self.item_offset(p, i)?;
        let short = Self::corrupt(p.no, "btree item past the end of the page");
        let len = usize::from(u16_at(p.bytes, off, self.order).ok_or(short.clone())?);
        let kind = *p.bytes.get(off + 2).ok_or(short.clone())?;
        let bytes = match kind & !B_DELETE {
            B_KEYDATA => {
                let b = p.bytes.get(off + 3..off + 3 + len).ok_or(short)?;
                self.take(p.no, b)?
            }
            B_OVERFLOW => {
                let pgno = u32_at(p.bytes, off + 4, self.order);
                let tlen = u32_at(p.bytes, off + 8, self.order);
                let (Some(pgno), Some(tlen)) = (pgno, tlen) else {
                    return Err(short);
                };
                self.overflow(p.no, pgno, tlen)?
            }
            B_DUPLICATE => return Err(Error::Unsupported("duplicate keys (DB_DUP)")),
            _ => return Err(Self::corrupt(p.no, "unknown btree item type")),
        };
        Ok((kind & B_DELETE == 0).then_some(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_matches_db_log2() {
        assert_eq!(log2_ceil(1), 0);
        assert_eq!(log2_ceil(2), 1);
        assert_eq!(log2_ceil(3), 2);
        assert_eq!(log2_ceil(4), 2);
        assert_eq!(log2_ceil(5), 3);
        assert_eq!(log2_ceil(u32::MAX), 32);
    }

    #[test]
    fn short_and_foreign_input() {
        assert_eq!(read(b""), Err(Error::TooShort));
        assert_eq!(read(&[0u8; 511]), Err(Error::TooShort));
        assert_eq!(read(&[0u8; 4096]), Err(Error::NotBerkeleyDb));
        let mut q = vec![0u8; 4096];
        q[12..16].copy_from_slice(&QUEUE_MAGIC.to_be_bytes());
        assert_eq!(read(&q), Err(Error::UnsupportedMethod("queue")));
        assert_eq!(probe(&q), None);
    }
}
