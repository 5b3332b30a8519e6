//! Instant messages (RFC 3428) both ways. SIP → REST: a MESSAGE to `sip:{email}` becomes a
//! SEND of `{"command": "im", "text", "contentType", "sip"}` to that user (200 when a live
//! stream had it, 202 when only queued, 404 unknown user, 480 not logged in, 415 another body
//! type). REST → SIP: a SEND of an `im` to a contact that is a SIP registration goes out as a
//! MESSAGE in a client transaction; the phone's final response is the delivery's status.

pub mod inbound;
pub mod outbound;

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
    listen: outgoing::Listening,
    sender: &str,
    contact: &ContactRecord,
    body: &Value,
    open: impl Fn(Peer) -> bool,
    members: &crate::members::Members,
) -> Result<(SipMessage, Peer), SipStatus> {
    let super::contact::Hop { uri, peer, routes } =
        super::contact::contact_hop(contact, listen, open, members)
            .map_err(|why| failed(480, why))?;
    let (content_type, text) = payload(body)?;
    let local = outgoing::local_addr(listen, peer);
    let mut req = outgoing::request(Method::MESSAGE, uri, local, peer.transport);
    for route in routes {
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
    super::asserted::assert_sender(&mut req, &sip_user(sender));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_become_sip_users() {
        assert_eq!(sip_user("a b@example.net"), "a%20b@example.net");
        assert_eq!(sip_user("alice@example.net"), "alice@example.net");
    }
}
