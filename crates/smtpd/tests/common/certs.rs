//! Test certificates made with the openssl command: a CA, server certificates signed by it
//! (subject alternative names as given) and client certificates, with keys as OpenSMTPD wants
//! them (owned by root, mode 0600).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Certs {
    pub dir: tempfile::TempDir,
}

/// Why TLS tests cannot run here, if they cannot: they run as root (pki files belong to root,
/// OpenSMTPD's rule, which the daemon keeps when run as root), and the certificates are made
/// with openssl.
pub fn unavailable() -> Option<&'static str> {
    if !nix::unistd::geteuid().is_root() {
        // An unprivileged daemon takes pki files of its own user since 2026-12-02; these tests
        // have not been made to run without root yet (they make users' folders as root).
        return Some("not yet made to run unprivileged: run the TLS tests as root");
    }
    if Command::new("openssl").arg("version").output().is_err() {
        return Some("openssl is not installed (scripts/test-deps.sh installs it)");
    }
    None
}

fn run(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {:?}: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Certs {
    pub fn new() -> Certs {
        let dir = tempfile::tempdir().expect("tempdir");
        let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755));
        Certs { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn p(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }

    /// A self-signed CA `NAME.crt` / `NAME.key`.
    pub fn ca(&self, name: &str, cn: &str) -> &Self {
        run(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
                "-days",
                "2",
                "-subj",
                &format!("/CN={cn}"),
            ],
            self.dir.path(),
        );
        self.protect(name);
        self
    }

    /// `NAME.crt` / `NAME.key` signed by the CA `ca` (or self-signed when `ca` is None), for
    /// `usage` (`serverAuth` or `clientAuth`), with these DNS names (or `IP:ADDR` addresses). `rsa` for an RSA key (the
    /// TLS 1.2 suites then are ECDHE-RSA ones), else P-256.
    pub fn leaf(
        &self,
        name: &str,
        ca: Option<&str>,
        cn: &str,
        sans: &[&str],
        usage: &str,
        rsa: bool,
    ) -> &Self {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let crt = format!("{name}.crt");
        let subj = format!("/CN={cn}");
        let mut req = vec!["req", "-new", "-nodes", "-keyout", &key, "-subj", &subj];
        if rsa {
            req.extend(["-newkey", "rsa:2048"]);
        } else {
            req.extend(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]);
        }
        req.extend(["-out", &csr]);
        run(&req, self.dir.path());
        let ext = format!("{name}.ext");
        let mut text = format!("extendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n");
        if !sans.is_empty() {
            // `IP:127.0.0.1` as given, anything else a DNS name.
            let list: Vec<String> = sans
                .iter()
                .map(|s| {
                    if s.starts_with("IP:") {
                        s.to_string()
                    } else {
                        format!("DNS:{s}")
                    }
                })
                .collect();
            text.push_str(&format!("subjectAltName={}\n", list.join(",")));
        }
        std::fs::write(self.path(&ext), text).expect("ext");
        let mut x509 = vec!["x509", "-req", "-in", &csr, "-out", &crt, "-days", "2"];
        x509.extend(["-extfile", &ext]);
        let (ca_crt, ca_key);
        match ca {
            Some(ca) => {
                ca_crt = format!("{ca}.crt");
                ca_key = format!("{ca}.key");
                x509.extend(["-CA", &ca_crt, "-CAkey", &ca_key, "-CAcreateserial"]);
            }
            None => x509.extend(["-key", &key]),
        }
        run(&x509, self.dir.path());
        self.protect(name);
        self
    }

    /// An intermediate CA `NAME.crt` / `NAME.key`, signed by the CA `ca`.
    pub fn intermediate(&self, name: &str, ca: &str, cn: &str) -> &Self {
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        let subj = format!("/CN={cn}");
        run(
            &[
                "req",
                "-new",
                "-nodes",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-keyout",
                &key,
                "-subj",
                &subj,
                "-out",
                &csr,
            ],
            self.dir.path(),
        );
        std::fs::write(
            self.path(&ext),
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
        )
        .expect("ext");
        let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
        run(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &ext,
                "-CA",
                &ca_crt,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
            ],
            self.dir.path(),
        );
        self.protect(name);
        self
    }

    /// Appends `ca.crt` to `name.crt`: a pki certificate file that carries its chain.
    pub fn chain(&self, name: &str, ca: &str) -> &Self {
        let mut text = std::fs::read_to_string(self.path(&format!("{name}.crt"))).expect("crt");
        text.push_str(&std::fs::read_to_string(self.path(&format!("{ca}.crt"))).expect("ca crt"));
        std::fs::write(self.path(&format!("{name}.crt")), text).expect("chain");
        self
    }

    /// A key readable by root only, as OpenSMTPD requires.
    fn protect(&self, name: &str) {
        let _ = std::fs::set_permissions(
            self.path(&format!("{name}.key")),
            std::fs::Permissions::from_mode(0o600),
        );
    }
}

impl Default for Certs {
    fn default() -> Self {
        Certs::new()
    }
}

/// Runs `openssl s_client` against `port` (with `-starttls smtp` when `starttls`), sending
/// `input` lines (CRLF-terminated by `-crlf`) one at a time, a moment apart (OpenSMTPD refuses
/// pipelined commands), and returns what it printed (stdout and stderr).
pub fn s_client(port: u16, starttls: bool, extra: &[&str], input: &str) -> String {
    use std::io::Write;
    let connect = format!("127.0.0.1:{port}");
    let mut args = vec!["s_client", "-connect", &connect, "-crlf", "-ign_eof"];
    if starttls {
        args.extend(["-starttls", "smtp", "-name", "client.example"]);
    }
    args.extend(extra);
    let mut child = Command::new("timeout")
        .arg("20")
        .arg("openssl")
        .args(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    if let Some(mut i) = child.stdin.take() {
        // The handshake first, then each line when the previous reply had time to come.
        std::thread::sleep(std::time::Duration::from_millis(700));
        for line in input.split_inclusive('\n') {
            let _ = i.write_all(line.as_bytes());
            let _ = i.flush();
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
    let out = child.wait_with_output().expect("s_client output");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
