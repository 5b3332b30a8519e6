//! Requests the relay originates (MESSAGE to a phone, NOTIFY to a subscriber): the relay's own
//! address toward a peer, fresh tokens and branches, and the headers of a new request.

use std::net::{SocketAddr, UdpSocket};

use super::message::{Method, SipMessage, StartLine};
use super::transaction::client::Outcome;
use super::transaction::MAGIC_COOKIE;
use super::transport::{Peer, Transport};
use super::uri::Uri;
use restsip_protocol::SipStatus;

/// Max-Forwards of requests the relay originates.
pub const MAX_FORWARDS: u8 = 70;

/// Where the relay listens: UDP and TCP on one address, TLS on its own when it is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listening {
    /// UDP and TCP.
    pub addr: SocketAddr,
    /// TLS, when on.
    pub tls: Option<SocketAddr>,
}

impl Listening {
    /// UDP and TCP only.
    pub fn plain(addr: SocketAddr) -> Self {
        Self { addr, tls: None }
    }

    /// The listening address of `transport` (TLS has its own port when on).
    pub fn on(self, transport: Transport) -> SocketAddr {
        match (transport, self.tls) {
            (Transport::Tls, Some(tls)) => tls,
            _ => self.addr,
        }
    }
}

/// The relay's address as `to` sees it: the listening address of `to`'s transport, or when
/// that is a wildcard (`0.0.0.0`, `[::]`) the local address the system would send from (no
/// packet is sent).
pub fn local_addr(listen: Listening, to: Peer) -> SocketAddr {
    let listen = listen.on(to.transport);
    if !listen.ip().is_unspecified() {
        return listen;
    }
    let any: SocketAddr = if to.addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    UdpSocket::bind(any)
        .and_then(|s| s.connect(to.addr).and_then(|()| s.local_addr()))
        .map(|a| SocketAddr::new(a.ip(), listen.port()))
        .unwrap_or(listen)
}

/// The relay's own URI toward `to` (for its Contact and Record-Route), with `user` when given:
/// `sip:HOST:PORT` over UDP, `;transport=tcp` over TCP, and over TLS its TLS address with
/// `;transport=tls`, or as `sips:` when `secure` (the request it answers or sends was for a
/// `sips:` URI, RFC 5630), so that requests within the dialog come back the same way.
pub fn own_uri(listen: Listening, to: Peer, user: Option<&str>, secure: bool) -> String {
    let local = local_addr(listen, to);
    let user = user.map_or(String::new(), |u| format!("{u}@"));
    match to.transport {
        Transport::Udp => format!("sip:{user}{local}"),
        Transport::Tcp => format!("sip:{user}{local};transport=tcp"),
        Transport::Tls if secure => format!("sips:{user}{local}"),
        Transport::Tls => format!("sip:{user}{local};transport=tls"),
    }
}

/// The relay's Contact toward `to` (a name-addr, see [`own_uri`]).
pub fn own_contact(listen: Listening, to: Peer, secure: bool) -> String {
    format!("<{}>", own_uri(listen, to, None, secure))
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
