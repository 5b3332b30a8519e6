//! New offers in an answered call between a web user and a phone (hold, resume, a changed
//! session), both ways, whichever side placed the call:
//! - the web user's SEND `{"command": "update", "id": ID, "sdp": OFFER}` to the other party
//!   is a re-INVITE in the dialog (the offer through rtpengine when the call's media go
//!   through it); the phone's 200 is ACKed and comes back as a SEND `{"command": "updated",
//!   "id": ID, "sdp": ANSWER}` (a failure as `updated` with `code` and `reason`, no `sdp`: the
//!   session stays as it was);
//! - a phone's re-INVITE is a SEND `update` to the web user, whose SEND `updated` is the 200
//!   (retransmitted until its ACK); no answer in time is 500, a re-INVITE while another is
//!   under way 491.
//!
//! Also: the SDP the relay last gave the phone (a re-INVITE without an offer, such as a session
//! refresh, is answered with it) and the rtpengine session's end with the call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use restsip_protocol::{Delivery, DeliveryStatus, SendReceipt, SipStatus};
use serde_json::{json, Value};
use tokio::sync::{oneshot, Notify};

use crate::error::{Error, Result};
use crate::inbox::Inbox;
use crate::sipapp::media::{Media, Toward};
use crate::sync::lock;
use restsip_sip::endpoint::{Responder, WeakEndpoint};
use restsip_sip::message::{SipMessage, StartLine};
use restsip_sip::outgoing;
use restsip_sip::response::Reply;
use restsip_sip::transaction::client::Outcome;
use restsip_sip::transaction::consts::{T1, T2, TIMEOUT};
use restsip_sip::transport::Peer;

/// How long a phone's re-INVITE waits for the web user's `updated`.
const UPDATE_WAIT: Duration = Duration::from_secs(16);
/// Longest SDP carried.
const MAX_SDP: usize = 32_768;

/// One answered call as the renegotiation sees it.
#[derive(Debug, Clone)]
pub struct Leg {
    /// The dialog's Call-ID (also rtpengine's call id).
    pub call_id: String,
    /// The web user in the call.
    pub web: String,
    /// The phone's side as the web user addresses it.
    pub other: String,
    /// The id of the call in the web user's messages.
    pub id: Value,
    /// Whether the call's media go through rtpengine.
    pub media: bool,
    /// The relay's tag in the dialog (the web user's side).
    pub relay_tag: String,
    /// The phone's tag.
    pub phone_tag: String,
}

/// A phone's re-INVITE waiting for the web user's `updated`.
struct Waiting {
    web: String,
    other: String,
    id: Value,
    answer: oneshot::Sender<String>,
}

/// Re-INVITEs both ways; cheap to clone.
#[derive(Clone)]
pub struct Renegotiation {
    inner: Arc<Inner>,
}

struct Inner {
    inbox: Inbox,
    media: Media,
    endpoint: WeakEndpoint,
    /// Phones' re-INVITEs waiting for the web user, by Call-ID.
    waiting: Mutex<HashMap<String, Waiting>>,
    /// 2xx to phones' re-INVITEs waiting for their ACK, by Call-ID.
    acks: Mutex<HashMap<String, Arc<Notify>>>,
    /// Calls with a re-INVITE under way (either way).
    busy: Mutex<std::collections::HashSet<String>>,
    /// The SDP the relay last gave each call's phone.
    sent: Mutex<HashMap<String, String>>,
}

/// Whether the id of an `update`/`updated` SEND names the call (as a number or its text).
pub fn same_id(body: &Value, id: &Value) -> bool {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    body.get("id").is_some_and(|v| text(v) == text(id))
}

/// The `sdp` of a SEND body, checked.
pub fn sdp_of(body: &Value) -> Result<String> {
    let sdp = body.get("sdp").and_then(Value::as_str).unwrap_or_default();
    if sdp.len() > MAX_SDP {
        return Err(Error::Invalid(format!(
            "sdp is longer than {MAX_SDP} bytes"
        )));
    }
    restsip_sip::sdp::check(sdp)
        .map_err(|why| Error::Invalid(format!("sdp is not a valid session description: {why}")))?;
    Ok(sdp.to_owned())
}

