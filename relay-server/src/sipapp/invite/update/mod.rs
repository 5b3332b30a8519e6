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
//! Also: the SDP the relay last gave the phone (a re-INVITE without an offer, or with the
//! phone's session unchanged, the same SDP with the same `o=` version, a refresh, is answered with
//! it, the page and rtpengine untouched; so is an UPDATE, RFC 3311), the session timers of RFC
//! 4028 ([`session`]), the relay's own refreshes and its re-INVITEs answered 491, retried after
//! RFC 3261 §14.1's random delay ([`refresh`]), and the rtpengine session's end with the call.

mod phone;
mod refresh;
pub mod session;
mod web;

use super::SessionTimers;
pub use refresh::Requests;

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
    /// Whether the relay made the Call-ID (it placed the call): its glare delay is longer.
    pub owner: bool,
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
    /// The SDP each call's phone last gave, normalized.
    seen: Mutex<HashMap<String, String>>,
    /// Session timer settings.
    timers: SessionTimers,
    /// Session timers, by Call-ID.
    sessions: Mutex<HashMap<String, session::Session>>,
}

/// A session description as compared for "unchanged": its lines without trailing blanks (so
/// CRLF and LF compare equal); None when it has no `o=` line. The whole description is
/// compared, not only the `o=` version: some phones change a session and keep its version.
fn normalized(sdp: &str) -> Option<String> {
    if !sdp.lines().any(|l| l.starts_with("o=")) {
        return None;
    }
    let lines: Vec<&str> = sdp
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    Some(lines.join("\n"))
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
pub fn contact(listen: outgoing::Listening, peer: Peer) -> String {
    outgoing::own_contact(listen, peer, false)
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
    /// Re-INVITEs told to web users through `inbox`, media through `media`, sessions timed by
    /// `timers`.
    pub fn new(inbox: Inbox, media: Media, endpoint: WeakEndpoint, timers: SessionTimers) -> Self {
        Self {
            inner: Arc::new(Inner {
                inbox,
                media,
                endpoint,
                waiting: Mutex::default(),
                acks: Mutex::default(),
                busy: Mutex::default(),
                sent: Mutex::default(),
                seen: Mutex::default(),
                timers,
                sessions: Mutex::default(),
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

    /// Remembers the session the phone of call `call_id` gave (an offer or an answer).
    pub fn seen(&self, call_id: &str, sdp: &str) {
        if let Some(n) = normalized(sdp) {
            lock(&self.inner.seen).insert(call_id.to_owned(), n);
        }
    }

    /// When the phone's `offer` in call `call_id` is its last session unchanged (the same
    /// description, `o=` version included: RFC 3264 §8): the answer the relay last gave it.
    fn unchanged(&self, call_id: &str, offer: &str) -> Option<String> {
        let same = normalized(offer).is_some_and(|n| {
            lock(&self.inner.seen)
                .get(call_id)
                .is_some_and(|seen| *seen == n)
        });
        if !same {
            return None;
        }
        lock(&self.inner.sent).get(call_id).cloned()
    }

    /// Call `call_id` is over: its rtpengine session (when `media`) and what waits for it go.
    pub fn ended(&self, call_id: &str, media: bool) {
        if media {
            self.inner.media.delete(call_id);
        }
        lock(&self.inner.sent).remove(call_id);
        lock(&self.inner.seen).remove(call_id);
        lock(&self.inner.sessions).remove(call_id);
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
    pub(crate) async fn tell(&self, leg: &Leg, mut body: Value) {
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
}

/// A refusal because the media relay failed or is missing, with a Warning saying so.
pub fn unavailable(code: u16, reason: &'static str) -> Reply {
    Reply::new(code, reason).with("Warning", "399 RELAY \"media relay unavailable\"")
}
