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

use crate::calls::Calls;
use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::inbox::{Inbox, SendHook};
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

/// The methods this feature answers (gathered into the Allow header by the core).
pub const METHODS: &[&str] = &["INVITE", "ACK", "CANCEL", "BYE"];

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
    /// The phone sent CANCEL.
    Cancel,
    /// The phone's TCP connection closed.
    Gone,
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
    /// The next invite id.
    next_id: AtomicU64,
    /// INVITEs waiting, by id.
    pending: Mutex<HashMap<u64, Pending>>,
    /// Answered calls, by Call-ID.
    dialogs: Mutex<HashMap<String, Dialog>>,
    /// The endpoint and the listening address, for BYEs the relay sends.
    endpoint: WeakEndpoint,
    /// Calls from web users to phones.
    out: super::call_out::Outgoing,
    /// How often an answered call is probed (zero: never).
    keepalive: Duration,
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
    /// `timers.ring` for an answer, answered calls are probed every `timers.keepalive`.
    pub fn new(
        inbox: Inbox,
        calls: Calls,
        store: Arc<dyn Store>,
        endpoint: WeakEndpoint,
        timers: super::call_out::CallTimers,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                out: super::call_out::Outgoing::new(inbox.clone(), endpoint.clone(), timers),
                inbox,
                calls,
                store,
                timeout: timers.ring,
                next_id: AtomicU64::new(u64::from(rand::random::<u16>()) + 1),
                pending: Mutex::default(),
                dialogs: Mutex::default(),
                endpoint,
                keepalive: timers.keepalive,
            }),
        }
    }

    fn keepalive(&self) -> Option<Duration> {
        Some(self.inner.keepalive).filter(|every| !every.is_zero())
    }

    /// Calls from web users to phones.
    pub fn outgoing(&self) -> super::call_out::Outgoing {
        self.inner.out.clone()
    }

    /// How many INVITEs wait and how many calls are up.
    pub fn counts(&self) -> (usize, usize) {
        (
            lock(&self.inner.pending).len(),
            lock(&self.inner.dialogs).len(),
        )
    }

    /// Answers an INVITE (its 100 Trying is out).
    pub async fn invite(&self, responder: Responder) {
        let reply = self.run(&responder).await;
        if let Some(reply) = reply {
            responder.reply(reply);
        }
    }

    /// Handles the INVITE; the final reply, unless it was sent already (a 2xx).
    async fn run(&self, responder: &Responder) -> Option<Reply> {
        let req = responder.request();
        let StartLine::Request { uri, .. } = &req.start else {
            return Some(Reply::bad_request("not a request"));
        };
        let Some(callee) = uri.sip().and_then(|u| u.address()) else {
            return Some(Reply::new(404, "Not Found"));
        };
        let from = match req.from() {
            Ok(f) => f,
            Err(why) => return Some(Reply::bad_request(why)),
        };
        if from.tag().is_none() {
            return Some(Reply::bad_request("From has no tag"));
        }
        let caller = address_of(&from);
        let call_id = req.call_id().unwrap_or_default().to_owned();
        let contact = match req.contacts() {
            Ok(Some(list)) if list.len() == 1 => list[0].uri.to_string(),
            Ok(_) => return Some(Reply::bad_request("an INVITE needs one Contact")),
            Err(why) => return Some(Reply::bad_request(why)),
        };
        if lock(&self.inner.dialogs).contains_key(&call_id) {
            // A re-INVITE: the relay does not renegotiate media.
            return Some(Reply::new(488, "Not Acceptable Here (re-INVITE)"));
        }
        let contacts = match self.inner.store.user(&callee).await {
            Ok(Some(_)) => match self.inner.store.contacts(&callee, now_ms()).await {
                Ok(c) => c,
                Err(e) => return Some(internal(&e.to_string())),
            },
            Ok(None) => return Some(Reply::new(404, "Not Found")),
            Err(e) => return Some(internal(&e.to_string())),
        };
        // The body after the user (RFC 3261 §8.2.2 before §8.2.3): 404 before 415.
        let sdp = match offer(req) {
            Ok(sdp) => sdp,
            Err(reply) => return Some(reply),
        };
        let web: Vec<i64> = contacts
            .iter()
            .filter(|c| c.source != ContactSource::Sip)
            .map(|c| c.id)
            .collect();
        if web.is_empty() {
            self.missed_call(&caller, &callee, &call_id).await;
            return Some(Reply::new(480, "Temporarily Unavailable (not logged in)"));
        }
        if lock(&self.inner.pending).len() >= MAX_PENDING {
            return Some(Reply::new(503, "Service Unavailable (too many calls)"));
        }
        let call = match self
            .inner
            .calls
            .create(
                &callee,
                CreateCall {
                    subject: Some(format!("Call from {caller}")),
                    data: serde_json::Map::from_iter(
                        [
                            ("from".to_owned(), json!(caller)),
                            ("sip".to_owned(), json!({"callId": call_id})),
                        ]
                        .into_iter()
                        // The caller's offer, for a page that answers by joining the call.
                        .chain(sdp.as_ref().map(|o| ("sdp".to_owned(), json!(o)))),
                    ),
                },
            )
            .await
        {
            Ok(call) => call,
            Err(e) => return Some(internal(&e.to_string())),
        };
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::unbounded_channel();
        lock(&self.inner.pending).insert(
            id,
            Pending {
                caller: caller.clone(),
                callee: callee.clone(),
                answer: tx,
                key: responder.key().clone(),
                peer: responder.peer(),
                offer: sdp.is_some(),
                context: call.id.clone(),
            },
        );
        let mut body = message("invite", id, &call_id);
        body["from"] = json!(caller);
        body["sdp"] = json!(sdp);
        body["url"] = json!(format!("/call/{}", call.id));
        let mut live = false;
        let mut reached = Vec::new();
        let mut busy = false;
        for cid in &web {
            match self
                .inner
                .inbox
                .send(&caller, &callee, Some(*cid), body.clone())
                .await
            {
                Ok(receipt) => {
                    live |= receipt
                        .deliveries
                        .iter()
                        .any(|d| d.status == DeliveryStatus::Delivered);
                    reached.push(*cid);
                }
                Err(Error::Limit(_)) => busy = true,
                Err(e) => tracing::debug!(error = %e, "invite SEND failed"),
            }
        }
        if reached.is_empty() {
            lock(&self.inner.pending).remove(&id);
            self.forget_context(&call.id, &callee).await;
            return Some(if busy {
                Reply::new(486, "Busy Here")
            } else {
                Reply::new(480, "Temporarily Unavailable")
            });
        }
        let tag = new_tag();
        if live {
            responder.reply(Reply::new(180, "Ringing").with_to_tag(tag.clone()));
        }
        let answer = tokio::time::timeout(self.inner.timeout, rx.recv()).await;
        lock(&self.inner.pending).remove(&id);
        let cancel = |reason: &str| {
            let mut cancel = message("cancel", id, &call_id);
            cancel["reason"] = json!(reason);
            cancel
        };
        if !matches!(answer, Ok(Some(Answer::Accept(..)))) {
            // The call is over: its context is gone before anyone hears so.
            self.forget_context(&call.id, &callee).await;
        }
        let reply = match answer {
            Ok(Some(Answer::Accept(sdp, login))) => {
                let others = others(&reached, login);
                self.tell(&caller, &callee, &others, cancel("answered elsewhere"))
                    .await;
                let ctx = call.id.clone();
                self.answered(responder, id, &caller, &callee, contact, tag, sdp, ctx);
                return None;
            }
            Ok(Some(Answer::Reject(code, reason, login))) => {
                let others = others(&reached, login);
                self.tell(&caller, &callee, &others, cancel("rejected elsewhere"))
                    .await;
                Reply::new(code, reason).with_to_tag(tag)
            }
            Ok(Some(Answer::Cancel)) => {
                self.tell(&caller, &callee, &reached, message("cancel", id, &call_id))
                    .await;
                Reply::new(487, "Request Terminated").with_to_tag(tag)
            }
            Ok(Some(Answer::Gone)) => {
                self.tell(&caller, &callee, &reached, cancel(dialog::CONNECTION_LOST))
                    .await;
                self.missed_call(&caller, &callee, &call_id).await;
                // Nobody hears it: the connection is gone.
                Reply::new(487, "Request Terminated").with_to_tag(tag)
            }
            Ok(None) | Err(_) => {
                self.tell(&caller, &callee, &reached, cancel("timeout"))
                    .await;
                self.missed_call(&caller, &callee, &call_id).await;
                Reply::new(480, "Temporarily Unavailable (no answer)").with_to_tag(tag)
            }
        };
        Some(reply)
    }

    /// The session description `user` last joined the call context with, when it is one (a
    /// string, or an object's `sdp` string); empty otherwise.
    async fn joined_session(&self, context: &str, user: &str) -> String {
        let Ok(call) = self.inner.calls.view(context).await else {
            return String::new();
        };
        call.children
            .iter()
            .rev()
            .filter(|p| p.user == user)
            .find_map(|p| {
                let session = p.session.as_ref()?;
                session
                    .as_str()
                    .or_else(|| session.get("sdp")?.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_default()
    }

    /// Deletes the call context the relay made for a call that ended.
    async fn forget_context(&self, context: &str, callee: &str) {
        if let Err(e) = self.inner.calls.delete(context, callee).await {
            tracing::debug!(error = %e, "call context not deleted");
        }
    }

    /// Sends the 200 OK with the answer, keeps the dialog and retransmits the 2xx over UDP
    /// until its ACK (RFC 3261 §13.3.1.4).
    #[allow(clippy::too_many_arguments)]
    fn answered(
        &self,
        responder: &Responder,
        id: u64,
        caller: &str,
        callee: &str,
        target: String,
        tag: String,
        sdp: String,
        context: String,
    ) {
        let req = responder.request();
        let peer = responder.peer();
        let listen = self.inner.endpoint.listen();
        let local_addr = outgoing::local_addr(listen, peer.addr);
        let transport = if peer.transport.reliable() {
            ";transport=tcp"
        } else {
            ""
        };
        let mut ok = Reply::new(200, "OK")
            .with(
                "Contact",
                format!("<sip:{}{transport}>", outgoing::host_port(local_addr)),
            )
            .with("Allow", responder.endpoint().allow())
            .with_to_tag(tag.clone());
        if !sdp.is_empty() {
            ok = ok.with_body("application/sdp", sdp.into_bytes());
        }
        let acked = Arc::new(Notify::new());
        let call_id = req.call_id().unwrap_or_default().to_owned();
        {
            let mut dialogs = lock(&self.inner.dialogs);
            let day_ago = now_ms() - 86_400_000;
            dialogs.retain(|_, d| d.since > day_ago);
            if dialogs.len() < MAX_DIALOGS {
                dialogs.insert(
                    call_id.clone(),
                    Dialog {
                        id,
                        caller: caller.to_owned(),
                        callee: callee.to_owned(),
                        acked: acked.clone(),
                        local: format!("{};tag={tag}", req.header("To").unwrap_or_default()),
                        remote: req.header("From").unwrap_or_default().to_owned(),
                        target,
                        peer,
                        routes: req
                            .headers_named("Record-Route")
                            .flat_map(restsip_sip::headers::split_list)
                            .map(|r| r.trim().to_owned())
                            .collect(),
                        since: now_ms(),
                        context,
                        cseq: 0,
                    },
                );
            }
        }
        let data = responder.reply(ok);
        let responder_end = Instant::now() + TIMEOUT;
        let resend = {
            let endpoint = responder.endpoint().clone();
            move |d: bytes::Bytes| endpoint.send_to(peer, d)
        };
        let this = self.clone();
        tokio::spawn(async move {
            // Over TCP the 2xx is not retransmitted, but its ACK is awaited as long.
            let mut interval = if peer.transport.reliable() {
                TIMEOUT
            } else {
                T1
            };
            loop {
                tokio::select! {
                    () = acked.notified() => break,
                    () = tokio::time::sleep(interval) => {}
                }
                if Instant::now() >= responder_end {
                    // §13.3.1.4: the session ends with a BYE.
                    tracing::debug!("no ACK for a 2xx to INVITE");
                    this.vanished(&call_id, id, dialog::NO_ACK, true).await;
                    return;
                }
                if !peer.transport.reliable() {
                    resend(data.clone());
                }
                interval = (interval * 2).min(T2);
            }
            this.keep(&call_id, id).await;
        });
    }

    /// Probes an answered call with OPTIONS every keep-alive interval until it ends; a phone
    /// that is gone ends it.
    async fn keep(&self, call_id: &str, id: u64) {
        let Some(every) = self.keepalive() else {
            return;
        };
        loop {
            tokio::time::sleep(every).await;
            let weak = &self.inner.endpoint;
            let listen = &weak.listen();
            let probe = {
                let mut dialogs = lock(&self.inner.dialogs);
                let Some(d) = dialogs.get_mut(call_id).filter(|d| d.id == id) else {
                    return;
                };
                d.cseq += 1;
                let req = in_dialog(call_id, d).request(Method::OPTIONS, d.cseq, *listen);
                req.map(|r| (r, d.peer))
            };
            let Some((req, peer)) = probe else { return };
            let Some(endpoint) = weak.upgrade() else {
                return;
            };
            if let Err(why) = dialog::probe(&endpoint, &req, peer).await {
                self.vanished(call_id, id, why, false).await;
                return;
            }
        }
    }

    /// Ends call `id` whose phone is gone: the web user gets a `bye` with `reason`; `bye`
    /// sends the phone a BYE too (it may still be there, but it never ACKed).
    async fn vanished(&self, call_id: &str, id: u64, reason: &str, bye: bool) {
        let found = {
            let mut dialogs = lock(&self.inner.dialogs);
            match dialogs.get(call_id) {
                Some(d) if d.id == id => dialogs.remove(call_id),
                _ => None,
            }
        };
        let Some(d) = found else { return };
        tracing::debug!(call_id, reason, "call ended without the phone's BYE");
        // The context is gone before the web user hears the call is over.
        self.forget_context(&d.context, &d.callee).await;
        let mut body = message("bye", d.id, call_id);
        body["reason"] = json!(reason);
        if let Err(e) = self
            .inner
            .inbox
            .send(&d.caller, &d.callee, None, body)
            .await
        {
            tracing::debug!(error = %e, "bye not delivered");
        }
        if bye {
            self.hang_up(call_id, d);
        }
    }

    /// A TCP connection closed: the calls on it are over (the phone cannot be reached
    /// there any more), ringing or answered, but for answered ones through a proxy; calls to
    /// phones too.
    pub fn closed(&self, peer: Peer) {
        for p in lock(&self.inner.pending).values() {
            if p.peer == peer {
                let _ = p.answer.send(Answer::Gone);
            }
        }
        let up: Vec<(String, u64)> = lock(&self.inner.dialogs)
            .iter_mut()
            .filter(|(_, d)| d.peer == peer)
            .filter_map(|(k, d)| match d.routes.first() {
                // Through a proxy: its next requests go to the first route.
                Some(route) => {
                    d.peer = dialog::route_peer(route).unwrap_or(d.peer);
                    None
                }
                None => Some((k.clone(), d.id)),
            })
            .collect();
        if !up.is_empty() {
            let this = self.clone();
            tokio::spawn(async move {
                for (call_id, id) in up {
                    this.vanished(&call_id, id, dialog::CONNECTION_LOST, false)
                        .await;
                }
            });
        }
        self.inner.out.closed(peer);
    }

    /// Sends `body` from the caller to the web contacts the invite reached.
    async fn tell(&self, caller: &str, callee: &str, contacts: &[i64], body: Value) {
        for cid in contacts {
            if let Err(e) = self
                .inner
                .inbox
                .send(caller, callee, Some(*cid), body.clone())
                .await
            {
                tracing::debug!(error = %e, "call message not delivered");
            }
        }
    }

    /// Leaves a missed-call offline message for the callee.
    async fn missed_call(&self, caller: &str, callee: &str, call_id: &str) {
        let mail = MailRecord {
            id: 0,
            owner: callee.to_owned(),
            sender: caller.to_owned(),
            url: None,
            body: Some(
                json!({"command": "missed-call", "from": caller, "sip": {"callId": call_id}}),
            ),
            subject: Some(format!("Missed call from {caller}")),
            created: now_ms(),
        };
        if let Err(e) = self.inner.store.add_mail(&mail).await {
            tracing::warn!(error = %e, "missed-call message not stored");
        }
    }

    /// A CANCEL (RFC 3261 §9.2): 200 and a 487 to its INVITE while it waits, else 481.
    pub fn cancel(&self, req: &SipMessage) -> Reply {
        let key = TxKey::cancelled(req);
        let pending = lock(&self.inner.pending);
        let found = key.and_then(|key| pending.values().find(|p| p.key == key));
        match found {
            Some(p) => {
                let _ = p.answer.send(Answer::Cancel);
                Reply::new(200, "OK")
            }
            None => Reply::new(481, "Call/Transaction Does Not Exist"),
        }
    }

    /// The ACK of a 2xx: its retransmissions stop.
    pub fn acked(&self, req: &SipMessage) {
        let Some(call_id) = req.call_id() else { return };
        if let Some(d) = lock(&self.inner.dialogs).get(call_id) {
            d.acked.notify_one();
        }
    }

    /// A BYE from the phone: 200 and a `bye` message to the web user, or 481.
    pub async fn bye(&self, req: &SipMessage) -> Reply {
        let Some(call_id) = req.call_id() else {
            return Reply::bad_request("no Call-ID");
        };
        let found = lock(&self.inner.dialogs).remove(call_id);
        let Some(d) = found else {
            return if self.inner.out.bye(call_id).await {
                Reply::new(200, "OK")
            } else {
                Reply::new(481, "Call/Transaction Does Not Exist")
            };
        };
        d.acked.notify_one();
        // The context is gone before the web user hears the call is over.
        self.forget_context(&d.context, &d.callee).await;
        let body = message("bye", d.id, call_id);
        if let Err(e) = self
            .inner
            .inbox
            .send(&d.caller, &d.callee, None, body)
            .await
        {
            tracing::debug!(error = %e, "bye not delivered");
        }
        Reply::new(200, "OK")
    }

    /// An `invite` SEND whose SDP offer is malformed, to a user with phones or to an address
    /// that is not an account (which goes to SIP): refused before anything is sent.
    async fn bad_offer(&self, email: &str, body: &Value) -> Option<Error> {
        let why = sdp::check(body.get("sdp").and_then(Value::as_str)?).err()?;
        let to_sip = match self.inner.store.user(email).await {
            Ok(None) => true,
            Ok(Some(_)) => self
                .inner
                .store
                .contacts(email, now_ms())
                .await
                .map(|c| c.iter().any(|c| c.source == ContactSource::Sip))
                .unwrap_or(false),
            Err(_) => false,
        };
        to_sip.then(|| Error::Invalid(format!("sdp is not a valid session description: {why}")))
    }

    /// A web user's `bye` SEND to the caller: a BYE to the phone.
    fn hang_up(&self, call_id: &str, d: Dialog) -> SipStatus {
        let failed = |code, reason: &str| SipStatus {
            code,
            reason: reason.to_owned(),
        };
        let weak = &self.inner.endpoint;
        let listen = &weak.listen();
        let Some(endpoint) = weak.upgrade() else {
            return failed(503, "Service Unavailable");
        };
        let Some(bye) = in_dialog(call_id, &d).request(Method::BYE, d.cseq + 1, *listen) else {
            return failed(400, "Bad Request (the phone's Contact is not a URI)");
        };
        // The final response is not awaited: the call is over either way.
        let _ = endpoint.client().send(&bye, d.peer);
        SipStatus {
            code: 200,
            reason: "BYE sent".into(),
        }
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

#[async_trait::async_trait]
impl SendHook for Invites {
    async fn intercept(
        &self,
        sender: &str,
        email: &str,
        body: &Value,
    ) -> Option<Result<SendReceipt>> {
        if let Some(r) = self.inner.out.intercept(sender, email, body) {
            return Some(Ok(r));
        }
        let command = body.get("command").and_then(Value::as_str)?;
        if command == "invite" {
            return self.bad_offer(email, body).await.map(Err);
        }
        if !matches!(command, "accept" | "reject" | "bye") {
            return None;
        }
        let id = body.get("id").and_then(|v| match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        });
        if command == "bye" {
            let (call_id, d) = {
                let mut dialogs = lock(&self.inner.dialogs);
                let call_id = dialogs
                    .iter()
                    .find(|(_, d)| {
                        d.callee == sender && d.caller == email && id.is_none_or(|id| id == d.id)
                    })
                    .map(|(k, _)| k.clone())?;
                let d = dialogs.remove(&call_id)?;
                (call_id, d)
            };
            let did = d.id;
            d.acked.notify_one();
            let context = d.context.clone();
            let status = self.hang_up(&call_id, d);
            self.forget_context(&context, sender).await;
            return Some(receipt(did, email, status));
        }
        let id = id?;
        let (offer, context) = {
            let pending = lock(&self.inner.pending);
            let p = pending.get(&id)?;
            if p.callee != sender || p.caller != email {
                return None;
            }
            (p.offer, p.context.clone())
        };
        let login = login_of(body);
        let answer = if command == "accept" {
            let mut sdp = body
                .get("sdp")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if sdp.is_empty() && offer {
                // The answer may be the session the callee joined the call context with.
                sdp = self.joined_session(&context, sender).await;
            }
            if sdp.len() > MAX_SDP {
                return Some(Err(Error::Invalid(format!(
                    "sdp is longer than {MAX_SDP} bytes"
                ))));
            }
            if sdp.is_empty() && offer {
                return Some(Err(Error::Invalid(format!(
                    "invite {id} carried an SDP offer: accept needs an sdp answer \
                     (in the accept, or as the session you joined /call/{context} with)"
                ))));
            }
            if let Err(why) = Some(sdp.as_str())
                .filter(|s| !s.is_empty())
                .map_or(Ok(()), sdp::check)
            {
                return Some(Err(Error::Invalid(format!(
                    "sdp is not a valid session description: {why}"
                ))));
            }
            Answer::Accept(sdp, login)
        } else {
            let (code, reason) = rejection(body);
            Answer::Reject(code, reason, login)
        };
        let code = match &answer {
            Answer::Reject(code, ..) => *code,
            _ => 200,
        };
        let sent = lock(&self.inner.pending)
            .get(&id)
            .is_some_and(|p| p.answer.send(answer).is_ok());
        if !sent {
            return Some(Err(Error::Conflict(format!("invite {id} has ended"))));
        }
        Some(receipt(
            id,
            email,
            SipStatus {
                code,
                reason: "answered".into(),
            },
        ))
    }
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