/// The Contact of the relay's requests and responses toward `peer`.
pub fn contact(listen: std::net::SocketAddr, peer: Peer) -> String {
    let transport = if peer.transport.reliable() {
        ";transport=tcp"
    } else {
        ""
    };
    let local = outgoing::local_addr(listen, peer.addr);
    format!("<sip:{}{transport}>", outgoing::host_port(local))
}

fn receipt(other: &str, reason: &str) -> SendReceipt {
    SendReceipt {
        id: outgoing::token(),
        deliveries: vec![Delivery {
            contact: format!("sip:{other}"),
            status: DeliveryStatus::Delivered,
            sip: Some(SipStatus {
                code: 200,
                reason: reason.to_owned(),
            }),
        }],
    }
}

impl Renegotiation {
    /// Re-INVITEs told to web users through `inbox`, media through `media`.
    pub fn new(inbox: Inbox, media: Media, endpoint: WeakEndpoint) -> Self {
        Self {
            inner: Arc::new(Inner {
                inbox,
                media,
                endpoint,
                waiting: Mutex::default(),
                acks: Mutex::default(),
                busy: Mutex::default(),
                sent: Mutex::default(),
            }),
        }
    }

    /// The media relay.
    pub fn media(&self) -> &Media {
        &self.inner.media
    }

    /// Remembers the SDP the relay gave the phone of call `call_id`.
    pub fn sent(&self, call_id: &str, sdp: &str) {
        if !sdp.is_empty() {
            lock(&self.inner.sent).insert(call_id.to_owned(), sdp.to_owned());
        }
    }

    /// Call `call_id` is over: its rtpengine session (when `media`) and what waits for it go.
    pub fn ended(&self, call_id: &str, media: bool) {
        if media {
            self.inner.media.delete(call_id);
        }
        lock(&self.inner.sent).remove(call_id);
        lock(&self.inner.waiting).remove(call_id);
        lock(&self.inner.busy).remove(call_id);
    }

    /// The ACK of a 2xx to a phone's re-INVITE: true when one waited for it.
    pub fn acked(&self, call_id: &str) -> bool {
        match lock(&self.inner.acks).remove(call_id) {
            Some(n) => {
                n.notify_one();
                true
            }
            None => false,
        }
    }

    /// Tells the web user of `leg` `body` (with the call's id and Call-ID).
    async fn tell(&self, leg: &Leg, mut body: Value) {
        body["id"] = leg.id.clone();
        body["sip"] = json!({"callId": leg.call_id});
        if let Err(e) = self
            .inner
            .inbox
            .send(&leg.other, &leg.web, None, body)
            .await
        {
            tracing::debug!(error = %e, "re-INVITE news not delivered to {}", leg.web);
        }
    }

    /// The web user's SEND `updated` answering a phone's re-INVITE; None when none waits.
    pub fn updated(&self, sender: &str, email: &str, body: &Value) -> Option<Result<SendReceipt>> {
        let call_id = lock(&self.inner.waiting)
            .iter()
            .find(|(_, w)| w.web == sender && w.other == email && same_id(body, &w.id))
            .map(|(k, _)| k.clone())?;
        let sdp = match sdp_of(body) {
            Ok(sdp) => sdp,
            Err(e) => return Some(Err(e)),
        };
        let w = lock(&self.inner.waiting).remove(&call_id)?;
        if w.answer.send(sdp).is_err() {
            return Some(Err(Error::Conflict(
                "the phone's re-INVITE has ended".into(),
            )));
        }
        Some(Ok(receipt(email, "answered")))
    }

    /// A phone's re-INVITE in `leg`: the web user is asked (`update`), its answer is the 200.
    /// The final reply, unless it was sent (a 2xx).
    pub async fn from_phone(&self, responder: &Responder, leg: Leg) -> Option<Reply> {
        let req = responder.request();
        if !lock(&self.inner.busy).insert(leg.call_id.clone()) {
            return Some(Reply::new(491, "Request Pending").with("Retry-After", "1"));
        }
        let reply = self.phone_offer(responder, &leg, req).await;
        lock(&self.inner.busy).remove(&leg.call_id);
        reply
    }

