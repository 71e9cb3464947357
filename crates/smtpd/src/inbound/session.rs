//! The async shell around one SMTP session: it moves bytes between the socket and the pure
//! state machine of the protocol crate, and answers the machine's requests with the server's
//! I/O (DNS, rules and expansion, the queue).
//!
//! It reads only when the machine asks for input, which is how OpenSMTPD's refusal of
//! pipelining comes out the same; and it writes every reply queued so far before it starts slow
//! work (a DNS lookup, an fsync), so a client never waits on a reply that is already decided.
//!
//! The connection is a [`Conn`]: plaintext until the machine asks for TLS (STARTTLS, or smtps
//! before the banner), then TLS over the same socket. Nothing read before the handshake is
//! read again inside TLS: the machine refuses bytes pipelined after STARTTLS (RFC 3207 §4.2,
//! the command injection of CVE-2011-0411) before it asks for the handshake.

use std::sync::Arc;
use std::time::Duration;

use rsmtpd_config::{AuthMode, TlsMode};
use rsmtpd_protocol::received::{PeerAddr, PeerCert};
use rsmtpd_protocol::server::{
    envelope_log_line, CloseReason, ConnectionInfo, Event, LogEvent, MessageOpened, Request,
    Session, SessionConfig,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::inbound::filter_link::{link_connect_params, room, Broken, DataOut, FilterLink};
use crate::inbound::session_io::{Client, SessionIo};
use crate::listener::Listening;
use crate::routing::lookup::Lookup;
use crate::server::{Running, Server};
use crate::sys::log::{self, Trace};
use crate::tls::verify::CertCheck;
use crate::tls::Conn;
use rsmtpd_protocol::Reply;

/// Reads are bounded: a client cannot make a session buffer more than this per read.
const READ_CHUNK: usize = 16 * 1024;

/// A session on the local socket listener (sendmail's enqueue, bounces): the client is this
/// host, named `rdns` (the hostname for sendmail, "localhost" for OpenSMTPD's bounce session).
pub async fn run_local<S>(server: Arc<Server>, stream: S, rdns: String)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let listen = server.local_listen.clone();
    let begun = begin(&listen);
    let client = Client {
        peer: PeerAddr::Local,
        rdns: Some(rdns),
        fcrdns: true,
        sockets: None,
    };
    run(server, listen, stream, client, begun).await
}

/// A session from its first moment, before the client is looked up in the DNS: its id, and
/// the pointer its `-T smtp` lines show, whose first line OpenSMTPD prints at accept, before
/// the lookup (the others come from the machine, as [`Event::Trace`]).
pub struct Begun {
    id: u64,
    ptr: String,
}

/// Starts a session on `listen`: draws its id and traces `connected to listener`.
pub fn begin(listen: &Listening) -> Begun {
    let id: u64 = rand::random();
    let ptr = pointer(id);
    if log::tracing(Trace::Smtp) {
        log::trace(
            Trace::Smtp,
            format_args!(
                "smtp: {}: connected to listener {} [hostname={}, port={}, tag={}]",
                ptr,
                pointer(listen.port as u64),
                listen.hostname,
                listen.port,
                // The listener's tag is a char array in OpenSMTPD: empty, never NULL.
                listen.tag.as_deref().unwrap_or("")
            ),
        );
    }
    Begun { id, ptr }
}

