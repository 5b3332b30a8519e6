//! What crosses NATS: one event of one resource, as JSON, on a subject per resource —
//! `restsip.{cluster}.ev.{login|inbox|call}.{key}` — whose key tokens are percent-escaped, so
//! no address or call id can add a token (`.`) or a wildcard (`*`, `>`).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use restsip_protocol::EventKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bus::{BusEvent, Topic};

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
}
