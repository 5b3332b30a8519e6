//! TCP: each connection has a reader that frames messages by Content-Length and a writer that
//! sends whatever has gathered in the connection's outbox in one write; responses go back on
//! the connection the request came on, or on a new one to the same address when it has closed
//! (RFC 3261 §18.2.2). Nothing queued is dropped: while more than [`PAUSE_AT`] bytes wait for
//! a peer, the relay reads no more of its requests (TCP's flow control then slows the peer),
//! and a peer that still falls [`MAX_PENDING`] behind (messages from elsewhere for it) loses
//! the connection, which its transactions see. TLS connections ([`Connections::tls`]) are
//! these with a TLS session between the socket and the framer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::tls::TlsSide;
use super::{contained, Inbound, Peer, Transport};
use crate::framing::{Frame, FramingError, StreamFramer};
use crate::per_ip::{IpSlot, PerIp};

/// Bytes waiting for one connection past which its requests are not read until the writer
/// has taken them.
pub const PAUSE_AT: usize = 256 * 1024;
/// Bytes that may wait for one connection; past it the peer is not reading, and the
/// connection is closed.
pub const MAX_PENDING: usize = 2 * 1024 * 1024;
/// How long connecting to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Limits of SIP over TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most connections open at once from one IP address.
    pub max_per_ip: usize,
    /// Time a message has to arrive whole, from its first byte (the first one: from the start).
    pub message_timeout: std::time::Duration,
    /// Time a connection may stay silent.
    pub idle_timeout: std::time::Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_per_ip: 256,
            message_timeout: std::time::Duration::from_secs(10),
            idle_timeout: std::time::Duration::from_secs(7200),
        }
    }
}

/// The open connections by remote address; cheap to clone.
#[derive(Clone)]
pub struct Connections {
    /// Shared state.
    inner: Arc<Inner>,
}

struct Inner {
    /// Connection limits and timeouts.
    limits: TcpLimits,
    /// Accepted connections open, by remote IP address.
    per_ip: PerIp,
    /// Writer queues by remote address, with a serial number per connection.
    writers: Mutex<HashMap<SocketAddr, (u64, Arc<Outbox>)>>,
    /// Serial numbers of connections.
    serial: std::sync::atomic::AtomicU64,
    /// Where received messages go (weak: the endpoint owns these connections).
    inbound: Weak<dyn Inbound>,
    /// The TLS side, when these are TLS connections.
    tls: Option<Arc<TlsSide>>,
}

impl Connections {
    /// Connections under `limits`, handing what they receive to `inbound`.
    pub fn new(limits: TcpLimits, inbound: Weak<dyn Inbound>) -> Self {
        Self::build(limits, inbound, None)
    }

    /// TLS connections under `limits`: accepted ones shake hands with `tls`'s server
    /// configuration (within the message timeout), new ones verify the peer's certificate.
    pub fn tls(limits: TcpLimits, inbound: Weak<dyn Inbound>, tls: TlsSide) -> Self {
        Self::build(limits, inbound, Some(Arc::new(tls)))
    }

