//! The writing side of `/ws`: one task per connection writes every frame it sends straight to
//! the socket. An event's frame (WebSocket header and JSON) is made once for all the
//! connections watching its resource, and each writes the same bytes; replies are framed as they
//! go. tungstenite reads the client's frames, and its own answers to them (pongs) reach the
//! socket through [`Outbox`], between whole frames of the writer's. The writer ends the
//! connection with the closing frame (RFC 6455, 5.5.1), after everything queued before it.
//!
//! Why not tungstenite's sink: with it each watcher's frame was copied into a per-connection
//! buffer through three layers of wakers (the split's lock, tokio-tungstenite's waker proxies,
//! the subscriptions' combinator), and a change watched by 10,000 WebSockets cost the relay
//! 12–17 µs per watcher against 9–12 µs for SSE, which writes its frames itself (README,
//! Benchmarks, "Eighth round", has the measurements).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::task::AtomicWaker;
use futures_util::StreamExt;
use restsip_protocol::{Event, ServerFrame};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;

use crate::api::lean::write;
use crate::api::stream::Events;
use crate::outgoing::{Encoding, Outgoing};

/// Most frames written after the first before a flush.
const BURST: usize = 64;
/// Most bytes tungstenite may have waiting for the writer (pongs of a client that sends pings
/// and does not read); more ends the connection.
const MAX_OUTBOX: usize = 64 * 1024;
/// A ping with no payload (FIN, opcode 9, unmasked, length 0).
const PING: &[u8] = &[0x89, 0x00];
/// A closing frame with no payload (FIN, opcode 8, unmasked, length 0).
const CLOSE: &[u8] = &[0x88, 0x00];
/// Longest wait for the closing frame and the socket's shutdown to go out.
const CLOSING: Duration = Duration::from_secs(5);

/// A text frame of `json` (which serde_json makes valid UTF-8), as a server sends it: unmasked.
fn text_frame(json: Vec<u8>) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 10);
    // Writing to a Vec does not fail.
    let _ = Frame::message(json, OpCode::Data(Data::Text), true).format(&mut out);
    Bytes::from(out)
}

/// A reply or other frame of this connection's own.
pub(super) fn reply_frame(frame: &ServerFrame) -> Bytes {
    text_frame(serde_json::to_vec(frame).unwrap_or_default())
}

/// An event's `{"op": "event", "event": ...}` frame: [`ServerFrame::Event`]'s JSON, written from
/// the borrowed event (the owned frame would copy its data first).
pub(super) fn event_frame(event: &Event) -> Bytes {
    #[derive(serde::Serialize)]
    #[serde(tag = "op", rename_all = "lowercase")]
    enum Frame<'a> {
        Event { event: &'a Event },
    }
    text_frame(serde_json::to_vec(&Frame::Event { event }).unwrap_or_default())
}

/// One subscription's events, run by the connection's writer: the writer polls the source
/// when it can write (as an SSE body does), so an event reaches the socket without a task of
/// its own in between, and a client that stops reading makes the source fall behind.
pub(super) struct Subscription {
    /// The path subscribed to (an unsubscribe names it).
    pub(super) path: String,
    /// The events.
    pub(super) events: Events,
    /// Set once the subscription is gone (ended or unsubscribed), for the reader to see.
    pub(super) gone: Arc<AtomicBool>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.gone.store(true, Ordering::Relaxed);
    }
}

/// What the reader tells the writer about subscriptions, in order: an unsubscribe and a new
/// subscription of the same path take effect as sent.
pub(super) enum Command {
    Subscribe(Subscription),
    Unsubscribe(String),
}

/// The subscriptions the writer runs, polled in turn with a waker of their own that wakes the
/// writer's task and notes that they woke it: a source's wake-up is the writer task's, with no
/// combinator's waker or queue in between, and the sources are polled only when one of them
/// woke the writer or still has events queued. Polling a waiting source again is not free: its
/// broadcast receiver takes its channel's lock each time to renew its waker, the lock the
/// sender holds while it wakes the channel's 256 receivers, and a fan-out woke each writer for
/// one event then polled its sources twice more (for a burst, and in the next wait).
///
/// A connection has a few subscriptions; each poll starts after the one the last event came
/// from, so none starves the others.
struct Sources {
    subscriptions: Vec<Subscription>,
    /// Where the next poll starts.
    next: usize,
    /// Set when a source woke the writer.
    wake: Arc<SourceWake>,
    /// The waker the sources are polled with ([`SourceWake`]).
    waker: Waker,
}