/// Runs one session to its end. Never panics on client input; I/O errors end the session with
/// OpenSMTPD's `io-error` reason.
pub async fn run<S>(
    server: Arc<Server>,
    listen: Arc<Listening>,
    stream: S,
    client: Client,
    begun: Begun,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Begun { id, ptr } = begun;
    let _counted = server.stats.session(&client.peer);
    let rdns_text = client.rdns.clone().unwrap_or_else(|| "<unknown>".into());
    log::info(&format!(
        "{:016x} smtp connected address={} host={}",
        id,
        client.peer.text(),
        rdns_text
    ));
    if listen.filter.is_some() {
        log::trace(
            Trace::Filters,
            format_args!("{:016x} filters session-begin", id),
        );
    }
    // The session's side of its filter processes; None while one of them is down (or without
    // filters): a filtered session then gets 421 at its first phase, connect.
    // The configuration in service now is the session's to its end, whatever a reload does.
    let running = server.running();
    let mut link = listen.filter.as_deref().and_then(|name| {
        let procs = server.procs.get_or_init(Default::default);
        FilterLink::open(&running.config, procs, name, id).ok()
    });
    if let Some(l) = link.as_mut() {
        l.report(
            "link-connect",
            &link_connect_params(&rdns_text, client.fcrdns, client.sockets),
        );
    }
    let cfg = session_config(&running.config, &listen);
    let conn = ConnectionInfo {
        peer: client.peer,
        rdns: rdns_text,
        smtpname: banner_name(&running, &listen),
        local_enqueue: matches!(client.peer, PeerAddr::Local),
    };
    let mut sess = Session::new(cfg, conn);
    let mut tx = SessionIo::new(id, client, listen.clone(), running);
    let mut conn = Conn::Plain(stream);
    let mut out: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        while let Some(ev) = sess.poll_event() {
            match ev {
                Event::Reply(r) => out.extend_from_slice(&r.to_bytes()),
                Event::Trace(t) => log::trace(Trace::Smtp, format_args!("{}", t.line(&ptr))),
                Event::Log(l) => {
                    log::info(&l.line(id));
                    if let LogEvent::Message { sender, .. } = &l {
                        for (evpid, rcpt) in tx.envelopes() {
                            log::info(&envelope_log_line(id, *evpid, sender, rcpt));
                        }
                    }
                }
                Event::Report(r) => {
                    if let Some(l) = link.as_mut() {
                        l.report(r.event, &r.params);
                    }
                }
                Event::MessageData(d) => {
                    if tx.write(&d).is_err() {
                        sess.message_write_failed();
                    }
                }
                // A line for the chain: into its first data-line member, or straight back when
                // it has none (builtin members pass lines on).
                Event::FilterData(line) => {
                    let back = match link.as_mut() {
                        Some(l) => l.data_line(line),
                        None => Ok(Some(line)),
                    };
                    match back {
                        Ok(Some(line)) => {
                            if sess.filtered_line(&line).is_err() {
                                sess.io_error("internal error");
                            }
                        }
                        Ok(None) => {}
                        // Nothing of a message half-filtered is queued.
                        Err(_) => sess.fail_temporarily(),
                    }
                }
                Event::FilterDataEnd => {
                    let now = match link.as_mut() {
                        Some(l) => l.data_end(),
                        None => Ok(true),
                    };
                    match now {
                        Ok(true) => {
                            if sess.filtered_end().is_err() {
                                sess.io_error("internal error");
                            }
                        }
                        // The chain's "." comes later (DataOut::End).
                        Ok(false) => {}
                        Err(_) => sess.fail_temporarily(),
                    }
                }
                Event::Rollback { msgid } => {
                    if let Some(l) = link.as_mut() {
                        l.data_close();
                    }
                    server.rollback(&mut tx, msgid)
                }
                Event::StartTls => {
                    // The 220 goes out in plaintext, then the handshake.
                    if flush(&mut conn, &mut out).await.is_err() {
                        let _ = sess.tls_failed(CloseReason::IoError("write error".into()));
                        continue;
                    }
                    start_tls(&listen, &mut conn, &mut sess, &mut link, id).await;
                }
                Event::Request(req) => {
                    if flush(&mut conn, &mut out).await.is_err() {
                        sess.io_error("write error");
                        continue;
                    }
                    answer(&server, &mut sess, &mut tx, &mut link, req).await;
                }
                Event::Close(reason) => {
                    let _ = flush(&mut conn, &mut out).await;
                    let _ = conn.shutdown().await;
                    server.rollback_open(&mut tx);
                    log::info(&reason.log_line(id));
                    if let Some(mut l) = link.take() {
                        l.report("link-disconnect", b"");
                    }
                    if tx.listen.filter.is_some() {
                        log::trace(
                            Trace::Filters,
                            format_args!("{:016x} filters session-end", id),
                        );
                    }
                    return;
                }
            }
        }
        if flush(&mut conn, &mut out).await.is_err() {
            sess.io_error("write error");
            continue;
        }
        let timeout = sess.timeout().unwrap_or(Duration::from_secs(300));
        if let Some(l) = link.as_mut().filter(|l| l.streaming()) {
            // A message is streaming through the chain: listen to it as well as to the
            // client, and stop reading the client while a filter's queue is full.
            let read = sess.wants_read();
            let congested = l.congested();
            let hops = if congested { l.hops() } else { Vec::new() };
            tokio::select! {
                r = conn.read(&mut buf), if read && !congested => match r {
                    Ok(0) => sess.peer_closed(),
                    Ok(n) => sess.receive(&buf[..n]),
                    Err(e) => sess.io_error(&rsmtpd_config::lexer::strerror(&e)),
                },
                _ = room(hops), if read && congested => {}
                d = l.data_event() => match d {
                    DataOut::Line(line) => {
                        if sess.filtered_line(&line).is_err() {
                            sess.io_error("internal error");
                        }
                    }
                    DataOut::End => {
                        if sess.filtered_end().is_err() {
                            sess.io_error("internal error");
                        }
                    }
                    DataOut::Failed => sess.fail_temporarily(),
                },
                // No progress from the client nor the chain for the session timeout.
                _ = tokio::time::sleep(timeout) => {
                    l.report("timeout", b"");
                    sess.timed_out();
                }
            }
            continue;
        }
        if !sess.wants_read() {
            // The machine neither asks for input nor has anything to say: it is waiting for
            // nothing, which would be a bug; end the session rather than spin.
            sess.io_error("internal error");
            continue;
        }
        match tokio::time::timeout(timeout, conn.read(&mut buf)).await {
            Err(_) => {
                if let Some(l) = link.as_mut() {
                    l.report("timeout", b"");
                }
                sess.timed_out()
            }
            Ok(Ok(0)) => sess.peer_closed(),
            Ok(Ok(n)) => sess.receive(&buf[..n]),
            Ok(Err(e)) => sess.io_error(&rsmtpd_config::lexer::strerror(&e)),
        }
    }
}

