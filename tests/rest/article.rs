//! The article's examples, request bodies as written.

use restsip_e2e::Relay;
use serde_json::json;

use crate::users::sign_up;

#[tokio::test]
async fn the_articles_examples_work_as_written() {
    let relay = Relay::default().await.unwrap();
    // POST /user -- signup with a new account
    let res = sign_up(&relay, "kundan@example.net", "k-pw").await;
    assert_eq!(res.status, 201);
    assert_eq!(
        res.body,
        json!({"id": "kundan@example.net", "url": "/user/kundan@example.net"})
    );
    let kundan = relay.client("kundan@example.net", "k-pw");
    let alok = relay.user("alok@example.net").await.unwrap();

    // POST /login/kundan@example.net -- new registration
    let res = kundan
        .request(
            "POST",
            "/login/kundan@example.net",
            Some(json!({"contact": "sip:kundan@192.1.2.3:5062"})),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 201);
    assert_eq!(res.body["id"], 1);
    assert_eq!(res.body["expires"], 3600);
    assert_eq!(res.body["url"], "/login/kundan@example.net/1");

    // PUT /login/kundan@example.net/1 -- registration refresh with a bare JSON string
    let res = kundan
        .request(
            "PUT",
            "/login/kundan@example.net/1",
            Some(json!("sip:kundan@192.1.2.3:5062")),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.body);

    // GET /login/kundan@example.net -- get list of contact locations
    let res = alok.get("/login/kundan@example.net").await.unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.body[0]["id"], 1);
    assert_eq!(res.body[0]["contact"], "sip:kundan@192.1.2.3:5062");

    // POST /call -- create a new call context
    let res = kundan
        .request(
            "POST",
            "/call",
            Some(json!({"subject": "some discussion topic"})),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 201);
    let call_url = res.body["url"].as_str().unwrap().to_owned();
    assert_eq!(
        call_url,
        format!("/call/{}", res.body["id"].as_str().unwrap())
    );

    // POST /call/123 -- join a call
    let res = kundan
        .request("POST", &call_url, Some(json!({"url": "/login/kundan@example.net", "session": "rtsp://media.example.net/123"})))
        .await
        .unwrap();
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.body["url"], format!("{call_url}/1"));

    // GET /call/123 -- get participant list and call info
    let res = alok.get(&call_url).await.unwrap();
    assert_eq!(res.body["subject"], "some discussion topic");
    assert_eq!(res.body["children"][0]["url"], format!("{call_url}/1"));
    assert_eq!(
        res.body["children"][0]["session"],
        "rtsp://media.example.net/123"
    );

    // SEND /login/alok@example.net -- send call invitation; cancel it; and the response
    alok.login(json!({})).await.unwrap();
    for body in [
        json!({"command": "invite", "url": call_url, "id": 567}),
        json!({"command": "cancel", "url": call_url, "id": 567}),
    ] {
        let res = kundan
            .request("SEND", "/login/alok@example.net", Some(body))
            .await
            .unwrap();
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(
            res.body["deliveries"][0]["contact"],
            "/login/alok@example.net/1"
        );
    }
    let res = alok
        .request(
            "SEND",
            "/login/kundan@example.net",
            Some(json!({"command": "reject", "url": call_url, "id": 567, "reason": "busy"})),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.body);

    // POST /user/kundan@example.net/message -- send offline messages (voice/video mail)
    let res = alok
        .request(
            "POST",
            "/user/kundan@example.net/message",
            Some(json!({"url": "rtsp://mail.example.net/1"})),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 201, "{}", res.body);
    // GET /user/kundan@example.net/message -- retrieve list of messages
    let res = kundan
        .get("/user/kundan@example.net/message")
        .await
        .unwrap();
    assert_eq!(res.body[0]["url"], "rtsp://mail.example.net/1");
    assert_eq!(res.body[0]["from"], "alok@example.net");

    // DELETE /login/kundan@example.net/1 -- unregister
    let res = kundan
        .request("DELETE", "/login/kundan@example.net/1", None)
        .await
        .unwrap();
    assert_eq!(res.status, 204);
    assert_eq!(
        alok.get("/login/kundan@example.net").await.unwrap().body,
        json!([])
    );
}
