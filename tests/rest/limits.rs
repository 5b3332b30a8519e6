//! Connection limits and keep-alives.

use std::time::Duration;

use futures_util::StreamExt;
use restsip_e2e::Relay;

use crate::streams::get_accepting;

/// What `res`'s body brings within `within` (a stream's start and keep-alives), as text.
async fn read_for(res: reqwest::Response, within: Duration) -> String {
    let mut body = res.bytes_stream();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, body.next()).await {
        seen.extend_from_slice(&chunk.unwrap());
    }
    String::from_utf8(seen).unwrap()
}

#[tokio::test]
async fn connections_past_the_limit_wait_for_a_free_slot() {
    let relay = Relay::start(&["--max-connections", "2"]).await.unwrap();
    let a = relay.user("a@example.net").await.unwrap();
    // Two held connections (each stream uses its own client, so its own connection).
    let one = relay
        .client("a@example.net", "pw-a@example.net")
        .sse("/login/a@example.net", None)
        .await
        .unwrap();
    let _two = relay
        .client("a@example.net", "pw-a@example.net")
        .sse("/login/a@example.net", None)
        .await
        .unwrap();
    drop(a);
    let third = relay.client("a@example.net", "pw-a@example.net");
    let pending = tokio::spawn(async move { third.get("/user/a@example.net").await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !pending.is_finished(),
        "a third connection is not served while two are open"
    );
    drop(one);
    let res = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(res.status, 200, "it is served once a slot frees");
}

#[tokio::test]
async fn idle_streams_get_keepalives() {
    let relay = Relay::start(&["--keepalive", "1"]).await.unwrap();
    let a = relay.user("a@example.net").await.unwrap();
    let res = get_accepting(&a, "/login/a@example.net", "application/x-ndjson").await;
    let text = read_for(res, Duration::from_millis(2500)).await;
    let mut lines = text.split('\n');
    let first: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(first["kind"], "state");
    assert!(
        text.matches("\n\n").count() >= 1,
        "blank keep-alive lines on an idle stream: {text:?}"
    );
    // SSE keep-alives are comments.
    let res = get_accepting(&a, "/login/a@example.net", "text/event-stream").await;
    assert!(
        read_for(res, Duration::from_millis(2500))
            .await
            .lines()
            .any(|l| l.starts_with(':')),
        "SSE comment keep-alive"
    );
}

/// A reconnect storm after a restart: the listen backlog is as deep as the connections the
/// relay takes (capped by the kernel's `net.core.somaxconn`), not the 128 or 1024 a plain bind
/// gives, so thousands of clients connecting at once wait for the accept loop, not for SYN
/// retries (1 s, 3 s). `ss` shows a listening socket's backlog as its Send-Q.
#[tokio::test]
async fn the_listen_backlog_is_sized_from_the_connection_limit() {
    let relay = Relay::start(&["--max-connections", "3000"]).await.unwrap();
    let port = relay.base.rsplit(':').next().unwrap().to_owned();
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let backlog: u32 = text
        .split_whitespace()
        .nth(2)
        .and_then(|q| q.parse().ok())
        .unwrap_or_else(|| panic!("no listening socket on {port} in {text:?}"));
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096);
    assert_eq!(backlog, 3000.min(somaxconn), "{text}");
}
