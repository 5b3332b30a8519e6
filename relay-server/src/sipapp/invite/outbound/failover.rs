//! Calls from web users to phones across a relay's death (a cluster): each answered call's
//! dialog is kept in the shared store (`Store::keep_dialog`) until it ends; when a relay is
//! gone (`Members::gone_from_now`), the relays left take its records (each one by one relay)
//! and end those calls: a BYE to the phone from their own SIP socket, a `bye` with the reason
//! [`RELAY_LOST`] to the web user.

use tokio::sync::{broadcast, mpsc};

use super::*;

/// The reason of the `bye` a web user gets when the relay holding the call's signalling died.
pub(super) const RELAY_LOST: &str = "relay lost";
/// Added to the kept CSeq for the BYE: above every CSeq the dead relay may have used in the
/// dialog since (keep-alive OPTIONS, re-INVITEs), which the record does not follow.
const CSEQ_MARGIN: u32 = 100_000;

/// A change of the kept dialogs, applied in order.
pub(super) enum Kept {
    /// Keep (or replace) a call's record.
    Keep(String, Value),
    /// The call ended.
    Drop(String),
}

/// Applies `changes` to `store` as relay `node`, one after the other (a call's end after its
/// answer).
pub(super) async fn keep_dialogs(
    store: Arc<dyn crate::store::Store>,
    node: String,
    mut changes: mpsc::UnboundedReceiver<Kept>,
) {
    while let Some(change) = changes.recv().await {
        let done = match &change {
            Kept::Keep(call_id, record) => store.keep_dialog(call_id, &node, record).await,
            Kept::Drop(call_id) => store.drop_dialog(call_id).await,
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "a call's dialog was not kept in the store");
        }
    }
}

impl Outgoing {
    /// Keeps the answered call `call_id` in the store (in a cluster).
    pub(super) fn keep_dialog(&self, call_id: &str, call: &Call) {
        let (
            Some(kept),
            Leg::Up {
                local,
                remote,
                target,
                routes,
                cseq,
            },
        ) = (&self.inner.kept, &call.leg)
        else {
            return;
        };
        let record = json!({
            "sender": call.sender, "callee": call.callee, "id": call.id,
            "local": local, "remote": remote, "target": target, "routes": routes, "cseq": cseq,
            "transport": call.peer.transport.name(), "addr": call.peer.addr.to_string(),
        });
        let _ = kept.send(Kept::Keep(call_id.to_owned(), record));
    }

    /// Forgets call `call_id` in the store (it ended).
    pub(super) fn drop_dialog(&self, call_id: &str) {
        if let Some(kept) = &self.inner.kept {
            let _ = kept.send(Kept::Drop(call_id.to_owned()));
        }
    }

    /// Ends the calls of each relay found gone, until the relay stops.
    pub async fn end_calls_of_gone(self, mut gone: broadcast::Receiver<String>) {
        loop {
            let node = match gone.recv().await {
                Ok(node) => node,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let taken = match self.inner.store.take_dialogs(&node).await {
                Ok(taken) => taken,
                Err(e) => {
                    tracing::warn!(%node, error = %e, "the calls of a gone relay were not read");
                    continue;
                }
            };
            for (call_id, record) in taken {
                tracing::info!(%node, call_id, "ending a call whose relay is gone");
                tokio::spawn(self.clone().end_call_of_gone(call_id, record));
            }
        }
    }

    /// Ends call `call_id` of a gone relay from its `record`: BYE to the phone, `bye` to the
    /// web user.
    async fn end_call_of_gone(self, call_id: String, record: Value) {
        let call_id = call_id.as_str();
        let text = |k: &str| record.get(k).and_then(Value::as_str).unwrap_or_default();
        let (Some(sender), Some(callee)) = (
            record.get("sender").and_then(Value::as_str),
            record.get("callee").and_then(Value::as_str),
        ) else {
            return;
        };
        let mut bye = json!({
            "command": "bye", "reason": RELAY_LOST, "id": record.get("id").cloned().unwrap_or(Value::Null),
            "sip": {"callId": call_id},
        });
        if let Err(e) = self
            .inner
            .inbox
            .send(callee, sender, None, bye.take())
            .await
        {
            tracing::debug!(error = %e, "the end of a call not delivered to {sender}");
        }
        let transport = match text("transport") {
            "TCP" => restsip_sip::transport::Transport::Tcp,
            "TLS" => restsip_sip::transport::Transport::Tls,
            _ => restsip_sip::transport::Transport::Udp,
        };
        let Ok(addr) = text("addr").parse() else {
            return;
        };
        let routes: Vec<String> = record
            .get("routes")
            .and_then(|r| serde_json::from_value(r.clone()).ok())
            .unwrap_or_default();
        let cseq = record.get("cseq").and_then(Value::as_u64).unwrap_or(1);
        let d = restsip_sip::dialog::InDialog {
            call_id,
            local: text("local"),
            remote: text("remote"),
            target: text("target"),
            routes: &routes,
            peer: Peer { transport, addr },
        };
        let seq = u32::try_from(cseq).unwrap_or(1).saturating_add(CSEQ_MARGIN);
        let Some(req) = d.request(Method::BYE, seq, self.inner.endpoint.listen()) else {
            return;
        };
        let Some(endpoint) = self.inner.endpoint.upgrade() else {
            return;
        };
        let rx = endpoint.client().send(&req, d.peer);
        drop(endpoint);
        let status = outgoing::final_status(rx).await;
        tracing::info!(
            call_id,
            code = status.code,
            "BYE to the phone of a gone relay's call"
        );
    }
}
