//! Calls from phones to web users (SIP → REST INVITE). An INVITE to `sip:{email}` gets 100
//! Trying, a call context (`/call/{id}`) and an `invite` SEND to every live web contact of the
//! user at once (parallel forking), then 180 Ringing once a live stream had it. The web user's
//! SEND of `accept` (with the answer SDP) or `reject` to the caller's address, naming the
//! invite's `id`, becomes 200 OK (the relay's Contact, a To tag) or 486/603; a CANCEL is
//! answered 200 with 487 to the INVITE and a `cancel` message to the web contacts; no answer in
//! time is 480 and a missed-call offline message. A BYE from the phone is a `bye` message, and
//! a web user's `bye` SEND is a BYE to the phone.
//!
//! The first answer wins: the other web contacts the invite reached get a `cancel` (reason
//! `answered elsewhere`). A malformed SDP offer is refused with 400 and an unusable body with
//! 415, before any web contact hears of the call; an `accept` whose SDP answer is malformed
//! (or missing, when the phone made an offer) is refused with a problem and the invite still
//! waits. A caller that vanishes (its TCP connection closes, it never ACKs the 200, or it
//! stops answering the in-dialog OPTIONS probes, see [`restsip_sip::dialog`]) ends the call: the web
//! user gets `cancel` (still ringing) or `bye` with a `reason`. The call context the relay made
//! for the call is deleted when the call ends.

mod answered;
mod hook;
mod media;
mod ringing;
mod watch;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use restsip_protocol::{
    ContactSource, CreateCall, Delivery, DeliveryStatus, SendReceipt, SipStatus,
};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use crate::bus::IdSpace;
use crate::calls::Calls;
use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::inbox::{Inbox, SendHook};
use crate::sipapp::invite::update::Renegotiation;
use crate::store::{MailRecord, Store};
use crate::sync::lock;
use restsip_sip::dialog;
use restsip_sip::endpoint::{Responder, WeakEndpoint};
use restsip_sip::message::{Method, SipMessage, StartLine};
use restsip_sip::outgoing;
use restsip_sip::response::{new_tag, Reply};
use restsip_sip::sdp;
use restsip_sip::transaction::consts::{T1, T2, TIMEOUT};
use restsip_sip::transaction::TxKey;
use restsip_sip::transport::Peer;

/// Most INVITEs waiting for an answer at once (503 above).
const MAX_PENDING: usize = 10_000;
/// Most established calls at once (503 above).
const MAX_DIALOGS: usize = 10_000;
/// Longest an SDP body carried to a web user.
const MAX_SDP: usize = 32_768;

/// How the web user answered, or what ended the wait.
#[derive(Debug)]
enum Answer {
    /// `accept`: 200 OK with this SDP answer (may be empty), from this login if named.
    Accept(String, Option<i64>),
    /// `reject`: a final failure response, from this login if named.
    Reject(u16, String, Option<i64>),
    /// The web user's answer could not pass the media relay: 503 with a Warning.
    MediaFailed,
    /// The phone sent CANCEL.
    Cancel,
    /// The phone's TCP connection closed.
    Gone,
    /// A live stream at another relay took the invite: 180 Ringing, then the wait goes on.
    Ringing,
}

/// An INVITE waiting for the web user.
struct Pending {
    /// The caller's address (From's `user@host`).
    caller: String,
    /// The web user called.
    callee: String,
    /// Where the answer goes.
    answer: mpsc::UnboundedSender<Answer>,
    /// The INVITE's server transaction (CANCEL matches it).
    key: TxKey,
    /// Where the INVITE came from (its connection closing ends the wait).
    peer: Peer,
    /// Whether the INVITE carried an SDP offer (the accept must then carry an answer).
    offer: bool,
    /// The call context made for the call (`/call/{context}`).
    context: String,
    /// Whether the call's media go through rtpengine.
    media: bool,
    /// The Call-ID.
    call_id: String,
    /// The phone's tag (From's).
    phone_tag: String,
    /// The relay's tag (in To of its responses).
    tag: String,
}

/// An established call, by Call-ID.
struct Dialog {
    /// The invite's id in the web user's messages.
    id: u64,
    /// The caller's address.
    caller: String,
    /// The web user.
    callee: String,
    /// Signalled by the ACK of the 2xx.
    acked: Arc<Notify>,
    /// The relay's side of the dialog as From of its requests (the INVITE's To with the tag).
    local: String,
    /// The phone's side as To of the relay's requests (the INVITE's From).
    remote: String,
    /// The phone's Contact URI: Request-URI of the relay's requests.
    target: String,
    /// Where the INVITE came from: where the relay's requests go.
    peer: Peer,
    /// The route set: the INVITE's Record-Route in order (RFC 3261 §12.1.1).
    routes: Vec<String>,
    /// When the call was answered (ms), to forget calls nobody ended.
    since: i64,
    /// The call context the relay made (`/call/{context}`), deleted when the call ends.
    context: String,
    /// The CSeq number of the relay's last request in the dialog.
    cseq: u32,
    /// Whether the call's media go through rtpengine.
    media: bool,
}

