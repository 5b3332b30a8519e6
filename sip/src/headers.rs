//! Typed views of the headers the SIP core reads: Via, CSeq and name-addr values (To, From,
//! Contact, Route), with the compact header names of RFC 3261 §7.3.3 and later extensions.

use std::fmt;

use super::method::Method;
use super::scan::{is_token, is_token_char, params, Scanner};
use super::uri::Uri;

/// Why a header value was refused.
pub type HeaderError = &'static str;

/// `;name[=value]` parameters.
pub type Params = Vec<(String, Option<String>)>;

/// The full name of a compact header name, if `name` is one.
pub fn expand_compact(name: &str) -> Option<&'static str> {
    let [b] = name.as_bytes() else { return None };
    Some(match b.to_ascii_lowercase() {
        b'a' => "Accept-Contact",
        b'b' => "Referred-By",
        b'c' => "Content-Type",
        b'd' => "Request-Disposition",
        b'e' => "Content-Encoding",
        b'f' => "From",
        b'i' => "Call-ID",
        b'j' => "Reject-Contact",
        b'k' => "Supported",
        b'l' => "Content-Length",
        b'm' => "Contact",
        b'o' => "Event",
        b'r' => "Refer-To",
        b's' => "Subject",
        b't' => "To",
        b'u' => "Allow-Events",
        b'v' => "Via",
        b'x' => "Session-Expires",
        b'y' => "Identity",
        _ => return None,
    })
}

/// Splits a comma-separated header value, ignoring commas inside quotes and angle brackets.
pub fn split_list(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut angle, mut escaped) = (0, false, false, false);
    for (i, b) in value.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' if !angle => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => {
                parts.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value[start..].trim());
    parts
}

fn param<'a>(params: &'a Params, name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_deref())
}

fn write_params(f: &mut fmt::Formatter<'_>, params: &Params) -> fmt::Result {
    for (name, value) in params {
        match value {
            Some(v)
                if v.is_empty() || !v.bytes().all(|b| is_token_char(b) || b":[]".contains(&b)) =>
            {
                write!(
                    f,
                    ";{name}=\"{}\"",
                    v.replace('\\', "\\\\").replace('"', "\\\"")
                )?
            }
            Some(v) => write!(f, ";{name}={v}")?,
            None => write!(f, ";{name}")?,
        }
    }
    Ok(())
}

/// One Via value: how and from where a request was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport token as written (`UDP`, `TCP`, ...).
    pub transport: String,
    /// sent-by host.
    pub host: String,
    /// sent-by port.
    pub port: Option<u16>,
    /// Parameters: branch, received, rport, ...
    pub params: Params,
}

impl Via {
    /// Parses every Via value in one header line.
    pub fn parse_list(value: &str) -> Result<Vec<Via>, HeaderError> {
        split_list(value).into_iter().map(Via::parse).collect()
    }

    /// Parses one Via value.
    pub fn parse(value: &str) -> Result<Via, HeaderError> {
        Self::parse_version(value, true)
    }

