//! Recipient expansion. Replies marked "real" were observed on OpenSMTPD 6.8.0p2 with the same
//! tables (a listener on 127.0.0.1, `-T expand -T rules`).

use std::collections::HashMap;
use std::net::IpAddr;

use rsmtpd::routing::expand::{expand, Delivery, DeliveryType, ExpandContext, Expansion, Target};
use rsmtpd::routing::forward::{ForwardFile, Forwards};
use rsmtpd::routing::lookup::{HostInfo, Lookup, Source, Tables, UserInfo, Users};
use rsmtpd::routing::rule::RuleEnvelope;
use rsmtpd_config::{parse_file, Config, ParseOptions, StaticEnvironment};
use rsmtpd_protocol::address::Mailaddr;

struct FakeUsers;
impl Users for FakeUsers {
    fn getpwnam(&self, name: &str) -> Lookup<UserInfo> {
        let u = |uid| {
            Lookup::Found(UserInfo {
                username: name.to_string(),
                uid,
                gid: uid,
                directory: format!("/home/{}", name),
            })
        };
        match name {
            "root" => u(0),
            "alice" => u(1001),
            "carol" => u(1003),
            "nobody" => u(65534),
            _ => Lookup::NotFound,
        }
    }
}

#[derive(Default)]
struct FakeFiles {
    forwards: HashMap<String, ForwardFile>,
    includes: HashMap<String, String>,
}

impl Forwards for FakeFiles {
    fn forward(&self, user: &UserInfo) -> ForwardFile {
        self.forwards
            .get(&user.username)
            .cloned()
            .unwrap_or(ForwardFile::Missing)
    }
    fn include(&self, path: &str) -> Option<Vec<u8>> {
        self.includes.get(path).map(|s| s.as_bytes().to_vec())
    }
}

fn conf(text: &str) -> Config {
    let env = StaticEnvironment::typical().with_file("/etc/smtpd.conf", text);
    let out = parse_file("/etc/smtpd.conf", &env, &ParseOptions::default());
    match out.config {
        Some(c) => c,
        None => panic!("config refused: {:?}", out.messages),
    }
}

fn ip(s: &str) -> IpAddr {
    match s.parse() {
        Ok(a) => a,
        Err(_) => panic!("bad address {}", s),
    }
}

fn env() -> RuleEnvelope {
    RuleEnvelope {
        source: Source::Addr(ip("127.0.0.1")),
        hostname: "localhost".into(),
        helo: "client.test".into(),
        tag: String::new(),
        tls: false,
        auth_user: None,
        sender: Mailaddr::new("", ""),
        dest: Mailaddr::default(),
        internal: false,
    }
}

fn addr(s: &str) -> Mailaddr {
    match s.rsplit_once('@') {
        Some((u, d)) => Mailaddr::new(u, d),
        None => Mailaddr::new(s, "vm"),
    }
}

struct World {
    conf: Config,
    tables: Tables,
    files: FakeFiles,
}

impl World {
    fn new(text: &str) -> World {
        let conf = conf(text);
        let host = HostInfo {
            hostname: "vm".into(),
            local_addrs: vec![ip("127.0.0.1"), ip("::1")],
        };
        let tables = Tables::new(&conf, &host, Box::new(FakeUsers));
        World {
            conf,
            tables,
            files: FakeFiles::default(),
        }
    }

    fn run_env(&self, rcpt: &str, e: &RuleEnvelope) -> Expansion {
        let cx = ExpandContext {
            conf: &self.conf,
            tables: &self.tables,
            forwards: &self.files,
            smtpd_user: "opensmtpd",
            trace: true,
            now: 0,
        };
        expand(&cx, e, &addr(rcpt))
    }

    fn run(&self, rcpt: &str) -> Expansion {
        self.run_env(rcpt, &env())
    }

    /// The reply line, or "250" with the deliveries as "action:type:user:dest:target".
    fn reply(&self, rcpt: &str) -> String {
        match self.run(rcpt).result {
            Ok(_) => "250".into(),
            Err(e) => e.reply_line(),
        }
    }