impl Default for Sources {
    fn default() -> Self {
        let wake = Arc::new(SourceWake::default());
        // The first poll looks at every source.
        wake.woken.store(true, Ordering::Release);
        Self {
            subscriptions: Vec::new(),
            next: 0,
            waker: Waker::from(wake.clone()),
            wake,
        }
    }
}

/// The sources' waker: notes the wake-up, then wakes the writer's task.
#[derive(Default)]
struct SourceWake {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for SourceWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Sources {
    fn apply(&mut self, command: Command) {
        match command {
            Command::Subscribe(sub) => {
                self.subscriptions.push(sub);
                // Its first poll starts it.
                self.wake.woken.store(true, Ordering::Release);
            }
            Command::Unsubscribe(path) => self.subscriptions.retain(|sub| sub.path != path),
        }
    }

    /// The next event of any subscription; an ended subscription is dropped. Pending (and the
    /// task woken later) while none has one, also while there are none.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Arc<Outgoing>> {
        self.wake.task.register(cx.waker());
        // Not woken since the last poll found every source waiting: they still are.
        if !self.wake.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let mut sources = Context::from_waker(&self.waker);
        let mut polled = 0;
        while polled < self.subscriptions.len() {
            if self.next >= self.subscriptions.len() {
                self.next = 0;
            }
            let i = self.next;
            match self.subscriptions[i].events.poll_next_unpin(&mut sources) {
                Poll::Ready(Some(event)) => {
                    self.next = i + 1;
                    // The others not asked this time, and what this one has behind this
                    // event (or its end), are for the next poll; its source, waiting again,
                    // wakes the writer when it has more.
                    if polled + 1 < self.subscriptions.len()
                        || self.subscriptions[i].events.has_more()
                    {
                        self.wake.woken.store(true, Ordering::Release);
                    }
                    return Poll::Ready(event);
                }
                // The last one takes its place, and is polled next.
                Poll::Ready(None) => drop(self.subscriptions.swap_remove(i)),
                Poll::Pending => {
                    self.next = i + 1;
                    polled += 1;
                }
            }
        }
        Poll::Pending
    }

    /// An event some subscription has ready now, if any (a source that is not ready wakes the
    /// writer later, through the sources' waker).
    async fn ready_event(&mut self) -> Option<Arc<Outgoing>> {
        std::future::poll_fn(|cx| match self.poll_event(cx) {
            Poll::Ready(event) => Poll::Ready(Some(event)),
            Poll::Pending => Poll::Ready(None),
        })
        .await
    }
}

/// Bytes tungstenite wrote (its answers to the client's control frames), waiting for the
/// writer.
#[derive(Default)]
pub(super) struct Outbox {
    bytes: Mutex<Vec<u8>>,
    ready: Notify,
}

impl Outbox {
    fn take(&self) -> Option<Bytes> {
        let mut bytes = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        (!bytes.is_empty()).then(|| Bytes::from(std::mem::take(&mut *bytes)))
    }
}

/// The connection as tungstenite reads it: reads come from the socket, writes go to the
/// [`Outbox`].
pub(super) struct Replies<R> {
    read: R,
    outbox: Arc<Outbox>,
}

