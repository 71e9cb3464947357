//! The check of a `db:` table file at configuration time, and the Berkeley DB messages OpenSMTPD
//! prints when it refuses one.
//!
//! OpenSMTPD's table_db.c opens the file with `dbopen(path, O_RDONLY, 0600, DB_HASH, NULL)`
//! (Berkeley DB 5.3's 1.85 compatibility API on Debian). When that fails, libdb has already
//! written its reasons to stderr, and `smtpd -n` goes on with `invalid configuration file`. The
//! reasons depend only on the first 512 bytes, in the order `__fop_file_setup()`,
//! `__db_chk_meta()`, `__crypto_decrypt_meta()`, `__db_meta_setup()` and `__ham_metachk()` look at
//! them (db-5.3 fileops/fop_util.c, db/db_open.c, crypto/crypto.c, hash/hash_open.c), so they are
//! reproduced here line for line, retries included.
//!
//! A file libdb would open must then be readable by us too ([`rsmtpd_bdb::read`]): a hash that
//! uses a feature makemap never writes (checksums, duplicates...) or is damaged past its first
//! page is refused here with our own line rather than failing every lookup at run time.

use crate::table::MAP_MAGIC;

/// `DBMETASIZE`.
const META_SIZE: usize = rsmtpd_bdb::META_SIZE;
/// `DB_RETRY`: how many times `__fop_file_setup()` re-reads a metadata page whose checksum
/// fails, each time printing why, in case a writer was half-way through it.
const DB_RETRY: usize = 100;
const DB_HASHMAGIC: u32 = rsmtpd_bdb::HASH_MAGIC;
const DB_BTREEMAGIC: u32 = rsmtpd_bdb::BTREE_MAGIC;
const DB_HEAPMAGIC: u32 = 0x0007_4582;
const DB_QAMMAGIC: u32 = 0x0004_2253;
const DB_RENAMEMAGIC: u32 = 0x0003_0800;
/// Where the metadata page's checksum is: `chksum` of HMETA and BTMETA, after the 16 bytes of
/// `iv` at 476 (db_page.h's comments say 496, which is wrong).
const CHKSUM_OFFSET: usize = 492;

/// Whether a `db:` file is usable: `Ok` for our makemap's format or a Berkeley DB hash that
/// OpenSMTPD would open and we can read; else the lines to print before `invalid configuration
/// file ...`.
pub fn check_db_file(path: &str, data: &[u8]) -> Result<(), Vec<String>> {
    if data.starts_with(MAP_MAGIC) {
        return Ok(());
    }
    libdb_open_hash(path, data)?;
    match rsmtpd_bdb::read(data) {
        Ok(_) => Ok(()),
        Err(e) => Err(vec![format!("{}: {}", path, e)]),
    }
}

/// The entries OpenSMTPD's table_db.c can find in a Berkeley DB file, as (key, value) strings;
/// `None` where its `dbopen(DB_HASH)` would fail (a btree, for one) or we cannot read the file.
///
/// makemap stores both sides NUL-terminated and table_db.c looks a key up as its text plus one
/// NUL, reading the value back as a C string. So the NULs go; a key without one, or with one
/// inside, can never be found and is left out; a value ends at its first NUL. Keys are
/// lower-cased when added to a table (as every lookup key is): where a hand-made file holds
/// both `Foo` and `foo`, the one OpenSMTPD would find, `foo`, comes last and wins.
pub fn bdb_entries(data: &[u8]) -> Option<Vec<(String, String)>> {
    libdb_open_hash("", data).ok()?;
    let db = rsmtpd_bdb::read(data).ok()?;
    let mut out: Vec<(String, String)> = db
        .entries
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_suffix(b"\0").filter(|k| !k.contains(&0))?;
            let value = v.split(|&b| b == 0).next().unwrap_or_default();
            Some((
                String::from_utf8_lossy(key).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            ))
        })
        .collect();
    out.sort_by_key(|(k, _)| !k.bytes().any(|b| b.is_ascii_uppercase()));
    Some(out)
}

