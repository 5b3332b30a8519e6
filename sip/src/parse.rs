//! Parsing one SIP message from bytes (RFC 3261 §7 and §25): start line, headers (folded lines
//! joined, compact names expanded), body by Content-Length, and the checks that decide between
//! handling a message and answering 400 (or dropping it, for responses).

use std::borrow::Cow;

use super::headers::{expand_compact, CSeq, NameAddr, Via};
use super::message::{parse_u32, Header, Method, SipMessage, StartLine};
use super::scan::is_token;
use super::uri::Uri;

/// A message that cannot be handled.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// What was wrong, for the reason phrase and the log.
    pub reason: Cow<'static, str>,
    /// The status to answer a request with: 400, or 505 for another SIP version.
    pub status: u16,
    /// As much of the message as could be read, when it is a request that can be answered.
    pub partial: Option<Box<SipMessage>>,
}

fn reject(reason: impl Into<Cow<'static, str>>, partial: Option<SipMessage>) -> Rejected {
    Rejected {
        reason: reason.into(),
        status: 400,
        partial: partial.map(Box::new),
    }
}

/// Where the header block ends and the body starts: after the first empty line.
pub fn head_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let crlf = memchr_seq(bytes, b"\r\n\r\n").map(|i| (i, i + 4));
    // A bare "\n\n" wins only before the CRLF one: look no further (on a stream the bytes
    // after it are the next messages, and scanning them all for each message was quadratic).
    let before = crlf.map_or(bytes.len(), |(i, _)| (i + 2).min(bytes.len()));
    let lf = memchr_seq(&bytes[..before], b"\n\n").map(|i| (i, i + 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn memchr_seq(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Bytes after any CRLFs that precede the start line (RFC 3261 §7.5: ignored).
pub fn skip_leading_crlf(bytes: &[u8]) -> &[u8] {
    let n = bytes
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    &bytes[n..]
}

/// Parses a whole message from a datagram: a body longer than Content-Length is cut (the
/// extra octets are discarded, RFC 3261 §18.3); a shorter one is an error.
pub fn parse_datagram(bytes: &[u8]) -> Result<SipMessage, Rejected> {
    let bytes = skip_leading_crlf(bytes);
    let Some((end, body_start)) = head_end(bytes) else {
        let partial = parse_head(bytes).ok();
        return Err(reject("no empty line after the headers", partial));
    };
    let mut msg = parse_head(&bytes[..end])?;
    let rest = &bytes[body_start..];
    let body = match msg.content_length() {
        Err(e) => return Err(reject(e, Some(msg))),
        Ok(Some(n)) if n > rest.len() => {
            return Err(reject("Content-Length is larger than the body", Some(msg)))
        }
        Ok(Some(n)) => &rest[..n],
        Ok(None) => rest,
    };
    msg.body = body.to_vec();
    check(msg)
}

/// Parses a message whose body is exactly `body` (a stream framer found it).
pub fn parse_framed(head: &[u8], body: &[u8]) -> Result<SipMessage, Rejected> {
    let mut msg = parse_head(skip_leading_crlf(head))?;
    msg.body = body.to_vec();
    check(msg)
}

/// The start line and headers, without checking header values yet. Fails (with nothing to
/// answer) only when the text is not a SIP message at all.
pub fn parse_head(head: &[u8]) -> Result<SipMessage, Rejected> {
    let text = match std::str::from_utf8(head) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(head),
    };
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().unwrap_or_default();
    let mut headers: Vec<Header> = Vec::new();
    let mut bad_line = None;
    for line in lines {
        if line.starts_with([' ', '\t']) {
            // A folded line continues the previous header's value (RFC 3261 §7.3.1).
            match headers.last_mut() {
                Some(h) => {
                    h.value.push(' ');
                    h.value.push_str(line.trim());
                    let v = h.value.trim().to_owned();
                    h.value = v;
                }
                None => bad_line = Some("a folded line before any header"),
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        match line.split_once(':') {
            Some((name, value)) if is_token(name.trim_end()) => {
                let name = name.trim_end();
                let name = match expand_compact(name).or_else(|| common_name(name)) {
                    Some(full) => Cow::Borrowed(full),
                    None => Cow::Owned(name.to_owned()),
                };
                headers.push(Header {
                    name,
                    value: value.trim().to_owned(),
                });
            }
            _ => bad_line = Some("a header line without a valid name and colon"),
        }
    }
    let start = match start_line(first) {
        Ok(start) => start,
        Err((reason, status)) => {
            // Keep what can be answered: a request line that begins with a method token.
            let method = first.split(' ').next().and_then(Method::new);
            let partial = method.map(|method| SipMessage {
                start: StartLine::Request {
                    method,
                    uri: Uri::Other(String::new()),
                },
                headers,
                body: Vec::new(),
            });
            if partial.is_none() && !first.starts_with("SIP/") {
                return Err(reject(reason, None));
            }
            return Err(Rejected {
                reason: reason.into(),
                status,
                partial: partial.map(Box::new),
            });
        }
    };
    let msg = SipMessage {
        start,
        headers,
        body: Vec::new(),
    };
    match bad_line {
        Some(reason) => Err(reject(reason, Some(msg))),
        None => Ok(msg),
    }
}

fn start_line(line: &str) -> Result<StartLine, (&'static str, u16)> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        let mut parts = rest.splitn(3, ' ');
        let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
            return Err(("malformed status line", 400));
        };
        if version != "2.0" {
            return Err(("SIP version not supported", 505));
        }
        let code = (code.len() == 3)
            .then(|| code.parse::<u16>().ok())
            .flatten()
            .filter(|c| (100..700).contains(c))
            .ok_or(("bad status code", 400))?;
        return Ok(StartLine::Response {
            code,
            reason: parts.next().unwrap_or("").to_owned(),
        });
    }
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, uri, version] = parts[..] else {
        return Err((
            "request line must be method, URI and version separated by single spaces",
            400,
        ));
    };
    let method = Method::new(method).ok_or(("method is not a token", 400))?;
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        // Compared as bytes: the text is untrusted and may split a character anywhere.
        let other = version.len() > 4 && version.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/");
        return Err(if other {
            ("SIP version not supported", 505)
        } else {
            ("malformed SIP version", 400)
        });
    }
    let uri = Uri::parse(uri).map_err(|e| (e, 400))?;
    if uri.sip().is_some_and(|u| u.headers.is_some()) {
        return Err(("headers are not allowed in a Request-URI", 400));
    }
    Ok(StartLine::Request { method, uri })
}

