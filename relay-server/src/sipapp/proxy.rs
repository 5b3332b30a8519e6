//! Stateful proxying between SIP phones registered at the relay (RFC 3261 §16). An INVITE or
//! MESSAGE for a user whose live logins are all SIP bindings is forwarded to every binding at
//! once (parallel forking): a client transaction per binding, the Request-URI rewritten to the
//! binding's Contact, the relay's Via on top, Max-Forwards decremented and, for INVITE, a
//! Record-Route so that the dialog's ACK and BYE pass the relay too. Provisional and 2xx
//! responses go back at once (without the relay's Via); otherwise the best final response
//! (§16.7: a 6xx, else the lowest code) once every branch has answered. A CANCEL cancels the
//! branches still pending; so does Timer C for a branch that rang for over three minutes.
//! Requests whose top Route names the relay (in-dialog requests) lose that Route and go on to
//! the next one or to their Request-URI.
//!
//! With an upstream server (`--sip-upstream`), an INVITE or MESSAGE from a relay account for an address that is no account here goes to the upstream server instead, with a
//! Route to it (and, for INVITE, the relay's Record-Route): its answers, a 401/407 challenge
//! included, go back to the phone, which answers a challenge itself with a new request.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use restsip_protocol::ContactSource;
use tokio::sync::mpsc;

use super::upstream::UpstreamSender;
use crate::clock::now_ms;
use crate::store::{ContactRecord, Store};
use crate::sync::lock;
use restsip_sip::endpoint::{Endpoint, Responder, WeakEndpoint};
use restsip_sip::headers::{NameAddr, Via};
use restsip_sip::message::{Header, Method, SipMessage, StartLine};
use restsip_sip::outgoing;
use restsip_sip::response::Reply;
use restsip_sip::transaction::client::Outcome;
use restsip_sip::transaction::{TxKey, MAGIC_COOKIE};
use restsip_sip::transport::{Peer, Transport};
use restsip_sip::uri::Uri;

/// Branches of requests the relay forwards start with this (responses to them that match no
/// transaction, such as retransmitted 2xx, are forwarded statelessly).
const BRANCH_PREFIX: &str = "z9hG4bKrsp";
/// The URI parameter that marks the relay's Record-Route (and so Route) entries.
const ROUTE_MARK: &str = "restsip";
/// Most proxied INVITEs pending at once (503 above).
const MAX_PENDING: usize = 10_000;

/// Whether a request goes to the upstream server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToUpstream {
    /// No: no upstream, or the request is for an account here.
    No,
    /// Yes: a relay user's request for a non-account.
    Proxy,
    /// A request for a non-account from a non-account (or from the upstream): not forwarded,
    /// not sent with the relay's credentials either.
    Refuse,
}

/// A forwarded copy of a request, still waiting for its final response.
struct Branch {
    /// The request as forwarded (for building its CANCEL).
    request: SipMessage,
    /// Where it went.
    peer: Peer,
}

/// The proxy; cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    /// Shared state.
    inner: Arc<Inner>,
}

struct Inner {
    /// Accounts and bindings.
    store: Arc<dyn Store>,
    /// The endpoint and the listening address.
    endpoint: WeakEndpoint,
    /// Proxied INVITEs waiting for a final response, by server transaction: their pending
    /// branches (a CANCEL cancels them).
    pending: Mutex<HashMap<TxKey, HashMap<usize, Branch>>>,
    /// The upstream server requests for non-accounts go to, when there is one.
    upstream: Option<Arc<UpstreamSender>>,
}