impl<R> Replies<R> {
    pub(super) fn new(read: R, outbox: Arc<Outbox>) -> Self {
        Self { read, outbox }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Replies<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl<R: Unpin> AsyncWrite for Replies<R> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut bytes = self.outbox.bytes.lock().unwrap_or_else(|p| p.into_inner());
        if bytes.len() + buf.len() > MAX_OUTBOX {
            return Poll::Ready(Err(io::Error::other("the client reads nothing it is sent")));
        }
        bytes.extend_from_slice(buf);
        drop(bytes);
        self.outbox.ready.notify_one();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The writer's inputs: the reader's frames (replies, errors, SOAP requests) and commands, and
/// tungstenite's bytes.
pub(super) struct Inputs {
    pub(super) frames: mpsc::Receiver<Box<ServerFrame>>,
    pub(super) commands: mpsc::UnboundedReceiver<Command>,
    pub(super) outbox: Arc<Outbox>,
}

/// Writes the connection's frames to `io` until the reader is done and everything it queued is
/// written (or the client goes away), then closes: the closing frame, then the socket.
pub(super) async fn run<W: AsyncWrite + Unpin>(mut io: W, inputs: Inputs, keepalive: Duration) {
    let Inputs {
        mut frames,
        mut commands,
        outbox,
    } = inputs;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    let mut sources = Sources::default();
    let mut reader_gone = false;
    let mut failed = false;
    loop {
        let first = tokio::select! {
            frame = frames.recv() => match frame {
                Some(frame) => reply_frame(&frame),
                None => break,
            },
            command = commands.recv(), if !reader_gone => {
                match command {
                    Some(command) => sources.apply(command),
                    // The reader is done: its subscriptions end now; the frames it queued
                    // still go out.
                    None => {
                        reader_gone = true;
                        sources = Sources::default();
                    }
                }
                continue;
            }
            event = std::future::poll_fn(|cx| sources.poll_event(cx)) => {
                event.encoded(Encoding::WsFrame, event_frame)
            }
            () = outbox.ready.notified() => match outbox.take() {
                Some(bytes) => bytes,
                None => continue,
            },
            _ = ping.tick() => Bytes::from_static(PING),
        };
        // Every frame already waiting goes out in the same write: one system call per burst
        // rather than per frame; a lone frame (a change's, most often) is written as it is.
        let mut burst: Option<BytesMut> = None;
        for _ in 0..BURST {
            let next = match frames.try_recv() {
                Ok(frame) => reply_frame(&frame),
                Err(_) => match sources.ready_event().await {
                    Some(event) => event.encoded(Encoding::WsFrame, event_frame),
                    None => break,
                },
            };
            burst
                .get_or_insert_with(|| BytesMut::from(&first[..]))
                .extend_from_slice(&next);
        }
        let written = match &burst {
            Some(burst) => write(&mut io, burst).await,
            None => write(&mut io, &first).await,
        };
        if written.is_err() {
            failed = true;
            break;
        }
    }
    drop(sources);
    if !failed {
        // A client that reads nothing more does not hold the connection (or a shutdown).
        let close = async {
            let mut last = outbox.take().map(|b| b.to_vec()).unwrap_or_default();
            last.extend_from_slice(CLOSE);
            write(&mut io, &last).await?;
            io.shutdown().await
        };
        let _ = tokio::time::timeout(CLOSING, close).await;
    }
}

#[cfg(test)]
mod tests {
    use restsip_protocol::{Event, EventKind, ServerFrame};
    use serde_json::json;

    /// The payload of an unmasked server frame, after checking its header says a final text
    /// frame of that length.
    fn payload(frame: &[u8]) -> &[u8] {
        assert_eq!(frame[0], 0x81, "FIN and text");
        let (len, start) = match frame[1] {
            126 => (usize::from(u16::from_be_bytes([frame[2], frame[3]])), 4),
            127 => panic!("not expected here"),
            n => (usize::from(n), 2),
        };
        assert_eq!(frame.len(), start + len, "the length in the header");
        &frame[start..]
    }

    #[test]
    fn an_event_frame_is_the_protocol_s_server_frame_in_a_text_frame() {
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
        assert_eq!(payload(&super::event_frame(&event)), owned.as_slice());
        // Longer than 125 bytes: a 16-bit length.
        let long = Event {
            data: json!({"text": "x".repeat(300)}),
            ..event
        };
        let frame = super::event_frame(&long);
        assert_eq!(frame[1], 126);
        let parsed: ServerFrame = serde_json::from_slice(payload(&frame)).expect("json");
        assert!(matches!(parsed, ServerFrame::Event { event } if event.data == long.data));
    }
}
