//! Where a registered SIP contact is reached: the binding's stored source and transport, and
//! the Path it registered with; or, for a binding whose flow another relay holds (several
//! relays over one store), that relay, named by a Route (RFC 3327 style).

use std::net::{IpAddr, SocketAddr, UdpSocket};

use restsip_sip::headers::NameAddr;
use restsip_sip::outgoing::{self, Listening};
use restsip_sip::transport::{Peer, Transport};
use restsip_sip::uri::Uri;
use serde_json::Value;

use crate::members::Members;
use crate::store::ContactRecord;

/// Why a registered contact cannot be reached.
pub const NO_ADDRESS: &str = "Temporarily Unavailable (no usable contact address)";
/// A `sips:` contact the relay could reach only without TLS (RFC 5630: never downgraded).
pub const SIPS_WITHOUT_TLS: &str = "Temporarily Unavailable (a sips: contact is reached over TLS only, and it registered without TLS)";
/// A contact whose connection closed, naming a host other than the one it registered from.
pub const ELSEWHERE: &str =
    "Temporarily Unavailable (the contact names another host than the one it registered from)";

/// Where a registered SIP contact is reached: the transport and source address its REGISTER
/// came from (so phones behind NAT are reached), else the host and port of its Contact URI.
/// Over TCP and TLS the source is used only while its connection is open (`open` tells), since a
/// phone's outgoing connection comes from a port nobody listens on once it closes; the Contact's
/// address is then used only when it is on the host the REGISTER came from, so a registration
/// cannot make the relay connect to a third host (an address the registrant chose). A `sips:`
/// contact is reached over TLS only: one that registered over UDP or TCP is refused
/// (`SIPS_WITHOUT_TLS`) rather than downgraded. Err holds the reason phrase of the 480.
pub fn contact_peer(
    contact: &ContactRecord,
    open: impl Fn(Peer) -> bool,
) -> Result<(Uri, Peer), &'static str> {
    let uri = Uri::parse(contact.contact.as_deref().ok_or(NO_ADDRESS)?).map_err(|_| NO_ADDRESS)?;
    let sip = uri.sip().ok_or(NO_ADDRESS)?;
    let route = contact.sip.as_ref();
    let transport = match route
        .and_then(|r| r.get("transport"))
        .and_then(Value::as_str)
    {
        Some(t) if t.eq_ignore_ascii_case("TCP") => Transport::Tcp,
        Some(t) if t.eq_ignore_ascii_case("TLS") => Transport::Tls,
        Some(_) => Transport::Udp,
        None => Transport::of_uri(sip),
    };
    if sip.secure && transport != Transport::Tls {
        return Err(SIPS_WITHOUT_TLS);
    }
    let registered_from = route
        .and_then(|r| r.get("source"))
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<SocketAddr>().ok());
    let addr = match registered_from.filter(|&addr| open(Peer { transport, addr })) {
        Some(a) => a,
        None => {
            let host = sip.host.trim_start_matches('[').trim_end_matches(']');
            let ip = host.parse::<IpAddr>().map_err(|_| NO_ADDRESS)?;
            if registered_from.is_some_and(|from| from.ip() != ip) {
                return Err(ELSEWHERE);
            }
            SocketAddr::new(ip, sip.port.unwrap_or(transport.default_port()))
        }
    };
    Ok((uri, Peer { transport, addr }))
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
/// The binding field naming, in a cluster, the node of the relay that holds the phone's flow.
pub const OWNER_NODE: &str = "node";

/// A binding whose flow a relay of the cluster held that is gone (killed, crashed): nothing
/// reaches the phone until it registers again (at another relay).
pub const OWNER_GONE: &str = "Temporarily Unavailable (the relay holding its connection is gone; it is reached again once it registers anew)";

/// A `sips:` contact whose flow another relay holds: relays pass requests to each other over
/// UDP or TCP, so it would not be reached over TLS on every hop (RFC 5630).
pub const SIPS_ACROSS_RELAYS: &str = "Temporarily Unavailable (a sips: contact is reached over TLS only, and another relay holds its connection)";

/// The Route entry naming this relay (listening on `listen`) as the holder of the flow of a
/// phone that registered from `from` (kept in the binding under `owner`, like a Path entry of
/// RFC 3327 with the `ob` flow mark of RFC 5626): the address the REGISTER reached, over UDP
/// for a phone on UDP, else over TCP (relays speak TCP to each other for TCP and TLS phones).
pub fn owner_route(listen: Listening, from: Peer) -> String {
    let (transport, param) = match from.transport {
        Transport::Udp => (Transport::Udp, ""),
        Transport::Tcp | Transport::Tls => (Transport::Tcp, ";transport=tcp"),
    };
    let local = outgoing::local_addr(
        listen,
        Peer {
            transport,
            addr: from.addr,
        },
    );
    format!("<sip:{}{param};lr;ob>", outgoing::host_port(local))
}

