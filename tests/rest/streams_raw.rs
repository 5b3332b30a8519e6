//! Streams over raw HTTP/1.1 connections, byte for byte: a connection whose first request asks
//! for a stream is answered chunked with `Connection: close` (the relay's lean path), however
//! slowly its head arrives; a keep-alive connection that streams after another request, a
//! head too large for the lean path and a malformed head are served as before; a refused
//! stream is answered whole and the connection closed; a client closing mid-stream gives back
//! its stream slot; stopping the relay ends its streams.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use restsip_e2e::{Relay, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ALICE: &str = "a@example.net";

fn addr_of(relay: &Relay) -> SocketAddr {
    relay.base.trim_start_matches("http://").parse().unwrap()
}

/// A streaming GET of alice's logins, with her credentials and `extra` header lines.
fn stream_get(extra: &str) -> String {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{ALICE}:pw-{ALICE}"));
    format!(
        "GET /login/{ALICE} HTTP/1.1\r\nHost: relay\r\nAccept: text/event-stream\r\n\
         Authorization: Basic {basic}\r\n{extra}\r\n"
    )
}

/// Reads from `stream` into `got` until it holds `needle`; panics when the connection ends
/// or nothing comes within [`WAIT`].
async fn read_until(stream: &mut TcpStream, got: &mut Vec<u8>, needle: &str) {
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(got).contains(needle) {
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in {}", String::from_utf8_lossy(got)))
            .unwrap();
        assert!(
            n > 0,
            "closed before {needle:?}: {}",
            String::from_utf8_lossy(got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

/// Reads the first event of a stream just asked for and returns the response head (lowercase).
async fn first_event(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    read_until(stream, &mut got, "\"kind\":\"state\"").await;
    let text = String::from_utf8_lossy(&got).to_string();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    let head = text.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    head
}

/// Whether the relay closes `stream` within [`WAIT`] (what it sends first is read away).
async fn closes(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    matches!(
        tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await,
        Ok(Ok(_)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn a_stream_asked_first_is_answered_chunked_then_closed_however_slow_the_head() {
    let relay = Relay::start(&["--max-streams-per-user", "1"])
        .await
        .unwrap();
    let alice = relay.user(ALICE).await.unwrap();
    // The head byte by byte.
    let mut raw = TcpStream::connect(addr_of(&relay)).await.unwrap();
    for byte in stream_get("").bytes() {
        raw.write_all(&[byte]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let head = first_event(&mut raw).await;
    assert!(head.contains("connection: close"), "{head}");
    assert!(head.contains("cache-control: no-cache"), "{head}");
    assert!(head.contains("date: "), "{head}");
    // A change arrives as its own chunk.
    let id = alice.login(serde_json::json!({})).await.unwrap();
    let mut got = Vec::new();
    read_until(&mut raw, &mut got, "\"kind\":\"added\"").await;
    assert!(String::from_utf8_lossy(&got).contains(&id.to_string()));
    // Her one stream slot is taken: a second stream is refused, answered whole, and closed.
    let mut second = TcpStream::connect(addr_of(&relay)).await.unwrap();
    second.write_all(stream_get("").as_bytes()).await.unwrap();
    let mut refused = Vec::new();
    tokio::time::timeout(WAIT, second.read_to_end(&mut refused))
        .await
        .expect("a refused stream's connection is closed")
        .unwrap();
    let refused = String::from_utf8_lossy(&refused);
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert!(refused.contains("too-many-requests"), "{refused}");
    // The client closing mid-stream gives the slot back.
    drop(raw);
    let mut again = None;
    for _ in 0..50 {
        let mut raw = TcpStream::connect(addr_of(&relay)).await.unwrap();
        raw.write_all(stream_get("").as_bytes()).await.unwrap();
        let mut got = Vec::new();
        read_until(&mut raw, &mut got, "\r\n").await;
        if got.starts_with(b"HTTP/1.1 200") {
            again = Some(raw);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "the slot of a closed stream is given back");
}

#[tokio::test]
async fn keep_alive_large_malformed_and_unauthorized_stream_requests() {
    let relay = Relay::default().await.unwrap();
    relay.user(ALICE).await.unwrap();
    let addr = addr_of(&relay);

    // A keep-alive connection: a plain GET, then a stream on the same connection.
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.write_all(b"GET /ice-servers HTTP/1.1\r\nHost: relay\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    read_until(&mut raw, &mut got, "\r\n\r\n").await;
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(!text.contains("connection: close"), "{text}");
    let length: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("a plain answer has a length")
        .trim()
        .parse()
        .unwrap();
    let body_start = text.find("\r\n\r\n").unwrap() + 4;
    let mut body = got[body_start..].to_vec();
    while body.len() < length {
        let mut buf = [0u8; 4096];
        let n = raw.read(&mut buf).await.unwrap();
        assert!(n > 0, "the keep-alive connection stays open");
        body.extend_from_slice(&buf[..n]);
    }
    raw.write_all(stream_get("").as_bytes()).await.unwrap();
    first_event(&mut raw).await;

    // A head too large for the lean path (16 KB) is still served, as a stream.
    let mut raw = TcpStream::connect(addr).await.unwrap();
    let pad = format!("X-Pad: {}\r\n", "p".repeat(16 * 1024));
    raw.write_all(stream_get(&pad).as_bytes()).await.unwrap();
    first_event(&mut raw).await;

    // One larger than any request may have gets 431; a malformed one 400.
    let mut raw = TcpStream::connect(addr).await.unwrap();
    let pad = format!("X-Pad: {}\r\n", "p".repeat(1024 * 1024));
    let _ = raw.write_all(stream_get(&pad).as_bytes()).await;
    let mut got = Vec::new();
    read_until(&mut raw, &mut got, "\r\n").await;
    assert!(
        got.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.write_all(stream_get("Bad Header Line\r\n").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    read_until(&mut raw, &mut got, "\r\n").await;
    assert!(
        got.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        closes(&mut raw).await,
        "a malformed request ends its connection"
    );

    // A stream without credentials: 401 whole, then the connection closes.
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.write_all(
        format!("GET /login/{ALICE} HTTP/1.1\r\nHost: relay\r\nAccept: text/event-stream\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, raw.read_to_end(&mut got))
        .await
        .expect("closed after the answer")
        .unwrap();
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 401"), "{text}");
    assert!(text.contains("www-authenticate"), "{text}");
    assert!(text.contains("connection: close"), "{text}");

    // A stream asked for with pipelined bytes after it is served too (by hyper).
    let mut raw = TcpStream::connect(addr).await.unwrap();
    let twice = format!("{}{}", stream_get(""), stream_get(""));
    raw.write_all(twice.as_bytes()).await.unwrap();
    first_event(&mut raw).await;
}

#[tokio::test]
async fn stopping_the_relay_ends_its_streams() {
    let mut relay = Relay::default().await.unwrap();
    let alice = relay.user(ALICE).await.unwrap();
    let mut raw = TcpStream::connect(addr_of(&relay)).await.unwrap();
    raw.write_all(stream_get("").as_bytes()).await.unwrap();
    first_event(&mut raw).await;
    let mut sse = alice.sse(&format!("/login/{ALICE}"), None).await.unwrap();
    sse.next().await.unwrap();
    let status = relay.terminate().await.unwrap();
    assert!(status.success(), "{status:?}");
    assert!(sse.ends().await.unwrap(), "the SSE stream ends");
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, raw.read_to_end(&mut rest))
        .await
        .expect("the raw stream ends")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&rest).ends_with("0\r\n\r\n"),
        "the stream ends with its last chunk: {}",
        String::from_utf8_lossy(&rest)
    );
}