fn u32_le(data: &[u8], off: usize) -> u32 {
    data.get(off..off + 4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// `__ham_func4()`, the hash libdb checksums unencrypted pages with.
fn ham_func4(data: &[u8]) -> u32 {
    data.iter().fold(0u32, |h, &b| {
        (h << 5).wrapping_add(h).wrapping_add(u32::from(b))
    })
}

/// What libdb prints when `dbopen(DB_HASH)` refuses these bytes (`Ok` if it opens them).
fn libdb_open_hash(path: &str, data: &[u8]) -> Result<(), Vec<String>> {
    let Some(meta) = data.get(..META_SIZE) else {
        return Err(vec![format!(
            "BDB0004 fop_read_meta: {}: unexpected file type or format",
            path
        )]);
    };
    let encrypt_alg = meta[24];
    let metaflags = meta[26];
    // __db_chk_meta(): the checksum is verified before the magic number is even looked at, so
    // random bytes with the checksum flag set end here.
    let checksum_fail = |why: Option<&str>| {
        let mut lines = Vec::new();
        if let Some(why) = why {
            lines.extend(std::iter::repeat_n(why.to_string(), DB_RETRY));
        }
        lines.push(format!("BDB0210 {}: metadata page checksum error", path));
        lines
    };
    if metaflags & 0x01 != 0 {
        if encrypt_alg != 0 {
            return Err(checksum_fail(Some(
                "BDB0196 Encrypted checksum: no encryption key specified",
            )));
        }
        let stored = u32_le(meta, CHKSUM_OFFSET);
        let mut zeroed = meta.to_vec();
        zeroed[CHKSUM_OFFSET..CHKSUM_OFFSET + 4].fill(0);
        let sum = ham_func4(&zeroed);
        if stored != sum && stored.swap_bytes() != sum {
            return Err(checksum_fail(None));
        }
    }
    // __crypto_decrypt_meta(): old hash files predate encryption and skip the check.
    let magic = u32_le(meta, 12);
    let old_hash = magic == DB_HASHMAGIC && u32_le(meta, 16) <= 5;
    if !old_hash && encrypt_alg != 0 {
        return Err(checksum_fail(Some(
            "BDB0178 Encrypted database: no encryption flag specified",
        )));
    }
    // __db_meta_setup(): the magic number in either byte order, then the method asked for.
    let bad_format = || {
        vec![format!(
            "BDB0641 __db_meta_setup: {}: unexpected file type or format",
            path
        )]
    };
    let known = [
        DB_BTREEMAGIC,
        DB_HASHMAGIC,
        DB_HEAPMAGIC,
        DB_QAMMAGIC,
        DB_RENAMEMAGIC,
    ];
    let (magic, swapped) = if known.contains(&magic) {
        (magic, false)
    } else if magic != 0 && known.contains(&magic.swap_bytes()) {
        (magic.swap_bytes(), true)
    } else {
        return Err(bad_format());
    };
    if magic != DB_HASHMAGIC {
        return Err(bad_format());
    }
    // __ham_metachk()
    let version = if swapped {
        u32_le(meta, 16).swap_bytes()
    } else {
        u32_le(meta, 16)
    };
    match version {
        4..=6 => Err(vec![format!(
            "BDB1125 {}: hash version {} requires a version upgrade",
            path, version
        )]),
        7..=9 => Ok(()),
        _ => Err(vec![format!(
            "BDB1126 {}: unsupported hash version: {}",
            path, version
        )]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_as_table_db_finds_them() {
        let f = |name: &str| {
            let p = format!(
                "{}/../bdb/tests/fixtures/{}",
                env!("CARGO_MANIFEST_DIR"),
                name
            );
            std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
        };
        let mut got = bdb_entries(&f("makemap-set.db")).unwrap_or_default();
        got.sort();
        let want = [("example.net", "<set>"), ("example.org", "<set>")];
        assert_eq!(got, want.map(|(k, v)| (k.to_string(), v.to_string())));
        let got = bdb_entries(&f("makemap-aliases.db")).unwrap_or_default();
        assert!(got.contains(&("érik".into(), "erik@example.org, /var/mail/erik".into())));
        // dbopen(DB_HASH) refuses a btree, so OpenSMTPD never reads one.
        assert_eq!(bdb_entries(&f("makemap-aliases-btree.db")), None);
        assert!(check_db_file("/b.db", &f("makemap-aliases-btree.db")).is_err());
        assert_eq!(check_db_file("/h.db", &f("makemap-aliases.db")), Ok(()));
        assert_eq!(
            check_db_file("/c.db", &f("chksum-hash-512.db")),
            one("/c.db: Berkeley DB databases with page checksums are not supported")
        );
    }

    fn meta(magic: u32, version: u32) -> Vec<u8> {
        let mut m = vec![0u8; 4096];
        m[12..16].copy_from_slice(&magic.to_le_bytes());
        m[16..20].copy_from_slice(&version.to_le_bytes());
        m
    }

    fn one(line: &str) -> Result<(), Vec<String>> {
        Err(vec![line.to_string()])
    }

    #[test]
    fn short_files() {
        let want = one("BDB0004 fop_read_meta: /a.db: unexpected file type or format");
        assert_eq!(libdb_open_hash("/a.db", b""), want);
        assert_eq!(libdb_open_hash("/a.db", &[0u8; 511]), want);
    }

    #[test]
    fn wrong_magic_or_method() {
        let want = one("BDB0641 __db_meta_setup: /a.db: unexpected file type or format");
        assert_eq!(libdb_open_hash("/a.db", &[0u8; 512]), want);
        assert_eq!(libdb_open_hash("/a.db", &meta(DB_BTREEMAGIC, 9)), want);
        assert_eq!(
            libdb_open_hash("/a.db", &meta(DB_BTREEMAGIC.swap_bytes(), 9)),
            want
        );
        assert_eq!(libdb_open_hash("/a.db", &meta(DB_HASHMAGIC, 9)), Ok(()));
        assert_eq!(
            libdb_open_hash("/a.db", &meta(DB_HASHMAGIC.swap_bytes(), 9u32.swap_bytes())),
            Ok(())
        );
        assert_eq!(
            libdb_open_hash("/a.db", &meta(DB_HASHMAGIC, 5)),
            one("BDB1125 /a.db: hash version 5 requires a version upgrade")
        );
        assert_eq!(
            libdb_open_hash("/a.db", &meta(DB_HASHMAGIC, 10)),
            one("BDB1126 /a.db: unsupported hash version: 10")
        );
    }

    #[test]
    fn checksum_and_encryption_flags() {
        let mut m = meta(0x1234_5678, 9);
        m[24] = 1;
        let lines = libdb_open_hash("/a.db", &m).err().unwrap_or_default();
        assert_eq!(lines.len(), DB_RETRY + 1);
        assert_eq!(
            lines[0],
            "BDB0178 Encrypted database: no encryption flag specified"
        );
        assert_eq!(
            lines[DB_RETRY],
            "BDB0210 /a.db: metadata page checksum error"
        );
        m[26] = 1;
        let lines = libdb_open_hash("/a.db", &m).err().unwrap_or_default();
        assert_eq!(
            lines[0],
            "BDB0196 Encrypted checksum: no encryption key specified"
        );
        m[24] = 0;
        assert_eq!(
            libdb_open_hash("/a.db", &m),
            one("BDB0210 /a.db: metadata page checksum error")
        );
        // A good checksum lets the magic number be looked at.
        let sum = ham_func4(&m[..512]);
        m[CHKSUM_OFFSET..CHKSUM_OFFSET + 4].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(
            libdb_open_hash("/a.db", &m),
            one("BDB0641 __db_meta_setup: /a.db: unexpected file type or format")
        );
    }
}