/// Whether `at` is this relay's own SIP address (it listens on `listen`, UDP and TCP or TLS):
/// the same port, and the same IP address or, listening on every interface, one of the
/// machine's.
pub fn is_here(at: SocketAddr, listen: Listening) -> bool {
    [Some(listen.addr), listen.tls]
        .into_iter()
        .flatten()
        .any(|l| {
            at.port() == l.port()
                && (at.ip() == l.ip()
                    || (l.ip().is_unspecified() && UdpSocket::bind((at.ip(), 0)).is_ok()))
        })
}

/// The relay holding `contact`'s flow when it is another one than this (listening on
/// `listen`): the Route naming it and where it listens.
fn elsewhere(contact: &ContactRecord, listen: Listening) -> Option<(String, Peer)> {
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
/// when this relay holds it (see [`contact_peer`], with its checks and reasons; `open` tells
/// its open connections), else to the relay that does, with a Route naming it before the
/// contact's Path; that relay passes it on over the flow (`Proxy::route`, which checks the
/// binding with [`contact_peer`] again). A `sips:` contact another relay holds is refused
/// (`SIPS_ACROSS_RELAYS`), and so is one whose relay `members` knows is gone (`OWNER_GONE`).
/// Err holds the reason phrase of the 480.
pub fn contact_hop(
    contact: &ContactRecord,
    listen: Listening,
    open: impl Fn(Peer) -> bool,
    members: &Members,
) -> Result<Hop, &'static str> {
    if let Some((owner, peer)) = elsewhere(contact, listen) {
        let node = contact
            .sip
            .as_ref()
            .and_then(|s| s.get(OWNER_NODE)?.as_str());
        if node.is_some_and(|n| members.is_gone(n)) {
            return Err(OWNER_GONE);
        }
        let uri =
            Uri::parse(contact.contact.as_deref().ok_or(NO_ADDRESS)?).map_err(|_| NO_ADDRESS)?;
        if uri.sip().ok_or(NO_ADDRESS)?.secure {
            return Err(SIPS_ACROSS_RELAYS);
        }
        let routes = std::iter::once(owner)
            .chain(contact_routes(contact))
            .collect();
        return Ok(Hop { uri, peer, routes });
    }
    let (uri, peer) = contact_peer(contact, open)?;
    Ok(Hop {
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

    fn binding(contact: &str, transport: &str, source: &str) -> ContactRecord {
        ContactRecord {
            email: "a@x".into(),
            id: 1,
            contact: Some(contact.into()),
            expires_at: i64::MAX,
            presence: None,
            source: ContactSource::Sip,
            sip: Some(json!({"transport": transport, "source": source})),
        }
    }

    #[test]
    fn an_open_flow_is_used_and_a_closed_one_falls_back_to_the_same_host_only() {
        let phone = binding(
            "sip:p@192.0.2.7:5070;transport=tcp",
            "TCP",
            "192.0.2.7:40000",
        );
        let (_, peer) = contact_peer(&phone, |_| true).unwrap();
        assert_eq!(peer.addr, "192.0.2.7:40000".parse().unwrap());
        let (_, peer) = contact_peer(&phone, |_| false).unwrap();
        assert_eq!(peer.addr, "192.0.2.7:5070".parse().unwrap());
        assert_eq!(peer.transport, Transport::Tcp);

        // A Contact naming a third host (the metadata service, a database) is not connected to.
        for elsewhere in [
            "sip:p@169.254.169.254:80;transport=tcp",
            "sip:p@127.0.0.1:5432;transport=tcp",
            "sip:p@192.0.2.8:5070;transport=tcp",
        ] {
            let phone = binding(elsewhere, "TCP", "192.0.2.7:40000");
            assert_eq!(contact_peer(&phone, |_| false).unwrap_err(), ELSEWHERE);
            assert!(
                contact_peer(&phone, |_| true).is_ok(),
                "its open flow is fine"
            );
        }
    }

    #[test]
    fn a_sips_contact_is_reached_over_tls_only() {
        for transport in ["UDP", "TCP"] {
            let phone = binding("sips:p@192.0.2.7:5061", transport, "192.0.2.7:40000");
            assert_eq!(
                contact_peer(&phone, |_| true).unwrap_err(),
                SIPS_WITHOUT_TLS
            );
        }
        let phone = binding("sips:p@192.0.2.7:5061", "TLS", "192.0.2.7:40000");
        let (_, peer) = contact_peer(&phone, |_| true).unwrap();
        assert_eq!(peer.transport, Transport::Tls);
        assert_eq!(
            contact_peer(&binding("not a uri", "UDP", "192.0.2.7:1"), |_| true).unwrap_err(),
            NO_ADDRESS
        );
    }

    fn bound(route: Value) -> ContactRecord {
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
        let a = Listening::plain(([10, 0, 0, 1], 5070).into());
        let b = Listening::plain(([10, 0, 0, 2], 5070).into());
        let phone = Peer {
            transport: Transport::Tcp,
            addr: ([10, 0, 0, 5], 40000).into(),
        };
        let owner = owner_route(a, phone);
        assert_eq!(owner, "<sip:10.0.0.1:5070;transport=tcp;lr;ob>");
        let record = bound(json!({
            "transport": "TCP", "source": "10.0.0.5:40000", "path": ["<sip:10.0.0.7;lr>"],
            "owner": owner,
        }));
        let hop = contact_hop(&record, b, |_| true, &Members::default()).unwrap();
        assert_eq!(hop.peer.addr, a.addr);
        assert_eq!(hop.peer.transport, Transport::Tcp);
        assert_eq!(
            hop.routes,
            vec![owner.clone(), "<sip:10.0.0.7;lr>".to_owned()]
        );
        assert_eq!(hop.uri.to_string(), "sip:bob@10.0.0.5:5062");
        // At A itself: over the flow, no Route to itself.
        let here = contact_hop(&record, a, |_| true, &Members::default()).unwrap();
        assert_eq!(here.peer, phone);
        assert_eq!(here.routes, vec!["<sip:10.0.0.7;lr>".to_owned()]);
        // At A, the local checks hold and their reasons come back: a closed flow whose
        // Contact names another host than the one it registered from is refused.
        let far = bound(json!({"transport": "TCP", "source": "10.0.0.9:40000", "owner": owner}));
        assert_eq!(
            contact_hop(&far, a, |_| false, &Members::default()).unwrap_err(),
            ELSEWHERE
        );
        // A sips: contact over TLS: reached at A; from B it would cross relays over TCP.
        let mut tls =
            bound(json!({"transport": "TLS", "source": "10.0.0.5:40000", "owner": owner}));
        tls.contact = Some("sips:bob@10.0.0.5:5061".into());
        assert_eq!(
            contact_hop(&tls, a, |_| true, &Members::default())
                .unwrap()
                .peer
                .transport,
            Transport::Tls
        );
        assert_eq!(
            contact_hop(&tls, b, |_| true, &Members::default()).unwrap_err(),
            SIPS_ACROSS_RELAYS
        );
        // A binding stored before owners were kept: as before.
        let old = bound(json!({"transport": "UDP", "source": "10.0.0.5:5062"}));
        assert!(contact_hop(&old, b, |_| true, &Members::default())
            .unwrap()
            .routes
            .is_empty());
        // In a cluster, owned by node `a`: refused at once from B when `a` is gone; A itself
        // (back) still reaches its own.
        let named = bound(json!({
            "transport": "UDP", "source": "10.0.0.5:5062", "owner": owner, "node": "a",
        }));
        let at_b = Members::clustered("b");
        assert!(contact_hop(&named, b, |_| true, &at_b).is_ok());
        let stale = crate::store::Lease {
            name: "slot/0".into(),
            holder: "a".into(),
            until: 60_000,
        };
        assert_eq!(at_b.update(&[stale], 10_000, 60_000, 4_000), vec!["a"]);
        assert_eq!(
            contact_hop(&named, b, |_| true, &at_b).unwrap_err(),
            OWNER_GONE
        );
        assert!(contact_hop(&named, a, |_| true, &at_b).is_ok());
    }

    #[test]
    fn own_addresses_are_recognised() {
        let any = Listening::plain(([0, 0, 0, 0], 5060).into());
        assert!(is_here(([127, 0, 0, 1], 5060).into(), any));
        assert!(!is_here(([127, 0, 0, 1], 5061).into(), any));
        assert!(!is_here(([192, 0, 2, 77], 5060).into(), any));
        let one = Listening {
            addr: ([127, 0, 0, 1], 5060).into(),
            tls: Some(([127, 0, 0, 1], 5061).into()),
        };
        assert!(is_here(([127, 0, 0, 1], 5061).into(), one));
        assert!(!is_here(([127, 0, 0, 2], 5060).into(), one));
    }
}
