//! The reference: bare axum serving one resource's stream, as SSE (`GET /call/{id}`, axum's
//! `Sse`) and over a WebSocket (`GET /ws`, subscription frames read and ignored), from one
//! tokio broadcast channel; `PUT /change` publishes its body as the next event. No
//! authentication, store, or event bus: what the framework alone costs for the same fan-out.
//! It runs as its own process (this binary with `--serve-reference`), so its memory is measured
//! like the relay's.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use futures_util::{SinkExt, Stream, StreamExt};
use restsip_protocol::{Event, EventKind, ServerFrame};
use serde_json::{json, Value};
use tokio::sync::broadcast;

/// What the reference prints first on stdout; the address follows.
pub(crate) const LISTENING: &str = "fanout reference listening on ";

#[derive(Clone)]
struct Shared {
    /// Each change, as its event.
    changes: broadcast::Sender<Arc<Event>>,
    /// Next event id.
    next_id: Arc<AtomicU64>,
    /// How long a change waits before it is published (0 but when checking the benchmark).
    delay: Duration,
}

impl Shared {
    /// The first event of a stream: the resource's state.
    fn state(&self, id: &str) -> Event {
        Event {
            id: self.next_id.load(Ordering::Relaxed),
            resource: format!("/call/{id}"),
            kind: EventKind::State,
            data: json!([]),
        }
    }
}

/// Serves on 127.0.0.1 (a free port) until killed, publishing each change after `delay`.
pub(crate) async fn serve(delay: Duration) -> Result<()> {
    let (changes, _) = broadcast::channel(64);
    let shared = Shared {
        changes,
        next_id: Arc::new(AtomicU64::new(1)),
        delay,
    };
    let app = Router::new()
        .route("/call/{id}", get(sse))
        .route("/ws", get(ws))
        .route("/change/{id}", put(change))
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{LISTENING}{}", listener.local_addr()?);
    axum::serve(listener, app).await.context("serving")
}

/// `PUT /change/{id}`: the body (JSON) becomes an `updated` event of `/call/{id}`.
async fn change(State(s): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let data: Value = serde_json::from_slice(&body).unwrap_or_default();
    let event = Event {
        id: s.next_id.fetch_add(1, Ordering::Relaxed) + 1,
        resource: format!("/call/{id}"),
        kind: EventKind::Updated,
        data,
    };
    if !s.delay.is_zero() {
        tokio::time::sleep(s.delay).await;
    }
    let _ = s.changes.send(Arc::new(event));
    axum::http::StatusCode::NO_CONTENT.into_response()
}

/// The state, then every change, ending if the receiver falls behind.
fn events(s: &Shared, id: &str) -> impl Stream<Item = Arc<Event>> {
    let first = Arc::new(s.state(id));
    let rx = s.changes.subscribe();
    let rest =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.ok().map(|e| (e, rx)) },
        );
    futures_util::stream::once(async move { first }).chain(rest)
}

async fn sse(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    let stream = events(&s, &id).map(|e| {
        let data = serde_json::to_string(&*e).unwrap_or_default();
        Ok::<_, Infallible>(SseEvent::default().id(e.id.to_string()).data(data))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The same WebSocket buffers as the relay (4 KiB read, no write buffer), so the comparison is
/// of the rest, not of tungstenite's 128 KiB defaults.
async fn ws(State(s): State<Shared>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1024 * 1024)
        .on_upgrade(move |socket| ws_serve(s, socket))
}

async fn ws_serve(s: Shared, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    // The first frame is the subscription, `{"op": "subscribe", "path": "/call/ID"}`.
    let Some(Ok(Message::Text(text))) = stream.next().await else {
        return;
    };
    let frame: Value = serde_json::from_str(&text).unwrap_or_default();
    let path = frame["path"].as_str().unwrap_or_default();
    let events = events(&s, path.strip_prefix("/call/").unwrap_or(path));
    tokio::pin!(events);
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { break };
                let frame = ServerFrame::Event { event: (*event).clone() };
                let text = serde_json::to_string(&frame).unwrap_or_default();
                if sink.send(Message::Text(Utf8Bytes::from(text))).await.is_err() {
                    break;
                }
            }
            incoming = stream.next() => match incoming {
                Some(Ok(_)) => {}
                _ => break,
            },
        }
    }
}
