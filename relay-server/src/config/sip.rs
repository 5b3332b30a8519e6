//! SIP settings: listen address, realm, digest, TCP limits and the upstream server.

use std::net::SocketAddr;

use restsip_sip::digest::Algorithm;
use restsip_sip::transport::tcp::TcpLimits;

use crate::sipapp::upstream::Upstream;

/// SIP settings in force.
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// Where UDP and TCP listen; None when SIP is off.
    pub addr: Option<SocketAddr>,
    /// Digest realm.
    pub realm: String,
    /// Largest message accepted.
    pub max_message_bytes: usize,
    /// Whether REGISTER must authenticate.
    pub auth: bool,
    /// TCP connection limits and timeouts.
    pub tcp: TcpLimits,
    /// Digest algorithms offered, most preferred first.
    pub algorithms: Vec<Algorithm>,
    /// How long an INVITE to a web user waits for an answer (s).
    pub invite_timeout: u64,
    /// Seconds between OPTIONS probes in an answered call (0: none).
    pub call_keepalive: u64,
    /// Where requests to non-accounts go, if anywhere.
    pub upstream: Option<Upstream>,
    /// The per-source request rate limit; None when off.
    pub rate: Option<restsip_sip::pike::RateConfig>,
    /// Whom requests from other domains are taken from.
    pub foreign_from: crate::sipapp::sender::ForeignFrom,
}

/// Registrations at the upstream server: which users, with which credentials, how long.
#[derive(Debug, Default)]
pub(super) struct UpstreamUsers {
    /// `--sip-upstream-domain` values.
    pub(super) domains: Vec<String>,
    /// `--sip-upstream-account` values.
    pub(super) accounts: Vec<String>,
    /// `--sip-upstream-expires`.
    pub(super) expires: Option<u32>,
}

/// Default lifetime of registrations at the upstream server.
const UPSTREAM_EXPIRES: u32 = 600;

/// Fills in the registration settings of `upstream`, checked.
pub(super) fn resolve_upstream_users(
    upstream: Option<Upstream>,
    users: UpstreamUsers,
) -> anyhow::Result<Option<Upstream>> {
    let Some(mut upstream) = upstream else {
        anyhow::ensure!(
            users.domains.is_empty() && users.accounts.is_empty() && users.expires.is_none(),
            "sip-upstream-domain, sip-upstream-account and sip-upstream-expires need sip-upstream"
        );
        return Ok(None);
    };
    for domain in users.domains {
        let d = domain.trim().to_ascii_lowercase();
        anyhow::ensure!(
            !d.is_empty()
                && d.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.')),
            "sip-upstream-domain: {domain:?} is not a domain name"
        );
        upstream.domains.push(d);
    }
    for entry in users.accounts {
        let parsed = entry.split_once('=').and_then(|(email, creds)| {
            let (user, password) = creds.split_once(':')?;
            Some((email.trim(), user.trim(), password))
        });
        let Some((email, user, password)) = parsed.filter(|(e, u, p)| {
            e.contains('@') && !u.is_empty() && !p.is_empty() && !u.contains(['"', '\\'])
        }) else {
            anyhow::bail!("sip-upstream-account: an entry is not EMAIL=USER:PASSWORD");
        };
        upstream.accounts.insert(
            email.to_ascii_lowercase(),
            (user.to_owned(), password.to_owned()),
        );
    }
    let expires = users.expires.unwrap_or(UPSTREAM_EXPIRES);
    anyhow::ensure!(
        (10..=86_400).contains(&expires),
        "sip-upstream-expires must be from 10 to 86400 seconds"
    );
    upstream.expires = expires;
    Ok(Some(upstream))
}

