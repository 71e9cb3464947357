//! Fuzz targets: one function per parser that reads outside input, each `fn(&[u8])` that must
//! never panic (nor hang) whatever the bytes. The binary (`src/main.rs`) runs one under AFL++
//! (feature `afl`) or replays files through it on stable; `tests/replay.rs` replays every seed
//! and every regression input through every target. Seeds come from the repository's own test
//! corpora (`seeds::for_target`).
//!
//! Keep each target thin: it calls the crate's public API the way the daemon does, so that the
//! fuzzer reaches the code the daemon runs, and adapting a target to an API change is a few lines.

#![forbid(unsafe_code)]

pub mod input;
pub mod seeds;
pub mod targets;

/// A target: its name (the command line's, and the folder of its seeds and regressions) and
/// its function.
pub struct Target {
    pub name: &'static str,
    pub what: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order the bounded CI run takes them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "command",
        what: "SMTP command lines: verbs, MAIL FROM / RCPT TO parameters (protocol::command)",
        run: targets::command::run,
    },
    Target {
        name: "address",
        what: "mail addresses and domains (protocol::address), base64 and vis helpers",
        run: targets::address::run,
    },
    Target {
        name: "session",
        what: "the whole server session, driven by arbitrary chunks and answers",
        run: targets::session::run,
    },
    Target {
        name: "data",
        what: "the DATA reader (dot-decoding, chunking invariance) and the header processor",
        run: targets::data::run,
    },
    Target {
        name: "config",
        what: "smtpd.conf: lexer, parser and checks (on a StaticEnvironment)",
        run: targets::config::run,
    },
    Target {
        name: "envelope",
        what: "envelope files of the spool, through the queue codec (gzip, encryption), and commit logs",
        run: targets::envelope::run,
    },
    Target {
        name: "control",
        what: "the control socket's frames (requests, responses) and offline queue files",
        run: targets::control::run,
    },
    Target {
        name: "bdb",
        what: "Berkeley DB hash and btree maps (db: tables), and makemap sources",
        run: targets::bdb::run,
    },
    Target {
        name: "alias",
        what: "alias table values and .forward lines (fparseln, the item grammar)",
        run: targets::alias::run,
    },
    Target {
        name: "smtpctl",
        what: "smtpctl and sendmail command lines, and sendmail's message on stdin",
        run: targets::smtpctl::run,
    },
    Target {
        name: "filter",
        what: "the proc-exec filter protocol: a filter's lines, chunked, and the lines sent to it",
        run: targets::filter::run,
    },
    Target {
        name: "reply",
        what: "the relay client's reply parser: a server's replies, chunked, and their views",
        run: targets::reply::run,
    },
    Target {
        name: "table",
        what: "the table protocol of external backends: their frames, chunked; our requests",
        run: targets::table::run,
    },
    Target {
        name: "proxy",
        what: "PROXY v2 headers of proxy-v2 listeners: prelude, addresses, TLVs",
        run: targets::proxy::run,
    },
    Target {
        name: "credentials",
        what: "credential table lines and crypt(3) hashes (SHA-512-crypt, bcrypt) checked",
        run: targets::credentials::run,
    },
    Target {
        name: "pki",
        what: "pki and ca PEM files: chains, private keys, their match, trust anchors",
        run: targets::pki::run,
    },
    Target {
        name: "bytes",
        what: "the same bytes, raw and folded onto the SMTP alphabet, through every byte parser",
        run: targets::bytes::run,
    },
];

/// The target of that name.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
