//! `GET /ws`: one WebSocket per client that multiplexes subscriptions to active resources and
//! carries SEND and CANCEL and the SOAP services a page serves (`serve`, `service`,
//! `service-reply`), so a page needs one connection for everything. Frames are the JSON
//! `ClientFrame` and `ServerFrame` of the protocol crate.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::stream::{AbortHandle, Abortable, SelectAll};
use futures_util::{SinkExt, Stream, StreamExt};
use restsip_protocol::{ClientFrame, Event, Problem, ProblemKind, ServerFrame};
use tokio::sync::mpsc;

use super::auth::Caller;
use super::stream::Events;
use super::AppState;
use crate::bus::Topic;
use crate::error::Error;
use crate::outgoing::{Encoding, Outgoing};

/// Frames waiting for a slow client before subscriptions fall behind (and resynchronise).
const OUTGOING_QUEUE: usize = 256;
/// Most frames written after the first before a flush.
const BURST: usize = 64;
/// Largest frame a client may send.
const MAX_FRAME: usize = 256 * 1024;
/// Bytes read from the socket at a time: a frame longer than this is read in several reads, so
/// tungstenite's default of 128 KiB per connection, allocated up front, buys nothing for JSON
/// frames of a few hundred bytes and costs 1.3 GB at 10,000 connections.
const READ_BUFFER: usize = 4 * 1024;
/// Most bytes a connection may have written but not sent; more ends it (the writer waits for
/// the socket before each frame, so only a frame or two are ever buffered).
const MAX_WRITE_BUFFER: usize = 1024 * 1024;

/// `GET /ws`: upgrade to the multiplexed WebSocket.
pub(crate) async fn ws_upgrade(
    State(state): State<AppState>,
    caller: Caller,
    upgrade: WebSocketUpgrade,
) -> Response {
    let max = state.limits.max_body_bytes.min(MAX_FRAME);
    upgrade
        .max_message_size(max)
        .read_buffer_size(READ_BUFFER)
        // Each frame goes to the socket at once (no 128 KiB write buffer building up).
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| serve(state, caller, socket))
}

/// The problem for a relay error, as the HTTP API would give it.
fn problem_for(err: Error) -> Problem {
    super::error::ApiError::from(err).problem()
}

/// Resolves a path to the topic it names and checks the caller may watch it.
async fn topic_for(state: &AppState, caller: &Caller, path: &str) -> Result<Topic, Error> {
    let topic = crate::events::parse_topic(path).ok_or_else(|| {
        Error::NotFound(format!(
            "{path} is not an active resource (/login/{{email}}, /login/{{email}}/{{id}}, /call/{{id}})"
        ))
    })?;
    match crate::events::authorize(&state.resources(), &caller.0, &topic).await {
        // An address of another domain: watched through the upstream server.
        Err(Error::NotFound(why)) => match &topic {
            Topic::Login(email) if state.location.foreign_watchable(email).await? => {}
            _ => return Err(Error::NotFound(why)),
        },
        r => r?,
    }
    Ok(topic)
}

/// Splits a SEND/CANCEL path into user and optional contact.
fn target_of(path: &str) -> Result<(String, Option<i64>), Error> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["login", email] => Ok(((*email).to_owned(), None)),
        ["login", email, id] => {
            let id = id
                .parse()
                .map_err(|_| Error::NotFound(format!("no login {path}")))?;
            Ok(((*email).to_owned(), Some(id)))
        }
        _ => Err(Error::NotFound(format!(
            "SEND and CANCEL go to /login/{{email}}[/{{id}}], not {path}"
        ))),
    }
}

fn reply<T: serde::Serialize>(reference: String, result: Result<T, Error>) -> ServerFrame {
    match result {
        Ok(body) => ServerFrame::Reply {
            reference,
            status: 200,
            body: serde_json::to_value(body).unwrap_or_default(),
        },
        Err(e) => {
            let problem = problem_for(e);
            ServerFrame::Reply {
                reference,
                status: problem.status,
                body: serde_json::to_value(problem).unwrap_or_default(),
            }
        }
    }
}

/// A frame as the JSON text message it goes out as.
fn text_frame(frame: &ServerFrame) -> Message {
    text(Bytes::from(serde_json::to_vec(frame).unwrap_or_default()))
}