    fn deliveries(&self, rcpt: &str) -> Vec<Delivery> {
        match self.run(rcpt).result {
            Ok(d) => d,
            Err(e) => panic!("{} refused: {}", rcpt, e.reply_line()),
        }
    }
}

fn brief(d: &Delivery) -> String {
    let target = match &d.target {
        Target::Relay => "relay".to_string(),
        Target::Action => "action".to_string(),
        Target::File(p) => format!("file {}", p),
        Target::Pipe(c) => format!("pipe {}", c),
    };
    format!(
        "{}:{}:{}:{}:{}",
        d.action,
        if d.kind == DeliveryType::Mda {
            "mda"
        } else {
            "mta"
        },
        d.mda_user.as_deref().unwrap_or("-"),
        d.dest,
        target
    )
}

const PROBE: &str = r#"
table aliases { loop1 = loop2, loop2 = loop1, d0 = d1, d1 = d2, d2 = d3, d3 = d4, d4 = d5, d5 = d6, d6 = d7, d7 = d8, d8 = d9, d9 = foo, e0 = d1, err = "error:550 5.1.1 go away", terr = "error:421 4.2.1 later", inc = ":include:/tmp/probe/inc/list", self = "self, foo", bad = "a b", multi = "bar, foo, error:550 no" , tagged+x = bar, rel = "bob@example.org" }
table users { foo = "2000:2000:/var/empty", bar = "2000:2000:/var/empty", self = "2000:2000:/var/empty", inca = "2000:2000:/var/empty" }
table rd { "localhost" }
table rdw { "*host" }
action "local_mail" maildir userbase <users> alias <aliases>
action "out" relay
match from any tls for domain "tls.test" action "local_mail"
match from rdns <rd> for domain "rd.test" action "local_mail"
match from rdns <rdw> for domain "rdw.test" action "local_mail"
match from local for domain "example.org" action "out"
match from any for local action "local_mail"
"#;

#[test]
fn replies_observed_on_the_real_server() {
    let mut w = World::new(PROBE);
    w.files.includes.insert(
        "/tmp/probe/inc/list".into(),
        "inca\n# comment\nincb, error:550 from include\n".into(),
    );
    let cases: &[(&str, &str)] = &[
        // 6.8: 451 Temporary failure (it cannot evaluate `tls`); we do, and this session is
        // not under TLS, so the rule does not match and nothing else routes tls.test.
        ("foo@tls.test", "550 Invalid recipient"),
        ("foo@rd.test", "250"),
        ("foo@rdw.test", "550 Invalid recipient"),
        ("loop1", "524 5.2.4 Mailing list expansion problem"),
        ("d0", "524 5.2.4 Mailing list expansion problem"),
        ("e0", "524 5.2.4 Mailing list expansion problem"),
        ("err", "550 5.1.1 go away"),
        ("terr", "421 4.2.1 later"),
        ("inc", "550 Invalid recipient"),
        ("bad", "424 4.2.4 Mailing list expansion problem"),
        ("multi", "550 no"),
        ("tagged+x", "250"),
        ("tagged+y", "550 Invalid recipient"),
        ("foo+bar", "250"),
        ("rel", "250"),
        ("self", "250"),
        ("nobody", "550 Invalid recipient"),
        ("root", "550 Invalid recipient"),
        ("abuse", "550 Invalid recipient"),
        ("foo@elsewhere.test", "550 Invalid recipient"),
    ];
    for &(rcpt, want) in cases {
        assert_eq!(w.reply(rcpt), want, "RCPT TO:<{}>", rcpt);
    }
}

