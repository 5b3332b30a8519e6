//! Where a registered SIP contact is reached: the binding's stored source and transport, and
//! the Path it registered with.

use std::net::{IpAddr, SocketAddr};

use restsip_sip::transport::{Peer, Transport};
use restsip_sip::uri::Uri;
use serde_json::Value;

use crate::store::ContactRecord;

/// Where a registered SIP contact is reached: the transport and source address its REGISTER
/// came from (so phones behind NAT are reached), else the host and port of its Contact URI.
/// Over TCP and TLS the source is used only while its connection is open (`open` tells), since a
/// phone's outgoing connection comes from a port nobody listens on once it closes.
pub fn contact_peer(contact: &ContactRecord, open: impl Fn(Peer) -> bool) -> Option<(Uri, Peer)> {
    let uri = Uri::parse(contact.contact.as_deref()?).ok()?;
    let route = contact.sip.as_ref();
    let transport = match route
        .and_then(|r| r.get("transport"))
        .and_then(Value::as_str)
    {
        Some(t) if t.eq_ignore_ascii_case("TCP") => Transport::Tcp,
        Some(t) if t.eq_ignore_ascii_case("TLS") => Transport::Tls,
        Some(_) => Transport::Udp,
        None => Transport::of_uri(uri.sip()?),
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
            SocketAddr::new(
                host.parse::<IpAddr>().ok()?,
                sip.port.unwrap_or(transport.default_port()),
            )
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
