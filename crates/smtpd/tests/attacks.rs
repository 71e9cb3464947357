//! The attack suite (issue 15, part 4): what a hostile client, a hostile local user, a hostile
//! file in the spool and a hostile relay can try against the real daemon started as root, and
//! what each gets.
//!
//! Read each test as a page of an admin's guide: what the attacker sends or plants, what the
//! daemon answers (OpenSMTPD 6.8.0p2's reply, compared live with Debian's /usr/sbin/smtpd, run in
//! a mount namespace of its own, when it is installed), and what the test looks at afterwards to
//! prove that nothing ran and nothing was written where it should not be: marker files that a
//! command would have created, a root-owned "secret" that a leak would have copied, the Maildirs
//! of bystanders, the daemon's own memory.
//!
//! Everything runs as root (deliveries switch users, the real OpenSMTPD needs it); without root
//! each test says `SKIPPED` (a failure under `RSMTPD_CI=1`). Users are userbase entries with uids
//! of their own (23xx), so that nothing is added to the machine's passwd, except for the mailbox
//! test (OpenSMTPD's mail.local wants passwd entries: throwaway `atk-*` users, removed after);
//! `nobody` stands for the local user of the offline queue.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::refns::{self, Which};
use common::*;

// --- the test's world ----------------------------------------------------------------------

/// A folder outside both daemons' own (so that ours and OpenSMTPD see the same files), world
/// traversable, holding the users' homes, scripts, secrets and where markers would appear.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        // A short name of letters and digits: it must fit, unchanged, in a mail address's local
        // part (the payloads name markers inside it).
        let dir = tempfile::Builder::new()
            .prefix("atk")
            .tempdir_in("/tmp")
            .expect("tempdir");
        chmod(dir.path(), 0o755);
        World { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn text(&self) -> String {
        self.path().to_str().expect("utf-8 path").to_string()
    }

    /// `home/NAME`, owned by `uid`, mode 0755.
    fn home(&self, name: &str, uid: u32) -> PathBuf {
        let p = self.path().join("home").join(name);
        std::fs::create_dir_all(&p).expect("mkdir home");
        chmod(&self.path().join("home"), 0o755);
        chown(&p, uid);
        chmod(&p, 0o755);
        p
    }

    /// A root-owned file only root may read: the stand-in for /etc/shadow where the attack
    /// needs a file on the same file system as the homes (a hard link).
    fn secret(&self, content: &str) -> PathBuf {
        let p = self.path().join("secret");
        std::fs::write(&p, content).expect("secret");
        chmod(&p, 0o600);
        p
    }

    /// A root-owned directory nobody else may write to: the stand-in for /etc.
    fn root_only(&self) -> PathBuf {
        let p = self.path().join("rootonly");
        std::fs::create_dir_all(&p).expect("rootonly");
        chmod(&p, 0o755);
        p
    }

    /// Every file whose name starts with `marker` anywhere under the world.
    fn markers(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        walk(self.path(), &mut |p| {
            if p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("marker"))
            {
                found.push(p.to_path_buf());
            }
        });
        found
    }
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        f(&p);
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&p, f);
        }
    }
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chown(p: &Path, uid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(uid)).expect("chown");
}

fn mkfifo(p: &Path) {
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
}

fn write_script(p: &Path, text: &str) {
    std::fs::write(p, text).expect("script");
    chmod(p, 0o755);
}

/// The files of a Maildir's `new/`.
fn maildir_count(maildir: &Path) -> usize {
    std::fs::read_dir(maildir.join("new"))
        .map(|r| r.count())
        .unwrap_or(0)
}

/// What a file is now: kind, size, links, owner, mode, and a hash of its bytes.
fn fingerprint(p: &Path) -> String {
    match std::fs::symlink_metadata(p) {
        Err(e) => format!("missing ({e})"),
        Ok(m) => {
            // Only a regular file is read (opening a named pipe would wait for a writer), and
            // only its first MiB (the offline test's 4 GiB file).
            let mut bytes = Vec::new();
            if m.file_type().is_file() {
                use std::io::Read;
                if let Ok(f) = std::fs::File::open(p) {
                    let _ = f.take(1 << 20).read_to_end(&mut bytes);
                }
            }
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in &bytes {
                h = (h ^ *b as u64).wrapping_mul(0x100_0000_01b3);
            }
            format!(
                "{:?} size {} links {} uid {} mode {:o} fnv {h:016x}",
                m.file_type(),
                m.len(),
                m.nlink(),
                m.uid(),
                m.mode() & 0o7777
            )
        }
    }
}

/// A whole userbase table: `name = "uid:gid:home"`.
fn userbase(users: &[(&str, u32, &Path)]) -> String {
    let entries: Vec<String> = users
        .iter()
        .map(|(n, uid, home)| format!("{n} = \"{uid}:{uid}:{}\"", home.display()))
        .collect();
    format!("table users {{ {} }}\n", entries.join(", "))
}

/// The daemons to compare: the real OpenSMTPD first when it can run, then ours.
fn daemons() -> Vec<Which> {
    refns::available()
}

/// Replies with what differs between two runs (queue ids, the host name) made constant.
fn normalize(replies: &[String]) -> Vec<String> {
    let host = hostname();
    normalized_replies(replies)
        .into_iter()
        .map(|r| r.replace(&host, "HOST").trim_end().to_string())
        .collect()
}

/// One transaction on a fresh connection: `MAIL`, each `RCPT`, and when one was accepted `DATA`
/// with `body`; returns `(command, reply)` pairs after the greeting and `EHLO`.
fn transaction(d: &Daemon, mail: &str, rcpts: &[&str], body: &str) -> Vec<(String, String)> {
    let mut c = Client::connect(d.addr());
    let mut out = Vec::new();
    assert!(c.reply().starts_with("220 "));
    assert!(c.cmd("EHLO attacker.example").starts_with("250"));
    let r = c.cmd(mail);
    let ok = r.starts_with("250");
    out.push((mail.to_string(), r));
    if ok {
        let mut any = false;
        for rcpt in rcpts {
            let r = c.cmd(rcpt);
            any |= r.starts_with("250");
            out.push((rcpt.to_string(), r));
        }
        if any {
            let r = c.cmd("DATA");
            let go = r.starts_with("354");
            out.push(("DATA".into(), r));
            if go {
                let r = c.cmd(&format!("{body}\r\n."));
                out.push((".".into(), r));
            }
        }
    }
    c.cmd("QUIT");
    out
}

/// Lines `COMMAND => REPLY` of transactions, normalized.
fn transcript(pairs: &[(String, String)]) -> Vec<String> {
    let replies: Vec<String> = pairs.iter().map(|(_, r)| r.clone()).collect();
    pairs
        .iter()
        .zip(normalize(&replies))
        .map(|((c, _), r)| format!("{c} => {r}"))
        .collect()
}

