//! smtp(1): OpenSMTPD 6.8's small SMTP client (smtpc.c), which Debian's opensmtpd installs as
//! /usr/bin/smtp. It reads a message from standard input and runs one transaction for the
//! recipients against a server, printing one line per recipient (`RCPT: CMD: REPLY`), on the
//! protocol crate's client machine (the one the relay uses) over a blocking socket.
//!
//! As smtpc.c: the message is sent as read (CRLF made LF, a last newline added; the machine
//! dot-stuffs it and ends lines with CRLF); the status is 0 once a session ran its course,
//! whatever the server answered the recipients, and 1 when no address of the server could be
//! used (`smtp: no more host`) or on a usage error. Differences: `-v -v` prints the commands and
//! replies (`>>> `, `<<< `) rather than smtp_client.c's state names, which belong to its own
//! machine; the recipients' lines come together once the transaction is over; and a refused
//! recipient does not stop the others: 6.8's client stops after a refused RCPT (its
//! smtp_client_response() never sends the next command), so the accepted recipients' message is
//! never sent and nothing says so.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rsmtpd_protocol::client::{
    AuthCredentials, Client, ClientConfig, Close, Event, Outcome, Recipient, ServerReply, Tls,
    Transaction,
};

const USAGE: &str = "usage: smtp [-Chnv] [-F from] [-H helo] [-s server] [-S name] rcpt ...";

/// smtpc.c's `params.timeout`: 100 s for every step.
const TIMEOUT: Duration = Duration::from_secs(100);

struct Options {
    verify: bool,
    from: String,
    helo: String,
    servname: Option<String>,
    noaction: bool,
    server: String,
    verbose: u32,
    rcpts: Vec<String>,
}

fn progname() -> String {
    std::env::args()
        .next()
        .and_then(|a| a.rsplit('/').next().map(str::to_string))
        .unwrap_or_else(|| "smtp".into())
}

fn usage() -> ExitCode {
    eprintln!("{}", USAGE.replacen("smtp", &progname(), 1));
    ExitCode::from(1)
}

fn fatalx(text: &str) -> ExitCode {
    eprintln!("{}: {}", progname(), text);
    ExitCode::from(1)
}

/// smtpc.c's getopt() string.
#[cfg(test)]
const OPTSTRING: &str = "CF:H:S:hns:v";

/// getopt(OPTSTRING), with bundling and attached arguments.
fn parse_args(args: &[String]) -> Result<Options, ()> {
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    let mut o = Options {
        verify: true,
        from: user,
        helo: hostname,
        servname: None,
        noaction: false,
        server: "localhost".into(),
        verbose: 1,
        rcpts: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            i += 1;
            break;
        }
        let Some(flags) = a.strip_prefix('-').filter(|f| !f.is_empty()) else {
            break;
        };
        for (at, c) in flags.char_indices() {
            match c {
                'C' => o.verify = false,
                'h' => return Err(()),
                'n' => o.noaction = true,
                'v' => o.verbose += 1,
                'F' | 'H' | 'S' | 's' => {
                    let rest = &flags[at + c.len_utf8()..];
                    let value = if !rest.is_empty() {
                        rest.to_string()
                    } else {
                        i += 1;
                        match args.get(i) {
                            Some(v) => v.clone(),
                            None => {
                                eprintln!("{}: option requires an argument -- '{c}'", progname());
                                return Err(());
                            }
                        }
                    };
                    match c {
                        'F' => o.from = value,
                        'H' => o.helo = value,
                        'S' => o.servname = Some(value),
                        _ => o.server = value,
                    }
                    break;
                }
                _ => {
                    eprintln!("{}: invalid option -- '{c}'", progname());
                    return Err(());
                }
            }
        }
        i += 1;
    }
    o.rcpts = args[i.min(args.len())..].to_vec();
    Ok(o)
}

/// What `-s` says: smtpc.c's parse_server().
struct Server {
    lmtp: bool,
    /// STARTTLS policy, or None for smtps (TLS from the first byte).
    tls: Option<Tls>,
    host: String,
    port: String,
    auth: Option<AuthCredentials>,
}