impl Proxy {
    /// A proxy over the bindings in `store`, sending through `endpoint`; requests of the
    /// relay's users for non-accounts go through `upstream`, when there is one.
    pub fn new(
        store: Arc<dyn Store>,
        endpoint: WeakEndpoint,
        upstream: Option<Arc<UpstreamSender>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                endpoint,
                pending: Mutex::default(),
                upstream,
            }),
        }
    }

    /// Whether `req`, which `from` sent, goes to the upstream server: there is one, the
    /// Request-URI names an address that is no account here, the From is an account (a phone
    /// of a relay user; the relay is no open relay) and the request did not come from the
    /// upstream server itself (no loop). A request for a non-account that may not go there is
    /// [`ToUpstream::Refuse`].
    pub async fn to_upstream(&self, req: &SipMessage, from: Peer) -> ToUpstream {
        let Some(upstream) = self.inner.upstream.as_ref() else {
            return ToUpstream::No;
        };
        let StartLine::Request { uri, .. } = &req.start else {
            return ToUpstream::No;
        };
        let Some(target) = uri.sip().and_then(|u| u.address()) else {
            return ToUpstream::No;
        };
        let store = &self.inner.store;
        match store.user(&target).await {
            Ok(None) => {}
            Ok(Some(_)) => return ToUpstream::No,
            Err(e) => {
                tracing::warn!(error = %e, "user lookup failed");
                return ToUpstream::No;
            }
        }
        let sender = req
            .from()
            .ok()
            .and_then(|f| f.uri.sip().and_then(|u| u.address()));
        let account = match sender {
            Some(sender) => match store.user(&sender).await {
                Ok(found) => found.is_some(),
                Err(e) => {
                    tracing::warn!(error = %e, "user lookup failed");
                    false
                }
            },
            None => false,
        };
        if account && upstream.peer().await.map(|p| p.addr) != Some(from.addr) {
            ToUpstream::Proxy
        } else {
            ToUpstream::Refuse
        }
    }

    /// Forwards a request for a non-account to the upstream server (a Route to it, sent to
    /// it; INVITE with the relay's Record-Route) and relays the answers, a challenge included:
    /// the relay never answers one with its own credentials for a phone.
    pub async fn upstream(&self, responder: Responder) {
        let weak = self.inner.endpoint.clone();
        let listen = weak.listen();
        let Some(endpoint) = weak.upgrade() else {
            return;
        };
        let Some(upstream) = self.inner.upstream.as_ref().cloned() else {
            responder.reply(Reply::new(404, "Not Found"));
            return;
        };
        let Some(peer) = upstream.peer().await else {
            responder.reply(Reply::new(
                503,
                "Service Unavailable (cannot resolve the upstream server)",
            ));
            return;
        };
        let invite = responder.request().method() == Some(&Method::INVITE);
        if invite && lock(&self.inner.pending).len() >= MAX_PENDING {
            responder.reply(Reply::new(503, "Service Unavailable (too many calls)"));
            return;
        }
        let mut base = responder.request().clone();
        if top_route(&base).is_some_and(|r| self.is_relay(&r.uri)) {
            pop_route(&mut base);
        }
        let routes = [upstream.route().to_owned()];
        // A SUBSCRIBE's NOTIFYs must come back through the relay too.
        let record_route = invite || responder.request().method() == Some(&Method::SUBSCRIBE);
        let Some(request) = forward_copy(
            &base,
            responder.top(),
            None,
            &routes,
            listen,
            peer,
            record_route,
        ) else {
            responder.reply(Reply::bad_request("cannot forward the request"));
            return;
        };
        self.run_branches(&endpoint, responder, vec![(request, peer)], invite)
            .await;
    }

    /// The SIP bindings to proxy a request for `email` to: the user's contacts when every
    /// live one is a SIP binding (a user with a web login is served by the gateway instead).
    pub async fn targets(&self, email: &str) -> Vec<ContactRecord> {
        match self.inner.store.contacts(email, now_ms()).await {
            Ok(contacts)
                if !contacts.is_empty()
                    && contacts.iter().all(|c| c.source == ContactSource::Sip) =>
            {
                contacts
            }
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::warn!(error = %e, "contact lookup failed");
                Vec::new()
            }
        }
    }

    /// Whether `uri` is the relay's own address (its listening address or the marker).
    fn is_relay(&self, uri: &Uri) -> bool {
        let Some(sip) = uri.sip() else { return false };
        if sip.param(ROUTE_MARK).is_some() {
            return true;
        }
        sip.user.is_none() && self.is_relay_host(uri)
    }

    /// Whether the request's top Route names the relay and the request goes on from here
    /// (another Route follows, or the Request-URI is another IP address: an in-dialog
    /// request). A request whose only Route is the relay and whose Request-URI is a user at a
    /// domain, or the relay itself, is the relay's own (a phone using it as outbound proxy).
    pub fn routed_here(&self, req: &SipMessage) -> bool {
        if !top_route(req).is_some_and(|r| self.is_relay(&r.uri)) {
            return false;
        }
        let routes: usize = req
            .headers_named("Route")
            .map(|v| restsip_sip::headers::split_list(v).len())
            .sum();
        if routes > 1 {
            return true;
        }
        let StartLine::Request { uri, .. } = &req.start else {
            return false;
        };
        let ip_literal = uri.sip().is_some_and(|u| {
            u.host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok()
        });
        ip_literal && !self.is_relay_host(uri)
    }

    /// Whether `uri`'s host and port are the relay's listening address.
    fn is_relay_host(&self, uri: &Uri) -> bool {
        let Some(sip) = uri.sip() else {
            return false;
        };
        let listen = self.inner.endpoint.listen();
        let host = sip.host.trim_start_matches('[').trim_end_matches(']');
        host.parse::<IpAddr>().ok() == Some(listen.ip())
            && sip.port.unwrap_or(5060) == listen.port()
    }

    /// Forwards an INVITE or MESSAGE to `targets` and relays the answers (§16.6, §16.7).
    pub async fn fork(&self, responder: Responder, targets: Vec<ContactRecord>) {
        let weak = self.inner.endpoint.clone();
        let listen = weak.listen();
        let Some(endpoint) = weak.upgrade() else {
            return;
        };
        let invite = responder.request().method() == Some(&Method::INVITE);
        let mut hops = Vec::new();
        for contact in &targets {
            let open = |p: Peer| endpoint.is_open(p);
            let Some((uri, peer)) = super::contact::contact_peer(contact, open) else {
                continue;
            };
            let routes = super::contact::contact_routes(contact);
            hops.push((uri, peer, routes));
        }
        if hops.is_empty() {
            responder.reply(Reply::new(
                480,
                "Temporarily Unavailable (no usable contact)",
            ));
            return;
        }
        if invite && lock(&self.inner.pending).len() >= MAX_PENDING {
            responder.reply(Reply::new(503, "Service Unavailable (too many calls)"));
            return;
        }
        // A preloaded Route naming the relay (its use as outbound proxy) is spent here.
        let mut base = responder.request().clone();
        if top_route(&base).is_some_and(|r| self.is_relay(&r.uri)) {
            pop_route(&mut base);
        }
        let mut branches = Vec::new();
        for (uri, peer, routes) in hops {
            let top = responder.top();
            let Some(request) = forward_copy(&base, top, Some(uri), &routes, listen, peer, invite)
            else {
                responder.reply(Reply::bad_request("cannot forward the request"));
                return;
            };
            branches.push((request, peer));
        }
        self.run_branches(&endpoint, responder, branches, invite)
            .await;
    }

    /// Forwards a request whose top Route names the relay to the next hop, statefully.
    pub async fn route(&self, responder: Responder) {
        let weak = self.inner.endpoint.clone();
        let listen = weak.listen();
        let Some(endpoint) = weak.upgrade() else {
            return;
        };
        let invite = responder.request().method() == Some(&Method::INVITE);
        let mut req = responder.request().clone();
        pop_route(&mut req);
        let Some(peer) = next_hop(&req, &endpoint) else {
            responder.reply(Reply::new(
                404,
                "Not Found (the next hop is not an IP address)",
            ));
            return;
        };
        let Some(request) = forward_copy(&req, responder.top(), None, &[], listen, peer, invite)
        else {
            responder.reply(Reply::bad_request("cannot forward the request"));
            return;
        };
        self.run_branches(&endpoint, responder, vec![(request, peer)], invite)
            .await;
    }

    /// Forwards the ACK of a 2xx whose top Route names the relay (statelessly, §16.11).
    pub fn route_ack(&self, req: &SipMessage, from: Peer) {
        let weak = self.inner.endpoint.clone();
        let listen = weak.listen();
        let Some(endpoint) = weak.upgrade() else {
            return;
        };
        let Ok(mut via) = req.top_via() else { return };
        restsip_sip::endpoint::stamp_via(&mut via, from);
        let mut req = req.clone();
        pop_route(&mut req);
        if req.max_forwards().ok().flatten() == Some(0) {
            return;
        }
        let Some(peer) = next_hop(&req, &endpoint) else {
            return;
        };
        if let Some(ack) = forward_copy(&req, &via.to_string(), None, &[], listen, peer, false) {
            endpoint.send_to(peer, Bytes::from(ack.to_bytes()));
        }
    }

    /// A response that matches no client transaction: when its top Via is one the relay put
    /// on a forwarded request (a retransmitted 2xx to an INVITE), it goes on statelessly.
    pub fn stray_response(&self, mut resp: SipMessage, endpoint: &Endpoint) {
        let Ok(top) = resp.top_via() else { return };
        if !top.branch().is_some_and(|b| b.starts_with(BRANCH_PREFIX)) {
            return;
        }
        if !strip_top_via(&mut resp) {
            return;
        }
        let Ok(next) = resp.top_via() else { return };
        if let Some(peer) = via_peer(&next) {
            endpoint.send_to(peer, Bytes::from(resp.to_bytes()));
        }
    }

    /// A CANCEL for a proxied INVITE: 200, and a CANCEL to each pending branch (§16.10).
    /// None when it matches no proxied INVITE.
    pub fn cancel(&self, req: &SipMessage) -> Option<Reply> {
        let key = TxKey::cancelled(req)?;
        let branches: Vec<(SipMessage, Peer)> = {
            let pending = lock(&self.inner.pending);
            let found = pending.get(&key)?;
            found
                .values()
                .map(|b| (cancel_for(&b.request), b.peer))
                .collect()
        };
        if let Some(endpoint) = self.inner.endpoint.upgrade() {
            for (cancel, peer) in branches {
                // The branch's 487 ends it; the CANCEL's own answer is not needed.
                drop(endpoint.client().send(&cancel, peer));
            }
        }
        Some(Reply::new(200, "OK"))
    }

    /// Sends each branch in a client transaction and relays the answers to `responder`.
    async fn run_branches(
        &self,
        endpoint: &Endpoint,
        responder: Responder,
        branches: Vec<(SipMessage, Peer)>,
        invite: bool,
    ) {
        let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Outcome)>();
        let mut open = 0usize;
        let mut table = HashMap::new();
        for (i, (request, peer)) in branches.into_iter().enumerate() {
            let Some(mut out) = endpoint.client().send(&request, peer) else {
                continue;
            };
            open += 1;
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(outcome) = out.recv().await {
                    if tx.send((i, outcome)).is_err() {
                        return;
                    }
                }
            });
            table.insert(i, Branch { request, peer });
        }
        drop(tx);
        if open == 0 {
            responder.reply(Reply::new(500, "Server Internal Error (cannot forward)"));
            return;
        }
        let key = responder.key().clone();
        if invite {
            lock(&self.inner.pending).insert(key.clone(), table);
        }
        let mut best: Option<SipMessage> = None;
        let mut answered = false;
        // Branches that answered with a provisional response (CANCEL needs one, §9.1).
        let mut ringing = std::collections::HashSet::new();
        while open > 0 {
            let Some((i, outcome)) = rx.recv().await else {
                break;
            };
            let resp = match outcome {
                Outcome::Response(resp) => *resp,
                Outcome::Timeout => {
                    open -= 1;
                    let branch = self.forget_branch(&key, i);
                    // Timer C (§16.8): a branch that rang too long is cancelled.
                    if let Some(b) = branch.filter(|_| ringing.contains(&i)) {
                        drop(endpoint.client().send(&cancel_for(&b.request), b.peer));
                    }
                    continue;
                }
            };
            let Some(code) = resp.code() else { continue };
            tracing::debug!(branch = i, code, "proxied branch answered");
            if code < 200 {
                ringing.insert(i);
            }
            if code == 100 {
                continue;
            }
            let mut out = resp;
            if !strip_top_via(&mut out) {
                continue;
            }
            if code < 200 {
                if !answered {
                    responder.forward(&out, code);
                }
                continue;
            }
            open -= 1;
            self.forget_branch(&key, i);
            if code < 300 {
                // Every 2xx goes back (§16.7 step 5); the other branches are cancelled.
                responder.forward(&out, code);
                if !answered && invite {
                    self.cancel_rest(&key, endpoint);
                }
                answered = true;
                continue;
            }
            if answered {
                continue;
            }
            if code >= 600 && invite {
                self.cancel_rest(&key, endpoint);
            }
            let better = match &best {
                None => true,
                Some(b) => better_final(code, b.code().unwrap_or(500)),
            };
            if better {
                best = Some(out);
            }
        }
        lock(&self.inner.pending).remove(&key);
        if answered {
            return;
        }
        match best {
            Some(resp) => {
                let code = resp.code().unwrap_or(500);
                responder.forward(&resp, code);
            }
            None => {
                responder.reply(Reply::new(408, "Request Timeout"));
            }
        }
    }

    /// Forgets a branch that ended; the branch, if it was still pending.
    fn forget_branch(&self, key: &TxKey, i: usize) -> Option<Branch> {
        lock(&self.inner.pending).get_mut(key)?.remove(&i)
    }

    /// Cancels the branches of `key` still pending.
    fn cancel_rest(&self, key: &TxKey, endpoint: &Endpoint) {
        let branches: Vec<(SipMessage, Peer)> = lock(&self.inner.pending)
            .get_mut(key)
            .map(|b| {
                b.drain()
                    .map(|(_, b)| (cancel_for(&b.request), b.peer))
                    .collect()
            })
            .unwrap_or_default();
        for (cancel, peer) in branches {
            drop(endpoint.client().send(&cancel, peer));
        }
    }
}

