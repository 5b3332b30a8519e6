//! Calls between web users and phones across a relay's death (a cluster): each answered call's
//! dialog, either direction, is kept in the shared store (`Store::keep_dialog`) until it ends;
//! when a relay is gone (`Members::gone_from_now`), the relays left take its records (each
//! one by one relay) and end those calls: a BYE to the phone from their own SIP socket, a
//! `bye` with the reason [`RELAY_LOST`] to the web user, and the call context a phone's call
//! made is deleted.
//!
//! A call still ringing is kept too, from its INVITE until it is answered or ends, with the
//! message that ends it for the phone, built by the relay holding it: the CANCEL of its
//! INVITE (a web user calling a phone; the phone matches it by the INVITE's branch), or a
//! final `503` to the phone's INVITE (a phone calling a web user; the phone matches it by its
//! branch). The relays left send it to the phone from their own SIP socket (a few times over
//! UDP: its answer goes to the dead relay) and tell the web user: `reject` (503, "Service
//! Unavailable (relay lost)") for its call to a phone, `cancel` ([`RELAY_LOST`]) for a phone's
//! call to it, whose call context is deleted.
//!
//! A call the relay's proxy Record-Routed between two phones (or a phone and the upstream
//! server) is kept too once answered ([`Kept::proxied`]), until a BYE passes: each side's
//! From/To with its tag, Contact and address, and the INVITE's CSeq. The relays left send a
//! BYE to each side from their own SIP socket (no route set: straight to the address its
//! messages came from).

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use crate::calls::Calls;
use crate::inbox::Inbox;
use crate::members::Members;
use crate::store::Store;
use restsip_sip::dialog::InDialog;
use restsip_sip::endpoint::WeakEndpoint;
use restsip_sip::headers::NameAddr;
use restsip_sip::message::{Method, SipMessage};
use restsip_sip::outgoing;
use restsip_sip::transaction::consts::T1;
use restsip_sip::transport::{Peer, Transport};

/// The reason of the `bye` a web user gets when the relay holding the call's signalling died.
pub(super) const RELAY_LOST: &str = "relay lost";
/// Added to the kept CSeq for the BYE: above every CSeq the dead relay may have used in the
/// dialog since (keep-alive OPTIONS, re-INVITEs), which the record does not follow.
const CSEQ_MARGIN: u32 = 100_000;

/// An answered call as kept.
pub(super) struct KeptCall<'a> {
    /// The web user.
    pub web: &'a str,
    /// The phone's user (the address its messages to the web user come from).
    pub phone: &'a str,
    /// The id the web user's messages of the call carry.
    pub id: Value,
    /// The call context the relay made for it (`/call/{context}`), if any.
    pub context: Option<&'a str>,
    /// The relay's side of the dialog.
    pub dialog: InDialog<'a>,
    /// The CSeq of the relay's last request in it.
    pub cseq: u32,
}

/// A call still ringing as kept.
pub(super) struct RingingCall<'a> {
    /// The web user.
    pub web: &'a str,
    /// The phone's user.
    pub phone: &'a str,
    /// The id the web user's messages of the call carry.
    pub id: Value,
    /// The call context the relay made for it (`/call/{context}`), if any.
    pub context: Option<&'a str>,
    /// What ends it for the phone: the CANCEL of the relay's INVITE to it, or the final
    /// response to its INVITE.
    pub end: &'a SipMessage,
    /// Where that goes.
    pub peer: Peer,
}

/// A change of the kept calls, applied in order.
enum Change {
    Keep(String, Value),
    Drop(String),
}

/// Where answered calls are kept in the store and forgotten: nowhere alone (no cluster).
#[derive(Clone, Default)]
pub(crate) struct Kept {
    /// To the task writing them, in order (a call's end after its answer).
    changes: Option<mpsc::UnboundedSender<Change>>,
}

