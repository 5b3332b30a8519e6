//! rtpengine's ng control protocol over UDP: each request is one datagram `COOKIE SP
//! BENCODED-DICT`, its reply a datagram with the same cookie. One socket serves every call;
//! a reader task hands each reply to the request waiting for its cookie. A request without
//! a reply is sent again (same cookie: rtpengine answers a repeated cookie from its cache,
//! never running the command twice) and fails after the last try.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use super::bencode::{self, Value};
use crate::sync::lock;

/// How long one try waits for the reply.
pub const TRY_TIMEOUT: Duration = Duration::from_secs(1);
/// Tries after the first.
pub const RETRIES: u32 = 2;
/// Most requests waiting at once (more fail at once).
const MAX_WAITING: usize = 10_000;

/// Why an ng request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NgError {
    /// No reply after every try.
    #[error("rtpengine at {0} did not answer")]
    Timeout(SocketAddr),
    /// rtpengine answered `result: error`.
    #[error("rtpengine refused the {command}: {reason}")]
    Refused {
        /// The command.
        command: String,
        /// Its `error-reason`.
        reason: String,
    },
    /// The socket failed, or too many requests wait.
    #[error("rtpengine control socket: {0}")]
    Socket(String),
}

/// Requests waiting, by cookie.
type Waiting = Mutex<HashMap<String, oneshot::Sender<Value>>>;

/// An ng client; cheap to clone.
#[derive(Clone)]
pub struct Ng {
    /// Shared state.
    inner: Arc<Inner>,
}

struct Inner {
    /// Connected to rtpengine's ng address.
    socket: Arc<UdpSocket>,
    /// Where rtpengine listens.
    addr: SocketAddr,
    /// Requests waiting for their reply.
    waiting: Arc<Waiting>,
    /// Cookie prefix, random per client (replies of an earlier process are not taken).
    prefix: u32,
    /// Next cookie number.
    next: AtomicU64,
    /// How long one try waits.
    timeout: Duration,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Wakes the reader, which then sees the client gone (a zero-length datagram to itself).
        if let Ok(me) = self.socket.local_addr() {
            let _ = std::net::UdpSocket::bind(SocketAddr::new(me.ip(), 0))
                .and_then(|s| s.send_to(&[], me));
        }
    }
}

impl Ng {
    /// A client of the rtpengine at `addr` (resolved now); its reader runs on the current
    /// runtime.
    pub async fn connect(addr: &str, timeout: Duration) -> std::io::Result<Self> {
        let addr = tokio::net::lookup_host(addr).await?.next().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no address for rtpengine")
        })?;
        let local: SocketAddr = match addr {
            SocketAddr::V4(a) if a.ip().is_loopback() => ([127, 0, 0, 1], 0).into(),
            SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = Arc::new(UdpSocket::bind(local).await?);
        let waiting = Arc::new(Waiting::default());
        tokio::spawn(read(socket.clone(), Arc::downgrade(&waiting), addr));
        Ok(Self {
            inner: Arc::new(Inner {
                socket,
                addr,
                waiting,
                prefix: rand::random(),
                next: AtomicU64::new(1),
                timeout,
            }),
        })
    }

    /// Where rtpengine is.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Sends `request` (a dictionary with a `command`) and waits for its reply: the reply
    /// dictionary when its `result` is not `error`.
    pub async fn request(&self, request: &Value) -> Result<Value, NgError> {
        let inner = &self.inner;
        let n = inner.next.fetch_add(1, Ordering::Relaxed);
        let cookie = format!("{:08x}_{n}", inner.prefix);
        let mut datagram = format!("{cookie} ").into_bytes();
        datagram.extend_from_slice(&request.encode());
        let (tx, mut rx) = oneshot::channel();
        {
            let mut waiting = lock(&inner.waiting);
            if waiting.len() >= MAX_WAITING {
                return Err(NgError::Socket("too many requests waiting".into()));
            }
            waiting.insert(cookie.clone(), tx);
        }
        let _forget = Forget(&inner.waiting, &cookie);
        let mut reply = None;
        for _ in 0..=RETRIES {
            if let Err(e) = inner.socket.send_to(&datagram, inner.addr).await {
                return Err(NgError::Socket(e.to_string()));
            }
            if let Ok(r) = tokio::time::timeout(inner.timeout, &mut rx).await {
                reply = r.ok();
                break;
            }
        }
        let reply = reply.ok_or(NgError::Timeout(inner.addr))?;
        if reply.str_of("result") == Some("error") {
            return Err(NgError::Refused {
                command: request.str_of("command").unwrap_or("request").to_owned(),
                reason: reply
                    .str_of("error-reason")
                    .unwrap_or("no reason given")
                    .to_owned(),
            });
        }
        Ok(reply)
    }
}

