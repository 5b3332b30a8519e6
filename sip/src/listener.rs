//! Binding the SIP address (UDP and TCP on the same port) and running the endpoint on it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use super::endpoint::{Endpoint, Handler, WeakEndpoint};
use super::transport::tcp::{self, TcpLimits};
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

    /// The endpoint on these listeners, answering with what `handler` builds (given a weak
    /// handle to the endpoint; `T` is whatever else it builds), and its receivers, which
    /// [`Receivers::spawn`] starts.
    pub fn endpoint<T>(
        self,
        max_message: usize,
        limits: TcpLimits,
        handler: impl FnOnce(&WeakEndpoint) -> (Box<dyn Handler>, T),
    ) -> (Endpoint, T, Receivers) {
        let udp = Arc::new(self.udp);
        let mut connections = None;
        let (endpoint, extra) = Endpoint::build(
            self.addr,
            max_message,
            |inbound| {
                let tcp = tcp::Connections::new(limits, inbound);
                connections = Some(tcp.clone());
                Arc::new(Transports {
                    udp: udp.clone(),
                    tcp,
                })
            },
            handler,
        );
        let receivers = Receivers {
            inbound: endpoint.inbound(),
            udp,
            tcp: connections.map(|c| (c, self.tcp)),
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
}

impl Receivers {
    /// Starts receiving: a few UDP loops (one per core, up to four) and the TCP accept loop.
    /// The tasks run until aborted and keep the endpoint alive.
    pub fn spawn(self) -> Vec<JoinHandle<()>> {
        let loops = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let mut tasks: Vec<JoinHandle<()>> = (0..loops)
            .map(|_| tokio::spawn(udp::receive(self.udp.clone(), self.inbound.clone())))
            .collect();
        if let Some((connections, listener)) = self.tcp {
            tasks.push(tokio::spawn(
                async move { connections.accept(listener).await },
            ));
        }
        tasks
    }
}
