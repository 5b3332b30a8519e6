//! Requests the relay sends inside a call's dialog (BYE, and OPTIONS probes that tell whether
//! the phone is still there), shared by calls from phones and calls to phones.
//!
//! A phone can vanish mid-call: over TCP its connection closes (the endpoint reports it), over
//! UDP it just stops answering. While a call is up the relay sends an OPTIONS in the dialog
//! every keep-alive interval; a 408, a 481 (the phone forgot the call, RFC 5057 §5.1) or no
//! answer at all (Timer F, 32 s) ends the call for the web user as if the phone had hung up.
//! A call that goes through a proxy (a route set) is not over when the connection to the proxy
//! closes: its requests go to the first route, over a new connection.

use std::net::SocketAddr;

use super::endpoint::{Endpoint, WeakEndpoint};
use super::message::{Method, SipMessage};
use super::outgoing;
use super::transaction::client::Outcome;
use super::transport::Peer;
use super::uri::Uri;

/// What a request in a dialog needs.
pub struct InDialog<'a> {
    /// Call-ID.
    pub call_id: &'a str,
    /// From: the relay's side with its tag.
    pub local: &'a str,
    /// To: the phone's side with its tag.
    pub remote: &'a str,
    /// Request-URI: the phone's Contact.
    pub target: &'a str,
    /// The route set, in order.
    pub routes: &'a [String],
    /// Where the phone is reached.
    pub peer: Peer,
}

impl InDialog<'_> {
    /// A request of the dialog with CSeq `seq`; None when the target is not a URI.
    pub fn request(
        &self,
        method: Method,
        seq: u32,
        listen: outgoing::Listening,
    ) -> Option<SipMessage> {
        let uri = Uri::parse(self.target).ok()?;
        let local = outgoing::local_addr(listen, self.peer);
        let name = method.as_str().to_owned();
        let mut req = outgoing::request(method, uri, local, self.peer.transport);
        for route in self.routes {
            req.push("Route", route.clone());
        }
        req.push("From", self.local.to_owned());
        req.push("To", self.remote.to_owned());
        req.push("Call-ID", self.call_id.to_owned());
        req.push("CSeq", format!("{seq} {name}"));
        Some(req)
    }
}

/// Where the first entry of a route set is reached (an IP address; the relay does not resolve
/// names): its host and port (5060, 5061 for TLS), over TCP when it says `transport=tcp`, over
/// TLS for `sips:` or `transport=tls`.
pub fn route_peer(route: &str) -> Option<Peer> {
    let uri = super::headers::NameAddr::parse(route).ok()?.uri;
    let sip = uri.sip()?;
    let host = sip.host.trim_start_matches('[').trim_end_matches(']');
    let ip = host.parse::<std::net::IpAddr>().ok()?;
    let transport = super::transport::Transport::of_uri(sip);
    Some(Peer {
        transport,
        addr: SocketAddr::new(ip, sip.port.unwrap_or(transport.default_port())),
    })
}

/// Why a call ended without a BYE from the phone (the `reason` of the web user's `bye`).
pub const CONNECTION_LOST: &str = "connection lost";
/// The phone did not answer a keep-alive probe.
pub const NO_ANSWER: &str = "the phone stopped answering";
/// The phone answered a probe with 481: it no longer knows the call.
pub const FORGOTTEN: &str = "the phone no longer knows the call";
/// The caller never acknowledged the 2xx (RFC 3261 §13.3.1.4).
pub const NO_ACK: &str = "no ACK for the answer";

/// Sends an OPTIONS probe in the dialog and waits for its final response: Err with why the
/// phone is gone (no answer, 408, 481), Ok for any other answer (even 405 or 501: the phone is
/// there).
pub async fn probe(endpoint: &Endpoint, req: &SipMessage, peer: Peer) -> Result<(), &'static str> {
    let Some(mut rx) = endpoint.client().send(req, peer) else {
        return Ok(());
    };
    while let Some(outcome) = rx.recv().await {
        match outcome {
            Outcome::Timeout => return Err(NO_ANSWER),
            Outcome::Response(resp) => match resp.code() {
                Some(408) => return Err(NO_ANSWER),
                Some(481) => return Err(FORGOTTEN),
                Some(code) if code >= 200 => return Ok(()),
                _ => {}
            },
        }
    }
    Err(NO_ANSWER)
}

/// Probes a dialog every `every` (zero: never) until it ends or its phone is gone: `next`
/// gives the next OPTIONS of the dialog and where it goes, from the relay's listening address
/// (None: the dialog is over). Some(why) when the phone is gone.
pub async fn keep_alive(
    every: std::time::Duration,
    endpoint: &WeakEndpoint,
    mut next: impl FnMut(outgoing::Listening) -> Option<(SipMessage, Peer)>,
) -> Option<&'static str> {
    if every.is_zero() {
        return None;
    }
    loop {
        tokio::time::sleep(every).await;
        let (req, peer) = next(endpoint.listen())?;
        let endpoint = endpoint.upgrade()?;
        if let Err(why) = probe(&endpoint, &req, peer).await {
            return Some(why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Transport;

    #[test]
    fn a_route_names_where_a_proxied_call_goes() {
        let tcp = route_peer("<sip:192.0.2.7:5070;transport=tcp;lr>");
        assert_eq!(
            tcp,
            Some(Peer {
                transport: Transport::Tcp,
                addr: SocketAddr::from(([192, 0, 2, 7], 5070)),
            })
        );
        let udp = route_peer("<sip:[2001:db8::1];lr>").map(|p| (p.transport, p.addr.port()));
        assert_eq!(udp, Some((Transport::Udp, 5060)));
        assert_eq!(route_peer("<sip:proxy.example.net;lr>"), None);
    }
}