    fn parse_version(value: &str, strict: bool) -> Result<Via, HeaderError> {
        let mut s = Scanner::new(value);
        s.skip_ws();
        let name = s.token().ok_or("Via without a protocol")?;
        let version = s.eat(b'/').then(|| s.token()).flatten();
        let transport = s.eat(b'/').then(|| s.token()).flatten();
        let (Some(version), Some(transport)) = (version, transport) else {
            return Err("malformed Via protocol");
        };
        if !name.eq_ignore_ascii_case("SIP") || (strict && version != "2.0") {
            return Err("Via protocol is not SIP/2.0");
        }
        s.skip_ws();
        let host = if s.peek() == Some(b'[') {
            let h = s.until(|b| b == b']');
            s.eat(b']')
                .then_some(())
                .ok_or("unterminated IPv6 reference in Via")?;
            format!("{h}]")
        } else {
            s.take_while(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                .ok_or("Via without a host")?
                .to_owned()
        };
        let port = if s.eat(b':') {
            let p = s.take_while(|b| b.is_ascii_digit()).ok_or("bad Via port")?;
            Some(p.parse::<u16>().map_err(|_| "Via port out of range")?)
        } else {
            None
        };
        let params = params(&mut s)?;
        if !s.at_end() {
            return Err("unexpected text in Via");
        }
        Ok(Via {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    /// The transport and sent-by of a Via that is malformed (or of another SIP version), for
    /// routing the 400 or 505 that refuses it (RFC 4475 §3.1.2); the parameters are dropped.
    pub fn parse_sent_by(value: &str) -> Result<Via, HeaderError> {
        let first = split_list(value).into_iter().next().unwrap_or_default();
        Via::parse_version(first.split(';').next().unwrap_or_default(), false)
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&str> {
        param(&self.params, "branch").flatten()
    }

    /// A parameter (`Some(None)` when present without a value).
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        param(&self.params, name)
    }

    /// Sets (or adds) a parameter.
    pub fn set_param(&mut self, name: &str, value: Option<String>) {
        match self
            .params
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(p) => p.1 = value,
            None => self.params.push((name.to_owned(), value)),
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write_params(f, &self.params)
    }
}

/// The CSeq header: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number, below 2^31 (RFC 3261 §8.1.1.5).
    pub seq: u32,
    /// The method.
    pub method: Method,
}

impl CSeq {
    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(value: &str) -> Result<CSeq, HeaderError> {
        let mut s = Scanner::new(value);
        s.skip_ws();
        let digits = s
            .take_while(|b| b.is_ascii_digit())
            .ok_or("CSeq without a number")?;
        let seq = digits
            .parse::<u32>()
            .ok()
            .filter(|n| *n < 1 << 31)
            .ok_or("CSeq number is 2^31 or more")?;
        s.skip_ws();
        let method = s
            .token()
            .and_then(Method::new)
            .ok_or("CSeq without a method")?;
        if !s.at_end() {
            return Err("unexpected text in CSeq");
        }
        Ok(CSeq { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// A `name-addr` or `addr-spec` with header parameters: To, From, Contact, Route values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name, unquoted.
    pub display: Option<String>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters (tag, expires, q, ...).
    pub params: Params,
}

impl NameAddr {
    /// Parses one value.
    pub fn parse(value: &str) -> Result<NameAddr, HeaderError> {
        let mut s = Scanner::new(value);
        s.skip_ws();
        let (display, uri) = if s.peek() == Some(b'"') || value.contains('<') {
            let display = if s.peek() == Some(b'"') {
                Some(s.quoted()?)
            } else {
                let words = s.until(|b| b == b'<').trim();
                if !words.split_whitespace().all(is_token) {
                    return Err("display name is neither tokens nor a quoted string");
                }
                (!words.is_empty()).then(|| words.to_owned())
            };
            s.skip_ws();
            if s.peek() != Some(b'<') {
                return Err("expected < after the display name");
            }
            let inner = s.rest()[1..].split_once('>').ok_or("unterminated <")?.0;
            if inner.starts_with([' ', '\t']) || inner.ends_with([' ', '\t']) {
                return Err("white space inside <>");
            }
            s = Scanner::new(&s.rest()[inner.len() + 2..]);
            (display, Uri::parse(inner)?)
        } else {
            let spec = s.until(|b| b == b';' || b == b' ' || b == b'\t');
            if spec.contains(['?', ',']) {
                return Err("a URI with ? or , must be enclosed in <>");
            }
            (None, Uri::parse(spec)?)
        };
        let params = params(&mut s)?;
        if !s.at_end() {
            return Err("unexpected text after the address");
        }
        Ok(NameAddr {
            display,
            uri,
            params,
        })
    }

    /// Parses a comma-separated list.
    pub fn parse_list(value: &str) -> Result<Vec<NameAddr>, HeaderError> {
        split_list(value).into_iter().map(NameAddr::parse).collect()
    }

    /// A parameter (`Some(None)` when present without a value).
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        param(&self.params, name)
    }

    /// The tag parameter.
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "\"{}\" ", d.replace('\\', "\\\\").replace('"', "\\\""))?;
        }
        write!(f, "<{}>", self.uri)?;
        write_params(f, &self.params)
    }
}
