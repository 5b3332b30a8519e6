//! `im` SENDs to SIP registrations (REST → SIP): a MESSAGE to each phone in a client
//! transaction; the phone's final response is the delivery's status.

use super::*;

/// Sends `im` SENDs to SIP registrations as MESSAGE requests.
pub struct Outbound {
    /// The endpoint (weak: the endpoint's core holds the inbox that holds this).
    endpoint: WeakEndpoint,
    /// The addresses the SIP listeners are bound to.
    listen: outgoing::Listening,
    /// The relays of the cluster (a phone whose relay is gone is not tried).
    members: crate::members::Members,
}

impl Outbound {
    /// Sends through `endpoint`, whose listeners are bound to `listen`, to phones held by
    /// the relays of `members`.
    pub fn new(
        endpoint: WeakEndpoint,
        listen: outgoing::Listening,
        members: crate::members::Members,
    ) -> Self {
        Self {
            endpoint,
            listen,
            members,
        }
    }
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
        let (req, peer) = match message_request(self.listen, sender, to, body, open, &self.members)
        {
            Ok(r) => r,
            Err(status) => return status,
        };
        let rx = endpoint.client().send(&req, peer);
        drop(endpoint);
        outgoing::final_status(rx).await
    }
}
