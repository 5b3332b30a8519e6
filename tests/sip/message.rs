//! Instant messages (RFC 3428) between SIP phones and web users: sipp sends a MESSAGE that a
//! web user's stream receives; a web user's SEND of an `im` reaches a registered sipp phone as
//! a MESSAGE and its answer becomes the delivery's status. Each over UDP and TCP, and so are
//! the refusals (404 unknown user, 480 not logged in, 202 queued, 415, 400).

use restsip_e2e::Relay;
use restsip_protocol::EventKind;
use serde_json::json;

use crate::sipp::{free_port, Mode, Run, TCP, UDP};

const ALICE: &str = "alice@example.net";
const BOB: &str = "bob@example.net";

async fn phone_to_web(mode: Mode) {
    let relay = Relay::default().await.unwrap();
    let bob = relay.user(BOB).await.unwrap();
    let id = bob.login(json!({})).await.unwrap();
    let mut inbox = bob.sse(&format!("/login/{BOB}/{id}"), None).await.unwrap();
    assert_eq!(inbox.next().await.unwrap().kind, EventKind::State);
    Run {
        relay: relay.sip.unwrap(),
        scenario: "message",
        mode,
        port: free_port(),
        keys: &[("from", ALICE), ("to", BOB), ("text", "hello web")],
        auth: None,
    }
    .pass()
    .await
    .unwrap();
    let msg = inbox.next().await.unwrap();
    assert_eq!(msg.kind, EventKind::Message);
    assert_eq!(msg.data["from"], ALICE, "{}", msg.data);
    let body = &msg.data["body"];
    assert_eq!(body["command"], "im", "{body}");
    assert_eq!(body["text"].as_str().unwrap().trim(), "hello web", "{body}");
    assert_eq!(body["contentType"], "text/plain;charset=UTF-8", "{body}");
    assert!(body["sip"]["callId"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
}

#[tokio::test]
async fn a_phone_messages_a_web_user_over_udp() {
    phone_to_web(UDP).await;
}

#[tokio::test]
async fn a_phone_messages_a_web_user_over_tcp() {
    phone_to_web(TCP).await;
}

/// The status line a MESSAGE from alice to `to` gets.
async fn status(relay: &Relay, mode: Mode, to: &str, ctype: &str, text: &str) -> String {
    let keys = [
        ("from", ALICE),
        ("to", to),
        ("ctype", ctype),
        ("text", text),
    ];
    crate::sipp::final_status(relay.sip.unwrap(), "message-status", mode, &keys).await
}

async fn refusals(mode: Mode) {
    let relay = Relay::default().await.unwrap();
    let bob = relay.user(BOB).await.unwrap();
    let expect = [
        ("nobody@example.net", "text/plain", "x", 404),
        (BOB, "text/plain", "x", 480),
    ];
    for (to, ctype, text, code) in expect {
        let line = status(&relay, mode, to, ctype, text).await;
        assert!(line.starts_with(&format!("SIP/2.0 {code} ")), "{line}");
    }
    // Logged in without a live stream: queued (202), and handed over when the stream opens.
    let id = bob.login(json!({})).await.unwrap();
    let expect = [
        ("application/json", r#"{"a":1}"#, 202),
        ("image/png", "x", 415),
        ("text/plain;charset=latin1", "x", 415),
        ("application/json", "{not json", 400),
    ];
    for (ctype, text, code) in expect {
        let line = status(&relay, mode, BOB, ctype, text).await;
        assert!(
            line.starts_with(&format!("SIP/2.0 {code} ")),
            "{ctype}: {line}"
        );
    }
    let mut inbox = bob.sse(&format!("/login/{BOB}/{id}"), None).await.unwrap();
    let mut got = None;
    for _ in 0..3 {
        let e = inbox.next().await.unwrap();
        if e.kind == EventKind::Message {
            got = Some(e);
            break;
        }
    }
    let got = got.expect("the queued MESSAGE");
    assert_eq!(
        got.data["body"]["text"].as_str().unwrap().trim(),
        r#"{"a":1}"#
    );
    assert_eq!(got.data["body"]["contentType"], "application/json");
}

#[tokio::test]
async fn messages_are_accepted_queued_or_refused_with_the_fitting_status_over_udp() {
    refusals(UDP).await;
}

#[tokio::test]
async fn messages_are_accepted_queued_or_refused_with_the_fitting_status_over_tcp() {
    refusals(TCP).await;
}

/// A sipp phone registers as alice, then a sipp UAS on its port answers bob's `im` SEND with
/// `scenario`; returns the receipt's one delivery.
async fn web_to_phone(mode: Mode, scenario: &'static str) -> serde_json::Value {
    let relay = Relay::default().await.unwrap();
    let alice = relay.user(ALICE).await.unwrap();
    let bob = relay.user(BOB).await.unwrap();
    let mut logins = alice.sse(&format!("/login/{ALICE}"), None).await.unwrap();
    assert_eq!(logins.next().await.unwrap().kind, EventKind::State);
    let sip = relay.sip.unwrap();
    let port = free_port();
    crate::sipp::register_phone(sip, mode, ALICE, port).await;
    let added = logins.next().await.unwrap();
    assert_eq!(added.kind, EventKind::Added);
    let phone = crate::sipp::spawn_uas(sip, mode, port, scenario).await;
    let receipt = bob
        .request(
            "SEND",
            &format!("/login/{ALICE}"),
            Some(json!({"command": "im", "text": "hello phone"})),
        )
        .await
        .unwrap();
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    phone.await.unwrap().unwrap();
    let deliveries = receipt.body["deliveries"].as_array().unwrap().clone();
    assert_eq!(deliveries.len(), 1, "{}", receipt.body);
    assert_eq!(
        deliveries[0]["contact"],
        format!("/login/{ALICE}/{}", added.data["id"])
    );
    deliveries[0].clone()
}

#[tokio::test]
async fn a_web_users_im_reaches_a_phone_over_udp_and_tcp() {
    for mode in [UDP, TCP] {
        let d = web_to_phone(mode, "message-uas").await;
        assert_eq!(d["status"], "delivered", "{d}");
        assert_eq!(d["sip"]["code"], 200, "{d}");
    }
}

#[tokio::test]
async fn a_phone_that_refuses_an_im_makes_the_delivery_fail_over_udp_and_tcp() {
    for mode in [UDP, TCP] {
        let d = web_to_phone(mode, "message-uas-busy").await;
        assert_eq!(d["status"], "failed", "{d}");
        assert_eq!(d["sip"]["code"], 486, "{d}");
        assert_eq!(d["sip"]["reason"], "Busy Here", "{d}");
    }
}

/// One address, one account over SIP too: a MESSAGE to `sip:Bob@Example.NET.` reaches bob.
#[tokio::test]
async fn a_message_to_any_spelling_of_an_address_reaches_its_account() {
    let relay = Relay::default().await.unwrap();
    let bob = relay.user(BOB).await.unwrap();
    let id = bob.login(json!({})).await.unwrap();
    let mut inbox = bob.sse(&format!("/login/{BOB}/{id}"), None).await.unwrap();
    assert_eq!(inbox.next().await.unwrap().kind, EventKind::State);
    let line = status(&relay, UDP, "Bob@Example.NET.", "text/plain", "hi bob").await;
    assert!(line.starts_with("SIP/2.0 200 "), "{line}");
    let msg = inbox.next().await.unwrap();
    assert_eq!(msg.kind, EventKind::Message);
    assert_eq!(msg.data["body"]["text"].as_str().unwrap().trim(), "hi bob");
}
