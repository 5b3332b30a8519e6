//! Where a registered SIP contact is reached: the binding's stored source and transport, and
//! the Path it registered with.

use std::net::{IpAddr, SocketAddr};

use restsip_sip::transport::{Peer, Transport};
use restsip_sip::uri::Uri;
use serde_json::Value;

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
}