/// The log's delivery outcome lines (`result=... stat=...`), one per envelope, keyed by
/// recipient, once `n` of them are there.
fn outcomes(d: &Daemon, n: usize) -> BTreeMap<String, String> {
    let done = |l: &str| l.contains(" delivery ") && l.contains(" result=");
    let deadline = Instant::now() + Duration::from_secs(60);
    while d.log().iter().filter(|l| done(l)).count() < n {
        assert!(
            Instant::now() < deadline,
            "{n} deliveries not logged; log:\n{}",
            d.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = BTreeMap::new();
    for l in d.log().iter().filter(|l| done(l)) {
        let to = l
            .split(' ')
            .find_map(|w| w.strip_prefix("to=<"))
            .map(|w| w.trim_end_matches('>').to_string())
            .unwrap_or_default();
        let result = l
            .find(" result=")
            .map(|i| l[i + 1..].to_string())
            .unwrap_or_default();
        out.entry(to).or_insert(result);
    }
    out
}

/// The highest resident size the process reached, in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Compares what each daemon gave: all must agree with the first (OpenSMTPD when it ran).
fn same_as_opensmtpd(what: &str, runs: &[(Which, Vec<String>)]) {
    let Some((first, want)) = runs.first() else {
        return;
    };
    for (which, got) in &runs[1..] {
        assert_eq!(
            got,
            want,
            "{what}: {which:?} differs from {first:?}\n{which:?}:\n{}\n{first:?}:\n{}",
            got.join("\n"),
            want.join("\n")
        );
    }
}

// --- CVE-2020-7247: the sender address into a shell ------------------------------------------

/// The mda command of the CVE tests: records its arguments and environment, one line per
/// delivery, in `victim/argv`.
const RECORD: &str = "#!/bin/sh\n\
    cat > /dev/null\n\
    line=argv\n\
    for a in \"$@\"; do line=\"$line [$a]\"; done\n\
    line=\"$line env [$SENDER] [$RECIPIENT] [$LOCAL] [$DOMAIN] [$EXTENSION]\"\n\
    printf '%s\\n' \"$line\" >> \"$HOME/argv\"\n";

/// What the attacker sends in the CVE-2020-7247 test: `(MAIL, RCPT)`. `{M}` is replaced by a
/// marker path of the world (each payload its own), which a command that ran would create.
const CVE_PAYLOADS: &[(&str, &str)] = &[
    // Qualys's proof of concept (OpenSMTPD 6.6: an invalid local part with an empty domain
    // was accepted, and reached mail.local's command line through %{mbox.from}).
    ("MAIL FROM:<;sleep 66;>", "RCPT TO:<victim>"),
    // Its exploit, which read the rest of the command from the message's first lines.
    (
        "MAIL FROM:<;for i in 0 1 2 3 4 5 6 7 8 9 a b c d;do read r;done;sh;exit 0;>",
        "RCPT TO:<victim@example.org>",
    ),
    ("MAIL FROM:<;touch {M};>", "RCPT TO:<victim>"),
    ("MAIL FROM:<;touch {M};@example.org>", "RCPT TO:<victim>"),
    ("MAIL FROM:<$(touch {M})>", "RCPT TO:<victim>"),
    ("MAIL FROM:<`touch {M}`>", "RCPT TO:<victim>"),
    ("MAIL FROM:<@relay.example:;touch {M};>", "RCPT TO:<victim>"),
    (
        "MAIL FROM:<sender@example.org;touch {M}>",
        "RCPT TO:<victim>",
    ),
    (
        "MAIL FROM:<\";touch {M};\"@example.org>",
        "RCPT TO:<victim>",
    ),
    (
        "MAIL FROM:<sender@example.org> ;touch {M};",
        "RCPT TO:<victim>",
    ),
    // The same in the recipient.
    ("MAIL FROM:<sender@example.org>", "RCPT TO:<;touch {M};>"),
    (
        "MAIL FROM:<sender@example.org>",
        "RCPT TO:<victim;touch {M};@example.org>",
    ),
    (
        "MAIL FROM:<sender@example.org>",
        "RCPT TO:<victim@;touch {M};>",
    ),
    // Valid addresses (backquotes, `$`, `{}`, `|`, `&` are atext): accepted, and defused on
    // their way to the command (each of !#$%&'*?`{|}~ becomes ':', as OpenSMTPD does).
    (
        "MAIL FROM:<`touch${IFS}{M}`@example.org>",
        "RCPT TO:<victim@example.org>",
    ),
    (
        "MAIL FROM:<x|touch${IFS}{M}|@example.org>",
        "RCPT TO:<victim@example.org>",
    ),
    (
        "MAIL FROM:<x&touch${IFS}{M}&@example.org>",
        "RCPT TO:<victim@example.org>",
    ),
    (
        "MAIL FROM:<sender@example.org>",
        "RCPT TO:<victim+`touch${IFS}{M}`@example.org>",
    ),
    (
        "MAIL FROM:<x'#!*?~{}%'@example.org>",
        "RCPT TO:<victim@example.org>",
    ),
];

/// The message of the exploit: 14 lines for its `read r` loop, then the command its `sh` reads.
fn cve_body(marker: &str) -> String {
    let mut b = String::from("Subject: cve-2020-7247\r\n\r\n");
    for i in "0123456789abcd".chars() {
        b.push_str(&format!("#{i}\r\n"));
    }
    b.push_str(&format!("touch {marker}\r\n"));
    b
}

fn cve_run(which: Which) -> Vec<String> {
    let w = World::new();
    let victim = w.home("victim", 2301);
    std::fs::create_dir_all(w.path().join("bin")).expect("bin");
    write_script(&w.path().join("bin/record"), RECORD);
    let conf = format!(
        "listen on 127.0.0.1 port @PORT@\n{}\
         action \"mda\" mda \"{dir}/bin/record %{{sender}} %{{mbox.from}} %{{rcpt}} \
         %{{sender.user}} %{{sender.domain}} %{{rcpt.user}}\" userbase <users>\n\
         match from any for domain \"example.org\" action \"mda\"\n\
         match from any for local action \"mda\"\n",
        userbase(&[("victim", 2301, &victim)]),
        dir = w.text()
    );
    let d = refns::start(which, &conf, &[]);
    let mut lines = Vec::new();
    let mut accepted = 0;
    for (i, (mail, rcpt)) in CVE_PAYLOADS.iter().enumerate() {
        let marker = format!("{}/marker{i}", w.text());
        let mail = mail.replace("{M}", &marker);
        let rcpt = rcpt.replace("{M}", &marker);
        let pairs = transaction(&d, &mail, &[&rcpt], &cve_body(&marker));
        if pairs.iter().any(|(c, r)| c == "." && r.starts_with("250")) {
            accepted += 1;
        }
        lines.extend(
            transcript(&pairs)
                .into_iter()
                .map(|l| l.replace(&w.text(), "W")),
        );
    }
    let outcomes = outcomes(&d, accepted);
    // Long enough for a `sleep 66` started in the background... no: a command that ran would
    // have made its marker before the delivery was logged; a little more for stragglers.
    std::thread::sleep(Duration::from_millis(500));
    for (to, r) in &outcomes {
        lines.push(format!("delivery to {to}: {r}").replace(&w.text(), "W"));
    }
    let mut argv: Vec<String> = std::fs::read_to_string(victim.join("argv"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            l.replace(&w.text(), "W")
                .replace(&w.text().to_lowercase(), "W")
                .replace(&hostname(), "HOST")
        })
        .collect();
    argv.sort();
    lines.extend(argv);
    let markers = w.markers();
    assert!(
        markers.is_empty(),
        "{which:?}: a payload ran a command: {markers:?}\n{}",
        lines.join("\n")
    );
    lines
}

/// CVE-2020-7247 (OpenSMTPD 6.6.1, remote root): `MAIL FROM:<;sleep 66;>` was accepted, and
/// the sender went into the shell command of the mbox delivery. Every variant of the advisory,
/// and the same tricks in the recipient, are refused with 6.8.0p2's replies; the addresses that
/// are valid for all their backquotes and dollars are accepted and reach the `mda` command with
/// those characters replaced by `:`, as in 6.8.0p2, and no command of theirs runs (no marker).
/// The command's environment (`SENDER`, `RECIPIENT`, `LOCAL`, `EXTENSION`) carries the values
/// as they came, as OpenSMTPD's does: a script that evaluates them is on its own.
#[test]
fn cve_2020_7247_payloads_run_nothing() {
    if !require_root() {
        return;
    }
    let runs: Vec<(Which, Vec<String>)> = daemons().into_iter().map(|w| (w, cve_run(w))).collect();
    for (which, lines) in &runs {
        eprintln!("--- {which:?}\n{}", lines.join("\n"));
        // The advisory's own payload, refused.
        assert!(
            lines[0].starts_with("MAIL FROM:<;sleep 66;> => 553 5.1.0 Sender address syntax error"),
            "{which:?}: {}",
            lines[0]
        );
        // What reached the command has no shell character left.
        for l in lines.iter().filter(|l| l.starts_with("argv")) {
            let args = l.split(" env ").next().unwrap_or("");
            assert!(
                !args.contains(['`', '$', '|', '&', ';', '{', '}']),
                "{which:?}: {l}"
            );
        }
    }
    same_as_opensmtpd("CVE-2020-7247 payloads", &runs);
}

// --- ~/.forward: links, pipes and loose modes ------------------------------------------------

/// The users of the .forward test, each with the trick its .forward plays (uid, name).
const FORWARD_USERS: &[(&str, u32)] = &[
    ("spy", 2311),       // where a leaked .forward would send mail: must stay empty
    ("fsym", 2312),      // .forward -> /etc/shadow (symbolic link)
    ("fhard", 2313),     // .forward a hard link of a root-owned secret (the shadow stand-in)
    ("fother", 2314),    // .forward a hard link of fvictim's .forward
    ("fvictim", 2315),   // owns the .forward fother linked; never mailed
    ("ffifo", 2316),     // .forward a named pipe nobody writes to
    ("fwritable", 2317), // .forward mode 0666
    ("fhomew", 2318),    // home directory mode 0777, .forward fine
    ("fdir", 2319),      // .forward a directory
    ("fbig", 2320),      // .forward of 5000 bytes (OpenSMTPD's limit is 4 KB)
    ("ffile", 2323),     // .forward names /etc/shadow as a mailbox to append to
    ("finclude", 2325),  // .forward includes /etc/shadow and the secret (:include:)
    ("fpipe", 2324),     // .forward pipes to a command that reads /etc/shadow
    ("fok", 2321),       // an honest .forward to fokdest
    ("fokdest", 2322),   // receives fok's mail
];

fn forward_run(which: Which) -> Vec<String> {
    let w = World::new();
    let mut homes = Vec::new();
    for (name, uid) in FORWARD_USERS {
        homes.push((*name, *uid, w.home(name, *uid)));
    }
    let home = |n: &str| w.path().join("home").join(n);
    let fwd = |n: &str| home(n).join(".forward");
    let secret = w.secret("spy@example.org\n");
    std::os::unix::fs::symlink("/etc/shadow", fwd("fsym")).expect("symlink");
    std::fs::hard_link(&secret, fwd("fhard")).expect("hard link");
    std::fs::write(fwd("fvictim"), "spy@example.org\n").expect("forward");
    chown(&fwd("fvictim"), 2315);
    std::fs::hard_link(fwd("fvictim"), fwd("fother")).expect("hard link");
    mkfifo(&fwd("ffifo"));
    chown(&fwd("ffifo"), 2316);
    std::fs::write(fwd("fwritable"), "spy@example.org\n").expect("forward");
    chown(&fwd("fwritable"), 2317);
    chmod(&fwd("fwritable"), 0o666);
    std::fs::write(fwd("fhomew"), "spy@example.org\n").expect("forward");
    chown(&fwd("fhomew"), 2318);
    chmod(&home("fhomew"), 0o777);
    std::fs::create_dir(fwd("fdir")).expect("dir");
    chown(&fwd("fdir"), 2319);
    let big = "spy@example.org\n".repeat(5000 / 16 + 1);
    std::fs::write(fwd("fbig"), big).expect("forward");
    chown(&fwd("fbig"), 2320);
    std::fs::write(
        fwd("finclude"),
        format!(":include:/etc/shadow\n:include:{}\n", secret.display()),
    )
    .expect("forward");
    chown(&fwd("finclude"), 2325);
    std::fs::write(fwd("ffile"), "/etc/shadow\n").expect("forward");
    chown(&fwd("ffile"), 2323);
    let leak = home("fpipe").join("leak");
    std::fs::write(
        fwd("fpipe"),
        format!("\"|cat /etc/shadow > {}\"\n", leak.display()),
    )
    .expect("forward");
    chown(&fwd("fpipe"), 2324);
    std::fs::write(fwd("fok"), "fokdest@example.org\n").expect("forward");
    chown(&fwd("fok"), 2321);
    let _shadow = shadow_lock();
    let shadow_before = fingerprint(Path::new("/etc/shadow"));
    let secret_before = fingerprint(&secret);

    let users: Vec<(&str, u32, &Path)> = homes
        .iter()
        .map(|(n, u, h)| (*n, *u, h.as_path()))
        .collect();
    let conf = format!(
        "listen on 127.0.0.1 port @PORT@\n{}\
         action \"local\" maildir userbase <users>\n\
         match from any for domain \"example.org\" action \"local\"\n",
        userbase(&users)
    );
    let d = refns::start(which, &conf, &[]);
    let mut lines = Vec::new();
    let mut accepted = 0;
    for (name, _) in FORWARD_USERS {
        if matches!(*name, "spy" | "fvictim" | "fokdest") {
            continue;
        }
        let started = Instant::now();
        let pairs = transaction(
            &d,
            "MAIL FROM:<sender@example.net>",
            &[&format!("RCPT TO:<{name}@example.org>")],
            "Subject: forward\r\n\r\nhi",
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{which:?}: the RCPT of {name} hung ({:?}): {pairs:?}",
            started.elapsed()
        );
        if pairs.iter().any(|(c, r)| c == "." && r.starts_with("250")) {
            accepted += 1;
        }
        lines.extend(transcript(&pairs));
    }
    for (to, r) in outcomes(&d, accepted) {
        lines.push(format!("delivery to {to}: {r}"));
    }
    for (name, _) in FORWARD_USERS {
        let n = maildir_count(&home(name).join("Maildir"));
        if n > 0 {
            lines.push(format!("{name}: {n} in Maildir"));
        }
    }
    // What the daemon said about the files it refused, paths made relative.
    for l in d.log() {
        if l.contains(".forward") && (l.starts_with("warn:") || l.contains("unsecure")) {
            lines.push(l.replace(&w.text(), "W"));
        }
    }
    assert_eq!(
        maildir_count(&home("spy").join("Maildir")),
        0,
        "{which:?}: a forward leaked"
    );
    assert_eq!(
        maildir_count(&home("fokdest").join("Maildir")),
        1,
        "{which:?}: {lines:?}"
    );
    assert_eq!(fingerprint(Path::new("/etc/shadow")), shadow_before);
    assert_eq!(fingerprint(&secret), secret_before);
    // The pipe ran as fpipe, who may not read /etc/shadow.
    let leaked = std::fs::read_to_string(&leak).unwrap_or_default();
    assert!(
        !leaked.contains("root:"),
        "{which:?}: /etc/shadow leaked: {leaked}"
    );
    // Nothing of the secret in the log.
    assert!(
        !d.log()
            .iter()
            .any(|l| l.contains("root:") || l.contains("spy@example.org")),
        "{which:?}: a refused .forward was read:\n{}",
        d.log().join("\n")
    );
    lines
}

/// A local user's `~/.forward` is read by the root part of the daemon, so it is where a user
/// tries to make root read for them: a symbolic link to /etc/shadow, a hard link to a
/// root-owned file or to another user's .forward, a named pipe (to hang the reader), a file
/// others may write, a home others may write, a directory, an oversized file. Each is refused
/// at RCPT as OpenSMTPD 6.8.0p2 refuses it (same replies and warnings), none is read, none hangs
/// the session; an honest .forward still works. What a readable .forward asks for runs as its
/// user: appending to /etc/shadow fails, a pipe reading it gets nothing, and an `:include:`
/// (of /etc/shadow, of the secret) is not read at all from a .forward.
#[test]
fn forward_files_cannot_make_root_read_for_a_user() {
    if !require_root() {
        return;
    }
    let runs: Vec<(Which, Vec<String>)> =
        daemons().into_iter().map(|w| (w, forward_run(w))).collect();
    for (which, lines) in &runs {
        eprintln!("--- {which:?}\n{}", lines.join("\n"));
    }
    // The warnings are each daemon's own words; the replies and deliveries must agree.
    let without_warnings: Vec<(Which, Vec<String>)> = runs
        .iter()
        .map(|(w, l)| {
            (
                *w,
                l.iter()
                    .filter(|l| !l.starts_with("warn:"))
                    .cloned()
                    .collect(),
            )
        })
        .collect();
    same_as_opensmtpd(".forward tricks", &without_warnings);
}

/// The split daemon's engine remembers the homes where the root parent found no `.forward`, so
/// that a recipient costs no round trip to the parent while nothing changed there
/// (routing/forward.rs). A user who then makes a `.forward`, and later removes it, is obeyed
/// from the next message on, however soon after: a memory that outlived a change would deliver
/// against the user's wishes. (OpenSMTPD asks its parent each time; the outcome is the same.)
#[test]
fn a_forward_made_while_the_daemon_runs_counts_from_the_next_message() {
    if !require_root() {
        return;
    }
    let w = World::new();
    let user = w.home("fnew", 2326);
    let dest = w.home("fnewdest", 2327);
    // The Maildirs made beforehand: their creation would change the homes anyway.
    for (h, uid) in [(&user, 2326), (&dest, 2327)] {
        for sub in ["", "/new", "/cur", "/tmp"] {
            let p = PathBuf::from(format!("{}/Maildir{sub}", h.display()));
            std::fs::create_dir_all(&p).expect("maildir");
            chown(&p, uid);
            chmod(&p, 0o700);
        }
    }
    let conf = format!(
        "listen on 127.0.0.1 port @PORT@\n{}\
         action \"local\" maildir userbase <users>\n\
         match from any for domain \"example.org\" action \"local\"\n",
        userbase(&[("fnew", 2326, &user), ("fnewdest", 2327, &dest)])
    );
    let d = refns::start(Which::Ours, &conf, &[]);
    // Homes old enough to be remembered (a change within the clock's tick is not trusted).
    std::thread::sleep(Duration::from_millis(1100));
    let send = |n: usize| {
        let pairs = transaction(
            &d,
            "MAIL FROM:<sender@example.net>",
            &["RCPT TO:<fnew@example.org>"],
            &format!("Subject: forward {n}\r\n\r\nhi"),
        );
        assert!(
            pairs.iter().any(|(c, r)| c == "." && r.starts_with("250")),
            "message {n}: {pairs:?}"
        );
        outcomes(&d, n);
    };
    // Twice without a .forward: the second is answered from the engine's memory.
    send(1);
    send(2);
    assert_eq!(maildir_count(&user.join("Maildir")), 2);
    let fwd = user.join(".forward");
    std::fs::write(&fwd, "fnewdest@example.org\n").expect("forward");
    chown(&fwd, 2326);
    send(3);
    assert_eq!(
        maildir_count(&dest.join("Maildir")),
        1,
        "the new .forward was not followed"
    );
    assert_eq!(maildir_count(&user.join("Maildir")), 2);
    std::fs::remove_file(&fwd).expect("rm .forward");
    send(4);
    assert_eq!(
        maildir_count(&user.join("Maildir")),
        3,
        "the removed .forward still counted"
    );
    // Remembered again once the home is old, then changed again.
    std::thread::sleep(Duration::from_millis(1100));
    send(5);
    assert_eq!(maildir_count(&user.join("Maildir")), 4);
    std::fs::write(&fwd, "fnewdest@example.org\n").expect("forward");
    chown(&fwd, 2326);
    send(6);
    assert_eq!(
        maildir_count(&dest.join("Maildir")),
        2,
        "the second .forward was not followed"
    );
}

// --- Maildirs and mailboxes pointed elsewhere --------------------------------------------------

fn maildir_run(which: Which) -> Vec<String> {
    let w = World::new();
    let root_only = w.root_only();
    let users = [
        ("mvictim", 2331u32),
        ("msym", 2332),
        ("mroot", 2333),
        ("mnew", 2334),
        ("mshadow", 2335),
        ("mok", 2336),
    ];
    let homes: Vec<(&str, u32, PathBuf)> =
        users.iter().map(|(n, u)| (*n, *u, w.home(n, *u))).collect();
    let home = |n: &str| w.path().join("home").join(n);
    // The victim has mail already, in a Maildir only it may enter.
    let vmd = home("mvictim").join("Maildir");
    for sub in ["", "cur", "new", "tmp"] {
        let p = vmd.join(sub);
        std::fs::create_dir_all(&p).expect("maildir");
        chown(&p, 2331);
        chmod(&p, 0o700);
    }
    std::fs::write(vmd.join("new/1.old.host"), "Subject: mine\n\nprivate\n").expect("mail");
    chown(&vmd.join("new/1.old.host"), 2331);
    // msym's Maildir is the victim's; mroot's is a root-owned directory (the stand-in for
    // /etc); mnew's is its own but its new/ points into the root-owned one; mshadow's is
    // /etc/shadow.
    std::os::unix::fs::symlink(&vmd, home("msym").join("Maildir")).expect("symlink");
    std::os::unix::fs::symlink(&root_only, home("mroot").join("Maildir")).expect("symlink");
    let mnew = home("mnew").join("Maildir");
    for sub in ["", "cur", "tmp"] {
        std::fs::create_dir_all(mnew.join(sub)).expect("maildir");
        chown(&mnew.join(sub), 2334);
    }
    std::os::unix::fs::symlink(&root_only, mnew.join("new")).expect("symlink");
    std::os::unix::fs::symlink("/etc/shadow", home("mshadow").join("Maildir")).expect("symlink");
    let _shadow = shadow_lock();
    let shadow_before = fingerprint(Path::new("/etc/shadow"));
    let victim_before = std::fs::read_dir(vmd.join("new"))
        .map(|r| r.count())
        .unwrap_or(0);

    let ub: Vec<(&str, u32, &Path)> = homes
        .iter()
        .map(|(n, u, h)| (*n, *u, h.as_path()))
        .collect();
    let conf = format!(
        "listen on 127.0.0.1 port @PORT@\n{}\
         action \"local\" maildir userbase <users>\n\
         match from any for domain \"example.org\" action \"local\"\n",
        userbase(&ub)
    );
    let d = refns::start(which, &conf, &[]);
    let mut lines = Vec::new();
    let targets = ["msym", "mroot", "mnew", "mshadow", "mok"];
    for name in targets {
        let pairs = transaction(
            &d,
            "MAIL FROM:<sender@example.net>",
            &[&format!("RCPT TO:<{name}@example.org>")],
            "Subject: where does this go\r\n\r\nhi",
        );
        lines.extend(transcript(&pairs));
    }
    for (to, r) in outcomes(&d, targets.len()) {
        lines.push(format!("delivery to {to}: {r}").replace(&w.text(), "W"));
    }
    let mut in_root_only = Vec::new();
    walk(&root_only, &mut |p| in_root_only.push(p.to_path_buf()));
    assert!(
        in_root_only.is_empty(),
        "{which:?}: written as root: {in_root_only:?}"
    );
    assert_eq!(
        std::fs::read_dir(vmd.join("new"))
            .map(|r| r.count())
            .unwrap_or(0),
        victim_before,
        "{which:?}: another user wrote into the victim's Maildir"
    );
    assert_eq!(fingerprint(Path::new("/etc/shadow")), shadow_before);
    assert_eq!(maildir_count(&home("mok").join("Maildir")), 1, "{lines:?}");
    lines
}

/// A user who points their Maildir (or its `new/`) at another user's Maildir, at a root-owned
/// directory or at /etc/shadow gets a failed delivery, retried later, and nothing is written
/// there: deliveries run as the user, not as root. The outcome (temporary failure, the
/// mail.maildir error text) is OpenSMTPD 6.8.0p2's.
#[test]
fn maildir_links_do_not_write_as_root() {
    if !require_root() {
        return;
    }
    let runs: Vec<(Which, Vec<String>)> =
        daemons().into_iter().map(|w| (w, maildir_run(w))).collect();
    for (which, lines) in &runs {
        eprintln!("--- {which:?}\n{}", lines.join("\n"));
    }
    same_as_opensmtpd("Maildir links", &runs);
}

/// A mount namespace whose /var/mail is a fresh tmpfs (mode 1777), so that mailboxes of the
/// test's users neither touch nor depend on the machine's. `/proc/PID/root/var/mail` is it.
fn private_var_mail() -> Vec<&'static str> {
    vec![
        "unshare",
        "-m",
        "sh",
        "-c",
        "mount -t tmpfs -o mode=1777 tmpfs /var/mail && exec \"$0\" \"$@\"",
    ]
}

/// Throwaway users of the system's passwd (`useradd`), removed when dropped: OpenSMTPD's
/// mail.local looks mailbox owners up there, so a mailbox test that compares needs real ones.
struct SystemUsers {
    names: Vec<String>,
    /// Held to the end: the users' removal rewrites /etc/shadow too.
    _shadow: std::sync::MutexGuard<'static, ()>,
}

/// Held while users are added and removed, and by the tests that check /etc/shadow is left as
/// it was: useradd rewrites that file, which would otherwise look like the daemon's doing.
static SHADOW: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn shadow_lock() -> std::sync::MutexGuard<'static, ()> {
    SHADOW.lock().unwrap_or_else(|e| e.into_inner())
}