fn parse_server(s: &str) -> Result<Server, String> {
    let (scheme, rest) = match s.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None => ("smtp", s),
    };
    let (creds, hostport) = match rest.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, rest),
    };
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        match inner.split_once(']') {
            Some((h, "")) => (h.to_string(), None),
            Some((h, p)) if p.starts_with(':') => (h.to_string(), Some(p[1..].to_string())),
            _ => (hostport.to_string(), None),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.to_string())),
            None => (hostport.to_string(), None),
        }
    };
    let mut port = port.filter(|p| !p.is_empty());
    let auth = match creds {
        Some(c) => match c.split_once(':') {
            Some((u, p)) => Some(AuthCredentials {
                username: u.to_string(),
                password: p.to_string(),
            }),
            None => return Err("invalid credentials".into()),
        },
        None => None,
    };
    let (lmtp, tls) = match scheme {
        "lmtp" => (true, Some(Tls::Opportunistic)),
        "lmtp+tls" => (true, Some(Tls::Required)),
        "lmtp+notls" => (true, Some(Tls::Off)),
        "smtps" => {
            port.get_or_insert_with(|| "smtps".into());
            (false, None)
        }
        "smtp" => (false, Some(Tls::Opportunistic)),
        "smtp+tls" => (false, Some(Tls::Required)),
        "smtp+notls" => (false, Some(Tls::Off)),
        other => return Err(format!("invalid url scheme {other}")),
    };
    Ok(Server {
        lmtp,
        tls,
        host,
        port: port.unwrap_or_else(|| "smtp".into()),
        auth,
    })
}

/// getaddrinfo() of host and port (a service name or a number).
fn addresses(host: &str, port: &str) -> Result<Vec<SocketAddr>, String> {
    let port = match port.parse::<u16>() {
        Ok(p) => p,
        Err(_) => service_port(port).ok_or_else(|| format!("{host}: Servname not supported"))?,
    };
    (host, port)
        .to_socket_addrs()
        .map(|a| a.collect())
        .map_err(|_| format!("{host}: Name or service not known"))
}

fn service_port(name: &str) -> Option<u16> {
    let text = std::fs::read_to_string("/etc/services").ok()?;
    text.lines().find_map(|l| {
        let mut w = l.split('#').next()?.split_whitespace();
        let svc = w.next()?;
        let (port, proto) = w.next()?.split_once('/')?;
        (proto == "tcp" && (svc == name || w.any(|alias| alias == name)))
            .then(|| port.parse().ok())
            .flatten()
    })
}

/// smtpc.c's parse_message(): CRLF to LF, a last newline added.
fn read_message(input: &mut dyn Read) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    input.read_to_end(&mut raw)?;
    let mut out = Vec::with_capacity(raw.len() + 1);
    for line in raw.split_inclusive(|&b| b == b'\n') {
        match line.strip_suffix(b"\r\n") {
            Some(l) => {
                out.extend_from_slice(l);
                out.push(b'\n');
            }
            None => {
                out.extend_from_slice(line);
                if !line.ends_with(b"\n") {
                    out.push(b'\n');
                }
            }
        }
    }
    Ok(out)
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(t) => &t.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(t) => t.flush(),
        }
    }
}

/// An I/O error as strerror() says it (no ` (os error N)`).
fn io_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

struct Run<'a> {
    o: &'a Options,
    server: &'a Server,
    tls: Arc<rustls::ClientConfig>,
    message: &'a [u8],
}

/// What one session did: whether its transaction ran (or, with -n, its session).
enum Session {
    Done,
    Failed,
}

/// Which command a reply answers, for the recipients' lines (smtp_client.c's `MAIL`, `RCPT`,
/// `DATA`, `EOM`).
#[derive(Clone, Copy, PartialEq)]
enum Cmd {
    Mail,
    Rcpt,
    Data,
    Eom,
    Other,
}

