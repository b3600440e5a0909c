//! `restapi.ciphers`: Patroni hands this string to OpenSSL's `set_ciphers`; hactl maps it onto the suites rustls
//! offers, with OpenSSL's meaning where the two overlap.
//!
//! - As with OpenSSL, the string governs TLS 1.2 only: TLS 1.3's suites (all AEAD) stay on.
//! - A token is a suite's OpenSSL or IANA name, or one of OpenSSL's keywords. `!X` and `-X` remove, `+X` (a
//!   reordering in OpenSSL) is ignored, `@STRENGTH` and `@SECLEVEL=n` are ignored.
//! - Keywords for what rustls never offers (`aNULL`, `RC4`, `3DES`, `CBC` modes, `DHE`, ...) select nothing, so
//!   `HIGH:!aNULL:!MD5` works as it does under OpenSSL.
//! - A name hactl does not know selects nothing, as OpenSSL skips names it lacks (`AES128-SHA`, a CBC suite, is
//!   one); but an unknown name after `!` or `-` is an error naming the key, since it might have removed a suite
//!   hactl offers, and so is a string that leaves no TLS 1.2 suite (OpenSSL fails on "no cipher match" too): a
//!   restriction is never silently widened.

use rustls::crypto::ring::cipher_suite as cs;
use rustls::SupportedCipherSuite;

use super::TlsError;

/// The TLS 1.2 suites rustls (ring) has, with their OpenSSL names.
fn tls12_suites() -> Vec<(&'static str, SupportedCipherSuite)> {
    vec![
        (
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "ECDHE-RSA-AES256-GCM-SHA384",
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "ECDHE-RSA-AES128-GCM-SHA256",
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "ECDHE-RSA-CHACHA20-POLY1305",
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
    ]
}

/// TLS 1.3's suites: always on, as OpenSSL's `set_ciphers` leaves them.
fn tls13_suites() -> Vec<SupportedCipherSuite> {
    vec![
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
    ]
}

/// Which TLS 1.2 suites (by OpenSSL name) a keyword selects; `None` for an unknown token.
fn keyword(token: &str) -> Option<Vec<&'static str>> {
    let all: Vec<&'static str> = tls12_suites().into_iter().map(|(n, _)| n).collect();
    let matching = |f: &dyn Fn(&str) -> bool| all.iter().copied().filter(|n| f(n)).collect();
    Some(match token {
        "ALL"
        | "DEFAULT"
        | "HIGH"
        | "COMPLEMENTOFDEFAULT"
        | "TLSv1.2"
        | "AEAD"
        | "ECDHE"
        | "EECDH"
        | "kECDHE"
        | "kEECDH" => all.clone(),
        "AESGCM" | "AES" => matching(&|n| n.contains("-AES")),
        "AES128" => matching(&|n| n.contains("AES128")),
        "AES256" => matching(&|n| n.contains("AES256")),
        "CHACHA20" => matching(&|n| n.contains("CHACHA20")),
        "ECDSA" | "aECDSA" => matching(&|n| n.starts_with("ECDHE-ECDSA")),
        "RSA" | "aRSA" => matching(&|n| n.starts_with("ECDHE-RSA")),
        "SHA256" => matching(&|n| n.ends_with("SHA256")),
        "SHA384" => matching(&|n| n.ends_with("SHA384")),
        // What rustls never offers: selecting it adds nothing, removing it removes nothing.
        "aNULL" | "eNULL" | "NULL" | "COMPLEMENTOFALL" | "MD5" | "RC4" | "DES" | "3DES"
        | "IDEA" | "SEED" | "CAMELLIA" | "ARIA" | "EXPORT" | "EXP" | "LOW" | "MEDIUM" | "SSLv3"
        | "TLSv1" | "TLSv1.0" | "DSS" | "aDSS" | "PSK" | "kPSK" | "SRP" | "kSRP" | "DH" | "EDH"
        | "DHE" | "kDHE" | "kEDH" | "ADH" | "AECDH" | "SHA1" | "SHA" | "kRSA" | "CBC"
        | "AESCCM" | "AESCCM8" | "CCM" | "GOST" | "kGOST" => Vec::new(),
        _ => return None,
    })
}

