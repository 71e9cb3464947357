//! Table lookups per service. Cases marked "real" were checked against OpenSMTPD 6.8.0p2.

use std::net::IpAddr;

use rsmtpd::routing::lookup::{HostInfo, Lookup, Source, Tables, TempFail, UserInfo, Users};
use rsmtpd_config::{parse_file, Config, ParseOptions, StaticEnvironment};
use rsmtpd_protocol::address::Mailaddr;

struct FakeUsers;

impl Users for FakeUsers {
    fn getpwnam(&self, name: &str) -> Lookup<UserInfo> {
        match name {
            "root" => Lookup::Found(UserInfo {
                username: "root".into(),
                uid: 0,
                gid: 0,
                directory: "/root".into(),
            }),
            "broken" => Lookup::TempFail,
            _ => Lookup::NotFound,
        }
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

fn host() -> HostInfo {
    HostInfo {
        hostname: "cun.bsdsx.fr".into(),
        local_addrs: vec![
            "127.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            "::1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            "192.0.2.2".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
        ],
    }
}

fn tables(text: &str) -> Tables {
    Tables::new(&conf(text), &host(), Box::new(FakeUsers))
}

fn ip(s: &str) -> IpAddr {
    match s.parse() {
        Ok(a) => a,
        Err(_) => panic!("bad test address {}", s),
    }
}

#[test]
fn domains_seed_step5() {
    // real: bsdsx.fr, a.bsdsx.fr accepted; b.a.bsdsx.fr, absdsx.fr, bsdsxafr, bsdsx.fr.fr refused.
    let t = tables(
        "table domains { \"bsdsx.fr\", \"*.bsdsx.fr\" }\naction a maildir\nmatch from any for domain <domains> action a\n",
    );
    let cases: &[(&str, bool)] = &[
        ("bsdsx.fr", true),
        ("BSDSX.FR", true),
        ("Bsdsx.Fr", true),
        ("a.bsdsx.fr", true),
        ("cun.bsdsx.fr", true),
        ("CUN.bsdsx.FR", true),
        ("www.bsdsx.fr", true),
        ("-.bsdsx.fr", true),
        ("b.a.bsdsx.fr", false),
        ("x.y.z.bsdsx.fr", false),
        ("absdsx.fr", false),
        ("bsdsxafr", false),
        ("bsdsx.fr.fr", false),
        ("bsdsx.f", false),
        ("bsdsx.frr", false),
        ("sdsx.fr", false),
        (".bsdsx.fr", true),
        ("", false),
        ("fr", false),
        ("example.org", false),
        ("bsdsx.fr.", false),
        ("a.bsdsx.fr.fr", false),
    ];
    for &(d, want) in cases {
        assert_eq!(t.match_domain("domains", d), Ok(want), "domain {:?}", d);
    }
}

#[test]
fn domain_wildcards_everywhere() {
    let t = tables("table d { \"*\" }\ntable m { \"mail.*\", \"*x*\" }\ntable e { \"example.org\" }\naction a maildir\nmatch from any for domain <d> action a\nmatch from any for domain <m> action a\nmatch from any for domain <e> action a\n");
    let cases: &[(&str, &str, bool)] = &[
        ("d", "anything.at.all", true),
        ("d", "x", true),
        ("d", "", false),
        ("m", "mail.example.org", true),
        ("m", "mail.", false),
        ("m", "mx.org", true),
        ("m", "smtp.org", false),
        ("e", "example.org", true),
        ("e", "EXAMPLE.ORG", true),
        ("e", "www.example.org", false),
        ("e", "example.or", false),
    ];
    for &(tb, d, want) in cases {
        assert_eq!(t.match_domain(tb, d), Ok(want), "{} {:?}", tb, d);
    }
}

#[test]
fn domain_key_too_long_is_tempfail() {
    let t = tables(
        "table e { \"example.org\" }\naction a maildir\nmatch from any for domain <e> action a\n",
    );
    let long = "a".repeat(1100);
    assert_eq!(t.match_domain("e", &long), Err(TempFail));
    assert_eq!(t.match_domain("nosuchtable", "x"), Err(TempFail));
}

#[test]
fn netaddr_v4_v6() {
    let t = tables(
        "table n { \"10.0.0.0/8\", \"192.168.1.0/24\", \"172.16.5.4\", \"2001:db8::/32\", \"::1\", \"127\" }\naction a maildir\nmatch from src <n> for any action a\n",
    );
    let cases: &[(&str, bool)] = &[
        ("10.0.0.1", true),
        ("10.255.255.255", true),
        ("11.0.0.1", false),
        ("192.168.1.77", true),
        ("192.168.2.1", false),
        ("172.16.5.4", true),
        ("172.16.5.5", false),
        ("127.1.2.3", true),
        ("2001:db8::1", true),
        ("2001:db8:ffff::1", true),
        ("2001:db9::1", false),
        ("::1", true),
        ("::2", false),
        ("::ffff:10.0.0.1", false),
    ];
    for &(a, want) in cases {
        assert_eq!(t.match_netaddr("n", Source::Addr(ip(a))), Ok(want), "{}", a);
    }
    assert_eq!(t.match_netaddr("n", Source::Local), Ok(false));
}

#[test]
fn netaddr_prefix_edges() {
    let t = tables(
        "table z { \"0.0.0.0/0\" }\ntable o { \"1.2.3.4/31\" }\ntable s { \"fe80::/10\" }\ntable l { \"local\" }\naction a maildir\nmatch from src <z> for any action a\nmatch from src <o> for any action a\nmatch from src <s> for any action a\nmatch from src <l> for any action a\n",
    );
    let cases: &[(&str, &str, bool)] = &[
        ("z", "1.2.3.4", true),
        ("z", "255.255.255.255", true),
        ("z", "::1", false),
        ("o", "1.2.3.4", true),
        ("o", "1.2.3.5", true),
        ("o", "1.2.3.6", false),
        ("s", "fe80::1", true),
        ("s", "febf::1", true),
        ("s", "fec0::1", false),
        ("l", "127.0.0.1", false),
    ];
    for &(tb, a, want) in cases {
        assert_eq!(
            t.match_netaddr(tb, Source::Addr(ip(a))),
            Ok(want),
            "{} {}",
            tb,
            a
        );
    }
    assert_eq!(t.match_netaddr("l", Source::Local), Ok(true));
    assert_eq!(t.match_netaddr("z", Source::Local), Ok(false));
}

#[test]
fn builtin_tables() {
    let t = tables("action a maildir\nmatch from any for any action a\n");
    // <localhost>: "local" and every local address.
    for (src, want) in [
        (Source::Local, true),
        (Source::Addr(ip("127.0.0.1")), true),
        (Source::Addr(ip("::1")), true),
        (Source::Addr(ip("192.0.2.2")), true),
        (Source::Addr(ip("192.0.2.3")), false),
        (Source::Addr(ip("127.0.0.2")), false),
    ] {
        assert_eq!(t.match_netaddr("<localhost>", src), Ok(want), "{:?}", src);
    }
    // <anyhost>: everything.
    for src in [
        Source::Local,
        Source::Addr(ip("8.8.8.8")),
        Source::Addr(ip("2001:db8::9")),
    ] {
        assert_eq!(t.match_netaddr("<anyhost>", src), Ok(true));
    }
    // <localnames>: localhost, the host name, the addresses and their literals.
    for (d, want) in [
        ("localhost", true),
        ("cun.bsdsx.fr", true),
        ("CUN.BSDSX.FR", true),
        ("cun", false),
        ("127.0.0.1", true),
        ("[127.0.0.1]", true),
        ("[192.0.2.2]", true),
        ("[::1]", true),
        ("[[::1]]", true),
        ("[ipv6:[::1]]", true),
        ("[IPv6:::1]", false),
        ("example.org", false),
    ] {
        assert_eq!(t.match_domain("<localnames>", d), Ok(want), "{}", d);
    }
    // <anydestination>: "*" and the short host name.
    assert_eq!(t.match_domain("<anydestination>", "example.org"), Ok(true));
    assert_eq!(t.match_domain("<anydestination>", "cun"), Ok(true));
    assert!(t
        .table("<anydestination>")
        .is_some_and(|x| x.get("cun").is_some()));
}

#[test]
fn mailaddr_forms() {
    let t = tables(concat!(
        "table all { \"@\" }\n",
        "table dom { \"@example.com\" }\n",
        "table usr { \"root\" }\n",
        "table full { \"root@example.com\" }\n",
        "table tg { \"root+list@example.com\" }\n",
        "table wild { \"@*.example.com\", \"bob@*.example.net\" }\n",
        "action a maildir\n",
        "match from any mail-from <all> for any action a\n",
        "match from any mail-from <dom> for any action a\n",
        "match from any mail-from <usr> for any action a\n",
        "match from any mail-from <full> for any action a\n",
        "match from any mail-from <tg> for any action a\n",
        "match from any mail-from <wild> for any action a\n",
    ));
    let cases: &[(&str, &str, &str, bool)] = &[
        ("all", "x", "y.z", true),
        ("all", "", "", true),
        ("dom", "anyone", "example.com", true),
        ("dom", "anyone", "EXAMPLE.com", true),
        ("dom", "anyone", "sub.example.com", false),
        ("dom", "", "", false),
        ("usr", "root", "anywhere.org", true),
        ("usr", "ROOT", "x", true),
        ("usr", "root+tag", "x", true),
        ("usr", "rooty", "x", false),
        ("usr", "", "", false),
        ("full", "root", "example.com", true),
        ("full", "root+x", "example.com", true),
        ("full", "root", "example.org", false),
        ("full", "toor", "example.com", false),
        ("tg", "root+list", "example.com", true),
        ("tg", "root", "example.com", false),
        ("tg", "root+other", "example.com", false),
        ("wild", "x", "a.example.com", true),
        ("wild", "x", "example.com", false),
        ("wild", "bob", "a.example.net", true),
        ("wild", "bob+t", "a.example.net", true),
        ("wild", "alice", "a.example.net", false),
    ];
    for &(tb, u, d, want) in cases {
        assert_eq!(
            t.match_mailaddr(tb, &Mailaddr::new(u, d)),
            Ok(want),
            "{} {}@{}",
            tb,
            u,
            d
        );
    }
}

#[test]
fn mailaddr_custom_delimiter() {
    let t = tables("smtp sub-addr-delim \"-\"\ntable usr { \"root\" }\naction a maildir\nmatch from any mail-from <usr> for any action a\n");
    assert_eq!(
        t.match_mailaddr("usr", &Mailaddr::new("root-x", "h")),
        Ok(true)
    );
    assert_eq!(
        t.match_mailaddr("usr", &Mailaddr::new("root+x", "h")),
        Ok(false)
    );
}

#[test]
fn regexes() {
    let t = tables(concat!(
        "table r { \"^root@\", \"example\\.(com|org)$\", \"(?i)^ADMIN\", \"[[:digit:]]{3}\" }\n",
        "action a maildir\n",
        "match from any mail-from regex <r> for any action a\n",
    ));
    let cases: &[(&str, bool)] = &[
        ("root@host", true),
        ("ROOT@host", true),
        ("xroot@host", false),
        ("a@example.com", true),
        ("a@example.org", true),
        ("a@exampleXcom", false),
        ("a@example.com.au", false),
        ("admin@x", true),
        ("Admin@x", true),
        ("user123@x", true),
        ("user12@x", false),
    ];
    for &(k, want) in cases {
        assert_eq!(t.match_regex("r", k), Ok(want), "{}", k);
    }
}

#[test]
fn strings_and_values() {
    let t = tables(concat!(
        "table s { \"Tagged\", other }\n",
        "table users { foo = \"2000:2000:/var/empty\", bad = \"x:1:/h\", short = \"1:2\" }\n",
        "table creds { alice = \"$2b$hash\", bob = \"robert:secret\", c = \"x:\" }\n",
        "table snd { alice = \"alice@example.com, \\\"a,b\\\"@example.com, @example.org\" }\n",
        "table dbt sqlite:/etc/mail/x.conf\n",
        "action a maildir userbase <users>\n",
        "match from any tag <s> for any action a\n",
    ));
    assert_eq!(t.match_string("s", "tagged"), Ok(true));
    assert_eq!(t.match_string("s", "TAGGED"), Ok(true));
    assert_eq!(t.match_string("s", "tag"), Ok(false));
    assert_eq!(
        t.userinfo("users", "FOO"),
        Lookup::Found(UserInfo {
            username: "foo".into(),
            uid: 2000,
            gid: 2000,
            directory: "/var/empty".into()
        })
    );
    assert_eq!(t.userinfo("users", "bad"), Lookup::TempFail);
    assert_eq!(t.userinfo("users", "short"), Lookup::TempFail);
    assert_eq!(t.userinfo("users", "root"), Lookup::NotFound);
    assert!(matches!(t.userinfo("<getpwnam>", "root"), Lookup::Found(u) if u.uid == 0));
    assert_eq!(t.userinfo("<getpwnam>", "nobody-here"), Lookup::NotFound);
    assert_eq!(t.userinfo("<getpwnam>", "broken"), Lookup::TempFail);
    assert!(
        matches!(t.credentials("creds", "alice"), Lookup::Found(c) if c.username == "alice" && c.password == "$2b$hash")
    );
    assert!(
        matches!(t.credentials("creds", "bob"), Lookup::Found(c) if c.username == "robert" && c.password == "secret")
    );
    assert_eq!(t.credentials("creds", "c"), Lookup::TempFail);
    assert_eq!(t.credentials("creds", "zed"), Lookup::NotFound);
    match t.mailaddrmap("snd", "alice") {
        Lookup::Found(v) => assert_eq!(
            v,
            vec![
                Mailaddr::new("alice", "example.com"),
                Mailaddr::new("\"a,b\"", "example.com"),
                Mailaddr::new("", "example.org"),
            ]
        ),
        other => panic!("{:?}", other),
    }
    // Backends we do not serve yet fail temporarily rather than answering wrongly.
    assert_eq!(t.alias("dbt", "x"), Lookup::TempFail);
    assert_eq!(t.match_domain("dbt", "x"), Err(TempFail));
    assert_eq!(t.match_string("<getpwnam>", "root"), Err(TempFail));
}

#[test]
fn large_table_lookups_are_hashed() {
    let mut text = String::from("table big {");
    for i in 0..20000 {
        text.push_str(&format!(" \"d{}.example\",", i));
    }
    text.push_str(
        " \"*.wild.example\" }\naction a maildir\nmatch from any for domain <big> action a\n",
    );
    let t = tables(&text);
    let start = std::time::Instant::now();
    for i in 0..20000 {
        assert_eq!(t.match_domain("big", &format!("D{}.example", i)), Ok(true));
    }
    assert_eq!(t.match_domain("big", "x.wild.example"), Ok(true));
    assert_eq!(t.match_domain("big", "nope.example"), Ok(false));
    assert!(start.elapsed().as_secs() < 5);
}
