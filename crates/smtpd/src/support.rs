//! What this build implements: the parts of the smtpd.conf language that the parser accepts (it
//! reads the whole 6.8 grammar) but the daemon does not honour yet.
//!
//! A config the daemon starts with is a promise: a listener with `tls` that served plain text, or
//! a `relay` action that accepted mail it could never send, would let an administrator believe
//! they had what they do not. So `smtpd` refuses to start on any use of a feature in
//! [`NOT_YET`], one line per use naming the file, the line and the feature, and `smtpd -n` (whose
//! verdict and lines stay OpenSMTPD's, so that `smtpd -n && systemctl restart smtpd` behaves as
//! before) prints the same lines as warnings after its own.
//!
//! [`uses`] finds every use of every [`Feature`], implemented or not, and stays as it is; a change
//! that implements a feature removes its entry from [`NOT_YET`], in the same commit as the test
//! that proves it works (docs/compatibility.md lists where each keyword stands).

use rsmtpd_config::{
    Config, Decl, FilterKind, ListenOpt, Method, Position, TableSource, TlsMode, Written,
};

macro_rules! features {
    ($($(#[$doc:meta])* $variant:ident => $name:expr,)*) => {
        /// A part of the language this daemon may lack. Each names what an administrator wrote.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Feature {
            $($(#[$doc])* $variant,)*
        }

        /// Every feature, for documentation and tests.
        pub const ALL: &[Feature] = &[$(Feature::$variant,)*];

        impl Feature {
            /// The feature as the refusal names it (`listener option "tls"`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Feature::$variant => $name,)*
                }
            }
        }
    };
}

// Each feature and the words its refusal uses.
features! {
    /// `listen on ... tls`: STARTTLS.
    ListenerTls => "listener option \"tls\"",
    /// `listen on ... tls-require [verify]`.
    ListenerTlsRequire => "listener option \"tls-require\"",
    /// `listen on ... smtps [verify]`: TLS from the first byte.
    ListenerSmtps => "listener option \"smtps\"",
    /// `listen on ... pki NAME`.
    ListenerPki => "listener option \"pki\"",
    /// `listen on ... ca NAME`.
    ListenerCa => "listener option \"ca\"",
    /// `listen on ... auth [<creds>]`.
    ListenerAuth => "listener option \"auth\"",
    /// `listen on ... auth-optional [<creds>]`.
    ListenerAuthOptional => "listener option \"auth-optional\"",
    /// `listen on ... auth` / `auth-optional` without a table: system users (PAM in Debian's
    /// OpenSMTPD).
    ListenerAuthSystem => "listener auth without a credentials table (system users)",
    /// `listen on ... senders <t> [masquerade]`: checked only for authenticated sessions.
    ListenerSenders => "listener option \"senders\"",
    /// `listen on ... hostnames <t>`: the banner name per local address.
    ListenerHostnames => "listener option \"hostnames\"",
    /// `listen on ... proxy-v2`: the PROXY protocol header.
    ListenerProxyV2 => "listener option \"proxy-v2\"",
    /// `smtp ciphers "..."`: the TLS cipher list.
    SmtpCiphers => "option \"smtp ciphers\"",
    /// `action NAME relay [...]`: delivery to other hosts (MX, `host`, `domain`...).
    RelayAction => "action method \"relay\"",
    /// `relay ... tls [no-verify]`: outbound TLS required.
    RelayTls => "relay option \"tls\"",
    /// `relay ... pki NAME`: a client certificate.
    RelayPki => "relay option \"pki\"",
    /// `relay ... ca NAME`.
    RelayCa => "relay option \"ca\"",
    /// `relay ... auth <t>`: AUTH to the smarthost.
    RelayAuth => "relay option \"auth\"",
    /// `relay ... src <t>`: source addresses.
    RelaySrc => "relay option \"src\"",
    /// `relay ... helo-src <t>`: the HELO name per source address.
    RelayHeloSrc => "relay option \"helo-src\"",
    /// `relay ... srs`: sender rewriting.
    RelaySrs => "relay option \"srs\"",
    /// `relay ... filter F`: filters on the outbound session.
    RelayFilter => "relay option \"filter\"",
    /// `relay host smtps://...`.
    RelaySmtps => "relay URL \"smtps://\"",
    /// `relay host smtp+tls://...`.
    RelayStartTls => "relay URL \"smtp+tls://\"",
    /// `relay host smtp://label@host`: credentials from `auth <t>`.
    RelayAuthLabel => "relay URL with an auth label",
    /// `filter NAME proc-exec "COMMAND"`.
    ProcExecFilter => "filter type \"proc-exec\"",
    /// `filter NAME proc PROC`.
    ProcFilter => "filter type \"proc\"",
    /// `proc NAME "COMMAND"`.
    ProcDeclaration => "declaration \"proc\"",
    /// `table NAME BACKEND:CONFIG` for a backend other than `file`, `db` and `getpwnam`
    /// (`ldap`, `sqlite`, `postgres`, `mysql`, `redis`, `socketmap`, `passwd`...).
    TableBackend => "table backend",
    /// `match ... auth [<t>]`.
    MatchAuth => "match option \"auth\"",
    /// `match from auth [<t>]`.
    MatchFromAuth => "match option \"from auth\"",
    /// `match ... tls`.
    MatchTls => "match option \"tls\"",
}

/// THE list: what this build refuses at start. Remove a feature's line in the change that
/// implements it. Grouped by the work that will implement them, a comment between groups, so
/// that branches removing lines of different groups do not touch the same lines.
pub const NOT_YET: &[Feature] = &[];

impl Feature {
    pub fn implemented(self) -> bool {
        !NOT_YET.contains(&self)
    }
}

/// One use of a feature in a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    pub feature: Feature,
    pub at: Position,
    /// What makes this use particular (a table's backend).
    pub detail: Option<String>,
}

