//! The streamed GCM against the `aes-gcm` crate's one-shot result and the
//! NIST vectors; the file layout; tampering and wrong keys.

use super::*;
use aes_gcm::aead::Aead;
use aes_gcm::Aes256Gcm;
use proptest::prelude::*;
use std::io::Cursor;

const K: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

fn key() -> Key {
    Key::new(K).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `aes-gcm`'s one-shot ciphertext || tag.
fn reference(key: &[u8], iv: &[u8; IV_SIZE], plain: &[u8]) -> Vec<u8> {
    let c = Aes256Gcm::new_from_slice(key).unwrap();
    c.encrypt(iv.into(), plain).unwrap()
}

/// Ours, fed in pieces of `step` bytes.
fn ours(key: &Key, iv: &[u8; IV_SIZE], plain: &[u8], step: usize) -> Vec<u8> {
    let mut gcm = Gcm::new(key, iv);
    let mut out = plain.to_vec();
    for piece in out.chunks_mut(step.max(1)) {
        gcm.encrypt(piece).unwrap();
    }
    out.extend_from_slice(&gcm.tag());
    out
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn nist_vectors() {
    // gcmEncryptExtIV256.rsp, no AAD.
    let k = Key::new(&hex(
        "b52c505a37d78eda5dd34f20c22540ea1b58963cf8e5bf8ffa85f9f2492505b4",
    ))
    .unwrap();
    let iv: [u8; 12] = hex("516c33929df5a3284ff463d7").try_into().unwrap();
    assert_eq!(
        ours(&k, &iv, b"", 1),
        hex("bdc1ac884d332457a1d2664f168c76f0")
    );
    let k = Key::new(&hex(
        "31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22",
    ))
    .unwrap();
    let iv: [u8; 12] = hex("0d18e06c7c725ac9e362e1ce").try_into().unwrap();
    let plain = hex("2db5168e932556f8089a0622981d017d");
    for step in [1, 5, 16] {
        assert_eq!(
            ours(&k, &iv, &plain, step),
            hex("fa4362189661d163fcd6a56d8bf0405ad636ac1bbedd5cc3ee727dc2ab4a9489")
        );
    }
}

#[test]
fn streamed_equals_one_shot() {
    let iv = [9u8; IV_SIZE];
    for size in [0, 1, 15, 16, 17, 16384, 100000] {
        let plain = pattern(size);
        let want = reference(K, &iv, &plain);
        for step in [1, 3, 16, 17, 4096, 16384, 1 << 20] {
            if step == 1 && size > 20000 {
                continue;
            }
            assert_eq!(
                ours(&key(), &iv, &plain, step),
                want,
                "size {size} step {step}"
            );
        }
    }
}

/// What `Encryptor` writes: version, IV, then what `aes-gcm` gives for that
/// IV; and what the one-shot cipher writes decrypts here.
#[test]
fn file_layout() {
    for size in [0, 1, 15, 16, 17, 16384, 100000] {
        let plain = pattern(size);
        let mut enc = Encryptor::new(&key(), Vec::new()).unwrap();
        for piece in plain.chunks(1000) {
            enc.write_all(piece).unwrap();
        }
        let file = enc.finish().unwrap();
        assert_eq!(file.len(), size + OVERHEAD);
        assert_eq!(file[0], 1);
        let iv: [u8; IV_SIZE] = file[1..13].try_into().unwrap();
        assert_eq!(&file[13..], &reference(K, &iv, &plain)[..], "size {size}");
        assert_eq!(encrypt_buffer(&key(), &plain).unwrap().len(), file.len());

        // Back, both ways.
        let mut out = Vec::new();
        decrypt_stream(&key(), &mut Cursor::new(&file), &mut out).unwrap();
        assert_eq!(out, plain);
        assert_eq!(decrypt_buffer(&key(), &file).unwrap(), plain);
    }
}

#[test]
fn fresh_iv_each_time() {
    let a = encrypt_buffer(&key(), b"same").unwrap();
    let b = encrypt_buffer(&key(), b"same").unwrap();
    assert_ne!(a[1..13], b[1..13]);
}

#[test]
fn tampering_is_refused() {
    for size in [0, 1, 17, 100000] {
        let file = encrypt_buffer(&key(), &pattern(size)).unwrap();
        for pos in [1, 12, 13, file.len() / 2, file.len() - 17, file.len() - 1] {
            if pos == 0 || pos >= file.len() {
                continue;
            }
            let mut bad = file.clone();
            bad[pos] ^= 0x20;
            assert!(
                decrypt_buffer(&key(), &bad).is_err(),
                "size {size} pos {pos}"
            );
            let mut out = Vec::new();
            assert!(decrypt_stream(&key(), &mut Cursor::new(&bad), &mut out).is_err());
        }
        // Truncated, extended, another version.
        assert!(decrypt_buffer(&key(), &file[..file.len() - 1]).is_err());
        let mut longer = file.clone();
        longer.push(0);
        assert!(decrypt_buffer(&key(), &longer).is_err());
        let mut v2 = file.clone();
        v2[0] = 2;
        assert!(decrypt_buffer(&key(), &v2).is_err());
    }
    assert!(decrypt_buffer(&key(), &[1u8; OVERHEAD - 1]).is_err());
    assert!(decrypt_buffer(&key(), b"").is_err());
}

#[test]
fn wrong_key_is_refused() {
    let file = encrypt_buffer(&key(), b"Subject: secret\r\n").unwrap();
    let other = Key::new(b"0123456789abcdef0123456789abcdeF").unwrap();
    assert!(decrypt_buffer(&other, &file).is_err());
    let dir = tempfile::tempdir().unwrap();
    let e = decrypt_to_tempfile(&other, &mut Cursor::new(&file), dir.path()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    // Nothing left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn keys_are_32_bytes() {
    assert!(Key::new(&[0u8; 31]).is_none());
    assert!(Key::new(&[0u8; 33]).is_none());
    assert!(Key::new(b"").is_none());
    assert!(Key::new(&[0u8; 32]).is_some());
    assert_eq!(format!("{:?}", key()), "Key(..)");
}

#[test]
fn detection() {
    assert!(is_encrypted(&encrypt_buffer(&key(), b"x").unwrap()));
    assert!(!is_encrypted(b"version: 3\n"));
    assert!(!is_encrypted(&[0x1f, 0x8b]));
    assert!(!is_encrypted(b""));
}

proptest! {
    #[test]
    fn round_trips(plain in proptest::collection::vec(any::<u8>(), 0..5000),
                   steps in proptest::collection::vec(1usize..700, 1..8)) {
        let mut enc = Encryptor::new(&key(), Vec::new()).unwrap();
        let mut rest = &plain[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = steps[i % steps.len()].min(rest.len());
            enc.write_all(&rest[..n]).unwrap();
            rest = &rest[n..];
            i += 1;
        }
        let file = enc.finish().unwrap();
        let iv: [u8; IV_SIZE] = file[1..13].try_into().unwrap();
        prop_assert_eq!(&file[13..], &reference(K, &iv, &plain)[..]);
        let dir = tempfile::tempdir().unwrap();
        let mut f = decrypt_to_tempfile(&key(), &mut Cursor::new(&file), dir.path()).unwrap();
        let mut back = Vec::new();
        f.read_to_end(&mut back).unwrap();
        prop_assert_eq!(back, plain);
    }
}
