//! OpenSMTPD's queue encryption (`queue encryption` in smtpd.conf), byte for
//! byte as its `crypto.c` (6.8.0p2) writes and reads it, so that a spool can
//! pass between OpenSMTPD and rsmtpd:
//!
//! ```text
//! 1 byte   version, 1 (API_VERSION; "bump if we ever switch from aes-256-gcm")
//! 12 bytes IV, random for each file or buffer
//! n bytes  AES-256-GCM ciphertext of the n bytes of plaintext
//! 16 bytes GCM tag (no additional authenticated data)
//! ```
//!
//! The key is the configured string's bytes, exactly 32 of them
//! (`crypto_setup()` refuses any other length; nothing derives a key).
//! Message files and envelope files share the format (`crypto_encrypt_file`
//! and `crypto_encrypt_buffer` produce the same layout); smtpctl tells an
//! encrypted file by its first byte (`is_encrypted_fp`): plain envelopes
//! start with text and gzip with 0x1f.
//!
//! Unlike OpenSMTPD, which writes the message in clear and encrypts it at
//! commit, [`Encryptor`] encrypts while the message is written, so no
//! plaintext of it ever reaches the disk. GCM is CTR mode plus a GHASH over
//! the ciphertext, both incremental, so a 35 MB message is never held in
//! memory. The pieces are RustCrypto's `aes`, `ctr` (the 32-bit big-endian
//! counter GCM uses) and `ghash`, the same ones the `aes-gcm` crate is built
//! of (its one-shot API cannot stream); the tests check our result against
//! `aes-gcm` and the NIST vectors.

// Nothing here needs unsafe code; keep it that way.
#![forbid(unsafe_code)]

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};

use aes::cipher::{BlockCipherEncrypt, InnerIvInit, KeyInit, StreamCipher};
use aes::Aes256;
use ghash::universal_hash::UniversalHash;
use ghash::GHash;
use zeroize::Zeroize;

/// `crypto.c`'s constants.
pub const KEY_SIZE: usize = 32;
pub const IV_SIZE: usize = 12;
pub const TAG_SIZE: usize = 16;
pub const VERSION: u8 = 1;
/// What encryption adds to a plaintext: version, IV, tag.
pub const OVERHEAD: usize = 1 + IV_SIZE + TAG_SIZE;

/// OpenSMTPD refuses to encrypt 64 GB or more (`0x1000000000`): the 32-bit
/// block counter would wrap.
const MAX_PLAINTEXT: u64 = 0x10_0000_0000;

const BLOCK: usize = 16;
/// `CRYPTO_BUFFER_SIZE`: how much is read at a time.
const CHUNK: usize = 16384;

/// The queue key: the 32 bytes of the configured string. Wiped on drop;
/// never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; KEY_SIZE]);

