//! Where a registered SIP contact is reached: the binding's stored source and transport, and
//! the Path it registered with; or, for a binding whose flow another relay holds (several
//! relays over one store), that relay, named by a Route (RFC 3327 style).

use std::net::{IpAddr, SocketAddr, UdpSocket};

use restsip_sip::headers::NameAddr;
use restsip_sip::outgoing;
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

/// The binding field naming the relay that holds the phone's flow.
const OWNER: &str = "owner";

/// The Route entry naming this relay (listening on `listen`) as the holder of the flow of a
/// phone that registered from `from` (kept in the binding under `owner`, like a Path entry of
/// RFC 3327 with the `ob` flow mark of RFC 5626): the address the REGISTER reached, over UDP
/// for a phone on UDP, else over TCP (relays speak TCP to each other for TCP and TLS phones).
pub fn owner_route(listen: SocketAddr, from: Peer) -> String {
    let local = outgoing::local_addr(listen, from.addr);
    let transport = match from.transport {
        Transport::Udp => "",
        Transport::Tcp | Transport::Tls => ";transport=tcp",
    };
    format!("<sip:{}{transport};lr;ob>", outgoing::host_port(local))
}

/// Whether `at` is this relay's own SIP address (it listens on `listen`): the same port, and
/// the same IP address or, listening on every interface, one of the machine's.
pub fn is_here(at: SocketAddr, listen: SocketAddr) -> bool {
    at.port() == listen.port()
        && (at.ip() == listen.ip()
            || (listen.ip().is_unspecified() && UdpSocket::bind((at.ip(), 0)).is_ok()))
}

/// The relay holding `contact`'s flow when it is another one than this (listening on
/// `listen`): the Route naming it and where it listens.
fn elsewhere(contact: &ContactRecord, listen: SocketAddr) -> Option<(String, Peer)> {
    let owner = contact.sip.as_ref()?.get(OWNER)?.as_str()?;
    let uri = NameAddr::parse(owner).ok()?.uri;
    let sip = uri.sip()?;
    let host = sip.host.trim_start_matches('[').trim_end_matches(']');
    let transport = Transport::of_uri(sip);
    let addr = SocketAddr::new(
        host.parse::<IpAddr>().ok()?,
        sip.port.unwrap_or(transport.default_port()),
    );
    if is_here(addr, listen) {
        return None;
    }
    Some((owner.to_owned(), Peer { transport, addr }))
}

/// How a request reaches a registered contact.
#[derive(Debug, Clone)]
pub struct Hop {
    /// The Request-URI: the Contact.
    pub uri: Uri,
    /// Where the request is sent.
    pub peer: Peer,
    /// The Route set to put in it.
    pub routes: Vec<String>,
}

/// How a request from this relay (listening on `listen`) reaches `contact`: over the flow
/// when this relay holds it (see [`contact_peer`]; `open` tells its open connections), else
/// to the relay that does, with a Route naming it before the contact's Path; that relay
/// passes it on over the flow (`Proxy::route`).
pub fn contact_hop(
    contact: &ContactRecord,
    listen: SocketAddr,
    open: impl Fn(Peer) -> bool,
) -> Option<Hop> {
    if let Some((owner, peer)) = elsewhere(contact, listen) {
        let uri = Uri::parse(contact.contact.as_deref()?).ok()?;
        let routes = std::iter::once(owner)
            .chain(contact_routes(contact))
            .collect();
        return Some(Hop { uri, peer, routes });
    }
    let (uri, peer) = contact_peer(contact, open)?;
    Some(Hop {
        uri,
        peer,
        routes: contact_routes(contact),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use restsip_protocol::ContactSource;
    use serde_json::json;

    fn binding(route: Value) -> ContactRecord {
        ContactRecord {
            email: "bob@example.net".into(),
            id: 1,
            contact: Some("sip:bob@10.0.0.5:5062".into()),
            expires_at: i64::MAX,
            presence: None,
            source: ContactSource::Sip,
            sip: Some(route),
        }
    }

    #[test]
    fn a_binding_another_relay_holds_goes_there_with_a_route() {
        let a: SocketAddr = ([10, 0, 0, 1], 5070).into();
        let b: SocketAddr = ([10, 0, 0, 2], 5070).into();
        let phone = Peer {
            transport: Transport::Tcp,
            addr: ([10, 0, 0, 5], 40000).into(),
        };
        let owner = owner_route(a, phone);
        assert_eq!(owner, "<sip:10.0.0.1:5070;transport=tcp;lr;ob>");
        let record = binding(json!({
            "transport": "TCP", "source": "10.0.0.5:40000", "path": ["<sip:10.0.0.7;lr>"],
            "owner": owner,
        }));
        let hop = contact_hop(&record, b, |_| true).unwrap();
        assert_eq!(hop.peer.addr, a);
        assert_eq!(hop.peer.transport, Transport::Tcp);
        assert_eq!(
            hop.routes,
            vec![owner.clone(), "<sip:10.0.0.7;lr>".to_owned()]
        );
        assert_eq!(hop.uri.to_string(), "sip:bob@10.0.0.5:5062");
        // At A itself: over the flow, no Route to itself.
        let here = contact_hop(&record, a, |_| true).unwrap();
        assert_eq!(here.peer, phone);
        assert_eq!(here.routes, vec!["<sip:10.0.0.7;lr>".to_owned()]);
        // A binding stored before owners were kept: as before.
        let old = binding(json!({"transport": "UDP", "source": "10.0.0.5:5062"}));
        assert!(contact_hop(&old, b, |_| true).unwrap().routes.is_empty());
    }

    #[test]
    fn own_addresses_are_recognised() {
        let any: SocketAddr = ([0, 0, 0, 0], 5060).into();
        assert!(is_here(([127, 0, 0, 1], 5060).into(), any));
        assert!(!is_here(([127, 0, 0, 1], 5061).into(), any));
        assert!(!is_here(([192, 0, 2, 77], 5060).into(), any));
        let one: SocketAddr = ([127, 0, 0, 1], 5060).into();
        assert!(!is_here(([127, 0, 0, 2], 5060).into(), one));
    }
}