impl Kept {
    /// Keeps calls in `store` as this relay's node, in a cluster.
    pub(crate) fn new(store: Arc<dyn Store>, members: &Members) -> Self {
        let changes = members.node().map(|node| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(write(store, node.to_owned(), rx));
            tx
        });
        Self { changes }
    }

    /// Keeps answered call `call_id`.
    pub(super) fn keep(&self, call_id: &str, call: KeptCall<'_>) {
        let Some(changes) = &self.changes else { return };
        let d = &call.dialog;
        let record = json!({
            "web": call.web, "phone": call.phone, "id": call.id, "context": call.context,
            "local": d.local, "remote": d.remote, "target": d.target, "routes": d.routes,
            "cseq": call.cseq, "transport": d.peer.transport.name(), "addr": d.peer.addr.to_string(),
        });
        let _ = changes.send(Change::Keep(call_id.to_owned(), record));
    }

    /// Keeps call `call_id`, still ringing (until [`Kept::keep`] or [`Kept::forget`]).
    pub(super) fn ringing(&self, call_id: &str, call: RingingCall<'_>) {
        let Some(changes) = &self.changes else { return };
        let to_phone = call.end.method().is_some();
        let record = json!({
            "ringing": if to_phone { "to-phone" } else { "from-phone" },
            "web": call.web, "phone": call.phone, "id": call.id, "context": call.context,
            "end": String::from_utf8_lossy(&call.end.to_bytes()),
            "transport": call.peer.transport.name(), "addr": call.peer.addr.to_string(),
        });
        let _ = changes.send(Change::Keep(call_id.to_owned(), record));
    }

    /// Keeps a call the proxy Record-Routed, answered: the initial `invite` as it came from
    /// `caller`, its 2xx `ok` as it came from `callee` (until [`Kept::forget`], on its BYE).
    pub(crate) fn proxied(&self, invite: &SipMessage, caller: Peer, ok: &SipMessage, callee: Peer) {
        let Some(changes) = &self.changes else { return };
        let target = |m: &SipMessage| {
            let contact = m.header("Contact")?;
            NameAddr::parse(contact).ok().map(|n| n.uri.to_string())
        };
        let (Some(call_id), Some(from), Some(to)) = (
            invite.header("Call-ID"),
            invite.header("From"),
            ok.header("To"),
        ) else {
            return;
        };
        let (Some(caller_target), Some(callee_target)) = (target(invite), target(ok)) else {
            return;
        };
        let cseq = invite
            .header("CSeq")
            .and_then(|c| c.split_whitespace().next())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(1);
        let side = |local: &str, remote: &str, target: String, peer: Peer| {
            json!({
                "local": local, "remote": remote, "target": target,
                "transport": peer.transport.name(), "addr": peer.addr.to_string(),
            })
        };
        let record = json!({
            "proxied": [
                side(to, from, caller_target, caller),
                side(from, to, callee_target, callee),
            ],
            "cseq": cseq,
        });
        let _ = changes.send(Change::Keep(call_id.to_owned(), record));
    }

    /// Forgets call `call_id` (it ended, or was answered: kept again as such).
    pub(crate) fn forget(&self, call_id: &str) {
        if let Some(changes) = &self.changes {
            let _ = changes.send(Change::Drop(call_id.to_owned()));
        }
    }
}

impl Change {
    fn call_id(&self) -> &str {
        match self {
            Change::Keep(call_id, _) | Change::Drop(call_id) => call_id,
        }
    }
}

async fn write(store: Arc<dyn Store>, node: String, mut changes: mpsc::UnboundedReceiver<Change>) {
    while let Some(first) = changes.recv().await {
        // What queued meanwhile (a call kept ringing, then answered) is written at once, the
        // last change of each call only: a backlog does not delay an answered call's record.
        let mut batch = vec![first];
        while let Ok(more) = changes.try_recv() {
            batch.push(more);
        }
        let mut seen = HashSet::new();
        let mut last: Vec<&Change> = batch
            .iter()
            .rev()
            .filter(|c| seen.insert(c.call_id()))
            .collect();
        last.reverse();
        for change in last {
            let done = match change {
                Change::Keep(call_id, record) => store.keep_dialog(call_id, &node, record).await,
                Change::Drop(call_id) => store.drop_dialog(call_id).await,
            };
            if let Err(e) = done {
                tracing::warn!(error = %e, "a call's dialog was not kept in the store");
            }
        }
    }
}

/// What ending a gone relay's calls needs.
#[derive(Clone)]
pub(super) struct Ending {
    pub store: Arc<dyn Store>,
    pub inbox: Inbox,
    pub calls: Calls,
    pub endpoint: WeakEndpoint,
}