impl Run<'_> {
    fn debug(&self, text: &str) {
        if self.o.verbose > 1 {
            eprintln!("{text}");
        }
    }

    /// One session with one address: connect, TLS as asked, the transaction (or QUIT at once
    /// with -n). The failure lines are smtpc.c's smtp_failed() lines.
    fn session(&self, addr: SocketAddr) -> Session {
        self.debug(&format!(
            "trying host {} port {}...",
            addr.ip(),
            addr.port()
        ));
        let tcp = match TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("connection error: {}", io_text(&e));
                self.debug("connection closed...");
                return Session::Failed;
            }
        };
        let mut conn = Conn::Plain(tcp);
        let smtps = self.server.tls.is_none();
        if smtps {
            match self.handshake(conn) {
                Ok(c) => conn = c,
                Err(line) => {
                    eprintln!("connection error: {line}");
                    self.debug("connection closed...");
                    return Session::Failed;
                }
            }
        }
        let mut cfg = ClientConfig::new(self.o.helo.clone());
        cfg.lmtp = self.server.lmtp;
        cfg.tls = self.server.tls.unwrap_or(Tls::Off);
        cfg.auth = self.server.auth.clone();
        // One command, one reply: the recipients' lines pair them up.
        cfg.pipelining = false;
        cfg.mail_parameters = false;
        cfg.rset_after_failure = false;
        let mut client = Client::new(cfg, Instant::now(), smtps);
        let mut tx = if self.o.noaction {
            None
        } else {
            Some(Transaction::new(
                self.o.from.clone(),
                self.o.rcpts.iter().map(Recipient::new).collect(),
            ))
        };
        let mut parser = rsmtpd_protocol::client::ReplyParser::new();
        let mut expected: std::collections::VecDeque<Cmd> = [Cmd::Other].into();
        let mut replies: Vec<(Cmd, ServerReply)> = Vec::new();
        let mut in_body = false;
        let mut transacted = false;
        let mut buf = vec![0u8; 16384];
        loop {
            while let Some(ev) = client.poll_event() {
                let now = Instant::now();
                match ev {
                    Event::Write(b) => {
                        if !in_body {
                            let kind = if b.starts_with(b"MAIL FROM:") {
                                Cmd::Mail
                            } else if b.starts_with(b"RCPT TO:") {
                                Cmd::Rcpt
                            } else if b == b"DATA\r\n" {
                                Cmd::Data
                            } else {
                                Cmd::Other
                            };
                            expected.push_back(kind);
                            if self.o.verbose > 2 {
                                let line = String::from_utf8_lossy(&b);
                                eprintln!(">>> {}", line.trim_end());
                            }
                        }
                        if let Err(e) = conn.write_all(&b).and_then(|()| conn.flush()) {
                            client.io_error(&io_text(&e));
                        }
                    }
                    Event::StartTls => {
                        // The machine waits for the handshake; nothing else is read meanwhile.
                        match self.handshake(conn) {
                            Ok(c) => {
                                conn = c;
                                client.tls_established(Instant::now());
                            }
                            Err(line) => {
                                eprintln!("connection error: {line}");
                                self.debug("connection closed...");
                                return Session::Failed;
                            }
                        }
                    }
                    Event::Ready => {
                        self.debug("connection ready...");
                        match tx.take() {
                            Some(t) => client.send(now, t),
                            None => {
                                transacted |= self.o.noaction;
                                client.quit(now);
                            }
                        }
                    }
                    Event::SendBody => {
                        in_body = true;
                        expected.push_back(Cmd::Eom);
                        client.body(now, rsmtpd_protocol::client::dot_stuff(self.message));
                        client.body_end(now);
                    }
                    Event::Done(outcomes) => {
                        self.report(&outcomes, &replies);
                        self.debug("mail done...");
                        transacted = true;
                    }
                    Event::Closed(c) => {
                        if let Close::Error { reason, reply, .. } = c {
                            if !transacted {
                                eprintln!("{}", failure(&reason, reply.as_ref()));
                            }
                        }
                        self.debug("connection closed...");
                        return if transacted {
                            Session::Done
                        } else {
                            Session::Failed
                        };
                    }
                }
            }
            let deadline = client
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + TIMEOUT);
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            let _ = conn.tcp().set_read_timeout(Some(wait));
            match conn.read(&mut buf) {
                Ok(0) => client.peer_closed(),
                Ok(n) => {
                    parser.push(&buf[..n]);
                    while let Some(Ok(r)) = parser.next_reply() {
                        in_body = false;
                        if self.o.verbose > 2 {
                            let n = r.lines.len();
                            for (i, l) in r.lines.iter().enumerate() {
                                let sep = if i + 1 < n { '-' } else { ' ' };
                                eprintln!("<<< {:03}{sep}{l}", r.code);
                            }
                        }
                        let kind = expected.pop_front().unwrap_or(Cmd::Other);
                        replies.push((kind, r));
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
                Err(e) => client.io_error(&io_text(&e)),
            }
        }
    }

    /// smtp_status(): `RCPT: CMD: REPLY` for each recipient.
    fn report(&self, outcomes: &[Outcome], replies: &[(Cmd, ServerReply)]) {
        let of = |k: Cmd| replies.iter().filter(move |(c, _)| *c == k).map(|(_, r)| r);
        let mail = of(Cmd::Mail).next_back();
        let rcpts: Vec<&ServerReply> = of(Cmd::Rcpt).collect();
        let data = of(Cmd::Data).next_back();
        for (i, (to, outcome)) in self.o.rcpts.iter().zip(outcomes).enumerate() {
            let (cmd, line) = match (mail, rcpts.get(i), data) {
                (Some(m), _, _) if !m.is_positive() => ("MAIL", m.line()),
                (_, Some(r), _) if !r.is_positive() => ("RCPT", r.line()),
                (_, _, Some(d)) if d.code != 354 => ("DATA", d.line()),
                _ => (
                    "EOM",
                    match outcome {
                        Outcome::Delivered(r) => r.line(),
                        Outcome::TempFail(l, _) | Outcome::PermFail(l, _) => l.clone(),
                    },
                ),
            };
            eprintln!("{to}: {cmd}: {line}");
        }
    }

    fn handshake(&self, conn: Conn) -> Result<Conn, String> {
        let Conn::Plain(mut tcp) = conn else {
            return Err("TLS already established".into());
        };
        let name = self.o.servname.as_deref().unwrap_or(&self.server.host);
        let name = rustls::pki_types::ServerName::try_from(name.to_string())
            .map_err(|_| "Invalid server certificate".to_string())?;
        let mut tls = rustls::ClientConnection::new(self.tls.clone(), name)
            .map_err(|e| format!("TLS error: {e}"))?;
        let _ = tcp.set_read_timeout(Some(TIMEOUT));
        while tls.is_handshaking() {
            if let Err(e) = tls.complete_io(&mut tcp) {
                return Err(
                    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                        Some(rustls::Error::InvalidCertificate(_)) => {
                            "Invalid server certificate".to_string()
                        }
                        _ => io_text(&e),
                    },
                );
            }
        }
        self.debug(if self.o.verify {
            "valid certificate"
        } else {
            "certificate not checked (-C)"
        });
        Ok(Conn::Tls(Box::new(rustls::StreamOwned::new(tls, tcp))))
    }
}