/// The suites a cipher string allows: every TLS 1.3 suite plus the TLS 1.2 ones it selects, in rustls's order.
pub fn select(ciphers: &str, key: &str) -> Result<Vec<SupportedCipherSuite>, TlsError> {
    let known = tls12_suites();
    let by_name = |t: &str| -> Option<&'static str> {
        known
            .iter()
            .find(|(n, s)| *n == t || format!("{:?}", s.suite()) == t)
            .map(|(n, _)| *n)
    };
    let mut chosen: Vec<&'static str> = Vec::new();
    let mut removed: Vec<&'static str> = Vec::new();
    for token in ciphers
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        if token.starts_with('@') || token.starts_with('+') {
            continue;
        }
        let (remove, name) = match token.strip_prefix(['!', '-']) {
            Some(rest) => (true, rest),
            None => (false, token),
        };
        // OpenSSL joins keywords with `+` for "all of": ECDHE+AESGCM.
        let mut set: Option<Vec<&'static str>> = None;
        for part in name.split('+') {
            let names = match by_name(part).map(|n| vec![n]).or_else(|| keyword(part)) {
                Some(names) => names,
                None if remove => {
                    return Err(TlsError::new(
                        key,
                        format!("unknown cipher or keyword `{part}` after `!`/`-` in `{ciphers}`: hactl cannot tell what it removes"),
                    ))
                }
                None => Vec::new(),
            };
            set = Some(match set {
                None => names,
                Some(prev) => prev.into_iter().filter(|n| names.contains(n)).collect(),
            });
        }
        let set = set.unwrap_or_default();
        if remove {
            removed.extend(set);
        } else {
            for n in set {
                if !chosen.contains(&n) {
                    chosen.push(n);
                }
            }
        }
    }
    chosen.retain(|n| !removed.contains(n));
    if chosen.is_empty() {
        return Err(TlsError::new(
            key,
            format!("`{ciphers}` selects no TLS 1.2 cipher suite hactl can offer (it has only ECDHE with AES-GCM or ChaCha20-Poly1305)"),
        ));
    }
    let mut suites = tls13_suites();
    suites.extend(
        known
            .into_iter()
            .filter(|(n, _)| chosen.contains(n))
            .map(|(_, s)| s),
    );
    Ok(suites)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &str) -> Vec<String> {
        select(s, "restapi.ciphers")
            .unwrap()
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect()
    }

    #[test]
    fn an_openssl_style_high_string_keeps_every_aead_suite() {
        assert_eq!(names("HIGH:!aNULL:!MD5").len(), 9);
    }

    #[test]
    fn named_suites_restrict_tls12_and_leave_tls13_on() {
        let n = names("ECDHE-RSA-AES256-GCM-SHA384:TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
        assert_eq!(n.len(), 5, "{n:?}");
        assert!(n.iter().filter(|s| s.starts_with("TLS13")).count() == 3);
        assert!(n.contains(&"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".to_string()));
        assert!(!n.contains(&"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string()));
    }

    #[test]
    fn removal_and_and_joined_keywords_work_as_in_openssl() {
        let n = names("ECDHE+AESGCM:!AES128");
        assert_eq!(n.len(), 5, "{n:?}");
        assert!(!n
            .iter()
            .any(|s| s.contains("CHACHA") && s.starts_with("TLS_ECDHE")));
    }

    #[test]
    fn an_unknown_removal_or_an_empty_selection_refuses_naming_the_key() {
        assert_eq!(
            names("HIGH:BOGUS").len(),
            9,
            "an unknown name selects nothing, as in OpenSSL"
        );
        let e = select("HIGH:!BOGUS", "restapi.ciphers").unwrap_err();
        assert_eq!(e.key, "restapi.ciphers");
        assert!(e.why.contains("BOGUS"));
        let e = select("AES128-SHA:DES-CBC3-SHA", "restapi.ciphers").unwrap_err();
        assert!(e.why.contains("selects no TLS 1.2"), "{e}");
        let e = select("3DES", "restapi.ciphers").unwrap_err();
        assert!(e.why.contains("selects no TLS 1.2"), "{e}");
    }
}
