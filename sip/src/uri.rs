//! SIP and SIPS URIs (RFC 3261 §19.1, grammar of §25), and other absolute URIs kept as text.
//!
//! rsip 0.4's URI grammar was tried first and mis-parses valid RFC 4475 URIs (a user part
//! with `;`, IPv6 references) while accepting invalid ones (spaces in the user part), so the
//! relay checks URIs against the RFC grammar itself.

use std::fmt;

use restsip_protocol::normalize_email;

/// A URI as SIP carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    /// `sip:` or `sips:`.
    Sip(SipUri),
    /// Any other absolute URI (`tel:`, `mailto:`, ...), checked only for its scheme and for
    /// characters no URI may hold.
    Other(String),
}

/// A `sip:` or `sips:` URI, split into its parts; escapes are kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// The user part, escaped as written.
    pub user: Option<String>,
    /// The password, escaped as written (deprecated, but valid).
    pub password: Option<String>,
    /// Host name, IPv4 address or bracketed IPv6 reference.
    pub host: String,
    /// Port, when given.
    pub port: Option<u16>,
    /// `;name[=value]` parameters in order.
    pub params: Vec<(String, Option<String>)>,
    /// The `?headers` part without the `?`, when given.
    pub headers: Option<String>,
}

/// Why a URI was refused.
pub type UriError = &'static str;

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// Checks that every `%` starts a two-digit hex escape and every other byte passes `ok`.
fn check_escaped(s: &str, ok: impl Fn(u8) -> bool, what: UriError) -> Result<(), UriError> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(what)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(what);
            }
            i += 3;
        } else if ok(b[i]) {
            i += 1;
        } else {
            return Err(what);
        }
    }
    Ok(())
}

/// Undoes `%XX` escapes (the text is already checked).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn check_host(host: &str) -> Result<(), UriError> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or("unterminated IPv6 reference")?;
        return inner
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| "bad IPv6 reference");
    }
    let labels = host.strip_suffix('.').unwrap_or(host);
    // RFC 3261's hostname has letters, digits and inner hyphens only; an underscore is
    // accepted as well, as DNS allows it and the SERVICE draft's own examples use one
    // (`sip:application_service_broker.ubiquity.net`).
    let good = !labels.is_empty()
        && labels.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if good {
        Ok(())
    } else {
        Err("bad host")
    }
}

impl SipUri {
    /// Parses `sip:...` or `sips:...`.
    pub fn parse(text: &str) -> Result<Self, UriError> {
        let (scheme, rest) = text.split_once(':').ok_or("URI without a scheme")?;
        let secure = if scheme.eq_ignore_ascii_case("sips") {
            true
        } else if scheme.eq_ignore_ascii_case("sip") {
            false
        } else {
            return Err("not a sip: or sips: URI");
        };
        // `@` appears nowhere but after the user info; `?` may be in the user part, so the
        // headers are split off the host part only.
        let (userinfo, hostpart) = match rest.split_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (hostpart, headers) = match hostpart.split_once('?') {
            Some((h, hd)) => (h, Some(hd.to_owned())),
            None => (hostpart, None),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, password) = match u.split_once(':') {
                    Some((user, pw)) => (user, Some(pw)),
                    None => (u, None),
                };
                if user.is_empty() {
                    return Err("empty user part");
                }
                check_escaped(
                    user,
                    |b| is_unreserved(b) || b"&=+$,;?/".contains(&b),
                    "bad character in the user part",
                )?;
                if let Some(pw) = password {
                    check_escaped(
                        pw,
                        |b| is_unreserved(b) || b"&=+$,".contains(&b),
                        "bad character in the password",
                    )?;
                }
                (Some(user.to_owned()), password.map(str::to_owned))
            }
        };
        let (hostport, params) = match hostpart.split_once(';') {
            Some((hp, p)) => (hp, Some(p)),
            None => (hostpart, None),
        };
        let (host, port) = split_host_port(hostport)?;
        check_host(host)?;
        let params = match params {
            None => Vec::new(),
            Some(p) => parse_uri_params(p)?,
        };
        if let Some(h) = &headers {
            check_escaped(
                h,
                |b| is_unreserved(b) || b"[]/?:+$=&".contains(&b),
                "bad character in URI headers",
            )?;
        }
        Ok(Self {
            secure,
            user,
            password,
            host: host.to_owned(),
            port,
            params,
            headers,
        })
    }

    /// A parameter's value (`Some(None)` for a flag such as `lr`).
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// `user@host` with escapes undone, in the canonical form of account addresses
    /// (`restsip_protocol::normalize_email`): the account email this URI names, if it has a user.
    pub fn address(&self) -> Option<String> {
        self.user
            .as_ref()
            .map(|u| normalize_email(&format!("{}@{}", unescape(u), self.host)))
    }
}

