//! Envelope files of the spool: decoded by the queue's codec (gzip, and decryption with the
//! queue key), then parsed, as `queue::load_envelope` does; and the same bytes as a commit log
//! (`incoming/commit.N`), read at start after a crash.

use rsmtpd::queue::envelope::Envelope;
use rsmtpd::queue::{Codec, QueueKey};

/// OpenSMTPD's limit on an envelope file.
const LIMIT: u64 = 64 * 1024;

pub fn run(data: &[u8]) {
    let _ = Envelope::parse(&String::from_utf8_lossy(data));
    for r in rsmtpd::queue::commitlog::parse(data) {
        // What passes encodes back to a line of the input.
        let line = r.encode();
        let line = line.trim_end_matches('\n').as_bytes();
        assert!(data.windows(line.len()).any(|w| w == line));
    }
    for key in [None, QueueKey::new(&[7u8; 32])] {
        let codec = Codec {
            compression: true,
            key,
        };
        if let Ok(text) = codec.decode_envelope(data.to_vec(), LIMIT) {
            let _ = Envelope::parse(&String::from_utf8_lossy(&text));
        }
    }
}
