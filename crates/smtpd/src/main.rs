//! smtpd: the rsmtpd daemon, command-line compatible with OpenSMTPD 6.8's `smtpd`.

// Every unsafe block says why it is sound, and unsafe fns do not make their bodies unsafe.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::io::Write;
use std::process::ExitCode;

use clap::{Arg, ArgAction, Command};
use std::path::PathBuf;

use rsmtpd::sys::{pki, system};
use rsmtpd::{daemon, startup, support};
use rsmtpd_config::{dump, parse_file, Config, ParseOptions};

/// The version we are a drop-in replacement for; scripts parse it.
pub const SMTPD_NAME: &str = "OpenSMTPD";
pub const SMTPD_VERSION: &str = "6.8.0p2";
/// Where Debian's opensmtpd reads its config (OpenBSD's is /etc/mail/smtpd.conf).
pub const DEFAULT_CONFIG: &str = "/etc/smtpd.conf";

const USAGE: &str = "usage: smtpd [-dFhnv] [-D macro=value] [-f file] [-P system] [-T trace]";

/// The trace subsystems `-T` knows (OpenSMTPD warns about others and goes on).
const TRACES: &[&str] = &[
    "imsg",
    "io",
    "smtp",
    "filters",
    "mta",
    "transfer",
    "bounce",
    "bounces",
    "scheduler",
    "lookup",
    "stat",
    "stats",
    "rules",
    "mproc",
    "expand",
    "table",
    "tables",
    "queue",
    "all",
    "profstat",
    "profile-imsg",
    "profile-queue",
];

fn cli() -> Command {
    // OpenSMTPD's getopt string is "B:dD:hnP:f:FT:vx:"; clap gives us the same short options
    // and their bundling (`-dv`), and we print OpenSMTPD's usage line on any mistake.
    Command::new("smtpd")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(Arg::new("B").short('B').action(ArgAction::Append))
        .arg(Arg::new("d").short('d').action(ArgAction::SetTrue))
        .arg(Arg::new("D").short('D').action(ArgAction::Append))
        .arg(Arg::new("h").short('h').action(ArgAction::SetTrue))
        .arg(Arg::new("n").short('n').action(ArgAction::SetTrue))
        .arg(Arg::new("P").short('P').action(ArgAction::Append))
        .arg(Arg::new("f").short('f').action(ArgAction::Set))
        .arg(Arg::new("F").short('F').action(ArgAction::SetTrue))
        .arg(Arg::new("T").short('T').action(ArgAction::Append))
        .arg(Arg::new("v").short('v').action(ArgAction::Count))
        .arg(Arg::new("x").short('x').action(ArgAction::Set))
        // Ours, not OpenSMTPD's: where the queue and the control socket live, so that the
        // daemon can run without root (tests, trying it out). Also SMTPD_SPOOL, SMTPD_SOCKET.
        .arg(Arg::new("spool").long("spool").action(ArgAction::Set))
        .arg(Arg::new("socket").long("socket").action(ArgAction::Set))
        // Who alias commands and files run as when root (OpenSMTPD's SMTPD_USER, a build
        // option there); also SMTPD_USER. Default: opensmtpd, else _smtpd.
        .arg(Arg::new("user").long("user").action(ArgAction::Set))
}

/// getopt() names the program as it was invoked.
fn argv0() -> String {
    std::env::args().next().unwrap_or_else(|| "smtpd".into())
}

fn usage() -> ExitCode {
    eprintln!("{}", USAGE);
    ExitCode::from(1)
}

