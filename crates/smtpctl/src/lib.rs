//! smtpctl and its personalities (sendmail, send-mail, mailq, newaliases, makemap): the pure
//! parts, tested without a daemon. The program (src/bin/smtpctl/) does the I/O.

// Nothing here needs unsafe code; keep it that way.
#![forbid(unsafe_code)]

pub mod encrypt;
pub mod format;
pub mod parser;
pub mod sendmail;
pub mod spfwalk;

/// Which program argv\[0\] makes us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Personality {
    Smtpctl,
    Sendmail,
    Mailq,
    Newaliases,
    Makemap,
    Unsupported,
}

/// The personality of an argv\[0\] (its base name).
pub fn personality(argv0: &str) -> Personality {
    match argv0.rsplit('/').next().unwrap_or(argv0) {
        "smtpctl" => Personality::Smtpctl,
        "sendmail" | "send-mail" => Personality::Sendmail,
        "mailq" => Personality::Mailq,
        "newaliases" => Personality::Newaliases,
        "makemap" => Personality::Makemap,
        _ => Personality::Unsupported,
    }
}

/// makemap's command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MakemapArgs {
    pub newaliases: bool,
    pub dump: bool,
    pub output: Option<String>,
    pub kind: Option<rsmtpd_control::map::MapKind>,
    pub config: Option<String>,
    pub source: Option<String>,
}

/// Parses makemap's / newaliases' arguments; `Err` is the message to print (`usage` for the
/// usage line).
pub fn parse_makemap(args: &[String], newaliases: bool) -> Result<MakemapArgs, String> {
    let optstring = if newaliases { "f:h" } else { "b:C:d:ho:O:t:U" };
    let (opts, operands) = sendmail::getopt(args, optstring).map_err(|_| "usage".to_string())?;
    let mut m = MakemapArgs {
        newaliases,
        ..Default::default()
    };
    for (c, v) in opts {
        let v = v.unwrap_or_default();
        match c {
            'b' if v == "i" => m.newaliases = true,
            'd' if v != "hash" && v != "btree" => return Err(format!("unsupported DB type '{v}'")),
            'f' => m.config = Some(v),
            'o' => m.output = Some(v),
            'O' => {
                if let Some(p) = v.strip_prefix("AliasFile=") {
                    m.kind = Some(rsmtpd_control::map::MapKind::Aliases);
                    m.source = Some(p.to_string());
                }
            }
            't' => {
                m.kind = Some(match v.as_str() {
                    "aliases" => rsmtpd_control::map::MapKind::Aliases,
                    "set" => rsmtpd_control::map::MapKind::Set,
                    _ => return Err(format!("unsupported type '{v}'")),
                })
            }
            'U' => m.dump = true,
            'h' => return Err("usage".into()),
            _ => {}
        }
    }
    if m.newaliases {
        if !operands.is_empty() {
            return Err("usage".into());
        }
        m.kind = Some(rsmtpd_control::map::MapKind::Aliases);
    } else {
        if operands.len() != 1 {
            return Err("usage".into());
        }
        m.source = Some(operands[0].clone());
    }
    Ok(m)
}

/// The usage line of a personality.
pub fn usage(p: Personality, progname: &str, newaliases: bool) -> String {
    match p {
        Personality::Sendmail => format!("usage: {progname} [-tv] [-f from] [-F name] to ...\n"),
        Personality::Makemap | Personality::Newaliases => {
            if newaliases {
                "usage: newaliases [-f file]\n".into()
            } else {
                "usage: makemap [-U] [-d dbtype] [-o dbfile] [-t type] file\n".into()
            }
        }
        _ => format!("usage: {progname} command [argument ...]\n"),
    }
}

/// The aliases file named by a configuration's `table aliases` (conf_aliases), `.db` dropped;
/// `/etc/mail/aliases` when there is none.
pub fn conf_aliases(config_text: &str) -> String {
    for line in config_text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() >= 3 && w[0] == "table" && w[1] == "aliases" {
            let t = w[2].trim_matches('"');
            let path = t.split_once(':').map_or(t, |(_, p)| p);
            return path.strip_suffix(".db").unwrap_or(path).to_string();
        }
    }
    "/etc/mail/aliases".into()
}
