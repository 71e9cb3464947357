//! A test machine: real files from disk plus in-memory ones, `lo` with 127.0.0.1 and ::1, and the
//! usual services.

#![allow(dead_code)]

use std::cell::RefCell;
use std::io;
use std::net::IpAddr;

use rsmtpd_config::{dump, parse_file, Config, Environment, ParseOptions, StaticEnvironment};

pub struct TestEnv {
    pub base: StaticEnvironment,
    pub mem: RefCell<Vec<(String, Vec<u8>)>>,
    /// Relative paths are read from here, as smtpd reads them from its working directory.
    pub cwd: Option<std::path::PathBuf>,
    /// `@DIR@` in `.conf` files read from disk becomes this (the corpus convention).
    pub dir: Option<String>,
}

impl TestEnv {
    pub fn new() -> Self {
        TestEnv {
            base: StaticEnvironment::typical(),
            mem: RefCell::new(Vec::new()),
            cwd: None,
            dir: None,
        }
    }
    pub fn put(&self, path: &str, text: &str) {
        let mut m = self.mem.borrow_mut();
        m.retain(|(p, _)| p != path);
        m.push((path.to_string(), text.as_bytes().to_vec()));
    }
}

impl Environment for TestEnv {
    fn read_file(&self, path: &str) -> io::Result<Vec<u8>> {
        if let Some((_, d)) = self.mem.borrow().iter().find(|(p, _)| p == path) {
            return Ok(d.clone());
        }
        let p = match (&self.cwd, path.starts_with('/')) {
            (Some(cwd), false) => cwd.join(path),
            _ => std::path::PathBuf::from(path),
        };
        let data = std::fs::read(&p)?;
        match &self.dir {
            Some(d) if path.ends_with(".conf") => Ok(String::from_utf8_lossy(&data)
                .replace("@DIR@", d)
                .into_bytes()),
            _ => Ok(data),
        }
    }
    fn service_port(&self, name: &str) -> Option<u16> {
        self.base.service_port(name)
    }
    fn interface_addrs(&self, name: &str) -> Vec<IpAddr> {
        self.base.interface_addrs(name)
    }
    fn resolve_host(&self, name: &str) -> Vec<IpAddr> {
        self.base.resolve_host(name)
    }
    fn table_backend_exists(&self, backend: &str) -> bool {
        self.base.table_backend_exists(backend)
    }
}

pub fn strict() -> ParseOptions {
    ParseOptions {
        strict: true,
        ..Default::default()
    }
}

/// Parses text given as file `name`.
pub fn parse_text(env: &TestEnv, name: &str, text: &str) -> Result<Config, Vec<String>> {
    env.put(name, text);
    let out = parse_file(name, env, &strict());
    match out.config {
        Some(c) => Ok(c),
        None => Err(out.messages),
    }
}

/// parse → dump → parse gives the same configuration, and the dump is a fixed point.
pub fn assert_round_trip(env: &TestEnv, c: &Config) {
    let text = dump(c);
    let c2 = parse_text(env, "/roundtrip/dump.conf", &text)
        .unwrap_or_else(|e| panic!("dump does not parse:\n{}\n{}", text, e.join("\n")));
    assert_eq!(&c2, c, "round trip changed the config; dump was:\n{}", text);
    assert_eq!(dump(&c2), text);
}
