//! One watcher: a raw TCP connection that asks for a resource's stream (SSE, or the WebSocket
//! with one subscription), says when its first event arrived, then reports each change it sees.
//! It parses nothing but what it needs (no JSON, no frame decoding: it looks for markers in the
//! bytes), so 10,000 of them cost the load generator little. When the plan's `hand_over`
//! turns true it stops reading and hands its socket to the coordinator (see `quiet`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::quiet::{self, Quiet};

/// What the marker of a change starts with; the round number follows.
pub(crate) const ROUND: &[u8] = b"round-";
/// Bytes kept from one read to the next so a marker split across reads is still found.
const CARRY: usize = 64;

/// How a watcher asks for the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// `GET {path}` with `Accept: text/event-stream`.
    Sse,
    /// `GET /ws`, then a `subscribe` frame for the path.
    Ws,
}

impl Transport {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Sse => "SSE",
            Self::Ws => "WebSocket",
        }
    }
}

/// What every watcher of a run shares.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The server.
    pub(crate) addr: SocketAddr,
    /// How to ask.
    pub(crate) transport: Transport,
    /// The resource path, e.g. `/call/ID`; its first event (the state) names it.
    pub(crate) path: String,
    /// `Authorization` value, if any.
    pub(crate) auth: Option<String>,
    /// Turns true when the watchers are to stop reading and hand their sockets over.
    pub(crate) hand_over: watch::Receiver<bool>,
}

/// What a watcher tells the coordinator.
#[derive(Debug)]
pub(crate) enum Report {
    /// Its stream is open and its first event arrived.
    Ready(Instant),
    /// It saw the change of this round at this instant.
    Change(u32, Instant),
    /// It stopped reading and handed its socket over, with kernel receive timestamps on.
    Quiet(Box<Quiet>),
    /// It failed (and ended).
    Failed(String),
}

/// Runs one watcher until its connection ends or it is aborted.
pub(crate) async fn run(plan: Arc<Plan>, reports: mpsc::UnboundedSender<Report>) {
    if let Err(e) = watch(&plan, &reports).await {
        let _ = reports.send(Report::Failed(format!("{e:#}")));
    }
}

async fn watch(plan: &Plan, reports: &mpsc::UnboundedSender<Report>) -> Result<()> {
    let mut stream = TcpStream::connect(plan.addr).await.context("connect")?;
    stream.set_nodelay(true)?;
    let auth = plan
        .auth
        .as_ref()
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let (request, expect) = match plan.transport {
        Transport::Sse => (
            format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n{auth}\r\n",
                plan.path, plan.addr
            ),
            "HTTP/1.1 200",
        ),
        Transport::Ws => (
            format!(
                "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n",
                plan.addr
            ),
            "HTTP/1.1 101",
        ),
    };
    stream.write_all(request.as_bytes()).await?;
    let mut buf = vec![0u8; 4096];
    let mut filled = 0;
    // The response head.
    let head_end = loop {
        if filled == buf.len() {
            bail!("response head longer than {} bytes", buf.len());
        }
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            bail!("connection closed before the response");
        }
        filled += n;
        if let Some(at) = find(&buf[..filled], b"\r\n\r\n") {
            break at + 4;
        }
    };
    if !buf.starts_with(expect.as_bytes()) {
        let line = String::from_utf8_lossy(&buf[..filled.min(200)]).into_owned();
        bail!("expected {expect}, got {line:?}");
    }
    if plan.transport == Transport::Ws {
        let frame = format!(r#"{{"op":"subscribe","path":"{}"}}"#, plan.path);
        stream.write_all(&masked_text(frame.as_bytes())).await?;
    }
    let mut scan = Scanner {
        ready: plan.path.as_bytes().to_vec(),
        is_ready: false,
        last_round: 0,
    };
    // Whatever followed the head, then every read, with a carry of the last bytes.
    buf.copy_within(head_end..filled, 0);
    filled -= head_end;
    let mut hand_over = plan.hand_over.clone();
    loop {
        scan.scan(&buf[..filled], reports);
        let keep = filled.min(CARRY);
        buf.copy_within(filled - keep..filled, 0);
        filled = keep;
        let read = tokio::select! {
            n = stream.read(&mut buf[filled..]) => Some(n?),
            _ = hand_over.wait_for(|h| *h) => None,
        };
        let Some(n) = read else { break };
        if n == 0 {
            bail!("the server closed the stream");
        }
        filled += n;
    }
    // Out of tokio's reactor: nothing in this process wakes up when the socket receives.
    let socket = stream.into_std()?;
    quiet::enable(&socket)?;
    let _ = reports.send(Report::Quiet(Box::new(Quiet {
        socket,
        transport: plan.transport,
    })));
    Ok(())
}

/// Looks for the ready marker, then for round markers.
struct Scanner {
    /// Bytes that mean the first event arrived.
    ready: Vec<u8>,
    /// Whether they did.
    is_ready: bool,
    /// The last round reported (the carry may show a marker twice).
    last_round: u32,
}

impl Scanner {
    fn scan(&mut self, bytes: &[u8], reports: &mpsc::UnboundedSender<Report>) {
        let now = Instant::now();
        if !self.is_ready {
            if find(bytes, &self.ready).is_none() {
                return;
            }
            self.is_ready = true;
            let _ = reports.send(Report::Ready(now));
        }
        let mut rest = bytes;
        while let Some(at) = find(rest, ROUND) {
            rest = &rest[at + ROUND.len()..];
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            // A number cut by the end of the read is read whole next time (from the carry).
            if digits == rest.len() {
                break;
            }
            let round = std::str::from_utf8(&rest[..digits])
                .ok()
                .and_then(|d| d.parse().ok());
            if let Some(round) = round.filter(|r| *r > self.last_round) {
                self.last_round = round;
                let _ = reports.send(Report::Change(round, now));
            }
        }
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A client's WebSocket text frame (clients must mask); `payload` is short.
fn masked_text(payload: &[u8]) -> Vec<u8> {
    let mask = [0x5a, 0x13, 0xc7, 0x29];
    let mut frame = vec![0x81];
    match payload.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_ready_then_rounds_once_each_even_across_reads() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut scan = Scanner {
            ready: b"/call/x".to_vec(),
            is_ready: false,
            last_round: 0,
        };
        scan.scan(b"data: {\"round-1\"}", &tx);
        assert!(rx.try_recv().is_err(), "no change before the first event");
        scan.scan(b"{\"resource\":\"/call/x\"} \"round-1\" \"round-", &tx);
        scan.scan(b"\"round-1\" \"round-2\"", &tx);
        let got: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|r| match r {
                Report::Ready(_) => "ready".to_owned(),
                Report::Change(n, _) => format!("change {n}"),
                Report::Quiet(_) => "quiet".to_owned(),
                Report::Failed(e) => e,
            })
            .collect();
        assert_eq!(got, ["ready", "change 1", "change 2"]);
    }

    #[test]
    fn masks_a_short_text_frame() {
        let frame = masked_text(b"hi");
        assert_eq!(frame[..2], [0x81, 0x82]);
        assert_eq!(frame[6] ^ frame[2], b'h');
    }
}
