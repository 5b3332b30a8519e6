//! Calls from web users to phones (REST → SIP INVITE). A SEND of `{"command": "invite"}` to a
//! user with registered phones is an INVITE to each phone in a client transaction (the SDP
//! offer as `application/sdp`, else the call URL as `text/plain`); its responses come back to
//! the sender's inbox as SENDs from the callee: 180/183 `ringing`, 200 `accept` with the
//! answer SDP (the relay sends the ACK, and cancels the other phones), 3xx–6xx `reject` with
//! the code and reason. A SEND of `cancel` is a CANCEL, a SEND of `bye` a BYE; a BYE from the
//! phone is a `bye` message. An `invite` SEND to an address that is not an account goes the
//! same way through the upstream server (`--sip-upstream`), a 401/407 answered once; requests
//! in the dialog follow the 2xx's Record-Route.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use restsip_protocol::{Delivery, DeliveryStatus, SendReceipt, SipStatus};
use serde_json::{json, Value};

use super::im::sip_user;
use crate::clock::now_ms;
use crate::inbox::Inbox;
use crate::store::ContactRecord;
use restsip_sip::endpoint::WeakEndpoint;
use restsip_sip::message::{Method, SipMessage, StartLine};
use restsip_sip::outgoing;
use restsip_sip::transaction::client::Outcome;
use restsip_sip::transport::Peer;
use restsip_sip::uri::Uri;

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
}

