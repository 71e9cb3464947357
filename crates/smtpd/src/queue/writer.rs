//! The message file being written during DATA, through the queue's codec.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use flate2::write::GzEncoder;
use flate2::Compression;

use super::codec::Codec;
use super::commitlog::{Sum, Summer};
use super::id::MsgId;

/// The message file being written during DATA. Writes go to the page cache
/// only (no fsync until commit), so calling `write` from an async task is
/// fine. The first error sticks: later writes are ignored and `commit`
/// returns it, so a session can keep reading DATA to its end and then answer
/// 4xx.
pub struct MessageWriter {
    msgid: MsgId,
    out: Out,
    error: Option<io::Error>,
    size: u64,
}

enum Out {
    Plain(Sink),
    Gzip(GzEncoder<Sink>),
}

/// Where the (maybe compressed) message goes: the file, or an encryptor in
/// front of it, so that with `queue encryption` no plaintext of the message
/// is ever written to disk (OpenSMTPD writes it in clear and encrypts it at
/// commit; the resulting file is the same).
enum Sink {
    /// Boxed as the other: the running SHA-256 is a few hundred bytes.
    Clear(Box<BufWriter<Summed>>),
    /// Buffered in front of the encryptor: sessions write line by line.
    /// Boxed: the cipher state is large, and most queues do not encrypt.
    Sealed(Box<BufWriter<rsmtpd_queuecrypt::Encryptor<Summed>>>),
}

/// The file, summed as its bytes go out, for the commit log
/// (`commitlog`): the sum is of what is on disk, after the codec.
struct Summed {
    file: File,
    sum: Summer,
}

impl Write for Summed {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.file.write(data)?;
        self.sum.update(data.get(..n).unwrap_or_default());
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Clear(w) => w.write(data),
            Sink::Sealed(w) => w.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Clear(w) => w.flush(),
            Sink::Sealed(w) => w.flush(),
        }
    }
}

impl Sink {
    /// Everything written out, the tag appended when encrypting; the file
    /// and the sum of its bytes.
    fn finish(self) -> io::Result<(File, Sum)> {
        let summed = match self {
            Sink::Clear(w) => (*w).into_inner().map_err(|e| e.into_error())?,
            Sink::Sealed(w) => (*w).into_inner().map_err(|e| e.into_error())?.finish()?,
        };
        Ok((summed.file, summed.sum.finish()))
    }
}

impl MessageWriter {
    /// Writes through the queue's codec (gzip, then encryption) into `f`, the message's file.
    pub(super) fn new(msgid: MsgId, file: File, codec: &Codec) -> io::Result<MessageWriter> {
        let f = Summed {
            file,
            sum: Summer::new(),
        };
        let sink = match &codec.key {
            Some(key) => Sink::Sealed(Box::new(BufWriter::with_capacity(
                64 * 1024,
                rsmtpd_queuecrypt::Encryptor::new(key, f)?,
            ))),
            None => Sink::Clear(Box::new(BufWriter::with_capacity(64 * 1024, f))),
        };
        // Level 1: mail text shrinks by half or more already, and the
        // session waits for this on every line it writes.
        let out = if codec.compression {
            Out::Gzip(GzEncoder::new(sink, Compression::fast()))
        } else {
            Out::Plain(sink)
        };
        Ok(MessageWriter {
            msgid,
            out,
            error: None,
            size: 0,
        })
    }

    pub fn msgid(&self) -> MsgId {
        self.msgid
    }

    /// Bytes accepted so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some(e) = &self.error {
            return Err(io::Error::new(e.kind(), e.to_string()));
        }
        let written = match &mut self.out {
            Out::Plain(w) => w.write_all(data),
            Out::Gzip(w) => w.write_all(data),
        };
        match written {
            Ok(()) => {
                self.size += data.len() as u64;
                Ok(())
            }
            Err(e) => {
                let ret = io::Error::new(e.kind(), e.to_string());
                self.error = Some(e);
                Err(ret)
            }
        }
    }

    /// The file, all written, and the sum of its bytes.
    pub(super) fn finish(self) -> io::Result<(File, Sum)> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let sink = match self.out {
            Out::Plain(w) => w,
            Out::Gzip(w) => w.finish()?,
        };
        sink.finish()
    }
}
