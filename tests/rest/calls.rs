//! `/call`: create, join, update, leave, watch, delete.

use restsip_e2e::Relay;
use restsip_protocol::EventKind;
use serde_json::json;

#[tokio::test]
async fn members_come_and_go_and_watchers_see_each_change() {
    let relay = Relay::default().await.unwrap();
    let host = relay.user("host@example.net").await.unwrap();
    let guest = relay.user("guest@example.net").await.unwrap();
    host.login(json!({})).await.unwrap();
    let guest_login = guest.login(json!({})).await.unwrap();

    let call = host
        .request(
            "POST",
            "/call",
            Some(json!({"subject": "standup", "room": 7})),
        )
        .await
        .unwrap()
        .body;
    let url = call["url"].as_str().unwrap().to_owned();
    let mut watch = guest.sse(&url, None).await.unwrap();
    let first = watch.next().await.unwrap();
    assert_eq!(first.kind, EventKind::State);
    assert_eq!(first.data["subject"], "standup");
    assert_eq!(first.data["data"]["room"], 7);
    assert_eq!(first.data["children"], json!([]));

    let res = host
        .request(
            "POST",
            &url,
            Some(json!({"url": "/login/host@example.net", "session": "v=0 host"})),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 201);
    let host_p = res.body["url"].as_str().unwrap().to_owned();
    let added = watch.next().await.unwrap();
    assert_eq!(added.kind, EventKind::Added);
    assert_eq!(added.data["user"], "host@example.net");
    assert_eq!(added.data["session"], "v=0 host");

    let guest_url = format!("/login/guest@example.net/{guest_login}");
    let res = guest
        .request(
            "POST",
            &url,
            Some(json!({"url": guest_url, "session": {"sdp": "v=0 guest"}})),
        )
        .await
        .unwrap();
    let guest_p = res.body["url"].as_str().unwrap().to_owned();
    assert_eq!(watch.next().await.unwrap().kind, EventKind::Added);

    // A participant updates its own session; others may not.
    let res = guest
        .request(
            "PUT",
            &guest_p,
            Some(json!({"session": {"sdp": "v=0 guest2"}})),
        )
        .await
        .unwrap();
    assert_eq!(res.body["session"]["sdp"], "v=0 guest2");
    let updated = watch.next().await.unwrap();
    assert_eq!(updated.kind, EventKind::Updated);
    assert_eq!(updated.data["session"]["sdp"], "v=0 guest2");
    guest
        .request("PUT", &host_p, Some(json!({"session": "x"})))
        .await
        .unwrap()
        .assert_problem(403, "forbidden");
    assert_eq!(
        host.get(&guest_p).await.unwrap().body["session"]["sdp"],
        "v=0 guest2"
    );

    // A participant whose login goes away leaves the call.
    guest.request("DELETE", &guest_url, None).await.unwrap();
    let removed = watch.next().await.unwrap();
    assert_eq!(removed.kind, EventKind::Removed);
    assert_eq!(removed.data["url"], guest_p);
    assert_eq!(removed.data["reason"], "logout");
    assert_eq!(
        host.get(&url).await.unwrap().body["children"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Only the owner deletes the call; watchers are told and their stream ends.
    guest
        .request("DELETE", &url, None)
        .await
        .unwrap()
        .assert_problem(403, "forbidden");
    assert_eq!(
        host.request("DELETE", &url, None).await.unwrap().status,
        204
    );
    assert_eq!(watch.next().await.unwrap().kind, EventKind::Gone);
    assert!(watch.ends().await.unwrap());
    host.get(&url)
        .await
        .unwrap()
        .assert_problem(404, "not-found");
}

#[tokio::test]
async fn joining_needs_your_own_live_login() {
    let relay = Relay::default().await.unwrap();
    let a = relay.user("a@example.net").await.unwrap();
    let b = relay.user("b@example.net").await.unwrap();
    let url = a
        .request("POST", "/call", Some(json!({})))
        .await
        .unwrap()
        .body["url"]
        .as_str()
        .unwrap()
        .to_owned();
    a.request("POST", &url, Some(json!({"url": "/login/a@example.net"})))
        .await
        .unwrap()
        .assert_problem(409, "conflict");
    a.login(json!({})).await.unwrap();
    a.request("POST", &url, Some(json!({"url": "/login/b@example.net"})))
        .await
        .unwrap()
        .assert_problem(403, "forbidden");
    a.request("POST", &url, Some(json!({"url": "/login/a@example.net/7"})))
        .await
        .unwrap()
        .assert_problem(404, "not-found");
    a.request("POST", &url, Some(json!({"url": "/user/a@example.net"})))
        .await
        .unwrap()
        .assert_problem(422, "unprocessable");
    a.request(
        "POST",
        "/call/nosuchcall",
        Some(json!({"url": "/login/a@example.net"})),
    )
    .await
    .unwrap()
    .assert_problem(404, "not-found");
    // The owner may remove someone; a stranger may not.
    b.login(json!({})).await.unwrap();
    let p = b
        .request("POST", &url, Some(json!({"url": "/login/b@example.net"})))
        .await
        .unwrap()
        .body["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = relay.user("c@example.net").await.unwrap();
    c.request("DELETE", &p, None)
        .await
        .unwrap()
        .assert_problem(403, "forbidden");
    assert_eq!(a.request("DELETE", &p, None).await.unwrap().status, 204);
    a.get(&p).await.unwrap().assert_problem(404, "not-found");
}

#[tokio::test]
async fn watchers_arriving_one_after_another_get_the_call_as_it_is_then() {
    // Watchers arriving while a call stands still share one read of its state; one arriving
    // after a change gets the state with that change.
    let relay = Relay::default().await.unwrap();
    let host = relay.user("host@example.net").await.unwrap();
    let guest = relay.user("guest@example.net").await.unwrap();
    host.login(json!({})).await.unwrap();
    let url = host
        .request("POST", "/call", Some(json!({"subject": "s"})))
        .await
        .unwrap()
        .body["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut early = guest.sse(&url, None).await.unwrap();
    let mut second = guest.sse(&url, None).await.unwrap();
    for watch in [&mut early, &mut second] {
        let state = watch.next().await.unwrap();
        assert_eq!(
            (state.kind, state.data["children"].clone()),
            (EventKind::State, json!([]))
        );
    }
    let res = host
        .request(
            "POST",
            &url,
            Some(json!({"url": "/login/host@example.net", "session": "one"})),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 201);
    let mut late = guest.sse(&url, None).await.unwrap();
    let state = late.next().await.unwrap();
    assert_eq!(state.kind, EventKind::State);
    assert_eq!(state.data["children"][0]["session"], "one");
    for watch in [&mut early, &mut second] {
        let added = watch.next().await.unwrap();
        assert_eq!(
            (added.kind, added.data["session"].clone()),
            (EventKind::Added, json!("one"))
        );
    }
    // The change after the late watcher's state reaches all three, once.
    host.request(
        "PUT",
        res.body["url"].as_str().unwrap(),
        Some(json!({"session": "two"})),
    )
    .await
    .unwrap();
    for watch in [&mut early, &mut second, &mut late] {
        let updated = watch.next().await.unwrap();
        assert_eq!(
            (updated.kind, updated.data["session"].clone()),
            (EventKind::Updated, json!("two"))
        );
        watch.assert_quiet().await;
    }
}