/// An event's `{"op": "event", "event": ...}` frame: [`ServerFrame::Event`]'s JSON, written from
/// the borrowed event (the owned frame would copy its data first).
fn event_frame(event: &Event) -> Bytes {
    #[derive(serde::Serialize)]
    #[serde(tag = "op", rename_all = "lowercase")]
    enum Frame<'a> {
        Event { event: &'a Event },
    }
    Bytes::from(serde_json::to_vec(&Frame::Event { event }).unwrap_or_default())
}

/// A text message of JSON bytes (which serde_json makes valid UTF-8).
fn text(json: Bytes) -> Message {
    Message::Text(Utf8Bytes::try_from(json).unwrap_or_default())
}

/// One subscription's events, run by the connection's writer: the writer polls the source
/// when it can write (as an SSE body does), so an event reaches the socket without a task of
/// its own in between, and a client that stops reading makes the source fall behind.
struct Subscription {
    /// The events, until the reader aborts them (unsubscribe, close).
    events: Abortable<Events>,
    /// Set once the subscription is gone (ended or aborted), for the reader to see.
    gone: Arc<AtomicBool>,
}

impl Stream for Subscription {
    type Item = Arc<Outgoing>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_next_unpin(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.gone.store(true, Ordering::Relaxed);
    }
}

/// An event some subscription has ready now, if any (its source polled with the writer's own
/// waker, so a source that is not ready wakes the writer later).
async fn ready_event(sources: &mut SelectAll<Subscription>) -> Option<Arc<Outgoing>> {
    std::future::poll_fn(|cx| match sources.poll_next_unpin(cx) {
        Poll::Ready(Some(event)) => Poll::Ready(Some(event)),
        _ => Poll::Ready(None),
    })
    .await
}

/// The reader's handle on a subscription the writer runs.
struct Subscribed {
    /// Stops it.
    abort: AbortHandle,
    /// Whether it is gone.
    gone: Arc<AtomicBool>,
}