/// Whether final response `code` beats `best` (§16.7 step 6: a 6xx wins, else the lowest).
fn better_final(code: u16, best: u16) -> bool {
    if (code >= 600) != (best >= 600) {
        return code >= 600;
    }
    code < best
}

/// The top Route entry, if any.
fn top_route(req: &SipMessage) -> Option<NameAddr> {
    let first = req.headers_named("Route").next()?;
    let value = restsip_sip::headers::split_list(first).first().copied()?;
    NameAddr::parse(value).ok()
}

/// Removes the top Route entry (the first value of the first Route header).
fn pop_route(req: &mut SipMessage) {
    let Some(pos) = req
        .headers
        .iter()
        .position(|h| h.name.eq_ignore_ascii_case("Route"))
    else {
        return;
    };
    let rest = restsip_sip::headers::split_list(&req.headers[pos].value)
        .get(1..)
        .map(|r| r.join(", "))
        .unwrap_or_default();
    if rest.is_empty() {
        req.headers.remove(pos);
    } else {
        req.headers[pos].value = rest;
    }
}

/// Removes the top Via value; false if the message has none.
fn strip_top_via(msg: &mut SipMessage) -> bool {
    let Some(pos) = msg
        .headers
        .iter()
        .position(|h| h.name.eq_ignore_ascii_case("Via"))
    else {
        return false;
    };
    let rest = restsip_sip::headers::split_list(&msg.headers[pos].value)
        .get(1..)
        .map(|r| r.join(", "))
        .unwrap_or_default();
    if rest.is_empty() {
        msg.headers.remove(pos);
    } else {
        msg.headers[pos].value = rest;
    }
    true
}

