//! The `sendmail` personality (enqueue.c): a message from standard input submitted to the
//! daemon, or written to `offline/` when it is down.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use rsmtpd_control::text::time_to_text;
use rsmtpd_control::*;
use rsmtpd_smtpctl::{encrypt, sendmail, usage, Personality};

use super::{
    errx, now, progname, spool_path, strerror, Conn, EX_SOFTWARE, EX_TEMPFAIL, EX_UNAVAILABLE,
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
            Ok(f) => return (f, path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => errx(
                EX_UNAVAILABLE,
                &format!(
                    "cannot create temporary file {}: {}",
                    path.display(),
                    strerror(&e)
                ),
            ),
        }
    }
    errx(EX_UNAVAILABLE, "cannot create temporary file")
}

pub fn sendmail_main(args: &[String]) -> i32 {
    let conn = Conn::connect();
    let mut offline = if conn.is_none() {
        Some(offline_file())
    } else {
        None
    };
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
            .is_err()
        {
            let _ = f.set_len(0);
            errx(EX_UNAVAILABLE, "write error");
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

fn smtp_dialogue(
    stream: UnixStream,
    o: &sendmail::Options,
    from: &str,
    fromname: Option<&str>,
    rcpts: &[String],
    msg: &sendmail::Message,
    date: &str,
) -> bool {
    let mut w = match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return false,
    };
    let mut r = BufReader::new(stream);
    let verbose = o.verbose;
    let responses = |r: &mut BufReader<UnixStream>| -> bool {
        loop {
            let mut line = Vec::new();
            match r.read_until(b'\n', &mut line) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) => {
                    eprintln!("{}: getline: {}", progname(), strerror(&e));
                    return false;
                }
            }
            if line.ends_with(b"\r\n") {
                line.truncate(line.len() - 2);
                line.push(b'\n');
            }
            if line.len() < 4 {
                eprintln!("{}: bad response", progname());
                return false;
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            if verbose {
                print!("<<< {text}");
            }
            if line[3] == b'-' {
                continue;
            }
            if line[0] != b'2' && line[0] != b'3' {
                // warnx() adds a newline to the reply's own: enqueue.c prints a blank line after.
                eprintln!("{}: command failed: {text}", progname());
                return false;
            }
            return true;
        }
    };
    let send = |w: &mut UnixStream, s: &[u8], echo: bool| -> bool {
        if echo {
            print!(">>> {}", String::from_utf8_lossy(s));
        }
        w.write_all(s).is_ok()
    };
    if !responses(&mut r) {
        return false;
    }
    if !send(&mut w, b"EHLO localhost\r\n", verbose) || !responses(&mut r) {
        return false;
    }
    if !send(
        &mut w,
        sendmail::mail_from_line(from, o).as_bytes(),
        verbose,
    ) || !responses(&mut r)
    {
        return false;
    }
    for rcpt in rcpts {
        if !send(&mut w, sendmail::rcpt_line(rcpt, o).as_bytes(), verbose) || !responses(&mut r) {
            return false;
        }
    }
    if !send(&mut w, b"DATA\r\n", verbose) || !responses(&mut r) {
        return false;
    }
    let data = sendmail::data_section(msg, from, fromname, date);
    let (body, dot) = data.split_at(data.len() - 3);
    if !send(&mut w, body, false) || !send(&mut w, dot, verbose) || !responses(&mut r) {
        return false;
    }
    if !send(&mut w, b"QUIT\r\n", verbose) || !responses(&mut r) {
        return false;
    }
    true
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