/// Runs the handshake the machine asked for and tells it the outcome, logging as OpenSMTPD
/// does: `smtp tls ciphers=...` once the handshake is done, then, on `verify` listeners, the
/// client certificate's check (`smtp_cert_verify()`).
async fn start_tls<S>(
    listen: &Listening,
    conn: &mut Conn<S>,
    sess: &mut Session,
    link: &mut Option<FilterLink>,
    id: u64,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // smtp_cert_init(): no pki for this listener (none named, none for its hostname, no `*`).
    let Some(tls) = listen.tls.as_ref().filter(|t| t.default_pki.is_some()) else {
        let _ = sess.tls_failed(CloseReason::CaFailure);
        return;
    };
    let timeout = sess.timeout().unwrap_or(Duration::from_secs(300));
    match tokio::time::timeout(timeout, conn.start_tls(&tls.acceptor)).await {
        Err(_) => {
            let _ = sess.tls_failed(CloseReason::Timeout);
        }
        Ok(Err(e)) => {
            let reason = crate::tls::names::handshake_error(&e);
            let _ = sess.tls_failed(CloseReason::IoError(reason));
        }
        Ok(Ok(())) => {
            let Some(c) = conn.tls() else {
                let _ = sess.tls_failed(CloseReason::IoError("internal error".into()));
                return;
            };
            let check = tls.check_client(c);
            let presented = c.peer_certificates().is_some_and(|p| !p.is_empty());
            let peer_cert = match check {
                Some(CertCheck::Ok) => PeerCert::Verified,
                _ if presented => PeerCert::Unverified,
                _ => PeerCert::None,
            };
            let info = crate::tls::info(c, peer_cert);
            log::info(&format!(
                "{:016x} smtp tls ciphers={}",
                id,
                info.ciphers_text()
            ));
            // smtp_io(IO_TLSREADY): reported before the client certificate is checked.
            if let Some(l) = link.as_mut() {
                l.report("link-tls", info.ciphers_text().as_bytes());
            }
            match check {
                Some(CertCheck::Ok) => {
                    log::info(&format!(
                        "{:016x} smtp client-cert-check result=\"success\"",
                        id
                    ));
                }
                Some(failed) => {
                    let _ = sess.tls_failed(CloseReason::CertCheck(failed.reason().into()));
                    return;
                }
                None => {}
            }
            let _ = sess.tls_established(info);
        }
    }
}

/// A made-up pointer for trace lines, where OpenSMTPD prints its session's address.
fn pointer(n: u64) -> String {
    format!("0x{:012x}", n & 0xffff_ffff_ffff)
}

async fn flush<W: AsyncWrite + Unpin>(wr: &mut W, out: &mut Vec<u8>) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    wr.write_all(out).await?;
    wr.flush().await?;
    out.clear();
    Ok(())
}

/// `hostnames <table>`: the name for the listener's own address (smtp_lookup_servername()
/// looks up the listener's address, not the connection's). Not found or a failed lookup keeps
/// the listener's hostname, with OpenSMTPD's warning for a failure.
fn banner_name(running: &Running, l: &Listening) -> Option<String> {
    let table = l.hostnames.as_deref()?;
    let ip = l.addr?.ip();
    match running.tables.load().addrname(table, ip) {
        Lookup::Found(name) if !name.is_empty() => Some(name),
        Lookup::NotFound => None,
        _ => {
            log::warn(&format!(
                "warn: failure during helo lookup {}:{}",
                table,
                PeerAddr::Inet(ip).text()
            ));
            None
        }
    }
}

