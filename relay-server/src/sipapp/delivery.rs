//! The inbox's SIP side: SENDs that become SIP requests (`im` as MESSAGE, `invite` as
//! INVITE), to registered phones or through the upstream server.

use std::sync::Arc;

use restsip_protocol::SipStatus;
use serde_json::Value;

use super::im::outbound::Outbound;
use super::invite::outbound::Outgoing;
use super::upstream::UpstreamSender;
use crate::store::ContactRecord;

/// The inbox's SIP side: `im` as MESSAGE, `invite` as INVITE.
pub struct SipSide {
    /// MESSAGE.
    pub im: Outbound,
    /// INVITE.
    pub calls: Outgoing,
    /// The upstream server for `im` and `invite` SENDs to non-accounts, if configured.
    pub upstream: Option<Arc<UpstreamSender>>,
}

#[async_trait::async_trait]
impl crate::inbox::SipDelivery for SipSide {
    fn handles(&self, body: &Value) -> bool {
        self.im.handles(body) || body.get("command").and_then(Value::as_str) == Some("invite")
    }

    async fn deliver(&self, sender: &str, to: &ContactRecord, body: &Value) -> SipStatus {
        if body.get("command").and_then(Value::as_str) == Some("invite") {
            self.calls.invite(sender, to, body).await
        } else {
            self.im.deliver(sender, to, body).await
        }
    }

    async fn upstream(&self, sender: &str, address: &str, body: &Value) -> Option<SipStatus> {
        let upstream = self.upstream.as_ref()?;
        if body.get("command").and_then(Value::as_str) == Some("invite") {
            return Some(
                self.calls
                    .invite_upstream(sender, address, body, upstream)
                    .await,
            );
        }
        if !self.im.handles(body) {
            return None;
        }
        Some(upstream.message(sender, address, body).await)
    }
}