impl SystemUsers {
    fn add(users: &[(&str, u32, &Path)]) -> SystemUsers {
        let mut made = SystemUsers {
            names: Vec::new(),
            _shadow: shadow_lock(),
        };
        for (name, uid, home) in users {
            // What a killed run may have left.
            let _ = std::process::Command::new("userdel").arg(name).output();
            let _ = std::process::Command::new("groupdel").arg(name).output();
            let run = |cmd: &str, args: &[&str]| {
                let out = std::process::Command::new(cmd)
                    .args(args)
                    .output()
                    .unwrap_or_else(|e| panic!("{cmd}: {e}"));
                assert!(
                    out.status.success(),
                    "{cmd} {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            let id = uid.to_string();
            run("groupadd", &["-g", &id, name]);
            run(
                "useradd",
                &[
                    "-u",
                    &id,
                    "-g",
                    &id,
                    "-M",
                    "-d",
                    home.to_str().expect("utf-8 home"),
                    "-s",
                    "/usr/sbin/nologin",
                    name,
                ],
            );
            made.names.push(name.to_string());
        }
        made
    }
}

impl Drop for SystemUsers {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = std::process::Command::new("userdel").arg(name).output();
            let _ = std::process::Command::new("groupdel").arg(name).output();
        }
    }
}

