//! A server application acting as a login: a webhook of its own contact receives what is SENT to
//! it, claimed like a stream claims it, so the SEND's receipt says delivered; and nothing
//! acknowledged is lost when the relay is killed with deliveries pending.

use restsip_e2e::receiver::Receiver;
use restsip_e2e::Relay;
use restsip_protocol::EventKind;
use serde_json::{json, Value};

use crate::webhooks::{hook, until};

#[tokio::test]
async fn an_inbox_webhook_receives_sends_as_delivered() {
    let relay = Relay::default().await.unwrap();
    let app = relay.user("app@example.net").await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    let first = app
        .login(json!({"contact": "https://app.example"}))
        .await
        .unwrap();
    let second = app.login(json!({})).await.unwrap();
    let inbox = |id: i64| format!("/login/app@example.net/{id}");
    // A SEND to a contact nobody watches waits, queued.
    let early = bob
        .request("SEND", &inbox(second), Some(json!({"n": "early"})))
        .await
        .unwrap();
    assert_eq!(early.body["deliveries"][0]["status"], "queued");

    let mut rx = Receiver::start().await.unwrap();
    let (id, secret) = hook(&app, &rx, &inbox(first), json!({})).await;
    let state = rx.next_accepted().await.unwrap();
    assert_eq!(state.event.kind, EventKind::State);
    assert_eq!(state.event.data["id"], first);

    let receipt = bob
        .request(
            "SEND",
            &inbox(first),
            Some(json!({"command": "im", "text": "hi"})),
        )
        .await
        .unwrap();
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    assert_eq!(
        receipt.body["deliveries"],
        json!([{"contact": inbox(first), "status": "delivered"}])
    );
    let message = rx.next_accepted().await.unwrap();
    assert_eq!(message.event.kind, EventKind::Message);
    assert_eq!(message.event.resource, inbox(first));
    assert_eq!(message.event.data["from"], "bob@example.net");
    assert_eq!(message.event.data["id"], receipt.body["id"]);
    assert_eq!(message.event.data["body"]["text"], "hi");
    assert!(message.signed_with(&secret));
    // Delivered means delivered: too late to withdraw.
    bob.request(
        "CANCEL",
        &inbox(first),
        Some(json!({"id": receipt.body["id"]})),
    )
    .await
    .unwrap()
    .assert_problem(409, "conflict");

    // A SEND to the user forks: the hooked contact has it at once, the other one queues.
    let forked = bob
        .request(
            "SEND",
            "/login/app@example.net",
            Some(json!({"n": "forked"})),
        )
        .await
        .unwrap();
    assert_eq!(
        forked.body["deliveries"],
        json!([
            {"contact": inbox(first), "status": "delivered"},
            {"contact": inbox(second), "status": "queued"},
        ])
    );
    assert_eq!(
        rx.next_accepted().await.unwrap().event.data["body"]["n"],
        "forked"
    );

    // A webhook made later gets the state, then what was queued, in order.
    let mut later = Receiver::start().await.unwrap();
    hook(&app, &later, &inbox(second), json!({})).await;
    assert_eq!(
        later.next_accepted().await.unwrap().event.kind,
        EventKind::State
    );
    for n in ["early", "forked"] {
        let d = later.next_accepted().await.unwrap();
        assert_eq!(d.event.kind, EventKind::Message);
        assert_eq!(d.event.data["body"]["n"], n);
    }
    bob.request(
        "CANCEL",
        &inbox(second),
        Some(json!({"id": early.body["id"]})),
    )
    .await
    .unwrap()
    .assert_problem(409, "conflict");

    // Logging out ends the contact: the webhook gets `gone`, then is removed.
    app.request("DELETE", &inbox(first), None).await.unwrap();
    assert_eq!(
        rx.next_accepted().await.unwrap().event.kind,
        EventKind::Gone
    );
    until(&app, &format!("/webhook/{id}"), |status, _| status == 404).await;
}