/// The clocks of calls between web users and phones.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallTimers {
    /// How long a phone may ring before the relay cancels the call (zero: no limit); also how
    /// long a phone's INVITE waits for a web user's answer.
    pub ring: std::time::Duration,
    /// How often an answered call is probed with an OPTIONS in its dialog (zero: never); see
    /// [`restsip_sip::dialog`].
    pub keepalive: std::time::Duration,
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
    /// Calls sent through `endpoint`, answered into `inbox`, under `timers`.
    pub fn new(inbox: Inbox, endpoint: WeakEndpoint, timers: CallTimers) -> Self {
        Self {
            inner: Arc::new(Inner {
                inbox,
                calls: Mutex::default(),
                endpoint,
                timers,
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
        let _ = &weak.listen();
        let Some(endpoint) = weak.upgrade() else {
            return failed(503, "Service Unavailable (SIP is stopping)");
        };
        let open = |p: Peer| endpoint.is_open(p);
        let Some((uri, peer)) = super::contact::contact_peer(contact, open) else {
            return failed(480, "Temporarily Unavailable (no usable contact address)");
        };
        drop(endpoint);
        let target = Target {
            uri,
            peer,
            routes: super::contact::contact_routes(contact),
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
        upstream: &super::upstream::UpstreamSender,
    ) -> SipStatus {
        let Some(uri) = super::upstream::UpstreamSender::target(address) else {
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
        let local = outgoing::local_addr(*listen, peer.addr);
        let mut req = outgoing::request(Method::INVITE, uri, local, peer.transport);
        for route in routes {
            req.push("Route", route);
        }
        let from = format!("<sip:{}>;tag={}", sip_user(sender), outgoing::token());
        let call_id = format!("{}@{}", outgoing::token(), outgoing::host_port(local));
        req.push("From", from);
        req.push("To", format!("<sip:{}>", sip_user(&callee)));
        req.push("Call-ID", call_id.clone());
        req.push("CSeq", "1 INVITE");
        let transport = if peer.transport.reliable() {
            ";transport=tcp"
        } else {
            ""
        };
        req.push(
            "Contact",
            format!(
                "<sip:{}@{}{transport}>",
                sip_user(sender).split('@').next().unwrap_or_default(),
                outgoing::host_port(local)
            ),
        );
        req.push("Allow", endpoint.allow());
        let sdp = body.get("sdp").and_then(Value::as_str);
        let url = body.get("url").and_then(Value::as_str);
        let (content_type, text) = match (sdp, url) {
            (Some(sdp), _) => ("application/sdp", sdp),
            (None, Some(url)) => ("text/plain;charset=UTF-8", url),
            (None, None) => ("", ""),
        };
        if text.len() > MAX_BODY {
            return failed(513, "Message Too Large");
        }
        if !text.is_empty() {
            req.push("Content-Type", content_type);
            req.body = text.as_bytes().to_vec();
        }
        let Some(mut rx) = endpoint.client().send(&req, peer) else {
            return failed(503, "Service Unavailable (request could not be sent)");
        };
        drop(endpoint);
        let id = body.get("id").cloned().unwrap_or(Value::Null);
        self.lock().insert(
            call_id.clone(),
            Call {
                sender: sender.to_owned(),
                callee,
                id,
                peer,
                leg: Leg::Ringing(req),
                since: now_ms(),
                told: false,
                gone: false,
            },
        );
        let ring = self.inner.timers.ring;
        if !ring.is_zero() {
            let (this, call_id) = (self.clone(), call_id.clone());
            tokio::spawn(async move {
                tokio::time::sleep(ring).await;
                this.unanswered(&call_id).await;
            });
        }
        let mut first = rx.recv().await;
        if let Some(Outcome::Response(resp)) = &first {
            if let Some(again) = self.authorize(&call_id, resp, credentials.as_ref()) {
                rx = again;
                first = rx.recv().await;
            }
        }
        let status = match &first {
            Some(Outcome::Response(resp)) => match &resp.start {
                StartLine::Response { code, reason } => failed(*code, reason),
                StartLine::Request { .. } => failed(500, "Server Internal Error"),
            },
            Some(Outcome::Timeout) | None => failed(408, "Request Timeout"),
        };
        let this = self.clone();
        tokio::spawn(async move {
            let mut next = first;
            while let Some(outcome) = next {
                if this.on_outcome(&call_id, outcome).await {
                    return;
                }
                next = rx.recv().await;
            }
        });
        status
    }

    /// Sends the INVITE of a leg again with the answer to the challenge of `resp` (a 401 or
    /// 407) and a new CSeq; the new transaction's outcomes.
    fn authorize(
        &self,
        call_id: &str,
        resp: &SipMessage,
        credentials: Option<&(String, String)>,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<Outcome>> {
        let weak = &self.inner.endpoint;
        let listen = &weak.listen();
        let mut calls = self.lock();
        let call = calls.get_mut(call_id)?;
        let Leg::Ringing(invite) = &call.leg else {
            return None;
        };
        let StartLine::Request { uri, .. } = &invite.start else {
            return None;
        };
        let answer = super::upstream::authorization(resp, credentials, uri, &Method::INVITE)?;
        let seq = invite.cseq().map(|c| c.seq).unwrap_or(1) + 1;
        let local = outgoing::local_addr(*listen, call.peer.addr);
        let mut again = outgoing::request(Method::INVITE, uri.clone(), local, call.peer.transport);
        for h in &invite.headers {
            let skip = ["Via", "Max-Forwards", "CSeq", "Content-Type"];
            if !skip.iter().any(|n| h.name.eq_ignore_ascii_case(n)) {
                again.push(h.name.clone(), h.value.clone());
            }
        }
        again.push("CSeq", format!("{seq} INVITE"));
        again.push(answer.0, answer.1);
        if let Some(t) = invite.header("Content-Type") {
            again.push("Content-Type", t.to_owned());
        }
        again.body = invite.body.clone();
        let endpoint = weak.upgrade()?;
        let rx = endpoint.client().send(&again, call.peer)?;
        call.leg = Leg::Ringing(again);
        Some(rx)
    }

    /// Handles one response of a leg; true once the INVITE transaction is over.
    async fn on_outcome(&self, call_id: &str, outcome: Outcome) -> bool {
        let resp = match outcome {
            Outcome::Response(resp) => resp,
            Outcome::Timeout => {
                let mut reject = if self.connection_lost(call_id) {
                    let reason = format!(
                        "Service Unavailable ({})",
                        restsip_sip::dialog::CONNECTION_LOST
                    );
                    json!({"command": "reject", "code": 503, "reason": reason})
                } else {
                    json!({"command": "reject", "code": 408, "reason": "Request Timeout"})
                };
                self.tell(call_id, &mut reject, true).await;
                return true;
            }
        };
        let Some(code) = resp.code() else {
            return false;
        };
        let reason = match &resp.start {
            StartLine::Response { reason, .. } => reason.clone(),
            StartLine::Request { .. } => String::new(),
        };
        if code < 200 {
            if code == 180 || code == 183 {
                let mut ringing = json!({"command": "ringing", "code": code, "reason": reason});
                if code == 183 && !resp.body.is_empty() {
                    ringing["sdp"] = json!(String::from_utf8_lossy(&resp.body));
                }
                self.tell(call_id, &mut ringing, false).await;
            }
            return false;
        }
        if code >= 300 {
            let mut reject = json!({"command": "reject", "code": code, "reason": reason});
            self.tell(call_id, &mut reject, true).await;
            return true;
        }
        // 2xx: acknowledge, keep the dialog, cancel the other phones of the call.
        let others = self.up(call_id, &resp);
        let answer = String::from_utf8_lossy(&resp.body);
        let bad = Some(&*answer)
            .filter(|a| !a.is_empty())
            .and_then(|a| restsip_sip::sdp::check(a).err());
        if let Some(why) = bad {
            // §13.2.2.4 (an unusable answer): the call is ACKed, then hung up.
            let reason = format!("Not Acceptable Here (malformed SDP answer: {why})");
            let mut reject = json!({"command": "reject", "code": 488, "reason": reason});
            self.tell(call_id, &mut reject, false).await;
            self.hang_up(call_id);
        } else {
            let mut accept = json!({"command": "accept", "sdp": answer});
            self.tell(call_id, &mut accept, false).await;
            let gone = self.lock().get_mut(call_id).is_some_and(|c| {
                c.told = true;
                c.gone
            });
            if gone {
                self.lost(call_id, restsip_sip::dialog::CONNECTION_LOST)
                    .await;
            } else {
                let (this, call_id) = (self.clone(), call_id.to_owned());
                tokio::spawn(async move { this.keep(&call_id).await });
            }
        }
        for other in others {
            self.cancel_leg(&other);
        }
        true
    }

    /// Probes an answered leg with OPTIONS every keep-alive interval until it ends; a phone
    /// that is gone ends it (the sender gets a `bye` with the reason).
    async fn keep(&self, call_id: &str) {
        let every = self.inner.timers.keepalive;
        if every.is_zero() {
            return;
        }
        loop {
            tokio::time::sleep(every).await;
            let weak = &self.inner.endpoint;
            let listen = &weak.listen();
            let probe = {
                let mut calls = self.lock();
                let Some(call) = calls.get_mut(call_id) else {
                    return;
                };
                let peer = call.peer;
                let Leg::Up {
                    local,
                    remote,
                    target,
                    routes,
                    cseq,
                } = &mut call.leg
                else {
                    return;
                };
                *cseq += 1;
                let d = restsip_sip::dialog::InDialog {
                    call_id,
                    local,
                    remote,
                    target,
                    routes,
                    peer,
                };
                d.request(Method::OPTIONS, *cseq, *listen)
                    .map(|r| (r, peer))
            };
            let Some((req, peer)) = probe else { return };
            let Some(endpoint) = weak.upgrade() else {
                return;
            };
            if let Err(why) = restsip_sip::dialog::probe(&endpoint, &req, peer).await {
                self.lost(call_id, why).await;
                return;
            }
        }
    }

    /// Ends a leg whose phone is gone: a ringing one as a `reject` (503), an answered one as
    /// a `bye`, with `reason`.
    async fn lost(&self, call_id: &str, reason: &str) {
        let ringing = match self.lock().get(call_id) {
            Some(c) => matches!(c.leg, Leg::Ringing(_)),
            None => return,
        };
        let mut body = if ringing {
            json!({"command": "reject", "code": 503, "reason": format!("Service Unavailable ({reason})")})
        } else {
            json!({"command": "bye", "reason": reason})
        };
        self.tell(call_id, &mut body, true).await;
    }

    /// A leg still ringing when the ring timeout ends: CANCEL, and a `reject` 480 to the
    /// sender at once (the phone's 487, or its silence, no longer matters).
    async fn unanswered(&self, call_id: &str) {
        if !self.cancel_leg(call_id) {
            return;
        }
        let reason = "Temporarily Unavailable (no answer)";
        let mut reject = json!({"command": "reject", "code": 480, "reason": reason});
        self.tell(call_id, &mut reject, true).await;
    }

    /// Whether the leg's phone was reached over a TCP connection that is gone.
    fn connection_lost(&self, call_id: &str) -> bool {
        let Some(peer) = self.lock().get(call_id).map(|c| c.peer) else {
            return false;
        };
        let endpoint = self.inner.endpoint.upgrade();
        peer.transport.reliable() && endpoint.is_some_and(|e| !e.is_open(peer))
    }

    /// A TCP connection closed: the answered legs on it are over (the sender gets a `bye`
    /// once told of the answer), but for those through a proxy; ringing ones end through
    /// their INVITE transaction, which the closed connection ends after any response read
    /// from it.
    pub fn closed(&self, peer: Peer) {
        let legs: Vec<String> = self
            .lock()
            .iter_mut()
            .filter(|(_, c)| c.peer == peer)
            .filter_map(|(k, c)| {
                if let Leg::Up { routes, .. } = &c.leg {
                    if let Some(route) = routes.first() {
                        // Through a proxy: its next requests go to the first route.
                        c.peer = restsip_sip::dialog::route_peer(route).unwrap_or(c.peer);
                        return None;
                    }
                }
                c.gone = true;
                (c.told && matches!(c.leg, Leg::Up { .. })).then(|| k.clone())
            })
            .collect();
        if legs.is_empty() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            for leg in legs {
                this.lost(&leg, restsip_sip::dialog::CONNECTION_LOST).await;
            }
        });
    }

    /// Marks a leg answered and sends the ACK; the Call-IDs of the call's other ringing legs.
    fn up(&self, call_id: &str, resp: &SipMessage) -> Vec<String> {
        let mut calls = self.lock();
        let Some(call) = calls.get_mut(call_id) else {
            return Vec::new();
        };
        let Leg::Ringing(invite) = &call.leg else {
            return Vec::new();
        };
        let target = resp
            .contacts()
            .ok()
            .flatten()
            .and_then(|c| c.into_iter().next())
            .map(|c| c.uri.to_string())
            .or_else(|| match &invite.start {
                StartLine::Request { uri, .. } => Some(uri.to_string()),
                StartLine::Response { .. } => None,
            })
            .unwrap_or_default();
        let local = invite.header("From").unwrap_or_default().to_owned();
        let remote = resp.header("To").unwrap_or_default().to_owned();
        let cseq = invite.cseq().map(|c| c.seq).unwrap_or(1);
        // The route set (RFC 3261 §12.1.2): the Record-Route of the 2xx in reverse order; the
        // INVITE's own Route (a Path, the upstream server) when there is none.
        let mut routes: Vec<String> = resp
            .headers_named("Record-Route")
            .flat_map(restsip_sip::headers::split_list)
            .map(|r| r.trim().to_owned())
            .collect();
        routes.reverse();
        if routes.is_empty() {
            routes = invite.headers_named("Route").map(str::to_owned).collect();
        }
        let weak = &self.inner.endpoint;
        if let (Some(endpoint), Ok(uri)) = (weak.upgrade(), Uri::parse(&target)) {
            let addr = outgoing::local_addr(weak.listen(), call.peer.addr);
            let mut ack = outgoing::request(Method::ACK, uri, addr, call.peer.transport);
            for route in &routes {
                ack.push("Route", route.clone());
            }
            ack.push("From", local.clone());
            ack.push("To", remote.clone());
            ack.push("Call-ID", call_id.to_owned());
            ack.push("CSeq", format!("{cseq} ACK"));
            endpoint.send_to(call.peer, Bytes::from(ack.to_bytes()));
        }
        call.leg = Leg::Up {
            local,
            remote,
            target,
            routes,
            cseq,
        };
        let (sender, callee, id) = (call.sender.clone(), call.callee.clone(), call.id.clone());
        calls
            .iter()
            .filter(|(k, c)| {
                k.as_str() != call_id
                    && c.sender == sender
                    && c.callee == callee
                    && c.id == id
                    && matches!(c.leg, Leg::Ringing(_))
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Sends `body` (with the call's id and Call-ID) from the callee to the sender; `end`
    /// forgets the leg.
    async fn tell(&self, call_id: &str, body: &mut Value, end: bool) {
        let found = {
            let mut calls = self.lock();
            let found = calls
                .get(call_id)
                .map(|c| (c.sender.clone(), c.callee.clone(), c.id.clone()));
            if end {
                calls.remove(call_id);
            }
            found
        };
        let Some((sender, callee, id)) = found else {
            return;
        };
        body["id"] = id;
        body["sip"] = json!({"callId": call_id});
        if let Err(e) = self
            .inner
            .inbox
            .send(&callee, &sender, None, body.clone())
            .await
        {
            tracing::debug!(error = %e, "call progress not delivered to {sender}");
        }
    }

    /// Sends a CANCEL for a ringing leg (§9.1); its INVITE then ends with 487.
    fn cancel_leg(&self, call_id: &str) -> bool {
        let calls = self.lock();
        let Some(Call {
            leg: Leg::Ringing(invite),
            peer,
            ..
        }) = calls.get(call_id)
        else {
            return false;
        };
        let mut cancel = SipMessage {
            start: match &invite.start {
                StartLine::Request { uri, .. } => StartLine::Request {
                    method: Method::CANCEL,
                    uri: uri.clone(),
                },
                other => other.clone(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        for name in ["Via", "Route", "Max-Forwards", "From", "To", "Call-ID"] {
            for v in invite.headers_named(name) {
                cancel.push(name, v.to_owned());
            }
        }
        let seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
        cancel.push("CSeq", format!("{seq} CANCEL"));
        let peer = *peer;
        drop(calls);
        self.send(&cancel, peer)
    }

    /// Sends a request in a client transaction, not waiting for its answer.
    fn send(&self, req: &SipMessage, peer: Peer) -> bool {
        let Some(endpoint) = self.inner.endpoint.upgrade() else {
            return false;
        };
        endpoint.client().send(req, peer).is_some()
    }

    /// Sends a BYE in an answered leg and forgets it.
    fn hang_up(&self, call_id: &str) -> bool {
        let Some(call) = self.lock().remove(call_id) else {
            return false;
        };
        let Leg::Up {
            local,
            remote,
            target,
            routes,
            cseq,
        } = call.leg
        else {
            return false;
        };
        let Ok(uri) = Uri::parse(&target) else {
            return false;
        };
        let addr = outgoing::local_addr(self.inner.endpoint.listen(), call.peer.addr);
        let mut bye = outgoing::request(Method::BYE, uri, addr, call.peer.transport);
        for route in routes {
            bye.push("Route", route);
        }
        bye.push("From", local);
        bye.push("To", remote);
        bye.push("Call-ID", call_id.to_owned());
        bye.push("CSeq", format!("{} BYE", cseq + 1));
        self.send(&bye, call.peer)
    }

    /// A `cancel` or `bye` SEND from `sender` to `email` for one of its calls: the CANCELs or
    /// BYEs sent; None when no call matches.
    pub fn intercept(&self, sender: &str, email: &str, body: &Value) -> Option<SendReceipt> {
        let command = body.get("command").and_then(Value::as_str)?;
        let ringing = match command {
            "cancel" => true,
            "bye" => false,
            _ => return None,
        };
        let legs: Vec<String> = {
            let mut calls = self.lock();
            let day_ago = now_ms() - 86_400_000;
            calls.retain(|_, c| c.since > day_ago);
            calls
                .iter()
                .filter(|(_, c)| {
                    c.sender == sender
                        && c.callee == email
                        && same_id(body, &c.id)
                        && matches!(c.leg, Leg::Ringing(_)) == ringing
                })
                .map(|(k, _)| k.clone())
                .collect()
        };
        if legs.is_empty() {
            return None;
        }
        let deliveries = legs
            .iter()
            .map(|leg| {
                let sent = if ringing {
                    self.cancel_leg(leg)
                } else {
                    self.hang_up(leg)
                };
                Delivery {
                    contact: format!("sip:{email}"),
                    status: if sent {
                        DeliveryStatus::Delivered
                    } else {
                        DeliveryStatus::Failed
                    },
                    sip: Some(if sent {
                        failed(200, if ringing { "CANCEL sent" } else { "BYE sent" })
                    } else {
                        failed(503, "Service Unavailable")
                    }),
                }
            })
            .collect();
        Some(SendReceipt {
            id: legs.join(","),
            deliveries,
        })
    }

    /// A BYE from a phone in a call a web user made: true when it was one (the sender gets a
    /// `bye` message).
    pub async fn bye(&self, call_id: &str) -> bool {
        let up = matches!(
            self.lock().get(call_id),
            Some(Call {
                leg: Leg::Up { .. },
                ..
            })
        );
        if !up {
            return false;
        }
        let mut bye = json!({"command": "bye"});
        self.tell(call_id, &mut bye, true).await;
        true
    }
}

/// The inbox's SIP side: `im` as MESSAGE, `invite` as INVITE.
pub struct SipSide {
    /// MESSAGE.
    pub im: super::im::Outbound,
    /// INVITE.
    pub calls: Outgoing,
    /// The upstream server for `im` and `invite` SENDs to non-accounts, if configured.
    pub upstream: Option<std::sync::Arc<super::upstream::UpstreamSender>>,
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
