//! `smtpctl encrypt`: crypt(3)'s SHA-512 scheme (`$6$SALT$HASH`, 5000 rounds, 16-character
//! salt), as OpenSMTPD's encrypt helper prints it with glibc.

const ALPHABET: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The hash of `password` with a given salt (at most 16 characters of the crypt alphabet).
pub fn sha512_crypt_with_salt(password: &[u8], salt: &str) -> String {
    let salt = &salt[..salt.len().min(16)];
    let params = sha_crypt::Params::new(5000).expect("5000 rounds are valid");
    let raw = sha_crypt::sha512_crypt(password, salt.as_bytes(), params);
    let mut out = format!("$6${salt}$");
    let mut push = |b2: u8, b1: u8, b0: u8, n: usize| {
        let mut w = ((b2 as u32) << 16) | ((b1 as u32) << 8) | b0 as u32;
        for _ in 0..n {
            out.push(ALPHABET[(w & 0x3f) as usize] as char);
            w >>= 6;
        }
    };
    for i in 0..21 {
        let (a, b, c) = match i % 3 {
            0 => (i, i + 21, i + 42),
            1 => (i + 21, i + 42, i),
            _ => (i + 42, i, i + 21),
        };
        push(raw[a], raw[b], raw[c], 4);
    }
    push(0, 0, raw[63], 2);
    out
}

/// A fresh random salt of 16 characters from /dev/urandom.
pub fn random_salt() -> std::io::Result<String> {
    use std::io::Read;
    let mut buf = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf
        .iter()
        .map(|b| ALPHABET[(b & 0x3f) as usize] as char)
        .collect())
}

/// The hash of `password` with a random salt.
pub fn encrypt(password: &[u8]) -> std::io::Result<String> {
    Ok(sha512_crypt_with_salt(password, &random_salt()?))
}
