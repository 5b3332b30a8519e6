//! The reference: bare axum, with handlers of the same shape as the relay's but no
//! authentication, database or event bus: what the framework alone costs on this machine.
//!
//! It runs on its own tokio runtime and threads (as the relay runs in its own process), so the
//! load generator does not share its workers with the server it measures.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use restsip_protocol::{Contact, Event, EventKind, ServerFrame};
use serde_json::{json, Value};
use tokio::sync::{broadcast, oneshot};

/// Frames buffered for a slow WebSocket client.
const FRAME_BUFFER: usize = 4096;

/// What the reference handlers share.
#[derive(Clone)]
struct RefState {
    /// The answer of `GET /login/{email}`.
    contacts: Arc<Vec<Contact>>,
    /// Frames for the connected WebSocket clients.
    frames: broadcast::Sender<String>,
    /// Next event id.
    next_id: Arc<AtomicU64>,
}

/// The running reference server; [`Reference::stop`] ends it.
pub(crate) struct Reference {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// Tells the server to stop.
    shutdown: oneshot::Sender<()>,
    /// The thread running its runtime.
    thread: JoinHandle<Result<()>>,
}

impl Reference {
    /// Starts the server on 127.0.0.1 with a free port; `contacts` is its GET answer.
    pub(crate) fn start(contacts: Vec<Contact>) -> Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = RefState {
            contacts: Arc::new(contacts),
            frames: broadcast::channel(FRAME_BUFFER).0,
            next_id: Arc::new(AtomicU64::new(1)),
        };
        let (shutdown, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("reference-server".into())
            .spawn(move || serve(listener, state, stopped))?;
        Ok(Self {
            addr,
            shutdown,
            thread,
        })
    }

    /// Stops the server and its runtime.
    pub(crate) fn stop(self) -> Result<()> {
        let _ = self.shutdown.send(());
        self.thread
            .join()
            .map_err(|_| anyhow!("the reference server thread panicked"))?
    }
}

/// Runs the server on a runtime of its own until `stopped`.
fn serve(
    listener: std::net::TcpListener,
    state: RefState,
    stopped: oneshot::Receiver<()>,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let app = Router::new()
            .route("/login/{email}", get(login_list))
            .route("/send", post(send))
            .route("/ws", get(ws_upgrade))
            .with_state(state);
        tokio::select! {
            served = axum::serve(listener, app) => served.context("reference server"),
            _ = stopped => Ok(()),
        }
    });
    runtime.shutdown_background();
    served
}

/// `GET /login/{email}`: the fixed list.
async fn login_list(State(state): State<RefState>) -> Json<Vec<Contact>> {
    Json(state.contacts.as_ref().clone())
}

/// `POST /send`: the body, wrapped in a `message` event as the relay does, goes to every
/// connected WebSocket.
async fn send(State(state): State<RefState>, Json(body): Json<Value>) -> Json<Value> {
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let frame = event_frame(id, EventKind::Message, json!({ "body": body }));
    let receivers = state.frames.send(frame).unwrap_or(0);
    Json(json!({ "id": id.to_string(), "receivers": receivers }))
}

/// `GET /ws`: a WebSocket that gets every frame of [`send`].
async fn ws_upgrade(State(state): State<RefState>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| forward(state, socket))
}

/// Subscribes, announces itself with a `state` event (as the relay does), then forwards.
async fn forward(state: RefState, mut socket: WebSocket) {
    let mut frames = state.frames.subscribe();
    let hello = event_frame(0, EventKind::State, json!([]));
    if socket.send(Message::text(hello)).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Ok(frame) => {
                    if socket.send(Message::text(frame)).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => continue,
            },
        }
    }
}

/// A `ServerFrame::Event` as JSON text.
fn event_frame(id: u64, kind: EventKind, data: Value) -> String {
    let frame = ServerFrame::Event {
        event: Event {
            id,
            resource: "/reference".to_owned(),
            kind,
            data,
        },
    };
    serde_json::to_string(&frame).unwrap_or_default()
}