    fn build(limits: TcpLimits, inbound: Weak<dyn Inbound>, tls: Option<Arc<TlsSide>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                limits,
                per_ip: PerIp::new(limits.max_per_ip),
                writers: Mutex::default(),
                serial: std::sync::atomic::AtomicU64::default(),
                inbound,
                tls,
            }),
        }
    }

    /// The transport these connections carry.
    fn transport(&self) -> Transport {
        if self.inner.tls.is_some() {
            Transport::Tls
        } else {
            Transport::Tcp
        }
    }

    /// The name the certificate of the peer at `addr` must carry when the relay connects to
    /// it over TLS (without one, its IP address); nothing for plain TCP.
    pub fn expect_name(&self, addr: SocketAddr, name: &str) {
        if let Some(tls) = &self.inner.tls {
            tls.expect_name(addr, name);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, (u64, Arc<Outbox>)>> {
        self.inner.writers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a connection to `to` is open.
    pub fn is_open(&self, to: SocketAddr) -> bool {
        self.lock().get(&to).is_some_and(|(_, w)| w.is_open())
    }

    /// Queues `data` for the connection to `to`, connecting first if there is none.
    pub fn send(&self, to: SocketAddr, data: Bytes) {
        let writer = self.lock().get(&to).map(|(_, w)| w.clone());
        match writer {
            Some(w) => {
                if !w.push(&data) {
                    tracing::debug!(%to, "TCP connection closed; message not sent");
                }
            }
            None => {
                let conns = self.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(CONNECT_TIMEOUT, conns.connect(to)).await {
                        Ok(Some(w)) => {
                            w.push(&data);
                        }
                        _ => tracing::debug!(%to, "cannot connect to send a SIP message"),
                    }
                });
            }
        }
    }

    /// A new connection to `to` (with TLS: its certificate verified), started.
    async fn connect(&self, to: SocketAddr) -> Option<Arc<Outbox>> {
        let stream = TcpStream::connect(to).await.ok()?;
        let _ = stream.set_nodelay(true);
        match &self.inner.tls {
            None => {
                let (reader, writer) = stream.into_split();
                self.open(reader, writer, to, None)
            }
            Some(tls) => match tls.connect(to, stream).await {
                Ok(stream) => {
                    let (reader, writer) = tokio::io::split(stream);
                    self.open(reader, writer, to, None)
                }
                Err(e) => {
                    tracing::warn!(%to, error = %e, "SIP TLS connection refused");
                    None
                }
            },
        }
    }

    /// Starts an accepted connection (after its TLS handshake, given the message timeout,
    /// in a task of its own so that no peer holds up the accept loop).
    fn start_accepted(&self, stream: TcpStream, addr: SocketAddr, slot: IpSlot) {
        let _ = stream.set_nodelay(true);
        match &self.inner.tls {
            None => {
                let (reader, writer) = stream.into_split();
                self.open(reader, writer, addr, Some(slot));
            }
            Some(tls) => {
                let (conns, tls) = (self.clone(), tls.clone());
                let due = self.inner.limits.message_timeout;
                tokio::spawn(async move {
                    match tokio::time::timeout(due, tls.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let (reader, writer) = tokio::io::split(stream);
                            conns.open(reader, writer, addr, Some(slot));
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%addr, error = %e, "SIP TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%addr, "SIP TLS handshake not done in time"),
                    }
                });
            }
        }
    }

    /// Accepts connections until the task is aborted.
    pub async fn accept(&self, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, addr)) => {
                    if self.len() >= self.inner.limits.max_connections {
                        tracing::warn!(%addr, "too many SIP connections; closing a new one");
                        continue;
                    }
                    let Some(slot) = self.inner.per_ip.take(addr.ip()) else {
                        tracing::debug!(%addr, "too many SIP connections from one address; closing a new one");
                        continue;
                    };
                    self.start_accepted(stream, addr, slot);
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "SIP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Starts the reader and writer of a connection; returns its outbox. An accepted
    /// connection holds its `slot` in its address's count, and must send its first message
    /// within the message timeout.
    fn open<R, W>(
        &self,
        reader: R,
        writer: W,
        addr: SocketAddr,
        slot: Option<IpSlot>,
    ) -> Option<Arc<Outbox>>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let inbound = self.inner.inbound.upgrade()?;
        let outbox = Arc::new(Outbox::default());
        let serial = self
            .inner
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.lock().insert(addr, (serial, outbox.clone()));
        tokio::spawn(write(writer, addr, outbox.clone()));
        let conns = self.clone();
        let closing = outbox.clone();
        let limits = self.inner.limits;
        let accepted = slot.is_some();
        let peer = Peer {
            transport: self.transport(),
            addr,
        };
        tokio::spawn(async move {
            let _slot = slot;
            read(reader, peer, &*inbound, &closing, limits, accepted).await;
            // The writer sends what is queued, then closes.
            closing.close();
            let current = {
                let mut writers = conns.lock();
                let current = writers.get(&addr).is_some_and(|(s, _)| *s == serial);
                if current {
                    writers.remove(&addr);
                }
                current
            };
            if current {
                inbound.closed(peer);
            }
        });
        Some(outbox)
    }
}

/// What waits to be written to one connection.
#[derive(Default)]
pub struct Outbox {
    /// The bytes and whether more may come.
    state: Mutex<OutboxState>,
    /// Wakes the writer.
    ready: Notify,
    /// Wakes the reader once the writer is gone.
    broken: Notify,
    /// Wakes the reader once the writer has taken what waited.
    drained: Notify,
}

#[derive(Default)]
struct OutboxState {
    /// Messages not yet written, in order.
    pending: BytesMut,
    /// No more will be queued: the reader ended (the writer sends what is here, then closes).
    closed: bool,
    /// The writer is gone (the connection broke or the peer stopped reading).
    gone: bool,
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, OutboxState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a message; false when the connection is closing or gone. Past [`MAX_PENDING`]
    /// the connection is given up.
    pub fn push(&self, data: &[u8]) -> bool {
        let mut state = self.lock();
        if state.closed || state.gone {
            return false;
        }
        if state.pending.len() + data.len() > MAX_PENDING {
            state.gone = true;
            state.pending = BytesMut::new();
            drop(state);
            self.ready.notify_one();
            return false;
        }
        state.pending.extend_from_slice(data);
        drop(state);
        self.ready.notify_one();
        true
    }

    /// No more messages: the writer sends what is queued, then closes.
    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// Whether messages can still be sent.
    fn is_open(&self) -> bool {
        let state = self.lock();
        !state.closed && !state.gone
    }
}

