//! `smtp ciphers "..."`: an OpenSSL cipher string, mapped onto the TLS 1.2 suites rustls has.
//!
//! As with OpenSMTPD 6.8 (`SSL_CTX_set_cipher_list`), the string only chooses TLS 1.2 suites:
//! TLS 1.3 always offers its own three. Names of suites rustls has are taken in the order
//! written; OpenSSL's group words that select among them (`HIGH`, `ECDHE`, `AESGCM`, `aRSA`...)
//! are understood; exclusions of things rustls never offers (`!aNULL`, `!MD5`, `!RC4`...) are
//! no-ops. Anything else (a suite rustls lacks, such as `AES256-SHA` or `DHE-RSA-...`, or a
//! word we do not know) is refused at start rather than silently widened or narrowed.

use rustls::SupportedCipherSuite;

use super::names::SUITES;

/// Words that exclude only what rustls never offers: weak, anonymous or obsolete families.
const NEVER_OFFERED: &[&str] = &[
    "aNULL", "eNULL", "NULL", "ADH", "AECDH", "EXPORT", "EXP", "LOW", "MEDIUM", "DES", "3DES",
    "RC4", "RC2", "IDEA", "SEED", "MD5", "PSK", "SRP", "DSS", "aDSS", "CAMELLIA", "ARIA", "CBC",
    "SHA1", "kRSA", "RSA", "DHE", "EDH", "kDHE", "kEDH", "SSLv3", "AESCCM", "AESCCM8",
];

/// The TLS 1.2 suites (OpenSSL names) a group word stands for.
fn group(word: &str) -> Option<Vec<&'static str>> {
    let tls12 = || SUITES.iter().filter(|s| !s.tls13);
    let pick = |f: &dyn Fn(&str) -> bool| -> Vec<&'static str> {
        tls12()
            .filter(|s| f(s.openssl))
            .map(|s| s.openssl)
            .collect()
    };
    Some(match word {
        "ALL" | "DEFAULT" | "HIGH" | "SECURE" | "ECDHE" | "EECDH" | "kECDHE" | "kEECDH"
        | "AEAD" | "TLSv1.2" | "SHA2" | "SHA256" | "SHA384" => {
            let all = pick(&|_| true);
            match word {
                "SHA256" => pick(&|n| !n.ends_with("SHA384")),
                "SHA384" => pick(&|n| n.ends_with("SHA384")),
                _ => all,
            }
        }
        "aRSA" | "ECDHE-RSA" => pick(&|n| n.starts_with("ECDHE-RSA-")),
        "aECDSA" | "ECDSA" | "ECDHE-ECDSA" => pick(&|n| n.starts_with("ECDHE-ECDSA-")),
        "AESGCM" | "AES" => pick(&|n| n.contains("-GCM-")),
        "AES256" => pick(&|n| n.contains("AES256")),
        "AES128" => pick(&|n| n.contains("AES128")),
        "CHACHA20" => pick(&|n| n.contains("CHACHA20")),
        _ => return None,
    })
}

/// The TLS 1.2 suites, in preference order, that `spec` selects; or the line to refuse it with.
pub fn tls12_suites(spec: &str) -> Result<Vec<SupportedCipherSuite>, String> {
    let mut chosen: Vec<&'static str> = Vec::new();
    let mut removed: Vec<&'static str> = Vec::new();
    for tok in spec
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        // `@STRENGTH`, `@SECLEVEL=N`: orderings and levels that change nothing among these.
        if tok.starts_with('@') {
            continue;
        }
        let (op, word) = match tok.as_bytes()[0] {
            b'!' | b'-' => (tok.as_bytes()[0], &tok[1..]),
            b'+' => (b'+', &tok[1..]),
            _ => (b' ', tok),
        };
        let names: Vec<&'static str> = if let Some(s) = SUITES.iter().find(|s| s.openssl == word) {
            if s.tls13 {
                // TLS 1.3 suites are not chosen by the cipher string, in OpenSSL either.
                continue;
            }
            vec![s.openssl]
        } else if let Some(g) = group(word) {
            g
        } else if NEVER_OFFERED.contains(&word) {
            if op == b'!' || op == b'-' {
                continue;
            }
            return Err(refusal(spec, word));
        } else {
            return Err(refusal(spec, word));
        };
        match op {
            b'!' => {
                chosen.retain(|n| !names.contains(n));
                removed.extend(names);
            }
            b'-' => chosen.retain(|n| !names.contains(n)),
            b'+' => {
                // Move to the end, in their current order.
                let moved: Vec<_> = chosen
                    .iter()
                    .copied()
                    .filter(|n| names.contains(n))
                    .collect();
                chosen.retain(|n| !names.contains(n));
                chosen.extend(moved);
            }
            _ => {
                for n in names {
                    if !chosen.contains(&n) && !removed.contains(&n) {
                        chosen.push(n);
                    }
                }
            }
        }
    }
    let provider = rustls::crypto::ring::default_provider();
    Ok(chosen
        .iter()
        .filter_map(|name| {
            let s = SUITES.iter().find(|s| s.openssl == *name)?;
            provider
                .cipher_suites
                .iter()
                .find(|cs| cs.suite() == s.suite)
                .copied()
        })
        .collect())
}

fn refusal(spec: &str, word: &str) -> String {
    let offered: Vec<&str> = SUITES
        .iter()
        .filter(|s| !s.tls13)
        .map(|s| s.openssl)
        .collect();
    format!(
        "smtpd: smtp ciphers \"{}\": \"{}\" cannot be honoured: the TLS 1.2 suites available are {}",
        spec,
        word,
        offered.join(":")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(spec: &str) -> Vec<String> {
        tls12_suites(spec)
            .unwrap_or_default()
            .iter()
            .map(|s| super::super::names::suite(s.suite()).0)
            .collect()
    }

    #[test]
    fn defaults_and_names() {
        // OpenSMTPD's default, "HIGH:!aNULL:!MD5", keeps every suite we have.
        assert_eq!(names("HIGH:!aNULL:!MD5").len(), 6);
        assert_eq!(
            names("ECDHE-RSA-AES128-GCM-SHA256"),
            ["ECDHE-RSA-AES128-GCM-SHA256"]
        );
        assert_eq!(
            names("aRSA:!CHACHA20"),
            ["ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256"]
        );
    }

    #[test]
    fn what_cannot_be_honoured_is_refused() {
        assert!(tls12_suites("AES256-SHA").is_err());
        assert!(tls12_suites("NOSUCHCIPHER").is_err());
        assert!(tls12_suites("HIGH:RC4").is_err());
    }
}
