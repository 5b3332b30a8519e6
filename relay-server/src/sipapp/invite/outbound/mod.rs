//! Calls from web users to phones (REST → SIP INVITE). A SEND of `{"command": "invite"}` to a
//! user with registered phones is an INVITE to each phone in a client transaction (the SDP
//! offer as `application/sdp`, else the call URL as `text/plain`); its responses come back to
//! the sender's inbox as SENDs from the callee: 180/183 `ringing`, 200 `accept` with the
//! answer SDP (the relay sends the ACK, and cancels the other phones), 3xx–6xx `reject` with
//! the code and reason. A SEND of `cancel` is a CANCEL, a SEND of `bye` a BYE; a BYE from the
//! phone is a `bye` message. An `invite` SEND to an address that is not an account goes the
//! same way through the upstream server (`--sip-upstream`), a 401/407 answered once; requests
//! in the dialog follow the 2xx's Record-Route.

mod placed;
mod responses;
mod update;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use restsip_protocol::{Delivery, DeliveryStatus, SendReceipt, SipStatus};
use serde_json::{json, Value};

use super::update::Renegotiation;
use super::CallTimers;
use crate::clock::now_ms;
use crate::inbox::Inbox;
use crate::sipapp::im::sip_user;
use crate::sipapp::media::{is_webrtc, Toward};
use crate::store::ContactRecord;
use restsip_sip::endpoint::WeakEndpoint;
use restsip_sip::message::{Method, SipMessage, StartLine};
use restsip_sip::outgoing;
use restsip_sip::transaction::client::Outcome;
use restsip_sip::transport::Peer;
use restsip_sip::uri::Uri;

/// The header carrying the call resource (`/call/{id}`) of a web user's invitation.
pub const CALL_URL_HEADER: &str = "X-Restsip-Call";
/// Most calls to phones at once.
const MAX_CALLS: usize = 10_000;
/// Longest SDP or URL sent in an INVITE.
const MAX_BODY: usize = 32_768;

/// Where a leg of a call is.
enum Leg {
    /// INVITE sent, no final response: the INVITE, for a CANCEL.
    Ringing(SipMessage),
    /// Answered: what the relay's requests in the dialog need.
    Up {
        /// From of the relay's requests (the INVITE's From with its tag).
        local: String,
        /// To of the relay's requests (the 200's To with the phone's tag).
        remote: String,
        /// The phone's Contact: Request-URI of the relay's requests.
        target: String,
        /// The route set (the 2xx's Record-Route reversed, else the INVITE's Route).
        routes: Vec<String>,
        /// The INVITE's CSeq number (BYE takes the next).
        cseq: u32,
    },
}

/// One INVITE to one phone.
struct Call {
    /// The web user calling.
    sender: String,
    /// The user called.
    callee: String,
    /// The id the sender's invite carried (echoed in the messages back), or null.
    id: Value,
    /// Where the phone is reached.
    peer: Peer,
    /// Where the leg is.
    leg: Leg,
    /// When it started (ms), to forget calls nobody ended.
    since: i64,
    /// The sender has been told of the answer (a `bye` may follow).
    told: bool,
    /// The connection closed before the sender was told of the answer.
    gone: bool,
    /// Whether the leg's media go through rtpengine (its session is deleted with the leg).
    media: bool,
}

/// Where an INVITE goes.
struct Target {
    /// Request-URI.
    uri: Uri,
    /// The next hop.
    peer: Peer,
    /// Route values (a Path, the upstream server).
    routes: Vec<String>,
    /// The address called (To).
    callee: String,
    /// Digest credentials for a 401/407, if any.
    credentials: Option<(String, String)>,
}

/// Calls from web users to phones; cheap to clone.
#[derive(Clone)]
pub struct Outgoing {
    /// Shared state.
    inner: Arc<Inner>,
}

struct Inner {
    /// The sender's inbox gets the phones' answers.
    inbox: Inbox,
    /// Legs by Call-ID.
    calls: Mutex<HashMap<String, Call>>,
    /// The endpoint and the listening address.
    endpoint: WeakEndpoint,
    /// How long phones ring and how often answered calls are probed.
    timers: CallTimers,
    /// New offers in answered calls, and the media relay.
    reneg: Renegotiation,
    /// The relays of the cluster (a phone whose relay is gone is not called).
    members: crate::members::Members,
    /// Where answered calls are kept for the other relays (in a cluster).
    kept: super::failover::Kept,
}

impl Outgoing {
    /// Keeps the answered call `call_id` for the other relays (in a cluster).
    fn keep_dialog(&self, call_id: &str, call: &mut Call) {
        let (sender, callee, id) = (call.sender.clone(), call.callee.clone(), call.id.clone());
        let Some((dialog, cseq)) = call.dialog(call_id) else {
            return;
        };
        let cseq = *cseq;
        let kept = super::failover::KeptCall {
            web: &sender,
            phone: &callee,
            id,
            context: None,
            dialog,
            cseq,
        };
        self.inner.kept.keep(call_id, kept);
    }

