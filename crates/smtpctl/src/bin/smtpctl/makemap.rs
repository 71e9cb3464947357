//! The `makemap` and `newaliases` personalities (makemap.c).

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use rsmtpd_control::map::{self, MapKind};
use rsmtpd_smtpctl::{usage, Personality};

use super::{errx, progname, strerror};

pub fn makemap_main(args: &[String], newaliases: bool) -> i32 {
    let m = match rsmtpd_smtpctl::parse_makemap(args, newaliases) {
        Ok(m) => m,
        Err(e) if e == "usage" => {
            eprint!("{}", usage(Personality::Makemap, &progname(), newaliases));
            return 1;
        }
        Err(e) => errx(1, &e),
    };
    if m.newaliases && !nix::unistd::geteuid().is_root() {
        errx(1, "need root privileges");
    }
    let source = match (&m.source, m.newaliases) {
        (Some(s), _) => s.clone(),
        (None, _) => {
            let conf = m.config.clone().unwrap_or_else(|| {
                if std::path::Path::new("/etc/mail/smtpd.conf").exists() {
                    "/etc/mail/smtpd.conf".into()
                } else {
                    "/etc/smtpd.conf".into()
                }
            });
            rsmtpd_smtpctl::conf_aliases(&std::fs::read_to_string(&conf).unwrap_or_default())
        }
    };
    let kind = m.kind.unwrap_or(MapKind::Plain);
    if m.dump {
        let data = std::fs::read(&source)
            .unwrap_or_else(|e| errx(1, &format!("dbopen: {source}: {}", strerror(&e))));
        let map = match map::read_map(&data) {
            Ok(map) => map,
            // A Berkeley DB file from OpenSMTPD's makemap: dumped as its dump_db() prints it,
            // each side up to its NUL.
            Err(e) => match rsmtpd_bdb::read(&data) {
                Ok(db) => {
                    let c_str = |b: &[u8]| b.split(|&c| c == 0).next().unwrap_or_default().to_vec();
                    let mut out = Vec::new();
                    for (k, v) in &db.entries {
                        out.extend(c_str(k));
                        out.push(b'\t');
                        out.extend(c_str(v));
                        out.push(b'\n');
                    }
                    let _ = std::io::stdout().write_all(&out);
                    return 0;
                }
                Err(_) => errx(1, &format!("dbopen: {source}: {e}")),
            },
        };
        for (k, v) in map.entries {
            let v = v.unwrap_or_else(|| "<set>".into());
            println!("{k}\t{v}");
        }
        return 0;
    }
    let output = m.output.clone().unwrap_or_else(|| format!("{source}.db"));
    let (text, meta) = if source == "-" {
        let mut s = String::new();
        let _ = std::io::stdin().read_to_string(&mut s);
        (s, None)
    } else {
        let meta = std::fs::metadata(&source)
            .unwrap_or_else(|e| errx(1, &format!("stat: {source}: {}", strerror(&e))));
        match std::fs::read(&source) {
            Ok(b) => (String::from_utf8_lossy(&b).into_owned(), Some(meta)),
            Err(e) => {
                eprintln!("{}: {source}: {}", progname(), strerror(&e));
                return 1;
            }
        }
    };
    let entries =
        match map::parse_source_checked(&text, kind, &rsmtpd::routing::alias::is_valid_node) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("{}: {}", progname(), e.message(&source));
                return 1;
            }
        };
    let tmp = format!("{output}.{}", std::process::id());
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        if let Some(md) = &meta {
            use std::os::unix::fs::MetadataExt;
            f.set_permissions(std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
            let _ = std::os::unix::fs::fchown(&f, Some(md.uid()), Some(md.gid()));
        }
        f.write_all(&map::write_map(kind, &entries))?;
        f.sync_all()?;
        std::fs::rename(&tmp, &output)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        eprintln!("{}: {tmp}: {}", progname(), strerror(&e));
        return 1;
    }
    if m.newaliases {
        println!("{source}: {} aliases", entries.len());
    } else if entries.is_empty() {
        eprintln!("{}: warning: empty map created: {output}", progname());
    }
    0
}
