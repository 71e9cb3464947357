//! Where a username's nodes come from: alias and virtual tables (`aliases.c`), `:include:`
//! files and `~/.forward` (`forward.c`), each parsed with the alias grammar.

use rsmtpd_protocol::address::Mailaddr;

use crate::routing::alias::{fparseln, parse_alias_value, parse_alias_value_partial, Item, Kind};
use crate::routing::forward::MAX_FORWARD_SIZE;
use crate::routing::lookup::Lookup;

use super::{Session, MAX_EXPAND_NODES, SUBTREE_ID};

impl<'a, 'c> Session<'a, 'c> {
    /// `forwards_get()`: Some(true) when nodes were added, Some(false) when none, None on error.
    pub(super) fn forwards_get(&mut self, data: &[u8]) -> Option<bool> {
        if data.is_empty() {
            self.infos.push("info: forward file is empty".into());
            return Some(false);
        }
        if data.len() >= MAX_FORWARD_SIZE {
            self.infos
                .push("info: forward file exceeds max size".into());
            return None;
        }
        let save = self.nodes.len();
        for line in fparseln(data, b'\\', b'\\', Some(b'#')) {
            let Some(items) = parse_alias_value(&line) else {
                self.infos.push("info: parse error in forward file".into());
                return None;
            };
            for it in items {
                if it.kind != Kind::Include {
                    self.insert(it);
                }
            }
            if self.nodes.len() > MAX_EXPAND_NODES {
                self.infos
                    .push("info: forward file expanded too many nodes".into());
                return None;
            }
        }
        Some(self.nodes.len() > save)
    }

    /// A `K_ALIAS` lookup parsed into its own little tree, as `table_parse_lookup()` does:
    /// deduplicated and ordered by (type, value), with its own trace lines.
    pub(super) fn alias_lookup(&mut self, table: &str, key: &str) -> Lookup<Vec<Item>> {
        let value = match self.cx.tables.alias(table, key) {
            Lookup::Found(v) => v,
            Lookup::NotFound => return Lookup::NotFound,
            Lookup::TempFail => return Lookup::TempFail,
        };
        let Some(items) = parse_alias_value(&value) else {
            return Lookup::TempFail;
        };
        let mut tree: Vec<Item> = Vec::new();
        for (n, it) in items.into_iter().enumerate() {
            self.trace.line(format_args!(
                "expand: {:#x}: expand_insert() called for {}:{}[parent=(nil), rule=(nil)]",
                SUBTREE_ID,
                it.kind.name(),
                it.value_text()
            ));
            if tree.contains(&it) {
                self.trace.line(format_args!(
                    "expand: {:#x}: node found, discarding",
                    SUBTREE_ID
                ));
                continue;
            }
            self.trace.line(format_args!(
                "expand: {:#x}: inserted node {:#x}",
                SUBTREE_ID,
                0x5600_0030_0000u64 + 0x60 * n as u64
            ));
            tree.push(it);
        }
        tree.sort();
        Lookup::Found(tree)
    }

    /// Merges a looked-up value into the session's tree; includes are read here.
    pub(super) fn merge(&mut self, items: Vec<Item>) -> usize {
        let mut n = 0;
        for it in items {
            if it.kind == Kind::Include {
                n += self.include(&it.text);
            } else {
                self.insert(it);
                n += 1;
            }
        }
        self.trace.line(format_args!(
            "expand: {:#x}: clearing expand tree",
            SUBTREE_ID
        ));
        self.trace.line(format_args!(
            "expand: {:#x}: freeing expand tree",
            SUBTREE_ID
        ));
        n
    }

    /// `aliases_expand_include()`: 1 if the file could be read, whatever it held.
    pub(super) fn include(&mut self, path: &str) -> usize {
        let Some(data) = self.cx.forwards.include(path) else {
            return 0;
        };
        // fparseln with { '\\', '#', '\0' }: '#' continues a line, and there is no comment
        // character, as in OpenSMTPD.
        for line in fparseln(&data, b'\\', b'#', None) {
            // expand_line() inserts what precedes a bad item, and the failure is ignored.
            if let Some(items) = parse_alias_value_partial(&line) {
                for it in items {
                    if it.kind != Kind::Include {
                        self.insert(it);
                    }
                }
            }
        }
        1
    }

    /// `aliases_get()`.
    pub(super) fn aliases_get(&mut self, table: &str, user: &str) -> Lookup<usize> {
        let mut key = user.to_ascii_lowercase();
        let delim = self.cx.tables.delim();
        if let Some(p) = key.find(delim) {
            match self.alias_lookup(table, &key) {
                Lookup::TempFail => return Lookup::TempFail,
                Lookup::Found(items) => return Lookup::Found(self.merge_alias(items)),
                Lookup::NotFound => key.truncate(p),
            }
        }
        match self.alias_lookup(table, &key) {
            Lookup::Found(items) => Lookup::Found(self.merge_alias(items)),
            Lookup::NotFound => Lookup::NotFound,
            Lookup::TempFail => Lookup::TempFail,
        }
    }

    /// Merges what an alias lookup found, with aliases_get()'s `-v` line.
    pub(super) fn merge_alias(&mut self, items: Vec<Item>) -> usize {
        let n = self.merge(items);
        crate::sys::log::debug(&format!("debug: aliases_get: returned {n} aliases"));
        n
    }

    /// `aliases_virtual_get()`: `user+tag@domain`, `user@domain`, `user+tag`, `user`, then (with
    /// a domain) `@domain` and `@`.
    pub(super) fn virtual_get(&mut self, table: &str, addr: &Mailaddr) -> Lookup<usize> {
        let delim = self.cx.tables.delim();
        let mut user = addr.user.to_ascii_lowercase();
        let domain = addr.domain.to_ascii_lowercase();
        let mut tag = String::new();
        if let Some(p) = user.find(delim) {
            tag = user[p + delim.len_utf8()..].to_string();
            user.truncate(p);
        }
        let mut keys = Vec::new();
        if !tag.is_empty() {
            keys.push(format!("{}{}{}@{}", user, delim, tag, domain));
        }
        keys.push(format!("{}@{}", user, domain));
        if !tag.is_empty() {
            keys.push(format!("{}{}{}", user, delim, tag));
        }
        keys.push(user.clone());
        if !domain.is_empty() {
            keys.push(format!("@{}", domain));
            keys.push("@".to_string());
        }
        // aliases_virtual_get() logs the key in its buffer: the one that matched, except for
        // the global catch-all, looked up as a literal "@" after "@domain" was formatted.
        let mut shown = String::new();
        for k in keys {
            if k != "@" {
                shown.clone_from(&k);
            }
            match self.alias_lookup(table, &k) {
                Lookup::Found(items) => {
                    let n = self.merge(items);
                    crate::sys::log::debug(&format!(
                        "debug: aliases_virtual_get: '{shown}' resolved to {n} nodes"
                    ));
                    return Lookup::Found(n);
                }
                Lookup::TempFail => return Lookup::TempFail,
                Lookup::NotFound => {}
            }
        }
        Lookup::Found(0)
    }
}
