//! The WebSocket protocol of `/ws` itself, as a client library sees it: the handshake, pings
//! and pongs both ways, and the closing handshake (the relay writes its frames to the socket
//! itself, beside tungstenite reading the client's).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use restsip_e2e::{Relay, WsSocket};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// The next frame the relay sends, whatever its kind.
async fn next(ws: &mut WsSocket) -> Option<Message> {
    tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a frame or the end within 10 s")
        .map(|m| m.expect("a valid frame"))
}

/// The next text frame as JSON, skipping the relay's pings.
async fn next_json(ws: &mut WsSocket) -> serde_json::Value {
    loop {
        match next(ws).await {
            Some(Message::Text(text)) => return serde_json::from_str(&text).expect("JSON"),
            Some(Message::Ping(_)) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

fn text(value: serde_json::Value) -> Message {
    Message::Text(value.to_string().into())
}

/// Subscribes to a@example.net's logins and checks the first event is their state.
async fn watch_own_login(ws: &mut WsSocket) {
    ws.send(text(
        json!({"op": "subscribe", "path": "/login/a@example.net"}),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(ws).await["event"]["kind"], "state");
}

#[tokio::test]
async fn the_websocket_pongs_pings_keeps_alive_and_closes_with_the_closing_handshake() {
    let relay = Relay::start(&["--keepalive", "1"]).await.unwrap();
    let a = relay.user("a@example.net").await.unwrap();
    let mut ws = a.ws_socket().await.unwrap();
    // A client's ping is answered with its payload.
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    loop {
        match next(&mut ws).await {
            Some(Message::Pong(payload)) => {
                assert_eq!(&payload[..], b"are you there");
                break;
            }
            Some(Message::Ping(_)) => continue,
            other => panic!("expected the pong, got {other:?}"),
        }
    }
    // The relay pings an idle connection (every second here).
    match next(&mut ws).await {
        Some(Message::Ping(payload)) => assert!(payload.is_empty()),
        other => panic!("expected a keep-alive ping, got {other:?}"),
    }
    // Unsubscribing and subscribing again at once gives the state again, and nothing twice.
    let path = "/login/a@example.net";
    ws.send(text(json!({"op": "subscribe", "path": path})))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["event"]["kind"], "state");
    ws.send(text(json!({"op": "unsubscribe", "path": path})))
        .await
        .unwrap();
    ws.send(text(json!({"op": "subscribe", "path": path})))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["event"]["kind"], "state");
    // A frame after the state is the answer to this SEND, not a second state.
    ws.send(text(
        json!({"op": "send", "ref": "r", "path": "/login/nobody@example.net", "body": {}}),
    ))
    .await
    .unwrap();
    let reply = next_json(&mut ws).await;
    assert_eq!(
        (&reply["op"], &reply["ref"]),
        (&json!("reply"), &json!("r"))
    );
    // The client closes: the relay answers with its closing frame and the stream ends.
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    loop {
        match next(&mut ws).await {
            Some(Message::Close(_)) => break,
            Some(Message::Ping(_) | Message::Pong(_)) => continue,
            other => panic!("expected the closing frame, got {other:?}"),
        }
    }
    assert!(next(&mut ws).await.is_none(), "the connection ends");
}

#[tokio::test]
async fn a_get_of_the_websocket_without_its_handshake_gets_a_clear_problem() {
    let relay = Relay::default().await.unwrap();
    let a = relay.user("a@example.net").await.unwrap();
    let res = a.get("/ws").await.unwrap();
    res.assert_problem(400, "bad-request");
    let detail = res.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("WebSocket handshake"), "{detail}");
    // The relay still upgrades a proper handshake.
    let mut ws = a.ws_socket().await.unwrap();
    watch_own_login(&mut ws).await;
}

#[tokio::test]
async fn the_relay_closes_its_websockets_with_a_closing_frame_when_it_stops() {
    let mut relay = Relay::default().await.unwrap();
    let a = relay.user("a@example.net").await.unwrap();
    let mut ws = a.ws_socket().await.unwrap();
    watch_own_login(&mut ws).await;
    let closed = async {
        loop {
            match next(&mut ws).await {
                Some(Message::Close(_)) => break true,
                Some(Message::Ping(_)) => continue,
                other => panic!("expected the closing frame, got {other:?}"),
            }
        }
    };
    let (stopped, closed) = tokio::join!(relay.terminate(), closed);
    assert!(stopped.unwrap().success());
    assert!(closed);
}

#[tokio::test]
async fn a_subscription_whose_resource_is_deleted_ends_and_may_be_asked_for_again() {
    let relay = Relay::default().await.unwrap();
    let a = relay.user("a@example.net").await.unwrap();
    let url = restsip_e2e::cluster::call(&a).await;
    let mut ws = a.ws_socket().await.unwrap();
    // Two subscriptions on one connection: the login's keeps going after the call's ends.
    watch_own_login(&mut ws).await;
    ws.send(text(json!({"op": "subscribe", "path": url})))
        .await
        .unwrap();
    let state = next_json(&mut ws).await;
    assert_eq!(
        (
            state["event"]["kind"].as_str(),
            state["event"]["resource"].as_str()
        ),
        (Some("state"), Some(url.as_str())),
        "{state}"
    );
    assert_eq!(a.request("DELETE", &url, None).await.unwrap().status, 204);
    let gone = next_json(&mut ws).await;
    assert_eq!(gone["event"]["kind"], "gone", "{gone}");
    // The subscription has ended: asking again opens it again, and the call is no more.
    ws.send(text(json!({"op": "subscribe", "path": url})))
        .await
        .unwrap();
    let refused = next_json(&mut ws).await;
    assert_eq!(refused["op"], "error", "{refused}");
    assert_eq!(refused["path"], url.as_str());
    assert_eq!(refused["problem"]["status"], 404, "{refused}");
    // The other subscription still delivers.
    a.login(json!({})).await.unwrap();
    let change = next_json(&mut ws).await;
    assert_eq!(
        change["event"]["resource"], "/login/a@example.net",
        "{change}"
    );
}