async fn serve(state: AppState, caller: Caller, socket: WebSocket) {
    let _open = crate::observe::Open::new(crate::observe::WEBSOCKETS_OPEN);
    let (mut sink, mut stream) = socket.split();
    // Boxed frames: a tokio channel allocates its first 32 slots up front, and 32 frames
    // (a few hundred bytes each) would cost every connection kilobytes it seldom uses.
    let (out_tx, mut out_rx) = mpsc::channel::<Box<ServerFrame>>(OUTGOING_QUEUE);
    // New subscriptions go to the writer, which runs their sources: an event's frame is
    // encoded once for all the connections watching its resource, and goes from the bus to
    // the socket in the writer's task.
    let (subs_tx, mut subs_rx) = mpsc::unbounded_channel::<Subscription>();
    let keepalive = Duration::from_secs(state.limits.keepalive);
    let writer = tokio::spawn(async move {
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        let mut sources: SelectAll<Subscription> = SelectAll::new();
        loop {
            let message = tokio::select! {
                frame = out_rx.recv() => match frame {
                    Some(frame) => text_frame(&frame),
                    None => break,
                },
                Some(sub) = subs_rx.recv() => {
                    sources.push(sub);
                    continue;
                }
                Some(event) = sources.next(), if !sources.is_empty() => {
                    text(event.encoded(Encoding::WsFrame, event_frame))
                }
                _ = ping.tick() => Message::Ping(Default::default()),
            };
            if sink.feed(message).await.is_err() {
                break;
            }
            // Every frame already waiting goes out in the same write: one flush (one system
            // call) per burst rather than per frame.
            let mut failed = false;
            for _ in 0..BURST {
                let message = match out_rx.try_recv() {
                    Ok(frame) => text_frame(&frame),
                    Err(_) => match ready_event(&mut sources).await {
                        Some(event) => text(event.encoded(Encoding::WsFrame, event_frame)),
                        None => break,
                    },
                };
                if sink.feed(message).await.is_err() {
                    failed = true;
                    break;
                }
            }
            if failed || sink.flush().await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut subscriptions: HashMap<String, Subscribed> = HashMap::new();
    // This connection, as a server of SOAP namespaces.
    let conn = state.soap_web.connection();
    let mut closing = state.closing.clone();
    loop {
        let message = tokio::select! {
            m = stream.next() => m,
            _ = closing.wait_for(|c| *c) => None,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => {
                let problem =
                    Problem::new(ProblemKind::UnsupportedMediaType, "frames are JSON text");
                let _ = out_tx
                    .send(Box::new(ServerFrame::Error {
                        path: None,
                        problem,
                    }))
                    .await;
                continue;
            }
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            Some(Ok(_)) => continue,
        };
        let frame: ClientFrame = match serde_json::from_str(&text) {
            Ok(frame) => frame,
            Err(e) => {
                let problem = Problem::new(ProblemKind::BadRequest, format!("bad frame: {e}"));
                let _ = out_tx
                    .send(Box::new(ServerFrame::Error {
                        path: None,
                        problem,
                    }))
                    .await;
                continue;
            }
        };
        let answer = match frame {
            ClientFrame::Subscribe {
                path,
                since,
                updates,
            } => {
                subscriptions.retain(|_, sub| !sub.gone.load(Ordering::Relaxed));
                if subscriptions.contains_key(&path) {
                    continue;
                }
                // Boxed, as the other commands' work: the connection's future stays as large as
                // the largest step it awaits for as long as it is open.
                let opened = match Box::pin(topic_for(&state, &caller, &path)).await {
                    Ok(topic) => super::stream::open_events(&state, &caller, topic, since, updates),
                    Err(e) => Err(e),
                };
                match opened {
                    Ok(events) => {
                        let (abort, registration) = AbortHandle::new_pair();
                        let gone = Arc::new(AtomicBool::new(false));
                        let sub = Subscription {
                            events: Abortable::new(events, registration),
                            gone: gone.clone(),
                        };
                        if subs_tx.send(sub).is_err() {
                            break;
                        }
                        subscriptions.insert(path, Subscribed { abort, gone });
                        None
                    }
                    Err(e) => Some(ServerFrame::Error {
                        path: Some(path),
                        problem: problem_for(e),
                    }),
                }
            }
            ClientFrame::Unsubscribe { path } => {
                if let Some(sub) = subscriptions.remove(&path) {
                    sub.abort.abort();
                }
                None
            }
            ClientFrame::Send {
                reference,
                path,
                body,
            } => {
                let result = match target_of(&path) {
                    Ok((email, contact)) => {
                        Box::pin(state.inbox.send(&caller.0, &email, contact, body)).await
                    }
                    Err(e) => Err(e),
                };
                // Acknowledged once its events have left for the other relays.
                state.bus.flushed().await;
                Some(reply(reference, result))
            }
            ClientFrame::Serve {
                reference,
                namespace,
            } => {
                let result = state
                    .soap_web
                    .serve(conn, &caller.0, &namespace, out_tx.clone())
                    .map(|()| serde_json::json!({ "namespace": namespace }))
                    .map_err(Error::Invalid);
                Some(reply(reference, result))
            }
            ClientFrame::Unserve { namespace } => {
                state.soap_web.unserve(conn, &caller.0, &namespace);
                None
            }
            ClientFrame::ServiceReply { id, result, fault } => {
                let answer = crate::soap::web::WebReply { result, fault };
                if state.soap_web.reply(conn, &id, answer) {
                    None
                } else {
                    Some(ServerFrame::Error {
                        path: None,
                        problem: Problem::new(
                            ProblemKind::NotFound,
                            format!("no service request {id} waits for an answer here"),
                        ),
                    })
                }
            }
            ClientFrame::Cancel {
                reference,
                path,
                id,
            } => {
                let result = match target_of(&path) {
                    Ok((email, contact)) => {
                        Box::pin(state.inbox.cancel(&caller.0, &email, contact, &id)).await
                    }
                    Err(e) => Err(e),
                };
                // Acknowledged once its events have left for the other relays.
                state.bus.flushed().await;
                Some(reply(reference, result))
            }
        };
        if let Some(frame) = answer {
            if out_tx.send(Box::new(frame)).await.is_err() {
                break;
            }
        }
    }
    state.soap_web.drop_connection(conn);
    for (_, sub) in subscriptions {
        sub.abort.abort();
    }
    drop(out_tx);
    drop(subs_tx);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use restsip_protocol::{Event, EventKind, ServerFrame};
    use serde_json::json;

    #[test]
    fn an_event_frame_is_the_protocol_s_server_frame() {
        let event = Event {
            id: 7,
            resource: "/login/a@x/1".to_owned(),
            kind: EventKind::Message,
            data: json!({"from": "b@x", "body": {"text": "hi \"there\"", "n": [1, 2]}}),
        };
        let owned = serde_json::to_vec(&ServerFrame::Event {
            event: event.clone(),
        })
        .expect("json");
        assert_eq!(super::event_frame(&event).as_ref(), owned.as_slice());
    }
}
