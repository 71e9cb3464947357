//! The files `sendmail` leaves in the spool's `offline/` directory when the daemon is not
//! running (enqueue.c's offline mode), for the daemon to submit again at start.
//!
//! Name: `<spool>/offline/<epoch seconds>.XXXXXXXXXX` (mkstemp), mode 0600, owned by the
//! submitting user. Content: sendmail's arguments after argv\[0\] joined with `|` on the first
//! line, then the message as sendmail parsed it (line ends normalised to `\n`, `Bcc:` headers
//! left out). At start the daemon runs `sendmail -S ARGS...` as the file's owner with the rest
//! of the file on standard input, then deletes the file (OpenSMTPD's `offline_enqueue`).

/// Why an argument cannot be saved: it contains the separator.
pub fn illegal_argument(args: &[String]) -> Option<&str> {
    args.iter().find(|a| a.contains('|')).map(String::as_str)
}

/// The file's content for these arguments (argv\[1..\]) and message.
pub fn write_offline(args: &[String], message: &[u8]) -> Vec<u8> {
    let mut out = args.join("|").into_bytes();
    out.push(b'\n');
    out.extend_from_slice(message);
    out
}

/// Splits a file back into arguments and message. `None` when there is no first line.
/// An empty first line means no arguments.
pub fn read_offline(data: &[u8]) -> Option<(Vec<String>, &[u8])> {
    let nl = data.iter().position(|&b| b == b'\n')?;
    let first = std::str::from_utf8(&data[..nl]).ok()?;
    let args = if first.is_empty() {
        Vec::new()
    } else {
        first.split('|').map(str::to_owned).collect()
    };
    Some((args, &data[nl + 1..]))
}
