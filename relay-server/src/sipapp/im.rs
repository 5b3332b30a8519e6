//! Instant messages (RFC 3428) both ways. SIP → REST: a MESSAGE to `sip:{email}` becomes a
//! SEND of `{"command": "im", "text", "contentType", "sip"}` to that user (200 when a live
//! stream had it, 202 when only queued, 404 unknown user, 480 not logged in, 415 another body
//! type). REST → SIP: a SEND of an `im` to a contact that is a SIP registration goes out as a
//! MESSAGE in a client transaction; the phone's final response is the delivery's status.

use std::net::SocketAddr;

use restsip_protocol::{DeliveryStatus, SipStatus};
use serde_json::{json, Value};

use crate::error::Error;
use crate::inbox::{Inbox, SipDelivery};
use crate::store::ContactRecord;
use restsip_sip::endpoint::WeakEndpoint;
use restsip_sip::message::{Method, SipMessage, StartLine};
use restsip_sip::outgoing;
use restsip_sip::response::Reply;
use restsip_sip::transport::Peer;

/// The methods this feature answers (gathered into the Allow header by the core).
pub const METHODS: &[&str] = &["MESSAGE"];

/// Body types a MESSAGE may carry.
pub const ACCEPT: &str = "text/plain, application/json";

/// Longest `text` sent as a MESSAGE (RFC 3428 §8: pager-mode messages stay well below 1300
/// bytes over UDP; larger ones go over TCP, within the relay's message limit).
const MAX_TEXT: usize = 60_000;

/// The media type and whether its charset (if given) is UTF-8.
fn media_type(content_type: &str) -> (String, bool) {
    let mut parts = content_type.split(';');
    let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let utf8 = parts.all(|p| match p.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            let v = value.trim().trim_matches('"');
            v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("us-ascii")
        }
        _ => true,
    });
    (media, utf8)
}

fn unsupported(why: &str) -> Reply {
    Reply::new(415, format!("Unsupported Media Type ({why})")).with("Accept", ACCEPT)
}

/// The SEND body for a MESSAGE, or the refusal.
fn send_body(req: &SipMessage) -> Result<Value, Reply> {
    let content_type = req.header("Content-Type").unwrap_or("text/plain");
    let (media, utf8) = media_type(content_type);
    if media != "text/plain" && media != "application/json" {
        return Err(unsupported(&format!("{media} is not accepted")));
    }
    if !utf8 {
        return Err(unsupported("only UTF-8 text is accepted"));
    }
    let text =
        std::str::from_utf8(&req.body).map_err(|_| Reply::bad_request("the body is not UTF-8"))?;
    if media == "application/json" && serde_json::from_str::<Value>(text).is_err() {
        return Err(Reply::bad_request("the body is not JSON"));
    }
    Ok(json!({
        "command": "im",
        "text": text,
        "contentType": content_type.trim(),
        "sip": { "callId": req.call_id().unwrap_or_default() },
    }))
}

/// Handles a MESSAGE from a SIP UA (RFC 3428 §7) by a SEND to the user of the Request-URI.
pub async fn incoming(inbox: &Inbox, req: &SipMessage) -> Reply {
    let StartLine::Request { uri, .. } = &req.start else {
        return Reply::bad_request("not a request");
    };
    let Some(email) = uri.sip().and_then(|u| u.address()) else {
        return Reply::new(404, "Not Found");
    };
    let from = match req.from() {
        Ok(from) => from,
        Err(why) => return Reply::bad_request(why),
    };
    let sender = from
        .uri
        .sip()
        .and_then(|u| u.address())
        .unwrap_or_else(|| from.uri.to_string());
    let body = match send_body(req) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    match inbox.send(&sender, &email, None, body).await {
        Ok(receipt) => {
            let has = |s: DeliveryStatus| receipt.deliveries.iter().any(|d| d.status == s);
            if has(DeliveryStatus::Delivered) {
                Reply::new(200, "OK")
            } else if has(DeliveryStatus::Queued) {
                Reply::new(202, "Accepted")
            } else {
                best_failure(receipt.deliveries.iter().filter_map(|d| d.sip.as_ref()))
            }
        }
        Err(Error::NotFound(_)) => Reply::new(404, "Not Found"),
        Err(Error::Conflict(_)) => Reply::new(480, "Temporarily Unavailable (not logged in)"),
        Err(Error::Limit(why)) => Reply::new(486, format!("Busy Here ({why})")),
        Err(Error::Invalid(why)) => Reply::bad_request(&why),
        Err(e) => {
            tracing::warn!(error = %e, "MESSAGE delivery failed");
            Reply::new(500, "Server Internal Error")
        }
    }
}

