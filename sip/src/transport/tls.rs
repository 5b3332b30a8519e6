//! SIP over TLS (RFC 3261 §26, RFC 5630): the TLS session of a connection the TCP transport
//! frames. Accepted connections present the relay's certificate (its server configuration,
//! whose certificate the application may replace at any time); connections the relay opens
//! verify the peer's certificate for the name it was reached by, or its IP address.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

/// Most names remembered for peers the relay connects to.
const MAX_NAMES: usize = 4096;

/// The TLS configurations of the SIP TLS transport.
pub struct TlsSide {
    /// Server side: the relay's certificate.
    acceptor: TlsAcceptor,
    /// Client side: the roots trusted.
    connector: TlsConnector,
    /// The names peers were reached by (a host name resolved to this address).
    names: Mutex<HashMap<SocketAddr, ServerName<'static>>>,
}

impl TlsSide {
    /// The TLS side with this server and client configuration.
    pub fn new(server: Arc<rustls::ServerConfig>, client: Arc<rustls::ClientConfig>) -> Self {
        Self {
            acceptor: TlsAcceptor::from(server),
            connector: TlsConnector::from(client),
            names: Mutex::default(),
        }
    }

    /// Remembers that the peer at `addr` is `name` (a DNS name or an IP address): its
    /// certificate is verified for it.
    pub fn expect_name(&self, addr: SocketAddr, name: &str) {
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let Ok(name) = ServerName::try_from(name.to_owned()) else {
            return;
        };
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if names.len() >= MAX_NAMES && !names.contains_key(&addr) {
            names.clear();
        }
        names.insert(addr, name);
    }

    /// The TLS handshake of an accepted connection.
    pub async fn accept(&self, stream: TcpStream) -> io::Result<server::TlsStream<TcpStream>> {
        self.acceptor.accept(stream).await
    }

    /// The TLS handshake of a connection to `to`, its certificate verified for the name it
    /// was reached by, else for its IP address.
    pub async fn connect(
        &self,
        to: SocketAddr,
        stream: TcpStream,
    ) -> io::Result<client::TlsStream<TcpStream>> {
        let name = self
            .names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&to)
            .cloned()
            .unwrap_or_else(|| ServerName::IpAddress(to.ip().into()));
        self.connector.connect(name, stream).await
    }
}