/// The mailbox test's users: (name, uid).
const MBOX_USERS: &[(&str, u32)] = &[
    ("atk-bsym", 2341),  // /var/mail/USER -> a root-owned secret (symbolic link)
    ("atk-bdang", 2342), // /var/mail/USER -> a missing file in a root-owned directory
    ("atk-bhard", 2343), // /var/mail/USER a hard link of a root-owned file
    ("atk-bfifo", 2344), // /var/mail/USER a named pipe
    ("atk-bok", 2345),   // no mailbox yet
];

fn mailbox_run(which: Which, w: &World) -> Vec<String> {
    let secret = w.path().join("secret");
    let root_only = w.path().join("rootonly");
    let conf = "listen on 127.0.0.1 port @PORT@
         action \"local\" mbox
         match from any for domain \"example.org\" action \"local\"
";
    let bin = match which {
        Which::Ours => env!("CARGO_BIN_EXE_smtpd"),
        Which::Real => REAL_SMTPD,
    };
    let d = Daemon::launch(&private_var_mail(), bin, conf, &[], Some("127.0.0.1:1"));
    let spool = PathBuf::from(format!("/proc/{}/root/var/mail", d.pid()));
    let mbox = |n: &str| spool.join(n);
    std::os::unix::fs::symlink(&secret, mbox("atk-bsym")).expect("symlink");
    std::os::unix::fs::symlink(root_only.join("created"), mbox("atk-bdang")).expect("symlink");
    // A hard link needs one file system: a copy of the secret inside the tmpfs stands in.
    let inside = spool.join(".secret");
    std::fs::copy(&secret, &inside).expect("copy");
    std::fs::hard_link(&inside, mbox("atk-bhard")).expect("hard link");
    mkfifo(&mbox("atk-bfifo"));
    chown(&mbox("atk-bfifo"), 2344);
    let before = (fingerprint(&secret), fingerprint(&inside));
    let mut lines = Vec::new();
    for (name, _) in MBOX_USERS {
        let pairs = transaction(
            &d,
            "MAIL FROM:<sender@example.net>",
            &[&format!("RCPT TO:<{name}@example.org>")],
            "Subject: mbox\r\n\r\nhi",
        );
        lines.extend(transcript(&pairs));
    }
    for (to, r) in outcomes(&d, MBOX_USERS.len()) {
        lines.push(format!("delivery to {to}: {r}"));
    }
    assert_eq!(
        (fingerprint(&secret), fingerprint(&inside)),
        before,
        "{which:?}"
    );
    assert!(
        !root_only.join("created").exists(),
        "{which:?}: created through a dangling link"
    );
    let bok = std::fs::symlink_metadata(mbox("atk-bok")).expect("atk-bok's mailbox");
    assert_eq!(
        (bok.uid(), bok.mode() & 0o777, bok.nlink()),
        (2345, 0o600, 1),
        "{which:?}"
    );
    let text = std::fs::read_to_string(mbox("atk-bok")).expect("read");
    assert!(
        text.starts_with("From sender@example.net ") && text.contains("\nhi\n"),
        "{which:?}: {text}"
    );
    lines
}

/// The system mailboxes (/var/mail/USER, created by root when missing, then written as the
/// user) of users who replaced theirs beforehand: by a symbolic link to a root-owned secret, a
/// dangling link into a root-owned directory (for root to create the file), a hard link to the
/// secret, a named pipe. Each delivery fails with mail.local's "linked or special file", as
/// OpenSMTPD's; the secret is untouched and nothing is created through the dangling link; the
/// honest user gets a 0600 mailbox of their own. Both daemons get a private tmpfs /var/mail.
#[test]
fn mailbox_links_are_refused() {
    if !require_root() || !require_tool("useradd") {
        return;
    }
    let w = World::new();
    w.secret("root:$6$not-a-real-hash:19000:0:99999:7:::\n");
    w.root_only();
    let homes: Vec<(&str, u32, PathBuf)> = MBOX_USERS
        .iter()
        .map(|(n, u)| (*n, *u, w.home(n, *u)))
        .collect();
    let users: Vec<(&str, u32, &Path)> = homes
        .iter()
        .map(|(n, u, h)| (*n, *u, h.as_path()))
        .collect();
    let _users = SystemUsers::add(&users);
    let runs: Vec<(Which, Vec<String>)> = daemons()
        .into_iter()
        .map(|which| (which, mailbox_run(which, &w)))
        .collect();
    for (which, lines) in &runs {
        eprintln!("--- {which:?}\n{}", lines.join("\n"));
        for l in lines.iter().filter(|l| l.starts_with("delivery to")) {
            if !l.contains("atk-bok@") {
                assert!(l.contains("linked or special file"), "{which:?}: {l}");
            }
        }
    }
    same_as_opensmtpd("mailbox links", &runs);
}

// --- %{...} values in paths --------------------------------------------------------------------

