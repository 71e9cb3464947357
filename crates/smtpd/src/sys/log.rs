//! Logging as OpenSMTPD does it: plain lines on stderr with `-d`, syslog (facility mail, ident
//! `smtpd`) otherwise; `-v` adds `debug:` lines, `-T NAME` adds trace lines of a subsystem.
//!
//! Log parsers written for OpenSMTPD (fail2ban's `opensmtpd` filter, logwatch) read these lines,
//! so their text is OpenSMTPD's, byte for byte; the callers format them, this module only routes.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

/// Trace subsystems (`-T`), as OpenSMTPD's TRACE_* bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Trace {
    Imsg = 0x0002,
    Io = 0x0004,
    Smtp = 0x0008,
    Filters = 0x0010,
    Mta = 0x0020,
    Bounce = 0x0040,
    Scheduler = 0x0080,
    Lookup = 0x0100,
    Stat = 0x0200,
    Rules = 0x0400,
    Mproc = 0x0800,
    Expand = 0x1000,
    Tables = 0x2000,
    Queue = 0x4000,
}

impl Trace {
    /// The `-T` argument names (with OpenSMTPD's aliases); `all` is handled by the caller.
    pub fn from_name(name: &str) -> Option<Trace> {
        Some(match name {
            "imsg" => Trace::Imsg,
            "io" => Trace::Io,
            "smtp" => Trace::Smtp,
            "filters" => Trace::Filters,
            "mta" | "transfer" => Trace::Mta,
            "bounce" | "bounces" => Trace::Bounce,
            "scheduler" => Trace::Scheduler,
            "lookup" => Trace::Lookup,
            "stat" | "stats" => Trace::Stat,
            "rules" => Trace::Rules,
            "mproc" => Trace::Mproc,
            "expand" => Trace::Expand,
            "table" | "tables" => Trace::Tables,
            "queue" => Trace::Queue,
            _ => return None,
        })
    }
}

/// syslog(3) levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Crit = 2,
    Warning = 4,
    Info = 6,
    Debug = 7,
}

enum Sink {
    Stderr,
    Syslog(Option<UnixDatagram>),
}

