//! Certificates for the TLS tests (a test CA and the certificates it issues, made with rcgen
//! and written as PEM files the relay reads), TLS clients trusting that CA, and `openssl
//! s_client` as an independent TLS peer for SIP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::WAIT;

/// A test certificate authority and the directory its files go to.
pub struct Pki {
    /// Holds the PEM files.
    dir: tempfile::TempDir,
    /// The CA's certificate.
    ca: rcgen::Certificate,
    /// The CA's key.
    ca_key: KeyPair,
}

/// A certificate the test CA issued, as files the relay reads.
pub struct Issued {
    /// The certificate chain file (PEM).
    pub cert: PathBuf,
    /// The key file (PEM).
    pub key: PathBuf,
    /// The certificate (DER), to recognise it in a handshake.
    pub der: Vec<u8>,
}

impl Pki {
    /// A fresh CA; its certificate is written to `ca.pem`.
    pub fn new() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "restsip test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate()?;
        let ca = params.self_signed(&ca_key)?;
        std::fs::write(dir.path().join("ca.pem"), ca.pem())?;
        Ok(Self { dir, ca, ca_key })
    }

    /// The CA certificate file (PEM), for `--tls-ca`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Issues a certificate for `names` (IP addresses or DNS names) and writes it and its key
    /// to `{file}.pem` and `{file}.key` (replacing what was there).
    pub fn issue(&self, file: &str, names: &[&str]) -> Result<Issued> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name.push(DnType::CommonName, file);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.ca, &self.ca_key)?;
        let issued = Issued {
            cert: self.dir.path().join(format!("{file}.pem")),
            key: self.dir.path().join(format!("{file}.key")),
            der: cert.der().to_vec(),
        };
        std::fs::write(&issued.cert, cert.pem())?;
        std::fs::write(&issued.key, key.serialize_pem())?;
        Ok(issued)
    }

    /// A TLS client configuration trusting this CA only.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.ca.der().clone())
            .expect("the test CA is a valid root");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Arc::new(config)
    }

    /// The certificate (DER) a new TLS connection to `addr` is shown, verified for
    /// 127.0.0.1 against this CA.
    pub async fn presented(&self, addr: SocketAddr) -> Result<Vec<u8>> {
        let connector = tokio_rustls::TlsConnector::from(self.client_config());
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let tls = tokio::time::timeout(WAIT, connector.connect(name, tcp)).await??;
        let (_, session) = tls.get_ref();
        let chain = session
            .peer_certificates()
            .ok_or_else(|| anyhow!("no certificate presented"))?;
        Ok(chain
            .first()
            .ok_or_else(|| anyhow!("an empty chain"))?
            .to_vec())
    }
}

/// `openssl s_client` connected to a SIP over TLS address: a real TLS peer (Debian's sipp has
/// no TLS), verifying the relay's certificate against `ca`. What it writes is sent as is;
/// what it reads comes back as SIP messages.
pub struct OpensslPeer {
    /// The process.
    child: Child,
    /// Its standard input: bytes sent over TLS.
    stdin: ChildStdin,
    /// Its standard output: bytes received over TLS.
    stdout: BufReader<tokio::process::ChildStdout>,
}

impl OpensslPeer {
    /// Connects to `to`, verifying its certificate against `ca` for 127.0.0.1.
    pub async fn connect(to: SocketAddr, ca: &Path) -> Result<Self> {
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &to.to_string(),
                "-CAfile",
                &ca.display().to_string(),
                "-verify_ip",
                &to.ip().to_string(),
                "-verify_return_error",
                "-quiet",
                "-no_ign_eof",
                // Else a line starting with R (REGISTER) asks for a renegotiation, Q quits.
                "-nocommands",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting openssl s_client (Debian package openssl)")?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        let stdout = BufReader::new(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?);
        // With -quiet, s_client reports the verified chain on stderr once connected.
        let mut stderr = BufReader::new(child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?);
        let mut said = String::new();
        tokio::time::timeout(WAIT, async {
            // `depth=0 ...` (the relay's certificate), then `verify return:1` when it is
            // trusted, or `verify error:...` and the end.
            let mut leaf = false;
            loop {
                let mut line = String::new();
                if stderr.read_line(&mut line).await? == 0 {
                    return Err(anyhow!("s_client ended: {said}"));
                }
                said.push_str(&line);
                if line.contains("error") {
                    return Err(anyhow!("s_client: {said}"));
                }
                if line.starts_with("depth=0") {
                    leaf = true;
                } else if leaf && line.starts_with("verify return:1") {
                    return Ok(());
                }
            }
        })
        .await
        .map_err(|_| anyhow!("s_client did not connect"))??;
        // Keep draining stderr.
        tokio::spawn(async move {
            let mut rest = Vec::new();
            let _ = stderr.read_to_end(&mut rest).await;
        });
        Ok(Self {
            child,
            stdin,
            stdout,
        })
    }

    /// Sends bytes over the TLS connection.
    pub async fn send(&mut self, data: &[u8]) -> Result<()> {
        self.stdin.write_all(data).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// The next SIP message received (head and body, by Content-Length) within [`WAIT`].
    pub async fn next_message(&mut self) -> Result<String> {
        self.next_within(WAIT)
            .await?
            .ok_or_else(|| anyhow!("no SIP message over TLS within {WAIT:?}"))
    }

    /// The next SIP message received within `wait`, None when none came (the connection
    /// still open).
    pub async fn next_within(&mut self, wait: Duration) -> Result<Option<String>> {
        let read = async {
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if self.stdout.read_line(&mut line).await? == 0 {
                    return Err(anyhow!("the TLS connection closed; got {head:?}"));
                }
                if line == "\r\n" && head.is_empty() {
                    continue; // a keep-alive
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    (name.eq_ignore_ascii_case("content-length") || name == "l")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            let mut body = vec![0; length];
            self.stdout.read_exact(&mut body).await?;
            head.push_str(&String::from_utf8_lossy(&body));
            Ok(head)
        };
        match tokio::time::timeout(wait, read).await {
            Ok(message) => message.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Whether the process is still running (its TLS connection open).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}