fn dotdot_run(which: Which) -> Vec<String> {
    let w = World::new();
    let alice = w.home("alice", 2351);
    let vmail = w.home("vmail", 2352);
    let boxes = vmail.join("boxes");
    std::fs::create_dir_all(&boxes).expect("boxes");
    chown(&boxes, 2352);
    // Mail for anyone@virtual.test goes to vmail's boxes/ANYONE as vmail. Alice, a local user,
    // forwards hers to addresses whose local parts climb out of boxes/ (valid in a .forward,
    // which takes any dots, where SMTP refuses them): into vmail's home, into /tmp (under a name
    // of this run's own), into boxes/ itself.
    let name = w
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("atk")
        .to_string();
    let in_tmp = PathBuf::from(format!("/tmp/{name}-escaped"));
    std::fs::write(
        alice.join(".forward"),
        format!(
            "../escaped-one@virtual.test\n../../../../../tmp/{name}-escaped@virtual.test\n\
             .@virtual.test\n"
        ),
    )
    .expect("forward");
    chown(&alice.join(".forward"), 2351);
    let conf = format!(
        "listen on 127.0.0.1 port @PORT@\n{}\
         table virt {{ \"@virtual.test\" = vmail }}\n\
         action \"local\" maildir userbase <users>\n\
         action \"virtual\" maildir \"{}/%{{dest.user}}\" userbase <users> virtual <virt>\n\
         match from any for domain \"local.test\" action \"local\"\n\
         match from any for domain \"virtual.test\" action \"virtual\"\n",
        userbase(&[("alice", 2351, &alice), ("vmail", 2352, &vmail)]),
        boxes.display()
    );
    let d = refns::start(which, &conf, &[]);
    let mut lines = Vec::new();
    // Straight from SMTP the same local parts are syntax errors.
    for rcpt in [
        "RCPT TO:<../escaped@virtual.test>",
        "RCPT TO:<a/../../escaped@virtual.test>",
        "RCPT TO:<a/./b@virtual.test>",
    ] {
        lines.extend(transcript(&transaction(
            &d,
            "MAIL FROM:<sender@example.net>",
            &[rcpt],
            "Subject: dots\r\n\r\nhi",
        )));
    }
    let pairs = transaction(
        &d,
        "MAIL FROM:<sender@example.net>",
        &["RCPT TO:<alice@local.test>"],
        "Subject: dots\r\n\r\nhi",
    );
    lines.extend(transcript(&pairs));
    for (to, r) in outcomes(&d, 4) {
        lines.push(
            format!("delivery to {to}: {r}")
                .replace(&format!("tmp/{name}-escaped"), "tmp/W-escaped")
                .replace(&w.text(), "W"),
        );
    }
    let mut written = Vec::new();
    walk(w.path(), &mut |p| {
        if p.parent().is_some_and(|d| d.ends_with("new")) {
            written.push(
                p.parent()
                    .and_then(|d| d.parent())
                    .map(|m| m.display().to_string().replace(&w.text(), "W"))
                    .unwrap_or_default(),
            );
        }
    });
    if in_tmp.exists() {
        written.push("/tmp/W-escaped".into());
        let _ = std::fs::remove_dir_all(&in_tmp);
    }
    written.sort();
    lines.push(format!("maildirs written: {written:?}"));
    lines
}

/// `%{dest.user}` in a maildir path is the recipient's local part. From SMTP it cannot hold
/// `..` (a syntax error: an empty atom), but a `.forward` or an alias may name any address with
/// dots, and OpenSMTPD 6.8.0p2 then writes where the dots lead, as the virtual user:
/// `../x@virtual.test` in the virtual user's home beside the intended folder, `../../../../../tmp/x`
/// in /tmp, `.` into the folder itself. We differ on purpose: an expanded maildir path with a `.`
/// or `..` component that the action's own text does not have is a permanent failure
/// (`mail.maildir: PATH: expanded path escapes its folder`), and nothing is written.
#[test]
fn dotdot_in_expanded_maildir_paths_goes_nowhere() {
    if !require_root() {
        return;
    }
    for which in daemons() {
        let lines = dotdot_run(which);
        eprintln!("--- {which:?}\n{}", lines.join("\n"));
        let written = lines.last().cloned().unwrap_or_default();
        match which {
            // OpenSMTPD's behaviour, recorded so that a change in it shows.
            Which::Real => assert!(
                written.contains("/tmp/W-escaped") && written.contains("W/home/vmail/escaped-one"),
                "{written}"
            ),
            Which::Ours => {
                assert_eq!(written, "maildirs written: []", "{}", lines.join("\n"));
            }
        }
    }
}

fn subaddress_run(which: Which) -> Vec<String> {
    let w = World::new();
    let home = w.home("sub", 2381);
    let conf = format!(
        "listen on 127.0.0.1 port @PORT@\n{}\
         action \"local\" maildir userbase <users>\n\
         match from any for domain \"example.org\" action \"local\"\n",
        userbase(&[("sub", 2381, &home)])
    );
    let d = refns::start(which, &conf, &[]);
    let rcpts = ["sub+/new", "sub+/tmp", "sub+/cur", "sub+/new/new"];
    let mut lines = Vec::new();
    for r in rcpts {
        lines.extend(transcript(&transaction(
            &d,
            "MAIL FROM:<sender@example.net>",
            &[&format!("RCPT TO:<{r}@example.org>")],
            "Subject: subaddress\r\n\r\nhi",
        )));
    }
    for (to, r) in outcomes(&d, rcpts.len()) {
        lines.push(format!("delivery to {to}: {r}"));
    }
    // Where the messages are: each file's folder, and the folders made.
    let md = home.join("Maildir");
    let mut found = Vec::new();
    walk(&md, &mut |p| {
        let rel = p
            .strip_prefix(&md)
            .map(|r| r.display().to_string())
            .unwrap_or_default();
        if p.is_dir() {
            found.push(format!("dir {rel}"));
        } else {
            found.push(format!(
                "file in {}",
                Path::new(&rel)
                    .parent()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            ));
        }
    });
    found.sort();
    lines.extend(found);
    lines
}

/// The sub-address (`user+ext`) picks the Maildir++ folder `.ext` when it exists. From SMTP it
/// may hold `/`, so `sub+/new` would name `Maildir/./new`, which always exists, and a remote
/// sender could make Maildirs inside the user's `new/`, `tmp/`, `cur/`. OpenSMTPD's mail.maildir
/// turns `/` (and `^`, and the shell's characters) into `:` first, with an escape set of its own
/// (mail.maildir.c, not smtpd.h's): `.:new` does not exist and the mail goes to the Maildir. Ours
/// used smtpd.h's set and nested them (found by this test); now both deliver all four to `new/`.
#[test]
fn a_subaddress_with_a_slash_names_no_folder() {
    if !require_root() {
        return;
    }
    let runs: Vec<(Which, Vec<String>)> = daemons()
        .into_iter()
        .map(|w| (w, subaddress_run(w)))
        .collect();
    for (which, lines) in &runs {
        eprintln!("--- {which:?}\n{}", lines.join("\n"));
        assert_eq!(
            lines.iter().filter(|l| *l == "file in new").count(),
            4,
            "{which:?}: {lines:?}"
        );
        assert!(
            !lines
                .iter()
                .any(|l| l.starts_with("dir ") && l.contains('/')),
            "{which:?}: a Maildir inside the Maildir: {lines:?}"
        );
    }
    same_as_opensmtpd("sub-addresses with a slash", &runs);
}

// --- the offline queue -------------------------------------------------------------------------

/// An offline file as `sendmail` writes it while the daemon is down: its arguments joined by
/// `|` on the first line, then the message.
fn offline_file(subject: &str) -> String {
    format!("spy@example.org\nSubject: {subject}\n\nfrom the offline queue\n")
}

/// The files of the offline test, made in `plant/` (copied with `cp -a` into each daemon's
/// offline/, so both get the same): eight hostile ones, their names saying what they are, and
/// `9.honest`.
fn plant_offline(w: &World, nobody: u32, group: u32) -> PathBuf {
    let plant = w.path().join("plant");
    std::fs::create_dir_all(&plant).expect("plant");
    let put = |name: &str, content: &[u8], uid: u32, gid: u32| -> PathBuf {
        let p = plant.join(name);
        std::fs::write(&p, content).expect("offline file");
        std::os::unix::fs::chown(&p, Some(uid), Some(gid)).expect("chown");
        chmod(&p, 0o600);
        p
    };
    std::os::unix::fs::symlink("/etc/shadow", plant.join("1.symlink")).expect("symlink");
    put(
        "2.unknown-owner",
        offline_file("unknown owner").as_bytes(),
        2999,
        group,
    );
    let p = put(
        "3.hardlink",
        offline_file("hard link").as_bytes(),
        nobody,
        group,
    );
    std::fs::hard_link(&p, plant.join("3.hardlink-twin")).expect("hard link");
    let p = plant.join("4.fifo");
    mkfifo(&p);
    std::os::unix::fs::chown(&p, Some(nobody), Some(group)).expect("chown");
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i * 7 + 3) as u8)
        .filter(|b| *b != b'\n')
        .collect();
    put("5.garbage", &garbage, nobody, group);
    let p = put("6.huge", b"", nobody, group);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .and_then(|f| f.set_len(1 << 30))
        .expect("sparse file");
    put(
        "7.other-group",
        offline_file("other group").as_bytes(),
        nobody,
        65534,
    );
    let p = plant.join("8.directory");
    std::fs::create_dir(&p).expect("dir");
    put("9.honest", offline_file("honest").as_bytes(), nobody, group);
    plant
}

/// `cp -a FROM/. TO`, then TO's own owner and mode back (cp gives it FROM's).
fn cp_a(from: &Path, to: &Path) {
    let md = std::fs::metadata(to).expect("stat");
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .expect("cp");
    assert!(st.success(), "cp -a");
    std::os::unix::fs::chown(to, Some(md.uid()), Some(md.gid())).expect("chown");
    chmod(to, md.mode() & 0o7777);
}

