//! The per-source rate limit: a flood gets one 503, then silence; other sources are served.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use restsip_e2e::Relay;

use super::{request, Answer, Socket};

/// OPTIONS from `ip` over `transport` as fast as it can send them; what came back.
async fn options_flood(
    relay: SocketAddr,
    transport: &str,
    ip: &str,
    n: usize,
) -> (Vec<Answer>, Duration) {
    let mut socket = Socket::open(relay, transport, ip).await;
    let via = socket.via();
    let started = Instant::now();
    for i in 0..n {
        let id = format!("options-{transport}-{ip}-{i}");
        socket
            .send(&request(
                "OPTIONS",
                "127.0.0.1",
                "scanner@attacker.example",
                &via,
                &id,
                "",
                "",
            ))
            .await;
    }
    let elapsed = started.elapsed();
    let mut got = Vec::new();
    // Every answer comes soon after its request; one second of quiet ends the reading.
    while let Some(a) = socket.next(Duration::from_secs(1)).await {
        got.push(a);
    }
    (got, elapsed)
}

async fn a_flood_gets_503_then_silence(transport: &str) {
    // 2 requests a second with a burst of 20: the flood of 300 outruns it by far.
    let relay = Relay::start(&["--sip-rate-limit", "2/s", "--sip-rate-burst", "20"])
        .await
        .unwrap();
    let sip = relay.sip.unwrap();
    let (got, elapsed) = options_flood(sip, transport, "127.0.0.1", 300).await;
    let ok = got.iter().filter(|a| a.status == 200).count();
    let refusals: Vec<&Answer> = got.iter().filter(|a| a.status == 503).collect();
    // The burst, plus what refilled while the flood was sent and read, plus the 503.
    let refilled = 2 * (elapsed.as_secs() as usize + 2);
    assert!(
        ok >= 20 && ok <= 20 + refilled,
        "{ok} answered in {elapsed:?}"
    );
    assert_eq!(refusals.len(), 1, "one 503 per window, then silence");
    assert!(
        refusals[0].text.contains("Retry-After: 10\r\n"),
        "{}",
        refusals[0].text
    );
    assert_eq!(got.len(), ok + 1, "nothing else is answered");
    // Another source is served at once.
    let (other, _) = options_flood(sip, transport, "127.0.0.2", 1).await;
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].status, 200, "{}", other[0].text);
    // And the flooded source is still told nothing within its window.
    let (again, _) = options_flood(sip, transport, "127.0.0.1", 1).await;
    assert!(
        again.iter().all(|a| a.status == 200),
        "no second 503 in the window"
    );
}

#[tokio::test]
async fn a_udp_flood_from_one_source_gets_503_then_silence_and_another_source_is_served() {
    a_flood_gets_503_then_silence("UDP").await;
}

#[tokio::test]
async fn a_tcp_flood_from_one_source_gets_503_then_silence_and_another_source_is_served() {
    a_flood_gets_503_then_silence("TCP").await;
}

#[tokio::test]
async fn exempt_sources_and_an_unlimited_relay_answer_every_request() {
    for args in [
        &[
            "--sip-rate-limit",
            "2/s",
            "--sip-rate-burst",
            "20",
            "--sip-rate-exempt",
            "127.0.0.0/8",
        ][..],
        &["--sip-rate-limit", "off"][..],
    ] {
        let relay = Relay::start(args).await.unwrap();
        let (got, _) = options_flood(relay.sip.unwrap(), "UDP", "127.0.0.1", 300).await;
        assert_eq!(got.len(), 300, "{args:?}");
        assert!(got.iter().all(|a| a.status == 200), "{args:?}");
    }
}