/// Where a response with this top Via goes (§18.2.2: `received`, `rport`, sent-by).
fn via_peer(via: &Via) -> Option<Peer> {
    let host = match via.param("received").flatten() {
        Some(r) => r.to_owned(),
        None => via.host.clone(),
    };
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok()?;
    let port = via
        .param("rport")
        .flatten()
        .and_then(|p| p.parse::<u16>().ok())
        .or(via.port)
        .unwrap_or(5060);
    let transport = if via.transport.eq_ignore_ascii_case("TCP") {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    Some(Peer {
        transport,
        addr: SocketAddr::new(ip, port),
    })
}

/// The next hop of a request: its top Route, else its Request-URI (IP addresses only: the
/// relay does not resolve names). Over TCP an open connection is used.
fn next_hop(req: &SipMessage, endpoint: &Endpoint) -> Option<Peer> {
    let uri = match top_route(req) {
        Some(route) => route.uri,
        None => match &req.start {
            StartLine::Request { uri, .. } => uri.clone(),
            StartLine::Response { .. } => return None,
        },
    };
    let sip = uri.sip()?;
    let host = sip.host.trim_start_matches('[').trim_end_matches(']');
    let ip = host.parse::<IpAddr>().ok()?;
    let transport = match sip.param("transport").flatten() {
        Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
        _ => Transport::Udp,
    };
    let peer = Peer {
        transport,
        addr: SocketAddr::new(ip, sip.port.unwrap_or(5060)),
    };
    let _ = endpoint.is_open(peer); // TCP connects on demand when no connection is open.
    Some(peer)
}

/// A copy of `req` to forward (§16.6): the top Via replaced by `top` (with `received` and
/// `rport`), the Request-URI replaced by `uri` when given, `routes` put first, Max-Forwards
/// decremented, the relay's Via (fresh branch) on top and, when asked, its Record-Route.
fn forward_copy(
    req: &SipMessage,
    top: &str,
    uri: Option<Uri>,
    routes: &[String],
    listen: SocketAddr,
    peer: Peer,
    record_route: bool,
) -> Option<SipMessage> {
    let mut out = req.clone();
    if let Some(uri) = uri {
        let StartLine::Request { method, .. } = &req.start else {
            return None;
        };
        out.start = StartLine::Request {
            method: method.clone(),
            uri,
        };
    }
    // The received Via with `received`/`rport`, so that responses find their way back.
    let pos = out
        .headers
        .iter()
        .position(|h| h.name.eq_ignore_ascii_case("Via"))?;
    let rest: Vec<String> = restsip_sip::headers::split_list(&out.headers[pos].value)
        .get(1..)
        .map(|r| r.iter().map(|s| (*s).to_owned()).collect())
        .unwrap_or_default();
    out.headers[pos].value = std::iter::once(top.to_owned())
        .chain(rest)
        .collect::<Vec<_>>()
        .join(", ");
    let hops = match req.max_forwards() {
        Ok(Some(n)) => n.checked_sub(1)?,
        Ok(None) => outgoing::MAX_FORWARDS,
        Err(_) => return None,
    };
    out.remove("Max-Forwards");
    out.push("Max-Forwards", hops.to_string());
    let local = outgoing::local_addr(listen, peer.addr);
    let mut front = vec![Header {
        name: "Via".into(),
        value: format!(
            "SIP/2.0/{} {};branch={BRANCH_PREFIX}{};rport",
            peer.transport.name(),
            outgoing::host_port(local),
            outgoing::token()
        ),
    }];
    if record_route {
        let transport = if peer.transport.reliable() {
            ";transport=tcp"
        } else {
            ""
        };
        front.push(Header {
            name: "Record-Route".into(),
            value: format!(
                "<sip:{}{transport};lr;{ROUTE_MARK}>",
                outgoing::host_port(local)
            ),
        });
    }
    for route in routes.iter().rev() {
        let pos = out
            .headers
            .iter()
            .position(|h| h.name.eq_ignore_ascii_case("Route"))
            .unwrap_or(out.headers.len());
        out.headers.insert(
            pos,
            Header {
                name: "Route".into(),
                value: route.clone(),
            },
        );
    }
    out.headers.splice(0..0, front);
    debug_assert!(BRANCH_PREFIX.starts_with(MAGIC_COOKIE));
    Some(out)
}

/// The CANCEL of a forwarded INVITE (§9.1): same Request-URI, top Via, Call-ID, From, To,
/// CSeq number and Route.
fn cancel_for(invite: &SipMessage) -> SipMessage {
    let uri = match &invite.start {
        StartLine::Request { uri, .. } => uri.clone(),
        StartLine::Response { .. } => Uri::Other(String::new()),
    };
    let mut cancel = SipMessage {
        start: StartLine::Request {
            method: Method::CANCEL,
            uri,
        },
        headers: Vec::new(),
        body: Vec::new(),
    };
    if let Ok(via) = invite.top_via() {
        cancel.push("Via", via.to_string());
    }
    cancel.push("Max-Forwards", outgoing::MAX_FORWARDS.to_string());
    for name in ["From", "To", "Call-ID"] {
        if let Some(v) = invite.header(name) {
            cancel.push(name, v.to_owned());
        }
    }
    if let Ok(cseq) = invite.cseq() {
        cancel.push("CSeq", format!("{} CANCEL", cseq.seq));
    }
    for route in invite.headers_named("Route") {
        cancel.push("Route", route.to_owned());
    }
    cancel
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_6xx_beats_lower_codes_else_the_lowest_wins() {
        assert!(better_final(603, 404));
        assert!(!better_final(486, 600));
        assert!(better_final(404, 486));
    }

    #[test]
    fn forwarding_adds_a_via_and_decrements_max_forwards() {
        let raw = b"MESSAGE sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKa;rport\r\n\
Max-Forwards: 1\r\nFrom: <sip:alice@example.net>;tag=1\r\nTo: <sip:bob@example.net>\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n";
        let req = restsip_sip::parse::parse_datagram(raw).unwrap();
        let peer = Peer {
            transport: Transport::Udp,
            addr: ([10, 0, 0, 2], 5070).into(),
        };
        let listen = ([10, 0, 0, 9], 5060).into();
        let top = "SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKa;rport=5062";
        let out = forward_copy(&req, top, None, &[], listen, peer, true).unwrap();
        let vias = out.vias().unwrap();
        assert_eq!(vias.len(), 2);
        assert!(vias[0].branch().unwrap().starts_with(BRANCH_PREFIX));
        assert_eq!(vias[1].param("rport"), Some(Some("5062")));
        assert_eq!(out.header("Max-Forwards"), Some("0"));
        assert!(out.header("Record-Route").unwrap().contains(";lr;restsip"));
        let mut zero = req.clone();
        zero.remove("Max-Forwards");
        zero.push("Max-Forwards", "0");
        assert!(forward_copy(&zero, top, None, &[], listen, peer, false).is_none());
    }

    #[test]
    fn routes_pop_and_responses_lose_the_top_via() {
        let raw = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKrsp1, SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKa;received=10.0.0.7;rport=7000\r\n\
From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let mut resp = restsip_sip::parse::parse_datagram(raw).unwrap();
        assert!(strip_top_via(&mut resp));
        let next = resp.top_via().unwrap();
        assert_eq!(
            via_peer(&next).unwrap().addr,
            SocketAddr::from(([10, 0, 0, 7], 7000))
        );
        let mut req = restsip_sip::parse::parse_datagram(
            b"BYE sip:b@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKb\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nRoute: <sip:10.0.0.9;lr;restsip>, <sip:10.0.0.3;lr>\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        assert!(top_route(&req)
            .unwrap()
            .uri
            .sip()
            .unwrap()
            .param("restsip")
            .is_some());
        pop_route(&mut req);
        assert_eq!(req.header("Route"), Some("<sip:10.0.0.3;lr>"));
    }
}