fn split_host_port(hostport: &str) -> Result<(&str, Option<u16>), UriError> {
    let (host, port) = if hostport.starts_with('[') {
        match hostport.find(']') {
            Some(end) => match &hostport[end + 1..] {
                "" => (hostport, None),
                p => (
                    &hostport[..=end],
                    Some(p.strip_prefix(':').ok_or("bad port")?),
                ),
            },
            None => return Err("unterminated IPv6 reference"),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| "port out of range")?)
        }
        Some(_) => return Err("bad port"),
        None => None,
    };
    Ok((host, port))
}

fn parse_uri_params(text: &str) -> Result<Vec<(String, Option<String>)>, UriError> {
    let ok = |b: u8| is_unreserved(b) || b"[]/:&+$".contains(&b);
    text.split(';')
        .map(|p| {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (p, None),
            };
            if name.is_empty() {
                return Err("empty URI parameter");
            }
            check_escaped(name, ok, "bad character in a URI parameter")?;
            if let Some(v) = value {
                check_escaped(v, ok, "bad character in a URI parameter")?;
            }
            Ok((name.to_owned(), value.map(str::to_owned)))
        })
        .collect()
}

impl Uri {
    /// Parses any absolute URI; `sip:` and `sips:` are checked in full.
    pub fn parse(text: &str) -> Result<Self, UriError> {
        let (scheme, rest) = text.split_once(':').ok_or("URI without a scheme")?;
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            return SipUri::parse(text).map(Uri::Sip);
        }
        let scheme_ok = scheme
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        if !scheme_ok {
            return Err("bad URI scheme");
        }
        if rest.is_empty() || rest.bytes().any(|b| b <= b' ' || b"<>\"".contains(&b)) {
            return Err("bad character in URI");
        }
        Ok(Uri::Other(text.to_owned()))
    }

    /// The SIP URI, if it is one.
    pub fn sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            Uri::Other(_) => None,
        }
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(pw) = &self.password {
                write!(f, ":{pw}")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        for (name, value) in &self.params {
            match value {
                Some(v) => write!(f, ";{name}={v}")?,
                None => write!(f, ";{name}")?,
            }
        }
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => u.fmt(f),
            Uri::Other(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_uris_round_trip() {
        for text in [
            "sip:vivekg@chair-dnrc.example.com;unknownparam",
            "sip:user;par=u%40example.net@example.com",
            "sip:null-%00-null@example.com",
            "sips:alice:secret@[2001:db8::10]:5070;transport=tcp;lr",
            "sip:example.com",
            "sip:%61lice@atlanta.com;maddr=239.255.255.1;ttl=15",
            "sip:user@example.com?Subject=hi&Priority=urgent",
            // The SERVICE draft's examples (section 6) name such a host.
            "sip:application_service_broker.ubiquity.net",
        ] {
            let uri = Uri::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(uri.to_string(), text);
        }
    }

    #[test]
    fn parts_are_split_where_the_grammar_says() {
        let u = SipUri::parse("sip:user;par=u%40example.net@example.com:5061;lr").expect("uri");
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert_eq!(u.host, "example.com");
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.param("LR"), Some(None));
        let v6 = SipUri::parse("sip:[::1]:5060").expect("v6");
        assert_eq!((v6.host.as_str(), v6.port), ("[::1]", Some(5060)));
        assert_eq!(
            SipUri::parse("sip:%61lice@Example.COM")
                .expect("uri")
                .address()
                .as_deref(),
            Some("alice@example.com")
        );
    }

    #[test]
    fn invalid_uris_are_refused() {
        for text in [
            "sip:one two@example.com",
            "sip:user@exa mple.com",
            "sip:user@example.com:99999",
            "sip:user@example.com:",
            "sip:@example.com",
            "sip:user@[::1",
            "sip:user@example.com;;lr",
            "sip:user@%zz",
            "<sip:user@example.com>",
            "sip:user@ex<ample.com",
            "sip:user@-example.com",
            "1tel:123",
            "http:",
        ] {
            assert!(Uri::parse(text).is_err(), "{text} should be refused");
        }
        assert!(matches!(
            Uri::parse("tel:+1-201-555-0123"),
            Ok(Uri::Other(_))
        ));
    }
}
