//! TLS for HTTPS/WSS and SIP over TLS (rustls on ring): the relay's certificate, read from its
//! PEM files at start and again on SIGHUP (a new connection gets the new one; open ones keep
//! theirs), and the roots outgoing TLS trusts (Mozilla's, from webpki-roots, and `--tls-ca`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The relay's certificate and key, replaceable while it runs.
pub struct Certificate {
    /// The certificate chain file (PEM).
    cert: PathBuf,
    /// The private key file (PEM).
    key: PathBuf,
    /// What handshakes present.
    current: Arc<Current>,
}

/// The certificate handshakes present now.
struct Current(RwLock<Arc<CertifiedKey>>);

impl fmt::Debug for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the relay's certificate")
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// The crypto the relay uses: ring's.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a certificate chain and its key from PEM files, checked to belong together.
fn load(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| anyhow::anyhow!("tls-cert {}: {e}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("tls-cert {}: {e}", cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "tls-cert {}: no PEM certificate in it",
        cert.display()
    );
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("tls-key {}: {e}", key.display()))?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|e| {
        anyhow::anyhow!(
            "tls-key {} does not fit tls-cert {}: {e}",
            key.display(),
            cert.display()
        )
    })
}

impl Certificate {
    /// Reads the certificate and key files.
    pub fn open(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let loaded = load(cert, key)?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: Arc::new(Current(RwLock::new(Arc::new(loaded)))),
        })
    }

    /// Reads the files again; on an error the certificate in use stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let loaded = load(&self.cert, &self.key)?;
        *self.current.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
        Ok(())
    }

    /// A server configuration presenting this certificate (as it is at each handshake),
    /// offering the ALPN protocols given.
    pub fn server_config(&self, alpn: &[&[u8]]) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.current.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// Reloads the certificate on every SIGHUP, until the task is aborted. The signal is
    /// watched from this call on (SIGHUP's default would end the process).
    #[cfg(unix)]
    pub fn reload_on_sighup(self: Arc<Self>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup())
            .map_err(|e| anyhow::anyhow!("cannot watch SIGHUP to reload the certificate: {e}"))?;
        Ok(tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match self.reload() {
                    Ok(()) => {
                        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "TLS certificate not reloaded; the old one stays")
                    }
                }
            }
        }))
    }

    /// No SIGHUP here: the certificate is read at start only.
    #[cfg(not(unix))]
    pub fn reload_on_sighup(self: Arc<Self>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        Ok(tokio::spawn(async {}))
    }
}

/// The client configuration of outgoing TLS: Mozilla's roots and those in the `ca` files.
pub fn client_config(ca: &[PathBuf]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for file in ca {
        let certs = CertificateDer::pem_file_iter(file)
            .map_err(|e| anyhow::anyhow!("tls-ca {}: {e}", file.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("tls-ca {}: {e}", file.display()))?;
        anyhow::ensure!(
            !certs.is_empty(),
            "tls-ca {}: no PEM certificate in it",
            file.display()
        );
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| anyhow::anyhow!("tls-ca {}: {e}", file.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
