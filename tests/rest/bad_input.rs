//! Bad input of every kind gets a clear problem, never a 500, and changes nothing.

use restsip_e2e::Relay;
use serde_json::json;

#[tokio::test]
async fn malformed_bodies_media_types_sizes_and_methods() {
    let relay = Relay::start(&["--max-body-bytes", "4096"]).await.unwrap();
    let a = relay.user("a@example.net").await.unwrap();
    let raw = |method: &str, path: &str, ct: Option<&str>, body: String| {
        let mut req = a.builder(method, path).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        async move { restsip_e2e::read(req.send().await.unwrap()).await.unwrap() }
    };
    let json_ct = Some("application/json");
    raw(
        "POST",
        "/login/a@example.net",
        json_ct,
        "{\"contact\": ".into(),
    )
    .await
    .assert_problem(400, "bad-request");
    raw("POST", "/login/a@example.net", json_ct, "".into())
        .await
        .assert_problem(400, "bad-request");
    raw(
        "POST",
        "/login/a@example.net",
        json_ct,
        "{\"contcat\": \"x\"}".into(),
    )
    .await
    .assert_problem(422, "unprocessable");
    raw(
        "POST",
        "/login/a@example.net",
        json_ct,
        "{\"expires\": \"soon\"}".into(),
    )
    .await
    .assert_problem(422, "unprocessable");
    raw(
        "POST",
        "/login/a@example.net",
        Some("text/plain"),
        "{}".into(),
    )
    .await
    .assert_problem(415, "unsupported-media-type");
    raw(
        "POST",
        "/login/a@example.net",
        Some("application/x-www-form-urlencoded"),
        "a=b".into(),
    )
    .await
    .assert_problem(415, "unsupported-media-type");
    let big = format!("{{\"presence\": \"{}\"}}", "x".repeat(8192));
    raw("POST", "/login/a@example.net", json_ct, big.clone())
        .await
        .assert_problem(413, "payload-too-large");
    raw("SEND", "/login/a@example.net", json_ct, big)
        .await
        .assert_problem(413, "payload-too-large");
    raw("SEND", "/login/a@example.net", json_ct, "not json".into())
        .await
        .assert_problem(400, "bad-request");
    raw(
        "POST",
        "/user",
        json_ct,
        "{\"email\": \"bad\", \"password\": \"x\"}".into(),
    )
    .await
    .assert_problem(422, "unprocessable");
    raw("POST", "/user", json_ct, "{\"email\": \"x@y\"}".into())
        .await
        .assert_problem(422, "unprocessable");
    raw("POST", "/user", json_ct, "[1,2]".into())
        .await
        .assert_problem(422, "unprocessable");
    raw(
        "POST",
        "/user/a@example.net/message",
        json_ct,
        "{\"url\": 5}".into(),
    )
    .await
    .assert_problem(422, "unprocessable");
    // Wrong path parameters, unknown paths and methods.
    a.get("/login/a@example.net/notanumber")
        .await
        .unwrap()
        .assert_problem(400, "bad-request");
    a.get("/no/such/thing")
        .await
        .unwrap()
        .assert_problem(404, "not-found");
    let res = a
        .request("BREW", "/user/a@example.net", None)
        .await
        .unwrap();
    res.assert_problem(405, "method-not-allowed");
    assert!(res.header("allow").unwrap().contains("PATCH"));
    let res = a
        .request("PATCH", "/login/a@example.net", None)
        .await
        .unwrap();
    res.assert_problem(405, "method-not-allowed");
    assert!(res.header("allow").unwrap().contains("SEND"));
    a.request("DELETE", "/call", None)
        .await
        .unwrap()
        .assert_problem(405, "method-not-allowed");
    // Bad stream parameters.
    let res = a
        .builder("GET", "/login/a@example.net")
        .header("accept", "text/event-stream")
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    restsip_e2e::read(res)
        .await
        .unwrap()
        .assert_problem(400, "bad-request");
    a.get("/login/a@example.net?stream=morse")
        .await
        .unwrap()
        .assert_problem(400, "bad-request");
    // After all that, nothing changed and the relay still answers.
    assert_eq!(a.get("/login/a@example.net").await.unwrap().body, json!([]));
}

#[tokio::test]
async fn cors_preflight_allows_send_and_cancel() {
    // A page of another origin, allowed by the operator.
    let relay = Relay::start(&["--allowed-origin", "http://page.example"])
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let res = http
        .request(reqwest::Method::OPTIONS, relay.url("/login/a@example.net"))
        .header("origin", "http://page.example")
        .header("access-control-request-method", "SEND")
        .header(
            "access-control-request-headers",
            "authorization, content-type, last-event-id",
        )
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    let allow = res.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        allow.contains("SEND") && allow.contains("CANCEL"),
        "{allow}"
    );
    let headers = res.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("last-event-id"),
        "{headers}"
    );
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://page.example"
    );
}
