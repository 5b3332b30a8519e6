//! Active resources: a GET that stays open gives the current state, then every change. One
//! event source per watch ([`crate::events`] over the bus, and the store for inboxes) feeds
//! three encodings: Server-Sent Events, newline-delimited JSON, and the multiplexed WebSocket.
//! Every watch runs its source inside the stream that gives its events out ([`Events`]): an SSE
//! or NDJSON response inside its body, a WebSocket's subscriptions inside the connection's
//! writer.
//!
//! Each stream holds a bounded queue; a consumer too slow to keep up makes its source fall
//! behind on the bus, and it is resynchronised with a fresh `state` event (inboxes re-read the
//! store), so a slow client neither stalls others nor grows memory.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use restsip_protocol::{Event, UpdateMode, NDJSON};
use tokio_stream::wrappers::IntervalStream;

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::bus::Topic;
use crate::error::{Error, Result};
use crate::events::{self, Flow, Sink};
use crate::inbox::Inbox;
use crate::outgoing::{Encoding, Outgoing};

/// Events a stream's source hands over before the stream gives them out (then it waits).
const STREAM_QUEUE: usize = 16;

/// How the client asked to receive a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// One JSON document, then the response ends.
    Plain,
    /// `Accept: text/event-stream`.
    Sse,
    /// `Accept: application/x-ndjson` (or `?stream=ndjson`).
    Ndjson,
}

/// The streaming part of a GET: format, resume point and update mode.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Watch {
    /// Encoding.
    pub(crate) format: Format,
    /// Resume after this event id (`Last-Event-ID` or `?since=`).
    pub(crate) since: Option<u64>,
    /// Differences or full state (`?updates=full|diff`).
    pub(crate) mode: UpdateMode,
}

impl Format {
    /// The format an `Accept` header asks for (`?stream=` may override it).
    pub(crate) fn accepted(accept: &str) -> Self {
        if accept.contains("text/event-stream") {
            Format::Sse
        } else if accept.contains(NDJSON) {
            Format::Ndjson
        } else {
            Format::Plain
        }
    }

    /// Whether a GET with this `Accept` header and query may ask for a stream (the lean
    /// connection path of [`super::lean`] serves those).
    pub(crate) fn may_stream(accept: &str, query: &str) -> bool {
        Self::accepted(accept) != Format::Plain
            || query
                .split('&')
                .any(|pair| pair.split_once('=').map_or(pair, |(key, _)| key) == "stream")
    }
}

impl Watch {
    /// Whether the response stays open.
    pub(crate) fn is_stream(&self) -> bool {
        self.format != Format::Plain
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Watch {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> std::result::Result<Self, Self::Rejection> {
        let accept = parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mut format = Format::accepted(accept);
        let mut since = match parts.headers.get("last-event-id") {
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .ok_or_else(|| {
                        ApiError::bad_request("Last-Event-ID must be an event id (a number)")
                    })?,
            ),
            None => None,
        };
        let mut mode = UpdateMode::Diff;
        for pair in parts
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "since" if since.is_none() => {
                    since = Some(
                        value
                            .parse()
                            .map_err(|_| ApiError::bad_request("since must be an event id"))?,
                    )
                }
                "updates" => {
                    mode = match value {
                        "full" => UpdateMode::Full,
                        "diff" => UpdateMode::Diff,
                        _ => return Err(ApiError::bad_request("updates must be full or diff")),
                    }
                }
                "stream" => {
                    format = match value {
                        "sse" => Format::Sse,
                        "ndjson" => Format::Ndjson,
                        _ => return Err(ApiError::bad_request("stream must be sse or ndjson")),
                    }
                }
                _ => {}
            }
        }
        Ok(Self {
            format,
            since,
            mode,
        })
    }
}

/// Counts open streams per user against the limit.
#[derive(Debug, Clone)]
pub(crate) struct StreamCounter {
    /// Open streams by user.
    open: Arc<Mutex<HashMap<String, usize>>>,
    /// Limit per user.
    max: usize,
}

/// One open stream; dropping it gives the slot back.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    /// The counter it came from.
    counter: StreamCounter,
    /// Whose slot.
    user: String,
    /// Counted in `/metrics` while open.
    _open: crate::observe::Open,
}

