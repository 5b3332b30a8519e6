//! `/webhook` as an API: who may hook what, who may see and delete a webhook, bad input, the
//! limit per user, and deletion.

use std::time::Duration;

use restsip_e2e::receiver::Receiver;
use restsip_e2e::Relay;
use restsip_protocol::EventKind;
use serde_json::json;

use crate::webhooks::hook;

#[tokio::test]
async fn only_the_owner_hooks_an_inbox_and_sees_or_deletes_its_webhooks() {
    let relay = Relay::default().await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let carol = relay.user("carol@example.net").await.unwrap();
    let anonymous = relay.anonymous();
    let contact = alice.login(json!({})).await.unwrap();
    let inbox = format!("/login/alice@example.net/{contact}");
    let rx = Receiver::start().await.unwrap();
    let call = alice
        .request("POST", "/call", Some(json!({})))
        .await
        .unwrap()
        .body["url"]
        .as_str()
        .unwrap()
        .to_owned();

    // Anyone signed in may hook what anyone may watch: a user's logins, a call.
    let (carols, _) = hook(&carol, &rx, "/login/alice@example.net", json!({})).await;
    hook(&carol, &rx, &call, json!({})).await;
    // Only the owner hooks a contact's inbox.
    carol
        .request(
            "POST",
            "/webhook",
            Some(json!({"url": rx.url, "resource": inbox})),
        )
        .await
        .unwrap()
        .assert_problem(403, "forbidden");
    let (alices, _) = hook(&alice, &rx, &inbox, json!({})).await;

    let alices_path = format!("/webhook/{alices}");
    for method in ["GET", "DELETE"] {
        carol
            .request(method, &alices_path, None)
            .await
            .unwrap()
            .assert_problem(403, "forbidden");
        anonymous
            .request(method, &alices_path, None)
            .await
            .unwrap()
            .assert_problem(401, "unauthorized");
        alice
            .request(method, "/webhook/0123456789abcdef", None)
            .await
            .unwrap()
            .assert_problem(404, "not-found");
    }
    anonymous
        .get("/webhook")
        .await
        .unwrap()
        .assert_problem(401, "unauthorized");
    anonymous
        .request(
            "POST",
            "/webhook",
            Some(json!({"url": rx.url, "resource": call})),
        )
        .await
        .unwrap()
        .assert_problem(401, "unauthorized");
    // Each lists only their own.
    let mine = |list: serde_json::Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|w| w["owner"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        mine(alice.get("/webhook").await.unwrap().body),
        ["alice@example.net"]
    );
    assert_eq!(
        mine(carol.get("/webhook").await.unwrap().body),
        ["carol@example.net", "carol@example.net"]
    );
    assert_eq!(
        carol
            .get(&format!("/webhook/{carols}"))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(alice.get(&alices_path).await.unwrap().status, 200);
}

#[tokio::test]
async fn bad_input_is_refused_with_a_problem() {
    let relay = Relay::start(&["--max-webhooks-per-user", "2"])
        .await
        .unwrap();
    let a = relay.user("a@example.net").await.unwrap();
    let contact = a.login(json!({})).await.unwrap();
    let rx = Receiver::start().await.unwrap();
    let raw = |ct: &str, body: &str| {
        let req = a
            .builder("POST", "/webhook")
            .header("content-type", ct)
            .body(body.to_owned());
        async move { restsip_e2e::read(req.send().await.unwrap()).await.unwrap() }
    };
    raw("application/json", "{\"url\": ")
        .await
        .assert_problem(400, "bad-request");
    raw("application/json", "")
        .await
        .assert_problem(400, "bad-request");
    raw("text/plain", "{}")
        .await
        .assert_problem(415, "unsupported-media-type");
    let resource = "/login/a@example.net";
    let long = format!("http://app.example/{}", "x".repeat(3000));
    let cases = [
        (json!({"url": rx.url}), 422),
        (json!({"resource": resource}), 422),
        (
            json!({"url": rx.url, "resource": resource, "secret": "mine"}),
            422,
        ),
        (
            json!({"url": rx.url, "resource": resource, "updates": "sometimes"}),
            422,
        ),
        (json!({"url": 7, "resource": resource}), 422),
        (
            json!({"url": "ftp://app.example/hook", "resource": resource}),
            422,
        ),
        (json!({"url": "not a url", "resource": resource}), 422),
        (json!({"url": "/relative/hook", "resource": resource}), 422),
        (json!({"url": "http://", "resource": resource}), 422),
        (json!({"url": long, "resource": resource}), 422),
        (
            json!({"url": rx.url, "resource": "/user/a@example.net"}),
            422,
        ),
        (
            json!({"url": rx.url, "resource": "login/a@example.net"}),
            422,
        ),
        (
            json!({"url": rx.url, "resource": "/login/a@example.net/x"}),
            422,
        ),
        (
            json!({"url": rx.url, "resource": "/login/nobody@example.net"}),
            404,
        ),
        (
            json!({"url": rx.url, "resource": "/login/a@example.net/999"}),
            404,
        ),
        (json!({"url": rx.url, "resource": "/call/nope"}), 404),
    ];
    for (body, status) in cases {
        let res = a
            .request("POST", "/webhook", Some(body.clone()))
            .await
            .unwrap();
        let code = if status == 404 {
            "not-found"
        } else {
            "unprocessable"
        };
        assert_eq!(res.status, status, "{body}: {}", res.body);
        res.assert_problem(status, code);
    }
    assert_eq!(
        a.get("/webhook").await.unwrap().body,
        json!([]),
        "nothing was made"
    );

    // The limit per user: 2 here.
    let inbox = format!("/login/a@example.net/{contact}");
    let (first, _) = hook(&a, &rx, &inbox, json!({})).await;
    hook(&a, &rx, resource, json!({})).await;
    a.request(
        "POST",
        "/webhook",
        Some(json!({"url": rx.url, "resource": resource})),
    )
    .await
    .unwrap()
    .assert_problem(429, "too-many-requests");
    // Deleting one makes room.
    let path = format!("/webhook/{first}");
    assert_eq!(a.request("DELETE", &path, None).await.unwrap().status, 204);
    a.get(&path).await.unwrap().assert_problem(404, "not-found");
    a.request("DELETE", &path, None)
        .await
        .unwrap()
        .assert_problem(404, "not-found");
    hook(&a, &rx, resource, json!({})).await;
}

#[tokio::test]
async fn a_deleted_webhook_delivers_nothing_more() {
    let relay = Relay::default().await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    let mut rx = Receiver::start().await.unwrap();
    let (id, _) = hook(&alice, &rx, "/login/bob@example.net", json!({})).await;
    assert_eq!(
        rx.next_accepted().await.unwrap().event.kind,
        EventKind::State
    );
    assert_eq!(
        alice
            .request("DELETE", &format!("/webhook/{id}"), None)
            .await
            .unwrap()
            .status,
        204
    );
    bob.login(json!({})).await.unwrap();
    assert!(
        rx.next_within(Duration::from_millis(500)).await.is_none(),
        "no delivery after DELETE"
    );
    assert_eq!(alice.get("/webhook").await.unwrap().body, json!([]));
}
