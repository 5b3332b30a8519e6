//! `GET /ws`: one WebSocket per client that multiplexes subscriptions to active resources and
//! carries SEND and CANCEL and the SOAP services a page serves (`serve`, `service`,
//! `service-reply`), so a page needs one connection for everything. Frames are the JSON
//! `ClientFrame` and `ServerFrame` of the protocol crate.
//!
//! A connection is two tasks: this module's reader, which reads the client's frames with
//! tungstenite and acts on them, and [`writer`], which writes every frame the relay sends.

mod upgrade;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use restsip_protocol::{ClientFrame, Problem, ProblemKind, ServerFrame};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::auth::Caller;
use super::AppState;
use crate::bus::Topic;
use crate::error::Error;
use writer::{Command, Inputs, Outbox, Replies, Subscription};

/// Frames waiting for a slow client before subscriptions fall behind (and resynchronise).
const OUTGOING_QUEUE: usize = 256;
/// Largest frame a client may send.
const MAX_FRAME: usize = 256 * 1024;
/// Bytes read from the socket at a time: a frame longer than this is read in several reads, so
/// tungstenite's default of 128 KiB per connection, allocated up front, buys nothing for JSON
/// frames of a few hundred bytes and costs 1.3 GB at 10,000 connections.
const READ_BUFFER: usize = 4 * 1024;

/// `GET /ws`: upgrade to the multiplexed WebSocket.
pub(crate) async fn ws_upgrade(
    State(state): State<AppState>,
    caller: Caller,
    request: Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let (response, on_upgrade) = match upgrade::accept(&mut parts) {
        Ok(accepted) => accepted,
        Err(e) => return e.into_response(),
    };
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(state, caller, TokioIo::new(upgraded)).await,
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    response
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

/// Answers a frame the relay cannot take with an error frame (no path: it concerns no
/// subscription).
async fn refuse(out: &mpsc::Sender<Box<ServerFrame>>, problem: Problem) {
    let _ = out
        .send(Box::new(ServerFrame::Error {
            path: None,
            problem,
        }))
        .await;
}

async fn serve<IO>(state: AppState, caller: Caller, io: IO)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let _open = crate::observe::Open::new(crate::observe::WEBSOCKETS_OPEN);
    let (read, write) = tokio::io::split(io);
    let outbox = Arc::new(Outbox::default());
    let max = state.limits.max_body_bytes.min(MAX_FRAME);
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0);
    let mut stream = WebSocketStream::from_raw_socket(
        Replies::new(read, outbox.clone()),
        Role::Server,
        Some(config),
    )
    .await;
    // Boxed frames: a tokio channel allocates its first 32 slots up front, and 32 frames
    // (a few hundred bytes each) would cost every connection kilobytes it seldom uses.
    let (out_tx, frames) = mpsc::channel::<Box<ServerFrame>>(OUTGOING_QUEUE);
    // New subscriptions go to the writer, which runs their sources: an event's frame is
    // encoded once for all the connections watching its resource, and goes from the bus to
    // the socket in the writer's task.
    let (subs_tx, commands) = mpsc::unbounded_channel::<Command>();
    let keepalive = Duration::from_secs(state.limits.keepalive);
    let inputs = Inputs {
        frames,
        commands,
        outbox,
    };
    let writer = tokio::spawn(writer::run(write, inputs, keepalive));
    // Whether each subscription is gone, by path.
    let mut subscriptions: HashMap<String, Arc<AtomicBool>> = HashMap::new();
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
                refuse(&out_tx, problem).await;
                continue;
            }
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            Some(Ok(_)) => continue,
        };
        let frame: ClientFrame = match serde_json::from_str(&text) {
            Ok(frame) => frame,
            Err(e) => {
                let problem = Problem::new(ProblemKind::BadRequest, format!("bad frame: {e}"));
                refuse(&out_tx, problem).await;
                continue;
            }
        };
        let answer = match frame {
            ClientFrame::Subscribe {
                path,
                since,
                updates,
            } => {
                subscriptions.retain(|_, gone| !gone.load(Ordering::Relaxed));
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
                        let gone = Arc::new(AtomicBool::new(false));
                        let sub = Subscription {
                            path: path.clone(),
                            events,
                            gone: gone.clone(),
                        };
                        if subs_tx.send(Command::Subscribe(sub)).is_err() {
                            break;
                        }
                        subscriptions.insert(path, gone);
                        None
                    }
                    Err(e) => Some(ServerFrame::Error {
                        path: Some(path),
                        problem: problem_for(e),
                    }),
                }
            }
            ClientFrame::Unsubscribe { path } => {
                if subscriptions.remove(&path).is_some()
                    && subs_tx.send(Command::Unsubscribe(path)).is_err()
                {
                    break;
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
    // The writer ends its subscriptions, writes what is queued and closes.
    drop(out_tx);
    drop(subs_tx);
    let _ = writer.await;
}
