//! The reader against files written by the real programs: OpenSMTPD's makemap and Berkeley DB
//! 5.3's db_load (tests/fixtures/generate.sh made them and says how).

use std::collections::BTreeMap;

use proptest::prelude::*;
use rsmtpd_bdb::{probe, read, ByteOrder, Database, Error, Kind};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{}", env!("CARGO_MANIFEST_DIR"), name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn open(name: &str) -> Database {
    read(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn z(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn as_map(db: &Database) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let map: BTreeMap<_, _> = db.entries.iter().cloned().collect();
    assert_eq!(map.len(), db.entries.len(), "duplicate keys");
    map
}

/// The db_load fixtures: key "kN\0", value "vN\0".
fn numbered(n: usize) -> BTreeMap<Vec<u8>, Vec<u8>> {
    (0..n)
        .map(|i| (z(&format!("k{i}")), z(&format!("v{i}"))))
        .collect()
}

fn aliases() -> BTreeMap<Vec<u8>, Vec<u8>> {
    [
        ("root", "jules, bob"),
        ("postmaster", "root"),
        ("érik", "erik@example.org, /var/mail/erik"),
        ("tabbed", "bob"),
    ]
    .iter()
    .map(|(k, v)| (z(k), z(v)))
    .collect()
}

fn assert_key_order(db: &Database) {
    let keys: Vec<&Vec<u8>> = db.entries.iter().map(|(k, _)| k).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "a btree walk gives keys in order");
}

#[test]
fn makemap_hash_aliases() {
    let db = open("makemap-aliases.db");
    assert_eq!(
        (db.kind, db.order, db.page_size),
        (Kind::Hash, ByteOrder::Little, 4096)
    );
    assert_eq!(as_map(&db), aliases());
}

#[test]
fn makemap_btree_aliases() {
    let db = open("makemap-aliases-btree.db");
    assert_eq!(db.kind, Kind::Btree);
    assert_eq!(as_map(&db), aliases());
    assert_key_order(&db);
}

#[test]
fn makemap_set_values_are_the_set_marker() {
    let db = open("makemap-set.db");
    let want: BTreeMap<_, _> = [
        (z("example.org"), z("<set>")),
        (z("example.net"), z("<set>")),
    ]
    .into_iter()
    .collect();
    assert_eq!(as_map(&db), want);
}

#[test]
fn makemap_overflow_key_and_value() {
    let db = open("makemap-overflow.db");
    let mut big: String = (0..409).map(|i| format!("user{i:05}, ")).collect();
    big.push_str("last");
    assert!(big.len() > 4096);
    let want: BTreeMap<_, _> = [(z("big"), z(&big)), (z(&"0".repeat(1100)), z("longkey"))]
        .into_iter()
        .collect();
    assert_eq!(as_map(&db), want);
}

#[test]
fn empty_and_single() {
    assert_eq!(open("empty-hash-512.db").entries, vec![]);
    assert_eq!(as_map(&open("one-hash-512.db")), numbered(1));
}

#[test]
fn many_pages() {
    let h = open("many-hash-512.db");
    assert_eq!((h.kind, h.page_size), (Kind::Hash, 512));
    assert_eq!(as_map(&h), numbered(400));
    let b = open("many-btree-512.db");
    assert_eq!(b.kind, Kind::Btree);
    assert_eq!(as_map(&b), numbered(400));
    assert_key_order(&b);
}

#[test]
fn big_endian() {
    let h = open("be-hash-512.db");
    assert_eq!((h.kind, h.order), (Kind::Hash, ByteOrder::Big));
    assert_eq!(as_map(&h), numbered(100));
    let b = open("be-btree-512.db");
    assert_eq!((b.kind, b.order), (Kind::Btree, ByteOrder::Big));
    assert_eq!(as_map(&b), numbered(100));
    assert_key_order(&b);
    assert_eq!(
        probe(&fixture("be-btree-512.db")),
        Some((Kind::Btree, ByteOrder::Big))
    );
}

#[test]
fn refused() {
    assert_eq!(
        read(&fixture("chksum-hash-512.db")),
        Err(Error::Checksummed)
    );
    assert_eq!(
        read(&fixture("dups-btree-512.db")),
        Err(Error::Unsupported("duplicate keys (DB_DUP)"))
    );
    let mut enc = fixture("one-hash-512.db");
    enc[24] = 1;
    assert_eq!(read(&enc), Err(Error::Encrypted));
    let mut old = fixture("one-hash-512.db");
    old[16] = 6;
    assert_eq!(
        read(&old),
        Err(Error::UnsupportedVersion {
            kind: Kind::Hash,
            version: 6
        })
    );
}

const ALL: &[&str] = &[
    "makemap-aliases.db",
    "makemap-aliases-btree.db",
    "makemap-set.db",
    "makemap-overflow.db",
    "empty-hash-512.db",
    "one-hash-512.db",
    "many-hash-512.db",
    "many-btree-512.db",
    "be-hash-512.db",
    "be-btree-512.db",
];

#[test]
fn truncated_files_are_errors() {
    for name in ALL {
        let data = fixture(name);
        let page = read(&data).map(|d| d.page_size as usize).unwrap_or(512);
        // Cutting off the last page loses a bucket, a leaf or an overflow page: all refused.
        for len in [0, 100, 511, 512, data.len() - page, data.len() - 1] {
            assert!(read(&data[..len]).is_err(), "{name} cut at {len}");
        }
    }
}

#[test]
fn pointers_past_the_end_are_errors() {
    // The bucket page of one-hash-512.db, its next-page field aimed past the file.
    let mut data = fixture("one-hash-512.db");
    data[512 + 16..512 + 20].copy_from_slice(&1000u32.to_le_bytes());
    assert!(matches!(read(&data), Err(Error::Corrupt { .. })));
    // A loop: the bucket page pointing at itself.
    data[512 + 16..512 + 20].copy_from_slice(&1u32.to_le_bytes());
    assert!(matches!(read(&data), Err(Error::Corrupt { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = read(&data);
    }

    /// Random bytes are refused at the magic number; damaged real files reach every parser.
    #[test]
    fn damaged_files_never_panic(
        which in 0..ALL.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
    ) {
        let mut data = fixture(ALL[which]);
        for (at, byte) in edits {
            let i = at.index(data.len());
            data[i] = byte;
        }
        let _ = read(&data);
    }

    /// With the magic number, page size and version of a real file, random pages behind it.
    #[test]
    fn random_pages_never_panic(
        btree in any::<bool>(),
        big in any::<bool>(),
        rest in proptest::collection::vec(any::<u8>(), 0..3000),
    ) {
        let mut data = vec![0u8; 512];
        let magic: u32 = if btree { 0x053162 } else { 0x061561 };
        let put = |d: &mut Vec<u8>, off: usize, v: u32| {
            let b = if big { v.to_be_bytes() } else { v.to_le_bytes() };
            d[off..off + 4].copy_from_slice(&b);
        };
        put(&mut data, 12, magic);
        put(&mut data, 16, 9);
        put(&mut data, 20, 512);
        put(&mut data, 72, 3);
        put(&mut data, 88, 1);
        put(&mut data, 96, 1);
        put(&mut data, 100, 1);
        put(&mut data, 104, 1);
        data.extend_from_slice(&rest);
        let _ = read(&data);
    }
}
