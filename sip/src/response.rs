//! Responses to requests (RFC 3261 §8.2.6): Via, From, To, Call-ID and CSeq copied, a To tag
//! added, and the status with what the core adds.

use std::borrow::Cow;

use super::message::{Header, SipMessage, StartLine};

/// What the core answers: a status, its reason phrase and extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Status code.
    pub code: u16,
    /// Reason phrase.
    pub reason: Cow<'static, str>,
    /// Headers added to the copied ones.
    pub headers: Vec<(Cow<'static, str>, String)>,
    /// Body (its Content-Type is among `headers`); empty for none.
    pub body: Vec<u8>,
    /// The To tag to add (a dialog's local tag); None for a fresh one.
    pub to_tag: Option<String>,
}

impl Reply {
    /// A reply without extra headers.
    pub fn new(code: u16, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            reason: reason.into(),
            headers: Vec::new(),
            body: Vec::new(),
            to_tag: None,
        }
    }

    /// 400 with why the request was refused.
    pub fn bad_request(why: &str) -> Self {
        Self::new(400, format!("Bad Request ({why})"))
    }

    /// Adds a header.
    pub fn with(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the To tag (for a response that makes a dialog whose tag the core keeps).
    pub fn with_to_tag(mut self, tag: String) -> Self {
        self.to_tag = Some(tag);
        self
    }

    /// Sets the body and its Content-Type.
    pub fn with_body(self, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        let mut reply = self.with("Content-Type", content_type);
        reply.body = body.into();
        reply
    }
}

/// The headers a response copies from its request (§8.2.6.2).
const COPIED: [&str; 5] = ["Via", "From", "To", "Call-ID", "CSeq"];

/// Builds the response to `request`. `top_via` replaces the first Via value (with `received`
/// and `rport` filled in); `to_tag` is added to To when it has none (not on 100 Trying).
pub fn build(
    request: &SipMessage,
    top_via: Option<&str>,
    reply: &Reply,
    to_tag: &str,
) -> SipMessage {
    let mut headers = Vec::with_capacity(8 + reply.headers.len());
    let mut first_via = true;
    for h in &request.headers {
        let Some(name) = COPIED.iter().find(|n| h.name.eq_ignore_ascii_case(n)) else {
            continue;
        };
        let value = match (*name, top_via) {
            ("Via", Some(top)) if first_via => {
                first_via = false;
                // The first Via line may hold several values: replace only the first.
                match super::headers::split_list(&h.value).get(1..) {
                    Some(rest) if !rest.is_empty() => format!("{top}, {}", rest.join(", ")),
                    _ => top.to_owned(),
                }
            }
            ("To", _) if reply.code > 100 && !has_tag(&h.value) => {
                format!("{};tag={to_tag}", h.value)
            }
            _ => h.value.clone(),
        };
        headers.push(Header {
            name: Cow::Borrowed(name),
            value,
        });
    }
    // A dialog-making response copies the Record-Route (RFC 3261 §12.1.1), so requests in the
    // dialog pass the proxies that asked to stay on the path.
    let dialog = matches!(
        &request.start,
        StartLine::Request { method, .. }
            if method.as_str() == "INVITE" || method.as_str() == "SUBSCRIBE"
    );
    if dialog && (101..300).contains(&reply.code) {
        for h in &request.headers {
            if h.name.eq_ignore_ascii_case("Record-Route") {
                headers.push(Header {
                    name: Cow::Borrowed("Record-Route"),
                    value: h.value.clone(),
                });
            }
        }
    }
    for (name, value) in &reply.headers {
        headers.push(Header {
            name: name.clone(),
            value: value.clone(),
        });
    }
    headers.push(Header {
        name: Cow::Borrowed("Server"),
        value: concat!("restsip/", env!("CARGO_PKG_VERSION")).to_owned(),
    });
    SipMessage {
        start: StartLine::Response {
            code: reply.code,
            reason: reply.reason.replace(['\r', '\n'], " "),
        },
        headers,
        body: reply.body.clone(),
    }
}

fn has_tag(to: &str) -> bool {
    // Most To headers of new requests have no tag at all: no need to parse them.
    to.as_bytes()
        .windows(3)
        .any(|w| w.eq_ignore_ascii_case(b"tag"))
        && super::headers::NameAddr::parse(to).is_ok_and(|n| n.tag().is_some())
}

/// A random tag for To headers.
pub fn new_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}
