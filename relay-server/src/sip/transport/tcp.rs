//! TCP: each connection has a reader that frames messages by Content-Length and a writer fed
//! by a bounded queue; responses go back on the connection the request came on, or on a new
//! one to the same address when it has closed (RFC 3261 §18.2.2).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::{Peer, Transport};
use crate::sip::endpoint::{Endpoint, WeakEndpoint};
use crate::sip::framing::{Frame, FramingError, StreamFramer};

/// Most SIP connections open at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 4096;
/// A connection silent this long is closed.
const IDLE: Duration = Duration::from_secs(2 * 3600);
/// Messages queued for one connection before more are dropped.
const QUEUE: usize = 256;
/// How long connecting to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The open connections by remote address; cheap to clone.
#[derive(Clone, Default)]
pub struct Connections {
    /// Shared state.
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Writer queues by remote address, with a serial number per connection.
    writers: Mutex<HashMap<SocketAddr, (u64, mpsc::Sender<Bytes>)>>,
    /// Serial numbers of connections.
    serial: std::sync::atomic::AtomicU64,
    /// The endpoint messages go to (set once it exists; weak, to avoid a cycle).
    endpoint: OnceLock<WeakEndpoint>,
}

impl Connections {
    /// Tells the connections where received messages go.
    pub fn attach(&self, endpoint: &Endpoint) {
        let _ = self.inner.endpoint.set(endpoint.downgrade());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, (u64, mpsc::Sender<Bytes>)>> {
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
        self.lock().get(&to).is_some_and(|(_, w)| !w.is_closed())
    }

    /// Queues `data` for the connection to `to`, connecting first if there is none.
    pub fn send(&self, to: SocketAddr, data: Bytes) {
        let writer = self.lock().get(&to).map(|(_, w)| w.clone());
        match writer {
            Some(w) => {
                if w.try_send(data).is_err() {
                    tracing::debug!(%to, "TCP send queue full or closed; message dropped");
                }
            }
            None => {
                let conns = self.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await {
                        Ok(Ok(stream)) => {
                            if let Some(w) = conns.open(stream, to) {
                                let _ = w.try_send(data);
                            }
                        }
                        _ => tracing::debug!(%to, "cannot connect to send a SIP message"),
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
                    if self.len() >= MAX_CONNECTIONS {
                        tracing::warn!(%addr, "too many SIP connections; closing a new one");
                        continue;
                    }
                    self.open(stream, addr);
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "SIP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Starts the reader and writer of a connection; returns its queue.
    fn open(&self, stream: TcpStream, addr: SocketAddr) -> Option<mpsc::Sender<Bytes>> {
        let endpoint = self.inner.endpoint.get()?.upgrade()?;
        let _ = stream.set_nodelay(true);
        let (reader, mut writer) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
        let serial = self
            .inner
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.lock().insert(addr, (serial, tx.clone()));
        tokio::spawn(async move {
            while let Some(data) = rx.recv().await {
                if writer.write_all(&data).await.is_err() {
                    break;
                }
            }
        });
        let conns = self.clone();
        tokio::spawn(async move {
            read(reader, addr, &endpoint).await;
            // Dropping the queue lets the writer flush what is queued, then close.
            let current = {
                let mut writers = conns.lock();
                let current = writers.get(&addr).is_some_and(|(s, _)| *s == serial);
                if current {
                    writers.remove(&addr);
                }
                current
            };
            if current {
                endpoint.connection_closed(Peer {
                    transport: Transport::Tcp,
                    addr,
                });
            }
        });
        Some(tx)
    }
}

/// Reads and frames messages until the peer closes, goes idle or breaks the framing.
async fn read(mut reader: tokio::net::tcp::OwnedReadHalf, addr: SocketAddr, endpoint: &Endpoint) {
    let peer = Peer {
        transport: Transport::Tcp,
        addr,
    };
    let mut framer = StreamFramer::new(endpoint.max_message());
    loop {
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(parsed))) => endpoint.on_parsed(*parsed, peer),
                Ok(Some(Frame::Ping)) => endpoint.pong(peer),
                Ok(None) => break,
                Err(FramingError::TooLarge(partial)) => {
                    endpoint.too_large(partial, peer);
                    return;
                }
                Err(FramingError::BadLength(partial)) => {
                    endpoint.bad_framing(partial, peer);
                    return;
                }
            }
        }
        framer.buffer().reserve(8192);
        match tokio::time::timeout(IDLE, reader.read_buf(framer.buffer())).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(_)) => {}
        }
    }
}