    /// Keeps the ringing leg `call_id` for the other relays (in a cluster): the CANCEL of its
    /// INVITE, which stops the phone ringing.
    fn keep_ringing(&self, call_id: &str, call: &Call) {
        let Leg::Ringing(invite) = &call.leg else {
            return;
        };
        let cancel = placed::cancel_of(invite);
        let ringing = super::failover::RingingCall {
            web: &call.sender,
            phone: &call.callee,
            id: call.id.clone(),
            context: None,
            end: &cancel,
            peer: call.peer,
        };
        self.inner.kept.ringing(call_id, ringing);
    }

    /// Forgets call `call_id` for the other relays (it ended).
    fn drop_dialog(&self, call_id: &str) {
        self.inner.kept.forget(call_id);
    }
}

impl Call {
    /// The answered leg's dialog and its CSeq counter; None while it rings.
    fn dialog<'a>(
        &'a mut self,
        call_id: &'a str,
    ) -> Option<(restsip_sip::dialog::InDialog<'a>, &'a mut u32)> {
        let peer = self.peer;
        let Leg::Up {
            local,
            remote,
            target,
            routes,
            cseq,
        } = &mut self.leg
        else {
            return None;
        };
        let d = restsip_sip::dialog::InDialog {
            call_id,
            local,
            remote,
            target,
            routes,
            peer,
        };
        Some((d, cseq))
    }
}

fn failed(code: u16, reason: &str) -> SipStatus {
    SipStatus {
        code,
        reason: reason.to_owned(),
    }
}

/// Whether the id of a `cancel` or `bye` SEND names the call (no id names any).
fn same_id(body: &Value, id: &Value) -> bool {
    match body.get("id") {
        None | Some(Value::Null) => true,
        Some(v) => v == id,
    }
}