fn offline_run(which: Which, nobody: u32, group: u32) -> Vec<String> {
    let w = World::new();
    let spy = w.home("spy", 2311);
    let plant = plant_offline(&w, nobody, group);
    let conf = format!(
        "listen on 127.0.0.1 port @PORT@\n{}\
         action \"local\" maildir userbase <users>\n\
         match from any for domain \"example.org\" action \"local\"\n\
         match from local for any action \"local\"\n",
        userbase(&[("spy", 2311, &spy)])
    );
    let _shadow = shadow_lock();
    let shadow_before = fingerprint(Path::new("/etc/shadow"));
    let started = Instant::now();
    let (d, offline) = match which {
        Which::Ours => {
            let mut first = Daemon::start(&conf, &[]);
            first.stop();
            // sendmail (as nobody) must reach the control socket at restart.
            chmod(first.dir.path(), 0o711);
            let offline = first.spool().join("offline");
            assert_eq!(std::fs::metadata(&offline).expect("offline/").gid(), group);
            cp_a(&plant, &offline);
            (first.restart(), offline)
        }
        Which::Real => {
            // OpenSMTPD in a namespace of its own, its spool's offline/ filled before it starts.
            let script = w.path().join("real-with-offline.sh");
            write_script(
                &script,
                &format!(
                    "#!/bin/sh\nexec unshare -m sh -c 'mount -t tmpfs -o mode=0755 tmpfs /var/spool && \
                     mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -m 0711 /var/spool/smtpd && \
                     mkdir -m 0770 /var/spool/smtpd/offline && \
                     chown root:{group} /var/spool/smtpd/offline && \
                     cp -a {}/. /var/spool/smtpd/offline/ && \
                     chown root:{group} /var/spool/smtpd/offline && \
                     chmod 0770 /var/spool/smtpd/offline && exec {REAL_SMTPD} \"$@\"' smtpd \"$@\"\n",
                    plant.display()
                ),
            );
            let d = Daemon::launch(&[], script.to_str().expect("utf-8"), &conf, &[], None);
            let offline = PathBuf::from(format!("/proc/{}/root/var/spool/smtpd/offline", d.pid()));
            (d, offline)
        }
    };
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{which:?}: slow start: {:?}",
        started.elapsed()
    );
    outcomes(&d, 1);
    // The hostile ones are tried beside the honest one; the last word is on the 1 GiB file,
    // which OpenSMTPD's child reads whole before it gives up.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !d
        .log()
        .iter()
        .any(|l| l.contains("couldn't enqueue") && l.contains("6.huge"))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut lines = Vec::new();
    for t in mail_texts(&spy.join("Maildir/new")) {
        let subject = t.lines().find(|l| l.starts_with("Subject:")).unwrap_or("");
        let from = t
            .lines()
            .find(|l| l.starts_with("Return-Path:"))
            .unwrap_or("");
        lines.push(format!("delivered: {subject} {from}").replace(&hostname(), "HOST"));
    }
    let dir_text = match which {
        Which::Ours => offline.display().to_string(),
        Which::Real => "/var/spool/smtpd/offline".to_string(),
    };
    let mut said: Vec<String> = d
        .log()
        .iter()
        .filter(|l| l.contains(&dir_text) || l.contains("getpwuid"))
        .map(|l| l.replace(&dir_text, "OFFLINE"))
        .collect();
    said.sort();
    lines.extend(said);
    let mut left: Vec<String> = std::fs::read_dir(&offline)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    lines.push(format!("left in offline/: {left:?}"));
    assert_eq!(fingerprint(Path::new("/etc/shadow")), shadow_before);
    if which == Which::Ours {
        let peak = peak_rss_kib(d.pid());
        eprintln!("our daemon's peak resident size: {peak} KiB");
        assert!(
            peak < 200 * 1024,
            "the daemon grew to {peak} KiB reading the offline queue"
        );
    }
    lines
}

/// While the daemon is down, `sendmail` leaves messages in `SPOOL/offline/` (group-writable by
/// the queue group), which the daemon submits again at start as each file's owner. Someone who
/// can write there drops, before a start: a symbolic link to /etc/shadow, a file of a uid
/// without a passwd entry, a hard link, a named pipe, garbage, a 1 GiB file without a newline,
/// a file of another group, a directory. The daemon starts as always, reads none of them (ours
/// stays small: it reads at most a MiB of a first line), says what OpenSMTPD 6.8.0p2 says about
/// each and leaves them where it leaves them, while the honest file beside them is delivered
/// (as its owner, `nobody`) and removed.
#[test]
fn hostile_offline_files_are_left_alone() {
    if !require_root() {
        return;
    }
    let (Ok(Some(nobody)), Ok(Some(queue))) = (
        nix::unistd::User::from_name("nobody"),
        nix::unistd::Group::from_name("opensmtpq"),
    ) else {
        skip("needs the users nobody and opensmtpq (the opensmtpd package)");
        return;
    };
    let runs: Vec<(Which, Vec<String>)> = daemons()
        .into_iter()
        .map(|w| (w, offline_run(w, nobody.uid.as_raw(), queue.gid.as_raw())))
        .collect();
    for (which, lines) in &runs {
        eprintln!("--- {which:?}\n{}", lines.join("\n"));
        assert!(
            lines.iter().filter(|l| l.starts_with("delivered:")).count() == 1
                && lines
                    .iter()
                    .any(|l| l.contains("Subject: honest") && l.contains("nobody@")),
            "{which:?}: {lines:?}"
        );
    }
    same_as_opensmtpd("offline queue", &runs);
}

// --- oversized and malformed input -------------------------------------------------------------

/// Sends `input` on a fresh connection from another thread while reading here, so that a reply
/// the server sends (and closes after) in the middle of a large input is not lost to a reset;
/// returns the greeting's successor replies: one per element of `input`, then `(closed)` if the
/// server closed the connection.
fn raw_session(addr: std::net::SocketAddr, input: Vec<Vec<u8>>) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    let stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let read_reply = |reader: &mut BufReader<std::net::TcpStream>| -> Option<String> {
        let mut all = String::new();
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return (!all.is_empty()).then_some(all),
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            let more = text.as_bytes().get(3) == Some(&b'-');
            all.push_str(&text);
            if !more {
                return Some(all);
            }
        }
    };
    let mut out = Vec::new();
    if read_reply(&mut reader).is_none() {
        return vec!["(no greeting)".into()];
    }
    for chunk in input {
        let mut w = stream.try_clone().expect("clone");
        let writer = std::thread::spawn(move || {
            let _ = w.write_all(&chunk);
        });
        match read_reply(&mut reader) {
            Some(r) => out.push(r),
            None => {
                out.push("(closed)".into());
                let _ = writer.join();
                return out;
            }
        }
        let _ = writer.join();
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    if read_reply(&mut reader).is_none() {
        out.push("(closed)".into());
    }
    out
}

/// The inputs of the malformed-input test: a name and the commands, each followed by one reply.
fn malformed_cases() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let b = |s: &str| s.as_bytes().to_vec();
    let ehlo = || b("EHLO attacker.example\r\n");
    let mail = || b("MAIL FROM:<sender@example.org>\r\n");
    let rcpt = || b("RCPT TO:<victim@example.org>\r\n");
    let mut huge_command = b"MAIL FROM:<".to_vec();
    huge_command.extend(std::iter::repeat_n(b'a', 16 << 20));
    huge_command.extend(b">\r\n");
    let mut huge_header = b"Subject: ".to_vec();
    huge_header.extend(std::iter::repeat_n(b'x', 100_000));
    huge_header.extend(b"\r\n\r\nbody\r\n.\r\n");
    let mut endless_headers = Vec::new();
    for i in 0..150_000 {
        endless_headers.extend(format!("X-Header-{i}: v\r\n").as_bytes());
    }
    endless_headers.extend(b"\r\nbody\r\n.\r\n");
    let mut endless_folding = b"Subject: start\r\n".to_vec();
    for _ in 0..150_000 {
        endless_folding.extend(b"\tand more\r\n");
    }
    endless_folding.extend(b"\r\nbody\r\n.\r\n");
    let mut many = vec![ehlo(), mail()];
    for i in 0..1001 {
        many.push(format!("RCPT TO:<victim+{i}@example.org>\r\n").into_bytes());
    }
    many.push(b("RSET\r\n"));
    vec![
        (
            "a 16 MiB command line",
            vec![ehlo(), huge_command, b("NOOP\r\n")],
        ),
        (
            "a NUL after the address",
            vec![
                ehlo(),
                b("MAIL FROM:<sender@example.org>\0;touch marker;\r\n"),
                b("NOOP\r\n"),
            ],
        ),
        (
            "a NUL inside the local part",
            vec![
                ehlo(),
                mail(),
                b("RCPT TO:<victim\0;touch marker;@example.org>\r\n"),
                b("NOOP\r\n"),
            ],
        ),
        (
            "a NUL in the greeting",
            vec![b("EHLO a\0b\r\n"), b("NOOP\r\n")],
        ),
        (
            "8-bit in HELO",
            vec![b("EHLO h\u{e9}llo.example\r\n"), b("HELO \u{ff}\r\n")],
        ),
        (
            "8-bit in the sender",
            vec![
                ehlo(),
                b("MAIL FROM:<caf\u{e9}@example.org>\r\n"),
                b("MAIL FROM:<x@\u{e4}.example.org>\r\n"),
            ],
        ),
        (
            "8-bit raw bytes in commands",
            vec![
                ehlo(),
                vec![b'N', b'O', b'O', b'P', b' ', 0xff, 0xfe, b'\r', b'\n'],
                vec![0xc0, 0xaf, b'\r', b'\n'],
                mail(),
                vec![
                    b'R', b'C', b'P', b'T', b' ', b'T', b'O', b':', b'<', b'v', 0xe9, b'@', b'e',
                    b'x', b'a', b'm', b'p', b'l', b'e', b'.', b'o', b'r', b'g', b'>', b'\r', b'\n',
                ],
            ],
        ),
        (
            "8-bit in a parameter",
            vec![
                ehlo(),
                b("MAIL FROM:<sender@example.org> BODY=8BITMIME\u{ff}\r\n"),
                b("MAIL FROM:<sender@example.org> SIZE=1\u{e9}\r\n"),
            ],
        ),
        (
            "a header line of 100000 bytes",
            vec![
                ehlo(),
                mail(),
                rcpt(),
                b("DATA\r\n"),
                huge_header,
                b("NOOP\r\n"),
            ],
        ),
        (
            "150000 header lines over max-message-size",
            vec![
                ehlo(),
                mail(),
                rcpt(),
                b("DATA\r\n"),
                endless_headers,
                b("NOOP\r\n"),
            ],
        ),
        (
            "one header folded 150000 times",
            vec![
                ehlo(),
                mail(),
                rcpt(),
                b("DATA\r\n"),
                endless_folding,
                b("NOOP\r\n"),
            ],
        ),
        ("1001 recipients", many),
    ]
}

