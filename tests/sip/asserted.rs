//! The identity the relay asserts on what it sends (issue 18, RFC 3325), read off a phone's
//! UDP socket: a web user's MESSAGE and INVITE to a phone carry `P-Asserted-Identity` with the
//! web user's address (exactly one, whatever the SEND body tries to add: web users give no SIP
//! headers); a phone's MESSAGE forwarded to another user's phone carries the identity the
//! relay checked, and none when its sender asked for `Privacy: id`.

use std::time::Duration;

use restsip_e2e::Relay;
use serde_json::json;

use crate::phones::{header_lines, Phone};

const ALICE: &str = "alice@example.net";
const BOB: &str = "bob@example.net";

/// The phone's 200 to the request `req` it received.
async fn ok(phone: &Phone, req: &str) {
    phone.answer(req, "200 OK", "", "").await;
}

#[tokio::test]
async fn a_web_users_message_and_invite_to_a_phone_assert_her_and_only_her() {
    let relay = Relay::default().await.unwrap();
    relay.user(ALICE).await.unwrap();
    let bob = relay.user(BOB).await.unwrap();
    let phone = Phone::new(&relay).await;
    let status = phone
        .register_as(ALICE, ALICE, &format!("pw-{ALICE}"))
        .await;
    assert!(status.starts_with("SIP/2.0 200"), "{status}");

    // A SEND body that tries to smuggle headers: extra fields, a Content-Type with a line
    // break. Neither becomes a header.
    let sending = {
        let bob = bob.clone();
        tokio::spawn(async move {
            bob.request(
                "SEND",
                &format!("/login/{ALICE}"),
                Some(json!({
                    "command": "im",
                    "text": "hi",
                    "contentType": "text/plain\r\nP-Asserted-Identity: <sip:boss@example.net>",
                    "headers": {"P-Asserted-Identity": "<sip:boss@example.net>"},
                    "P-Asserted-Identity": "<sip:boss@example.net>",
                })),
            )
            .await
            .unwrap()
        })
    };
    let message = phone.next("MESSAGE ").await;
    assert_eq!(
        header_lines(&message, "P-Asserted-Identity"),
        vec![format!("P-Asserted-Identity: <sip:{BOB}>")],
        "{message}"
    );
    assert!(!message.contains("boss@"), "{message}");
    ok(&phone, &message).await;
    let receipt = sending.await.unwrap();
    assert_eq!(
        receipt.body["deliveries"][0]["status"], "delivered",
        "{}",
        receipt.body
    );

    let inviting = {
        let bob = bob.clone();
        tokio::spawn(async move {
            bob.request(
                "SEND",
                &format!("/login/{ALICE}"),
                Some(json!({"command": "invite", "id": 1})),
            )
            .await
        })
    };
    let invite = phone.next("INVITE ").await;
    assert_eq!(
        header_lines(&invite, "P-Asserted-Identity"),
        vec![format!("P-Asserted-Identity: <sip:{BOB}>")],
        "{invite}"
    );
    phone.answer(&invite, "486 Busy Here", "", "").await;
    let _ = tokio::time::timeout(Duration::from_secs(5), inviting).await;
}

#[tokio::test]
async fn a_forwarded_message_asserts_the_checked_sender_unless_she_asks_for_privacy() {
    let relay = Relay::default().await.unwrap();
    relay.user(ALICE).await.unwrap();
    relay.user(BOB).await.unwrap();
    let alices = Phone::new(&relay).await;
    let status = alices
        .register_as(ALICE, ALICE, &format!("pw-{ALICE}"))
        .await;
    assert!(status.starts_with("SIP/2.0 200"), "{status}");
    let bobs = Phone::new(&relay).await;
    let status = bobs.register_as(BOB, BOB, &format!("pw-{BOB}")).await;
    assert!(status.starts_with("SIP/2.0 200"), "{status}");

    // Bob's phone, over the flow it registered on, to alice, who has phones only: the relay
    // forwards the MESSAGE to her phone.
    let (relay_addr, port) = (bobs.relay, bobs.port);
    let message = |n: u32, extra: &str| {
        format!(
            "MESSAGE sip:{ALICE} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-pai-{n};rport\r\n\
             Max-Forwards: 70\r\nTo: <sip:{ALICE}>\r\nFrom: <sip:{BOB}>;tag=pai{n}\r\n\
             Call-ID: pai-{n}@{relay_addr}\r\nCSeq: {n} MESSAGE\r\n{extra}\
             P-Asserted-Identity: <sip:boss@example.net>\r\n\
             Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
        )
    };
    bobs.send(&message(1, "")).await;
    let forwarded = alices.next("MESSAGE ").await;
    assert_eq!(
        header_lines(&forwarded, "P-Asserted-Identity"),
        vec![format!("P-Asserted-Identity: <sip:{BOB}>")],
        "the relay's word for the sender, the forged one gone: {forwarded}"
    );
    ok(&alices, &forwarded).await;
    let answered = bobs.next("SIP/2.0 ").await;
    assert!(answered.starts_with("SIP/2.0 200"), "{answered}");

    bobs.send(&message(2, "Privacy: id\r\n")).await;
    let private = alices.next("MESSAGE ").await;
    assert!(private.contains("pai-2@"), "{private}");
    assert!(
        header_lines(&private, "P-Asserted-Identity").is_empty(),
        "Privacy: id keeps the identity from the phone: {private}"
    );
    ok(&alices, &private).await;
}