impl StreamCounter {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            open: Arc::new(Mutex::new(HashMap::new())),
            max,
        }
    }

    /// Takes a slot for `user`, or refuses past the limit.
    pub(crate) fn acquire(&self, user: &str) -> Result<StreamSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(user.to_owned()).or_insert(0);
        if *n >= self.max {
            return Err(Error::Limit(format!(
                "{user} already has {} open streams; close one first",
                self.max
            )));
        }
        *n += 1;
        Ok(StreamSlot {
            counter: self.clone(),
            user: user.to_owned(),
            _open: crate::observe::Open::new(crate::observe::STREAMS_OPEN),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.counter.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

/// A stream's end of an event source; SENDs are claimed in the store.
struct StreamSink {
    /// The queue of the [`Events`] stream that runs the source.
    queue: Arc<Mutex<VecDeque<Arc<Outgoing>>>>,
    /// Where SENDs are claimed.
    inbox: Inbox,
}

#[async_trait]
impl Sink for StreamSink {
    async fn emit(&self, event: Event) -> Result<Flow> {
        self.emit_shared(Outgoing::new(event)).await
    }

    async fn emit_shared(&self, event: Arc<Outgoing>) -> Result<Flow> {
        // A full queue waits for the stream to take from it: the stream polls the source
        // again only once it has emptied the queue, so no waker is needed.
        let mut event = Some(event);
        std::future::poll_fn(|_| {
            let mut queue = lock(&self.queue);
            if queue.len() >= STREAM_QUEUE {
                return Poll::Pending;
            }
            queue.extend(event.take());
            Poll::Ready(())
        })
        .await;
        Ok(Flow::Continue)
    }

    async fn emit_claimed(&self, seq: i64, event: Event) -> Result<Option<Flow>> {
        if !self.inbox.claim(seq).await? {
            return Ok(None);
        }
        self.emit(event).await.map(Some)
    }

    async fn emit_claimed_all(&self, events: Vec<(i64, Event)>) -> Result<Flow> {
        // Claimed together: the claims wait on the store at once, not one round trip each.
        let claims = events.iter().map(|(seq, _)| self.inbox.claim(*seq));
        let claimed = futures_util::future::join_all(claims).await;
        for ((_, event), claimed) in events.into_iter().zip(claimed) {
            if claimed? && self.emit(event).await? == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding it; a poisoned queue is still a queue.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The events of one watch, from its event source run inside the stream itself: whoever polls
/// the stream (for a response body, the HTTP connection's task) runs the source, so a watcher
/// costs no task or channel of its own and a change wakes one task per watcher, not two. While
/// the stream is not polled (a client not reading) neither is the source: it falls behind on
/// the bus and is resynchronised with a fresh `state` event when read again.
pub(crate) struct Events {
    /// The source, until it ends.
    source: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// What the source handed over that the stream has not yet given out.
    queue: Arc<Mutex<VecDeque<Arc<Outgoing>>>>,
}

impl Events {
    /// Whether the next poll has something to give without waiting for the source: events it
    /// handed over, or the stream's end once it has ended.
    pub(crate) fn has_more(&self) -> bool {
        self.source.is_none() || !lock(&self.queue).is_empty()
    }
}

impl Stream for Events {
    type Item = Arc<Outgoing>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(event) = lock(&this.queue).pop_front() {
            return Poll::Ready(Some(event));
        }
        // Queue empty: the source runs until it hands something over, waits, or ends. It waits
        // only on its own wakers (the bus, the store), never on a full queue, so Pending below
        // is always followed by a wake-up.
        if let Some(source) = &mut this.source {
            if source.as_mut().poll(cx).is_ready() {
                this.source = None;
            }
        }
        match lock(&this.queue).pop_front() {
            Some(event) => Poll::Ready(Some(event)),
            None if this.source.is_none() => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

/// Opens the event source of `topic` for `caller` as a stream of events that ends when the
/// resource goes away or the relay shuts down; counts against the caller's streams while open.
pub(crate) fn open_events(
    state: &AppState,
    caller: &Caller,
    topic: Topic,
    since: Option<u64>,
    mode: UpdateMode,
) -> Result<Events> {
    let queue = Arc::new(Mutex::new(VecDeque::new()));
    let source = source(state, caller, topic, since, mode, queue.clone())?;
    Ok(Events {
        source: Some(Box::pin(source)),
        queue,
    })
}

/// The event source of `topic` for `caller` into `queue`, holding one of the caller's stream
/// slots (taken now: past the limit, an error) while it runs.
fn source(
    state: &AppState,
    caller: &Caller,
    topic: Topic,
    since: Option<u64>,
    mode: UpdateMode,
    queue: Arc<Mutex<VecDeque<Arc<Outgoing>>>>,
) -> Result<impl Future<Output = ()> + Send + 'static> {
    let slot = state.streams.acquire(&caller.0)?;
    let resources = state.resources();
    let mut closing = state.closing.clone();
    let watcher = caller.0.clone();
    Ok(async move {
        let _slot = slot;
        // An address of another domain is subscribed to through the upstream while watched.
        // (Boxed, as the first state is: a source's future stays as large as the largest step
        // it ever awaits, for as long as it runs.)
        let _foreign = match &topic {
            Topic::Login(email) => Box::pin(resources.location.watch_foreign(email, &watcher))
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "foreign presence not watched");
                    None
                }),
            _ => None,
        };
        let sink = StreamSink {
            queue,
            inbox: resources.inbox.clone(),
        };
        let result = tokio::select! {
            r = events::run(&resources, &topic, since, mode, &sink) => r,
            _ = closing.wait_for(|c| *c) => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(resource = %topic.resource(), error = %e, "stream ended by an error");
        }
    })
}

/// An SSE frame: the event id, then the JSON on one `data:` line.
fn sse_frame(event: &Event) -> Bytes {
    let json = serde_json::to_string(event).unwrap_or_default();
    Bytes::from(format!("id: {}\ndata: {json}\n\n", event.id))
}

/// One NDJSON line.
fn ndjson_line(event: &Event) -> Bytes {
    let mut line = serde_json::to_vec(event).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// Answers a streaming GET of `topic` in the format asked.
pub(crate) fn watch(
    state: &AppState,
    caller: &Caller,
    topic: Topic,
    req: Watch,
) -> std::result::Result<Response, ApiError> {
    let events = open_events(state, caller, topic, req.since, req.mode)?;
    let keepalive = Duration::from_secs(state.limits.keepalive);
    // Each event's bytes are made once for all the resource's watchers (see `Outgoing`); a
    // comment line (SSE) or a blank line (NDJSON) keeps idle connections and proxies open.
    let (encoding, make, tick, content_type): (_, fn(&Event) -> Bytes, _, _) = match req.format {
        Format::Sse => (Encoding::Sse, sse_frame, &b":\n\n"[..], "text/event-stream"),
        Format::Ndjson | Format::Plain => (Encoding::Ndjson, ndjson_line, &b"\n"[..], NDJSON),
    };
    // Events, then a None that ends the body even while keep-alives still tick.
    let frames = events
        .map(move |event| Some(event.encoded(encoding, make)))
        .chain(futures_util::stream::once(async { None }));
    let ticks = IntervalStream::new(tokio::time::interval_at(
        tokio::time::Instant::now() + keepalive,
        keepalive,
    ))
    .map(move |_| Some(Bytes::from_static(tick)));
    let body = tokio_stream::StreamExt::merge(frames, ticks)
        .take_while(|frame| std::future::ready(frame.is_some()))
        .filter_map(std::future::ready)
        .map(Ok::<_, Infallible>);
    let mut response = Body::from_stream(body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Auth;
    use crate::bus::Bus;
    use crate::limits::Limits;
    use crate::store::{SqliteStore, Store, UserRecord};
    use restsip_protocol::{ContactSource, CreateLogin, EventKind, RefreshLogin};

    async fn state() -> (AppState, tokio::sync::watch::Sender<bool>) {
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open("sqlite::memory:").await.expect("store"));
        store
            .create_user(&UserRecord {
                email: "a@x".into(),
                password_hash: String::new(),
                name: None,
                data: Default::default(),
                created: 0,
            })
            .await
            .expect("user");
        let auth = Auth::new(
            store.clone(),
            Duration::from_secs(60),
            Arc::new(crate::sipapp::registrar::Ha1::new("restsip")),
        )
        .await
        .expect("auth");
        let (closing_tx, closing) = tokio::sync::watch::channel(false);
        (
            AppState::new(
                store,
                Bus::new(0, 16, 32),
                auth,
                Limits::default(),
                closing,
                None,
            ),
            closing_tx,
        )
    }

    #[tokio::test]
    async fn a_consumer_that_stops_reading_is_resynchronised_not_buffered() {
        let (state, _closing) = state().await;
        let caller = Caller("a@x".into());
        let contact = state
            .location
            .register("a@x", CreateLogin::default(), ContactSource::Web)
            .await
            .expect("login");
        let mut slow = open_events(
            &state,
            &caller,
            Topic::Login("a@x".into()),
            None,
            UpdateMode::Diff,
        )
        .expect("stream");
        let mut fast = open_events(
            &state,
            &caller,
            Topic::Login("a@x".into()),
            None,
            UpdateMode::Diff,
        )
        .expect("stream");
        // Each stream's source starts when first read: both take their first state now.
        for stream in [&mut slow, &mut fast] {
            let first = stream.next().await.expect("state");
            assert_eq!(first.kind, EventKind::State);
        }
        let changes = 500;
        let mut fast_seen = 0;
        for n in 0..changes {
            let presence = CreateLogin {
                presence: Some(serde_json::json!(n)),
                ..Default::default()
            };
            state
                .location
                .refresh("a@x", contact.id, RefreshLogin::Fields(presence))
                .await
                .expect("refresh");
            // The fast consumer keeps up while the slow one reads nothing.
            while let Some(Some(event)) = futures_util::FutureExt::now_or_never(fast.next()) {
                fast_seen += usize::from(event.kind == EventKind::Updated);
            }
            tokio::task::yield_now().await;
        }
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(200), fast.next()).await
        {
            fast_seen += usize::from(event.kind == EventKind::Updated);
        }
        assert_eq!(
            fast_seen, changes,
            "a fast consumer misses nothing while another is slow"
        );
        let mut received = Vec::new();
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(200), slow.next()).await
        {
            received.push(event);
        }
        assert!(
            received.len() < changes,
            "the slow stream was bounded, got {}",
            received.len()
        );
        assert!(
            received.iter().any(|e| e.kind == EventKind::State),
            "the slow stream was resynchronised with a state event"
        );
        let last = received.last().expect("events");
        let final_presence = match last.kind {
            EventKind::State => last.data[0]["presence"].clone(),
            _ => last.data["presence"].clone(),
        };
        assert_eq!(
            final_presence,
            serde_json::json!(changes - 1),
            "and ends at the latest state"
        );
    }
}
