//! Nothing acknowledged is lost: kill -9 of the relay and a restart keep users, offline
//! messages, queued SENDs, logins and calls.

use restsip_e2e::Relay;
use restsip_protocol::EventKind;
use serde_json::json;

#[tokio::test]
async fn kill_dash_nine_and_restart_lose_nothing_acknowledged() {
    let mut relay = Relay::default().await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    let bob_login = bob
        .login(json!({"contact": "sip:bob@10.0.0.2"}))
        .await
        .unwrap();
    let call = alice
        .request("POST", "/call", Some(json!({"subject": "durable"})))
        .await
        .unwrap()
        .body["url"]
        .as_str()
        .unwrap()
        .to_owned();
    bob.request(
        "POST",
        &call,
        Some(json!({"url": "/login/bob@example.net", "session": "rtsp://s"})),
    )
    .await
    .unwrap();
    alice
        .request(
            "POST",
            "/user/bob@example.net/message",
            Some(json!({"url": "rtsp://vm/1"})),
        )
        .await
        .unwrap();
    let mut sent = Vec::new();
    for n in 0..20 {
        let res = alice
            .request("SEND", "/login/bob@example.net", Some(json!({"n": n})))
            .await
            .unwrap();
        assert_eq!(res.status, 200);
        sent.push(n);
    }
    let token = alice.token().await.unwrap();
    let before = alice
        .sse("/login/bob@example.net", None)
        .await
        .unwrap()
        .next()
        .await
        .unwrap()
        .id;

    relay.kill_and_restart().await.unwrap();

    // Users and passwords.
    let alice = relay.client("alice@example.net", "pw-alice@example.net");
    let bob = relay.client("bob@example.net", "pw-bob@example.net");
    assert_eq!(
        alice.get("/user/bob@example.net").await.unwrap().status,
        200
    );
    // Tokens issued before the crash stay valid (the signing key is stored).
    assert_eq!(
        relay
            .anonymous()
            .get(&format!("/user/alice@example.net?access_token={token}"))
            .await
            .unwrap()
            .status,
        200
    );
    // Logins and calls, until they expire.
    let contacts = alice.get("/login/bob@example.net").await.unwrap().body;
    assert_eq!(contacts[0]["contact"], "sip:bob@10.0.0.2");
    let call_state = alice.get(&call).await.unwrap().body;
    assert_eq!(call_state["subject"], "durable");
    assert_eq!(call_state["children"][0]["session"], "rtsp://s");
    // Offline mail.
    assert_eq!(
        bob.get("/user/bob@example.net/message").await.unwrap().body[0]["url"],
        "rtsp://vm/1"
    );
    // Every acknowledged SEND is delivered, in order, once.
    let mut inbox = bob
        .sse(&format!("/login/bob@example.net/{bob_login}"), None)
        .await
        .unwrap();
    assert_eq!(inbox.next().await.unwrap().kind, EventKind::State);
    let mut got = Vec::new();
    for _ in &sent {
        got.push(
            inbox.next().await.unwrap().data["body"]["n"]
                .as_i64()
                .unwrap(),
        );
    }
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    inbox.assert_quiet().await;
    // Event ids after the restart are above the ones before it, so a resume is never confused.
    alice
        .request("SEND", "/login/bob@example.net", Some(json!({"n": 99})))
        .await
        .unwrap();
    let next = inbox.next().await.unwrap();
    assert_eq!(next.data["body"]["n"], 99);
    assert!(next.id > before, "{} > {before}", next.id);
}
