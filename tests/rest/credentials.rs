//! Credentials that end: a bearer token dies with the password it was made under, with its
//! account, and when a page logs out; and one address is one account, however it is spelled.

use restsip_e2e::{Client, Relay};
use serde_json::json;

use crate::users::sign_up;

const B: &str = "b@example.net";

/// A client that sends `Authorization: Bearer TOKEN`.
async fn bearer(
    relay: &Relay,
    token: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> u16 {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = relay
        .anonymous()
        .http
        .request(method, relay.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap().status().as_u16()
}

async fn token_of(client: &Client) -> (String, u64) {
    let res = client.request("POST", "/token", None).await.unwrap();
    assert_eq!(res.status, 200, "{}", res.body);
    (
        res.body["token"].as_str().unwrap().to_owned(),
        res.body["expires"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn a_token_dies_with_a_password_change_a_deletion_and_a_re_creation() {
    let relay = Relay::start(&["--token-ttl", "600"]).await.unwrap();
    let b = relay.user(B).await.unwrap();
    let (first, ttl) = token_of(&b).await;
    assert_eq!(
        bearer(&relay, &first, "GET", "/user/b@example.net", None).await,
        200
    );

    // A token mints one that lives no longer than itself.
    let minted = relay
        .anonymous()
        .http
        .post(relay.url("/token"))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(minted.status(), 200);
    let minted: serde_json::Value = minted.json().await.unwrap();
    assert!(minted["expires"].as_u64().unwrap() <= ttl, "{minted}");
    let second = minted["token"].as_str().unwrap().to_owned();
    assert_eq!(
        bearer(&relay, &second, "GET", "/user/b@example.net", None).await,
        200
    );

    // The password changes: both tokens end, the new password makes new ones.
    let res = b
        .request(
            "PATCH",
            "/user/b@example.net",
            Some(json!({"password": "new-secret"})),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.body);
    for token in [&first, &second] {
        assert_eq!(
            bearer(&relay, token, "GET", "/user/b@example.net", None).await,
            401
        );
        assert_eq!(bearer(&relay, token, "POST", "/token", None).await, 401);
    }
    let b = relay.client(B, "new-secret");
    let (third, _) = token_of(&b).await;

    // Deleted, then signed up again by someone else: the old token has no power over the new
    // owner (the attack of the issue: it changed the new owner's password).
    let res = b
        .request("DELETE", "/user/b@example.net", None)
        .await
        .unwrap();
    assert_eq!(res.status, 204, "{}", res.body);
    assert_eq!(
        bearer(&relay, &third, "GET", "/user/b@example.net", None).await,
        401
    );
    let res = sign_up(&relay, B, "mallory-free").await;
    assert_eq!(res.status, 201, "{}", res.body);
    let takeover = json!({"password": "stolen"});
    assert_eq!(
        bearer(
            &relay,
            &third,
            "PATCH",
            "/user/b@example.net",
            Some(takeover)
        )
        .await,
        401
    );
    let owner = relay.client(B, "mallory-free");
    assert_eq!(owner.get("/user/b@example.net").await.unwrap().status, 200);
}

#[tokio::test]
async fn logging_out_revokes_the_page_token_and_only_it_even_across_a_restart() {
    let mut relay = Relay::default().await.unwrap();
    let b = relay.user(B).await.unwrap();
    let (page, _) = token_of(&b).await;
    let (other_tab, _) = token_of(&b).await;
    assert_eq!(bearer(&relay, &page, "DELETE", "/token", None).await, 204);
    assert_eq!(
        bearer(&relay, &page, "GET", "/user/b@example.net", None).await,
        401
    );
    let query = relay
        .anonymous()
        .get(&format!("/user/b@example.net?access_token={page}"))
        .await
        .unwrap();
    query.assert_problem(401, "unauthorized");
    assert_eq!(
        bearer(&relay, &other_tab, "GET", "/user/b@example.net", None).await,
        200
    );
    // Basic carries no token to revoke.
    b.request("DELETE", "/token", None)
        .await
        .unwrap()
        .assert_problem(400, "bad-request");
    relay.restart().await.unwrap();
    assert_eq!(
        bearer(&relay, &page, "GET", "/user/b@example.net", None).await,
        401
    );
    assert_eq!(
        bearer(&relay, &other_tab, "GET", "/user/b@example.net", None).await,
        200
    );
}

#[tokio::test]
async fn one_address_is_one_account_however_it_is_spelled() {
    let relay = Relay::default().await.unwrap();
    let res = sign_up(&relay, "B@EXAMPLE.NET", "pw").await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.body["id"], B);
    assert_eq!(res.header("location"), Some("/user/b@example.net"));
    for look_alike in ["b@example.net.", "b@example.net", " B@Example.Net "] {
        sign_up(&relay, look_alike, "x")
            .await
            .assert_problem(409, "conflict");
    }
    // Letters of another script are refused, not a second account.
    sign_up(&relay, "b@exаmple.net", "x")
        .await
        .assert_problem(422, "unprocessable");

    // Any spelling logs in, in credentials and in paths, and names the same resources.
    for spelling in ["B@EXAMPLE.NET", "b@Example.Net.", B] {
        let client = relay.client(spelling, "pw");
        let res = client.get("/user/B@Example.NET.").await.unwrap();
        assert_eq!(res.status, 200, "{spelling}: {}", res.body);
        assert_eq!(res.body["id"], B);
    }
    let b = relay.client("B@EXAMPLE.NET", "pw");
    let res = b
        .request("POST", "/login/B@EXAMPLE.NET.", Some(json!({})))
        .await
        .unwrap();
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.body["url"], "/login/b@example.net/1");
    let a = relay.user("a@example.net").await.unwrap();
    let contacts = a.get("/login/B%40EXAMPLE.NET").await.unwrap();
    assert_eq!(contacts.status, 200, "{}", contacts.body);
    assert_eq!(
        contacts.body.as_array().unwrap().len(),
        1,
        "{}",
        contacts.body
    );
    // A SEND to a look-alike reaches the one account.
    let res = a
        .request(
            "SEND",
            "/login/b@EXAMPLE.net",
            Some(json!({"command": "im", "text": "hi"})),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        res.body["deliveries"][0]["contact"],
        "/login/b@example.net/1"
    );
}
