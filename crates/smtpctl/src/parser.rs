//! smtpctl's command language (parser.c): a tree of words built from patterns, matched word by
//! word, exact words first then unambiguous prefixes; on failure the candidates are listed.

/// A parameter taken from the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Param {
    Str(String),
    MsgId(u32),
    EvpId(u64),
    RouteId(u64),
    Addr(String),
}

/// The commands, as smtpctl.c installs them, in its order (the order of `possibilities are:`).
pub const PATTERNS: &[&str] = &[
    "discover <evpid>",
    "discover <msgid>",
    "pause mta from <addr> for <str>",
    "resume mta from <addr> for <str>",
    "show mta paused",
    "log brief",
    "log verbose",
    "monitor",
    "pause envelope <evpid>",
    "pause envelope <msgid>",
    "pause envelope all",
    "pause mda",
    "pause mta",
    "pause smtp",
    "profile <str>",
    "remove <evpid>",
    "remove <msgid>",
    "remove all",
    "resume envelope <evpid>",
    "resume envelope <msgid>",
    "resume envelope all",
    "resume mda",
    "resume mta",
    "resume route <routeid>",
    "resume smtp",
    "schedule <msgid>",
    "schedule <evpid>",
    "schedule all",
    "show envelope <evpid>",
    "show hoststats",
    "show message <msgid>",
    "show message <evpid>",
    "show queue",
    "show queue <msgid>",
    "show hosts",
    "show relays",
    "show routes",
    "show stats",
    "show status",
    "trace <str>",
    "unprofile <str>",
    "untrace <str>",
    "update table <str>",
    "encrypt",
    "encrypt <str>",
    "spf walk",
];

/// Commands any user may run (the others need root).
pub fn unprivileged(pattern: &str) -> bool {
    pattern.starts_with("encrypt") || pattern == "spf walk"
}

struct Node {
    token: String,
    children: Vec<usize>,
    pattern: Option<&'static str>,
}

/// Why a command line did not match: what smtpctl prints on stderr (exit 255).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseFailure(pub String);

fn build() -> Vec<Node> {
    let mut nodes = vec![Node {
        token: String::new(),
        children: Vec::new(),
        pattern: None,
    }];
    for pat in PATTERNS {
        let mut cur = 0;
        for w in pat.split_whitespace() {
            let found = nodes[cur]
                .children
                .iter()
                .copied()
                .find(|&c| nodes[c].token == w);
            cur = match found {
                Some(c) => c,
                None => {
                    nodes.push(Node {
                        token: w.to_string(),
                        children: Vec::new(),
                        pattern: None,
                    });
                    let id = nodes.len() - 1;
                    nodes[cur].children.push(id);
                    id
                }
            };
        }
        nodes[cur].pattern = Some(pat);
    }
    nodes
}

fn hex_id(s: &str, len: usize) -> Option<u64> {
    if s.len() != len {
        return None;
    }
    // text_to_evpid/msgid: strtoull base 16, whole string, non-zero
    let v = u64::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16).ok()?;
    (v != 0 && !s.starts_with('+') && !s.starts_with('-')).then_some(v)
}

fn check(token: &str, arg: &str) -> Option<Option<Param>> {
    match token {
        "<str>" => Some(Some(Param::Str(arg.to_string()))),
        "<msgid>" => hex_id(arg, 8).map(|v| Some(Param::MsgId(v as u32))),
        "<evpid>" => hex_id(arg, 16).map(|v| Some(Param::EvpId(v))),
        "<routeid>" => arg
            .parse::<i64>()
            .ok()
            .filter(|v| *v >= 1)
            .map(|v| Some(Param::RouteId(v as u64))),
        "<addr>" => {
            let host = arg.split('%').next().unwrap_or(arg);
            (arg.parse::<std::net::Ipv4Addr>().is_ok()
                || host.parse::<std::net::Ipv6Addr>().is_ok())
            .then(|| Some(Param::Addr(arg.to_string())))
        }
        "<int>" => arg
            .parse::<i32>()
            .ok()
            .map(|v| Some(Param::Str(v.to_string()))),
        w => (w == arg).then_some(None),
    }
}

/// Matches the arguments after `smtpctl`: the pattern and its parameters.
pub fn parse(args: &[String]) -> Result<(&'static str, Vec<Param>), ParseFailure> {
    let nodes = build();
    let mut cur = 0;
    let mut stack: Vec<usize> = Vec::new();
    let mut params = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        let mut next = None;
        for &c in &nodes[cur].children {
            if let Some(p) = check(&nodes[c].token, arg) {
                next = Some(c);
                params.extend(p);
                break;
            }
        }
        if next.is_none() {
            let mut best = None;
            for &c in &nodes[cur].children {
                let t = &nodes[c].token;
                if t.starts_with('<') || !t.starts_with(arg.as_str()) {
                    continue;
                }
                if best.is_some() {
                    return Err(fail(&nodes, cur, &stack, i));
                }
                best = Some(c);
            }
            match best {
                Some(b) => next = Some(b),
                None => return Err(fail(&nodes, cur, &stack, i)),
            }
        }
        let n = next.unwrap_or(0);
        stack.push(n);
        cur = n;
    }
    match nodes[cur].pattern {
        Some(p) => Ok((p, params)),
        None => Err(fail(&nodes, cur, &stack, args.len())),
    }
}

fn fail(nodes: &[Node], cur: usize, stack: &[usize], i: usize) -> ParseFailure {
    if nodes[cur].children.is_empty() {
        return ParseFailure("invalid command\n".into());
    }
    let mut out = String::from("possibilities are:\n");
    for &c in &nodes[cur].children {
        for (j, s) in stack.iter().take(i).enumerate() {
            if j > 0 {
                out.push(' ');
            }
            out.push_str(&nodes[*s].token);
        }
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&nodes[c].token);
        out.push('\n');
    }
    ParseFailure(out)
}
