//! Operations against the real binary: `/metrics` scraped over its own listener (`--metrics`)
//! after real REST traffic (sign-up, login, a stream, SEND delivered, SEND queued and
//! cancelled) and real SIP traffic (a digest REGISTER and an OPTIONS from a socket phone), the
//! counters moved with the right labels; `/readyz` naming an rtpengine that does not answer,
//! and ready with a real one; the SIP upstream (an OPTIONS ping) and SOAP services (HTTP) checked
//! the same way.

use restsip_e2e::metrics::Scrape;
use restsip_e2e::rtpengine::Rtpengine;
use restsip_e2e::Relay;
use restsip_protocol::EventKind;
use serde_json::{json, Value};
use tokio::net::UdpSocket;

use crate::phones::Phone;

const ALICE: &str = "alice@example.net";
const BOB: &str = "bob@example.net";
const CAROL: &str = "carol@example.net";

#[tokio::test]
async fn metrics_count_rest_and_sip_traffic_by_route_method_and_code() {
    let relay = Relay::start(&["--metrics", "127.0.0.1:0"]).await.unwrap();
    // Its own listener, on the port the startup line names.
    let url = relay.announced("metrics on ").unwrap();

    // REST: two sign-ups, two logins, a stream, a SEND it gets, a SEND queued then cancelled.
    let alice = relay.user(ALICE).await.unwrap();
    let bob = relay.user(BOB).await.unwrap();
    let laptop = bob.login(json!({"contact": "laptop"})).await.unwrap();
    let phone_login = bob.login(json!({"contact": "phone"})).await.unwrap();
    let mut on_laptop = bob
        .sse(&format!("/login/{BOB}/{laptop}"), None)
        .await
        .unwrap();
    assert_eq!(on_laptop.next().await.unwrap().kind, EventKind::State);
    let im = json!({"command": "im", "text": "hi"});
    let r = alice
        .request("SEND", &format!("/login/{BOB}/{laptop}"), Some(im.clone()))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(on_laptop.next().await.unwrap().kind, EventKind::Message);
    let inbox = format!("/login/{BOB}/{phone_login}");
    let r = alice.request("SEND", &inbox, Some(im)).await.unwrap();
    assert_eq!(r.body["deliveries"][0]["status"], "queued", "{}", r.body);
    let r = alice
        .request("CANCEL", &inbox, Some(json!({"id": r.body["id"]})))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let missing = alice.get("/user/nobody@example.net").await.unwrap();
    assert!(
        missing.status == 404 || missing.status == 403,
        "{}",
        missing.status
    );

    // SIP: a phone registers with digest (401, then 200) and sends OPTIONS (200).
    relay.user(CAROL).await.unwrap();
    let phone = Phone::new(&relay).await;
    let status = phone
        .register_as(CAROL, CAROL, &format!("pw-{CAROL}"))
        .await;
    assert_eq!(status, "SIP/2.0 200 OK");
    let relay_addr = relay.sip.unwrap();
    let port = phone.port;
    phone
        .send(&format!(
            "OPTIONS sip:{relay_addr} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-observe-opt;rport\r\n\
             Max-Forwards: 70\r\nTo: <sip:{relay_addr}>\r\nFrom: <sip:{CAROL}>;tag=o1\r\n\
             Call-ID: observe-opt\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ))
        .await;
    phone.next("SIP/2.0 200").await;

    let delivered = "restsip_sends_delivered_total";
    let m = Scrape::until(&url, |m| m.sum(delivered, &[]) >= 1.0)
        .await
        .unwrap();
    let http = "restsip_http_requests_total";
    // HTTP by the matched route template, method and status, never the raw path.
    assert_eq!(
        m.sum(
            http,
            &[("method", "POST"), ("route", "/user"), ("status", "201")]
        ),
        3.0,
        "{}",
        m.text
    );
    assert_eq!(
        m.sum(
            http,
            &[
                ("method", "POST"),
                ("route", "/login/{email}"),
                ("status", "201")
            ]
        ),
        2.0
    );
    assert_eq!(
        m.sum(
            http,
            &[
                ("method", "SEND"),
                ("route", "/login/{email}/{id}"),
                ("status", "200")
            ]
        ),
        2.0
    );
    assert_eq!(
        m.sum(
            http,
            &[("method", "CANCEL"), ("route", "/login/{email}/{id}")]
        ),
        1.0
    );
    assert_eq!(
        m.sum(http, &[("method", "GET"), ("route", "/user/{id}")]),
        1.0
    );
    assert!(
        !m.text.contains("example.net"),
        "a raw path leaked into a label:\n{}",
        m.text
    );
    let latency = "restsip_http_request_duration_seconds_count";
    assert_eq!(
        m.sum(latency, &[("method", "POST"), ("route", "/user")]),
        3.0
    );
    assert!(m.has(
        "restsip_http_request_duration_seconds_bucket",
        &[("route", "/user"), ("le", "0.005")]
    ));
    // Streams, SENDs.
    assert_eq!(m.sum("restsip_streams_open", &[]), 1.0, "{}", m.text);
    assert_eq!(m.sum("restsip_sends_queued_total", &[]), 2.0);
    assert_eq!(m.sum(delivered, &[]), 1.0);
    assert_eq!(m.sum("restsip_sends_cancelled_total", &[]), 1.0);
    assert!(m.sum("restsip_store_commit_seconds_count", &[("kind", "sends")]) >= 2.0);
    // SIP by method and code, both ways.
    let requests = "restsip_sip_requests_total";
    let responses = "restsip_sip_responses_total";
    assert_eq!(
        m.sum(requests, &[("direction", "in"), ("method", "REGISTER")]),
        2.0
    );
    assert_eq!(
        m.sum(requests, &[("direction", "in"), ("method", "OPTIONS")]),
        1.0
    );
    assert_eq!(
        m.sum(responses, &[("direction", "out"), ("code", "401")]),
        1.0
    );
    assert_eq!(
        m.sum(responses, &[("direction", "out"), ("code", "200")]),
        2.0
    );
    assert!(m.sum("restsip_sip_transactions_total", &[("kind", "server")]) >= 1.0);
    // Registrations and logins alive, by source.
    assert_eq!(m.sum("restsip_logins_active", &[("source", "sip")]), 1.0);
    assert_eq!(m.sum("restsip_logins_active", &[("source", "web")]), 2.0);

    // The stream closes: the gauge comes down.
    drop(on_laptop);
    let m = Scrape::until(&url, |m| m.sum("restsip_streams_open", &[]) == 0.0)
        .await
        .unwrap();
    assert_eq!(m.sum("restsip_streams_open", &[]), 0.0, "{}", m.text);
}

/// GET `/readyz` of `relay`: the status and the JSON.
async fn readyz(relay: &Relay) -> (u16, Value) {
    let r = relay.anonymous().get("/readyz").await.unwrap();
    (r.status, r.body)
}

#[tokio::test]
async fn readyz_names_an_rtpengine_that_does_not_answer_and_is_ready_with_a_real_one() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let relay = Relay::start(&["--rtpengine", &addr]).await.unwrap();
    let (status, body) = readyz(&relay).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not ready", "{body}");
    assert_eq!(body["failing"], json!(["rtpengine"]), "{body}");
    assert_eq!(body["checks"]["rtpengine"]["status"], "failing", "{body}");
    assert_eq!(body["checks"]["store"]["status"], "ok", "{body}");
    assert_eq!(body["checks"]["sip"]["status"], "ok", "{body}");
    // Alive all the same.
    let health = relay.anonymous().get("/healthz").await.unwrap();
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.body["status"], "ok");

    let engine = Rtpengine::start().await.unwrap();
    let relay = Relay::start(&["--rtpengine", &engine.addr()])
        .await
        .unwrap();
    let (status, body) = readyz(&relay).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["checks"]["rtpengine"]["status"], "ok", "{body}");
    assert!(body.get("failing").is_none(), "{body}");

    // Without rtpengine configured, the check is off and the relay ready.
    let relay = Relay::default().await.unwrap();
    let (status, body) = readyz(&relay).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["rtpengine"]["status"], "off", "{body}");
}

