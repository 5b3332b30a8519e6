//! Nobody acts as another user: every owner-only operation, tried by its owner, by another
//! signed-in user, without credentials and with a wrong password.

use restsip_e2e::Relay;
use serde_json::{json, Value};

use crate::users::{count, sign_up};

#[tokio::test]
async fn owner_only_operations_refuse_everyone_else() {
    let relay = Relay::default().await.unwrap();
    let owner = relay.user("owner@example.net").await.unwrap();
    let other = relay.user("other@example.net").await.unwrap();
    let anonymous = relay.anonymous();
    let wrong = relay.client("owner@example.net", "not-the-password");
    let contact = owner.login(json!({})).await.unwrap();
    other
        .request(
            "POST",
            "/user/owner@example.net/message",
            Some(json!({"url": "rtsp://m"})),
        )
        .await
        .unwrap();

    // (method, path, body) as the owner would send them; all are the owner's alone.
    let login = format!("/login/owner@example.net/{contact}");
    let cases: Vec<(&str, String, Option<Value>)> = vec![
        (
            "POST",
            "/login/owner@example.net".into(),
            Some(json!({"contact": "sip:x"})),
        ),
        ("PUT", login.clone(), Some(json!("sip:owner@10.0.0.9"))),
        ("GET", login.clone(), None),
        ("GET", "/user/owner@example.net/message".into(), None),
        ("GET", "/user/owner@example.net/message/1".into(), None),
        (
            "PATCH",
            "/user/owner@example.net".into(),
            Some(json!({"name": "x"})),
        ),
        (
            "PUT",
            "/user/owner@example.net".into(),
            Some(json!({"name": "x"})),
        ),
        ("DELETE", "/user/owner@example.net/message/1".into(), None),
        ("DELETE", login.clone(), None),
        ("DELETE", "/user/owner@example.net".into(), None),
    ];
    for (method, path, body) in &cases {
        for (who, client, status, code) in [
            ("anonymous", &anonymous, 401, "unauthorized"),
            ("wrong password", &wrong, 401, "unauthorized"),
            ("another user", &other, 403, "forbidden"),
        ] {
            let res = client.request(method, path, body.clone()).await.unwrap();
            assert_eq!(res.status, status, "{method} {path} as {who}: {}", res.body);
            res.assert_problem(status, code);
            if status == 401 {
                assert!(res
                    .header("www-authenticate")
                    .is_some_and(|h| h.starts_with("Basic")));
            }
        }
    }
    // Nothing was changed by the refused requests: the owner's state is as it was.
    assert_eq!(owner.get(&login).await.unwrap().body["id"], contact);
    assert_eq!(count(&owner, "/user/owner@example.net/message").await, 1);
    assert_eq!(
        owner
            .get("/user/owner@example.net")
            .await
            .unwrap()
            .body
            .get("name"),
        None
    );
    // And the owner may do each of them, in order.
    for (method, path, body) in &cases {
        let res = owner.request(method, path, body.clone()).await.unwrap();
        assert!(
            res.status < 300,
            "{method} {path} as the owner: {} {}",
            res.status,
            res.body
        );
    }
}

#[tokio::test]
async fn reading_and_sending_need_credentials_and_use_them_as_the_sender() {
    let relay = Relay::default().await.unwrap();
    let a = relay.user("a@example.net").await.unwrap();
    a.login(json!({})).await.unwrap();
    let anonymous = relay.anonymous();
    for (method, path) in [
        ("GET", "/login/a@example.net"),
        ("GET", "/user/a@example.net"),
        ("SEND", "/login/a@example.net"),
        ("POST", "/call"),
        ("POST", "/token"),
    ] {
        let res = anonymous
            .request(method, path, Some(json!({})))
            .await
            .unwrap();
        res.assert_problem(401, "unauthorized");
    }
    // Malformed Basic credentials are 401 too, not 400 or 500.
    let res = anonymous
        .builder("GET", "/user/a@example.net")
        .header("authorization", "Basic !!!")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = anonymous
        .builder("GET", "/user/a@example.net")
        .header("authorization", "Digest x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Sign-up needs none.
    let res = sign_up(&relay, "new@example.net", "p").await;
    assert_eq!(res.status, 201);
}
