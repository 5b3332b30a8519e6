//! What crosses NATS: one event of one resource, as JSON, on a subject per resource —
//! `restsip.{cluster}.ev.{login|inbox|call}.{key}` — whose key tokens are percent-escaped, so
//! no address or call id can add a token (`.`) or a wildcard (`*`, `>`). And the SENDs one
//! relay passes to the relay holding their call (see `forward.rs`): a request on
//! `restsip.{cluster}.node.{node}.send`, answered with the outcome; and the word that a page
//! took the `invite` of a call the relay holds, on `restsip.{cluster}.node.{node}.ringing`.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use restsip_protocol::EventKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bus::{BusEvent, Topic};
use crate::error::Error;
use restsip_protocol::SendReceipt;

/// Everything but letters, digits, `-` and `_` is escaped in a subject token.
const TOKEN: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// Largest message taken from NATS; larger ones are dropped (a SEND body is far smaller).
pub(super) const MAX_MESSAGE: usize = 1 << 20;

/// One event on the wire.
#[derive(Debug, Serialize, Deserialize)]
struct Wire {
    /// The relay that made it.
    node: String,
    /// Its resource.
    topic: WireTopic,
    /// Event id.
    id: u64,
    /// What happened.
    kind: EventKind,
    /// The item, message or state.
    data: Value,
    /// The full state after the change.
    #[serde(default)]
    state: Option<Value>,
}

/// [`Topic`] on the wire.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum WireTopic {
    Login { email: String },
    Inbox { email: String, contact: i64 },
    Call { id: String },
}

/// The subject prefix of cluster `name`.
pub(super) fn prefix(name: &str) -> String {
    format!("restsip.{}", escape(name))
}

fn escape(token: &str) -> String {
    let escaped = utf8_percent_encode(token, TOKEN).to_string();
    if escaped.is_empty() {
        "%".to_owned()
    } else {
        escaped
    }
}

/// The subject of `topic`'s events.
pub(super) fn subject(prefix: &str, topic: &Topic) -> String {
    match topic {
        Topic::Login(email) => format!("{prefix}.ev.login.{}", escape(email)),
        Topic::Inbox(email, id) => format!("{prefix}.ev.inbox.{}.{id}", escape(email)),
        Topic::Call(id) => format!("{prefix}.ev.call.{}", escape(id)),
    }
}

/// `event` of `topic` made by `node`, as JSON.
pub(super) fn encode(node: &str, topic: &Topic, event: &BusEvent) -> serde_json::Result<Vec<u8>> {
    let topic = match topic {
        Topic::Login(email) => WireTopic::Login {
            email: email.clone(),
        },
        Topic::Inbox(email, contact) => WireTopic::Inbox {
            email: email.clone(),
            contact: *contact,
        },
        Topic::Call(id) => WireTopic::Call { id: id.clone() },
    };
    serde_json::to_vec(&Wire {
        node: node.to_owned(),
        topic,
        id: event.id,
        kind: event.kind,
        data: event.data.clone(),
        state: event.state.clone(),
    })
}

/// The node, resource and event of a message; an error for anything else.
pub(super) fn decode(payload: &[u8]) -> Result<(String, Topic, BusEvent), String> {
    if payload.len() > MAX_MESSAGE {
        return Err(format!("{} bytes is too large", payload.len()));
    }
    let wire: Wire = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    let topic = match wire.topic {
        WireTopic::Login { email } => Topic::Login(email),
        WireTopic::Inbox { email, contact } => Topic::Inbox(email, contact),
        WireTopic::Call { id } => Topic::Call(id),
    };
    Ok((
        wire.node,
        topic,
        BusEvent {
            id: wire.id,
            kind: wire.kind,
            data: wire.data,
            state: wire.state,
        },
    ))
}

/// The subject on which relay `node` takes the SENDs of the calls it holds.
pub(super) fn sends_to(prefix: &str, node: &str) -> String {
    format!("{prefix}.node.{}.send", escape(node))
}

/// The subject on which relay `node` hears that a page at another relay took an invite of
/// a call it holds.
pub(super) fn rings_to(prefix: &str, node: &str) -> String {
    format!("{prefix}.node.{}.ringing", escape(node))
}

/// A page at another relay took the `invite` message of this call (its holder's phone may
/// hear 180 Ringing).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Ringing {
    /// The web user called.
    pub(super) callee: String,
    /// The caller's address.
    pub(super) caller: String,
    /// The invite id.
    pub(super) id: u64,
}

/// A SEND made at another relay for a call this relay holds: what `Inbox::send` was given.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Forwarded {
    /// Who sent it.
    pub(super) sender: String,
    /// To whom (the caller's address).
    pub(super) email: String,
    /// The SEND's body.
    pub(super) body: Value,
}

/// The holder's answer to a [`Forwarded`] SEND.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub(super) enum Outcome {
    /// Its call gateway took it: the receipt.
    Taken { receipt: SendReceipt },
    /// Its call gateway refused it.
    Refused { kind: Refusal, message: String },
    /// It holds no such call (any more): deliver it as usual.
    Unknown,
}