/// The response for a MESSAGE every SIP contact refused (RFC 3261 §16.7: a 6xx wins, else the
/// lowest code; a timeout is 480).
fn best_failure<'a>(statuses: impl Iterator<Item = &'a SipStatus>) -> Reply {
    let mut best: Option<&SipStatus> = None;
    for s in statuses {
        best = match best {
            None => Some(s),
            Some(b) if (s.code >= 600) != (b.code >= 600) => {
                Some(if s.code >= 600 { s } else { b })
            }
            Some(b) => Some(if s.code < b.code { s } else { b }),
        };
    }
    match best {
        Some(s) if s.code != 408 && (300..700).contains(&s.code) => {
            Reply::new(s.code, s.reason.clone())
        }
        _ => Reply::new(480, "Temporarily Unavailable"),
    }
}

/// Sends `im` SENDs to SIP registrations as MESSAGE requests.
pub struct Outbound {
    /// The endpoint (weak: the endpoint's core holds the inbox that holds this).
    endpoint: WeakEndpoint,
    /// The address the SIP listeners are bound to.
    listen: SocketAddr,
}

impl Outbound {
    /// Sends through `endpoint`, whose listeners are bound to `listen`.
    pub fn new(endpoint: WeakEndpoint, listen: SocketAddr) -> Self {
        Self { endpoint, listen }
    }
}

fn failed(code: u16, reason: &str) -> SipStatus {
    SipStatus {
        code,
        reason: reason.to_owned(),
    }
}

/// The Content-Type and text of an `im` SEND body as a MESSAGE carries them.
pub fn payload(body: &Value) -> Result<(&str, &str), SipStatus> {
    let text = body.get("text").and_then(Value::as_str).unwrap_or_default();
    if text.len() > MAX_TEXT {
        return Err(failed(513, "Message Too Large"));
    }
    let content_type = body
        .get("contentType")
        .and_then(Value::as_str)
        .filter(|t| {
            let (media, utf8) = media_type(t);
            utf8 && (media == "text/plain" || media == "application/json")
                && !t.contains(['\r', '\n'])
        })
        .unwrap_or("text/plain;charset=UTF-8");
    Ok((content_type, text))
}

/// The MESSAGE for an `im` SEND body from `sender` to `contact`, and where it goes.
pub fn message_request(
    listen: SocketAddr,
    sender: &str,
    contact: &ContactRecord,
    body: &Value,
    open: impl Fn(Peer) -> bool,
) -> Result<(SipMessage, Peer), SipStatus> {
    let (uri, peer) = super::contact::contact_peer(contact, open)
        .ok_or_else(|| failed(480, "Temporarily Unavailable (no usable contact address)"))?;
    let (content_type, text) = payload(body)?;
    let local = outgoing::local_addr(listen, peer.addr);
    let mut req = outgoing::request(Method::MESSAGE, uri, local, peer.transport);
    for route in super::contact::contact_routes(contact) {
        req.push("Route", route);
    }
    req.push(
        "From",
        format!("<sip:{}>;tag={}", sip_user(sender), outgoing::token()),
    );
    req.push("To", format!("<sip:{}>", sip_user(&contact.email)));
    req.push(
        "Call-ID",
        format!("{}@{}", outgoing::token(), outgoing::host_port(local)),
    );
    req.push("CSeq", "1 MESSAGE");
    req.push("Content-Type", content_type.to_owned());
    req.body = text.as_bytes().to_vec();
    Ok((req, peer))
}

/// An email as the user part and host of a SIP URI (characters a user part may not hold are
/// escaped).
pub fn sip_user(email: &str) -> String {
    let mut out = String::with_capacity(email.len());
    let (user, host) = email.rsplit_once('@').unwrap_or((email, ""));
    for b in user.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if !host.is_empty() {
        out.push('@');
        out.extend(
            host.chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.')),
        );
    }
    out
}

#[async_trait::async_trait]
impl SipDelivery for Outbound {
    fn handles(&self, body: &Value) -> bool {
        body.get("command").and_then(Value::as_str) == Some("im")
            && body.get("text").is_some_and(Value::is_string)
    }

    async fn deliver(&self, sender: &str, to: &ContactRecord, body: &Value) -> SipStatus {
        let Some(endpoint) = self.endpoint.upgrade() else {
            return failed(503, "Service Unavailable (SIP is stopping)");
        };
        let open = |p: Peer| endpoint.is_open(p);
        let (req, peer) = match message_request(self.listen, sender, to, body, open) {
            Ok(r) => r,
            Err(status) => return status,
        };
        let rx = endpoint.client().send(&req, peer);
        drop(endpoint);
        outgoing::final_status(rx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(
            media_type("Text/Plain; charset=\"UTF-8\""),
            ("text/plain".into(), true)
        );
        assert!(!media_type("text/plain;charset=iso-8859-1").1);
    }

    #[test]
    fn emails_become_sip_users() {
        assert_eq!(sip_user("a b@example.net"), "a%20b@example.net");
        assert_eq!(sip_user("alice@example.net"), "alice@example.net");
    }

    #[test]
    fn a_6xx_wins_over_lower_codes() {
        let s = |code| SipStatus {
            code,
            reason: "x".into(),
        };
        assert_eq!(best_failure([s(486), s(603)].iter()).code, 603);
        assert_eq!(best_failure([s(486), s(404)].iter()).code, 404);
        assert_eq!(best_failure([s(408)].iter()).code, 480);
    }
}