/// A UDP "upstream SIP server" on loopback answering each request 200 OK (echoing its Via,
/// From, To, Call-ID and CSeq); its address.
async fn answering_upstream() -> std::net::SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            let mut answer = String::from("SIP/2.0 200 OK\r\n");
            for line in request.split("\r\n").skip(1) {
                let name = line
                    .split(':')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                if ["via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"]
                    .contains(&name.as_str())
                {
                    answer.push_str(line);
                    answer.push_str("\r\n");
                }
            }
            answer.push_str("Content-Length: 0\r\n\r\n");
            let _ = socket.send_to(answer.as_bytes(), from).await;
        }
    });
    addr
}

#[tokio::test]
async fn readyz_checks_the_sip_upstream_with_an_options_ping() {
    let upstream = answering_upstream().await;
    let relay = Relay::start(&["--sip-upstream", &format!("sip:{upstream}")])
        .await
        .unwrap();
    let (status, body) = readyz(&relay).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["upstream"]["status"], "ok", "{body}");
    let detail = body["checks"]["upstream"]["detail"].as_str().unwrap_or("");
    assert!(detail.contains("200"), "{body}");
    assert_eq!(body["checks"]["soap"]["status"], "off", "{body}");

    // An upstream that never answers: not ready, named.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let relay = Relay::start(&["--sip-upstream", &format!("sip:{addr}")])
        .await
        .unwrap();
    let (status, body) = readyz(&relay).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failing"], json!(["upstream"]), "{body}");
    assert_eq!(body["checks"]["upstream"]["status"], "failing", "{body}");
    // It was asked (an OPTIONS reached it), and the relay is alive all the same.
    let mut buf = vec![0u8; 65_535];
    let (n, _) = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        silent.recv_from(&mut buf),
    )
    .await
    .expect("the relay sent the silent upstream something")
    .unwrap();
    assert!(
        buf[..n].starts_with(b"OPTIONS "),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let health = relay.anonymous().get("/healthz").await.unwrap();
    assert_eq!(health.status, 200, "{}", health.body);

    // Not configured: off.
    let relay = Relay::default().await.unwrap();
    let (status, body) = readyz(&relay).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["upstream"]["status"], "off", "{body}");
}

#[tokio::test]
async fn readyz_checks_the_soap_services_over_http() {
    // Any HTTP answer counts (here a 405 to the probe's HEAD: the service only takes POST).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/soap", axum::routing::post(|| async { "ok" }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let service = |url: String| format!("urn:example:quotes={url}");
    let relay = Relay::start(&["--soap-service", &service(format!("http://{up}/soap"))])
        .await
        .unwrap();
    let (status, body) = readyz(&relay).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["soap"]["status"], "ok", "{body}");

    // One of two is a closed port: not ready, and the detail names it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!(
        "http://127.0.0.1:{}/soap",
        closed.local_addr().unwrap().port()
    );
    drop(closed);
    let relay = Relay::start(&[
        "--soap-service",
        &service(format!("http://{up}/soap")),
        "--soap-service",
        &format!("urn:example:down={down}"),
    ])
    .await
    .unwrap();
    let (status, body) = readyz(&relay).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failing"], json!(["soap"]), "{body}");
    let detail = body["checks"]["soap"]["detail"].as_str().unwrap_or("");
    assert!(detail.contains(&down), "{body}");
    assert!(!detail.contains(&up.to_string()), "{body}");
}
