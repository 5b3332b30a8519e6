//! Binding the SIP address (UDP and TCP on the same port, and TLS on its own when asked) and
//! running the endpoint on it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use super::endpoint::{Endpoint, Handler, WeakEndpoint};
use super::transport::tcp::{self, TcpLimits};
use super::transport::tls::TlsSide;
use super::transport::{udp, Inbound, Transports};

/// Attempts at finding a port free for both UDP and TCP when port 0 is asked.
const PORT_ATTEMPTS: usize = 50;

/// UDP and TCP bound to the same address.
pub struct SipListeners {
    /// The UDP socket.
    udp: UdpSocket,
    /// The TCP listener.
    tcp: TcpListener,
    /// The address both are bound to.
    addr: SocketAddr,
    /// The TLS listener and its configurations, when TLS is on.
    tls: Option<(TcpListener, TlsSide)>,
}

impl SipListeners {
    /// Binds `addr` for UDP and TCP; with port 0, a port free for both.
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            let udp =
                udp::bind(addr).map_err(|e| anyhow::anyhow!("cannot listen on udp {addr}: {e}"))?;
            let bound = udp.local_addr()?;
            match TcpListener::bind(bound).await {
                Ok(tcp) => {
                    return Ok(Self {
                        udp,
                        tcp,
                        addr: bound,
                        tls: None,
                    })
                }
                // Port 0 gave a UDP port whose TCP twin is taken: try another.
                Err(e) if addr.port() == 0 => last = Some(e),
                Err(e) => anyhow::bail!("cannot listen on tcp {addr}: {e}"),
            }
        }
        anyhow::bail!("no port free for both udp and tcp on {addr}: {last:?}")
    }

    /// The address both transports listen on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds SIP over TLS on `addr` (port 0: a free one) with `side`'s configurations.
    pub async fn with_tls(mut self, addr: SocketAddr, side: TlsSide) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on tls {addr}: {e}"))?;
        self.tls = Some((listener, side));
        Ok(self)
    }

    /// The address TLS listens on, when it is on.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The endpoint on these listeners, answering with what `handler` builds (given a weak
    /// handle to the endpoint; `T` is whatever else it builds), and its receivers, which
    /// [`Receivers::spawn`] starts.
    pub fn endpoint<T>(
        self,
        max_message: usize,
        limits: TcpLimits,
        handler: impl FnOnce(&WeakEndpoint) -> (Box<dyn Handler>, T),
    ) -> (Endpoint, T, Receivers) {
        let listening = crate::outgoing::Listening {
            addr: self.addr,
            tls: self.tls_addr(),
        };
        let udp = Arc::new(self.udp);
        let mut connections = None;
        let mut secure = None;
        let (tls_listener, tls_side) = match self.tls {
            Some((l, side)) => (Some(l), Some(side)),
            None => (None, None),
        };
        let (endpoint, extra) = Endpoint::build(
            listening,
            max_message,
            |inbound| {
                let tls = tls_side.map(|side| tcp::Connections::tls(limits, inbound.clone(), side));
                secure = tls.clone();
                let tcp = tcp::Connections::new(limits, inbound);
                connections = Some(tcp.clone());
                Arc::new(Transports {
                    udp: udp.clone(),
                    tcp,
                    tls,
                })
            },
            handler,
        );
        let receivers = Receivers {
            inbound: endpoint.inbound(),
            udp,
            tcp: connections.map(|c| (c, self.tcp)),
            tls: secure.zip(tls_listener),
        };
        (endpoint, extra, receivers)
    }
}

/// The receiving side of the listeners, not yet started; it holds the endpoint.
pub struct Receivers {
    /// Where received messages go.
    inbound: Arc<dyn Inbound>,
    /// The UDP socket.
    udp: Arc<UdpSocket>,
    /// The TCP connections and their listener.
    tcp: Option<(tcp::Connections, TcpListener)>,
    /// The TLS connections and their listener, when TLS is on.
    tls: Option<(tcp::Connections, TcpListener)>,
}

impl Receivers {
    /// Starts receiving: a few UDP loops (one per core, up to four) and the TCP (and TLS)
    /// accept loops.
    /// The tasks run until aborted and keep the endpoint alive.
    pub fn spawn(self) -> Vec<JoinHandle<()>> {
        let loops = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let mut tasks: Vec<JoinHandle<()>> = (0..loops)
            .map(|_| tokio::spawn(udp::receive(self.udp.clone(), self.inbound.clone())))
            .collect();
        for (connections, listener) in self.tcp.into_iter().chain(self.tls) {
            tasks.push(tokio::spawn(
                async move { connections.accept(listener).await },
            ));
        }
        tasks
    }
}