#[test]
fn seed_step3_alias_chain() {
    // real (seed step 3 and our probe): abuse -> postmaster -> root -> foo at depths 1..4.
    let w = World::new(concat!(
        "table aliases { abuse = postmaster, postmaster = root, root = foo }\n",
        "table users { foo = \"2000:2000:/var/empty\", bar = \"2000:2000:/var/empty\" }\n",
        "action \"local_mail\" maildir userbase <users> alias <aliases>\n",
        "match from any action \"local_mail\"\n",
    ));
    for ok in [
        "abuse",
        "postmaster",
        "root",
        "foo",
        "bar",
        "FOO",
        "Abuse@vm",
        "foo@localhost",
    ] {
        assert_eq!(w.reply(ok), "250", "{}", ok);
    }
    // Only the userbase's users: system users are not valid.
    for bad in ["nobody", "alice", "_smtpd", "vmail", "foo@example.org"] {
        assert_eq!(w.reply(bad), "550 Invalid recipient", "{}", bad);
    }
    let x = w.run("abuse");
    let lines: Vec<&String> = x
        .trace
        .iter()
        .filter(|l| l.starts_with("expand: lka_expand") || l.starts_with("expand: no .forward"))
        .collect();
    assert_eq!(
        lines,
        vec![
            "expand: lka_expand: address: abuse@vm [depth=0]",
            "expand: lka_expand: username: abuse [depth=1, sameuser=0]",
            "expand: lka_expand: username: postmaster [depth=2, sameuser=0]",
            "expand: lka_expand: username: root [depth=3, sameuser=0]",
            "expand: lka_expand: username: foo [depth=4, sameuser=0]",
            "expand: no .forward for user foo, just deliver",
        ]
    );
    assert!(x
        .trace
        .iter()
        .any(|l| l == "rule #1 matched: match from any for local action local_mail"));
    let d = w.deliveries("abuse");
    assert_eq!(d.len(), 1);
    assert_eq!(brief(&d[0]), "local_mail:mda:foo:abuse@vm:action");
    assert_eq!(d[0].rcpt, Mailaddr::new("abuse", "vm"));
    assert_eq!(
        d[0].user.as_ref().map(|u| (u.uid, u.directory.as_str())),
        Some((2000, "/var/empty"))
    );
    assert!(!d[0].internal);
}

#[test]
fn trace_shape_matches_opensmtpd() {
    let w = World::new(PROBE);
    let x = w.run("self");
    // Pointers differ; the shape is OpenSMTPD's (real trace of RCPT TO:<self>).
    let shape: Vec<String> = x.trace.iter().map(|l| pointers(l)).collect();
    let want = [
        "expand: P: expand_insert() called for address:self@vm[parent=(nil), rule=(nil)]",
        "expand: P: inserted node P",
        "expand: lka_expand: address: self@vm [depth=0]",
        "rule #5 matched: match from any for local action local_mail",
        "expand: P: expand_insert() called for username:self[parent=P, rule=P, dispatcher=P]",
        "expand: P: inserted node P",
        "expand: lka_expand: username: self [depth=1, sameuser=0]",
        "expand: P: expand_insert() called for username:self[parent=(nil), rule=(nil)]",
        "expand: P: inserted node P",
        "expand: P: expand_insert() called for username:foo[parent=(nil), rule=(nil)]",
        "expand: P: inserted node P",
        "expand: P: expand_insert() called for username:foo[parent=P, rule=P, dispatcher=P]",
        "expand: P: inserted node P",
        "expand: P: expand_insert() called for username:self[parent=P, rule=P, dispatcher=P]",
        "expand: P: setting sameuser = 1",
        "expand: P: inserted node P",
        "expand: P: clearing expand tree",
        "expand: P: freeing expand tree",
    ];
    assert_eq!(&shape[..want.len()], &want[..]);
    assert_eq!(
        x.trace.last().map(|l| l.ends_with("clearing expand tree")),
        Some(true)
    );
    let d = w.deliveries("self");
    let b: Vec<String> = d.iter().map(brief).collect();
    assert_eq!(
        b,
        vec![
            "local_mail:mda:foo:self@vm:action",
            "local_mail:mda:self:self@vm:action"
        ]
    );
}