fn malformed_run(which: Which) -> Vec<String> {
    let w = World::new();
    let victim = w.home("victim", 2361);
    let conf = format!(
        "smtp max-message-size 1M\n\
         listen on 127.0.0.1 port @PORT@\n{}\
         action \"local\" maildir userbase <users>\n\
         match from any for domain \"example.org\" action \"local\"\n",
        userbase(&[("victim", 2361, &victim)])
    );
    let d = refns::start(which, &conf, &[]);
    let mut lines = Vec::new();
    for (name, input) in malformed_cases() {
        // A multi-line reply (EHLO's) as its first line and how many there were.
        let replies: Vec<String> = normalize(&raw_session(d.addr(), input))
            .into_iter()
            .map(|r| match r.lines().count() {
                0 | 1 => r,
                n => format!("{} ({n} lines)", r.lines().next().unwrap_or("")),
            })
            .collect();
        // Long runs of the same reply (the recipients) once, with their count.
        let mut runs: Vec<(String, usize)> = Vec::new();
        for r in replies {
            match runs.last_mut() {
                Some((last, n)) if *last == r => *n += 1,
                _ => runs.push((r, 1)),
            }
        }
        let text: Vec<String> = runs
            .into_iter()
            .map(|(r, n)| if n > 1 { format!("{n} x {r}") } else { r })
            .collect();
        lines.push(format!("{name}: {}", text.join(" | ")));
    }
    // Still serving.
    let mut c = Client::connect(d.addr());
    assert!(
        c.reply().starts_with("220 "),
        "{which:?}: no longer serving"
    );
    assert!(w.markers().is_empty());
    assert_eq!(
        maildir_count(&victim.join("Maildir")),
        0,
        "{which:?}: something was delivered"
    );
    if which == Which::Ours {
        let peak = peak_rss_kib(d.pid());
        eprintln!("our daemon's peak resident size: {peak} KiB");
        assert!(
            peak < 100 * 1024,
            "the daemon grew to {peak} KiB on malformed input"
        );
    }
    lines
}

/// Oversized and malformed input, each on its own connection: a 16 MiB command line, NULs in
/// commands and addresses, 8-bit bytes in every command, a 100 000-byte header line, 150 000
/// headers past `max-message-size`, a header folded 150 000 times, 1001 recipients. Every reply
/// (and whether the connection is closed after it) is OpenSMTPD 6.8.0p2's; nothing is
/// delivered, the daemon serves on, and ours stays small (it never buffers a line).
#[test]
fn oversized_and_malformed_input_is_refused_as_opensmtpd_does() {
    if !require_root() {
        return;
    }
    let runs: Vec<(Which, Vec<String>)> = daemons()
        .into_iter()
        .map(|w| (w, malformed_run(w)))
        .collect();
    for (which, lines) in &runs {
        eprintln!("--- {which:?}\n{}", lines.join("\n"));
    }
    same_as_opensmtpd("malformed input", &runs);
}

// --- a local user's sendmail -------------------------------------------------------------------

/// `sendmail ARGS` from a local user, with the message on standard input.
fn sendmail_cases(marker: &dyn Fn(usize) -> String) -> Vec<Vec<String>> {
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    vec![
        v(&["-f", &format!(";touch {};", marker(0)), "victim"]),
        v(&[
            "-f",
            &format!("`touch${{IFS}}{}`@example.org", marker(1)),
            "victim",
        ]),
        v(&[&format!("|touch {}", marker(2))]),
        v(&[&marker(3)]),
        v(&["-F", &format!("\"; touch {}; \"", marker(4)), "victim"]),
        v(&[&format!("victim,|touch {}", marker(5))]),
        v(&["-f", &format!("$(touch {})", marker(6)), "victim"]),
    ]
}