impl Ending {
    /// Ends the calls this relay's node `own` kept in an earlier run (it restarted: they are
    /// lost to it), then those of each relay found gone, until the relay stops.
    pub(super) async fn run(self, own: Option<String>, mut gone: broadcast::Receiver<String>) {
        if let Some(own) = own {
            self.end_all(&own).await;
        }
        loop {
            match gone.recv().await {
                Ok(node) => self.end_all(&node).await,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Ends every call kept by `node`.
    async fn end_all(&self, node: &str) {
        let taken = match self.store.take_dialogs(node).await {
            Ok(taken) => taken,
            Err(e) => {
                tracing::warn!(%node, error = %e, "the calls of a gone relay were not read");
                return;
            }
        };
        for (call_id, record) in taken {
            tracing::info!(%node, call_id, "ending a call whose relay is gone");
            tokio::spawn(self.clone().end(call_id, record));
        }
    }

    /// Ends call `call_id` of a gone relay from its `record`.
    async fn end(self, call_id: String, record: Value) {
        let call_id = call_id.as_str();
        let text = |k: &str| record.get(k).and_then(Value::as_str).unwrap_or_default();
        let cseq = record.get("cseq").and_then(Value::as_u64).unwrap_or(1);
        let seq = u32::try_from(cseq).unwrap_or(1).saturating_add(CSEQ_MARGIN);
        if let Some(sides) = record.get("proxied").and_then(Value::as_array) {
            let byes = sides.iter().map(|side| {
                let text = |k: &str| side.get(k).and_then(Value::as_str).unwrap_or_default();
                let d = Side {
                    local: text("local"),
                    remote: text("remote"),
                    target: text("target"),
                    peer: peer_of(text("transport"), text("addr")),
                };
                self.bye(call_id, d, &[], seq)
            });
            futures_util::future::join_all(byes).await;
            return;
        }
        let ringing = text("ringing");
        let told = match ringing {
            "to-phone" => json!({
                "command": "reject", "code": 503,
                "reason": format!("Service Unavailable ({RELAY_LOST})"),
            }),
            "from-phone" => json!({"command": "cancel", "reason": RELAY_LOST}),
            _ => json!({"command": "bye", "reason": RELAY_LOST}),
        };
        self.tell(call_id, &record, told).await;
        let Some(peer) = peer_of(text("transport"), text("addr")) else {
            return;
        };
        if !ringing.is_empty() {
            self.resend(call_id, text("end"), peer).await;
            return;
        }
        let routes: Vec<String> = record
            .get("routes")
            .and_then(|r| serde_json::from_value(r.clone()).ok())
            .unwrap_or_default();
        let d = Side {
            local: text("local"),
            remote: text("remote"),
            target: text("target"),
            peer: Some(peer),
        };
        self.bye(call_id, d, &routes, seq).await;
    }

    /// Sends a BYE with CSeq `seq` in call `call_id` to one phone, `side`.
    async fn bye(&self, call_id: &str, side: Side<'_>, routes: &[String], seq: u32) {
        let Some(peer) = side.peer else { return };
        let d = InDialog {
            call_id,
            local: side.local,
            remote: side.remote,
            target: side.target,
            routes,
            peer,
        };
        let Some(req) = d.request(Method::BYE, seq, self.endpoint.listen()) else {
            return;
        };
        let Some(endpoint) = self.endpoint.upgrade() else {
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

    /// Tells the web user of call `call_id` (kept as `record`) that it ended, with `body`
    /// (the call's id and Call-ID added), once the call context made for it is deleted.
    async fn tell(&self, call_id: &str, record: &Value, mut body: Value) {
        let text = |k: &str| record.get(k).and_then(Value::as_str).unwrap_or_default();
        let (web, phone) = (text("web"), text("phone"));
        if web.is_empty() {
            return;
        }
        // The call context is gone before the web user hears the call ended.
        let context = text("context");
        if !context.is_empty() {
            if let Err(e) = self.calls.delete(context, web).await {
                tracing::debug!(error = %e, "call context not deleted");
            }
        }
        body["id"] = record.get("id").cloned().unwrap_or(Value::Null);
        body["sip"] = json!({ "callId": call_id });
        if let Err(e) = self.inbox.send(phone, web, None, body).await {
            tracing::debug!(error = %e, "the end of a call not delivered to {web}");
        }
    }

    /// Sends the phone of a ringing call `call_id` the message `end` that ends it, as its
    /// dead relay built it: at once, then again after T1 and 2×T1 (its answer, if any, goes
    /// to the dead relay, so nothing here stops the retransmissions sooner).
    async fn resend(&self, call_id: &str, end: &str, peer: Peer) {
        if end.is_empty() {
            return;
        }
        let data = bytes::Bytes::from(end.as_bytes().to_vec());
        for wait in [0, 1, 2] {
            tokio::time::sleep(T1 * wait).await;
            let Some(endpoint) = self.endpoint.upgrade() else {
                return;
            };
            endpoint.send_to(peer, data.clone());
        }
        tracing::info!(
            call_id,
            "a ringing call of a gone relay ended for its phone"
        );
    }
}

/// One phone's side of a kept dialog, as read back.
struct Side<'a> {
    local: &'a str,
    remote: &'a str,
    target: &'a str,
    peer: Option<Peer>,
}

/// The peer a record names (its transport's name and address).
fn peer_of(transport: &str, addr: &str) -> Option<Peer> {
    let transport = match transport {
        "TCP" => Transport::Tcp,
        "TLS" => Transport::Tls,
        _ => Transport::Udp,
    };
    Some(Peer {
        transport,
        addr: addr.parse().ok()?,
    })
}
