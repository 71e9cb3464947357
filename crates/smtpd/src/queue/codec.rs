//! How queue files are encoded on disk: `queue compression` (gzip) and
//! `queue encryption` (AES-256-GCM, see `rsmtpd_queuecrypt`), in
//! OpenSMTPD's order so that a spool passes between the two daemons:
//! writing compresses, then encrypts (`queue_message_commit`,
//! `queue_envelope_dump_buffer`); reading decrypts, then inflates
//! (`queue_message_fd_r`, `queue_envelope_load_buffer`).
//!
//! Readers go by content, as smtpctl's `display()` does: an encrypted file
//! starts with the version byte 1, a gzip one with 0x1f 0x8b, and neither can
//! begin a plain message (we always write `Received:` first) or envelope
//! text. Where OpenSMTPD would fail a message queued before the option was
//! turned on, we read it as it is; a message queued encrypted needs the key.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

pub use rsmtpd_queuecrypt::Key as QueueKey;

/// gzip's first two bytes.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The queue's encoding options. `Default`: plain files.
#[derive(Clone, Debug, Default)]
pub struct Codec {
    /// `queue compression`.
    pub compression: bool,
    /// `queue encryption`: the key (32 bytes; see [`QueueKey::new`]).
    pub key: Option<QueueKey>,
}

impl Codec {
    /// An envelope's text as its file holds it: gzip (default level, as
    /// `compress_gzip_chunk`), then encrypted (`crypto_encrypt_buffer`).
    pub fn encode_envelope(&self, text: &[u8]) -> io::Result<Vec<u8>> {
        let mut data = if self.compression {
            let mut gz = GzEncoder::new(Vec::with_capacity(text.len()), Compression::default());
            gz.write_all(text)?;
            gz.finish()?
        } else {
            text.to_vec()
        };
        if let Some(key) = &self.key {
            data = rsmtpd_queuecrypt::encrypt_buffer(key, &data)?;
        }
        Ok(data)
    }

    /// The text of an envelope file, whatever of the above it went through;
    /// at most `limit` bytes of it.
    pub fn decode_envelope(&self, data: Vec<u8>, limit: u64) -> io::Result<Vec<u8>> {
        let data = if rsmtpd_queuecrypt::is_encrypted(&data) {
            let key = self.key.as_ref().ok_or_else(no_key)?;
            rsmtpd_queuecrypt::decrypt_buffer(key, &data)?
        } else {
            data
        };
        if !data.starts_with(&GZIP_MAGIC) {
            return Ok(data);
        }
        let mut out = Vec::new();
        GzDecoder::new(&data[..])
            .take(limit + 1)
            .read_to_end(&mut out)?;
        if out.len() as u64 > limit {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "too large"));
        }
        Ok(out)
    }
}

/// smtpd.c at start: the key `queue encryption` names, else the first line
/// of stdin (`queue encryption stdin`), else asked on the terminal
/// (`getpass("queue key: ")`). Refused unless 32 bytes, as `crypto_setup`
/// refuses it in OpenSMTPD's queue process; said here, before the daemon
/// detaches, so that whoever started it sees why it did not.
pub fn resolve_key(configured: Option<&str>) -> Result<String, String> {
    let key = match configured {
        Some("stdin") => match rsmtpd_queuecrypt::key_from_stdin() {
            Ok(Some(k)) => k,
            Ok(None) => return Err("smtpd: getline: end of input".into()),
            Err(e) => return Err(format!("smtpd: getline: {e}")),
        },
        Some(k) => k.as_bytes().to_vec(),
        None => {
            rsmtpd_queuecrypt::getpass("queue key: ").map_err(|e| format!("smtpd: getpass: {e}"))?
        }
    };
    let invalid = || "smtpd: crypto_setup: invalid key for queue encryption".to_string();
    if QueueKey::new(&key).is_none() {
        return Err(invalid());
    }
    // The config holds it as text; a key that is not UTF-8 cannot pass.
    String::from_utf8(key).map_err(|_| invalid())
}

fn no_key() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "encrypted, and no queue encryption key",
    )
}

/// Opens a queued message for reading, as delivery agents and bounces see
/// it: a plain, seekable file positioned at its start. An encrypted message
/// is decrypted, and a compressed one inflated, into an unnamed temporary
/// file beside it, as OpenSMTPD's `queue_message_fd_r` does with
/// `mktmpfile()`; nothing named is left behind, and a message whose tag does
/// not verify (wrong key, damaged file) is an error, its output discarded.
///
/// Only what the codec enables is undone: without `queue compression` a
/// sender's message that happens to start with gzip's magic is delivered
/// untouched; without a key an encrypted message is an error, since its
/// first byte cannot begin a message we wrote in clear.
pub fn open_message_file(path: &Path, codec: &Codec) -> io::Result<File> {
    let mut f = File::open(path)?;
    if codec.key.is_none() && !codec.compression {
        return Ok(f);
    }
    let dir = path.parent().unwrap_or(Path::new("/tmp"));
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut f, &mut magic)?;
    f.seek(SeekFrom::Start(0))?;
    if let Some(key) = &codec.key {
        if n >= 1 && rsmtpd_queuecrypt::is_encrypted(&magic) {
            f = rsmtpd_queuecrypt::decrypt_to_tempfile(key, &mut f, dir)?;
            let n = read_up_to(&mut f, &mut magic)?;
            f.seek(SeekFrom::Start(0))?;
            if n < 2 {
                return Ok(f);
            }
        }
    }
    if !codec.compression || magic != GZIP_MAGIC {
        return Ok(f);
    }
    let mut out = tempfile::tempfile_in(dir)?;
    io::copy(&mut GzDecoder::new(io::BufReader::new(f)), &mut out)?;
    out.seek(SeekFrom::Start(0))?;
    Ok(out)
}

/// `read` until `buf` is full or the end: a short first read must not make
/// a gzip or encrypted file look plain.
fn read_up_to(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
