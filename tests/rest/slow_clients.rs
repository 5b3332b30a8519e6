//! Slow and greedy HTTP clients: one address cannot take every connection slot, a client that
//! never finishes its request header loses its connection, and an absurd Content-Length is
//! refused before any body is awaited. Honest clients around them are served throughout.

use std::net::SocketAddr;
use std::time::Duration;

use restsip_e2e::{closed_within, Relay, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A connection to the relay from the loopback address `from` (another "host").
async fn connect_from(from: &str, relay: &Relay) -> std::io::Result<TcpStream> {
    let to: SocketAddr = relay.base.trim_start_matches("http://").parse().unwrap();
    restsip_e2e::connect_from(from, to).await
}

#[tokio::test]
async fn slow_clients_from_one_address_cannot_lock_everyone_out() {
    let relay = Relay::start(&[
        "--max-connections",
        "300",
        "--max-connections-per-ip",
        "50",
        "--header-timeout",
        "2",
    ])
    .await
    .unwrap();
    // 300 slowloris connections from 127.0.0.2, each with a started request header.
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut stream = connect_from("127.0.0.2", &relay).await.unwrap();
        let _ = stream
            .write_all(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n")
            .await;
        slow.push(stream);
    }
    // An honest client from 127.0.0.1 is served at once.
    let res = tokio::time::timeout(WAIT, relay.anonymous().get("/openapi.json"))
        .await
        .expect("served while the slow clients hold their connections")
        .unwrap();
    assert_eq!(res.status, 200);
    // Past its share, the address's connections were closed at once...
    let mut cut = 0;
    for stream in &mut slow[50..] {
        if closed_within(stream, Duration::from_millis(600), b"").await {
            cut += 1;
        }
    }
    assert_eq!(
        cut, 250,
        "connections past the per-address limit are closed"
    );
    // ... and those it holds, dripping a header byte by byte, end at the header deadline.
    let mut kept = slow.drain(..50).collect::<Vec<_>>();
    let ends = kept
        .iter_mut()
        .map(|s| closed_within(s, Duration::from_secs(8), b"X"));
    let ended = futures_util::future::join_all(ends).await;
    assert!(ended.iter().all(|e| *e), "every slow header is cut off");
    // Its slots are back: the same address is served again.
    let mut again = connect_from("127.0.0.2", &relay).await.unwrap();
    again
        .write_all(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, again.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..40.min(answer.len())])
    );
}

#[tokio::test]
async fn an_absurd_content_length_is_refused_at_once() {
    let relay = Relay::default().await.unwrap();
    let mut stream = connect_from("127.0.0.1", &relay).await.unwrap();
    stream
        .write_all(
            b"POST /user HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 99999999999\r\n\r\n{\"email\":",
        )
        .await
        .unwrap();
    // No body follows: the answer must not wait for one.
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("payload-too-large") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("answered without waiting for the body")
            .unwrap();
        assert!(
            n > 0,
            "closed without an answer: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    // Honest sign-ups go on.
    relay.user("a@example.net").await.unwrap();
}
