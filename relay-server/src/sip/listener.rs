//! Binding the SIP address (UDP and TCP on the same port) and running the endpoint on it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use super::core::Core;

use super::endpoint::Endpoint;
use super::transport::tcp::{self, TcpLimits};
use super::transport::{udp, Transports};

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

    /// Starts receiving; the tasks run until aborted.
    pub fn run(
        self,
        core: Core,
        max_message: usize,
        limits: TcpLimits,
    ) -> (Endpoint, Vec<JoinHandle<()>>) {
        let udp = Arc::new(self.udp);
        let connections = tcp::Connections::new(limits);
        let wire = Arc::new(Transports {
            udp: udp.clone(),
            tcp: connections.clone(),
        });
        let endpoint = Endpoint::new(wire, core, max_message);
        connections.attach(&endpoint);
        let loops = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let mut tasks: Vec<JoinHandle<()>> = (0..loops)
            .map(|_| tokio::spawn(udp::receive(udp.clone(), endpoint.clone())))
            .collect();
        let tcp = self.tcp;
        tasks.push(tokio::spawn(async move { connections.accept(tcp).await }));
        (endpoint, tasks)
    }
}