/// smtp_failed()'s line for a session that ended before its transaction.
fn failure(reason: &str, reply: Option<&ServerReply>) -> String {
    if let Some(r) = reply {
        return format!("rejected by server: {}", r.line());
    }
    if reason == "TLS required but not supported by remote host" {
        return "missing feature: TLS not supported by remote host".into();
    }
    if let Some(rest) = reason.strip_prefix("IO Error: ") {
        return format!("connection error: {rest}");
    }
    if reason.starts_with("Connection ") {
        return format!("connection error: {reason}");
    }
    if reason.contains("AUTH") {
        return format!("missing feature: {reason}");
    }
    if let Some(rest) = reason.split_once(" rejected: ").map(|(_, r)| r) {
        return format!("rejected by server: {rest}");
    }
    format!("protocol error: {reason}")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Ok(o) = parse_args(&args) else {
        return usage();
    };
    let message = if o.noaction {
        Vec::new()
    } else {
        match read_message(&mut std::io::stdin().lock()) {
            Ok(m) => m,
            Err(e) => return fatalx(&format!("getline: {}", io_text(&e))),
        }
    };
    let server = match parse_server(&o.server) {
        Ok(s) => s,
        Err(line) => return fatalx(&line),
    };
    let addrs = match addresses(&server.host, &server.port) {
        Ok(a) => a,
        Err(line) => return fatalx(&line),
    };
    let check = if o.verify {
        rsmtpd::tls::client::ServerCheck::Anchors(rsmtpd::tls::verify::CA_FILE)
    } else {
        rsmtpd::tls::client::ServerCheck::None
    };
    let run = Run {
        o: &o,
        server: &server,
        tls: Arc::new(rsmtpd::tls::client::config(check, None)),
        message: &message,
    };
    for addr in addrs {
        if let Session::Done = run.session(addr) {
            run.debug("done...");
            return ExitCode::SUCCESS;
        }
    }
    // smtpc.c: with -n, having tried every address is the end; otherwise a message is lost.
    if o.noaction {
        run.debug("done...");
        return ExitCode::SUCCESS;
    }
    fatalx("no more host")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_as_smtpc() {
        let s = parse_server("smtps://u:p@[::1]:4650").expect("url");
        assert_eq!((s.host.as_str(), s.port.as_str()), ("::1", "4650"));
        assert!(s.tls.is_none() && !s.lmtp);
        assert_eq!(s.auth.map(|a| a.username), Some("u".into()));
        let s = parse_server("mx.example.org").expect("host");
        assert_eq!(
            (s.host.as_str(), s.port.as_str()),
            ("mx.example.org", "smtp")
        );
        assert_eq!(s.tls, Some(Tls::Opportunistic));
        assert_eq!(parse_server("smtps://h").expect("smtps").port, "smtps");
        assert_eq!(
            parse_server("lmtp+notls://h:24")
                .map(|s| (s.lmtp, s.tls))
                .ok(),
            Some((true, Some(Tls::Off)))
        );
        assert_eq!(
            parse_server("foo://x").err().as_deref(),
            Some("invalid url scheme foo")
        );
        assert_eq!(
            parse_server("smtp://nocolon@h").err().as_deref(),
            Some("invalid credentials")
        );
    }

    /// smtp.1, which the package installs, describes every option.
    #[test]
    fn the_man_page_has_every_option() {
        let page =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../etc/man/smtp.1"))
                .expect("etc/man/smtp.1");
        for c in OPTSTRING.chars().filter(|c| *c != ':') {
            let described = page.lines().any(|l| {
                (l.starts_with(".B ") || l.starts_with(".BI "))
                    && l.split_whitespace().nth(1) == Some(&format!("\\-{c}"))
            });
            assert!(described, "-{c} is not described in etc/man/smtp.1");
            assert!(USAGE.contains(c), "-{c} not in the usage line");
        }
    }

    #[test]
    fn the_message_is_read_as_smtpc_reads_it() {
        let m = read_message(&mut &b"a\r\nb\nc"[..]).expect("read");
        assert_eq!(m, b"a\nb\nc\n");
    }

    #[test]
    fn options_bundle_as_getopt() {
        let args: Vec<String> = ["-nvCs", "h:25", "-Fme", "rcpt"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = parse_args(&args).map_err(|_| "usage").expect("args");
        assert!(o.noaction && !o.verify);
        assert_eq!(o.verbose, 2);
        assert_eq!((o.server.as_str(), o.from.as_str()), ("h:25", "me"));
        assert_eq!(o.rcpts, ["rcpt"]);
    }
}
