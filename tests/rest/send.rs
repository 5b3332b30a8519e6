//! SEND and CANCEL: delivery to live streams, durable queueing, withdrawal, the fallback.

use restsip_e2e::Relay;
use restsip_protocol::EventKind;
use serde_json::json;

#[tokio::test]
async fn send_reaches_every_live_contact_or_just_one() {
    let relay = Relay::default().await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    let phone = bob.login(json!({"contact": "phone"})).await.unwrap();
    let laptop = bob.login(json!({"contact": "laptop"})).await.unwrap();
    let mut on_phone = bob
        .sse(&format!("/login/bob@example.net/{phone}"), None)
        .await
        .unwrap();
    let mut on_laptop = bob
        .ndjson(&format!("/login/bob@example.net/{laptop}"))
        .await
        .unwrap();
    assert_eq!(on_phone.next().await.unwrap().kind, EventKind::State);
    assert_eq!(on_laptop.next().await.unwrap().kind, EventKind::State);

    // Parallel forking: SEND to the user reaches both contacts.
    let invite = json!({"command": "invite", "url": "/call/123", "id": 567});
    let receipt = alice
        .request("SEND", "/login/bob@example.net", Some(invite.clone()))
        .await
        .unwrap();
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    let statuses: Vec<_> = receipt.body["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].clone())
        .collect();
    assert_eq!(statuses, vec![json!("delivered"), json!("delivered")]);
    for stream in [&mut on_phone, &mut on_laptop] {
        let event = stream.next().await.unwrap();
        assert_eq!(event.kind, EventKind::Message);
        assert_eq!(
            event.data["from"], "alice@example.net",
            "the sender comes from the credential"
        );
        assert_eq!(event.data["to"], "/login/bob@example.net");
        assert_eq!(event.data["body"], invite);
        assert_eq!(event.data["id"], receipt.body["id"]);
    }

    // Sequential forking: SEND to one contact reaches only it.
    let res = alice
        .request(
            "SEND",
            &format!("/login/bob@example.net/{laptop}"),
            Some(json!({"command": "im", "text": "hi"})),
        )
        .await
        .unwrap();
    assert_eq!(res.body["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(on_laptop.next().await.unwrap().data["body"]["text"], "hi");
    assert!(on_phone
        .next_within(std::time::Duration::from_millis(500))
        .await
        .unwrap()
        .is_none());

    // A claimed "from" in the body does not change the sender.
    alice
        .request(
            "SEND",
            "/login/bob@example.net",
            Some(json!({"from": "mallory@example.net"})),
        )
        .await
        .unwrap();
    assert_eq!(
        on_phone.next().await.unwrap().data["from"],
        "alice@example.net"
    );
}

/// SENDs from several senders at once to one live contact share group commits: each is
/// answered, each arrives once and in the order of its id (what a stream that resumes after an
/// id relies on), each is too late to cancel, and a new stream of the contact gets none again.
#[tokio::test]
async fn concurrent_sends_to_a_live_contact_arrive_once_each_in_id_order() {
    const EACH: usize = 20;
    let relay = Relay::default().await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    let mut senders = Vec::new();
    for name in ["alice", "carol", "dave"] {
        senders.push(relay.user(&format!("{name}@example.net")).await.unwrap());
    }
    let id = bob.login(json!({})).await.unwrap();
    let inbox = format!("/login/bob@example.net/{id}");
    let mut stream = bob.ndjson(&inbox).await.unwrap();
    assert_eq!(stream.next().await.unwrap().kind, EventKind::State);

    let sends = senders.iter().flat_map(|s| {
        let inbox = &inbox;
        (0..EACH).map(move |n| s.request("SEND", inbox, Some(json!({"command": "im", "n": n}))))
    });
    let receipts = futures_util::future::join_all(sends).await;
    let mut sent = std::collections::HashSet::new();
    let mut order = Vec::new();
    for receipt in receipts {
        let receipt = receipt.unwrap();
        assert_eq!(receipt.status, 200, "{}", receipt.body);
        assert_eq!(receipt.body["deliveries"][0]["status"], "delivered");
        let id = receipt.body["id"].as_str().unwrap().to_owned();
        order.push(id.clone());
        sent.insert(id);
    }
    assert_eq!(sent.len(), 3 * EACH);

    let mut ids = Vec::new();
    let mut got = std::collections::HashSet::new();
    for _ in 0..3 * EACH {
        let event = stream.next().await.unwrap();
        assert_eq!(event.kind, EventKind::Message, "{event:?}");
        ids.push(event.id);
        assert!(
            got.insert(event.data["id"].as_str().unwrap().to_owned()),
            "twice: {event:?}"
        );
    }
    assert_eq!(got, sent);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "out of order: {ids:?}");
    assert!(stream
        .next_within(std::time::Duration::from_millis(300))
        .await
        .unwrap()
        .is_none());

    // Delivered, so too late to cancel: the first and the last of each sender.
    for (n, sender) in senders.iter().enumerate() {
        for id in [&order[n * EACH], &order[n * EACH + EACH - 1]] {
            sender
                .request("CANCEL", &inbox, Some(json!({"id": id})))
                .await
                .unwrap()
                .assert_problem(409, "conflict");
        }
    }
    // Another stream of the contact: its state, and nothing handed over again.
    let mut again = bob.sse(&inbox, None).await.unwrap();
    assert_eq!(again.next().await.unwrap().kind, EventKind::State);
    assert!(again
        .next_within(std::time::Duration::from_millis(500))
        .await
        .unwrap()
        .is_none());
}

/// A sender's share of a contact's queue frees as soon as the contact has read the messages:
/// the marks a stream writes behind count before the next SEND's check.
#[tokio::test]
async fn a_senders_share_frees_as_soon_as_the_contact_has_read_the_queue() {
    let relay = Relay::start(&["--max-queued-per-sender", "3"])
        .await
        .unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    for round in 0..5 {
        // A login of its own each round: a queue of its own.
        let id = bob.login(json!({})).await.unwrap();
        let inbox = format!("/login/bob@example.net/{id}");
        for n in 0..3 {
            let res = alice
                .request("SEND", &inbox, Some(json!({"n": n})))
                .await
                .unwrap();
            assert_eq!(res.status, 200, "round {round}: {}", res.body);
            assert_eq!(res.body["deliveries"][0]["status"], "queued");
        }
        alice
            .request("SEND", &inbox, Some(json!({"n": 3})))
            .await
            .unwrap()
            .assert_problem(429, "too-many-requests");
        // Bob reads the three and goes away; alice's next SEND at once is within her share.
        let mut stream = bob.ndjson(&inbox).await.unwrap();
        assert_eq!(stream.next().await.unwrap().kind, EventKind::State);
        for n in 0..3 {
            assert_eq!(stream.next().await.unwrap().data["body"]["n"], n);
        }
        drop(stream);
        let res = alice
            .request("SEND", &inbox, Some(json!({"n": 4})))
            .await
            .unwrap();
        assert_eq!(res.status, 200, "round {round}: {}", res.body);
    }
}

#[tokio::test]
async fn a_send_to_a_contact_without_a_stream_waits_and_can_be_cancelled() {
    let relay = Relay::default().await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    let eve = relay.user("eve@example.net").await.unwrap();
    let id = bob.login(json!({})).await.unwrap();
    let inbox = format!("/login/bob@example.net/{id}");

    let first = alice
        .request(
            "SEND",
            "/login/bob@example.net",
            Some(json!({"command": "invite", "n": 1})),
        )
        .await
        .unwrap();
    assert_eq!(first.body["deliveries"][0]["status"], "queued");
    let second = alice
        .request("SEND", &inbox, Some(json!({"command": "invite", "n": 2})))
        .await
        .unwrap();
    let second_id = second.body["id"].as_str().unwrap().to_owned();

    // Only the sender can withdraw it.
    eve.request("CANCEL", &inbox, Some(json!({"id": second_id})))
        .await
        .unwrap()
        .assert_problem(404, "not-found");
    let res = alice
        .request("CANCEL", &inbox, Some(json!({"id": second_id})))
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["deliveries"][0]["status"], "cancelled");

    // The contact connects: it gets the first, not the cancelled second.
    let mut stream = bob.sse(&inbox, None).await.unwrap();
    assert_eq!(stream.next().await.unwrap().kind, EventKind::State);
    let got = stream.next().await.unwrap();
    assert_eq!(got.data["body"]["n"], 1);
    assert!(stream
        .next_within(std::time::Duration::from_millis(500))
        .await
        .unwrap()
        .is_none());

    // Too late to cancel a delivered message: the answer says so.
    let first_id = first.body["id"].as_str().unwrap();
    let res = alice
        .request(
            "CANCEL",
            "/login/bob@example.net",
            Some(json!({"id": first_id})),
        )
        .await
        .unwrap();
    res.assert_problem(409, "conflict");
    assert!(res.body["detail"]
        .as_str()
        .unwrap()
        .contains("already delivered"));
    // The id may also be given in the query.
    let res = alice
        .builder("CANCEL", &format!("/login/bob@example.net?id={first_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
}

#[tokio::test]
async fn the_method_override_fallback_sends_and_cancels() {
    let relay = Relay::default().await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    bob.login(json!({})).await.unwrap();
    let res = alice
        .builder("POST", "/login/bob@example.net")
        .header("X-HTTP-Method-Override", "SEND")
        .json(&json!({"command": "im", "text": "via POST"}))
        .send()
        .await
        .unwrap();
    let receipt = restsip_e2e::read(res).await.unwrap();
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    assert_eq!(receipt.body["deliveries"][0]["status"], "queued");
    let res = alice
        .builder("POST", "/login/bob@example.net")
        .header("X-HTTP-Method-Override", "CANCEL")
        .json(&json!({"id": receipt.body["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Without the header, POST still logs in (as the owner) or is refused (as someone else).
    alice
        .request("POST", "/login/bob@example.net", Some(json!({})))
        .await
        .unwrap()
        .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn send_to_unknown_or_offline_users_and_queue_limits() {
    let relay = Relay::start(&["--max-queued-per-contact", "3"])
        .await
        .unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    alice
        .request("SEND", "/login/ghost@example.net", Some(json!({})))
        .await
        .unwrap()
        .assert_problem(404, "not-found");
    alice
        .request("SEND", "/login/bob@example.net", Some(json!({})))
        .await
        .unwrap()
        .assert_problem(409, "conflict");
    alice
        .request("SEND", "/login/bob@example.net/4", Some(json!({})))
        .await
        .unwrap()
        .assert_problem(404, "not-found");
    bob.login(json!({})).await.unwrap();
    for n in 0..3 {
        let res = alice
            .request("SEND", "/login/bob@example.net", Some(json!({"n": n})))
            .await
            .unwrap();
        assert_eq!(res.status, 200);
    }
    let res = alice
        .request("SEND", "/login/bob@example.net", Some(json!({"n": 3})))
        .await
        .unwrap();
    res.assert_problem(429, "too-many-requests");
    // Nothing acknowledged was lost: the three queued arrive in order.
    let mut stream = bob.ndjson("/login/bob@example.net/1").await.unwrap();
    stream.next().await.unwrap();
    for n in 0..3 {
        assert_eq!(stream.next().await.unwrap().data["body"]["n"], n);
    }
}
