//! One address, one account: the canonical form of an account's email address, applied by
//! the relay wherever an address enters (sign-up, credentials, REST paths and bodies, SIP
//! URIs and digest user names), so that `B@EXAMPLE.NET`, `b@example.net.` and `b@example.net`
//! are one account and cannot be signed up as look-alikes of each other.
//!
//! The rule: surrounding white space is dropped; ASCII letters are lower-cased in the domain
//! (DNS names are case-insensitive) **and in the local part** (RFC 5321 lets a mail server
//! tell `Jan` from `jan`, but no major provider does, and two accounts differing only in case
//! are a phishing tool); the domain's trailing dots (the DNS root) are dropped. Sign-up also
//! refuses characters outside printable ASCII (see [`check_email`]), so that no look-alike
//! letter of another script can name a second account.

/// Longest address accepted (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;

/// The canonical form of `email` (see the module's rule). Idempotent.
pub fn normalize_email(email: &str) -> String {
    let email = email.trim();
    let mut out = email.to_ascii_lowercase();
    if let Some(at) = out.rfind('@') {
        let keep = out[at..].trim_end_matches('.').len();
        out.truncate(at + keep);
    }
    out
}

/// Why `email` cannot name a new account, or Ok: a canonical address of at most
/// [`MAX_EMAIL`] bytes with one `@`, something on both sides, printable ASCII only, and none of
/// the characters that would change its meaning as a path segment or a SIP URI user part.
pub fn check_email(email: &str) -> Result<(), &'static str> {
    if email.len() > MAX_EMAIL {
        return Err("too long");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err("must contain @");
    };
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return Err("must be local@domain");
    }
    if !email.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "must be printable ASCII without spaces (internationalised addresses are not accepted)",
        );
    }
    if email.contains(['/', '?', '#', '%', ':', ';', '<', '>', '"']) {
        return Err("contains a character not allowed in an address");
    }
    if domain.starts_with('.') || domain.contains("..") {
        return Err("the domain has an empty label");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes_become_one_address() {
        for form in [
            "b@example.net",
            "B@EXAMPLE.NET",
            "b@example.net.",
            " b@Example.Net.. ",
        ] {
            assert_eq!(normalize_email(form), "b@example.net", "{form:?}");
        }
        assert_eq!(normalize_email("b@example.net"), "b@example.net");
        assert_eq!(
            normalize_email("no-at-sign."),
            "no-at-sign.",
            "only a domain loses dots"
        );
    }

    #[test]
    fn only_plain_addresses_name_accounts() {
        assert_eq!(check_email("jan@example.net"), Ok(()));
        assert_eq!(check_email("jan+tag@sub.example.net"), Ok(()));
        for bad in [
            "jan",
            "@example.net",
            "jan@",
            "a@b@c",
            "j an@example.net",
            "jаn@example.net", // a Cyrillic а
            "jan@exa/mple.net",
            "jan@.example.net",
            "jan@example..net",
        ] {
            assert!(check_email(bad).is_err(), "{bad:?}");
        }
        assert!(check_email(&format!("{}@x.net", "a".repeat(250))).is_err());
    }
}
