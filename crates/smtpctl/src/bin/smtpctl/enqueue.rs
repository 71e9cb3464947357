//! The `sendmail` personality (enqueue.c): a message from standard input submitted to the
//! daemon, or written to `offline/` when it is down.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use rsmtpd_control::text::time_to_text;
use rsmtpd_control::*;
use rsmtpd_smtpctl::{encrypt, sendmail, usage, Personality};

use super::{
    drop_setgid, errx, now, progname, setgid_run, spool_path, strerror, Conn, EX_SOFTWARE,
    EX_TEMPFAIL, EX_UNAVAILABLE,
};

fn mailname() -> String {
    if let Ok(s) = std::fs::read_to_string("/etc/mailname") {
        if let Some(l) = s.lines().next() {
            let l = l.trim();
            if !l.is_empty() {
                return l.to_string();
            }
        }
    }
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

fn offline_file() -> (std::fs::File, PathBuf) {
    let dir = spool_path().join("offline");
    for _ in 0..100 {
        let salt = encrypt::random_salt().unwrap_or_default();
        let suffix: String = salt
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(10)
            .collect();
        let path = dir.join(format!("{}.{suffix:0<10}", now()));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => {
                // The folder's group, as a setgid smtpctl gives it: the daemon submits only
                // files of that group (offline_scan()). Root and members of the group may set
                // it; a setgid run has it already.
                if let Ok(md) = std::fs::metadata(&dir) {
                    use std::os::unix::fs::MetadataExt;
                    let _ = std::os::unix::fs::fchown(&f, None, Some(md.gid()));
                }
                return (f, path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                eprintln!(
                    "{}: cannot create temporary file {}: {}",
                    progname(),
                    path.display(),
                    strerror(&e)
                );
                not_queued(&dir)
            }
        }
    }
    eprintln!("{}: cannot create temporary file", progname());
    not_queued(&dir)
}

/// The server is down and the message cannot wait in `offline/` either: say plainly that it was
/// not taken (OpenSMTPD stops at the line above), so that the caller keeps it.
fn not_queued(dir: &std::path::Path) -> ! {
    let hint = if setgid_run() || nix::unistd::getegid().as_raw() == 0 {
        String::new()
    } else {
        format!(
            " (is {} installed setgid to the group of {}?)",
            std::env::args().next().unwrap_or_default(),
            dir.display()
        )
    };
    errx(
        EX_UNAVAILABLE,
        &format!(
            "message not queued: the server is not running and {} is not writable{}",
            dir.display(),
            hint
        ),
    )
}

pub fn sendmail_main(args: &[String]) -> i32 {
    let conn = Conn::connect();
    let mut offline = if conn.is_none() {
        Some(offline_file())
    } else {
        None
    };
    // The queue group was only for creating the offline file.
    drop_setgid();
    let fail_offline = |offline: &mut Option<(std::fs::File, PathBuf)>| {
        if let Some((_, p)) = offline.take() {
            let _ = std::fs::remove_file(p);
        }
    };
    let o = match sendmail::parse_args(args) {
        Ok(o) => o,
        Err(sendmail::OptError::Bad(m)) => {
            fail_offline(&mut offline);
            eprintln!("{}: {m}", progname());
            eprint!("{}", usage(Personality::Sendmail, &progname(), false));
            return 1;
        }
    };
    if o.queue_run {
        fail_offline(&mut offline);
        return EX_SOFTWARE;
    }
    let host = mailname();
    let ruid = nix::unistd::getuid();
    let pw = nix::unistd::User::from_uid(ruid).ok().flatten();
    let user = if o.no_getlogin {
        pw.as_ref()
            .map_or("anonymous".to_string(), |p| p.name.clone())
    } else {
        let login = std::env::var("LOGNAME").ok().filter(|s| !s.is_empty());
        match login.and_then(|l| nix::unistd::User::from_name(&l).ok().flatten()) {
            Some(p) if ruid.is_root() || p.uid == ruid => p.name,
            _ => pw
                .as_ref()
                .map_or("anonymous".to_string(), |p| p.name.clone()),
        }
    };
    let mut from = sendmail::envelope_from(o.from.as_deref(), &user, &host).unwrap_or_else(|e| {
        fail_offline(&mut offline);
        errx(1, &e.0)
    });
    let mut fromname = o.fromname.clone();
    if fromname.is_none() && o.from.is_none() {
        if let Some(p) = &pw {
            fromname = Some(sendmail::gecos_name(&p.gecos.to_string_lossy(), &p.name));
        }
    }
    let mut rcpts = Vec::new();
    for r in &o.recipients {
        sendmail::rcpt_add(&mut rcpts, r, &host);
    }
    let mut input = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut input);
    let msg = match sendmail::parse_message(&input, o.from.is_none(), o.tflag, &host) {
        Ok(m) => m,
        Err(e) => {
            fail_offline(&mut offline);
            errx(1, &e.0)
        }
    };
    if let Some(f) = &msg.from {
        from = f.clone();
    }
    rcpts.extend(msg.rcpts.iter().cloned());
    if rcpts.is_empty() {
        fail_offline(&mut offline);
        errx(EX_SOFTWARE, "no recipients");
    }
    if let Some((mut f, path)) = offline.take() {
        if let Some(bad) = offline::illegal_argument(args) {
            let _ = f.set_len(0);
            eprintln!("{}: {bad} contains illegal character", progname());
            let _ = path;
            return EX_SOFTWARE;
        }
        if f.write_all(&offline::write_offline(args, &msg.text))
            .and_then(|_| f.sync_all())
            .is_err()
        {
            let _ = f.set_len(0);
            let _ = std::fs::remove_file(&path);
            eprintln!("{}: write error", progname());
            errx(
                EX_UNAVAILABLE,
                &format!("message not queued: cannot write {}", path.display()),
            );
        }
        return EX_TEMPFAIL;
    }
    let Some(mut conn) = conn else {
        return EX_TEMPFAIL;
    };
    match conn.call(&Request::Enqueue) {
        Response::Ok => {}
        Response::Fail(_) => errx(1, "server disallowed submission request"),
        _ => errx(1, "unexpected imsg reply type"),
    }
    let date = time_to_text(now());
    let ok = smtp_dialogue(conn.0, &o, &from, fromname.as_deref(), &rcpts, &msg, &date);
    if ok {
        0
    } else {
        if let Some(p) = &pw {
            save_dead_letter(&p.dir, &msg, &from, fromname.as_deref(), &date);
        }
        EX_SOFTWARE
    }
}

