//! Routing a recipient: the ruleset, table lookups, expansion, aliases, `db:` maps, `~/.forward`
//! logs, `update table` and makemap's alias check (one test binary).
//!
//! One module per former test file: `cargo test -p rsmtpd --test routing MODULE::` runs one.

#[path = "../common/mod.rs"]
mod common;

mod aliases;
mod db_tables;
mod expand_recipients;
mod forward_logs;
mod lookup_tables;
mod makemap_aliases;
mod rule_match;
mod table_update;
