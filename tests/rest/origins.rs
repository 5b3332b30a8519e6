//! Page origins (`--allowed-origin`): CORS answers only allowed origins, and a browser request
//! from a page of another origin (WebSocket upgrade, SSE and NDJSON streams, any request) gets
//! 403, while requests without an Origin header (non-browser clients) are served.

use restsip_e2e::{Client, Relay};
use tokio_tungstenite::tungstenite;
use tungstenite::client::IntoClientRequest;

/// `GET /login/{me}` as a stream (`accept`) from a page of `origin` (and `host` as the
/// authority, when given); the status.
async fn stream_from(
    client: &Client,
    accept: &str,
    origin: Option<&str>,
    host: Option<&str>,
) -> u16 {
    let mut req = client
        .builder("GET", &format!("/login/{}", client.email()))
        .header("accept", accept);
    if let Some(origin) = origin {
        req = req.header("origin", origin);
    }
    if let Some(host) = host {
        req = req.header("host", host);
    }
    // The status is all the test reads: the stream is dropped unread.
    req.send().await.unwrap().status().as_u16()
}

/// Opens `/ws` from a page of `origin`; the handshake's status (101 when upgraded).
async fn ws_from(relay: &Relay, client: &Client, origin: Option<&str>) -> u16 {
    use base64::Engine;
    let mut req = relay.ws_url("/ws").into_client_request().unwrap();
    let (email, password) = client.auth.clone().unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{email}:{password}"));
    req.headers_mut()
        .insert("authorization", format!("Basic {basic}").parse().unwrap());
    if let Some(origin) = origin {
        req.headers_mut().insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((_, res)) => res.status().as_u16(),
        Err(tungstenite::Error::Http(res)) => res.status().as_u16(),
        Err(e) => panic!("WebSocket handshake failed: {e}"),
    }
}

/// A CORS preflight for SEND from `origin`: the `Access-Control-Allow-Origin` answered.
async fn preflight(relay: &Relay, origin: &str) -> Option<String> {
    let res = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, relay.url("/login/a@example.net"))
        .header("origin", origin)
        .header("access-control-request-method", "SEND")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    res.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned())
}

const SSE: &str = "text/event-stream";
const NDJSON: &str = "application/x-ndjson";

#[tokio::test]
async fn by_default_the_relay_s_own_and_loopback_origins_are_allowed() {
    let relay = Relay::default().await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();

    // CORS reflects loopback development origins, not others.
    assert_eq!(
        preflight(&relay, "http://localhost:5173").await.as_deref(),
        Some("http://localhost:5173")
    );
    assert_eq!(
        preflight(&relay, "https://[::1]:8443").await.as_deref(),
        Some("https://[::1]:8443")
    );
    assert_eq!(preflight(&relay, "https://evil.example").await, None);
    assert_eq!(preflight(&relay, "null").await, None);

    for accept in [SSE, NDJSON] {
        // No Origin (a server, curl), the relay's own page, a local development server.
        assert_eq!(
            stream_from(&alice, accept, None, None).await,
            200,
            "{accept}"
        );
        assert_eq!(
            stream_from(&alice, accept, Some(&relay.base), None).await,
            200,
            "{accept}"
        );
        assert_eq!(
            stream_from(&alice, accept, Some("http://localhost:3000"), None).await,
            200,
            "{accept}"
        );
        // The relay's own origin under another name (as a LAN page reaches it).
        assert_eq!(
            stream_from(
                &alice,
                accept,
                Some("http://relay.example:8080"),
                Some("relay.example:8080")
            )
            .await,
            200,
            "{accept}"
        );
        // A foreign page, including one naming the relay's host on another port.
        for foreign in [
            "https://evil.example",
            "http://relay.example:8081",
            "null",
            "http://localhost.evil.example",
        ] {
            assert_eq!(
                stream_from(&alice, accept, Some(foreign), Some("relay.example:8080")).await,
                403,
                "{accept} from {foreign}"
            );
        }
    }

    assert_eq!(ws_from(&relay, &alice, None).await, 101);
    assert_eq!(ws_from(&relay, &alice, Some(&relay.base)).await, 101);
    assert_eq!(
        ws_from(&relay, &alice, Some("http://127.0.0.1:5173")).await,
        101
    );
    assert_eq!(
        ws_from(&relay, &alice, Some("https://evil.example")).await,
        403
    );

    // Any other request from a foreign page is refused too, with a problem that says why.
    let res = alice
        .builder("GET", "/login/alice@example.net")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    let reply = restsip_e2e::read(res).await.unwrap();
    reply.assert_problem(403, "forbidden");
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("--allowed-origin"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn listed_origins_replace_the_loopback_ones() {
    let relay = Relay::start(&[
        "--allowed-origin",
        "https://app.example:8443",
        "--allowed-origin",
        "https://other.example",
    ])
    .await
    .unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    assert_eq!(
        preflight(&relay, "https://app.example:8443")
            .await
            .as_deref(),
        Some("https://app.example:8443")
    );
    assert_eq!(preflight(&relay, "http://localhost:5173").await, None);
    for accept in [SSE, NDJSON] {
        for (origin, status) in [
            ("https://app.example:8443", 200),
            ("https://other.example", 200),
            ("https://other.example:443", 200),
            ("http://app.example:8443", 403),
            ("https://app.example", 403),
            ("http://localhost:5173", 403),
        ] {
            assert_eq!(
                stream_from(&alice, accept, Some(origin), None).await,
                status,
                "{accept} from {origin}"
            );
        }
        // The relay's own origin stays allowed.
        assert_eq!(
            stream_from(&alice, accept, Some(&relay.base), None).await,
            200
        );
    }
    assert_eq!(
        ws_from(&relay, &alice, Some("https://app.example:8443")).await,
        101
    );
    assert_eq!(
        ws_from(&relay, &alice, Some("http://localhost:5173")).await,
        403
    );
}

#[tokio::test]
async fn a_star_allows_every_origin_and_bad_origins_stop_the_start() {
    let relay = Relay::start(&["--allowed-origin", "*"]).await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    assert_eq!(
        stream_from(&alice, SSE, Some("https://anyone.example"), None).await,
        200
    );
    assert_eq!(
        preflight(&relay, "https://anyone.example").await.as_deref(),
        Some("https://anyone.example")
    );
    for bad in [
        "app.example",
        "https://app.example/path",
        "ftp://app.example",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite:{}", dir.path().join("relay.db").display());
        let run = tokio::process::Command::new(restsip_e2e::relay_binary())
            .args(["--http", "127.0.0.1:0", "--sip", "off", "--database", &db])
            .args(["--allowed-origin", bad])
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(std::time::Duration::from_secs(20), run)
            .await
            .expect("the relay refuses to start")
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad}");
        assert!(stderr.contains("allowed-origin"), "{bad}: {stderr}");
    }
}