/// Calls from phones to web users; cheap to clone.
#[derive(Clone)]
pub struct Invites {
    /// Shared state.
    inner: Arc<Inner>,
}

struct Inner {
    /// SENDs to the web users.
    inbox: Inbox,
    /// Call contexts.
    calls: Calls,
    /// Users, contacts and offline messages.
    store: Arc<dyn Store>,
    /// How long an INVITE waits for an answer.
    timeout: Duration,
    /// The counter of invite ids, drawn through `ids`.
    next_id: AtomicU64,
    /// This relay's ids in its cluster: invite ids no other relay's calls have.
    ids: IdSpace,
    /// INVITEs waiting, by id.
    pending: Mutex<HashMap<u64, Pending>>,
    /// Answered calls, by Call-ID.
    dialogs: Mutex<HashMap<String, Dialog>>,
    /// The endpoint and the listening address, for BYEs the relay sends.
    endpoint: WeakEndpoint,
    /// Calls from web users to phones.
    out: crate::sipapp::invite::outbound::Outgoing,
    /// How often an answered call is probed (zero: never).
    keepalive: Duration,
    /// New offers in answered calls, and the media relay.
    reneg: Renegotiation,
    /// Without rtpengine, phones' plain offers reach web users unchanged (else 488).
    passthrough: bool,
    /// Whether SENDs to non-accounts go to an upstream server.
    upstream: bool,
    /// Where answered calls are kept for the other relays (in a cluster).
    kept: super::failover::Kept,
}

/// The `user@host` of a From or To value.
fn address_of(value: &restsip_sip::headers::NameAddr) -> String {
    value
        .uri
        .sip()
        .and_then(|u| u.address())
        .unwrap_or_else(|| value.uri.to_string())
}

/// `{"sip": {"callId": ...}}` beside the command's fields.
fn message(command: &str, id: u64, call_id: &str) -> Value {
    json!({"command": command, "id": id, "sip": {"callId": call_id}})
}

/// The failure response for a `reject` body: its `code` when 4xx–6xx, else 603 for a
/// `decline` reason and 486 otherwise.
fn rejection(body: &Value) -> (u16, String) {
    let reason = body.get("reason").and_then(Value::as_str).unwrap_or("");
    let code = body
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..700).contains(c));
    let code = code.unwrap_or(if reason.eq_ignore_ascii_case("decline") {
        603
    } else {
        486
    });
    let phrase = match code {
        486 => "Busy Here",
        603 => "Decline",
        480 => "Temporarily Unavailable",
        487 => "Request Terminated",
        600 => "Busy Everywhere",
        _ => "Rejected",
    };
    let clean: String = reason
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    if clean.is_empty() || clean.eq_ignore_ascii_case(phrase) {
        (code, phrase.to_owned())
    } else {
        (code, format!("{phrase} ({clean})"))
    }
}

impl Invites {
    /// The gateway over the REST side's services, sending through `endpoint`: INVITEs wait
    /// `timers.ring` for an answer, answered calls are probed every `timers.keepalive`;
    /// media as `media` says; invite ids are drawn from `ids` (the relay's, in a cluster).
    pub fn new(
        inbox: Inbox,
        calls: Calls,
        store: Arc<dyn Store>,
        endpoint: WeakEndpoint,
        timers: super::CallTimers,
        media: super::CallMedia,
        cluster: super::CallCluster,
    ) -> Self {
        let super::CallCluster { ids, members } = cluster;
        let reneg = Renegotiation::new(inbox.clone(), media.media, endpoint.clone(), media.session);
        let kept = super::failover::Kept::new(store.clone(), &members);
        let invites = Self {
            inner: Arc::new(Inner {
                out: crate::sipapp::invite::outbound::Outgoing::new(
                    inbox.clone(),
                    endpoint.clone(),
                    timers,
                    reneg.clone(),
                    members,
                    kept.clone(),
                ),
                kept,
                reneg,
                passthrough: media.passthrough,
                upstream: media.upstream,
                inbox,
                calls,
                store,
                timeout: timers.ring,
                next_id: AtomicU64::new(u64::from(rand::random::<u16>()) + 1),
                ids,
                pending: Mutex::default(),
                dialogs: Mutex::default(),
                endpoint,
                keepalive: timers.keepalive,
            }),
        };
        invites.watch(media.session.expires, media.check);
        invites
    }