/// Removes a cookie from the waiting requests when its request ends, however it ends.
struct Forget<'a>(&'a Waiting, &'a str);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        lock(self.0).remove(self.1);
    }
}

/// Reads replies and hands each to the request of its cookie, until the client is gone.
async fn read(socket: Arc<UdpSocket>, waiting: Weak<Waiting>, from: SocketAddr) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Some(waiting) = waiting.upgrade() else {
            return;
        };
        if peer != from {
            continue;
        }
        let Some((cookie, body)) = split(&buf[..n]) else {
            tracing::debug!("ng reply without a cookie");
            continue;
        };
        let value = match bencode::decode(body) {
            Ok(v) => v,
            Err(why) => {
                tracing::warn!(error = %why, "unreadable ng reply from rtpengine");
                continue;
            }
        };
        let tx = lock(&waiting).remove(cookie);
        if let Some(tx) = tx {
            let _ = tx.send(value);
        }
    }
}

/// The cookie and the bencoded part of a datagram.
fn split(datagram: &[u8]) -> Option<(&str, &[u8])> {
    let space = datagram.iter().position(|&c| c == b' ')?;
    let cookie = std::str::from_utf8(&datagram[..space]).ok()?;
    Some((cookie, &datagram[space + 1..]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A fake rtpengine answering `pong` to pings, an error to anything else, and nothing
    /// to the first try of a `query`.
    async fn fake() -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            let mut seen_query = false;
            loop {
                let (n, peer) = socket.recv_from(&mut buf).await.unwrap();
                let (cookie, body) = split(&buf[..n]).unwrap();
                let req = bencode::decode(body).unwrap();
                let reply = match req.str_of("command") {
                    Some("ping") => Value::dict([("result", "pong".into())]),
                    Some("query") if !seen_query => {
                        seen_query = true;
                        continue;
                    }
                    Some("query") => Value::dict([("result", "ok".into())]),
                    _ => Value::dict([
                        ("result", "error".into()),
                        ("error-reason", "Unknown call-id".into()),
                    ]),
                };
                let mut out = format!("{cookie} ").into_bytes();
                out.extend_from_slice(&reply.encode());
                socket.send_to(&out, peer).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn replies_errors_retries_and_timeouts() {
        let addr = fake().await;
        let ng = Ng::connect(&addr.to_string(), Duration::from_millis(200))
            .await
            .unwrap();
        let pong = ng
            .request(&Value::dict([("command", "ping".into())]))
            .await
            .unwrap();
        assert_eq!(pong.str_of("result"), Some("pong"));
        let err = ng
            .request(&Value::dict([("command", "delete".into())]))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("Unknown call-id"), "{err}");
        // The first try of a query goes unanswered: the second gets the reply.
        let ok = ng
            .request(&Value::dict([("command", "query".into())]))
            .await
            .unwrap();
        assert_eq!(ok.str_of("result"), Some("ok"));
        // Nothing listening: a timeout after every try.
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let nobody = Ng::connect(
            &silent.local_addr().unwrap().to_string(),
            Duration::from_millis(50),
        )
        .await
        .unwrap();
        let started = std::time::Instant::now();
        let err = nobody
            .request(&Value::dict([("command", "ping".into())]))
            .await
            .unwrap_err();
        assert!(matches!(err, NgError::Timeout(_)), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert!(lock(&nobody.inner.waiting).is_empty());
    }
}
