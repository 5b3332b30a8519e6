//! HTTPS and WSS on the HTTP port with `--tls-cert`/`--tls-key` (certificates from a test CA
//! made with rcgen): a client trusting the CA signs up, logs in and streams over wss:// and SSE; a
//! client that does not trust it is refused; plain HTTP to the TLS port gets a clear 400, and
//! garbage or a half handshake costs its connection only; SIGHUP reloads the certificate for
//! new connections (a broken file keeps the old one); bad files stop the start with why.

use std::time::Duration;

use restsip_e2e::tls::Pki;
use restsip_e2e::{relay_binary, Relay, WAIT};
use restsip_protocol::{EventKind, ServerFrame};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ALICE: &str = "alice@example.net";

/// A relay speaking TLS with a certificate `pki` issued for 127.0.0.1 (files `relay.*`),
/// its clients trusting `pki`.
async fn tls_relay(pki: &Pki) -> (Relay, restsip_e2e::tls::Issued) {
    let issued = pki.issue("relay", &["127.0.0.1", "localhost"]).unwrap();
    let (cert, key) = (
        issued.cert.display().to_string(),
        issued.key.display().to_string(),
    );
    let mut relay = Relay::start(&["--tls-cert", &cert, "--tls-key", &key])
        .await
        .unwrap();
    relay.trust(pki.client_config());
    (relay, issued)
}

fn addr_of(relay: &Relay) -> std::net::SocketAddr {
    relay
        .base
        .strip_prefix("https://")
        .expect("the first line says https://")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn https_and_wss_serve_the_api_to_a_client_trusting_the_certificate() {
    let pki = Pki::new().unwrap();
    let (relay, _) = tls_relay(&pki).await;
    assert!(
        relay.base.starts_with("https://127.0.0.1:"),
        "{}",
        relay.base
    );
    let alice = relay.user(ALICE).await.unwrap();
    let id = alice.login(json!({})).await.unwrap();
    let logins = alice.get(&format!("/login/{ALICE}")).await.unwrap();
    assert_eq!(logins.status, 200, "{}", logins.body);
    assert_eq!(logins.body[0]["id"], id, "{}", logins.body);

    let mut ws = alice.ws().await.unwrap();
    ws.send(json!({"op": "subscribe", "path": format!("/login/{ALICE}")}))
        .await
        .unwrap();
    let state = ws.next_event().await.unwrap();
    assert_eq!(state.kind, EventKind::State);
    // And over SSE (a connection whose first request is a stream: the lean path, over TLS).
    // A client of its own, so that its first request on the connection is the stream.
    let fresh = relay.client(ALICE, &format!("pw-{ALICE}"));
    let mut sse = fresh.sse(&format!("/login/{ALICE}"), None).await.unwrap();
    assert_eq!(sse.next().await.unwrap().kind, EventKind::State);
    alice
        .request("DELETE", &format!("/login/{ALICE}/{id}"), None)
        .await
        .unwrap();
    match ws.next().await.unwrap() {
        ServerFrame::Event { event } => assert_eq!(event.kind, EventKind::Removed),
        other => panic!("expected the removal, got {other:?}"),
    }
    assert_eq!(sse.next().await.unwrap().kind, EventKind::Removed);

    // A client with Mozilla's roots only does not trust the test CA.
    let stranger = reqwest::Client::builder().timeout(WAIT).build().unwrap();
    let err = stranger.get(relay.url("/openapi.json")).send().await;
    assert!(err.is_err(), "an untrusted certificate is refused: {err:?}");
}

#[tokio::test]
async fn plain_http_or_garbage_on_the_tls_port_costs_that_connection_only() {
    let pki = Pki::new().unwrap();
    let (relay, _) = tls_relay(&pki).await;
    let addr = addr_of(&relay);

    let plain = reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .unwrap()
        .get(format!("http://{addr}/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 400);
    let reply = restsip_e2e::read(plain).await.unwrap();
    reply.assert_problem(400, "bad-request");
    assert!(
        reply.body["detail"].as_str().unwrap().contains("https://"),
        "{}",
        reply.body
    );

    for junk in [
        &b"\x16\x03\x01\x00\x05\x01\x00"[..], // a handshake cut short
        &b"\x16\x03\x01\xff\xff\xde\xad\xbe\xef\x00"[..], // a record of garbage
        &b"\x00\x01\x02\x03 not tls at all\r\n\r\n"[..],
    ] {
        let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
        raw.write_all(junk).await.unwrap();
        let _ = raw.shutdown().await;
        let mut rest = Vec::new();
        let read = tokio::time::timeout(WAIT, raw.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the relay closes the connection");
    }
    // A client that connects and says nothing holds only its own connection.
    let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();

    let still = relay.anonymous().get("/openapi.json").await.unwrap();
    assert_eq!(still.status, 200, "the listener still serves");
}

#[tokio::test]
async fn sighup_reloads_the_certificate_for_new_connections() {
    let pki = Pki::new().unwrap();
    let (relay, first) = tls_relay(&pki).await;
    let addr = addr_of(&relay);
    assert_eq!(pki.presented(addr).await.unwrap(), first.der);

    // A client whose connection is open across the reload goes on.
    let alice = relay.user(ALICE).await.unwrap();
    let second = pki.issue("relay", &["127.0.0.1"]).unwrap();
    assert_ne!(first.der, second.der);
    let pid = relay.pid().unwrap().to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let presented = pki.presented(addr).await.unwrap();
        if presented == second.der {
            break;
        }
        assert_eq!(presented, first.der, "the old certificate or the new one");
        assert!(tokio::time::Instant::now() < deadline, "not reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = alice.get(&format!("/user/{ALICE}")).await.unwrap();
    assert_eq!(profile.status, 200, "{}", profile.body);

    // A broken key file: the reload fails and the certificate in use stays.
    std::fs::write(&second.key, "not a key").unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pki.presented(addr).await.unwrap(), second.der);
    assert_eq!(
        relay.anonymous().get("/openapi.json").await.unwrap().status,
        200,
        "still running"
    );
}

#[tokio::test]
async fn missing_or_mismatched_certificate_files_stop_the_start_with_why() {
    let pki = Pki::new().unwrap();
    let one = pki.issue("one", &["127.0.0.1"]).unwrap();
    let two = pki.issue("two", &["127.0.0.1"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("db").display());
    let cases = [
        (
            vec![
                "--tls-cert",
                "/nonexistent/cert.pem",
                "--tls-key",
                "/nonexistent/key.pem",
            ],
            "tls-cert",
        ),
        (
            vec![
                "--tls-cert",
                one.cert.to_str().unwrap(),
                "--tls-key",
                two.key.to_str().unwrap(),
            ],
            "does not fit",
        ),
        (
            vec!["--tls-cert", one.cert.to_str().unwrap()],
            "tls-cert and tls-key go together",
        ),
        (vec!["--sip-tls", "127.0.0.1:0"], "sip-tls needs"),
    ];
    for (args, why) in cases {
        let out = tokio::process::Command::new(relay_binary())
            .args([
                "--http",
                "127.0.0.1:0",
                "--sip",
                "127.0.0.1:0",
                "--database",
                &db,
            ])
            .args(&args)
            .output()
            .await
            .unwrap();
        assert!(!out.status.success(), "{args:?} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    }
}
