//! The upstream SIP server (`--sip-upstream`): an `im` SEND to an address that is not an account
//! of the relay goes out as a MESSAGE to `sip:{address}` with a Route to the upstream server,
//! sent to it; a digest challenge (401/407) is answered once with the configured credentials.

use std::net::{IpAddr, SocketAddr};

use restsip_protocol::SipStatus;
use serde_json::Value;

use super::endpoint::WeakEndpoint;
use super::message::{Method, SipMessage};
use super::outgoing;
use super::service_out::{respond, transact};
use super::transport::{Peer, Transport};
use super::uri::Uri;
use crate::config::Upstream;

/// Sends requests for non-accounts through the upstream server.
pub struct UpstreamSender {
    /// The server's URI, parsed.
    uri: Uri,
    /// Its Route value.
    route: String,
    /// Digest user name and password.
    credentials: Option<(String, String)>,
    /// The endpoint (weak: the endpoint's core holds the inbox that holds this).
    endpoint: WeakEndpoint,
    /// The address the SIP listeners are bound to.
    listen: SocketAddr,
}

fn status(code: u16, reason: &str) -> SipStatus {
    SipStatus {
        code,
        reason: reason.to_owned(),
    }
}

impl UpstreamSender {
    /// The sender for `config` (None when its URI does not parse, which the configuration
    /// already refused).
    pub fn new(config: &Upstream, endpoint: WeakEndpoint, listen: SocketAddr) -> Option<Self> {
        let uri = Uri::parse(&config.uri).ok()?;
        let sip = uri.sip()?;
        let route = if sip.param("lr").is_some() {
            format!("<{uri}>")
        } else {
            format!("<{uri};lr>")
        };
        Some(Self {
            uri,
            route,
            credentials: config.credentials.clone(),
            endpoint,
            listen,
        })
    }

    /// The upstream server's address and transport.
    async fn peer(&self) -> Option<Peer> {
        let sip = self.uri.sip()?;
        let transport = match sip.param("transport").flatten() {
            Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
            _ => Transport::Udp,
        };
        let host = sip.host.trim_start_matches('[').trim_end_matches(']');
        let port = sip.port.unwrap_or(5060);
        let addr = match host.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => tokio::net::lookup_host((host, port)).await.ok()?.next()?,
        };
        Some(Peer { transport, addr })
    }

    /// Sends an `im` SEND body from `sender` to `address` as a MESSAGE through the upstream
    /// server; its final response (408 without one).
    pub async fn message(&self, sender: &str, address: &str, body: &Value) -> SipStatus {
        let (content_type, text) = match super::im::payload(body) {
            Ok(p) => p,
            Err(s) => return s,
        };
        let Ok(target) = Uri::parse(&format!("sip:{}", super::im::sip_user(address))) else {
            return status(404, "Not Found (not a SIP address)");
        };
        let Some(peer) = self.peer().await else {
            return status(
                503,
                "Service Unavailable (cannot resolve the upstream server)",
            );
        };
        let local = outgoing::local_addr(self.listen, peer.addr);
        let from = format!(
            "<sip:{}>;tag={}",
            super::im::sip_user(sender),
            outgoing::token()
        );
        let call_id = format!("{}@{}", outgoing::token(), outgoing::host_port(local));
        let build = |cseq: u32, authorization: Option<(&'static str, String)>| {
            let mut msg: SipMessage =
                outgoing::request(Method::MESSAGE, target.clone(), local, peer.transport);
            msg.push("Route", self.route.clone());
            msg.push("From", from.clone());
            msg.push("To", format!("<{target}>"));
            msg.push("Call-ID", call_id.clone());
            msg.push("CSeq", format!("{cseq} MESSAGE"));
            if let Some((name, value)) = authorization {
                msg.push(name, value);
            }
            msg.push("Content-Type", content_type.to_owned());
            msg.body = text.as_bytes().to_vec();
            msg
        };
        let unavailable = || status(503, "Service Unavailable (SIP is stopping)");
        let Ok(mut response) = transact(&self.endpoint, &build(1, None), peer).await else {
            return unavailable();
        };
        let code = response.as_ref().and_then(SipMessage::code);
        if let (Some(code @ (401 | 407)), Some((user, password))) = (code, &self.credentials) {
            let (challenge, answer) = if code == 401 {
                ("WWW-Authenticate", "Authorization")
            } else {
                ("Proxy-Authenticate", "Proxy-Authorization")
            };
            let authorization = response.as_ref().and_then(|r| {
                r.headers_named(challenge)
                    .find_map(|c| respond(c, user, password, &target))
            });
            if let Some(value) = authorization {
                match transact(&self.endpoint, &build(2, Some((answer, value))), peer).await {
                    Ok(r) => response = r,
                    Err(_) => return unavailable(),
                }
            }
        }
        match response.as_ref().and_then(|r| match &r.start {
            super::message::StartLine::Response { code, reason } => Some((*code, reason)),
            super::message::StartLine::Request { .. } => None,
        }) {
            Some((code, reason)) => status(code, reason),
            None => status(408, "Request Timeout"),
        }
    }
}
