//! docs/compatibility.md stays true: every reserved word of the parser is in some row (honoured,
//! refused or ignored), every feature the daemon refuses (`support::NOT_YET`) is named by a
//! `refused` row and no implemented one is, and every `honoured` row names a test that exists.

use std::collections::BTreeSet;
use std::path::Path;

use rsmtpd::support::{Feature, ALL, NOT_YET};
use rsmtpd_config::keyword::Keyword;

struct Row {
    construct: String,
    state: String,
    proof: String,
}

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn rows() -> Vec<Row> {
    let text = std::fs::read_to_string(root().join("docs/compatibility.md")).expect("read doc");
    let mut out = Vec::new();
    for line in text.lines() {
        // `\|` inside a cell is an escaped bar (alternatives), not a column.
        let line = line.replace("\\|", "\u{1}");
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() != 5 || !cells[0].is_empty() || !cells[4].is_empty() {
            continue;
        }
        let state = cells[2].to_string();
        if !["honoured", "refused", "ignored"].contains(&state.as_str()) {
            continue;
        }
        out.push(Row {
            construct: cells[1].replace('\u{1}', "|"),
            state,
            proof: cells[3].replace('\u{1}', "|"),
        });
    }
    out
}

/// The words inside backquotes of a cell.
fn words(cell: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, part) in cell.split('`').enumerate() {
        if i % 2 == 1 {
            for w in part.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
                if !w.is_empty() {
                    out.insert(w.to_string());
                }
            }
        }
    }
    out
}

#[test]
fn every_keyword_is_honoured_refused_or_ignored() {
    let rows = rows();
    assert!(rows.len() > 40, "the doc's tables were not found");
    let listed: BTreeSet<String> = rows.iter().flat_map(|r| words(&r.construct)).collect();
    let missing: Vec<&str> = Keyword::all().filter(|k| !listed.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "keywords in no row of docs/compatibility.md: {:?}",
        missing
    );
}

#[test]
fn refused_rows_are_the_refusal_list() {
    let rows = rows();
    let refused: Vec<&Row> = rows.iter().filter(|r| r.state == "refused").collect();
    for f in NOT_YET {
        assert!(
            refused.iter().any(|r| r.proof.contains(f.name())),
            "{:?} ({}) is refused at start but no refused row names it",
            f,
            f.name()
        );
    }
    let implemented: Vec<Feature> = ALL.iter().copied().filter(|f| f.implemented()).collect();
    for r in &refused {
        let names: Vec<&Feature> = ALL.iter().filter(|f| r.proof.contains(f.name())).collect();
        assert!(
            !names.is_empty(),
            "refused row `{}` names no feature of support.rs",
            r.construct
        );
        for f in names {
            assert!(
                !implemented.contains(f),
                "row `{}` says refused but {:?} is implemented: make it honoured",
                r.construct,
                f
            );
        }
    }
}

#[test]
fn honoured_rows_name_tests_that_exist_and_ignored_rows_say_why() {
    for r in rows() {
        match r.state.as_str() {
            "honoured" => {
                let paths: Vec<&str> = r
                    .proof
                    .split(|c: char| {
                        c.is_whitespace() || c == ',' || c == '(' || c == ')' || c == ';'
                    })
                    .filter(|w| w.starts_with("crates/") || w.starts_with("tests/"))
                    .collect();
                assert!(
                    !paths.is_empty(),
                    "honoured row `{}` names no test",
                    r.construct
                );
                for p in paths {
                    // `tests/smtp-dialogues/17x-*` style names stand for a family of files.
                    if p.contains('*') || p.contains("17x") {
                        continue;
                    }
                    assert!(
                        root().join(p).exists(),
                        "row `{}`: {} does not exist",
                        r.construct,
                        p
                    );
                }
            }
            "ignored" => assert!(
                r.proof.len() > 20,
                "ignored row `{}` says not why",
                r.construct
            ),
            _ => {}
        }
    }
}
