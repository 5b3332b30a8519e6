//! SIP messages: an open method token, headers kept in order with compact names expanded, and
//! printing. Parsing is in `parse.rs`; typed header views in `headers.rs`.

use std::borrow::Cow;
use std::fmt;

use super::headers::{CSeq, HeaderError, NameAddr, Via};
pub use super::method::Method;
use super::uri::Uri;

/// One header line: its name (compact forms expanded) and its value (unfolded, trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Name as written, or the full name of a compact form.
    pub name: Cow<'static, str>,
    /// Value.
    pub value: String,
}

/// The first line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// A request line.
    Request {
        /// Method.
        method: Method,
        /// Request-URI.
        uri: Uri,
    },
    /// A status line.
    Response {
        /// Status code, 100 to 699.
        code: u16,
        /// Reason phrase (may be empty).
        reason: String,
    },
}

/// A SIP request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipMessage {
    /// Request line or status line.
    pub start: StartLine,
    /// Headers in order.
    pub headers: Vec<Header>,
    /// Body (exactly Content-Length bytes).
    pub body: Vec<u8>,
}

impl SipMessage {
    /// The method of a request, or None for a response.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// Whether this is a request for a `sips:` URI (RFC 5630: TLS on every hop).
    pub fn sips(&self) -> bool {
        matches!(&self.start, StartLine::Request { uri, .. } if uri.sip().is_some_and(|s| s.secure))
    }

    /// The status code of a response.
    pub fn code(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Every value of a header, in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Appends a header.
    pub fn push(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        self.headers.push(Header {
            name: name.into(),
            value: value.into(),
        });
    }

    /// Removes every header of that name.
    pub fn remove(&mut self, name: &str) {
        self.headers.retain(|h| !h.name.eq_ignore_ascii_case(name));
    }

    /// Every Via value, top first.
    pub fn vias(&self) -> Result<Vec<Via>, HeaderError> {
        let mut out = Vec::new();
        for v in self.headers_named("Via") {
            out.extend(Via::parse_list(v)?);
        }
        Ok(out)
    }

    /// The top Via.
    pub fn top_via(&self) -> Result<Via, HeaderError> {
        let first = self.header("Via").ok_or("no Via")?;
        Via::parse_list(first)?.into_iter().next().ok_or("no Via")
    }

    /// CSeq.
    pub fn cseq(&self) -> Result<CSeq, HeaderError> {
        CSeq::parse(self.header("CSeq").ok_or("no CSeq")?)
    }

    /// Call-ID.
    pub fn call_id(&self) -> Option<&str> {
        self.header("Call-ID")
    }

    /// From.
    pub fn from(&self) -> Result<NameAddr, HeaderError> {
        NameAddr::parse(self.header("From").ok_or("no From")?)
    }

    /// To.
    pub fn to(&self) -> Result<NameAddr, HeaderError> {
        NameAddr::parse(self.header("To").ok_or("no To")?)
    }

    /// Contact values; None for `*`.
    pub fn contacts(&self) -> Result<Option<Vec<NameAddr>>, HeaderError> {
        let mut out = Vec::new();
        for v in self.headers_named("Contact") {
            if v.trim() == "*" {
                return Ok(None);
            }
            out.extend(NameAddr::parse_list(v)?);
        }
        Ok(Some(out))
    }

    /// Expires, in seconds.
    pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
        self.header("Expires")
            .map(|v| parse_u32(v).ok_or("Expires is not a number of seconds below 2^32"))
            .transpose()
    }

    /// Content-Length.
    pub fn content_length(&self) -> Result<Option<usize>, HeaderError> {
        self.header("Content-Length")
            .map(|v| {
                let v = v.trim();
                (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| v.parse::<usize>().ok())
                    .flatten()
                    .ok_or("Content-Length is not a non-negative number")
            })
            .transpose()
    }

    /// Max-Forwards (0 to 255).
    pub fn max_forwards(&self) -> Result<Option<u8>, HeaderError> {
        self.header("Max-Forwards")
            .map(|v| {
                parse_u32(v)
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or("Max-Forwards is not a number from 0 to 255")
            })
            .transpose()
    }

    /// The message as bytes, with Content-Length set to the body's length.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        self.write_to(&mut out);
        out
    }

    /// Appends the message to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let _ = match &self.start {
            StartLine::Request { method, uri } => write!(out, "{method} {uri} SIP/2.0\r\n"),
            StartLine::Response { code, reason } => write!(out, "SIP/2.0 {code} {reason}\r\n"),
        };
        for h in &self.headers {
            if h.name.eq_ignore_ascii_case("Content-Length") {
                continue;
            }
            out.extend_from_slice(h.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let _ = write!(out, "Content-Length: {}\r\n\r\n", self.body.len());
        out.extend_from_slice(&self.body);
    }
}

/// A decimal number below 2^32 (leading zeros allowed, as in `Max-Forwards: 0068`).
pub fn parse_u32(v: &str) -> Option<u32> {
    let v = v.trim();
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .then(|| v.parse::<u32>().ok())
        .flatten()
}

impl fmt::Display for SipMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}