struct Logger {
    sink: Mutex<Sink>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();
static TRACES: AtomicU32 = AtomicU32::new(0);
/// `-v`, or `smtpctl log verbose`.
static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Chooses where lines go. Called once at start; before that, lines go to stderr.
pub fn init(foreground: bool, verbose: bool, traces: u32) {
    TRACES.store(traces, Ordering::Relaxed);
    VERBOSE.store(verbose, Ordering::Relaxed);
    let sink = if foreground {
        Sink::Stderr
    } else {
        Sink::Syslog(connect_syslog())
    };
    let _ = LOGGER.set(Logger {
        sink: Mutex::new(sink),
    });
}

fn connect_syslog() -> Option<UnixDatagram> {
    let s = UnixDatagram::unbound().ok()?;
    s.connect("/dev/log").ok()?;
    Some(s)
}

/// Whether a trace subsystem is on (`smtpctl trace` may change it at run time).
pub fn tracing(t: Trace) -> bool {
    TRACES.load(Ordering::Relaxed) & (t as u32) != 0
}

pub fn set_traces(mask: u32) {
    TRACES.store(mask, Ordering::Relaxed);
}

pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

/// One line in one `write(2)`. The split daemon's parent and engine (and the delivery
/// process) share `-d`'s stderr, usually a pipe: a write of up to `PIPE_BUF` bytes to a pipe is
/// atomic, so their lines never merge; `writeln!` made two writes, the text and then the
/// newline, and another process's line could land between them (seen as
/// `...result=TempFail ...warn: delivery process N exited ...` on one line).
pub(crate) fn write_line(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(text.len() + 1);
    buf.extend_from_slice(text.as_bytes());
    buf.push(b'\n');
    out.write_all(&buf)
}

/// Writes one line at a level.
pub fn line(level: Level, text: &str) {
    let Some(logger) = LOGGER.get() else {
        let _ = write_line(&mut std::io::stderr().lock(), text);
        return;
    };
    if level == Level::Debug && !verbose() {
        return;
    }
    let Ok(mut sink) = logger.sink.lock() else {
        return;
    };
    match &mut *sink {
        Sink::Stderr => {
            let _ = write_line(&mut std::io::stderr().lock(), text);
        }
        Sink::Syslog(sock) => {
            let msg = syslog_packet(level, crate::sys::date::now(), text);
            if sock
                .as_ref()
                .and_then(|s| s.send(msg.as_bytes()).ok())
                .is_none()
            {
                *sock = connect_syslog();
                if let Some(s) = sock {
                    let _ = s.send(msg.as_bytes());
                }
            }
        }
    }
}

/// One datagram as glibc's syslog(3) sends it to /dev/log (RFC 3164): facility mail (2), the
/// local time as `%h %e %T`, then `smtpd[PID]: `, which is what OpenSMTPD's lines carry through
/// rsyslog or journald into mail.log, and what fail2ban's rules are written against.
fn syslog_packet(level: Level, now: i64, text: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let pri = (2 << 3) | level as u32;
    let stamp = crate::sys::date::local_time(now)
        .map(|t| {
            format!(
                "{} {:2} {:02}:{:02}:{:02} ",
                MONTHS.get(t.mon).unwrap_or(&"Jan"),
                t.mday,
                t.hour,
                t.min,
                t.sec
            )
        })
        .unwrap_or_default();
    format!("<{}>{}smtpd[{}]: {}", pri, stamp, std::process::id(), text)
}

pub fn info(text: &str) {
    line(Level::Info, text);
}

pub fn warn(text: &str) {
    line(Level::Warning, text);
}

pub fn debug(text: &str) {
    line(Level::Debug, text);
}

/// A trace line, shown only when its subsystem is on (OpenSMTPD logs traces at debug level,
/// but shows them without `-v`). It takes `format_args!` so that a line nobody will see is
/// never formatted: traces sit on the per-session and per-message paths.
pub fn trace(t: Trace, text: std::fmt::Arguments<'_>) {
    if tracing(t) {
        line(Level::Info, &text.to_string());
    }
}

/// Trace lines that pure steps (rule matching, expansion, filters) collect for their caller to
/// log. When the caller will not log them, `line` formats nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceLines {
    on: bool,
    pub lines: Vec<String>,
}

impl TraceLines {
    pub fn new(on: bool) -> TraceLines {
        TraceLines {
            on,
            lines: Vec::new(),
        }
    }

    pub fn line(&mut self, text: std::fmt::Arguments<'_>) {
        if self.on {
            self.lines.push(text.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    /// Records each `write` call, as the kernel would see them.
    struct Calls(Vec<Vec<u8>>);

    impl std::io::Write for Calls {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.push(data.to_vec());
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_is_one_write_so_processes_sharing_a_pipe_never_merge_lines() {
        let mut out = Calls(Vec::new());
        super::write_line(&mut out, "warn: delivery process 9041 exited").expect("write");
        super::write_line(&mut out, "").expect("write");
        assert_eq!(
            out.0,
            [
                b"warn: delivery process 9041 exited\n".to_vec(),
                b"\n".to_vec()
            ]
        );
    }

    use super::*;

    #[test]
    fn trace_names() {
        assert_eq!(Trace::from_name("transfer"), Some(Trace::Mta));
        assert_eq!(Trace::from_name("tables"), Some(Trace::Tables));
        assert_eq!(Trace::from_name("nope"), None);
    }

    #[test]
    fn syslog_packets_are_glibc_s() {
        std::env::set_var("TZ", "UTC");
        let p = syslog_packet(Level::Info, 1_764_000_000 - 86_400 * 20, "x");
        let pid = std::process::id();
        // 2025-11-04 16:00:00 UTC: the day of month is padded with a space, as %e.
        assert_eq!(p, format!("<22>Nov  4 16:00:00 smtpd[{pid}]: x"));
        let w = syslog_packet(Level::Warning, 1_764_000_000, "y");
        assert!(w.starts_with("<20>Nov 24 "), "{w}");
    }
}