/// Writes what gathers in `outbox`, all of it at once, until it is closed and empty, the peer
/// falls [`MAX_PENDING`] behind, or a write fails.
async fn write(mut writer: impl AsyncWrite + Unpin, addr: SocketAddr, outbox: Arc<Outbox>) {
    let mut clean = false;
    loop {
        let chunk = {
            let mut state = outbox.lock();
            if state.gone {
                tracing::warn!(%addr, "SIP peer is not reading; connection closed");
                break;
            }
            if state.pending.is_empty() {
                if state.closed {
                    clean = true;
                    break;
                }
                None
            } else {
                Some(state.pending.split().freeze())
            }
        };
        if chunk.is_some() {
            outbox.drained.notify_waiters();
        }
        match chunk {
            Some(chunk) => {
                // The flush sends what a TLS session holds (nothing to do for TCP).
                if writer.write_all(&chunk).await.is_err() || writer.flush().await.is_err() {
                    break;
                }
            }
            // A message queued since the check left a permit: no wake-up is missed.
            None => outbox.ready.notified().await,
        }
    }
    if clean {
        // TLS says goodbye (close_notify); bounded, as the peer may not be reading.
        let _ = tokio::time::timeout(CONNECT_TIMEOUT, writer.shutdown()).await;
    }
    outbox.lock().gone = true;
    outbox.broken.notify_waiters();
    outbox.drained.notify_waiters();
}

/// Waits until the writer of `outbox` is gone.
async fn writer_gone(outbox: &Outbox) {
    let broken = outbox.broken.notified();
    tokio::pin!(broken);
    // Registered before the check, so the writer's going cannot slip between them.
    broken.as_mut().enable();
    if !outbox.lock().gone {
        broken.await;
    }
}

/// Waits until at most [`PAUSE_AT`] bytes wait in `outbox`; false once its writer is gone.
async fn room(outbox: &Outbox) -> bool {
    loop {
        let drained = outbox.drained.notified();
        tokio::pin!(drained);
        // Registered before the check, so the writer's taking cannot slip between them.
        drained.as_mut().enable();
        {
            let state = outbox.lock();
            if state.gone {
                return false;
            }
            if state.pending.len() <= PAUSE_AT {
                return true;
            }
        }
        drained.await;
    }
}

/// Reads and frames messages until the peer closes, goes idle or breaks the framing, is too
/// slow to send a message whole, or the connection's writer is gone (nothing could be
/// answered). An `accepted` connection's first message is due within the message timeout.
async fn read(
    mut reader: impl AsyncRead + Unpin,
    peer: Peer,
    inbound: &dyn Inbound,
    outbox: &Outbox,
    limits: TcpLimits,
    accepted: bool,
) {
    let addr = peer.addr;
    let mut framer = StreamFramer::new(inbound.max_message());
    // On an accepted connection, when the first message is due (until it has come).
    let mut first_due = accepted.then(|| tokio::time::Instant::now() + limits.message_timeout);
    // When the message being received is due.
    let mut partial_due = None;
    loop {
        loop {
            // A panic in framing leaves the stream's state unknown: the connection ends. A
            // panic while handling a message costs that message only.
            let Some(frame) = contained(peer, || framer.next_frame()) else {
                return;
            };
            match frame {
                Ok(Some(Frame::Message(parsed))) => {
                    first_due = None;
                    contained(peer, || inbound.message(*parsed, peer));
                }
                Ok(Some(Frame::Ping)) => inbound.ping(peer),
                Ok(None) => break,
                Err(FramingError::TooLarge(partial)) => {
                    inbound.too_large(partial, peer);
                    return;
                }
                Err(FramingError::BadLength(partial)) => {
                    inbound.bad_framing(partial, peer);
                    return;
                }
            }
        }
        // Answers pile up faster than the peer takes them: read no more until it does.
        if !room(outbox).await {
            return;
        }
        if !framer.mid_message() {
            partial_due = None;
        } else if partial_due.is_none() {
            partial_due = Some(tokio::time::Instant::now() + limits.message_timeout);
        }
        let due = first_due.or(partial_due);
        let deadline = due.unwrap_or_else(|| tokio::time::Instant::now() + limits.idle_timeout);
        framer.buffer().reserve(8192);
        tokio::select! {
            read = tokio::time::timeout_at(deadline, reader.read_buf(framer.buffer())) => match read {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Err(_) => {
                    if due.is_some() {
                        tracing::warn!(%addr, "SIP message not received whole in time; connection closed");
                    }
                    return;
                }
                Ok(Ok(_)) => {}
            },
            () = writer_gone(outbox) => return,
        }
    }
}

#[cfg(test)]
#[path = "tcp_tests.rs"]
mod tests;
