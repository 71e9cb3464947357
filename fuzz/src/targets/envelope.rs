//! Envelope files of the spool: decoded by the queue's codec (gzip, and decryption with the
//! queue key), then parsed, as `queue::load_envelope` does.

use rsmtpd::queue::envelope::Envelope;
use rsmtpd::queue::{Codec, QueueKey};

/// OpenSMTPD's limit on an envelope file.
const LIMIT: u64 = 64 * 1024;

pub fn run(data: &[u8]) {
    let _ = Envelope::parse(&String::from_utf8_lossy(data));
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
