//! The daemon's modules form layers that import one way, bottom up, in the order `lib.rs`
//! lists them: a module may use its own layer and the ones before it, never one after, and
//! no set of modules imports itself in a circle. Read from the `crate::` paths in the sources
//! (tests inside a file excluded), so that a new import that breaks the order fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom up, as `lib.rs` declares them.
const LAYERS: &[&str] = &[
    "support",
    "sys",
    "privsep",
    "startup",
    "tls",
    "dns",
    "tableproc",
    "routing",
    "auth",
    "queue",
    "scheduler",
    "listener",
    "procfilter",
    "server",
    "inbound",
    "delivery",
    "relay",
    "control",
    "reload",
    "parent",
    "daemon",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `inbound/session.rs` is `inbound::session`, `queue/mod.rs` is `queue`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The `crate::a::b...` paths a source names outside its test module.
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    // Comments name modules too (doc links); only code imports.
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `rsmtpd_crate::`
        }
        let path: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let segs: Vec<String> = path
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if !segs.is_empty() {
            out.push(segs);
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let from = module_of(&src, f);
        if from == "main" || from == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let deps = g.entry(from.clone()).or_default();
        for segs in crate_paths(&text) {
            // The longest prefix of the path that is a module.
            let target = (1..=segs.len())
                .rev()
                .map(|n| segs[..n].join("::"))
                .find(|m| modules.contains(m));
            if let Some(t) = target {
                if t != from {
                    deps.insert(t);
                }
            }
        }
    }
    g
}

fn layer(module: &str) -> Option<usize> {
    let top = module.split("::").next()?;
    LAYERS.iter().position(|l| *l == top)
}

#[test]
fn every_module_belongs_to_a_layer() {
    for m in graph().keys() {
        assert!(layer(m).is_some(), "module {m} is in no layer of LAYERS");
    }
}

#[test]
fn modules_import_only_their_own_layer_or_those_below() {
    let mut wrong = Vec::new();
    for (from, deps) in graph() {
        let Some(lf) = layer(&from) else { continue };
        for to in deps {
            if layer(&to).is_some_and(|lt| lt > lf) {
                wrong.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layers: {wrong:#?}");
}

#[test]
fn the_module_graph_has_no_cycle() {
    let g = graph();
    // Depth-first search with colours; a grey node reached again closes a cycle.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        colour: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        colour.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            match colour.get(d.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|s| s == d).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(d.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(d, g, colour, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        colour.insert(n.to_string(), 2);
        None
    }
    let mut colour = BTreeMap::new();
    for n in g.keys() {
        if colour.get(n.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(c) = visit(n, &g, &mut colour, &mut stack) {
                panic!("import cycle: {}", c.join(" -> "));
            }
        }
    }
}
