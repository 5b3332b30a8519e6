//! Sending requests on: forking to a user's bindings, to the upstream server and along a Route
//! naming the relay (statefully, through the branches), the ACK of a 2xx (statelessly), and
//! the forwarded copy itself (§16.6) with its next hop.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;

use super::{pop_route, top_route, Proxy, BRANCH_PREFIX, MAX_PENDING, ROUTE_MARK};
use crate::sipapp::contact::contact_hop;
use crate::store::ContactRecord;
use crate::sync::lock;
use restsip_sip::endpoint::{Endpoint, Responder};
use restsip_sip::message::{Header, Method, SipMessage, StartLine};
use restsip_sip::outgoing;
use restsip_sip::response::Reply;
use restsip_sip::transaction::MAGIC_COOKIE;
use restsip_sip::transport::{Peer, Transport};
use restsip_sip::uri::Uri;

impl Proxy {
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
        let Some(base) = self.forward_base(&responder, invite) else {
            return;
        };
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
            record_route.then_some(responder.peer()),
        ) else {
            responder.reply(Reply::bad_request("cannot forward the request"));
            return;
        };
        self.run_branches(&endpoint, responder, vec![(request, peer)], invite)
            .await;
    }

    /// Forwards an INVITE or MESSAGE to `targets` and relays the answers (§16.6, §16.7).
    pub async fn fork(&self, responder: Responder, targets: Vec<ContactRecord>) {
        let weak = self.inner.endpoint.clone();
        let listen = weak.listen();
        let Some(endpoint) = weak.upgrade() else {
            return;
        };
        let invite = responder.request().method() == Some(&Method::INVITE);
        let secure = responder.request().sips();
        let mut hops = Vec::new();
        for contact in &targets {
            let open = |p: Peer| endpoint.is_open(p);
            let Ok(hop) = contact_hop(contact, listen, open, &self.inner.members) else {
                continue;
            };
            // A sips: request goes over TLS on every hop (RFC 5630), never downgraded.
            if secure && hop.peer.transport != restsip_sip::transport::Transport::Tls {
                continue;
            }
            hops.push((hop.uri, hop.peer, hop.routes));
        }
        if hops.is_empty() {
            responder.reply(Reply::new(
                480,
                "Temporarily Unavailable (no usable contact)",
            ));
            return;
        }
        let Some(base) = self.forward_base(&responder, invite) else {
            return;
        };
        // Toward phones (outside the trust domain) an identity its sender keeps private goes.
        let mut base = base;
        crate::sipapp::asserted::withhold_if_private(&mut base);
        let mut branches = Vec::new();
        for (uri, peer, routes) in hops {
            let top = responder.top();
            let Some(request) = forward_copy(
                &base,
                top,
                Some(uri),
                &routes,
                listen,
                peer,
                invite.then_some(responder.peer()),
            ) else {
                responder.reply(Reply::bad_request("cannot forward the request"));
                return;
            };
            branches.push((request, peer));
        }
        self.run_branches(&endpoint, responder, branches, invite)
            .await;
    }

    /// The copy of the request to forward to the upstream server or the bindings, with a
    /// preloaded Route naming the relay removed; None, after a 503, for an INVITE when too
    /// many proxied INVITEs are pending.
    fn forward_base(&self, responder: &Responder, invite: bool) -> Option<SipMessage> {
        if invite && lock(&self.inner.pending).len() >= MAX_PENDING {
            responder.reply(Reply::new(503, "Service Unavailable (too many calls)"));
            return None;
        }
        // A preloaded Route naming the relay (its use as outbound proxy) is spent here.
        let mut base = responder.request().clone();
        if top_route(&base).is_some_and(|r| self.is_relay(&r.uri)) {
            pop_route(&mut base);
        }
        Some(base)
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
        if req.method() == Some(&Method::BYE) {
            // A call kept for the other relays ends here.
            if let Some(call_id) = req.header("Call-ID") {
                self.inner.kept.forget(call_id);
            }
        }
        self.pop_own_routes(&mut req);
        let flow = match self.flow_of(&req, &endpoint).await {
            Some(Ok(peer)) => Some(peer),
            Some(Err(why)) => {
                responder.reply(Reply::new(480, why));
                return;
            }
            None => None,
        };
        let Some(peer) = flow.or_else(|| next_hop(&req, &endpoint)) else {
            responder.reply(Reply::new(
                404,
                "Not Found (the next hop is not an IP address)",
            ));
            return;
        };
        let Some(request) = forward_copy(
            &req,
            responder.top(),
            None,
            &[],
            listen,
            peer,
            invite.then_some(responder.peer()),
        ) else {
            responder.reply(Reply::bad_request("cannot forward the request"));
            return;
        };
        self.run_branches(&endpoint, responder, vec![(request, peer)], invite)
            .await;
    }

    /// Forwards the ACK of a 2xx whose top Route names the relay (statelessly, §16.11): as
    /// [`Proxy::route`] does, over the flow of the binding its Request-URI is (a phone behind
    /// NAT, or on TCP naming another port in its Contact, is reached only there), else to its
    /// next hop.
    pub fn route_ack(&self, req: &SipMessage, from: Peer) {
        let Ok(mut via) = req.top_via() else { return };
        restsip_sip::endpoint::stamp_via(&mut via, from);
        let mut req = req.clone();
        self.pop_own_routes(&mut req);
        if req.max_forwards().ok().flatten() == Some(0) {
            return;
        }
        // The binding is read from the store: off the task that reads the transport.
        let this = self.clone();
        tokio::spawn(async move {
            let weak = this.inner.endpoint.clone();
            let listen = weak.listen();
            let Some(endpoint) = weak.upgrade() else {
                return;
            };
            let peer = match this.flow_of(&req, &endpoint).await {
                Some(Ok(peer)) => Some(peer),
                // Not sent as the relay would not send its own (an ACK gets no answer).
                Some(Err(why)) => {
                    tracing::debug!(why, "ACK not forwarded");
                    None
                }
                None => next_hop(&req, &endpoint),
            };
            let Some(peer) = peer else {
                return;
            };
            if let Some(ack) = forward_copy(&req, &via.to_string(), None, &[], listen, peer, None) {
                endpoint.send_to(peer, Bytes::from(ack.to_bytes()));
            }
        });
    }
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
    let transport = Transport::of_uri(sip);
    let peer = Peer {
        transport,
        addr: SocketAddr::new(ip, sip.port.unwrap_or(transport.default_port())),
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
    listen: outgoing::Listening,
    peer: Peer,
    record_route: Option<Peer>,
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
    let local = outgoing::local_addr(listen, peer);
    let mut front = vec![Header {
        name: "Via".into(),
        value: format!(
            "SIP/2.0/{} {};branch={BRANCH_PREFIX}{};rport",
            peer.transport.name(),
            outgoing::host_port(local),
            outgoing::token()
        ),
    }];
    if let Some(from) = record_route {
        // The relay's URI toward the next hop on top; when the request came in over another
        // transport (TLS one side, UDP or TCP the other) a second one toward where it came
        // from, so that each side's requests reach the relay the way that side speaks
        // (RFC 5658 double Record-Route).
        let secure = req.sips();
        let toward = |p: Peer| {
            format!(
                "<{};lr;{ROUTE_MARK}>",
                outgoing::own_uri(listen, p, None, secure)
            )
        };
        let (next, back) = (toward(peer), toward(from));
        let double = next != back;
        front.push(Header {
            name: "Record-Route".into(),
            value: next,
        });
        if double {
            front.push(Header {
                name: "Record-Route".into(),
                value: back,
            });
        }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bridging_transports_record_routes_twice_and_tls_names_the_tls_port() {
        let raw = b"INVITE sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/TLS 10.0.0.1:5999;branch=z9hG4bKa;rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:alice@example.net>;tag=1\r\nTo: <sip:bob@example.net>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let req = restsip_sip::parse::parse_datagram(raw).unwrap();
        let listen = outgoing::Listening {
            addr: ([10, 0, 0, 9], 5060).into(),
            tls: Some(([10, 0, 0, 9], 5061).into()),
        };
        let from = Peer {
            transport: Transport::Tls,
            addr: ([10, 0, 0, 1], 40000).into(),
        };
        let to = Peer {
            transport: Transport::Udp,
            addr: ([10, 0, 0, 2], 5070).into(),
        };
        let top = "SIP/2.0/TLS 10.0.0.1:5999;branch=z9hG4bKa;rport=40000";
        let out = forward_copy(&req, top, None, &[], listen, to, Some(from)).unwrap();
        let routes: Vec<&str> = out.headers_named("Record-Route").collect();
        assert_eq!(
            routes,
            [
                "<sip:10.0.0.9:5060;lr;restsip>",
                "<sip:10.0.0.9:5061;transport=tls;lr;restsip>"
            ],
            "the one facing the callee on top, the one facing the caller under it"
        );
        // The same transport both ways: one.
        let out = forward_copy(&req, top, None, &[], listen, from, Some(from)).unwrap();
        let routes: Vec<&str> = out.headers_named("Record-Route").collect();
        assert_eq!(routes, ["<sip:10.0.0.9:5061;transport=tls;lr;restsip>"]);
        assert!(out
            .header("Via")
            .unwrap()
            .starts_with("SIP/2.0/TLS 10.0.0.9:5061;"));
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
        let listen = outgoing::Listening::plain(([10, 0, 0, 9], 5060).into());
        let top = "SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKa;rport=5062";
        let out = forward_copy(&req, top, None, &[], listen, peer, Some(peer)).unwrap();
        let vias = out.vias().unwrap();
        assert_eq!(vias.len(), 2);
        assert!(vias[0].branch().unwrap().starts_with(BRANCH_PREFIX));
        assert_eq!(vias[1].param("rport"), Some(Some("5062")));
        assert_eq!(out.header("Max-Forwards"), Some("0"));
        assert!(out.header("Record-Route").unwrap().contains(";lr;restsip"));
        let mut zero = req.clone();
        zero.remove("Max-Forwards");
        zero.push("Max-Forwards", "0");
        assert!(forward_copy(&zero, top, None, &[], listen, peer, None).is_none());
    }
}
