//! The smtpctl(8) page the Debian package installs (etc/man/smtpctl.8, issue 10 item 4) lists
//! exactly the commands of the parser (`PATTERNS`, smtpctl.c's table), in its order: a command
//! added or removed without the page fails here.

use rsmtpd_smtpctl::parser::PATTERNS;

/// A pattern as the page writes it: `<evpid>` in italics.
fn roff(pattern: &str) -> String {
    pattern
        .split(' ')
        .map(
            |w| match w.strip_prefix('<').and_then(|w| w.strip_suffix('>')) {
                Some(param) => format!("\\fI{param}\\fR"),
                None => w.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_man_page_lists_every_command_of_the_parser() {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../etc/man/smtpctl.8"
    ))
    .expect("etc/man/smtpctl.8");
    let commands = page
        .split_once(".SH COMMANDS")
        .and_then(|(_, rest)| rest.split_once("\n.nf\n"))
        .and_then(|(_, rest)| rest.split_once("\n.fi\n"))
        .map(|(block, _)| block.lines().collect::<Vec<_>>())
        .expect("a COMMANDS section with a .nf/.fi block");
    let want: Vec<String> = PATTERNS.iter().map(|p| roff(p)).collect();
    assert_eq!(commands, want, "etc/man/smtpctl.8 against parser::PATTERNS");
}