/// The upstream setting, checked: a `sip:` URI without user part, credentials both or none.
pub(super) fn resolve_upstream(
    uri: Option<String>,
    user: Option<String>,
    password: Option<String>,
) -> anyhow::Result<Option<Upstream>> {
    let Some(uri) = uri.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()) else {
        anyhow::ensure!(
            user.is_none() && password.is_none(),
            "sip-upstream-user and sip-upstream-password need sip-upstream"
        );
        return Ok(None);
    };
    let parsed = restsip_sip::uri::Uri::parse(&uri)
        .map_err(|e| anyhow::anyhow!("sip-upstream: {uri:?} is not a URI: {e}"))?;
    let sip = parsed
        .sip()
        .ok_or_else(|| anyhow::anyhow!("sip-upstream: {uri:?} is not a sip: or sips: URI"))?;
    anyhow::ensure!(
        sip.user.is_none(),
        "sip-upstream: {uri:?} names a user; give the server's address"
    );
    if let Some(t) = sip.param("transport").flatten() {
        anyhow::ensure!(
            ["udp", "tcp", "tls"]
                .iter()
                .any(|known| t.eq_ignore_ascii_case(known)),
            "sip-upstream: transport {t:?} is not udp, tcp or tls"
        );
        anyhow::ensure!(
            !sip.secure || t.eq_ignore_ascii_case("tls"),
            "sip-upstream: a sips: URI is reached over tls only"
        );
    }
    let credentials = match (user, password) {
        (Some(u), Some(p)) => Some((u, p)),
        (None, None) => None,
        _ => anyhow::bail!("sip-upstream-user and sip-upstream-password go together"),
    };
    Ok(Some(Upstream {
        uri,
        credentials,
        domains: Vec::new(),
        accounts: std::collections::HashMap::new(),
        expires: UPSTREAM_EXPIRES,
    }))
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            addr: Some(SocketAddr::from(([127, 0, 0, 1], 5060))),
            realm: "restsip".to_owned(),
            max_message_bytes: 65_535,
            auth: true,
            tcp: TcpLimits::default(),
            algorithms: vec![Algorithm::Md5],
            invite_timeout: 60,
            call_keepalive: 30,
            upstream: None,
            rate: Some(restsip_sip::pike::RateConfig::default()),
            foreign_from: crate::sipapp::sender::ForeignFrom::Any,
        }
    }
}

pub(super) fn resolve_sip(
    addr: Option<String>,
    realm: Option<String>,
    max_message_bytes: Option<usize>,
    auth: Option<String>,
    algorithms: Option<String>,
) -> anyhow::Result<SipConfig> {
    let d = SipConfig::default();
    let addr = match addr.as_deref().map(str::trim) {
        None => d.addr,
        Some("off") => None,
        Some(a) => Some(
            a.parse()
                .map_err(|_| anyhow::anyhow!("sip: {a:?} is neither ADDR:PORT nor off"))?,
        ),
    };
    let auth = match auth.as_deref().map(str::trim) {
        None | Some("on" | "true") => true,
        Some("off" | "false") => false,
        Some(other) => anyhow::bail!("sip-auth: {other:?} must be on or off"),
    };
    let realm = realm.unwrap_or(d.realm);
    anyhow::ensure!(
        !realm.is_empty() && !realm.contains(['"', '\\', '\r', '\n']),
        "sip-realm must be non-empty text without quotes, backslashes or line breaks"
    );
    let max_message_bytes = max_message_bytes.unwrap_or(d.max_message_bytes);
    anyhow::ensure!(
        (1024..=65_535).contains(&max_message_bytes),
        "sip-max-message-bytes must be from 1024 to 65535"
    );
    let algorithms = match algorithms {
        None => d.algorithms,
        Some(list) => list
            .split(',')
            .map(|a| {
                Algorithm::parse(a.trim()).ok_or_else(|| {
                    anyhow::anyhow!("sip-digest-algorithms: {a:?} is neither MD5 nor SHA-256")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
    };
    anyhow::ensure!(
        !algorithms.is_empty(),
        "sip-digest-algorithms needs at least one algorithm"
    );
    Ok(SipConfig {
        addr,
        realm,
        max_message_bytes,
        auth,
        tcp: d.tcp,
        algorithms,
        invite_timeout: d.invite_timeout,
        call_keepalive: d.call_keepalive,
        upstream: None,
        rate: d.rate,
        foreign_from: d.foreign_from,
    })
}

pub(super) fn resolve_tcp(
    max_connections: Option<usize>,
    max_per_ip: Option<usize>,
    message_timeout: Option<u64>,
    idle_timeout: Option<u64>,
) -> anyhow::Result<TcpLimits> {
    let d = TcpLimits::default();
    let secs = std::time::Duration::from_secs;
    let limits = TcpLimits {
        max_connections: max_connections.unwrap_or(d.max_connections),
        max_per_ip: max_per_ip.unwrap_or(d.max_per_ip),
        message_timeout: message_timeout.map_or(d.message_timeout, secs),
        idle_timeout: idle_timeout.map_or(d.idle_timeout, secs),
    };
    anyhow::ensure!(
        limits.max_connections >= 1 && limits.max_per_ip >= 1,
        "sip-max-connections and sip-max-connections-per-ip must be at least 1"
    );
    anyhow::ensure!(
        (1..=3600).contains(&limits.message_timeout.as_secs()),
        "sip-message-timeout must be from 1 to 3600 seconds"
    );
    anyhow::ensure!(
        limits.idle_timeout >= limits.message_timeout,
        "sip-tcp-idle-timeout must be at least sip-message-timeout"
    );
    Ok(limits)
}
