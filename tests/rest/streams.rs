//! Active resources over SSE, NDJSON and the WebSocket: first the state, then changes; resume.

use restsip_e2e::{Client, Relay};
use restsip_protocol::{EventKind, ServerFrame};
use serde_json::json;

/// `client`'s GET of `path` asking for `accept` (a stream's media type): the response, its
/// body unread.
pub(crate) async fn get_accepting(client: &Client, path: &str, accept: &str) -> reqwest::Response {
    client
        .builder("GET", path)
        .header("accept", accept)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn sse_resumes_after_a_reconnect_without_missing_or_repeating() {
    let relay = Relay::default().await.unwrap();
    let a = relay.user("a@example.net").await.unwrap();
    let watcher = relay.user("w@example.net").await.unwrap();
    let mut stream = watcher.sse("/login/a@example.net", None).await.unwrap();
    let state = stream.next().await.unwrap();
    assert_eq!(state.kind, EventKind::State);
    assert_eq!(state.data, json!([]));
    let first = a.login(json!({"contact": "one"})).await.unwrap();
    let seen = stream.next().await.unwrap();
    assert_eq!(
        (seen.kind, seen.data["id"].as_i64()),
        (EventKind::Added, Some(first))
    );
    drop(stream);

    // Changes while the watcher is away.
    let second = a.login(json!({"contact": "two"})).await.unwrap();
    a.request("DELETE", &format!("/login/a@example.net/{first}"), None)
        .await
        .unwrap();

    let mut stream = watcher
        .sse("/login/a@example.net", Some(seen.id))
        .await
        .unwrap();
    let added = stream.next().await.unwrap();
    assert_eq!(
        (added.kind, added.data["id"].as_i64()),
        (EventKind::Added, Some(second))
    );
    let removed = stream.next().await.unwrap();
    assert_eq!(
        (removed.kind, removed.data["id"].as_i64()),
        (EventKind::Removed, Some(first))
    );
    assert!(added.id > seen.id && removed.id > added.id);
    stream.assert_quiet().await;
}

#[tokio::test]
async fn an_inbox_resumes_from_the_last_message_seen() {
    let relay = Relay::default().await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    let id = bob.login(json!({})).await.unwrap();
    let inbox = format!("/login/bob@example.net/{id}");
    let mut stream = bob.sse(&inbox, None).await.unwrap();
    assert_eq!(stream.next().await.unwrap().kind, EventKind::State);
    alice
        .request("SEND", &inbox, Some(json!({"n": 1})))
        .await
        .unwrap();
    let one = stream.next().await.unwrap();
    drop(stream);
    alice
        .request("SEND", &inbox, Some(json!({"n": 2})))
        .await
        .unwrap();
    alice
        .request("SEND", &inbox, Some(json!({"n": 3})))
        .await
        .unwrap();
    let mut stream = bob.sse(&inbox, Some(one.id)).await.unwrap();
    assert_eq!(stream.next().await.unwrap().kind, EventKind::State);
    assert_eq!(stream.next().await.unwrap().data["body"]["n"], 2);
    assert_eq!(stream.next().await.unwrap().data["body"]["n"], 3);
    stream.assert_quiet().await;
}

#[tokio::test]
async fn full_mode_sends_the_whole_state_on_each_change() {
    let relay = Relay::default().await.unwrap();
    let a = relay.user("a@example.net").await.unwrap();
    let mut stream = a
        .sse("/login/a@example.net?updates=full", None)
        .await
        .unwrap();
    assert_eq!(stream.next().await.unwrap().data, json!([]));
    a.login(json!({"contact": "x"})).await.unwrap();
    a.login(json!({"contact": "y"})).await.unwrap();
    let one = stream.next().await.unwrap();
    assert_eq!(one.kind, EventKind::State);
    assert_eq!(one.data.as_array().unwrap().len(), 1);
    let two = stream.next().await.unwrap();
    assert_eq!(two.kind, EventKind::State);
    let contacts: Vec<_> = two
        .data
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["contact"].clone())
        .collect();
    assert_eq!(contacts, vec![json!("x"), json!("y")]);
}