impl Outgoing {
    /// Calls sent through `endpoint`, answered into `inbox`, under `timers`, their media
    /// and new offers through `reneg`.
    pub(super) fn new(
        inbox: Inbox,
        endpoint: WeakEndpoint,
        timers: CallTimers,
        reneg: Renegotiation,
        members: crate::members::Members,
        kept: super::failover::Kept,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                inbox,
                calls: Mutex::default(),
                endpoint,
                timers,
                reneg,
                members,
                kept,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Call>> {
        self.inner.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends an INVITE for an `invite` SEND body from `sender` to the phone `contact`; the
    /// status is the phone's first response (a 1xx counts as delivered).
    pub async fn invite(&self, sender: &str, contact: &ContactRecord, body: &Value) -> SipStatus {
        let weak = &self.inner.endpoint;
        let listen = weak.listen();
        let Some(endpoint) = weak.upgrade() else {
            return failed(503, "Service Unavailable (SIP is stopping)");
        };
        let open = |p: Peer| endpoint.is_open(p);
        let hop =
            match crate::sipapp::contact::contact_hop(contact, listen, open, &self.inner.members) {
                Ok(hop) => hop,
                Err(why) => return failed(480, why),
            };
        drop(endpoint);
        let target = Target {
            uri: hop.uri,
            peer: hop.peer,
            routes: hop.routes,
            callee: contact.email.clone(),
            credentials: None,
        };
        self.start(sender, target, body).await
    }

    /// Sends an INVITE for an `invite` SEND body from `sender` to `address`, which is not an
    /// account here, through the upstream server (a 401/407 is answered once).
    pub async fn invite_upstream(
        &self,
        sender: &str,
        address: &str,
        body: &Value,
        upstream: &crate::sipapp::upstream::UpstreamSender,
    ) -> SipStatus {
        let Some(uri) = crate::sipapp::upstream::UpstreamSender::target(address) else {
            return failed(404, "Not Found (not a SIP address)");
        };
        let Some(peer) = upstream.peer().await else {
            return failed(
                503,
                "Service Unavailable (cannot resolve the upstream server)",
            );
        };
        let target = Target {
            uri,
            peer,
            routes: vec![upstream.route().to_owned()],
            callee: address.to_owned(),
            credentials: upstream.credentials_of(sender).cloned(),
        };
        self.start(sender, target, body).await
    }

    /// Sends the INVITE to `target` and follows its responses.
    async fn start(&self, sender: &str, target: Target, body: &Value) -> SipStatus {
        let weak = &self.inner.endpoint;
        let listen = &weak.listen();
        let Some(endpoint) = weak.upgrade() else {
            return failed(503, "Service Unavailable (SIP is stopping)");
        };
        if self.lock().len() >= MAX_CALLS {
            return failed(503, "Service Unavailable (too many calls)");
        }
        let Target {
            uri,
            peer,
            routes,
            callee,
            credentials,
        } = target;
        let local = outgoing::local_addr(*listen, peer);
        let mut req = outgoing::request(Method::INVITE, uri, local, peer.transport);
        for route in routes {
            req.push("Route", route);
        }
        let tag = outgoing::token();
        let from = format!("<sip:{}>;tag={tag}", sip_user(sender));
        let call_id = format!("{}@{}", outgoing::token(), outgoing::host_port(local));
        req.push("From", from);
        req.push("To", format!("<sip:{}>", sip_user(&callee)));
        req.push("Call-ID", call_id.clone());
        req.push("CSeq", "1 INVITE");
        crate::sipapp::asserted::assert_sender(&mut req, &sip_user(sender));
        let secure = req.sips();
        let user = sip_user(sender);
        let user = user.split('@').next().unwrap_or_default();
        req.push(
            "Contact",
            format!("<{}>", outgoing::own_uri(*listen, peer, Some(user), secure)),
        );
        req.push("Allow", endpoint.allow());
        self.inner.reneg.offer_as_uac(&mut req);
        drop(endpoint);
        // The offer, when the invitation has one; an invitation without one is an INVITE
        // without a body (the phone makes the offer in its 2xx), never a body a phone must
        // understand: the call's URL goes in a header phones ignore.
        if let Some(url) = body.get("url").and_then(Value::as_str) {
            if url.len() > MAX_BODY || url.contains(['\r', '\n']) {
                return failed(400, "Bad Request (unusable call URL)");
            }
            req.push(CALL_URL_HEADER, url);
        }
        let mut media = false;
        if let Some(sdp) = body.get("sdp").and_then(Value::as_str) {
            if sdp.len() > MAX_BODY {
                return failed(513, "Message Too Large");
            }
            // A browser's offer reaches the phone through rtpengine, as plain RTP.
            let sdp = if is_webrtc(sdp) {
                let offer = self.inner.reneg.media();
                match offer.offer(&call_id, &tag, None, sdp, Toward::Phone).await {
                    Ok(sdp) => {
                        media = true;
                        sdp
                    }
                    Err(e) => {
                        tracing::warn!(call_id, error = %e, "call to a phone refused");
                        return failed(503, &format!("Service Unavailable ({e})"));
                    }
                }
            } else {
                sdp.to_owned()
            };
            self.inner.reneg.sent(&call_id, &sdp);
            req.push("Content-Type", "application/sdp");
            req.body = sdp.into_bytes();
        }
        let sent = weak.upgrade().and_then(|e| e.client().send(&req, peer));
        let Some(mut rx) = sent else {
            self.inner.reneg.ended(&call_id, media);
            return failed(503, "Service Unavailable (request could not be sent)");
        };
        let id = body.get("id").cloned().unwrap_or(Value::Null);
        let call = Call {
            sender: sender.to_owned(),
            callee,
            id,
            peer,
            leg: Leg::Ringing(req),
            since: now_ms(),
            told: false,
            gone: false,
            media,
        };
        self.keep_ringing(&call_id, &call);
        self.lock().insert(call_id.clone(), call);
        let ring = self.inner.timers.ring;
        if !ring.is_zero() {
            let (this, call_id) = (self.clone(), call_id.clone());
            tokio::spawn(async move {
                tokio::time::sleep(ring).await;
                this.unanswered(&call_id).await;
            });
        }
        // The receipt says delivered once the phone rang or answered (18x, 2xx), with the
        // phone's own status line; a 100 Trying (from a proxy on the way) says only that the
        // INVITE left. What came meanwhile is followed after, in order.
        let mut seen = Vec::new();
        let mut challenged = false;
        let status = loop {
            let Some(outcome) = rx.recv().await else {
                break failed(408, "Request Timeout");
            };
            let Outcome::Response(resp) = &outcome else {
                seen.push(outcome);
                break failed(408, "Request Timeout");
            };
            let StartLine::Response { code, reason } = &resp.start else {
                continue;
            };
            let status = failed(*code, reason);
            if !challenged && matches!(*code, 401 | 407 | 422) {
                challenged = true;
                let again = if *code == 422 {
                    self.raise_interval(&call_id, resp)
                } else {
                    self.authorize(&call_id, resp, credentials.as_ref())
                };
                if let Some(again) = again {
                    rx = again;
                    seen.clear();
                    continue;
                }
            }
            seen.push(outcome);
            if status.code >= 180 {
                break status;
            }
        };
        let this = self.clone();
        tokio::spawn(async move {
            for outcome in seen {
                if this.on_outcome(&call_id, outcome).await {
                    return;
                }
            }
            while let Some(outcome) = rx.recv().await {
                if this.on_outcome(&call_id, outcome).await {
                    return;
                }
            }
        });
        status
    }
}
