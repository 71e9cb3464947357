//! smtpctl's output formats (smtpctl.c, to.c).

use rsmtpd_control::{flags, Agent, EnvelopeInfo, RunState, Source, StatValue, Status};

pub use rsmtpd_control::text::duration_to_text;

/// `N envelope(s) VERB` with smtpctl's plural rule (`> 1`).
pub fn envelopes_done(n: u64, verb: &str) -> String {
    format!("{n} envelope{} {verb}\n", if n > 1 { "s" } else { "" })
}

/// `discover`'s line (its plural rule is `!= 1`).
pub fn envelopes_discovered(n: u64) -> String {
    format!("{n} envelope{} discovered\n", if n != 1 { "s" } else { "" })
}

/// strnvis(3) with no flags: what `show queue` does to the error line.
pub fn vis(s: &str) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x0b => out.push_str("\\v"),
            0x0c => out.push_str("\\f"),
            b' ' => out.push(' '),
            0x21..=0x7e => out.push(b as char),
            _ => {
                let (meta, c) = if b & 0x80 != 0 {
                    ("M", b & 0x7f)
                } else {
                    ("", b)
                };
                out.push('\\');
                out.push_str(meta);
                if c == 0x7f {
                    out.push_str("^?");
                } else if c < 0x20 {
                    out.push('^');
                    out.push((c + b'@') as char);
                } else {
                    out.push('-');
                    out.push(c as char);
                }
            }
        }
    }
    out
}

/// One `show queue` line. `now` is the client's clock; `online` false prints `offline|`.
pub fn queue_line(e: &EnvelopeInfo, now: i64, online: bool) -> String {
    let status: Vec<&str> = flags::NAMES
        .iter()
        .filter(|(bit, _)| e.flags & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    let runstate = if !online {
        "offline|".to_string()
    } else {
        match e.state {
            RunState::Pending { nexttry } => format!("pending|{}", nexttry - now),
            RunState::Inflight => format!("inflight|{}", now - e.lasttry),
            RunState::Invalid => "invalid|".into(),
        }
    };
    let src = match e.source {
        Source::Local => "local",
        Source::Inet4 => "inet4",
        Source::Inet6 => "inet6",
        Source::Unknown => "?",
    };
    let agent = match e.agent {
        Agent::Mda => "mda",
        Agent::Mta => "mta",
        Agent::Bounce => "bounce",
        Agent::Unknown => "?",
    };
    format!(
        "{:016x}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}\n",
        e.id,
        src,
        agent,
        status.join(","),
        e.sender,
        e.rcpt,
        e.dest,
        e.creation,
        e.creation + e.ttl,
        e.lasttry,
        e.retry,
        runstate,
        vis(&e.errorline)
    )
}

/// `show stats`: sorted `key=value` lines, `uptime` and `uptime.human` from the start time.
pub fn stats(started: i64, entries: &[(String, StatValue)], now: i64) -> String {
    let mut all: Vec<(String, Option<&StatValue>)> =
        entries.iter().map(|(k, v)| (k.clone(), Some(v))).collect();
    all.push(("uptime".into(), None));
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    for (k, v) in all {
        match v {
            None => {
                let d = now - started;
                out.push_str(&format!(
                    "uptime={d}\nuptime.human={}\n",
                    duration_to_text(d)
                ));
            }
            Some(StatValue::Counter(n)) | Some(StatValue::Timestamp(n)) => {
                out.push_str(&format!("{k}={n}\n"))
            }
        }
    }
    out
}

/// `show status`.
pub fn status(s: &Status) -> String {
    let w = |p: bool| if p { "paused" } else { "running" };
    format!(
        "MDA {}\nMTA {}\nSMTP {}\n",
        w(s.mda_paused),
        w(s.mta_paused),
        w(s.smtp_paused)
    )
}

/// `monitor`'s header (every 25 lines).
pub const MONITOR_HEADER: &str =
    "--- client ---  -- envelope --   ---- relay/delivery --- ------- misc -------\n\
curr conn disc  curr  enq  deq   ok tmpfail prmfail loop expire remove bounce\n";

/// One `monitor` line from two successive digests.
pub fn monitor_line(d: &rsmtpd_control::Digest, last: &rsmtpd_control::Digest) -> String {
    let s = |a: u64, b: u64| a.wrapping_sub(b);
    format!(
        "{:4} {:4} {:4}  {:4} {:4} {:4} {:4}    {:4}    {:4} {:4}   {:4}   {:4}   {:4}\n",
        s(d.clt_connect, d.clt_disconnect),
        s(d.clt_connect, last.clt_connect),
        s(d.clt_disconnect, last.clt_disconnect),
        s(d.evp_enqueued, d.evp_dequeued),
        s(d.evp_enqueued, last.evp_enqueued),
        s(d.evp_dequeued, last.evp_dequeued),
        s(d.dlv_ok, last.dlv_ok),
        s(d.dlv_tempfail, last.dlv_tempfail),
        s(d.dlv_permfail, last.dlv_permfail),
        s(d.dlv_loop, last.dlv_loop),
        s(d.evp_expired, last.evp_expired),
        s(d.evp_removed, last.evp_removed),
        s(d.evp_bounce, last.evp_bounce),
    )
}

/// Reads an envelope file (as `show queue` does when the daemon is down): the fields it prints.
/// `None` when the text is not an envelope.
pub fn offline_envelope(id: u64, text: &str) -> Option<EnvelopeInfo> {
    let mut e = EnvelopeInfo {
        id,
        source: Source::Unknown,
        agent: Agent::Mda,
        flags: 0,
        sender: "@".into(),
        rcpt: "@".into(),
        dest: "@".into(),
        creation: 0,
        ttl: 0,
        lasttry: 0,
        retry: 0,
        state: RunState::Invalid,
        errorline: String::new(),
    };
    let mut version = false;
    for line in text.split_inclusive('\n') {
        let line = line.strip_suffix('\n')?;
        let (k, v) = line.split_once(':')?;
        let v = v.trim_matches(|c| c == ' ' || c == '\t');
        let num = || v.parse::<i64>().ok();
        match k.to_ascii_lowercase().as_str() {
            "version" => version = v == "3",
            "type" => {
                e.agent = match v {
                    "mda" => Agent::Mda,
                    "mta" => Agent::Mta,
                    "bounce" => Agent::Bounce,
                    _ => return None,
                }
            }
            "sockaddr" => {
                e.source = if v == "local" {
                    Source::Local
                } else if v.parse::<std::net::Ipv4Addr>().is_ok() {
                    Source::Inet4
                } else if v.parse::<std::net::Ipv6Addr>().is_ok() {
                    Source::Inet6
                } else {
                    Source::Unknown
                }
            }
            "sender" => e.sender = addr(v),
            "rcpt" => e.rcpt = addr(v),
            "dest" => e.dest = addr(v),
            "ctime" => e.creation = num()?,
            "ttl" => e.ttl = num()?,
            "last-try" => e.lasttry = num()?,
            "retry" => e.retry = num()? as u32,
            "errorline" => e.errorline = v.to_string(),
            "flags" => {
                for f in v.split([',', ' ']) {
                    e.flags |= match f {
                        "authenticated" => flags::AUTH,
                        "bounce" => flags::BOUNCE,
                        "internal" => flags::INTERNAL,
                        _ => 0,
                    }
                }
            }
            _ => {}
        }
    }
    version.then_some(e)
}

fn addr(v: &str) -> String {
    if v.contains('@') {
        v.to_string()
    } else {
        format!("{v}@")
    }
}
