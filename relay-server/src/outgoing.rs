//! An event on its way to watchers, encoded at most once per encoding however many watchers
//! take it: a change of a resource watched by 10,000 streams is built (`Event`, its JSON) once
//! and each stream gets a reference-counted copy of the same bytes.

use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use restsip_protocol::Event;

/// The encodings a stream sends an event in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// A Server-Sent Events frame (`id:` and `data:` lines).
    Sse,
    /// One line of newline-delimited JSON.
    Ndjson,
    /// The WebSocket text frame (its header and the `{"op": "event", ...}` JSON), the same
    /// bytes for every connection.
    WsFrame,
}

/// An event shared by every watcher of its resource, with its encodings made on first use.
#[derive(Debug)]
pub struct Outgoing {
    /// The event.
    pub event: Event,
    /// One slot per [`Encoding`].
    encoded: [OnceLock<Bytes>; 3],
}

impl Outgoing {
    /// Wraps `event` for sharing.
    pub fn new(event: Event) -> Arc<Self> {
        Arc::new(Self {
            event,
            encoded: Default::default(),
        })
    }

    /// The event in `encoding`, made by `make` the first time only.
    pub fn encoded(&self, encoding: Encoding, make: impl FnOnce(&Event) -> Bytes) -> Bytes {
        let slot = &self.encoded[encoding as usize];
        slot.get_or_init(|| make(&self.event)).clone()
    }
}

impl Deref for Outgoing {
    type Target = Event;

    fn deref(&self) -> &Event {
        &self.event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use restsip_protocol::EventKind;

    #[test]
    fn each_encoding_is_made_once() {
        let out = Outgoing::new(Event {
            id: 7,
            resource: "/call/c".into(),
            kind: EventKind::Updated,
            data: serde_json::json!({"id": 1}),
        });
        let mut made = 0;
        for _ in 0..3 {
            let bytes = out.encoded(Encoding::Ndjson, |e| {
                made += 1;
                Bytes::from(serde_json::to_vec(e).unwrap_or_default())
            });
            assert!(bytes.starts_with(b"{\"id\":7"));
        }
        let sse = out.encoded(Encoding::Sse, |_| Bytes::from_static(b"x"));
        assert_eq!((made, &sse[..]), (1, &b"x"[..]));
    }
}