/// [`Error`]'s kinds on the wire (a store failure is an internal one).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum Refusal {
    NotFound,
    Forbidden,
    Conflict,
    Invalid,
    ForbiddenTarget,
    Limit,
    MailboxFull,
    MediaRelay,
    Internal,
}

impl Outcome {
    /// What the call gateway's answer was.
    pub(super) fn of(taken: Option<crate::error::Result<SendReceipt>>) -> Self {
        match taken {
            None => Self::Unknown,
            Some(Ok(receipt)) => Self::Taken { receipt },
            Some(Err(e)) => {
                let kind = match &e {
                    Error::NotFound(_) => Refusal::NotFound,
                    Error::Forbidden(_) => Refusal::Forbidden,
                    Error::Conflict(_) => Refusal::Conflict,
                    Error::Invalid(_) => Refusal::Invalid,
                    Error::ForbiddenTarget(_) => Refusal::ForbiddenTarget,
                    Error::Limit(_) => Refusal::Limit,
                    Error::MailboxFull(_) => Refusal::MailboxFull,
                    Error::MediaRelay(_) => Refusal::MediaRelay,
                    Error::Store(_) | Error::Internal(_) => Refusal::Internal,
                };
                Self::Refused {
                    kind,
                    message: e.to_string(),
                }
            }
        }
    }

    /// The answer as the call gateway gave it.
    pub(super) fn into_taken(self) -> Option<crate::error::Result<SendReceipt>> {
        match self {
            Self::Unknown => None,
            Self::Taken { receipt } => Some(Ok(receipt)),
            Self::Refused { kind, message } => Some(Err(match kind {
                Refusal::NotFound => Error::NotFound(message),
                Refusal::Forbidden => Error::Forbidden(message),
                Refusal::Conflict => Error::Conflict(message),
                Refusal::Invalid => Error::Invalid(message),
                Refusal::ForbiddenTarget => Error::ForbiddenTarget(message),
                Refusal::Limit => Error::Limit(message),
                Refusal::MailboxFull => Error::MailboxFull(message),
                Refusal::MediaRelay => Error::MediaRelay(message),
                Refusal::Internal => Error::Internal(message),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_cannot_add_tokens_or_wildcards() {
        let p = prefix("t1");
        assert_eq!(
            subject(&p, &Topic::Login("a.b@x.net".into())),
            "restsip.t1.ev.login.a%2Eb%40x%2Enet"
        );
        assert_eq!(
            subject(&p, &Topic::Inbox("a@x".into(), 3)),
            "restsip.t1.ev.inbox.a%40x.3"
        );
        for hostile in ["*", ">", "a b", "", "x.>"] {
            let s = subject(&p, &Topic::Call(hostile.into()));
            let key = s.trim_start_matches("restsip.t1.ev.call.");
            assert!(
                !key.is_empty() && !key.contains(['.', '*', '>', ' ']),
                "{hostile:?} → {s}"
            );
        }
    }

    #[test]
    fn an_event_crosses_intact_and_garbage_is_refused() {
        let event = BusEvent {
            id: 42,
            kind: EventKind::Updated,
            data: json!({"a": 1}),
            state: Some(json!([1])),
        };
        let topic = Topic::Inbox("a@x".into(), 7);
        let bytes = encode("n1", &topic, &event).expect("json");
        let (node, back, got) = decode(&bytes).expect("decodes");
        assert_eq!((node.as_str(), back, got.id), ("n1", topic, 42));
        assert_eq!(
            (got.kind, got.data, got.state),
            (event.kind, event.data, event.state)
        );
        for bad in [
            &b""[..],
            b"{",
            b"[]",
            br#"{"node":"n","topic":{"type":"x"},"id":1}"#,
        ] {
            assert!(decode(bad).is_err());
        }
        assert!(decode(&vec![b' '; MAX_MESSAGE + 1]).is_err());
    }

    #[test]
    fn an_outcome_crosses_with_its_kind() {
        for e in [
            Error::Conflict("ended".into()),
            Error::Invalid("bad sdp".into()),
            Error::MediaRelay("down".into()),
        ] {
            let (text, kind) = (e.to_string(), std::mem::discriminant(&e));
            let bytes = serde_json::to_vec(&Outcome::of(Some(Err(e)))).expect("json");
            let back: Outcome = serde_json::from_slice(&bytes).expect("decodes");
            match back.into_taken() {
                Some(Err(got)) => {
                    assert_eq!(
                        (got.to_string(), std::mem::discriminant(&got)),
                        (text, kind)
                    )
                }
                other => panic!("{other:?}"),
            }
        }
        let unknown = serde_json::to_vec(&Outcome::of(None)).expect("json");
        let back: Outcome = serde_json::from_slice(&unknown).expect("decodes");
        assert!(back.into_taken().is_none());
        assert_eq!(
            sends_to(&prefix("t1"), "node.a"),
            "restsip.t1.node.node%2Ea.send"
        );
        assert_eq!(
            rings_to(&prefix("t1"), "node.a"),
            "restsip.t1.node.node%2Ea.ringing"
        );
    }
}
