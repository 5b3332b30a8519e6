//! Transports: where a message came from and how to send one back.

pub mod tcp;
pub mod tls;
pub mod udp;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::UdpSocket;

use crate::message::SipMessage;
use crate::parse::Rejected;

/// A SIP transport the relay speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// UDP: unreliable, so requests and some responses are retransmitted.
    Udp,
    /// TCP: reliable, messages framed by Content-Length.
    Tcp,
    /// TLS over TCP (RFC 3261 §26, RFC 5630): framed as TCP, encrypted, the peer's
    /// certificate verified when the relay connects.
    Tls,
}

impl Transport {
    /// True when the transport retransmits by itself (no SIP retransmissions needed).
    pub fn reliable(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }

    /// The name in Via headers.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The transport a `sip:`/`sips:` URI asks for: TLS for `sips:` or `transport=tls`, TCP
    /// for `transport=tcp`, else UDP (RFC 3263 without NAPTR: the relay resolves no SRV).
    pub fn of_uri(uri: &crate::uri::SipUri) -> Self {
        match uri.param("transport").flatten() {
            _ if uri.secure => Transport::Tls,
            Some(t) if t.eq_ignore_ascii_case("tls") => Transport::Tls,
            Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
            _ => Transport::Udp,
        }
    }

    /// The port a URI without one means (RFC 3261 §19.1.2).
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls => 5061,
            Transport::Udp | Transport::Tcp => 5060,
        }
    }

    /// The URI parameter that names it in a Contact or Record-Route (none for UDP).
    pub fn uri_param(self) -> &'static str {
        match self {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Tls => ";transport=tls",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A peer as the relay reaches it: transport and address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Peer {
    /// Transport.
    pub transport: Transport,
    /// Address (for TCP, the connection's remote address).
    pub addr: SocketAddr,
}

/// Sends bytes to peers; the transports implement it, and tests capture what would be sent.
pub trait Wire: Send + Sync + 'static {
    /// Sends one message, without waiting; errors are logged (SIP retransmits what matters).
    fn send(&self, to: Peer, data: Bytes);

    /// The name (DNS name or IP address) the TLS certificate of the peer at `addr` must carry
    /// when the relay connects to it; without one it is verified for its IP address.
    fn expect_name(&self, addr: SocketAddr, name: &str) {
        let _ = (addr, name);
    }

    /// Whether a connection to `to` is open (always true for UDP, which has none).
    fn is_open(&self, to: Peer) -> bool {
        let _ = to;
        true
    }
}

/// Where the transports hand what they receive (the endpoint, seen from below): transports
/// frame and read, the endpoint parses, answers and routes.
pub trait Inbound: Send + Sync + 'static {
    /// Largest message accepted (the stream framers' limit).
    fn max_message(&self) -> usize;
    /// One UDP datagram.
    fn datagram(&self, data: &[u8], from: Peer);
    /// A message a stream framer found, or why it could not be parsed.
    fn message(&self, parsed: Result<SipMessage, Rejected>, from: Peer);
    /// A double-CRLF keep-alive ping on a stream (RFC 5626 §4.4.1).
    fn ping(&self, from: Peer);
    /// A message over the size limit; the stream is closed after it.
    fn too_large(&self, partial: Option<Box<SipMessage>>, from: Peer);
    /// A message whose length cannot be framed; the stream is closed after it.
    fn bad_framing(&self, partial: Option<Box<SipMessage>>, from: Peer);
    /// A connection closed (told once, when it is gone).
    fn closed(&self, peer: Peer);
}

/// The relay's transports: one UDP socket and the TCP connections, on the same address, and
/// the TLS connections when TLS is on.
pub struct Transports {
    /// The UDP socket.
    pub udp: Arc<UdpSocket>,
    /// The TCP connections.
    pub tcp: tcp::Connections,
    /// The TLS connections (framed as TCP), when TLS is on.
    pub tls: Option<tcp::Connections>,
}

impl Wire for Transports {
    fn send(&self, to: Peer, data: Bytes) {
        crate::trace::sent(to.addr, to.transport.name(), &data);
        match to.transport {
            Transport::Udp => udp::send(&self.udp, to.addr, data),
            Transport::Tcp => self.tcp.send(to.addr, data),
            Transport::Tls => match &self.tls {
                Some(tls) => tls.send(to.addr, data),
                None => tracing::debug!(to = %to.addr, "TLS is off; message not sent"),
            },
        }
    }

    fn expect_name(&self, addr: SocketAddr, name: &str) {
        if let Some(tls) = &self.tls {
            tls.expect_name(addr, name);
        }
    }

    fn is_open(&self, to: Peer) -> bool {
        match to.transport {
            Transport::Udp => true,
            Transport::Tcp => self.tcp.is_open(to.addr),
            Transport::Tls => self.tls.as_ref().is_some_and(|t| t.is_open(to.addr)),
        }
    }
}

/// Runs the handling of one message from `from`, so that a panic in it costs that message
/// only: the receive loop or connection that called it goes on. The panic is logged with the
/// peer (the default hook has already printed where it happened). None when it panicked.
pub fn contained<R>(from: Peer, handle: impl FnOnce() -> R) -> Option<R> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(handle)) {
        Ok(r) => Some(r),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            tracing::error!(
                peer = %from.addr,
                transport = %from.transport,
                panic = %what,
                "handling a SIP message panicked; the message is dropped"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_while_handling_a_message_is_contained() {
        let peer = Peer {
            transport: Transport::Udp,
            addr: "127.0.0.1:5060".parse().expect("addr"),
        };
        assert_eq!(contained(peer, || 7), Some(7));
        let text = String::from("é");
        let sliced: Option<usize> = contained(peer, || text[..1].len());
        assert_eq!(sliced, None, "the panic is caught");
        assert_eq!(contained(peer, || "still here"), Some("still here"));
    }
}
