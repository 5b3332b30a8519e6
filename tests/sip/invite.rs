//! Calls from phones to web users (SIP → REST INVITE): sipp calls, the web user's stream gets
//! an `invite` with the SDP offer, a call URL and an id, and its SEND of `accept` or `reject`
//! to the caller's address is the phone's 200 (with the answer SDP) or 486; a CANCEL reaches
//! the stream as `cancel`, no answer is 480 with a missed-call offline message, a BYE is `bye`.

use restsip_e2e::{Client, EventStream, Relay};
use restsip_protocol::EventKind;
use serde_json::{json, Value};

use crate::sipp::{free_port, Mode, Run, TCP, UDP};

const ALICE: &str = "alice@example.net";
const BOB: &str = "bob@example.net";

/// Bob logged in with a live inbox stream.
async fn callee(relay: &Relay) -> (Client, EventStream) {
    let bob = relay.user(BOB).await.unwrap();
    let id = bob.login(json!({})).await.unwrap();
    let mut inbox = bob.sse(&format!("/login/{BOB}/{id}"), None).await.unwrap();
    assert_eq!(inbox.next().await.unwrap().kind, EventKind::State);
    (bob, inbox)
}

/// The next message's body on a stream.
async fn next_body(inbox: &mut EventStream) -> Value {
    loop {
        let e = inbox.next().await.unwrap();
        if e.kind == EventKind::Message {
            assert_eq!(e.data["from"], ALICE, "{}", e.data);
            return e.data["body"].clone();
        }
    }
}

/// Starts sipp calling bob from alice with `scenario`.
fn call(
    relay: &Relay,
    scenario: &'static str,
    mode: Mode,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let sip = relay.sip.unwrap();
    tokio::spawn(async move {
        Run {
            relay: sip,
            scenario,
            mode,
            port: free_port(),
            keys: &[("from", ALICE), ("to", BOB)],
            auth: None,
        }
        .pass()
        .await
    })
}

async fn answered(mode: Mode) {
    let relay = Relay::default().await.unwrap();
    let (bob, mut inbox) = callee(&relay).await;
    let phone = call(&relay, "invite-accept", mode);
    let invite = next_body(&mut inbox).await;
    assert_eq!(invite["command"], "invite", "{invite}");
    assert_eq!(invite["from"], ALICE, "{invite}");
    assert!(
        invite["sdp"].as_str().unwrap().contains("m=audio"),
        "{invite}"
    );
    assert!(invite["sip"]["callId"].is_string(), "{invite}");
    let id = invite["id"].as_u64().expect("a numeric id");
    let url = invite["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("/call/"), "{invite}");
    let ctx = bob.get(&url).await.unwrap();
    assert_eq!(ctx.status, 200, "{}", ctx.body);

    let answer = "v=0\r\no=webanswer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                  t=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
    let receipt = bob
        .request(
            "SEND",
            &format!("/login/{ALICE}"),
            Some(json!({"command": "accept", "sdp": answer, "id": id})),
        )
        .await
        .unwrap();
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    let bye = next_body(&mut inbox).await;
    assert_eq!(bye["command"], "bye", "{bye}");
    assert_eq!(bye["id"], id, "{bye}");
    phone.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_phone_calls_a_web_user_who_answers_over_udp() {
    answered(UDP).await;
}

#[tokio::test]
async fn a_phone_calls_a_web_user_who_answers_over_tcp() {
    answered(TCP).await;
}

#[tokio::test]
async fn a_web_user_rejects_a_call_with_486() {
    let relay = Relay::default().await.unwrap();
    let (bob, mut inbox) = callee(&relay).await;
    let phone = call(&relay, "invite-busy", UDP);
    let invite = next_body(&mut inbox).await;
    let receipt = bob
        .request(
            "SEND",
            &format!("/login/{ALICE}"),
            Some(json!({"command": "reject", "reason": "busy", "id": invite["id"]})),
        )
        .await
        .unwrap();
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    phone.await.unwrap().unwrap();
    // The invite is over: answering it again is an ordinary SEND (alice is no user: 404).
    let again = bob
        .request(
            "SEND",
            &format!("/login/{ALICE}"),
            Some(json!({"command": "accept", "id": invite["id"]})),
        )
        .await
        .unwrap();
    assert_eq!(again.status, 404, "{}", again.body);
}

#[tokio::test]
async fn a_phone_cancels_a_call_over_tcp() {
    let relay = Relay::default().await.unwrap();
    let (_bob, mut inbox) = callee(&relay).await;
    let phone = call(&relay, "invite-cancel", TCP);
    let invite = next_body(&mut inbox).await;
    assert_eq!(invite["command"], "invite");
    let cancel = next_body(&mut inbox).await;
    assert_eq!(cancel["command"], "cancel", "{cancel}");
    assert_eq!(cancel["id"], invite["id"], "{cancel}");
    phone.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_unanswered_call_is_480_and_a_missed_call_message() {
    let relay = Relay::start(&["--sip-invite-timeout", "1"]).await.unwrap();
    let (bob, mut inbox) = callee(&relay).await;
    let phone = call(&relay, "invite-timeout", UDP);
    let invite = next_body(&mut inbox).await;
    let cancel = next_body(&mut inbox).await;
    assert_eq!(cancel["command"], "cancel", "{cancel}");
    assert_eq!(cancel["reason"], "timeout", "{cancel}");
    assert_eq!(cancel["id"], invite["id"], "{cancel}");
    phone.await.unwrap().unwrap();
    let mail = bob.get(&format!("/user/{BOB}/message")).await.unwrap();
    assert_eq!(mail.status, 200, "{}", mail.body);
    let text = mail.body.to_string();
    assert!(text.contains("missed-call"), "{text}");
    assert!(text.contains(ALICE), "{text}");
}
