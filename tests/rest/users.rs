//! `/user` and offline messages; [`sign_up`] and [`count`], which other suites use too.

use restsip_e2e::{Client, Relay, Reply};
use serde_json::json;

/// An anonymous sign-up (`POST /user`) of `email` with `password`: the relay's reply.
pub(crate) async fn sign_up(relay: &Relay, email: &str, password: &str) -> Reply {
    relay
        .anonymous()
        .request(
            "POST",
            "/user",
            Some(json!({"email": email, "password": password})),
        )
        .await
        .unwrap()
}

/// How many entries the list at `path` has, as `client` GETs it.
pub(crate) async fn count(client: &Client, path: &str) -> usize {
    client
        .get(path)
        .await
        .unwrap()
        .body
        .as_array()
        .unwrap_or_else(|| panic!("{path} is no list"))
        .len()
}

#[tokio::test]
async fn signup_profile_update_and_delete() {
    let relay = Relay::default().await.unwrap();
    let anon = relay.anonymous();
    let res = anon
        .request("POST", "/user", Some(json!({"email": "a@example.net", "password": "pw1", "name": "Ann", "city": "Paris"})))
        .await
        .unwrap();
    assert_eq!(res.status, 201);
    assert_eq!(res.header("location"), Some("/user/a@example.net"));
    let a = relay.client("a@example.net", "pw1");
    let profile = a.get("/user/a@example.net").await.unwrap().body;
    assert_eq!(profile["name"], "Ann");
    assert_eq!(profile["data"]["city"], "Paris");
    assert_eq!(profile["links"]["login"], "/login/a@example.net");
    assert_eq!(profile["links"]["message"], "/user/a@example.net/message");
    assert!(profile.get("password").is_none() && !profile.to_string().contains("argon2"));

    // The same email again is a conflict.
    let res = sign_up(&relay, "a@example.net", "x").await;
    res.assert_problem(409, "conflict");

    // PATCH changes only what is given; PUT replaces.
    let res = a
        .request(
            "PATCH",
            "/user/a@example.net",
            Some(json!({"data": {"lang": "fr"}})),
        )
        .await
        .unwrap();
    assert_eq!(res.body["name"], "Ann");
    assert_eq!(res.body["data"], json!({"city": "Paris", "lang": "fr"}));
    let res = a
        .request("PUT", "/user/a@example.net", Some(json!({"name": "Anne"})))
        .await
        .unwrap();
    assert_eq!(res.body["name"], "Anne");
    assert_eq!(res.body["data"], json!({}));

    // A password change takes effect at once: the old one stops working.
    let res = a
        .request(
            "PATCH",
            "/user/a@example.net",
            Some(json!({"password": "pw2"})),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 200);
    a.get("/user/a@example.net")
        .await
        .unwrap()
        .assert_problem(401, "unauthorized");
    let a = relay.client("a@example.net", "pw2");
    assert_eq!(a.get("/user/a@example.net").await.unwrap().status, 200);

    // Deleting the account logs it out and removes it.
    a.login(json!({})).await.unwrap();
    let b = relay.user("b@example.net").await.unwrap();
    assert_eq!(count(&b, "/login/a@example.net").await, 1);
    assert_eq!(
        a.request("DELETE", "/user/a@example.net", None)
            .await
            .unwrap()
            .status,
        204
    );
    b.get("/user/a@example.net")
        .await
        .unwrap()
        .assert_problem(404, "not-found");
    b.get("/login/a@example.net")
        .await
        .unwrap()
        .assert_problem(404, "not-found");
    a.get("/user/b@example.net")
        .await
        .unwrap()
        .assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn offline_messages_are_left_by_anyone_and_read_only_by_the_owner() {
    let relay = Relay::default().await.unwrap();
    let owner = relay.user("owner@example.net").await.unwrap();
    let caller = relay.user("caller@example.net").await.unwrap();
    let res = caller
        .request(
            "POST",
            "/user/owner@example.net/message",
            Some(json!({"url": "rtsp://vm/1", "subject": "missed call"})),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 201);
    let link = res.body["link"].as_str().unwrap().to_owned();
    caller
        .request(
            "POST",
            "/user/owner@example.net/message",
            Some(json!({"body": {"text": "call me back"}})),
        )
        .await
        .unwrap();

    let list = owner
        .get("/user/owner@example.net/message")
        .await
        .unwrap()
        .body;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["from"], "caller@example.net");
    assert_eq!(list[0]["subject"], "missed call");
    assert_eq!(list[1]["body"]["text"], "call me back");
    assert_eq!(owner.get(&link).await.unwrap().body["url"], "rtsp://vm/1");

    caller
        .get("/user/owner@example.net/message")
        .await
        .unwrap()
        .assert_problem(403, "forbidden");
    caller
        .request("DELETE", &link, None)
        .await
        .unwrap()
        .assert_problem(403, "forbidden");
    assert_eq!(
        owner.request("DELETE", &link, None).await.unwrap().status,
        204
    );
    owner
        .request("DELETE", &link, None)
        .await
        .unwrap()
        .assert_problem(404, "not-found");
    assert_eq!(count(&owner, "/user/owner@example.net/message").await, 1);

    // A message with neither url nor body says so; one for an unknown user is 404.
    caller
        .request("POST", "/user/owner@example.net/message", Some(json!({})))
        .await
        .unwrap()
        .assert_problem(422, "unprocessable");
    caller
        .request(
            "POST",
            "/user/ghost@example.net/message",
            Some(json!({"url": "rtsp://x"})),
        )
        .await
        .unwrap()
        .assert_problem(404, "not-found");
}