fn session_config(conf: &rsmtpd_config::Config, l: &Listening) -> SessionConfig {
    let o = &conf.options;
    SessionConfig {
        hostname: l.hostname.clone(),
        max_message_size: o.max_message_size,
        max_recipients: usize::try_from(o.max_rcpt).unwrap_or(usize::MAX),
        max_mails: usize::try_from(o.max_mails).unwrap_or(usize::MAX),
        dsn: !l.no_dsn,
        filtered: l.filter.is_some(),
        // As OpenSMTPD (F_FILTERED): every message of a filtered listener goes through the
        // chain's data pipe, builtin-only chains included, which is what its logged sizes count.
        filter_data: l.filter.is_some(),
        mask_source: l.mask_src,
        received_auth: l.received_auth,
        add_missing_headers: l.local || l.port == 587,
        trace: log::tracing(Trace::Smtp),
        starttls: matches!(
            l.tls_mode,
            Some(TlsMode::StartTls) | Some(TlsMode::StartTlsRequire)
        ),
        tls_required: l.tls_mode == Some(TlsMode::StartTlsRequire),
        smtps: l.tls_mode == Some(TlsMode::Smtps),
        auth: l.auth.is_some(),
        auth_required: matches!(l.auth, Some(AuthMode::Required(_))),
        check_senders: l.senders.is_some(),
        masquerade: l.senders.is_some() && l.masquerade,
    }
}

/// Answers one request of the machine with the server's I/O.
async fn answer(
    server: &Server,
    sess: &mut Session,
    tx: &mut SessionIo,
    link: &mut Option<FilterLink>,
    req: Request,
) {
    use rsmtpd_protocol::server::{FilterDecision, LookupResult};
    // An answer the machine refuses means the shell and the machine disagree about the state;
    // the session cannot go on safely.
    let r = match req {
        Request::Filter { phase, param } => {
            // A filter that is down or died holds nothing: the session ends with a temporary
            // failure, and its message (if any) is rolled back, never queued half-filtered.
            let down = || FilterDecision::Disconnect(Reply::temporary_failure().text());
            match link.as_mut() {
                None => sess.filter_result(down()),
                Some(l) => match server.filter(tx, l, phase, &param).await {
                    Ok(d) => sess.filter_result(d),
                    Err(Broken::Failed) => sess.filter_result(down()),
                    Err(Broken::Timeout) => {
                        l.report("timeout", b"");
                        sess.timed_out();
                        Ok(())
                    }
                },
            }
        }
        Request::CheckSender { username, sender } => {
            let r = match &tx.listen.senders {
                Some(table) => crate::auth::check_sender(
                    &tx.running.tables.load(),
                    table,
                    &username,
                    &sender,
                    tx.running.config.options.sub_addr_delim,
                ),
                None => LookupResult::Ok,
            };
            sess.sender_result(r)
        }
        Request::CreateMessage => sess.message_created(server.create_message(tx).map_err(|_| ())),
        Request::CheckRecipient { msgid, rcpt } => {
            let mail = sess.mail_from().cloned();
            let facts = tx.facts(sess);
            let before = tx.envelope_count();
            let res = server.recipient(tx, &facts, msgid, mail.as_ref(), &rcpt);
            if let (Some(l), rsmtpd_protocol::server::RecipientResult::Accepted) =
                (link.as_mut(), &res)
            {
                for evpid in tx.envelope_ids_from(before) {
                    l.report(
                        "tx-envelope",
                        format!("{msgid:08x}|{evpid:016x}").as_bytes(),
                    );
                }
            }
            sess.recipient_result(res)
        }
        Request::OpenMessage { msgid } => {
            // The chain's stream opens with the message file; a process of it that is down
            // fails the message as a failed socketpair does (421 Temporary Error).
            let streams = link.as_mut().is_none_or(|l| l.data_begin());
            let opened = server
                .open_message(tx, msgid)
                .map_err(|_| ())
                .and(if streams { Ok(()) } else { Err(()) })
                .map(|_| MessageOpened {
                    date: crate::server::rfc5322_date(),
                    message_id_uid: rand::random(),
                });
            sess.message_opened(opened)
        }
        Request::CommitMessage { msgid, .. } => {
            if let Some(l) = link.as_mut() {
                l.data_close();
            }
            let r = server.commit(tx, msgid).await.map_err(|_| ());
            sess.commit_result(r)
        }
        Request::Authenticate { username, password } => {
            let r = match tx.listen.auth_table() {
                Some(table) => {
                    crate::auth::authenticate(&tx.running.tables, table, &username, password).await
                }
                None => crate::auth::authenticate_system(&username, password).await,
            };
            if r == LookupResult::PermFail {
                let pause = crate::auth::failure_pause();
                log::trace(
                    Trace::Smtp,
                    format_args!(
                        "smtp: timing-attack protection triggered, will defer answer for {} microseconds",
                        pause.as_micros()
                    ),
                );
                tokio::time::sleep(pause).await;
            }
            if r == LookupResult::Ok {
                tx.filter_username = Some(String::from_utf8_lossy(&username).into_owned());
            }
            sess.auth_result(r)
        }
    };
    if r.is_err() {
        sess.io_error("internal error");
    }
}