#[test]
fn relay_from_alias_goes_through_the_rules_as_local() {
    // real: "rule #4 matched: match from local for domain <dynamic:3> action out" at depth 2.
    let w = World::new(PROBE);
    let x = w.run("rel");
    assert!(x
        .trace
        .iter()
        .any(|l| l == "expand: lka_expand: address: bob@example.org [depth=2]"));
    assert!(x
        .trace
        .iter()
        .any(|l| l == "rule #4 matched: match from local for domain <dynamic:3> action out"));
    let d = w.deliveries("rel");
    assert_eq!(
        d.iter().map(brief).collect::<Vec<_>>(),
        vec!["out:mta:-:bob@example.org:relay"]
    );
    assert_eq!(d[0].rcpt, Mailaddr::new("rel", "vm"));
    // Sent directly from outside, the relay rule (from local) does not apply.
    let mut e = env();
    e.source = Source::Addr(ip("192.0.2.9"));
    assert!(w.run_env("bob@example.org", &e).result.is_err());
}

#[test]
fn error_nodes_and_depth() {
    let w = World::new(concat!(
        "table a { e1 = \"error:550 5.1.1 go away\", e2 = \":ERROR:451 4.3.0 try later\", e3 = \"foo, error:552 full\", deep0 = deep1, deep1 = deep2, deep2 = deep3, deep3 = deep4, deep4 = deep5, deep5 = deep6, deep6 = deep7, deep7 = deep8, deep8 = foo, bad1 = \"error:55 x\", bad2 = \"'unterminated\", empty = \":include:/nonexistent\" }\n",
        "table u { foo = \"1:1:/var/empty\" }\n",
        "action l mbox userbase <u> alias <a>\n",
        "match from any for local action l\n",
    ));
    let cases: &[(&str, &str)] = &[
        ("e1", "550 5.1.1 go away"),
        ("e2", "451 4.3.0 try later"),
        ("e3", "552 full"),
        // deep0 at depth 1 .. deep8 at 9, foo at 10: too deep (real: the same with d0..d9).
        ("deep0", "524 5.2.4 Mailing list expansion problem"),
        ("deep1", "250"),
        ("bad1", "424 4.2.4 Mailing list expansion problem"),
        ("bad2", "424 4.2.4 Mailing list expansion problem"),
        // An include that cannot be read counts for nothing: then the user itself is looked up.
        ("empty", "550 Invalid recipient"),
    ];
    for &(rcpt, want) in cases {
        assert_eq!(w.reply(rcpt), want, "{}", rcpt);
    }
    assert!(w
        .run("deep0")
        .trace
        .iter()
        .any(|l| l == "expand: lka_expand: node too deep."));
}

#[test]
fn loops_are_cut_and_give_524() {
    let w = World::new(concat!(
        "table a { a = b, b = c, c = a, x = \"x, foo\", y = \"z\", z = \"y, foo\" }\n",
        "table u { foo = \"1:1:/var/empty\", x = \"1:1:/var/empty\" }\n",
        "action l maildir userbase <u> alias <a>\n",
        "match from any for local action l\n",
    ));
    assert_eq!(w.reply("a"), "524 5.2.4 Mailing list expansion problem");
    let t = w.run("a").trace;
    assert!(t.iter().any(|l| l.ends_with("node found, discarding")));
    assert!(t
        .iter()
        .any(|l| l == "expand: lka_done: expanded to empty delivery list"));
    // x includes itself: delivered to x (sameuser) and foo.
    let d: Vec<String> = w.deliveries("x").iter().map(brief).collect();
    assert_eq!(d, vec!["l:mda:foo:x@vm:action", "l:mda:x:x@vm:action"]);
    // y -> z -> y: the loop is dropped, foo remains.
    let d: Vec<String> = w.deliveries("y").iter().map(brief).collect();
    assert_eq!(d, vec!["l:mda:foo:y@vm:action"]);
}