    async fn phone_offer(
        &self,
        responder: &Responder,
        leg: &Leg,
        req: &SipMessage,
    ) -> Option<Reply> {
        let media = &self.inner.media;
        if req.body.is_empty() {
            // No offer (a session refresh): the session as the phone last had it.
            let Some(sdp) = lock(&self.inner.sent).get(&leg.call_id).cloned() else {
                return Some(Reply::new(488, "Not Acceptable Here (no offer)"));
            };
            self.ok(responder, leg, sdp);
            return None;
        }
        let offer = match std::str::from_utf8(&req.body) {
            Ok(t) if restsip_sip::sdp::check(t).is_ok() => t.to_owned(),
            _ => return Some(Reply::new(488, "Not Acceptable Here (malformed SDP)")),
        };
        let offer = if leg.media {
            let rewritten = media
                .offer(
                    &leg.call_id,
                    &leg.phone_tag,
                    Some(&leg.relay_tag),
                    &offer,
                    Toward::Browser,
                )
                .await;
            match rewritten {
                Ok(sdp) => sdp,
                Err(e) => {
                    tracing::warn!(call_id = leg.call_id, error = %e, "re-INVITE: rtpengine offer failed");
                    return Some(unavailable(503, "Service Unavailable"));
                }
            }
        } else {
            offer
        };
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.waiting).insert(
            leg.call_id.clone(),
            Waiting {
                web: leg.web.clone(),
                other: leg.other.clone(),
                id: leg.id.clone(),
                answer: tx,
            },
        );
        self.tell(leg, json!({"command": "update", "sdp": offer}))
            .await;
        let answer = tokio::time::timeout(UPDATE_WAIT, rx).await;
        lock(&self.inner.waiting).remove(&leg.call_id);
        let Ok(Ok(answer)) = answer else {
            return Some(
                Reply::new(500, "Server Internal Error (no answer from the web user)")
                    .with("Retry-After", "5"),
            );
        };
        let answer = if leg.media {
            match media
                .answer(&leg.call_id, &leg.phone_tag, &leg.relay_tag, &answer)
                .await
            {
                Ok(sdp) => sdp,
                Err(e) => {
                    tracing::warn!(call_id = leg.call_id, error = %e, "re-INVITE: rtpengine answer failed");
                    return Some(unavailable(503, "Service Unavailable"));
                }
            }
        } else {
            answer
        };
        self.ok(responder, leg, answer);
        None
    }

    /// Sends the 200 with `sdp` to a phone's re-INVITE, again until its ACK (UDP).
    fn ok(&self, responder: &Responder, leg: &Leg, sdp: String) {
        self.sent(&leg.call_id, &sdp);
        let peer = responder.peer();
        let ok = Reply::new(200, "OK")
            .with("Contact", contact(self.inner.endpoint.listen(), peer))
            .with("Allow", responder.endpoint().allow())
            .with_body("application/sdp", sdp.into_bytes());
        let acked = Arc::new(Notify::new());
        lock(&self.inner.acks).insert(leg.call_id.clone(), acked.clone());
        let data = responder.reply(ok);
        if peer.transport.reliable() {
            return;
        }
        let endpoint = responder.endpoint().clone();
        tokio::spawn(async move {
            let end = tokio::time::Instant::now() + TIMEOUT;
            let mut interval = T1;
            loop {
                tokio::select! {
                    () = acked.notified() => return,
                    () = tokio::time::sleep(interval) => {}
                }
                if tokio::time::Instant::now() >= end {
                    return;
                }
                endpoint.send_to(peer, data.clone());
                interval = (interval * 2).min(T2);
            }
        });
    }

    /// The web user's `update` in `leg`: the offer `sdp` in re-INVITE `req` (a request in the
    /// dialog without body or Contact), acknowledged with `ack`, sent to `peer`.
    pub async fn from_web(
        &self,
        leg: Leg,
        sdp: String,
        mut req: SipMessage,
        ack: SipMessage,
        peer: Peer,
    ) -> Result<SendReceipt> {
        if !lock(&self.inner.busy).insert(leg.call_id.clone()) {
            return Err(Error::Conflict(format!(
                "call {} is already being renegotiated; try again",
                leg.id
            )));
        }
        let offer = if leg.media {
            let rewritten = self
                .inner
                .media
                .offer(
                    &leg.call_id,
                    &leg.relay_tag,
                    Some(&leg.phone_tag),
                    &sdp,
                    Toward::Phone,
                )
                .await;
            match rewritten {
                Ok(sdp) => sdp,
                Err(e) => {
                    lock(&self.inner.busy).remove(&leg.call_id);
                    tracing::warn!(call_id = leg.call_id, error = %e, "update: rtpengine offer failed");
                    return Err(Error::MediaRelay(e.to_string()));
                }
            }
        } else {
            sdp
        };
        req.push("Contact", contact(self.inner.endpoint.listen(), peer));
        req.push("Content-Type", "application/sdp");
        self.sent(&leg.call_id, &offer);
        req.body = offer.into_bytes();
        let rx = self
            .inner
            .endpoint
            .upgrade()
            .and_then(|e| e.client().send(&req, peer));
        let Some(rx) = rx else {
            lock(&self.inner.busy).remove(&leg.call_id);
            return Err(Error::Internal("the re-INVITE could not be sent".into()));
        };
        let this = self.clone();
        let other = leg.other.clone();
        tokio::spawn(async move {
            let answer = this.reinvite_answer(rx, &ack, peer).await;
            lock(&this.inner.busy).remove(&leg.call_id);
            let body = match answer {
                Ok(sdp) => this.web_answer(&leg, sdp).await,
                Err((code, reason)) => {
                    json!({"command": "updated", "code": code, "reason": reason})
                }
            };
            this.tell(&leg, body).await;
        });
        Ok(receipt(&other, "re-INVITE sent"))
    }

    /// The `updated` body for the phone's answer `sdp` to the web user's offer.
    async fn web_answer(&self, leg: &Leg, sdp: String) -> Value {
        if !leg.media {
            return json!({"command": "updated", "sdp": sdp});
        }
        let media = &self.inner.media;
        match media
            .answer(&leg.call_id, &leg.relay_tag, &leg.phone_tag, &sdp)
            .await
        {
            Ok(sdp) => json!({"command": "updated", "sdp": sdp}),
            Err(e) => {
                tracing::warn!(call_id = leg.call_id, error = %e, "update: rtpengine answer failed");
                json!({"command": "updated", "code": 503, "reason": e.to_string()})
            }
        }
    }

    /// The final response to a re-INVITE: the 2xx's SDP (the 2xx ACKed with `ack`), else
    /// the failure.
    async fn reinvite_answer(
        &self,
        mut rx: tokio::sync::mpsc::UnboundedReceiver<Outcome>,
        ack: &SipMessage,
        peer: Peer,
    ) -> std::result::Result<String, (u16, String)> {
        while let Some(outcome) = rx.recv().await {
            let Outcome::Response(resp) = outcome else {
                break;
            };
            let StartLine::Response { code, reason } = &resp.start else {
                continue;
            };
            if *code < 200 {
                continue;
            }
            if *code >= 300 {
                return Err((*code, reason.clone()));
            }
            if let Some(endpoint) = self.inner.endpoint.upgrade() {
                endpoint.send_to(peer, bytes::Bytes::from(ack.to_bytes()));
            }
            let sdp = String::from_utf8_lossy(&resp.body).into_owned();
            return match restsip_sip::sdp::check(&sdp) {
                Ok(()) => Ok(sdp),
                Err(why) => Err((
                    488,
                    format!("Not Acceptable Here (malformed SDP answer: {why})"),
                )),
            };
        }
        Err((408, "Request Timeout".into()))
    }
}

/// A refusal because the media relay failed or is missing, with a Warning saying so.
pub fn unavailable(code: u16, reason: &'static str) -> Reply {
    Reply::new(code, reason).with("Warning", "399 RELAY \"media relay unavailable\"")
}