#[tokio::test]
async fn kill_dash_nine_with_deliveries_pending_loses_nothing() {
    let mut relay = Relay::start(&["--webhook-max-backoff", "1"]).await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    let contact = bob.login(json!({})).await.unwrap();
    let bob_inbox = format!("/login/bob@example.net/{contact}");
    let mut logins = Receiver::start().await.unwrap();
    let mut inbox = Receiver::start().await.unwrap();
    logins.answer(503);
    inbox.answer(503);
    let (logins_id, _) = hook(&alice, &logins, "/login/bob@example.net", json!({})).await;
    let (inbox_id, secret) = hook(&bob, &inbox, &bob_inbox, json!({})).await;
    // Both are subscribed once their state is stored and tried.
    assert_eq!(logins.next().await.unwrap().event.kind, EventKind::State);
    assert_eq!(inbox.next().await.unwrap().event.kind, EventKind::State);
    for n in 0..5 {
        let receipt = alice
            .request("SEND", &bob_inbox, Some(json!({"n": n})))
            .await
            .unwrap();
        assert_eq!(receipt.body["deliveries"][0]["status"], "delivered");
    }
    for n in 0..3 {
        bob.request("PUT", &bob_inbox, Some(json!({"presence": n})))
            .await
            .unwrap();
    }
    until(&alice, &format!("/webhook/{logins_id}"), |_, b| {
        b["queued"] == 4
    })
    .await;
    until(&bob, &format!("/webhook/{inbox_id}"), |_, b| {
        b["queued"] == 6
    })
    .await;

    relay.kill_and_restart().await.unwrap();
    let alice = relay.client("alice@example.net", "pw-alice@example.net");
    let bob = relay.client("bob@example.net", "pw-bob@example.net");
    bob.request("PUT", &bob_inbox, Some(json!({"presence": 99})))
        .await
        .unwrap();
    logins.answer(200);
    inbox.answer(200);

    // What was stored before the kill arrives first, in order, then the resource resumes.
    let got = presences_until(&mut logins, 99).await;
    assert_eq!(
        got[..5],
        [
            (EventKind::State, json!(null)),
            (EventKind::Updated, json!(0)),
            (EventKind::Updated, json!(1)),
            (EventKind::Updated, json!(2)),
            // After the restart the bus's history is gone: a fresh state resynchronises.
            (EventKind::State, got[4].1.clone()),
        ],
        "{got:?}"
    );
    assert_eq!(
        messages(&mut inbox, 5, Some(secret.as_str())).await,
        vec![0, 1, 2, 3, 4]
    );
    // And the inbox webhook is subscribed again: a SEND now is delivered to it.
    let receipt = alice
        .request("SEND", &bob_inbox, Some(json!({"n": 5})))
        .await
        .unwrap();
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    loop {
        let d = inbox.next_accepted().await.unwrap();
        if d.event.kind == EventKind::Message {
            assert_eq!(d.event.data["body"]["n"], 5);
            break;
        }
    }
    until(&bob, &format!("/webhook/{inbox_id}"), |_, b| {
        b["queued"] == 0
    })
    .await;
}

#[tokio::test]
async fn a_full_outbox_pauses_the_webhook_and_it_resumes_without_loss() {
    let relay = Relay::start(&["--max-webhook-queue", "3", "--webhook-max-backoff", "1"])
        .await
        .unwrap();
    let app = relay.user("app@example.net").await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    let contact = app.login(json!({})).await.unwrap();
    let app_inbox = format!("/login/app@example.net/{contact}");
    let mut inbox = Receiver::start().await.unwrap();
    let mut logins = Receiver::start().await.unwrap();
    inbox.answer(503);
    logins.answer(503);
    let (inbox_id, _) = hook(&app, &inbox, &app_inbox, json!({})).await;
    let (logins_id, _) = hook(&bob, &logins, "/login/app@example.net", json!({})).await;
    assert_eq!(inbox.next().await.unwrap().event.kind, EventKind::State);
    assert_eq!(logins.next().await.unwrap().event.kind, EventKind::State);

    // The outboxes fill up (state + 2 each), then the webhooks stop taking events.
    for n in 0..4 {
        bob.request("SEND", &app_inbox, Some(json!({"n": n})))
            .await
            .unwrap();
        app.request("PUT", &app_inbox, Some(json!({"presence": n})))
            .await
            .unwrap();
    }
    for (client, id) in [(&app, &inbox_id), (&bob, &logins_id)] {
        until(client, &format!("/webhook/{id}"), |_, b| b["queued"] == 3).await;
    }
    // (The SENDs the inbox webhook did not take wait in the store, queued, meanwhile.)

    // The targets recover: the webhooks resume after their last stored event; nothing is lost.
    inbox.answer(200);
    logins.answer(200);
    assert_eq!(messages(&mut inbox, 4, None).await, vec![0, 1, 2, 3]);
    let seen = presences_until(&mut logins, 3).await;
    assert_eq!(
        seen[..3],
        [
            (EventKind::State, json!(null)),
            (EventKind::Updated, json!(0)),
            (EventKind::Updated, json!(1)),
        ],
        "{seen:?}"
    );
    // Resumed from the relay's history: the remaining changes, not a fresh state.
    assert_eq!(
        seen[3..],
        [
            (EventKind::Updated, json!(2)),
            (EventKind::Updated, json!(3))
        ],
        "{seen:?}"
    );
}

/// The `n` field of the next `count` messages delivered to `rx` (each signed with `secret` when
/// given), skipping other events.
async fn messages(rx: &mut Receiver, count: usize, secret: Option<&str>) -> Vec<i64> {
    let mut got = Vec::new();
    while got.len() < count {
        let d = rx.next_accepted().await.unwrap();
        if let Some(secret) = secret {
            assert!(d.signed_with(secret));
        }
        if d.event.kind == EventKind::Message {
            got.push(d.event.data["body"]["n"].as_i64().unwrap());
        }
    }
    got
}

/// The kind and presence of each login event delivered to `rx`, checked to arrive in order,
/// up to the one that reports presence `last`.
async fn presences_until(rx: &mut Receiver, last: i64) -> Vec<(EventKind, Value)> {
    let mut got = Vec::new();
    let mut previous = 0;
    loop {
        let d = rx.next_accepted().await.unwrap();
        assert!(d.event.id > previous, "in order");
        previous = d.event.id;
        let presence = match d.event.kind {
            EventKind::State => d.event.data[0]["presence"].clone(),
            _ => d.event.data["presence"].clone(),
        };
        got.push((d.event.kind, presence.clone()));
        if presence == last {
            return got;
        }
    }
}