impl Use {
    /// `smtpd.conf:4: listener option "proxy-v2" is not supported by rsmtpd yet`.
    pub fn describe(&self) -> String {
        let what = match (&self.feature, &self.detail) {
            (Feature::TableBackend, Some(b)) => format!("table backend \"{}\"", b),
            _ => self.feature.name().to_string(),
        };
        format!("{}: {} is not supported by rsmtpd yet", self.at, what)
    }
}

/// Every use of every [`Feature`] in `conf`, in the order the config wrote them.
pub fn uses(conf: &Config) -> Vec<Use> {
    let mut out = Vec::new();
    let mut add = |feature, at: &Position, detail: Option<String>| {
        out.push(Use {
            feature,
            at: at.clone(),
            detail,
        })
    };
    if conf.options.ciphers.is_some() {
        add(Feature::SmtpCiphers, &conf.options.ciphers_at, None);
    }
    for d in &conf.order {
        match *d {
            Decl::Table(i) => {
                let Some(t) = conf.tables.get(i) else {
                    continue;
                };
                if let TableSource::Proc { backend, .. } = &t.source {
                    add(Feature::TableBackend, &t.at, Some(backend.clone()));
                }
            }
            Decl::Proc(i) => {
                if let Some(p) = conf.procs.get(i).filter(|p| !p.from_filter) {
                    add(Feature::ProcDeclaration, &p.at, None);
                }
            }
            Decl::Filter(i) => {
                let Some(f) = conf.filters.get(i) else {
                    continue;
                };
                if let FilterKind::Proc(p) = &f.kind {
                    let exec = conf.proc_(p).is_some_and(|p| p.from_filter);
                    let feature = if exec {
                        Feature::ProcExecFilter
                    } else {
                        Feature::ProcFilter
                    };
                    add(feature, &f.at, None);
                }
            }
            Decl::Listener(i) => {
                let Some(l) = conf.listeners.get(i) else {
                    continue;
                };
                for (opt, at) in &l.options_at {
                    let feature = match opt {
                        ListenOpt::Tls => match l.tls {
                            Some(TlsMode::StartTls) => Feature::ListenerTls,
                            Some(TlsMode::StartTlsRequire) => Feature::ListenerTlsRequire,
                            Some(TlsMode::Smtps) => Feature::ListenerSmtps,
                            None => continue,
                        },
                        ListenOpt::Pki => Feature::ListenerPki,
                        ListenOpt::Ca => Feature::ListenerCa,
                        ListenOpt::Auth => match &l.auth {
                            Some(rsmtpd_config::AuthMode::Required(None))
                            | Some(rsmtpd_config::AuthMode::Optional(None)) => {
                                Feature::ListenerAuthSystem
                            }
                            Some(rsmtpd_config::AuthMode::Optional(_)) => {
                                Feature::ListenerAuthOptional
                            }
                            _ => Feature::ListenerAuth,
                        },
                        ListenOpt::Senders => Feature::ListenerSenders,
                        ListenOpt::Hostnames => Feature::ListenerHostnames,
                        ListenOpt::ProxyV2 => Feature::ListenerProxyV2,
                        _ => continue,
                    };
                    add(feature, at, None);
                }
            }
            Decl::Action(i) => {
                let Some(a) = conf.actions.get(i) else {
                    continue;
                };
                if let Method::Relay(r) = &a.method {
                    add(Feature::RelayAction, &a.at, None);
                    for (set, f) in [
                        (r.tls.is_some(), Feature::RelayTls),
                        (r.pki.is_some(), Feature::RelayPki),
                        (r.ca.is_some(), Feature::RelayCa),
                        (r.auth.is_some(), Feature::RelayAuth),
                        (r.src.is_some(), Feature::RelaySrc),
                        (r.helo_src.is_some(), Feature::RelayHeloSrc),
                        (r.srs, Feature::RelaySrs),
                        (r.filter.is_some(), Feature::RelayFilter),
                    ] {
                        if set {
                            add(f, &a.at, None);
                        }
                    }
                    // The smarthost URLs of `host <t>` and `domain <t>`.
                    let urls = [&r.host, &r.domain]
                        .into_iter()
                        .flatten()
                        .flat_map(|t| conf.tables.iter().filter(move |tb| &tb.name == t))
                        .flat_map(|tb| {
                            tb.entries()
                                .map(|(k, v)| v.unwrap_or(k).to_ascii_lowercase())
                                .collect::<Vec<_>>()
                        });
                    for u in urls {
                        let f = if u.starts_with("smtps://") {
                            Feature::RelaySmtps
                        } else if u.starts_with("smtp+tls://") {
                            Feature::RelayStartTls
                        } else if u
                            .split_once("://")
                            .map_or(u.as_str(), |(_, rest)| rest)
                            .contains('@')
                        {
                            Feature::RelayAuthLabel
                        } else {
                            continue;
                        };
                        add(f, &a.at, None);
                    }
                }
            }
            Decl::Rule(i) => {
                let Some(r) = conf.rules.get(i) else { continue };
                for (w, at) in &r.criteria_at {
                    let feature = match w {
                        Written::Auth => Feature::MatchAuth,
                        Written::Tls => Feature::MatchTls,
                        Written::From
                            if matches!(
                                r.from.as_ref().map(|c| &c.test),
                                Some(rsmtpd_config::From::Auth)
                            ) =>
                        {
                            Feature::MatchFromAuth
                        }
                        _ => continue,
                    };
                    add(feature, at, None);
                }
            }
            Decl::Pki(_) | Decl::Ca(_) | Decl::Socket | Decl::Wrapper(_) => {}
        }
    }
    out
}