#[tokio::test]
async fn ndjson_gives_state_then_changes_one_per_line() {
    let relay = Relay::default().await.unwrap();
    let a = relay.user("a@example.net").await.unwrap();
    a.login(json!({"contact": "first"})).await.unwrap();
    let res = get_accepting(&a, "/login/a@example.net", "application/x-ndjson").await;
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    drop(res);
    let mut stream = a.ndjson("/login/a@example.net").await.unwrap();
    let state = stream.next().await.unwrap();
    assert_eq!(state.data[0]["contact"], "first");
    a.request("PUT", "/login/a@example.net/1", Some(json!("moved")))
        .await
        .unwrap();
    let updated = stream.next().await.unwrap();
    assert_eq!(updated.kind, EventKind::Updated);
    assert_eq!(updated.data["contact"], "moved");
    // A plain GET without a streaming Accept is a plain JSON document.
    let plain = a.get("/login/a@example.net").await.unwrap();
    assert_eq!(plain.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn one_websocket_multiplexes_watches_and_sends() {
    let relay = Relay::default().await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    let bob_id = bob.login(json!({})).await.unwrap();
    let alice_id = alice.login(json!({})).await.unwrap();
    let call = alice
        .request("POST", "/call", Some(json!({"subject": "ws"})))
        .await
        .unwrap()
        .body["url"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut ws = bob.ws().await.unwrap();
    let inbox = format!("/login/bob@example.net/{bob_id}");
    ws.send(json!({"op": "subscribe", "path": inbox}))
        .await
        .unwrap();
    assert_eq!(ws.next_event().await.unwrap().kind, EventKind::State);
    ws.send(json!({"op": "subscribe", "path": call}))
        .await
        .unwrap();
    let state = ws.next_event().await.unwrap();
    assert_eq!(
        (state.resource.as_str(), state.kind),
        (call.as_str(), EventKind::State)
    );

    // A SEND over HTTP arrives on the socket, on the inbox subscription.
    alice
        .request(
            "SEND",
            &inbox,
            Some(json!({"command": "invite", "url": call})),
        )
        .await
        .unwrap();
    let msg = ws.next_event().await.unwrap();
    assert_eq!(
        (msg.resource.as_str(), msg.kind),
        (inbox.as_str(), EventKind::Message)
    );
    assert_eq!(msg.data["body"]["url"], call);

    // Bob answers over the socket; Alice gets it on her inbox.
    let mut alice_stream = alice
        .sse(&format!("/login/alice@example.net/{alice_id}"), None)
        .await
        .unwrap();
    alice_stream.next().await.unwrap();
    ws.send(json!({"op": "send", "ref": "r1", "path": "/login/alice@example.net", "body": {"command": "accept", "url": call}})).await.unwrap();
    match ws.next().await.unwrap() {
        ServerFrame::Reply {
            reference,
            status,
            body,
        } => {
            assert_eq!((reference.as_str(), status), ("r1", 200));
            assert_eq!(body["deliveries"][0]["status"], "delivered");
        }
        other => panic!("expected a reply, got {other:?}"),
    }
    let got = alice_stream.next().await.unwrap();
    assert_eq!(got.data["from"], "bob@example.net");
    assert_eq!(got.data["body"]["command"], "accept");

    // Membership changes arrive on the call subscription.
    alice
        .request(
            "POST",
            &call,
            Some(json!({"url": "/login/alice@example.net"})),
        )
        .await
        .unwrap();
    let added = ws.next_event().await.unwrap();
    assert_eq!(
        (added.resource.as_str(), added.kind),
        (call.as_str(), EventKind::Added)
    );

    // Errors are frames, and the socket stays usable.
    ws.send_text("{not json").await.unwrap();
    assert!(matches!(
        ws.next().await.unwrap(),
        ServerFrame::Error { .. }
    ));
    ws.send(json!({"op": "subscribe", "path": "/login/alice@example.net/1"}))
        .await
        .unwrap();
    match ws.next().await.unwrap() {
        ServerFrame::Error { problem, .. } => assert_eq!(problem.status, 403),
        other => panic!("expected an error, got {other:?}"),
    }
    ws.send(json!({"op": "send", "ref": "r2", "path": "/login/ghost@example.net", "body": {}}))
        .await
        .unwrap();
    match ws.next().await.unwrap() {
        ServerFrame::Reply { status, .. } => assert_eq!(status, 404),
        other => panic!("expected a reply, got {other:?}"),
    }
    ws.send(json!({"op": "unsubscribe", "path": call}))
        .await
        .unwrap();
    // Frames are handled in order: once this reply is back, the unsubscribe is done (without
    // it, the DELETE below could race the unsubscribe frame).
    ws.send(json!({"op": "send", "ref": "r-sync", "path": "/login/ghost@example.net", "body": {}}))
        .await
        .unwrap();
    match ws.next().await.unwrap() {
        ServerFrame::Reply { reference, .. } => assert_eq!(reference, "r-sync"),
        other => panic!("expected a reply, got {other:?}"),
    }
    alice.request("DELETE", &call, None).await.unwrap();
    ws.send(json!({"op": "send", "ref": "r3", "path": "/login/alice@example.net", "body": {}}))
        .await
        .unwrap();
    match ws.next().await.unwrap() {
        ServerFrame::Reply { reference, .. } => {
            assert_eq!(reference, "r3", "no call event after unsubscribe")
        }
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[tokio::test]
async fn browsers_authenticate_streams_with_a_short_lived_token() {
    let relay = Relay::start(&["--token-ttl", "60"]).await.unwrap();
    let a = relay.user("a@example.net").await.unwrap();
    let id = a.login(json!({})).await.unwrap();
    let token = a.token().await.unwrap();
    let anon = relay.anonymous();
    let mut stream = anon
        .sse(
            &format!("/login/a@example.net/{id}?access_token={token}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(stream.next().await.unwrap().kind, EventKind::State);
    let res = anon
        .get(&format!("/user/a@example.net?access_token={token}x"))
        .await
        .unwrap();
    res.assert_problem(401, "unauthorized");
    // The token names its user: it cannot read someone else's inbox.
    relay.user("b@example.net").await.unwrap();
    let res = anon
        .get(&format!("/user/b@example.net/message?access_token={token}"))
        .await
        .unwrap();
    res.assert_problem(403, "forbidden");
    // A WebSocket opened with the token in the URL works like one opened with Basic.
    let (mut ws, _) =
        tokio_tungstenite::connect_async(relay.ws_url(&format!("/ws?access_token={token}")))
            .await
            .unwrap();
    use futures_util::{SinkExt, StreamExt};
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        json!({"op": "subscribe", "path": "/login/a@example.net"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let frame = ws.next().await.unwrap().unwrap();
    assert!(frame.to_text().unwrap().contains("\"kind\":\"state\""));
    // Without credentials the upgrade is refused.
    assert!(tokio_tungstenite::connect_async(relay.ws_url("/ws"))
        .await
        .is_err());
}

#[tokio::test]
async fn streams_per_user_are_limited() {
    let relay = Relay::start(&["--max-streams-per-user", "2"])
        .await
        .unwrap();
    let a = relay.user("a@example.net").await.unwrap();
    let _one = a.sse("/login/a@example.net", None).await.unwrap();
    let _two = a.ndjson("/login/a@example.net").await.unwrap();
    let res = get_accepting(&a, "/login/a@example.net", "text/event-stream").await;
    restsip_e2e::read(res)
        .await
        .unwrap()
        .assert_problem(429, "too-many-requests");
    // Another user is not affected; closing a stream frees a slot.
    let b = relay.user("b@example.net").await.unwrap();
    let _b = b.sse("/login/a@example.net", None).await.unwrap();
    drop(_one);
    let mut again = None;
    for _ in 0..50 {
        if let Ok(s) = a.sse("/login/a@example.net", None).await {
            again = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "the slot of a closed stream is given back");
}

#[tokio::test]
async fn a_websocket_that_stops_reading_falls_behind_and_starts_again_from_the_state() {
    use futures_util::StreamExt;

    let relay = Relay::default().await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    bob.login(json!({})).await.unwrap();
    let alice_id = alice.login(json!({})).await.unwrap();
    let mut ws = bob.ws().await.unwrap();
    ws.send(json!({"op": "subscribe", "path": "/login/alice@example.net"}))
        .await
        .unwrap();
    assert_eq!(ws.next_event().await.unwrap().kind, EventKind::State);

    // Bob stops reading while Alice changes her presence 2,000 times, 30 KB each (60 MB):
    // more than the socket buffers on both sides and the bus (1,024 events) hold.
    const CHANGES: usize = 2_000;
    let note = "x".repeat(30 * 1024);
    let login = format!("/login/alice@example.net/{alice_id}");
    let changes = futures_util::stream::iter(0..CHANGES)
        .map(|n| {
            let (alice, login, note) = (alice.clone(), login.clone(), note.clone());
            async move {
                let presence = json!({"presence": {"status": format!("s{n}"), "note": note}});
                let put = alice.request("PUT", &login, Some(presence)).await.unwrap();
                assert_eq!(put.status, 200, "change {n}: {:?}", put.body);
            }
        })
        // One at a time, so the last one made is the last one the relay applied.
        .buffered(1)
        .collect::<Vec<()>>();
    tokio::time::timeout(std::time::Duration::from_secs(120), changes)
        .await
        .expect("the changes are answered while a reader is stuck");
    // Meanwhile the relay serves everyone else at once.
    let started = std::time::Instant::now();
    assert_eq!(
        alice.get("/login/alice@example.net").await.unwrap().status,
        200
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));

    // Bob reads again: what the sockets held, then (he fell behind) a fresh state with the
    // last presence, not every change he missed.
    let last = format!("s{}", CHANGES - 1);
    let mut updates = 0;
    loop {
        let event = ws.next_event().await.unwrap();
        assert_eq!(event.resource, "/login/alice@example.net");
        match event.kind {
            EventKind::State => {
                assert_eq!(event.data[0]["presence"]["status"], last.as_str());
                break;
            }
            EventKind::Updated => updates += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        updates < CHANGES - 1,
        "{updates} changes were kept for a reader that stopped"
    );
    // And the socket goes on: the next change comes as a change.
    let presence = json!({"presence": {"status": "back"}});
    alice.request("PUT", &login, Some(presence)).await.unwrap();
    let next = ws.next_event().await.unwrap();
    assert_eq!(
        (next.kind, next.data["presence"]["status"].as_str()),
        (EventKind::Updated, Some("back"))
    );
}