fn main() -> ExitCode {
    // Started by the daemon as its delivery process: nothing else of smtpd runs.
    if let Some(code) = rsmtpd::delivery::process::run_if_requested() {
        return ExitCode::from(code);
    }
    let m = match cli().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            if let Some(clap::error::ContextValue::String(a)) =
                e.get(clap::error::ContextKind::InvalidArg)
            {
                if e.kind() == clap::error::ErrorKind::InvalidValue
                    || e.kind() == clap::error::ErrorKind::NoEquals
                {
                    let opt = a.trim_start_matches('-').chars().next().unwrap_or('?');
                    eprintln!("{}: option requires an argument -- '{}'", argv0(), opt);
                } else if let Some(opt) = a.strip_prefix('-') {
                    // A stray operand gets only the usage line, an unknown option this first.
                    eprintln!("{}: invalid option -- '{}'", argv0(), opt);
                }
            }
            return usage();
        }
    };
    if m.get_flag("h") {
        eprintln!("version: {} {}", SMTPD_NAME, SMTPD_VERSION);
        // Ours after OpenSMTPD's line, which scripts parse (as the SMTP banner and the Received
        // lines, it stays OpenSMTPD's for drop-in compatibility).
        eprintln!(
            "rsmtpd {}, a drop-in replacement for {} {}",
            env!("CARGO_PKG_VERSION"),
            SMTPD_NAME,
            SMTPD_VERSION
        );
        return usage();
    }
    let mut opts = ParseOptions {
        strict: true,
        ..Default::default()
    };
    for d in m.get_many::<String>("D").into_iter().flatten() {
        // cmdline_symset splits at the last '='.
        match d.rsplit_once('=') {
            Some((k, v)) => opts.macros.push((k.to_string(), v.to_string())),
            None => eprintln!("warn: could not parse macro definition {}", d),
        }
    }
    for b in m.get_many::<String>("B").into_iter().flatten() {
        if !["queue=", "scheduler=", "stat="]
            .iter()
            .any(|p| b.starts_with(p))
        {
            eprintln!("warn: invalid backend specifier {}", b);
        }
    }
    let mut traces = 0u32;
    for t in m.get_many::<String>("T").into_iter().flatten() {
        if t == "all" {
            traces = u32::MAX;
        } else if let Some(tr) = rsmtpd::sys::log::Trace::from_name(t) {
            traces |= tr as u32;
        } else if !TRACES.contains(&t.as_str()) {
            eprintln!("warn: unknown trace flag \"{}\"", t);
        }
    }
    let conffile = m
        .get_one::<String>("f")
        .cloned()
        .unwrap_or_else(|| DEFAULT_CONFIG.to_string());

    let outcome = parse_file(&conffile, &system::SystemEnvironment, &opts);
    for line in &outcome.messages {
        eprintln!("{}", line);
    }
    let Some(mut conf) = outcome.config else {
        return ExitCode::from(1);
    };
    if let Err(lines) = startup_checks(&conf, m.get_flag("n")) {
        for l in lines {
            eprintln!("{}", l);
        }
        return ExitCode::from(1);
    }
    if m.get_flag("n") {
        if m.get_count("v") > 0 {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(dump(&conf).as_bytes());
            let _ = out.flush();
        }
        eprintln!("configuration OK");
        // OpenSMTPD's verdict stands (scripts run `smtpd -n && restart`), but the admin learns
        // now what the daemon will refuse to start with.
        for l in support::refusals(&conf) {
            eprintln!("warn: {}", l);
        }
        for l in startup::missing_users(&conf) {
            eprintln!("warn: {}", l);
        }
        return ExitCode::SUCCESS;
    }
    let mut refused = support::refusals(&conf);
    // Unlike OpenSMTPD, which starts and temp-fails each delivery of the action (rsmtpd's
    // delivery does the same if the user goes away later): see startup.rs.
    refused.extend(startup::missing_users(&conf));
    if !refused.is_empty() {
        for l in refused {
            eprintln!("smtpd: {}", l);
        }
        return ExitCode::from(1);
    }
    let configured_key = conf.options.queue_key.clone();
    if conf.options.queue_encryption {
        // smtpd.c reads it here, before detaching: from stdin or the terminal when asked.
        match rsmtpd::queue::codec::resolve_key(conf.options.queue_key.as_deref()) {
            Ok(key) => conf.options.queue_key = Some(key),
            Err(line) => {
                eprintln!("{}", line);
                return ExitCode::from(1);
            }
        }
    }
    let path = |flag: &str, var: &str, default: &str| -> PathBuf {
        m.get_one::<String>(flag)
            .cloned()
            .or_else(|| std::env::var(var).ok())
            .unwrap_or_else(|| default.to_string())
            .into()
    };
    let setting = m
        .get_one::<String>("user")
        .cloned()
        .or_else(|| std::env::var("SMTPD_USER").ok());
    let smtpd_user = match system::smtpd_user(setting.as_deref()) {
        Ok(u) => u,
        Err(line) => {
            eprintln!("{line}");
            return ExitCode::from(1);
        }
    };
    let daemon_opts = daemon::Options {
        smtpd_user,
        foreground: m.get_flag("d") || m.get_flag("F"),
        verbose: m.get_count("v") > 0,
        traces,
        spool: path("spool", "SMTPD_SPOOL", "/var/spool/smtpd"),
        socket: path("socket", "SMTPD_SOCKET", rsmtpd_config::DEFAULT_SOCKET_PATH),
        resolver: std::env::var("SMTPD_RESOLVER")
            .ok()
            .and_then(|s| s.parse().ok()),
        paused: m
            .get_many::<String>("P")
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
        reload: Some(std::sync::Arc::new(reload_source(
            conffile,
            opts,
            configured_key,
            conf.options.queue_key.clone(),
        ))),
    };
    // -F stays in the foreground but logs to syslog, as OpenSMTPD's.
    let log_to_stderr = m.get_flag("d");
    ExitCode::from(daemon::run(conf, daemon_opts, log_to_stderr))
}

