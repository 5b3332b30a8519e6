//! UDP: one socket shared by a few receive loops (one per core, as many as the kernel spreads
//! datagrams over), each parsing and answering inline; sends never wait.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;

use super::{contained, Inbound, Peer, Transport};

/// Socket buffer asked of the kernel, so bursts are queued instead of dropped.
pub const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// Binds a UDP socket with large buffers.
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // Best effort: the kernel caps these at its own maximum.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Receives datagrams until the task is aborted.
pub async fn receive<I: Inbound + ?Sized>(socket: Arc<UdpSocket>, inbound: Arc<I>) {
    // One datagram at most 64 KiB; larger than any accepted message, so oversize ones are seen.
    let mut buf = vec![0u8; 65_536];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let from = Peer {
                    transport: Transport::Udp,
                    addr: from,
                };
                // A panic costs this datagram only; the loop goes on.
                contained(from, || inbound.datagram(&buf[..n], from));
            }
            Err(e) => {
                // ICMP errors surface here on some systems; never spin on a failing socket.
                tracing::debug!(error = %e, "UDP receive failed");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

/// Sends a datagram now, or from a task when the socket buffer is full.
pub fn send(socket: &Arc<UdpSocket>, to: SocketAddr, data: Bytes) {
    match socket.try_send_to(&data, to) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            let socket = socket.clone();
            tokio::spawn(async move {
                if let Err(e) = socket.send_to(&data, to).await {
                    tracing::debug!(error = %e, %to, "UDP send failed");
                }
            });
        }
        Err(e) => tracing::debug!(error = %e, %to, "UDP send failed"),
    }
}