    /// Ends the calls of each relay of the cluster found gone (`gone`), either direction,
    /// whichever relay kept them, until the relay stops; first those this relay's node `own`
    /// kept before it restarted.
    pub async fn end_calls_of_gone(
        self,
        own: Option<String>,
        gone: tokio::sync::broadcast::Receiver<String>,
    ) {
        let ending = super::failover::Ending {
            store: self.inner.store.clone(),
            inbox: self.inner.inbox.clone(),
            calls: self.inner.calls.clone(),
            endpoint: self.inner.endpoint.clone(),
        };
        ending.run(own, gone).await;
    }

    /// Keeps the answered call `call_id` for the other relays (in a cluster).
    fn keep_dialog(&self, call_id: &str, d: &Dialog) {
        let kept = super::failover::KeptCall {
            web: &d.callee,
            phone: &d.caller,
            id: json!(d.id),
            context: Some(&d.context),
            dialog: in_dialog(call_id, d),
            cseq: d.cseq,
        };
        self.inner.kept.keep(call_id, kept);
    }

    /// Where answered calls are kept for the other relays: the proxy keeps the calls it
    /// Record-Routes through it too, so one task writes every dialog of this relay in order.
    pub(crate) fn kept(&self) -> super::failover::Kept {
        self.inner.kept.clone()
    }

    /// Calls from web users to phones.
    pub fn outgoing(&self) -> crate::sipapp::invite::outbound::Outgoing {
        self.inner.out.clone()
    }

    /// How many INVITEs wait and how many calls are up.
    pub fn counts(&self) -> (usize, usize) {
        (
            lock(&self.inner.pending).len(),
            lock(&self.inner.dialogs).len(),
        )
    }
}

/// The relay's requests in dialog `d`.
fn in_dialog<'a>(call_id: &'a str, d: &'a Dialog) -> dialog::InDialog<'a> {
    dialog::InDialog {
        call_id,
        local: &d.local,
        remote: &d.remote,
        target: &d.target,
        routes: &d.routes,
        peer: d.peer,
    }
}

/// The contacts an invite reached other than the one that answered: all but `login` when the
/// answer named it; none when the invite reached one contact; else all (the page that
/// answered knows it did).
fn others(reached: &[i64], login: Option<i64>) -> Vec<i64> {
    if reached.len() < 2 {
        return Vec::new();
    }
    reached
        .iter()
        .copied()
        .filter(|c| Some(*c) != login)
        .collect()
}

/// The login an `accept` or `reject` names (`/login/{email}/{id}` or the id).
fn login_of(body: &Value) -> Option<i64> {
    match body.get("login")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.rsplit('/').next()?.parse().ok(),
        _ => None,
    }
}

/// The SDP offer an INVITE carries (None for none); the refusal when its body is not one.
fn offer(req: &SipMessage) -> std::result::Result<Option<String>, Reply> {
    if req.body.is_empty() {
        return Ok(None);
    }
    let media = req
        .header("Content-Type")
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media != "application/sdp" {
        return Err(Reply::new(
            415,
            "Unsupported Media Type (an INVITE carries application/sdp)",
        )
        .with("Accept", "application/sdp"));
    }
    let encoding = req.header("Content-Encoding").unwrap_or("identity").trim();
    if !encoding.eq_ignore_ascii_case("identity") {
        return Err(Reply::new(415, "Unsupported Media Type (Content-Encoding)")
            .with("Accept-Encoding", "identity"));
    }
    if req.body.len() > MAX_SDP {
        return Err(Reply::new(513, "Message Too Large"));
    }
    let text =
        std::str::from_utf8(&req.body).map_err(|_| Reply::bad_request("the SDP is not UTF-8"))?;
    sdp::check(text).map_err(|why| Reply::bad_request(&format!("malformed SDP: {why}")))?;
    Ok(Some(text.to_owned()))
}

fn internal(why: &str) -> Reply {
    tracing::warn!(error = %why, "INVITE handling failed");
    Reply::new(500, "Server Internal Error")
}

/// The receipt of a SEND the gateway took.
fn receipt(id: u64, email: &str, status: SipStatus) -> Result<SendReceipt> {
    Ok(SendReceipt {
        id: id.to_string(),
        deliveries: vec![Delivery {
            contact: format!("sip:{email}"),
            status: DeliveryStatus::Delivered,
            sip: Some(status),
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_map_to_sip_codes() {
        assert_eq!(rejection(&json!({})).0, 486);
        assert_eq!(rejection(&json!({"reason": "decline"})).0, 603);
        assert_eq!(rejection(&json!({"code": 480})).0, 480);
        assert_eq!(rejection(&json!({"code": 200})).0, 486);
        assert_eq!(
            rejection(&json!({"reason": "in a meeting\r\n"})).1,
            "Busy Here (in a meeting)"
        );
    }
}
