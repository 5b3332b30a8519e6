//! Webhooks deliver what a stream would: a `state`, then every change, POSTed in order to a real
//! HTTP receiver in this process, signed with the secret the relay returned, retried until
//! acknowledged.

use std::time::Duration;

use restsip_e2e::receiver::{Delivery, Receiver, DELIVERY_WAIT};
use restsip_e2e::{Client, Relay};
use restsip_protocol::EventKind;
use serde_json::{json, Value};

/// Creates a webhook of `resource` to `receiver`; returns its id and secret.
pub(crate) async fn hook(
    client: &Client,
    receiver: &Receiver,
    resource: &str,
    extra: Value,
) -> (String, String) {
    let mut body = json!({"url": receiver.url, "resource": resource});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let res = client
        .request("POST", "/webhook", Some(body))
        .await
        .unwrap();
    assert_eq!(res.status, 201, "{}", res.body);
    let id = res.body["id"].as_str().unwrap().to_owned();
    assert_eq!(res.body["url"], format!("/webhook/{id}"));
    assert_eq!(
        res.header("location"),
        Some(format!("/webhook/{id}").as_str())
    );
    let secret = res.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 32, "{secret}");
    (id, secret)
}

/// Polls `GET path` until `done` holds for the body (or fails after [`DELIVERY_WAIT`]).
pub(crate) async fn until(
    client: &Client,
    path: &str,
    done: impl Fn(u16, &Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + DELIVERY_WAIT;
    loop {
        let res = client.get(path).await.unwrap();
        if done(res.status, &res.body) {
            return res.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "GET {path} never got there: {} {}",
            res.status,
            res.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_signed(d: &Delivery, hook_id: &str, secret: &str) {
    assert_eq!(d.header("content-type"), Some("application/json"));
    assert_eq!(d.header("x-restsip-webhook"), Some(hook_id));
    assert_eq!(
        d.header("x-restsip-event-id"),
        Some(d.event.id.to_string().as_str())
    );
    assert!(d.signed_with(secret), "bad signature: {:?}", d.headers);
    assert!(!d.signed_with("not-the-secret"));
}

#[tokio::test]
async fn state_then_changes_arrive_in_order_and_signed() {
    let relay = Relay::default().await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    let mut diff = Receiver::start().await.unwrap();
    let mut full = Receiver::start().await.unwrap();
    let (id, secret) = hook(&alice, &diff, "/login/bob@example.net", json!({})).await;
    let (full_id, full_secret) = hook(
        &alice,
        &full,
        "/login/bob@example.net",
        json!({"updates": "full"}),
    )
    .await;

    // The first event of a new webhook is the state, like a stream's.
    let state = diff.next_accepted().await.unwrap();
    assert_eq!(state.event.kind, EventKind::State);
    assert_eq!(state.event.resource, "/login/bob@example.net");
    assert_eq!(state.event.data, json!([]));
    assert_signed(&state, &id, &secret);
    assert_eq!(
        full.next_accepted().await.unwrap().event.kind,
        EventKind::State
    );

    let login = bob
        .login(json!({"contact": "sip:bob@10.0.0.2"}))
        .await
        .unwrap();
    let path = format!("/login/bob@example.net/{login}");
    bob.request("PUT", &path, Some(json!({"presence": {"status": "away"}})))
        .await
        .unwrap();
    bob.request("DELETE", &path, None).await.unwrap();
    let mut last = state.event.id;
    for (kind, check) in [
        (EventKind::Added, json!(login)),
        (EventKind::Updated, json!({"status": "away"})),
        (EventKind::Removed, json!("logout")),
    ] {
        let d = diff.next_accepted().await.unwrap();
        assert_eq!(d.event.kind, kind, "{:?}", d.event);
        let field = match kind {
            EventKind::Added => &d.event.data["id"],
            EventKind::Updated => &d.event.data["presence"],
            _ => &d.event.data["reason"],
        };
        assert_eq!(field, &check);
        assert!(d.event.id > last, "ids increase");
        last = d.event.id;
        assert_signed(&d, &id, &secret);
    }
    // In full mode every change is the whole state.
    let mut sizes = Vec::new();
    for _ in 0..3 {
        let d = full.next_accepted().await.unwrap();
        assert_eq!(d.event.kind, EventKind::State);
        assert_signed(&d, &full_id, &full_secret);
        sizes.push(d.event.data.as_array().unwrap().len());
    }
    assert_eq!(sizes, vec![1, 1, 0]);

    // The owner sees the webhook, never its secret; the document describes every field.
    let view = until(&alice, &format!("/webhook/{id}"), |_, b| b["queued"] == 0).await;
    assert_eq!(view["status"], "active");
    assert_eq!(view["target"], diff.url.as_str());
    assert_eq!(view["resource"], "/login/bob@example.net");
    assert_eq!(view["updates"], "diff");
    assert_eq!(view["owner"], "alice@example.net");
    assert!(view.get("secret").is_none() && view.get("last_error").is_none());
    let list = alice.get("/webhook").await.unwrap().body;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.as_str(), full_id.as_str()]);
    let doc = relay.anonymous().get("/openapi.json").await.unwrap().body;
    let documented = doc["components"]["schemas"]["Webhook"]["properties"]
        .as_object()
        .unwrap();
    for key in view.as_object().unwrap().keys() {
        assert!(documented.contains_key(key), "undocumented field {key}");
    }
}

#[tokio::test]
async fn a_call_webhook_ends_with_its_call() {
    let relay = Relay::default().await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let mut rx = Receiver::start().await.unwrap();
    let call = alice
        .request("POST", "/call", Some(json!({"subject": "hooked"})))
        .await
        .unwrap()
        .body["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let (id, _) = hook(&alice, &rx, &call, json!({})).await;
    let state = rx.next_accepted().await.unwrap();
    assert_eq!(state.event.kind, EventKind::State);
    assert_eq!(state.event.data["subject"], "hooked");
    alice.login(json!({})).await.unwrap();
    alice
        .request(
            "POST",
            &call,
            Some(json!({"url": "/login/alice@example.net", "session": "s"})),
        )
        .await
        .unwrap();
    let added = rx.next_accepted().await.unwrap();
    assert_eq!(added.event.kind, EventKind::Added);
    assert_eq!(added.event.data["session"], "s");
    alice.request("DELETE", &call, None).await.unwrap();
    assert_eq!(
        rx.next_accepted().await.unwrap().event.kind,
        EventKind::Gone
    );
    // Its resource gone and delivered, the webhook is removed.
    until(&alice, &format!("/webhook/{id}"), |status, _| status == 404).await;
}

#[tokio::test]
async fn a_refusing_receiver_gets_every_event_later_in_order() {
    let relay = Relay::start(&["--webhook-max-backoff", "1"]).await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    let mut rx = Receiver::start().await.unwrap();
    rx.then(3, 500);
    let (_, secret) = hook(&alice, &rx, "/login/bob@example.net", json!({})).await;
    // The state is stored and tried (refused): changes from now on queue behind it.
    let first = rx.next().await.unwrap();
    assert_eq!((first.status, first.event.kind), (500, EventKind::State));
    let login = bob.login(json!({})).await.unwrap();
    bob.request(
        "PUT",
        &format!("/login/bob@example.net/{login}"),
        Some(json!({"presence": 1})),
    )
    .await
    .unwrap();
    let mut attempts = vec![first];
    loop {
        let d = rx.next().await.unwrap();
        let done = d.event.kind == EventKind::Updated;
        attempts.push(d);
        if done {
            break;
        }
    }
    // The same event was tried until acknowledged, one at a time, and nothing overtook it.
    let seen: Vec<(u16, EventKind, u64)> = attempts
        .iter()
        .map(|d| (d.status, d.event.kind, d.event.id))
        .collect();
    let state_id = attempts[0].event.id;
    assert_eq!(
        seen[..4],
        [
            (500, EventKind::State, state_id),
            (500, EventKind::State, state_id),
            (500, EventKind::State, state_id),
            (200, EventKind::State, state_id),
        ],
        "{seen:?}"
    );
    assert_eq!(
        seen[4..].iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
        [(200, EventKind::Added), (200, EventKind::Updated)]
    );
    // Each attempt is signed anew.
    assert!(attempts.iter().all(|d| d.signed_with(&secret)));
}

#[tokio::test]
async fn a_webhook_failing_past_its_age_is_marked_then_recovers() {
    let relay = Relay::start(&["--webhook-max-age", "1", "--webhook-max-backoff", "1"])
        .await
        .unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    let mut rx = Receiver::start().await.unwrap();
    rx.answer(503);
    let (id, _) = hook(&alice, &rx, "/login/bob@example.net", json!({})).await;
    assert_eq!(rx.next().await.unwrap().status, 503);
    bob.login(json!({})).await.unwrap();
    // Events keep queueing while it fails.
    let failing = until(&alice, &format!("/webhook/{id}"), |_, b| {
        b["status"] == "failing" && b["queued"] == 2
    })
    .await;
    assert!(failing["failing_since"].is_i64(), "{failing}");
    // Coarse on purpose: no status or port that would help map the network.
    assert_eq!(failing["last_error"], "answered with an error", "{failing}");

    rx.answer(200);
    assert_eq!(
        rx.next_accepted().await.unwrap().event.kind,
        EventKind::State
    );
    assert_eq!(
        rx.next_accepted().await.unwrap().event.kind,
        EventKind::Added
    );
    let healthy = until(&alice, &format!("/webhook/{id}"), |_, b| {
        b["status"] == "active" && b["queued"] == 0
    })
    .await;
    assert!(healthy.get("last_error").is_none(), "{healthy}");
}