/// enqueue.c's dialogue with the local server, on the protocol crate's client: `EHLO
/// localhost`, MAIL and RCPT lines with enqueue.c's bytes (trailing spaces included), DATA, the
/// message, `.`, `QUIT`; with `-v`, `>>> ` and `<<< ` echoes of every command and reply line.
/// The first refusal ends it (`command failed: LINE`), as does a reply that is not one (`bad
/// response`). A server that closes before `QUIT` is answered is a failure (enqueue.c took EOF
/// for a positive reply and could report a message it never sent).
fn smtp_dialogue(
    stream: UnixStream,
    o: &sendmail::Options,
    from: &str,
    fromname: Option<&str>,
    rcpts: &[String],
    msg: &sendmail::Message,
    date: &str,
) -> bool {
    use rsmtpd_protocol::client::{
        Client, ClientConfig, Close, Event, Outcome, Recipient, ReplyParser, Transaction,
    };
    use std::time::Instant;

    let mut w = match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return false,
    };
    let mut r = stream;
    let verbose = o.verbose;
    let mut cfg = ClientConfig::new("localhost");
    cfg.pipelining = false;
    cfg.mail_parameters = false;
    cfg.helo_fallback = false;
    cfg.rset_after_failure = false;
    cfg.strict_recipients = true;
    let mut client = Client::new(cfg, Instant::now(), false);
    let line = |l: String| l.strip_suffix("\r\n").map(str::to_string).unwrap_or(l);
    let mut tx = Transaction::new(
        from.to_string(),
        rcpts.iter().map(|r| Recipient::new(r.clone())).collect(),
    );
    tx.mail_line = Some(line(sendmail::mail_from_line(from, o)));
    tx.rcpt_lines = Some(
        rcpts
            .iter()
            .map(|r| line(sendmail::rcpt_line(r, o)))
            .collect(),
    );
    let mut tx = Some(tx);
    // What -v shows: the replies' lines as they come, read by a parser of their own.
    let mut echo = ReplyParser::new();
    let mut sent = false;
    let mut buf = vec![0u8; 8192];
    let failed = |text: &str| {
        // warnx() adds a newline to the reply's own: enqueue.c prints a blank line after.
        eprintln!("{}: command failed: {text}\n", progname());
        false
    };
    loop {
        while let Some(ev) = client.poll_event() {
            let now = Instant::now();
            match ev {
                Event::Write(b) => {
                    if verbose {
                        print!(">>> {}", String::from_utf8_lossy(&b));
                    }
                    if w.write_all(&b).is_err() {
                        return false;
                    }
                }
                Event::Ready => match tx.take() {
                    Some(t) => client.send(now, t),
                    None if sent => client.quit(now),
                    None => return false,
                },
                Event::SendBody => {
                    let data = sendmail::data_section(msg, from, fromname, date);
                    // The final ".\r\n" is the client's, echoed with -v.
                    let body = data.strip_suffix(b".\r\n").unwrap_or(&data);
                    if w.write_all(body).is_err() {
                        return false;
                    }
                    client.body_end(Instant::now());
                }
                Event::Done(outcomes) => match outcomes.into_iter().next() {
                    Some(Outcome::Delivered(_)) => sent = true,
                    Some(Outcome::TempFail(t, r)) | Some(Outcome::PermFail(t, r)) => {
                        return failed(&r.map_or(t, |r| r.last_line()));
                    }
                    None => return false,
                },
                Event::StartTls => return false,
                Event::Closed(Close::Quit { .. }) => return sent,
                Event::Closed(Close::Error { reason, reply, .. }) => {
                    if let Some(r) = reply {
                        return failed(&r.last_line());
                    }
                    if reason.starts_with("Bad response") || reason == "Input too long" {
                        eprintln!("{}: bad response", progname());
                    }
                    return false;
                }
            }
        }
        let _ = r.set_read_timeout(client.poll_timeout().map(|d| {
            d.saturating_duration_since(Instant::now())
                .max(std::time::Duration::from_millis(1))
        }));
        match r.read(&mut buf) {
            Ok(0) => client.peer_closed(),
            Ok(n) => {
                if verbose {
                    echo.push(&buf[..n]);
                    while let Some(Ok(reply)) = echo.next_reply() {
                        let last = reply.lines.len() - 1;
                        for (i, l) in reply.lines.iter().enumerate() {
                            let sep = if i < last { '-' } else { ' ' };
                            println!("<<< {:03}{sep}{l}", reply.code);
                        }
                    }
                }
                client.receive(Instant::now(), &buf[..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                client.handle_timeout(Instant::now())
            }
            Err(e) => {
                eprintln!("{}: getline: {}", progname(), strerror(&e));
                return false;
            }
        }
    }
}

fn save_dead_letter(
    home: &std::path::Path,
    msg: &sendmail::Message,
    from: &str,
    fromname: Option<&str>,
    date: &str,
) {
    let mut out = sendmail::added_headers(msg, from, fromname, date, "\n");
    if msg.noheader {
        out.push(b'\n');
    }
    out.extend_from_slice(&msg.text);
    out.push(b'\n');
    let _ = std::fs::write(home.join("dead.letter"), out);
}