/// Checks the values of the headers the relay relies on; a request that fails gets 400.
fn check(msg: SipMessage) -> Result<SipMessage, Rejected> {
    match check_headers(&msg) {
        Ok(()) => Ok(msg),
        Err(reason) => Err(reject(reason, Some(msg))),
    }
}

/// Header names as most senders write them, kept without a copy of their own.
const COMMON_NAMES: [&str; 16] = [
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Max-Forwards",
    "Expires",
    "Content-Length",
    "Content-Type",
    "User-Agent",
    "Allow",
    "Supported",
    "Route",
    "Record-Route",
    "Authorization",
];

fn common_name(name: &str) -> Option<&'static str> {
    COMMON_NAMES.iter().find(|n| **n == name).copied()
}

/// The headers that must appear (Via, From, To, Call-ID, CSeq) and those that may appear once
/// at most (From, To, Call-ID, CSeq, Max-Forwards, Content-Length), by index in [`COUNTED`].
const COUNTED: [&str; 7] = [
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Max-Forwards",
    "Content-Length",
];

fn check_headers(msg: &SipMessage) -> Result<(), Cow<'static, str>> {
    // One pass over the headers for the counts.
    let mut counts = [0usize; COUNTED.len()];
    for h in &msg.headers {
        if let Some(i) = COUNTED.iter().position(|n| h.name.eq_ignore_ascii_case(n)) {
            counts[i] += 1;
        }
    }
    let missing = [
        "missing Via",
        "missing From",
        "missing To",
        "missing Call-ID",
        "missing CSeq",
    ];
    if let Some(i) = counts[..5].iter().position(|&n| n == 0) {
        return Err(missing[i].into());
    }
    if counts[1..].iter().any(|&n| n > 1) {
        return Err("a header that may appear once appears twice".into());
    }
    for h in &msg.headers {
        let v = h.value.as_str();
        let name = &*h.name;
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        // The reason names the header, so the sender learns what to fix.
        let named = |why: &str| -> Cow<'static, str> { format!("{name}: {why}").into() };
        if is("Via") {
            Via::parse_list(v).map_err(named)?;
        } else if is("From") || is("To") {
            NameAddr::parse(v).map_err(named)?;
        } else if is("Contact") {
            if v != "*" {
                NameAddr::parse_list(v).map_err(named)?;
            }
        } else if is("Route") || is("Record-Route") {
            NameAddr::parse_list(v).map_err(named)?;
        } else if is("CSeq") {
            CSeq::parse(v).map_err(named)?;
        } else if is("Call-ID") {
            if v.is_empty() || v.contains([' ', '\t']) {
                return Err("malformed Call-ID".into());
            }
        } else if is("Expires") {
            parse_u32(v).ok_or("Expires is not a number of seconds below 2^32")?;
        } else if is("Date") {
            if !v.ends_with(" GMT") {
                return Err("Date must be in GMT (RFC 3261 §20.17)".into());
            }
        } else if is("Content-Type") {
            let media = v.split(';').next().unwrap_or_default();
            let ok = media
                .split_once('/')
                .is_some_and(|(t, s)| is_token(t.trim()) && is_token(s.trim()));
            if !ok {
                return Err("malformed Content-Type".into());
            }
        }
    }
    msg.max_forwards()?;
    msg.content_length()?;
    Ok(())
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