#[test]
fn subaddresses() {
    let w = World::new(concat!(
        "table a { list+owner = root, list = \"foo, bar\" }\n",
        "action l maildir alias <a>\n",
        "match from any for local action l\n",
    ));
    let d = w.deliveries("alice+tag");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].mda_user.as_deref(), Some("alice"));
    assert_eq!(d[0].subaddress, "tag");
    assert_eq!(d[0].dest, Mailaddr::new("alice+tag", "vm"));
    assert_eq!(d[0].rcpt, Mailaddr::new("alice+tag", "vm"));
    let d: Vec<String> = w.deliveries("list+owner").iter().map(brief).collect();
    assert_eq!(d, vec!["l:mda:root:list+owner@vm:action"]);
    // list+other falls back to list; foo and bar are not system users.
    assert_eq!(w.reply("list+other"), "550 Invalid recipient");
    assert_eq!(w.reply("ALICE+Tag"), "250");
    let d = w.deliveries("ALICE+Tag");
    assert_eq!(d[0].mda_user.as_deref(), Some("alice"));
    assert_eq!(d[0].subaddress, "tag");
    // A custom delimiter.
    let w = World::new(
        "smtp sub-addr-delim \"-\"\naction l maildir\nmatch from any for local action l\n",
    );
    let d = w.deliveries("alice-x");
    assert_eq!(
        (d[0].mda_user.as_deref(), d[0].subaddress.as_str()),
        (Some("alice"), "x")
    );
    assert_eq!(w.reply("alice+x"), "550 Invalid recipient");
}

#[test]
fn virtual_lookup_order() {
    let text = |entries: &str| {
        format!(
            "table v {{ {} }}\naction l maildir virtual <v>\naction m maildir\nmatch from any for domain \"example.com\" action l\nmatch from any for local action m\n",
            entries
        )
    };
    // Each table has the candidate and everything after it in OpenSMTPD's order; the first wins.
    let order = [
        "\"bob+tag@example.com\" = alice",
        "\"bob@example.com\" = carol",
        "\"bob+tag\" = root",
        "bob = nobody",
        "\"@example.com\" = \"alice, carol\"",
        "\"@\" = \"root, nobody\"",
    ];
    let winners = [
        vec!["alice"],
        vec!["carol"],
        vec!["root"],
        vec!["nobody"],
        vec!["alice", "carol"],
        vec!["nobody", "root"],
    ];
    for i in 0..order.len() {
        let w = World::new(&text(&order[i..].join(", ")));
        let users: Vec<String> = w
            .deliveries("Bob+Tag@Example.com")
            .iter()
            .filter_map(|d| d.mda_user.clone())
            .collect();
        assert_eq!(users, winners[i], "table from {}", order[i]);
    }
    // Nothing found: 524, not 550 (real: lka_expand "no aliases for virtual").
    let w = World::new(&text("\"x@example.com\" = root"));
    assert_eq!(
        w.reply("bob@example.com"),
        "524 5.2.4 Mailing list expansion problem"
    );
    // Virtual results that are usernames are looked up in the virtual table again with an
    // empty domain, then in the userbase.
    let w = World::new(&text("\"bob@example.com\" = carol, carol = alice"));
    let users: Vec<String> = w
        .deliveries("bob@example.com")
        .iter()
        .filter_map(|d| d.mda_user.clone())
        .collect();
    assert_eq!(users, vec!["alice"]);
    // Addresses from a virtual table go through the rules again.
    let w = World::new(&text("\"bob@example.com\" = \"alice@vm\""));
    let d = w.deliveries("bob@example.com");
    assert_eq!(
        d.iter().map(brief).collect::<Vec<_>>(),
        vec!["m:mda:alice:alice@vm:action"]
    );
}