/// How SIGHUP reads the configuration again: the same file with the same `-D` macros, and the
/// same checks as at start (OpenSMTPD's, then what this build refuses). The queue key read
/// from stdin or the terminal at start is not asked again: a file that still says `stdin` (or
/// the same key) gets the key in service.
fn reload_source(
    path: String,
    opts: ParseOptions,
    configured_key: Option<String>,
    key_in_service: Option<String>,
) -> rsmtpd::reload::Source {
    // The daemon works in `/` once detached: a relative `-f` would name another file by then.
    let path = std::path::absolute(&path)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or(path);
    let start_dir = system::StartDir(std::env::current_dir().unwrap_or_else(|_| "/".into()));
    let read = {
        let path = path.clone();
        move || -> Result<Config, Vec<String>> {
            let outcome = parse_file(&path, &start_dir, &opts);
            let Some(mut conf) = outcome.config else {
                return Err(outcome.messages);
            };
            for line in &outcome.messages {
                rsmtpd::sys::log::warn(line);
            }
            startup_checks(&conf, false)?;
            let mut refused = support::refusals(&conf);
            refused.extend(startup::missing_users(&conf));
            if !refused.is_empty() {
                return Err(refused);
            }
            if conf.options.queue_key == configured_key {
                conf.options.queue_key = key_in_service.clone();
            }
            Ok(conf)
        }
    };
    rsmtpd::reload::Source {
        path,
        read: Box::new(read),
    }
}

/// What OpenSMTPD checks after parsing, before `configuration OK`.
fn startup_checks(conf: &Config, noaction: bool) -> Result<(), Vec<String>> {
    if let Some(key) = &conf.options.queue_key {
        // crypto_setup() takes exactly 32 bytes. `stdin` is read when the daemon starts (and
        // checked then); `-n` checks the word itself, and refuses it, as OpenSMTPD does.
        if (noaction || key != "stdin") && key.len() != 32 {
            return Err(vec![
                "smtpd: crypto_setup:invalid key for queue encryption".into()
            ]);
        }
    }
    pki::check(conf)
}
