//! A Server-Sent Events stream of a contact (`GET /login/{email}/{id}` with
//! `Accept: text/event-stream`) whose `message` events are timed like the WebSocket's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::inbox::Arrivals;

/// How long to wait for the stream's first (`state`) event.
const FIRST_EVENT: Duration = Duration::from_secs(10);

/// An open SSE stream, read by a background task until dropped.
pub(crate) struct Sse {
    /// Arrival times of `message` events, by the `seq` of their body.
    pub(crate) arrivals: Arc<Arrivals>,
    task: JoinHandle<()>,
}

impl Drop for Sse {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sse {
    /// Opens `path` on `addr` as an event stream with `auth`, and waits for its first event.
    pub(crate) async fn open(addr: SocketAddr, path: &str, auth: &HeaderValue) -> Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        let request = Request::get(path)
            .header(HOST, addr.to_string())
            .header(ACCEPT, "text/event-stream")
            .header(AUTHORIZATION, auth.clone())
            .body(Empty::<Bytes>::new())?;
        let arrivals = Arc::new(Arrivals::default());
        let (first_tx, first_rx) = oneshot::channel();
        let reader = arrivals.clone();
        let task = tokio::spawn(async move {
            tokio::spawn(connection);
            let response = match sender.send_request(request).await {
                Ok(r) if r.status().is_success() => r,
                Ok(r) => {
                    let _ = first_tx.send(Err(format!("status {}", r.status())));
                    return;
                }
                Err(e) => {
                    let _ = first_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let mut body = response.into_body();
            let mut first = Some(first_tx);
            let mut pending = String::new();
            while let Some(Ok(frame)) = body.frame().await {
                let at = Instant::now();
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                pending.push_str(&String::from_utf8_lossy(&data));
                while let Some(end) = pending.find('\n') {
                    let line: String = pending.drain(..=end).collect();
                    let Some(json) = line.trim_end().strip_prefix("data:") else {
                        continue;
                    };
                    if let Some(tx) = first.take() {
                        let _ = tx.send(Ok(()));
                    }
                    if let Some(seq) = message_seq(json) {
                        reader.arrived(seq, at);
                    }
                }
            }
        });
        match tokio::time::timeout(FIRST_EVENT, first_rx).await {
            Ok(Ok(Ok(()))) => Ok(Self { arrivals, task }),
            Ok(Ok(Err(why))) => {
                task.abort();
                bail!("SSE {path}: {why}")
            }
            _ => {
                task.abort();
                bail!("SSE {path}: no first event within {FIRST_EVENT:?}")
            }
        }
    }
}

/// The `seq` of a `message` event's body: `data.body.seq`.
fn message_seq(json: &str) -> Option<u64> {
    let event: Value = serde_json::from_str(json.trim()).ok()?;
    if event.get("kind")? != "message" {
        return None;
    }
    event.get("data")?.get("body")?.get("seq")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_seq_of_message_events() {
        let m = r#" {"id":3,"resource":"/login/c@x/1","kind":"message","data":{"body":{"seq":9}}}"#;
        assert_eq!(message_seq(m), Some(9));
        assert_eq!(
            message_seq(r#"{"kind":"state","data":{"body":{"seq":9}}}"#),
            None
        );
        assert_eq!(message_seq("nope"), None);
    }
}