impl Key {
    /// `crypto_setup()`: `None` unless exactly 32 bytes.
    pub fn new(bytes: &[u8]) -> Option<Key> {
        let k: [u8; KEY_SIZE] = bytes.try_into().ok()?;
        Some(Key(k))
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Whether data starting with `first` is encrypted (`is_encrypted_buffer`).
pub fn is_encrypted(data: &[u8]) -> bool {
    data.first() == Some(&VERSION)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// The authentication failure every reader reports: wrong key or altered
/// data, which GCM cannot tell apart.
fn bad_tag() -> io::Error {
    invalid("queue encryption: authentication failed (wrong key or damaged file)")
}

/// One GCM computation, fed in pieces of any size.
struct Gcm {
    ctr: ctr::Ctr32BE<Aes256>,
    ghash: GHash,
    /// Ciphertext bytes waiting for a full block before GHASH takes them.
    partial: [u8; BLOCK],
    npartial: usize,
    /// Bytes processed so far.
    len: u64,
    /// E(K, J0), which masks the GHASH into the tag.
    mask: [u8; BLOCK],
}

impl Gcm {
    fn new(key: &Key, iv: &[u8; IV_SIZE]) -> Gcm {
        let cipher = Aes256::new(&key.0.into());
        // H = E(K, 0^128).
        let mut h = ghash::Block::default();
        cipher.encrypt_block(&mut h);
        let ghash = GHash::new(&h);
        // A 96-bit IV: J0 = IV || 0^31 || 1. The first counter block masks
        // the tag; the text is encrypted from inc32(J0) on.
        let mut j0 = ghash::Block::default();
        j0[..IV_SIZE].copy_from_slice(iv);
        j0[15] = 1;
        let mut ctr = ctr::Ctr32BE::<Aes256>::from_core(ctr::CtrCore::inner_iv_init(cipher, &j0));
        let mut mask = [0u8; BLOCK];
        // The stream is fresh: 16 bytes of keystream cannot run out.
        let _ = ctr.try_apply_keystream(&mut mask);
        Gcm {
            ctr,
            ghash,
            partial: [0; BLOCK],
            npartial: 0,
            len: 0,
            mask,
        }
    }

    fn count(&mut self, n: usize) -> io::Result<()> {
        self.len += n as u64;
        if self.len >= MAX_PLAINTEXT {
            return Err(invalid("queue encryption: 64 GB or more"));
        }
        Ok(())
    }

    /// GHASH over ciphertext, whatever its alignment.
    fn absorb(&mut self, mut data: &[u8]) {
        if self.npartial > 0 {
            let n = (BLOCK - self.npartial).min(data.len());
            self.partial[self.npartial..self.npartial + n].copy_from_slice(&data[..n]);
            self.npartial += n;
            data = &data[n..];
            if self.npartial < BLOCK {
                return;
            }
            self.ghash.update(&[self.partial.into()]);
            self.npartial = 0;
        }
        let (blocks, rest) = ghash::Block::slice_as_chunks(data);
        self.ghash.update(blocks);
        self.partial[..rest.len()].copy_from_slice(rest);
        self.npartial = rest.len();
    }

    fn keystream(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.ctr
            .try_apply_keystream(buf)
            .map_err(|_| invalid("queue encryption: 64 GB or more"))
    }

    fn encrypt(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.count(buf.len())?;
        self.keystream(buf)?;
        self.absorb(buf);
        Ok(())
    }

    fn decrypt(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.count(buf.len())?;
        self.absorb(buf);
        self.keystream(buf)
    }

    fn tag(mut self) -> [u8; TAG_SIZE] {
        if self.npartial > 0 {
            let mut last = [0u8; BLOCK];
            last[..self.npartial].copy_from_slice(&self.partial[..self.npartial]);
            self.ghash.update(&[last.into()]);
        }
        // len(A) = 0 bits, len(C) in bits, both 64-bit big-endian.
        let mut lengths = [0u8; BLOCK];
        lengths[8..].copy_from_slice(&(self.len * 8).to_be_bytes());
        self.ghash.update(&[lengths.into()]);
        let s = self.ghash.finalize();
        let mut tag = [0u8; TAG_SIZE];
        for (t, (a, b)) in tag.iter_mut().zip(s.iter().zip(self.mask.iter())) {
            *t = a ^ b;
        }
        tag
    }
}

/// Compares tags in constant time.
fn same_tag(a: &[u8; TAG_SIZE], b: &[u8; TAG_SIZE]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn random_iv() -> io::Result<[u8; IV_SIZE]> {
    let mut iv = [0u8; IV_SIZE];
    getrandom::fill(&mut iv).map_err(|e| io::Error::other(format!("getrandom: {e}")))?;
    Ok(iv)
}

/// Encrypts everything written through it into `inner`, as
/// `crypto_encrypt_file` lays it out: the version and a fresh IV at once,
/// the ciphertext as it comes, the tag at [`Encryptor::finish`]. Without
/// `finish` the output has no tag and will never decrypt.
pub struct Encryptor<W: Write> {
    inner: W,
    gcm: Gcm,
    buf: Vec<u8>,
}

impl<W: Write> Encryptor<W> {
    pub fn new(key: &Key, mut inner: W) -> io::Result<Encryptor<W>> {
        let iv = random_iv()?;
        inner.write_all(&[VERSION])?;
        inner.write_all(&iv)?;
        Ok(Encryptor {
            inner,
            gcm: Gcm::new(key, &iv),
            buf: Vec::with_capacity(CHUNK),
        })
    }

    /// Writes the tag and hands back the writer (not flushed).
    pub fn finish(mut self) -> io::Result<W> {
        let tag = self.gcm.tag();
        self.inner.write_all(&tag)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Encryptor<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // Encrypted in a buffer of ours: the caller's bytes are borrowed.
        let n = data.len().min(CHUNK);
        self.buf.clear();
        self.buf.extend_from_slice(&data[..n]);
        self.gcm.encrypt(&mut self.buf)?;
        // All or nothing: a short write here would desynchronize the
        // keystream from what the caller believes was written.
        self.inner.write_all(&self.buf)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `crypto_encrypt_buffer`: the whole of `plain`, encrypted (envelopes).
pub fn encrypt_buffer(key: &Key, plain: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(plain.len() + OVERHEAD);
    let mut enc = Encryptor::new(key, &mut out)?;
    enc.write_all(plain)?;
    enc.finish()?;
    Ok(out)
}

/// `crypto_decrypt_buffer`: the plaintext of `data`, or an error when it is
/// too short, of another version, or does not authenticate.
pub fn decrypt_buffer(key: &Key, data: &[u8]) -> io::Result<Vec<u8>> {
    if data.len() < OVERHEAD {
        return Err(invalid("queue encryption: too short"));
    }
    if data[0] != VERSION {
        return Err(invalid("queue encryption: unknown version"));
    }
    let (head, rest) = data.split_at(1 + IV_SIZE);
    let (ct, tag) = rest.split_at(rest.len() - TAG_SIZE);
    let mut iv = [0u8; IV_SIZE];
    iv.copy_from_slice(&head[1..]);
    let mut expected = [0u8; TAG_SIZE];
    expected.copy_from_slice(tag);
    let mut gcm = Gcm::new(key, &iv);
    let mut out = ct.to_vec();
    gcm.decrypt(&mut out)?;
    if !same_tag(&gcm.tag(), &expected) {
        out.zeroize();
        return Err(bad_tag());
    }
    Ok(out)
}

/// `crypto_decrypt_file`: decrypts `input` (from its start) into `out`,
/// streaming. The plaintext is written before the tag can be checked (the
/// tag covers the whole file), so on `Err` the caller must discard what
/// `out` received: [`decrypt_to_tempfile`] does.
pub fn decrypt_stream<R: Read + Seek, W: Write>(
    key: &Key,
    input: &mut R,
    out: &mut W,
) -> io::Result<()> {
    let size = input.seek(SeekFrom::End(0))?;
    if size < OVERHEAD as u64 {
        return Err(invalid("queue encryption: too short"));
    }
    input.seek(SeekFrom::Start(size - TAG_SIZE as u64))?;
    let mut expected = [0u8; TAG_SIZE];
    input.read_exact(&mut expected)?;
    input.seek(SeekFrom::Start(0))?;
    let mut head = [0u8; 1 + IV_SIZE];
    input.read_exact(&mut head)?;
    if head[0] != VERSION {
        return Err(invalid("queue encryption: unknown version"));
    }
    let mut iv = [0u8; IV_SIZE];
    iv.copy_from_slice(&head[1..]);
    let mut gcm = Gcm::new(key, &iv);
    let mut left = size - OVERHEAD as u64;
    let mut buf = vec![0u8; CHUNK];
    while left > 0 {
        let want = left.min(CHUNK as u64) as usize;
        let n = input.read(&mut buf[..want])?;
        if n == 0 {
            // The file shrank under us.
            return Err(invalid("queue encryption: truncated"));
        }
        gcm.decrypt(&mut buf[..n])?;
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    if !same_tag(&gcm.tag(), &expected) {
        return Err(bad_tag());
    }
    Ok(())
}

/// Decrypts `input` into a new unnamed file in `dir` (gone when closed, so
/// a failed check leaves nothing behind), positioned at its start.
pub fn decrypt_to_tempfile<R: Read + Seek>(
    key: &Key,
    input: &mut R,
    dir: &std::path::Path,
) -> io::Result<std::fs::File> {
    let mut out = tempfile::tempfile_in(dir)?;
    {
        let mut w = io::BufWriter::with_capacity(64 * 1024, &mut out);
        decrypt_stream(key, input, &mut w)?;
        w.flush()?;
    }
    out.seek(SeekFrom::Start(0))?;
    Ok(out)
}

/// glibc's `getpass(3)`, which OpenSMTPD calls for the key (smtpd's
/// `queue key: `, smtpctl's `key> `): the prompt and the answer on the
/// controlling terminal, echo off; without one, the prompt on stderr and the
/// answer from stdin. One line, its newline removed; an empty answer at end
/// of input (then `crypto_setup` refuses it).
pub fn getpass(prompt: &str) -> io::Result<Vec<u8>> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok();
    let mut line = Vec::new();
    match tty {
        Some(mut tty) => {
            let saved = tcgetattr(&tty).ok();
            let echo_off = saved.as_ref().is_some_and(|saved| {
                let mut t = saved.clone();
                t.local_flags &= !(LocalFlags::ECHO | LocalFlags::ISIG);
                tcsetattr(&tty, SetArg::TCSAFLUSH, &t).is_ok()
            });
            let r = tty
                .write_all(prompt.as_bytes())
                .and_then(|()| tty.flush())
                .and_then(|()| read_line(&mut tty, &mut line));
            if let (true, Some(saved)) = (echo_off, &saved) {
                let _ = tcsetattr(&tty, SetArg::TCSAFLUSH, saved);
                let _ = tty.write_all(b"\n");
            }
            r?;
        }
        None => {
            let mut err = io::stderr();
            let _ = err.write_all(prompt.as_bytes());
            let _ = err.flush();
            read_line(&mut io::stdin().lock(), &mut line)?;
        }
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(line)
}

/// One line, byte by byte: nothing after it is taken from a shared stdin.
fn read_line(r: &mut impl Read, line: &mut Vec<u8>) -> io::Result<()> {
    let mut b = [0u8; 1];
    loop {
        match r.read(&mut b) {
            Ok(0) => return Ok(()),
            Ok(_) => {
                line.push(b[0]);
                if b[0] == b'\n' {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// `queue encryption stdin`: the first line of standard input, its newline
/// removed (smtpd.c's `getline`); `None` when there is none.
pub fn key_from_stdin() -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    read_line(&mut io::stdin().lock(), &mut line)?;
    if line.is_empty() {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(Some(line))
}

#[cfg(test)]
mod tests;
