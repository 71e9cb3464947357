//! Where each declaration and option was written: the file (as the config names it, an
//! include's own name inside it) and the line, which the daemon's refusals at start name.

mod common;

use common::{parse_text, TestEnv};
use rsmtpd_config::{ListenOpt, Written};

#[test]
fn declarations_and_options_know_their_lines() {
    let env = TestEnv::new();
    env.put(
        "/etc/inc.conf",
        "\n\ntable ext ldap:/etc/ldap.conf\nfilter f proc-exec \"/bin/true\"\n",
    );
    let text = "pki mx.test cert \"/c\"\npki mx.test key \"/k\"\nca cax cert \"/ca\"\n\
                include \"/etc/inc.conf\"\n\
                listen on lo port 25 \\\n  tls pki mx.test\n\
                listen on socket\n\
                action \"out\" relay\n\
                proc p \"/bin/cat\"\n\
                smtp ciphers \"HIGH\"\n\
                match from any \\\n  auth for any action \"out\"\n";
    let c = parse_text(&env, "/etc/smtpd.conf", text).expect("parses");
    let pos = |p: &rsmtpd_config::Position| format!("{}", p);
    assert_eq!(pos(&c.pki("mx.test").expect("pki").at), "/etc/smtpd.conf:1");
    assert_eq!(pos(&c.ca("cax").expect("ca").at), "/etc/smtpd.conf:3");
    assert_eq!(pos(&c.table("ext").expect("table").at), "/etc/inc.conf:3");
    assert_eq!(pos(&c.filter("f").expect("filter").at), "/etc/inc.conf:4");
    assert_eq!(pos(&c.proc_("f").expect("proc").at), "/etc/inc.conf:4");
    // The include line ends inside the included file: the parent resumes on its own line 5.
    let l = &c.listeners[0];
    assert_eq!(pos(&l.at), "/etc/smtpd.conf:5");
    assert_eq!(pos(l.option_at(ListenOpt::Port)), "/etc/smtpd.conf:5");
    assert_eq!(pos(l.option_at(ListenOpt::Tls)), "/etc/smtpd.conf:6");
    assert_eq!(pos(l.option_at(ListenOpt::Pki)), "/etc/smtpd.conf:6");
    // An option not written: the declaration's line.
    assert_eq!(pos(l.option_at(ListenOpt::Auth)), "/etc/smtpd.conf:5");
    assert_eq!(pos(&c.socket.at), "/etc/smtpd.conf:7");
    assert_eq!(
        pos(&c.action("out").expect("action").at),
        "/etc/smtpd.conf:8"
    );
    assert_eq!(pos(&c.proc_("p").expect("proc").at), "/etc/smtpd.conf:9");
    assert_eq!(pos(&c.options.ciphers_at), "/etc/smtpd.conf:10");
    let r = &c.rules[0];
    assert_eq!(pos(&r.at), "/etc/smtpd.conf:11");
    assert_eq!(pos(r.criterion_at(Written::From)), "/etc/smtpd.conf:11");
    assert_eq!(pos(r.criterion_at(Written::Auth)), "/etc/smtpd.conf:12");
    assert_eq!(pos(r.criterion_at(Written::For)), "/etc/smtpd.conf:12");
}

#[test]
fn positions_do_not_change_what_a_config_means() {
    let env = TestEnv::new();
    let a = parse_text(
        &env,
        "/a.conf",
        "listen on lo\naction \"l\" mbox\nmatch for local action \"l\"\n",
    );
    let b = parse_text(
        &env,
        "/b.conf",
        "\n\nlisten on lo\naction \"l\" mbox\nmatch for local action \"l\"\n",
    );
    // Same meaning, other places.
    let (a, b) = (a.expect("a"), b.expect("b"));
    assert_eq!(a.listeners, b.listeners);
    assert_eq!(a.rules, b.rules);
    assert_eq!(a, b);
}
