//! `smtpd`'s command line behaves as OpenSMTPD 6.8's: usage, `-h`, `-D` macros, missing files.
//! Each case's expected output was recorded from the real program; when it is installed the
//! test runs it too.

#[path = "../../../tests/support/skip.rs"]
mod skip;
use skip::*;

use std::path::Path;
use std::process::Command;

const REAL_SMTPD: &str = "/usr/sbin/smtpd";
/// Our own line in `-h`, after OpenSMTPD's `version:` line (which scripts parse).
const RSMTPD_LINE: &str = concat!(
    "rsmtpd ",
    env!("CARGO_PKG_VERSION"),
    ", a drop-in replacement for OpenSMTPD 6.8.0p2\n"
);
const USAGE: &str = "usage: smtpd [-dFhnv] [-D macro=value] [-f file] [-P system] [-T trace]\n";

fn run(bin: &str, dir: &Path, args: &[&str]) -> (String, i32) {
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run smtpd");
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    (text, out.status.code().unwrap_or(-1))
}

#[test]
fn command_line_matches_opensmtpd() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("mac.conf"),
        "d = \"nope\"\nmatch from any for domain $d reject\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("mac2.conf"),
        "match from any for domain $d reject\n",
    )
    .expect("write");
    // getopt's messages start with the program's path as invoked.
    let usage_after = |first: &str| format!("ARGV0: {}\n{}", first, USAGE);
    let cases: Vec<(Vec<&str>, String, i32)> = vec![
        (
            vec!["-h"],
            format!("version: OpenSMTPD 6.8.0p2\nRSMTPD{}", USAGE),
            1,
        ),
        (vec!["-q"], usage_after("invalid option -- 'q'"), 1),
        (
            vec!["-n", "-f", "mac.conf", "-D"],
            usage_after("option requires an argument -- 'D'"),
            1,
        ),
        (vec!["-n", "-f", "mac.conf", "extra"], USAGE.to_string(), 1),
        // -D overrides the file's own definition of the macro.
        (
            vec!["-n", "-D", "d=example.org", "-f", "mac.conf"],
            "configuration OK\n".into(),
            0,
        ),
        (
            vec!["-n", "-D", "d", "-f", "mac.conf"],
            "warn: could not parse macro definition d\nconfiguration OK\n".into(),
            0,
        ),
        // The name ends at the last '=': this defines "d=a".
        (
            vec!["-n", "-D", "d=a=b", "-f", "mac2.conf"],
            "mac2.conf:1: macro 'd' not defined\nmac2.conf:1: syntax error\n\
             warn: no rules, nothing to do\n"
                .into(),
            1,
        ),
        // -T takes OpenSMTPD's trace names only: mda and control are none of them.
        (
            vec![
                "-n", "-T", "mda", "-T", "control", "-T", "mta", "-f", "mac.conf",
            ],
            "warn: unknown trace flag \"mda\"\nwarn: unknown trace flag \"control\"\n\
             configuration OK\n"
                .into(),
            0,
        ),
        (
            vec!["-n", "-f", "/nonexistent/smtpd.conf"],
            "pushfile: /nonexistent/smtpd.conf: No such file or directory\n".into(),
            1,
        ),
    ];
    let ours = env!("CARGO_BIN_EXE_smtpd");
    let real = require_tool(REAL_SMTPD);
    for (args, expected, code) in &cases {
        assert_eq!(
            run(ours, dir.path(), args),
            (
                expected
                    .replace("ARGV0", ours)
                    .replace("RSMTPD", RSMTPD_LINE),
                *code
            ),
            "smtpd {}",
            args.join(" ")
        );
        if real {
            assert_eq!(
                run(REAL_SMTPD, dir.path(), args),
                (
                    expected.replace("ARGV0", REAL_SMTPD).replace("RSMTPD", ""),
                    *code
                ),
                "the real smtpd {}",
                args.join(" ")
            );
        }
    }
}

#[test]
fn dump_is_printed_with_n_v_and_parses_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("smtpd.conf");
    std::fs::write(
        &conf,
        "table aliases { root = admin }\naction \"l\" maildir alias <aliases>\n\
         match from any for domain \"example.org\" action \"l\"\n",
    )
    .expect("write");
    let ours = env!("CARGO_BIN_EXE_smtpd");
    let out = Command::new(ours)
        .args(["-n", "-v", "-f"])
        .arg(&conf)
        .output()
        .expect("run");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "configuration OK\n");
    let dump = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        dump,
        "table \"aliases\" { \"root\" = \"admin\" }\n\
         action \"l\" maildir alias <\"aliases\">\n\
         match from any for domain { \"example.org\" } action \"l\"\n"
    );
    let again = dir.path().join("dump.conf");
    std::fs::write(&again, &dump).expect("write");
    let out2 = Command::new(ours)
        .args(["-n", "-v", "-f"])
        .arg(&again)
        .output()
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&out2.stdout), dump);
}

/// The smtpd(8) page the Debian package installs (etc/man/smtpd.8) has the usage line's
/// synopsis and an entry for each of its options.
#[test]
fn the_man_page_documents_the_usage_line() {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../etc/man/smtpd.8"
    ))
    .expect("etc/man/smtpd.8");
    let dir = tempfile::tempdir().expect("tempdir");
    let (help, _) = run(env!("CARGO_BIN_EXE_smtpd"), dir.path(), &["-h"]);
    assert!(help.ends_with(USAGE), "smtpd -h: {help}");
    let options = page
        .split_once(".SH OPTIONS")
        .and_then(|(_, rest)| rest.split_once("\n.SH "))
        .map(|(section, _)| section)
        .expect("an OPTIONS section");
    let mut flags: Vec<char> = Vec::new();
    for group in USAGE.split('[').skip(1) {
        let group = group.trim_start_matches('-');
        match group.split_once(' ') {
            // `[-f file]`: one flag with an argument.
            Some((flag, _)) if flag.len() == 1 => flags.extend(flag.chars()),
            // `[-dFhnv]`: flags without one.
            _ => flags.extend(group.trim_end_matches([']', ' ', '\n']).chars()),
        }
    }
    assert_eq!(flags.len(), 9, "flags of {USAGE}: {flags:?}");
    for flag in flags {
        assert!(
            options.contains(&format!(".B \\-{flag}\n"))
                || options.contains(&format!(".BI \\-{flag} ")),
            "etc/man/smtpd.8 has no entry for -{flag}"
        );
        assert!(
            page.contains(&format!("\\-{flag}")),
            "the synopsis lacks -{flag}"
        );
    }
}