#[test]
fn forward_files() {
    let mut w = World::new(concat!(
        "action l maildir\naction fo forward-only\naction eo expand-only\naction r relay\n",
        "match from any for domain \"fo.test\" action fo\n",
        "match from any for domain \"eo.test\" action eo\n",
        "match from any for local action l\n",
        "match from local for any action r\n",
    ));
    let content = |s: &str| ForwardFile::Content(s.as_bytes().to_vec());
    w.files.forwards.insert(
        "alice".into(),
        content("# me and carol\nalice, carol\n\"|/usr/bin/procmail -t\"\n/home/alice/mbox\n"),
    );
    w.files
        .forwards
        .insert("carol".into(), content("carol@example.org\n"));
    w.files.forwards.insert("root".into(), content(""));
    w.files
        .forwards
        .insert("nobody".into(), ForwardFile::PermFail);
    let d: Vec<String> = w.deliveries("alice").iter().map(brief).collect();
    assert_eq!(
        d,
        vec![
            // .forward lines are expanded in written order (no sorting, unlike alias values).
            "l:mda:alice:alice@vm:action",
            "l:mda:alice:alice@vm:pipe /usr/bin/procmail -t",
            "l:mda:alice:alice@vm:file /home/alice/mbox",
            "r:mta:-:carol@example.org:relay",
        ]
    );
    let x = w.run("alice");
    assert!(x
        .trace
        .iter()
        .any(|l| l == "expand: lka_expand: same user, submitting"));
    assert!(x.warnings.is_empty());
    let d = w.deliveries("alice");
    assert_eq!(
        d[2].mda_exec("/usr/libexec/opensmtpd").as_deref(),
        Some("/usr/libexec/opensmtpd/mail.mboxfile -f %{mbox.from} /home/alice/mbox")
    );
    assert_eq!(d[2].user.as_ref().map(|u| u.uid), Some(1001));
    // An empty .forward delivers to the user.
    assert_eq!(
        w.deliveries("root").iter().map(brief).collect::<Vec<_>>(),
        vec!["l:mda:root:root@vm:action"]
    );
    assert!(w
        .run("root")
        .trace
        .iter()
        .any(|l| l == "expand: empty .forward for user root, just deliver"));
    assert_eq!(
        w.reply("nobody"),
        "524 5.2.4 Mailing list expansion problem"
    );
    w.files
        .forwards
        .insert("nobody".into(), ForwardFile::TempFail);
    assert_eq!(
        w.reply("nobody"),
        "424 4.2.4 Mailing list expansion problem"
    );
    w.files
        .forwards
        .insert("nobody".into(), content(&"x".repeat(5000)));
    assert_eq!(
        w.reply("nobody"),
        "424 4.2.4 Mailing list expansion problem"
    );
    w.files
        .forwards
        .insert("nobody".into(), content("\"unterminated\n"));
    assert_eq!(
        w.reply("nobody"),
        "424 4.2.4 Mailing list expansion problem"
    );
    // forward-only: no .forward is a temporary failure; expand-only: a permanent one.
    assert_eq!(w.reply("carol@fo.test"), "250");
    assert_eq!(w.reply("foo@fo.test"), "550 Invalid recipient");
    assert_eq!(
        w.reply("root@fo.test"),
        "424 4.2.4 Mailing list expansion problem"
    );
    assert_eq!(
        w.reply("root@eo.test"),
        "524 5.2.4 Mailing list expansion problem"
    );
    assert_eq!(w.reply("alice@fo.test"), "451 Temporary failure");
    assert!(w
        .run("alice@fo.test")
        .trace
        .iter()
        .any(|l| l.contains("matched on forward-only rule")));
}

#[test]
fn system_aliases_files_and_commands_run_as_smtpd_user() {
    let w = World::new(concat!(
        "table a { log = \"/var/log/mail.archive\", prog = \"|/usr/local/bin/handler arg\", both = \"alice, |/bin/true\" }\n",
        "action l maildir alias <a>\n",
        "match from any for local action l\n",
    ));
    let d = w.deliveries("log");
    assert_eq!(
        d.iter().map(brief).collect::<Vec<_>>(),
        vec!["l:mda:opensmtpd:log@vm:file /var/log/mail.archive"]
    );
    assert_eq!(d[0].user, None);
    let x = w.run("prog");
    assert_eq!(
        x.warnings,
        vec!["commands executed from aliases run with opensmtpd privileges"]
    );
    let d: Vec<String> = w.deliveries("both").iter().map(brief).collect();
    // Alias values are expanded sorted by node type: usernames before commands.
    assert_eq!(
        d,
        vec![
            "l:mda:alice:both@vm:action",
            "l:mda:opensmtpd:both@vm:pipe /bin/true"
        ]
    );
}

