//! `GET /ice-servers`: the STUN and TURN servers of `--ice-server` as RTCIceServer objects,
//! for signed-in pages only; an empty list when none is configured.

use restsip_e2e::Relay;
use serde_json::json;

#[tokio::test]
async fn pages_get_the_configured_ice_servers_once_signed_in() {
    let relay = Relay::start(&[
        "--ice-server",
        "stun:stun.example.net:3478",
        "--ice-server",
        "turn:turn.example.net:3478?transport=udp",
        "--ice-username",
        "alice",
        "--ice-credential",
        "s3cret",
    ])
    .await
    .unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let r = alice.get("/ice-servers").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!([
            {"urls": ["stun:stun.example.net:3478"]},
            {"urls": ["turn:turn.example.net:3478?transport=udp"], "username": "alice", "credential": "s3cret"},
        ])
    );
    let anonymous = relay.anonymous().get("/ice-servers").await.unwrap();
    anonymous.assert_problem(401, "unauthorized");

    let relay = Relay::default().await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    let r = bob.get("/ice-servers").await.unwrap();
    assert_eq!((r.status, r.body.clone()), (200, json!([])), "{}", r.body);
}
