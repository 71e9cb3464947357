//! `smtpctl spf walk` (spfwalk.c): the walk of `rsmtpd_smtpctl::spfwalk` driven through DNS.

use std::io::{Read, Write};

use super::{errx, progname};

/// smtpctl.c's droppriv(): as root, become the daemon's unprivileged user before asking DNS.
fn drop_privileges() {
    use nix::unistd::{geteuid, setgroups, setresgid, setresuid, User};
    if !geteuid().is_root() {
        return;
    }
    let users = rsmtpd::sys::system::SMTPD_USERS;
    let Some(pw) = users.iter().find_map(|n| User::from_name(n).ok().flatten()) else {
        errx(1, &format!("unknown user {}", users[0]));
    };
    if let Err(e) = setgroups(&[pw.gid])
        .and_then(|()| setresgid(pw.gid, pw.gid, pw.gid))
        .and_then(|()| setresuid(pw.uid, pw.uid, pw.uid))
    {
        errx(1, &format!("cannot drop privileges: {}", e.desc()));
    }
}

/// The system's resolver (/etc/resolv.conf; 127.0.0.1 without one, as asr) asking DNS only:
/// spfwalk.c's res_query_async() does not read /etc/hosts.
fn spf_resolver() -> Option<hickory_resolver::TokioResolver> {
    use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    let mut builder = hickory_resolver::TokioResolver::builder_tokio().unwrap_or_else(|_| {
        let mut cfg = ResolverConfig::default();
        cfg.add_name_server(NameServerConfig::udp_and_tcp(
            std::net::Ipv4Addr::LOCALHOST.into(),
        ));
        hickory_resolver::TokioResolver::builder_with_config(cfg, TokioRuntimeProvider::default())
    });
    builder.options_mut().use_hosts_file = ResolveHosts::Never;
    builder.build().ok()
}

/// A name of the walk as a query name: its bytes as labels, always absolute (res_query does
/// not apply the search list); None when DNS cannot carry it (an empty label, one longer than
/// 63 bytes), which asr refuses too.
fn spf_query_name(name: &[u8]) -> Option<hickory_resolver::proto::rr::Name> {
    use hickory_resolver::proto::rr::Name;
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty() {
        return Some(Name::root());
    }
    Name::from_labels(name.split(|&b| b == b'.')).ok()
}

/// `spf walk`: the domains on standard input, their SPF records walked through DNS. The
/// lookups run at once and their answers are handled as they come, as spfwalk.c's event loop
/// does (so the order of the lines is the order of the answers); what cannot be resolved is
/// skipped, spfwalk.c's "best effort".
pub fn spf_walk() -> i32 {
    use hickory_resolver::proto::rr::{RData, RecordType};
    use rsmtpd_smtpctl::spfwalk::{address_line, dname, Kind, Walk};
    drop_privileges();
    let mut walk = Walk::default();
    let mut input = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut input);
    for line in input.split(|&b| b == b'\n') {
        walk.start(line);
    }
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        errx(1, "cannot start the resolver");
    };
    rt.block_on(async {
        let resolver = spf_resolver();
        let mut inflight = tokio::task::JoinSet::new();
        let out = std::io::stdout();
        loop {
            for w in std::mem::take(&mut walk.warnings) {
                eprintln!("{}: {w}", progname());
            }
            while let Some(l) = walk.pending.pop_front() {
                let (Some(r), Some(name)) = (resolver.clone(), spf_query_name(&l.name)) else {
                    continue;
                };
                let rtype = match l.kind {
                    Kind::Txt => RecordType::TXT,
                    Kind::Mx => RecordType::MX,
                    Kind::A => RecordType::A,
                    Kind::Aaaa => RecordType::AAAA,
                };
                inflight.spawn(async move { (r.lookup(name, rtype).await, l) });
            }
            let Some(done) = inflight.join_next().await else {
                break;
            };
            // Best effort, as spfwalk.c: a failed lookup is skipped.
            let Ok((Ok(answer), l)) = done else {
                continue;
            };
            let mut lines = Vec::new();
            for rec in answer.answers() {
                match (&rec.data, l.kind) {
                    (RData::TXT(txt), Kind::Txt) => {
                        let strings: Vec<&[u8]> = txt.txt_data.iter().map(|s| &s[..]).collect();
                        lines.extend(walk.txt(&dname(rec.name.iter()), &strings));
                    }
                    (RData::MX(mx), Kind::Mx) => walk.mx(&l, &dname(mx.exchange.iter())),
                    (RData::A(a), Kind::A) => lines.push(address_line(&a.0.into(), &l)),
                    (RData::AAAA(a), Kind::Aaaa) => lines.push(address_line(&a.0.into(), &l)),
                    _ => {}
                }
            }
            let mut o = out.lock();
            for line in lines {
                let _ = writeln!(o, "{line}");
            }
            let _ = o.flush();
        }
    });
    0
}
