//! `/login`: registration, refresh, presence, expiry.

use restsip_e2e::Relay;
use restsip_protocol::EventKind;
use serde_json::json;

#[tokio::test]
async fn several_contacts_with_presence_and_clamped_lifetimes() {
    let relay = Relay::start(&["--min-expires", "60", "--max-expires", "7200"])
        .await
        .unwrap();
    let a = relay.user("a@example.net").await.unwrap();
    let res = a
        .request("POST", "/login/a@example.net", Some(json!({"contact": "sip:a@10.0.0.1:5060", "expires": 5, "presence": {"status": "away"}})))
        .await
        .unwrap();
    assert_eq!(res.status, 201);
    assert_eq!(
        res.body["expires"], 60,
        "a too-short lifetime is raised to the minimum"
    );
    let res = a
        .request(
            "POST",
            "/login/a@example.net",
            Some(json!({"expires": 999999})),
        )
        .await
        .unwrap();
    assert_eq!(
        res.body["expires"], 7200,
        "a too-long lifetime is lowered to the maximum"
    );
    assert_eq!(res.body["id"], 2);

    let list = a.get("/login/a@example.net").await.unwrap().body;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["presence"]["status"], "away");
    assert_eq!(list[0]["source"], "web");
    assert_eq!(list[1].get("contact"), None);

    // Refresh with fields changes presence and keeps the address.
    let res = a
        .request(
            "PUT",
            "/login/a@example.net/1",
            Some(json!({"presence": {"status": "online"}})),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 200);
    let one = a.get("/login/a@example.net/1").await.unwrap().body;
    assert_eq!(one["presence"]["status"], "online");
    assert_eq!(one["contact"], "sip:a@10.0.0.1:5060");

    // Refreshing or deleting a login that is not there is 404.
    a.request("PUT", "/login/a@example.net/9", Some(json!("sip:x@y")))
        .await
        .unwrap()
        .assert_problem(404, "not-found");
    a.request("DELETE", "/login/a@example.net/9", None)
        .await
        .unwrap()
        .assert_problem(404, "not-found");
    a.get("/login/nobody@example.net")
        .await
        .unwrap()
        .assert_problem(404, "not-found");
}

#[tokio::test]
async fn a_login_that_is_not_refreshed_expires_and_watchers_see_it() {
    let relay = Relay::start(&["--min-expires", "1", "--default-expires", "2"])
        .await
        .unwrap();
    let a = relay.user("a@example.net").await.unwrap();
    let b = relay.user("b@example.net").await.unwrap();
    let mut watch = b.sse("/login/a@example.net", None).await.unwrap();
    assert_eq!(watch.next().await.unwrap().kind, EventKind::State);

    let short = a.login(json!({"expires": 1})).await.unwrap();
    let kept = a.login(json!({"expires": 2})).await.unwrap();
    assert_eq!(watch.next().await.unwrap().kind, EventKind::Added);
    assert_eq!(watch.next().await.unwrap().kind, EventKind::Added);
    // Keep `kept` alive by refreshing it; `short` is left to expire.
    let refresher = {
        let a = a.clone();
        tokio::spawn(async move {
            for _ in 0..6 {
                tokio::time::sleep(std::time::Duration::from_millis(700)).await;
                let _ = a
                    .request(
                        "PUT",
                        &format!("/login/a@example.net/{kept}"),
                        Some(json!({"expires": 2})),
                    )
                    .await;
            }
        })
    };
    let removed = loop {
        let event = watch.next().await.unwrap();
        if event.kind == EventKind::Removed {
            break event;
        }
        assert_eq!(event.kind, EventKind::Updated, "{event:?}");
    };
    assert_eq!(removed.data["id"], short);
    assert_eq!(removed.data["reason"], "expired");
    let list = a.get("/login/a@example.net").await.unwrap().body;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], kept);
    refresher.abort();
    a.request(
        "PUT",
        &format!("/login/a@example.net/{short}"),
        Some(json!("x")),
    )
    .await
    .unwrap()
    .assert_problem(404, "not-found");
}
