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
//!
//! This file holds the proxy's state and the small helpers on Route and Via headers; the
//! rest is by subject: `targets.rs` (whether and where a request goes), `forward.rs` (the
//! forwarded copies and where they are sent) and `branches.rs` (their client transactions,
//! the answers relayed back, CANCEL and stray 2xx).

mod branches;
mod forward;
mod targets;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use super::upstream::UpstreamSender;
use crate::store::Store;
use restsip_sip::endpoint::WeakEndpoint;
use restsip_sip::headers::{NameAddr, Via};
use restsip_sip::message::SipMessage;
use restsip_sip::transaction::TxKey;
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
    /// The relays of the cluster (a binding whose relay is gone is skipped).
    members: crate::members::Members,
    /// Where answered calls it Record-Routed are kept for the other relays (in a cluster).
    kept: crate::sipapp::invite::failover::Kept,
}

impl Proxy {
    /// A proxy over the bindings in `store`, sending through `endpoint`; requests of the
    /// relay's users for non-accounts go through `upstream`, when there is one; answered calls
    /// it Record-Routes are kept through `kept` (the calls' own: one writer of the dialogs).
    pub(crate) fn new(
        store: Arc<dyn Store>,
        endpoint: WeakEndpoint,
        upstream: Option<Arc<UpstreamSender>>,
        members: crate::members::Members,
        kept: crate::sipapp::invite::failover::Kept,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                kept,
                store,
                endpoint,
                pending: Mutex::default(),
                upstream,
                members,
            }),
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

    /// Removes the top Route (it names the relay) and the one under it too when that names
    /// the relay's own address as well (a double Record-Route, RFC 5658). The mark alone does
    /// not do for the second: another relay of the cluster marks its Record-Route the same,
    /// and a request routed through both names it next.
    fn pop_own_routes(&self, req: &mut SipMessage) {
        pop_route(req);
        if top_route(req).is_some_and(|r| self.is_relay_host(&r.uri)) {
            pop_route(req);
        }
    }

    /// Whether `uri`'s host and port are the relay's listening address (UDP and TCP, or TLS).
    fn is_relay_host(&self, uri: &Uri) -> bool {
        let Some(sip) = uri.sip() else {
            return false;
        };
        let listen = self.inner.endpoint.listen();
        let host = sip.host.trim_start_matches('[').trim_end_matches(']');
        let port = sip.port.unwrap_or(5060);
        host.parse::<IpAddr>()
            .is_ok_and(|ip| super::contact::is_here(SocketAddr::new(ip, port), listen))
    }
}

/// The top Route entry, if any.
fn top_route(req: &SipMessage) -> Option<NameAddr> {
    let first = req.headers_named("Route").next()?;
    let value = restsip_sip::headers::split_list(first).first().copied()?;
    NameAddr::parse(value).ok()
}

/// Removes the top Route entry (the first value of the first Route header).
fn pop_route(req: &mut SipMessage) {
    pop_first_value(req, "Route");
}

/// Removes the top Via value; false if the message has none.
fn strip_top_via(msg: &mut SipMessage) -> bool {
    pop_first_value(msg, "Via")
}

/// Removes the first value of the first `name` header (the whole header when that was its
/// only value); false if the message has no such header.
fn pop_first_value(msg: &mut SipMessage, name: &str) -> bool {
    let Some(pos) = msg
        .headers
        .iter()
        .position(|h| h.name.eq_ignore_ascii_case(name))
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
    } else if via.transport.eq_ignore_ascii_case("TLS") {
        Transport::Tls
    } else {
        Transport::Udp
    };
    Some(Peer {
        transport,
        addr: SocketAddr::new(ip, port),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
