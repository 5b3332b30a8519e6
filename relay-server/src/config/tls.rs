//! TLS settings: the relay's certificate (HTTPS and WSS on the HTTP port, and SIP over TLS),
//! the SIP TLS address, and extra roots for outgoing TLS.

use std::net::SocketAddr;
use std::path::PathBuf;

/// TLS settings in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// The certificate chain file (PEM), when TLS is on.
    pub cert: Option<PathBuf>,
    /// Its private key file (PEM).
    pub key: Option<PathBuf>,
    /// Where SIP over TLS listens, if anywhere.
    pub sip: Option<SocketAddr>,
    /// Extra roots trusted by outgoing TLS (PEM files).
    pub ca: Vec<PathBuf>,
}

/// TLS settings as given.
#[derive(Debug, Default)]
pub(super) struct TlsSettings {
    /// `--tls-cert`.
    pub cert: Option<PathBuf>,
    /// `--tls-key`.
    pub key: Option<PathBuf>,
    /// `--sip-tls`.
    pub sip: Option<String>,
    /// `--tls-ca` values.
    pub ca: Vec<PathBuf>,
}

/// Checks the TLS settings (the files themselves are read when the relay starts).
pub(super) fn resolve_tls(s: TlsSettings, sip_on: bool) -> anyhow::Result<TlsConfig> {
    anyhow::ensure!(
        s.cert.is_some() == s.key.is_some(),
        "tls-cert and tls-key go together"
    );
    let sip = match s.sip.as_deref().map(str::trim) {
        None | Some("" | "off") => None,
        Some(a) => Some(
            a.parse::<SocketAddr>()
                .map_err(|_| anyhow::anyhow!("sip-tls: {a:?} is neither ADDR:PORT nor off"))?,
        ),
    };
    if sip.is_some() {
        anyhow::ensure!(
            s.cert.is_some(),
            "sip-tls needs the relay's certificate: tls-cert and tls-key"
        );
        anyhow::ensure!(sip_on, "sip-tls needs SIP (sip is off)");
    }
    anyhow::ensure!(
        s.ca.is_empty() || sip.is_some(),
        "tls-ca is for outgoing SIP over TLS: it needs sip-tls"
    );
    Ok(TlsConfig {
        cert: s.cert,
        key: s.key,
        sip,
        ca: s.ca,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_and_key_go_together_and_sip_tls_needs_them() {
        let files = || TlsSettings {
            cert: Some("c.pem".into()),
            key: Some("k.pem".into()),
            ..TlsSettings::default()
        };
        assert_eq!(
            resolve_tls(TlsSettings::default(), true).expect("none"),
            TlsConfig::default()
        );
        let half = TlsSettings {
            key: None,
            ..files()
        };
        assert!(resolve_tls(half, true).is_err());
        let sip = TlsSettings {
            sip: Some("127.0.0.1:5061".into()),
            ..files()
        };
        let on = resolve_tls(sip, true).expect("sip tls");
        assert_eq!(on.sip, Some(SocketAddr::from(([127, 0, 0, 1], 5061))));
        let bare = TlsSettings {
            sip: Some("127.0.0.1:5061".into()),
            ..TlsSettings::default()
        };
        assert!(resolve_tls(bare, true).is_err(), "no certificate");
        let bad = TlsSettings {
            sip: Some("tls-port".into()),
            ..files()
        };
        assert!(resolve_tls(bad, true).is_err());
        let no_sip = TlsSettings {
            sip: Some("127.0.0.1:5061".into()),
            ..files()
        };
        assert!(resolve_tls(no_sip, false).is_err(), "SIP is off");
        let ca_alone = TlsSettings {
            ca: vec!["ca.pem".into()],
            ..files()
        };
        assert!(
            resolve_tls(ca_alone, true).is_err(),
            "no SIP over TLS to use it"
        );
    }
}