fn sendmail_run(which: Which, nobody: u32) -> Vec<String> {
    let w = World::new();
    let victim = w.home("victim", 2371);
    std::fs::create_dir_all(w.path().join("bin")).expect("bin");
    write_script(&w.path().join("bin/record"), RECORD);
    let conf = format!(
        "listen on 127.0.0.1 port @PORT@\n{}\
         action \"mda\" mda \"{dir}/bin/record %{{sender}} %{{rcpt}}\" userbase <users>\n\
         match from local for local action \"mda\"\n\
         match from any for domain \"example.org\" action \"mda\"\n",
        userbase(&[("victim", 2371, &victim)]),
        dir = w.text()
    );
    let d = refns::start(which, &conf, &[]);
    chmod(d.dir.path(), 0o711);
    let marker = |i: usize| format!("{}/marker{i}", w.text());
    let mut lines = Vec::new();
    let mut accepted = 0;
    for args in sendmail_cases(&marker) {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let stdin = "Subject: local\n\nhi\n";
        let out = match which {
            Which::Ours => ctl(&d, "sendmail", &a, stdin, Some(nobody)),
            // OpenSMTPD's own (setgid opensmtpq), as nobody, in the daemon's mount namespace
            // (its control socket).
            Which::Real => {
                let mut child = std::process::Command::new("nsenter")
                    .args(["-t", &d.pid().to_string(), "-m"])
                    .args(["-S", &nobody.to_string(), "-G", "65534", "--"])
                    .arg("/usr/sbin/sendmail")
                    .args(&a)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("nsenter sendmail");
                if let Some(mut i) = child.stdin.take() {
                    let _ = i.write_all(stdin.as_bytes());
                }
                child.wait_with_output().expect("sendmail")
            }
        };
        if out.status.success() {
            accepted += 1;
        }
        let said = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
        lines.push(
            format!("sendmail {a:?} => exit {:?} {said}", out.status.code())
                .replace(&w.text(), "W")
                .replace(&hostname(), "HOST"),
        );
    }
    for (to, r) in outcomes(&d, accepted) {
        lines.push(format!("delivery to {to}: {r}").replace(&hostname(), "HOST"));
    }
    let mut argv: Vec<String> = std::fs::read_to_string(victim.join("argv"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.replace(&w.text(), "W").replace(&hostname(), "HOST"))
        .collect();
    argv.sort();
    lines.extend(argv);
    assert!(
        w.markers().is_empty(),
        "{which:?}: {:?}\n{}",
        w.markers(),
        lines.join("\n")
    );
    lines
}

/// A local user's `sendmail` with a sender, full name and recipients made to reach a shell
/// (`-f ';touch M;'`, `-f '$(touch M)'`, `-F`, `|cmd` and `/path` recipients, a list with a
/// pipe in it): nothing runs, what is delivered reaches the mda command defused, and the exit
/// codes, error lines and deliveries are those of OpenSMTPD's own (setgid) smtpctl against its
/// daemon.
#[test]
fn sendmail_arguments_from_a_local_user_run_nothing() {
    if !require_root() {
        return;
    }
    let Ok(Some(nobody)) = nix::unistd::User::from_name("nobody") else {
        skip("no user nobody");
        return;
    };
    let runs: Vec<(Which, Vec<String>)> = daemons()
        .into_iter()
        .map(|w| (w, sendmail_run(w, nobody.uid.as_raw())))
        .collect();
    for (which, lines) in &runs {
        eprintln!("--- {which:?}\n{}", lines.join("\n"));
    }
    same_as_opensmtpd("sendmail from a local user", &runs);
}

// --- the control socket from an unprivileged user ----------------------------------------------

/// smtpctl commands that only root may give.
const ROOT_ONLY: &[&[&str]] = &[
    &["pause", "smtp"],
    &["pause", "mda"],
    &["remove", "all"],
    &["schedule", "all"],
    &["show", "queue"],
    &["show", "stats"],
    &["log", "verbose"],
    &["trace", "all"],
    &["update", "table", "aliases"],
    &["stop"],
];

fn control_run(which: Which, nobody: u32) -> Vec<String> {
    let w = World::new();
    let victim = w.home("victim", 2391);
    let conf = format!(
        "listen on 127.0.0.1 port @PORT@\n{}\
         table aliases {{ postmaster = victim }}\n\
         action \"later\" mda \"exit 75\" userbase <users>\n\
         match from any for domain \"example.org\" action \"later\"\n",
        userbase(&[("victim", 2391, &victim)])
    );
    let d = refns::start(which, &conf, &[]);
    chmod(d.dir.path(), 0o711);
    // A message waits in the queue (its mda says "later").
    let pairs = transaction(
        &d,
        "MAIL FROM:<sender@example.net>",
        &["RCPT TO:<victim@example.org>"],
        "Subject: waiting\r\n\r\nhi",
    );
    assert!(pairs.iter().any(|(c, r)| c == "." && r.starts_with("250")));
    outcomes(&d, 1);
    let queue_before = refns::smtpctl(which, &d, &["show", "queue"], "");
    let queued = String::from_utf8_lossy(&queue_before.stdout)
        .lines()
        .count();
    assert_eq!(queued, 1, "{which:?}: {queue_before:?}");
    let mut lines = Vec::new();
    for args in ROOT_ONLY {
        let out = match which {
            Which::Ours => ctl(&d, "smtpctl", args, "", Some(nobody)),
            Which::Real => std::process::Command::new("nsenter")
                .args(["-t", &d.pid().to_string(), "-m"])
                .args(["-S", &nobody.to_string(), "-G", "65534", "--"])
                .arg("/usr/sbin/smtpctl")
                .args(*args)
                .stdin(std::process::Stdio::null())
                .output()
                .expect("nsenter smtpctl"),
        };
        lines.push(format!(
            "smtpctl {} => exit {:?} {}{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim_end(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }
    // Still running, not paused, the message still queued.
    assert!(d.exit_status().is_none(), "{which:?}: stopped by nobody");
    let pairs = transaction(
        &d,
        "MAIL FROM:<sender@example.net>",
        &["RCPT TO:<victim@example.org>"],
        "Subject: still open\r\n\r\nhi",
    );
    assert!(
        pairs.iter().any(|(c, r)| c == "." && r.starts_with("250")),
        "{which:?}: {pairs:?}"
    );
    let queue_after = refns::smtpctl(which, &d, &["show", "queue"], "");
    assert_eq!(
        String::from_utf8_lossy(&queue_after.stdout).lines().count(),
        2,
        "{which:?}: {queue_after:?}"
    );
    if which == Which::Ours {
        big_frames_from_nobody(&d, nobody);
    }
    lines
}

/// As nobody, 32 connections each send all but the last byte of a frame of the largest size the
/// protocol allows (16 MiB), which only root's requests can need, and wait: the daemon must not
/// hold them (it reads a non-root peer's frame only when it is small), and serves on.
fn big_frames_from_nobody(d: &Daemon, nobody: u32) {
    let script = r#"
import socket, struct, sys
path = sys.argv[1]
n = 16 * 1024 * 1024
socks = []
for i in range(32):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.settimeout(10)
    try:
        s.sendall(struct.pack(">I", n) + bytes([1, 2]) + b"\0" * (n - 3))
    except OSError:
        pass
    socks.append(s)
print("sent", flush=True)
sys.stdin.read()
"#;
    let sock = d.dir.path().join("smtpd.sock");
    let mut child = std::process::Command::new("setpriv")
        .args([
            &format!("--reuid={nobody}"),
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            script,
        ])
        .arg(&sock)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut out = String::new();
    if let Some(o) = child.stdout.as_mut() {
        use std::io::Read;
        let mut b = [0u8; 5];
        let _ = o.read_exact(&mut b);
        out.push_str(&String::from_utf8_lossy(&b));
    }
    std::thread::sleep(Duration::from_millis(500));
    let peak = peak_rss_kib(d.pid());
    drop(child.stdin.take());
    let _ = child.wait();
    eprintln!("big frames from nobody ({out}): our daemon's peak resident size {peak} KiB");
    assert!(
        peak < 200 * 1024,
        "an unprivileged peer made the daemon hold {peak} KiB"
    );
    let mut c = Client::connect(d.addr());
    assert!(c.reply().starts_with("220 "));
}

/// The control socket is open to every local user (mode 0666), who may only submit mail
/// through it. As `nobody`: pause, remove, schedule, show, log, trace, update and stop are all
/// refused with the exit codes and words of OpenSMTPD's smtpctl against its daemon; the daemon
/// goes on, unpaused, its queue intact. Beyond OpenSMTPD's imsg framing (16 KB messages), ours
/// takes frames up to 16 MiB: 32 connections of nobody sending one each must not cost the
/// daemon their size.
#[test]
fn the_control_socket_refuses_unprivileged_users() {
    if !require_root() || !require_tool("/usr/bin/python3") {
        return;
    }
    let Ok(Some(nobody)) = nix::unistd::User::from_name("nobody") else {
        skip("no user nobody");
        return;
    };
    let runs: Vec<(Which, Vec<String>)> = daemons()
        .into_iter()
        .map(|w| (w, control_run(w, nobody.uid.as_raw())))
        .collect();
    for (which, lines) in &runs {
        eprintln!("--- {which:?}\n{}", lines.join("\n"));
    }
    same_as_opensmtpd("control socket as nobody", &runs);
}

// --- CVE-2020-8794: a relay's reply into the envelope file -------------------------------------

/// What the hostile server answers to `RCPT TO:<vN@remote.test>`: raw bytes. `{M}` is a marker
/// path. Each is a temporary failure, so that its text is kept in the envelope (`errorline`).
fn hostile_replies(marker: &dyn Fn(usize) -> String) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        // Qualys's idea: a reply whose text, written into the envelope, starts lines of its own.
        format!(
            "451-4.0.0 first\r\n451 4.0.0 second\ndispatcher: local\ntype: mda\n\
             mda-exec: touch {}\r\n",
            marker(0)
        )
        .into_bytes(),
        format!("451 4.0.0 x\rmda-exec: touch {}\r\n", marker(2)).into_bytes(),
        format!(
            "451 4.0.0 x\0\ndispatcher: local\nmda-exec: touch {}\r\n",
            marker(3)
        )
        .into_bytes(),
        format!("451 4.0.0 `touch {m}` $(touch {m})\r\n", m = marker(4)).into_bytes(),
    ];
    // A line longer than any buffer, and a reply of 200 continuation lines.
    let mut long = b"451 4.0.0 ".to_vec();
    long.extend(std::iter::repeat_n(b'A', 70_000));
    long.extend(b"\r\n");
    v.push(long);
    let mut many = Vec::new();
    for _ in 0..200 {
        many.extend(b"451-");
        many.extend(std::iter::repeat_n(b'B', 1000));
        many.extend(b"\r\n");
    }
    many.extend(
        format!(
            "451 4.0.0 end\ntype: mda\nmda-exec: touch {}\r\n",
            marker(5)
        )
        .as_bytes(),
    );
    v.push(many);
    v
}

/// A relay that answers EHLO and MAIL, and each RCPT with its hostile reply.
fn hostile_relay(replies: Vec<Vec<u8>>) -> u16 {
    use std::io::{BufRead, BufReader};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let replies = std::sync::Arc::new(replies);
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let replies = replies.clone();
            std::thread::spawn(move || {
                let mut w = s.try_clone().expect("clone");
                let mut r = BufReader::new(s);
                let _ = w.write_all(b"220 hostile.test ESMTP\r\n");
                loop {
                    let mut line = Vec::new();
                    match r.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let text = String::from_utf8_lossy(&line).to_ascii_uppercase();
                    let answer: Vec<u8> = if text.starts_with("EHLO") {
                        b"250 hostile.test\r\n".to_vec()
                    } else if let Some(rest) = text.strip_prefix("RCPT TO:<V") {
                        let n: usize = rest
                            .split('@')
                            .next()
                            .and_then(|d| d.parse().ok())
                            .unwrap_or(0);
                        replies
                            .get(n)
                            .cloned()
                            .unwrap_or(b"451 4.0.0 ?\r\n".to_vec())
                    } else if text.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n");
                        return;
                    } else {
                        b"250 2.0.0 ok\r\n".to_vec()
                    };
                    if w.write_all(&answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// The envelope files of a spool's queue/ (each `key: value` line), by file.
fn envelope_files(queue: &Path) -> Vec<(PathBuf, Vec<String>)> {
    let mut out = Vec::new();
    walk(queue, &mut |p| {
        let is_envelope = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.len() == 16 && n.bytes().all(|b| b.is_ascii_hexdigit()));
        if is_envelope && p.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
            out.push((p.to_path_buf(), text.lines().map(str::to_string).collect()));
        }
    });
    out
}

fn relay_reply_run(which: Which) -> Vec<String> {
    let w = World::new();
    let marker = |i: usize| format!("{}/marker{i}", w.text());
    let replies = hostile_replies(&marker);
    let n = replies.len();
    let port = hostile_relay(replies);
    let conf = format!(
        "listen on 127.0.0.1 port @PORT@\n\
         action \"out\" relay host smtp://127.0.0.1:{port}\n\
         match from any for domain \"remote.test\" action \"out\"\n"
    );
    let mut d = refns::start(which, &conf, &[]);
    for i in 0..n {
        let pairs = transaction(
            &d,
            "MAIL FROM:<sender@example.net>",
            &[&format!("RCPT TO:<v{i}@remote.test>")],
            "Subject: relay\r\n\r\nhi",
        );
        assert!(
            pairs.iter().any(|(c, r)| c == "." && r.starts_with("250")),
            "{pairs:?}"
        );
    }
    let got = outcomes(&d, n);
    let mut lines: Vec<String> = got
        .iter()
        .map(|(to, r)| {
            let r: String = r.chars().take(200).collect();
            format!("delivery to {to}: {r}").replace(&w.text(), "W")
        })
        .collect();
    let queue = match which {
        Which::Ours => d.spool().join("queue"),
        Which::Real => PathBuf::from(format!("/proc/{}/root/var/spool/smtpd/queue", d.pid())),
    };
    let envelopes = envelope_files(&queue);
    assert_eq!(envelopes.len(), n, "{which:?}: {envelopes:?}");
    for (path, fields) in &envelopes {
        let keys: Vec<&str> = fields
            .iter()
            .map(|l| l.split(':').next().unwrap_or(""))
            .collect();
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            keys.len(),
            "{which:?}: a key twice in {}: {fields:?}",
            path.display()
        );
        assert!(
            !keys.iter().any(|k| k.starts_with("mda")),
            "{which:?}: {}: {fields:?}",
            path.display()
        );
        assert!(
            fields.iter().any(|l| l == "type: mta"),
            "{which:?}: {fields:?}"
        );
        if let Some(e) = fields.iter().find(|l| l.starts_with("errorline: ")) {
            let e: String = e.chars().take(120).collect();
            lines.push(e.replace(&w.text(), "W"));
        }
    }
    if which == Which::Ours {
        // The envelopes read back at start: still relay envelopes, nothing runs.
        d.stop();
        let d2 = d.restart();
        std::thread::sleep(Duration::from_secs(1));
        assert!(d2.exit_status().is_none());
    }
    assert!(w.markers().is_empty(), "{which:?}: {:?}", w.markers());
    lines.sort();
    lines
}

/// CVE-2020-8794 (OpenSMTPD 6.6.1, remote root through the relay client): a hostile server's
/// reply text, kept as the envelope's `errorline`, could start lines of its own in the envelope
/// file, which were read back as fields (`type: mda`, `mda-exec: ...`). The relay here answers
/// each RCPT with such replies: newlines, a bare CR, a NUL, shell characters, a 70 000-byte line,
/// 200 continuation lines. Every envelope stays one `mta` envelope with each field once and no
/// `mda-*` field, read back at restart runs nothing, and no marker appears.
#[test]
fn cve_2020_8794_relay_replies_stay_in_their_field() {
    if !require_root() {
        return;
    }
    for which in daemons() {
        let lines = relay_reply_run(which);
        eprintln!("--- {which:?}\n{}", lines.join("\n"));
    }
}
