//! The egress guard: where users may make the relay connect. Webhook targets and `POST
//! /service` destinations are chosen by users, so unless `--allow-private-targets` says
//! otherwise they may not reach the relay's own network: loopback, unspecified, link-local,
//! private (RFC 1918, ULA), CGNAT, multicast, broadcast and other special-purpose addresses,
//! IPv4 embedded in IPv6 (mapped, NAT64, 6to4) of those, and any address of the relay's own
//! host (which includes every address it listens on). Names are checked after resolving, with
//! the system's resolver, so numeric spellings (`127.1`, `2130706433`, `0x7f.1`) are read as
//! the resolver reads them; and they are checked again when connecting ([`http`]'s resolver
//! for webhooks; `POST /service` sends to the very address it checked), so a name that
//! resolves elsewhere the second time (DNS rebinding) gains nothing.
//!
//! Targets the operator configures (`--soap-service`, `--sip-upstream`, `--rtpengine`) are
//! not checked: they are trusted settings and are usually on the relay's own network.

pub mod http;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a target was refused. The words never say which address or port was at fault, so that
/// refusals do not map the network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The target is (or resolves to) an address users may not reach.
    #[error("the target is not allowed: it is (or resolves to) a loopback, private, link-local, multicast or otherwise special-purpose address, or one of the relay's own")]
    Forbidden,
    /// The target's URL carries a user name or password.
    #[error("the target URL carries credentials (user:password@); put them elsewhere")]
    Credentials,
    /// The target's name does not resolve.
    #[error("the target's host name does not resolve")]
    Unresolvable,
}

/// The guard; cheap to clone.
#[derive(Debug, Clone, Copy, Default)]
pub struct Egress {
    /// `--allow-private-targets`: every address is allowed.
    allow_private: bool,
}

impl Egress {
    /// The guard; with `allow_private` every address is allowed.
    pub fn new(allow_private: bool) -> Self {
        Self { allow_private }
    }

    /// Whether users' targets may be at `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow_private || (is_public(ip) && !is_own(ip))
    }

    /// Checks a resolved target address.
    pub fn check(&self, addr: SocketAddr) -> Result<SocketAddr, Refused> {
        if self.allows(addr.ip()) {
            Ok(addr)
        } else {
            Err(Refused::Forbidden)
        }
    }

    /// Resolves `host` (a name or an address in any spelling the system resolver reads) with
    /// `port`: every address it has, all of which must be allowed.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|_| Refused::Unresolvable)?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(Refused::Unresolvable);
        }
        // One forbidden address refuses the name: which one a connection would use is not ours
        // to choose.
        for addr in &addrs {
            self.check(*addr)?;
        }
        Ok(addrs)
    }
}

/// Whether `ip` is an ordinary, globally reachable unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network": 0.0.0.0 and 0.x reach the host itself
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, cloud metadata services
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0/24
        || ip.is_documentation()
        || (a == 198 && (18..20).contains(&b)) // benchmarking 198.18/15
        || ip.is_multicast()
        || a >= 240) // reserved 240/4 and the broadcast address
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        // IPv4-compatible (deprecated), unspecified and loopback: ::/96.
        [0, 0, 0, 0, 0, 0, _, _] => false,
        // NAT64 well-known prefix 64:ff9b::/96: the embedded IPv4 address decides.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => is_public_v4(embedded(hi, lo)),
        // 6to4 2002::/16: likewise.
        [0x2002, hi, lo, ..] => is_public_v4(embedded(hi, lo)),
        _ => {
            let first = s[0];
            !((first == 0x64 && s[1] == 0xff9b) // local-use NAT64 64:ff9b:1::/48
                || (first == 0x100 && s[1..4] == [0, 0, 0]) // discard 100::/64
                || (first == 0x2001 && s[1] == 0) // Teredo 2001::/32
                || (first == 0x2001 && s[1] == 0xdb8) // documentation 2001:db8::/32
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
                || (first & 0xff00) == 0xff00) // multicast ff00::/8
        }
    }
}

/// Whether `ip` is an address of this host: a socket can be bound to it only then.
fn is_own(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn special_purpose_addresses_are_not_public() {
        for bad in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            "2001:db8::1",
            "2001:0:4136:e378::1",
            "100::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(!is_public(ip(bad)), "{bad}");
            assert!(!Egress::new(false).allows(ip(bad)), "{bad}");
            assert!(Egress::new(true).allows(ip(bad)), "{bad}");
        }
        for good in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "198.20.0.0",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public(ip(good)), "{good}");
        }
    }

    #[tokio::test]
    async fn numeric_spellings_are_read_as_the_resolver_reads_them() {
        let strict = Egress::new(false);
        for host in [
            "127.1",
            "2130706433",
            "0x7f.1",
            "0177.0.0.1",
            "localhost",
            "[::1]",
        ] {
            assert!(strict.resolve(host, 80).await.is_err(), "{host}");
        }
        let open = Egress::new(true);
        assert_eq!(
            open.resolve("2130706433", 80).await,
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], 80))])
        );
    }
}
