//! The receiving side of the SEND scenario: a WebSocket whose `message` events are matched to
//! the requests that caused them by the `seq` in their body, and timed on arrival.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use hyper::header::{HeaderValue, AUTHORIZATION};
use restsip_protocol::{ClientFrame, EventKind, ServerFrame, UpdateMode};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long to wait for the subscription's first event.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Who waits for which `seq`.
#[derive(Default)]
pub(crate) struct Arrivals {
    /// Per expected `seq`, where to report its arrival time.
    waiting: Mutex<HashMap<u64, oneshot::Sender<Instant>>>,
}

impl Arrivals {
    /// Registers `seq`; the receiver gets the instant its message arrives.
    pub(crate) fn expect(&self, seq: u64) -> oneshot::Receiver<Instant> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(seq, tx);
        rx
    }

    /// Stops waiting for `seq` (it timed out).
    pub(crate) fn forget(&self, seq: u64) {
        self.lock().remove(&seq);
    }

    /// Reports the arrival of `seq`, if someone waits for it.
    pub(crate) fn arrived(&self, seq: u64, at: Instant) {
        if let Some(tx) = self.lock().remove(&seq) {
            let _ = tx.send(at);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Instant>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connected, subscribed WebSocket, read by a background task until dropped.
pub(crate) struct Listener {
    /// Arrival times of messages, by `seq`.
    pub(crate) arrivals: Arc<Arrivals>,
    /// The reading task.
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener {
    /// Connects to `url` with `auth`, subscribes to `path` if given, and waits for the first
    /// event (the relay's `state`; the reference sends one too) so no message is missed.
    pub(crate) async fn connect(
        url: &str,
        auth: Option<&HeaderValue>,
        path: Option<&str>,
    ) -> Result<Self> {
        let mut request = url.into_client_request()?;
        if let Some(auth) = auth {
            request.headers_mut().insert(AUTHORIZATION, auth.clone());
        }
        let (mut socket, _) =
            tokio::time::timeout(SUBSCRIBE_TIMEOUT, tokio_tungstenite::connect_async(request))
                .await
                .context("WebSocket handshake timed out")?
                .with_context(|| format!("cannot open the WebSocket {url}"))?;
        if let Some(path) = path {
            let frame = ClientFrame::Subscribe {
                path: path.to_owned(),
                since: None,
                updates: UpdateMode::Diff,
            };
            socket
                .send(Message::text(serde_json::to_string(&frame)?))
                .await?;
        }
        tokio::time::timeout(SUBSCRIBE_TIMEOUT, first_event(&mut socket))
            .await
            .context("no first event on the WebSocket within 10 s")??;
        let arrivals = Arc::new(Arrivals::default());
        let (sink, stream) = socket.split();
        let task = tokio::spawn(read_messages(stream, arrivals.clone(), sink));
        Ok(Self { arrivals, task })
    }
}

/// Waits for the first `event` frame; an `error` frame fails.
async fn first_event(socket: &mut Socket) -> Result<()> {
    while let Some(message) = socket.next().await {
        let Message::Text(text) = message? else {
            continue;
        };
        match serde_json::from_str::<ServerFrame>(text.as_str()) {
            Ok(ServerFrame::Event { .. }) => return Ok(()),
            Ok(ServerFrame::Error { .. }) => bail!("subscription refused: {}", text.as_str()),
            _ => continue,
        }
    }
    Err(anyhow!("the WebSocket closed before its first event"))
}

/// Times every `message` event and hands it to whoever waits for its `seq`. Holds the write
/// half so the socket stays open (tungstenite answers pings while reading).
async fn read_messages<S>(mut stream: SplitStream<Socket>, arrivals: Arc<Arrivals>, _sink: S) {
    while let Some(Ok(message)) = stream.next().await {
        let at = Instant::now();
        if let Message::Text(text) = message {
            if let Some(seq) = message_seq(text.as_str()) {
                arrivals.arrived(seq, at);
            }
        }
    }
}

/// The `seq` in the body of a `message` event: `event.data.body.seq`.
fn message_seq(text: &str) -> Option<u64> {
    match serde_json::from_str::<ServerFrame>(text).ok()? {
        ServerFrame::Event { event } if event.kind == EventKind::Message => {
            event.data.get("body")?.get("seq")?.as_u64()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_seq_of_message_events_only() {
        let message = r#"{"op":"event","event":{"id":7,"resource":"/login/b@x/1","kind":"message",
            "data":{"id":"6","from":"a@x","to":"/login/b@x/1","body":{"seq":42},"sent":1}}}"#;
        assert_eq!(message_seq(message), Some(42));
        let state = r#"{"op":"event","event":{"id":1,"resource":"/r","kind":"state","data":{"body":{"seq":1}}}}"#;
        assert_eq!(message_seq(state), None);
        assert_eq!(message_seq("not json"), None);
    }
}