#[test]
fn includes() {
    let mut w = World::new(concat!(
        "table a { staff = \":include:/etc/mail/staff\", nested = \"include:/etc/mail/nested\" }\n",
        "action l maildir alias <a>\n",
        "match from any for local action l\n",
    ));
    w.files.includes.insert(
        "/etc/mail/staff".into(),
        "alice\ncarol, root #\nnobody\n".into(),
    );
    w.files.includes.insert(
        "/etc/mail/nested".into(),
        ":include:/etc/mail/staff\nalice\n".into(),
    );
    let users: Vec<String> = w
        .deliveries("staff")
        .iter()
        .filter_map(|d| d.mda_user.clone())
        .collect();
    // '#' continues a line in include files (fparseln's delimiters as OpenSMTPD passes them):
    // "carol, root nobody" inserts carol, then stops at the invalid item.
    assert_eq!(users, vec!["alice", "carol"]);
    // Includes inside includes are ignored.
    let users: Vec<String> = w
        .deliveries("nested")
        .iter()
        .filter_map(|d| d.mda_user.clone())
        .collect();
    assert_eq!(users, vec!["alice"]);
}

#[test]
fn relay_and_reject() {
    let w = World::new(concat!(
        "action r relay\naction l maildir\n",
        "match from any for domain \"spam.test\" reject\n",
        "match from any for local action l\n",
        "match from any for any action r\n",
    ));
    assert_eq!(w.reply("x@spam.test"), "550 Invalid recipient");
    let d = w.deliveries("Someone@Example.ORG");
    assert_eq!(
        d.iter().map(brief).collect::<Vec<_>>(),
        vec!["r:mta:-:Someone@Example.ORG:relay"]
    );
    assert_eq!(d[0].rcpt, Mailaddr::new("Someone", "Example.ORG"));
}

/// Replaces every `0x...` pointer by `P`.
fn pointers(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find("0x") {
        out.push_str(&rest[..i]);
        out.push('P');
        rest = rest[i + 2..].trim_start_matches(|c: char| c.is_ascii_hexdigit());
    }
    out.push_str(rest);
    out
}

#[test]
fn include_and_virtual_as_observed() {
    // real: ":include:" of "inca\nincb, foo #\nnobody\n" delivers to inca and incb only;
    // virtual bob+x@example.com -> carol -> alice (carol looked up again with no domain).
    let mut w = World::new(concat!(
        "table aliases { inc = \":include:/tmp/probe/inc/list2\" }\n",
        "table users { foo = \"2000:2000:/var/empty\", inca = \"2000:2000:/var/empty\", incb = \"2000:2000:/var/empty\", carol = \"2000:2000:/var/empty\", alice = \"2000:2000:/var/empty\" }\n",
        "table v { \"bob+tag@example.com\" = alice, \"bob@example.com\" = carol, \"@example.com\" = foo, carol = alice }\n",
        "action \"l\" maildir userbase <users> alias <aliases>\n",
        "action \"vl\" maildir userbase <users> virtual <v>\n",
        "match from any for domain \"example.com\" action \"vl\"\n",
        "match from any for local action \"l\"\n",
    ));
    w.files.includes.insert(
        "/tmp/probe/inc/list2".into(),
        "inca\nincb, foo #\nnobody\n".into(),
    );
    let users = |w: &World, r: &str| -> Vec<String> {
        w.deliveries(r)
            .iter()
            .filter_map(|d| d.mda_user.clone())
            .collect()
    };
    assert_eq!(users(&w, "inc"), vec!["inca", "incb"]);
    assert_eq!(users(&w, "bob+tag@example.com"), vec!["alice"]);
    assert_eq!(users(&w, "bob+x@example.com"), vec!["alice"]);
    assert_eq!(users(&w, "zed@example.com"), vec!["foo"]);
}
