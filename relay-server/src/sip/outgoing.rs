//! Requests the relay originates (MESSAGE to a phone, NOTIFY to a subscriber): where a SIP
//! contact is reached, the relay's own address toward it, and the headers of a new request.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use serde_json::Value;

use super::message::{Method, SipMessage, StartLine};
use super::transaction::client::Outcome;
use super::transaction::MAGIC_COOKIE;
use super::transport::{Peer, Transport};
use super::uri::Uri;
use crate::store::ContactRecord;
use restsip_protocol::SipStatus;

/// Max-Forwards of requests the relay originates.
pub const MAX_FORWARDS: u8 = 70;

/// Where a registered SIP contact is reached: the transport and source address its REGISTER
/// came from (so phones behind NAT are reached), else the host and port of its Contact URI.
/// Over TCP the source is used only while its connection is open (`open` tells), since a
/// phone's outgoing connection comes from a port nobody listens on once it closes.
pub fn contact_peer(contact: &ContactRecord, open: impl Fn(Peer) -> bool) -> Option<(Uri, Peer)> {
    let uri = Uri::parse(contact.contact.as_deref()?).ok()?;
    let route = contact.sip.as_ref();
    let transport = match route
        .and_then(|r| r.get("transport"))
        .and_then(Value::as_str)
    {
        Some(t) if t.eq_ignore_ascii_case("TCP") => Transport::Tcp,
        Some(_) => Transport::Udp,
        None => match uri.sip().and_then(|u| u.param("transport")).flatten() {
            Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
            _ => Transport::Udp,
        },
    };
    let source = route
        .and_then(|r| r.get("source"))
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<SocketAddr>().ok())
        .filter(|&addr| open(Peer { transport, addr }));
    let addr = match source {
        Some(a) => a,
        None => {
            let sip = uri.sip()?;
            let host = sip.host.trim_start_matches('[').trim_end_matches(']');
            SocketAddr::new(host.parse::<IpAddr>().ok()?, sip.port.unwrap_or(5060))
        }
    };
    Some((uri, Peer { transport, addr }))
}

/// The Path a contact registered with: Route values for requests to it (RFC 3327).
pub fn contact_routes(contact: &ContactRecord) -> Vec<String> {
    contact
        .sip
        .as_ref()
        .and_then(|r| r.get("path"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The relay's address as `to` sees it: the listening address, or when that is a wildcard
/// (`0.0.0.0`, `[::]`) the local address the system would send from (no packet is sent).
pub fn local_addr(listen: SocketAddr, to: SocketAddr) -> SocketAddr {
    if !listen.ip().is_unspecified() {
        return listen;
    }
    let any: SocketAddr = if to.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    UdpSocket::bind(any)
        .and_then(|s| s.connect(to).and_then(|()| s.local_addr()))
        .map(|a| SocketAddr::new(a.ip(), listen.port()))
        .unwrap_or(listen)
}

/// `host:port` for Via and Call-ID, with brackets around IPv6.
pub fn host_port(addr: SocketAddr) -> String {
    addr.to_string()
}

/// A random token (branches, tags, Call-IDs).
pub fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A fresh branch with the RFC 3261 magic cookie.
pub fn branch() -> String {
    format!("{MAGIC_COOKIE}{}", token())
}

/// A new request to `uri` sent from `local` over `transport`: Via (fresh branch, `rport`),
/// Max-Forwards; the caller adds From, To, Call-ID, CSeq and the rest.
pub fn request(method: Method, uri: Uri, local: SocketAddr, transport: Transport) -> SipMessage {
    let mut msg = SipMessage {
        start: StartLine::Request { method, uri },
        headers: Vec::new(),
        body: Vec::new(),
    };
    msg.push(
        "Via",
        format!(
            "SIP/2.0/{} {};branch={};rport",
            transport.name(),
            host_port(local),
            branch()
        ),
    );
    msg.push("Max-Forwards", MAX_FORWARDS.to_string());
    msg
}

/// The final response of a client transaction as a delivery status (408 when none came).
pub async fn final_status(rx: Option<tokio::sync::mpsc::UnboundedReceiver<Outcome>>) -> SipStatus {
    let timeout = || SipStatus {
        code: 408,
        reason: "Request Timeout".into(),
    };
    let Some(mut rx) = rx else {
        return SipStatus {
            code: 503,
            reason: "Service Unavailable (request could not be sent)".into(),
        };
    };
    while let Some(outcome) = rx.recv().await {
        match outcome {
            Outcome::Response(resp) => match &resp.start {
                StartLine::Response { code, reason } if *code >= 200 => {
                    return SipStatus {
                        code: *code,
                        reason: reason.clone(),
                    }
                }
                _ => {}
            },
            Outcome::Timeout => return timeout(),
        }
    }
    timeout()
}