/// The uses of what this build does not implement, as one line each (without a prefix: the
/// daemon prints them after `smtpd: `, `-n` after `warn: `).
pub fn refusals(conf: &Config) -> Vec<String> {
    refusals_among(conf, NOT_YET)
}

/// [`refusals`] for a given list: what the daemon would print if `not_yet` were [`NOT_YET`]
/// (the list is empty today; the tests keep the machinery that names file and line honest for
/// the next feature that is parsed before it is served).
pub fn refusals_among(conf: &Config, not_yet: &[Feature]) -> Vec<String> {
    uses(conf)
        .iter()
        .filter(|u| not_yet.contains(&u.feature))
        .map(Use::describe)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_feature_is_listed_once() {
        for (i, f) in ALL.iter().enumerate() {
            assert!(!ALL[..i].contains(f), "{:?} twice in ALL", f);
        }
        for (i, f) in NOT_YET.iter().enumerate() {
            assert!(ALL.contains(f), "{:?} missing from ALL", f);
            assert!(!NOT_YET[..i].contains(f), "{:?} twice in NOT_YET", f);
        }
    }

    /// Each use is named by its own file and line, an include's by the included file, in the
    /// order the config wrote them.
    #[test]
    fn refusals_name_file_and_line() {
        let env = rsmtpd_config::StaticEnvironment::typical()
            .with_file(
                "filters.conf",
                "srs key \"secret\"\ntable t { x }\naction \"a\" relay srs\n",
            )
            .with_file(
                "c.conf",
                "include \"filters.conf\"\ntable v sqlite:/etc/mail/sqlite.conf\n\
                 listen on 127.0.0.1 port 2525 proxy-v2 hostnames { 127.0.0.1 = mx.test }\n\
                 action \"b\" relay srs\naction \"l\" maildir\n\
                 match from any for local action \"l\"\nmatch from any for any action \"a\"\n\
                 match from any for any action \"b\"\n",
            );
        let out = rsmtpd_config::parse_file("c.conf", &env, &Default::default());
        let conf = out.config.expect("parses");
        assert!(refusals(&conf).is_empty(), "{:?}", refusals(&conf));
        let not_yet = [
            Feature::RelaySrs,
            Feature::TableBackend,
            Feature::ListenerProxyV2,
            Feature::ListenerHostnames,
        ];
        assert_eq!(
            refusals_among(&conf, &not_yet),
            vec![
                "filters.conf:3: relay option \"srs\" is not supported by rsmtpd yet",
                "c.conf:2: table backend \"sqlite\" is not supported by rsmtpd yet",
                "c.conf:3: listener option \"proxy-v2\" is not supported by rsmtpd yet",
                "c.conf:3: listener option \"hostnames\" is not supported by rsmtpd yet",
                "c.conf:4: relay option \"srs\" is not supported by rsmtpd yet",
            ]
        );
    }
}
