//! SIP over TLS inside dialogs (issue 18): a phone registered over TLS calls a web user; the
//! relay's 200 names its TLS address in the Contact (`;transport=tls`, the TLS port), so the
//! phone's requests in the dialog come back over TLS, and the web user's hang-up reaches the
//! phone as a BYE over the TLS connection (Via `SIP/2.0/TLS` with the TLS port); a SUBSCRIBE
//! over TLS is answered, and notified, with the TLS Contact. A `sips:`
//! contact registered over UDP gets no MESSAGE: the SEND's delivery fails with 480 rather than
//! the relay downgrading it (RFC 5630).

use std::time::Duration;

use restsip_e2e::tls::{OpensslPeer, Pki};
use restsip_e2e::WAIT;
use restsip_protocol::EventKind;
use serde_json::{json, Value};

use crate::phones::{header_lines, inbox, Phone};
use crate::tls::{alice_registered_over_tls, bob_sends, phone_response, relay_with_tls};

const ALICE: &str = "alice@example.net";
const BOB: &str = "bob@example.net";

const OFFER: &str = "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                     t=0 0\r\nm=audio 41000 RTP/AVP 0\r\n";
const ANSWER: &str = "v=0\r\no=webanswer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                      t=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";

/// The next message over `phone` whose start line begins with `start` (provisional responses
/// and retransmissions skipped).
async fn next_starting(phone: &mut OpensslPeer, start: &str) -> String {
    loop {
        let msg = phone.next_message().await.unwrap();
        if msg.starts_with(start) {
            return msg;
        }
    }
}

#[tokio::test]
async fn a_tls_phones_call_keeps_tls_in_its_dialog_contact_and_bye() {
    let mut alice = alice_registered_over_tls(&["--sip-sdp-passthrough", "on"]).await;
    let (tls, bob, phone) = (alice.tls, &alice.bob, &mut alice.phone);
    let mut bob_inbox = inbox(bob, BOB).await;

    // Alice's phone calls bob over the flow it registered on (so it is not challenged).
    let invite = format!(
        "INVITE sip:{BOB} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-tls-inv;rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:{BOB}>\r\nFrom: <sip:{ALICE}>;tag=tlscaller\r\n\
         Call-ID: tls-invite\r\nCSeq: 1 INVITE\r\nContact: <sip:phone@127.0.0.1:5999;transport=tls>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{OFFER}",
        OFFER.len()
    );
    phone.send(invite.as_bytes()).await.unwrap();
    let offered = loop {
        let e = bob_inbox.next().await.unwrap();
        if e.kind == EventKind::Message && e.data["body"]["command"] == "invite" {
            break e.data["body"].clone();
        }
    };
    let accepting = bob_sends(
        bob,
        json!({"command": "accept", "sdp": ANSWER, "id": offered["id"]}),
    );
    let ok = next_starting(phone, "SIP/2.0 200 ").await;
    let contact = header_lines(&ok, "Contact").remove(0);
    assert!(
        contact.contains(&format!("127.0.0.1:{};transport=tls", tls.port())),
        "the relay's Contact names its TLS address, so requests in the dialog come back over TLS: {ok}"
    );
    let to = header_lines(&ok, "To").remove(0);
    let ack = format!(
        "ACK sip:127.0.0.1:{port};transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-tls-ack;rport\r\nMax-Forwards: 70\r\n\
         {to}\r\nFrom: <sip:{ALICE}>;tag=tlscaller\r\nCall-ID: tls-invite\r\nCSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n",
        port = tls.port()
    );
    phone.send(ack.as_bytes()).await.unwrap();
    let accepted = tokio::time::timeout(WAIT, accepting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(accepted.status, 200, "{}", accepted.body);

    // Bob hangs up: the BYE reaches the phone over its TLS connection, the relay's Via on
    // the TLS port.
    let hanging_up = bob_sends(bob, json!({"command": "bye", "id": offered["id"]}));
    let bye = next_starting(phone, "BYE ").await;
    assert!(
        bye.starts_with("BYE sip:phone@127.0.0.1:5999;transport=tls "),
        "{bye}"
    );
    let via = header_lines(&bye, "Via").remove(0);
    assert!(
        via.contains(&format!("SIP/2.0/TLS 127.0.0.1:{}", tls.port())),
        "{bye}"
    );
    phone
        .send(phone_response(&bye, "200 OK").as_bytes())
        .await
        .unwrap();
    let receipt: Value = tokio::time::timeout(WAIT, hanging_up)
        .await
        .unwrap()
        .unwrap()
        .body;
    assert_eq!(receipt["deliveries"][0]["status"], "delivered", "{receipt}");
}

#[tokio::test]
async fn a_sips_contact_registered_over_udp_is_never_sent_a_message_without_tls() {
    let pki = Pki::new().unwrap();
    let (relay, _tls) = relay_with_tls(&pki, &[]).await;
    relay.user(ALICE).await.unwrap();
    let bob = relay.user(BOB).await.unwrap();
    let phone = Phone::new(&relay).await;
    let status = phone
        .register_rewritten(ALICE, ALICE, &format!("pw-{ALICE}"), |r| {
            r.replace("Contact: <sip:phone@", "Contact: <sips:phone@")
        })
        .await;
    assert!(status.starts_with("SIP/2.0 200"), "{status}");

    let receipt = bob
        .request(
            "SEND",
            &format!("/login/{ALICE}"),
            Some(json!({"command": "im", "text": "only over tls"})),
        )
        .await
        .unwrap();
    let delivery = &receipt.body["deliveries"][0];
    assert_eq!(delivery["status"], "failed", "{}", receipt.body);
    assert_eq!(delivery["sip"]["code"], 480, "{}", receipt.body);
    assert!(
        delivery["sip"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("sips:")),
        "{}",
        receipt.body
    );
    assert_eq!(
        phone.next_within(Duration::from_millis(500)).await,
        None,
        "nothing reached the phone over UDP"
    );
}

#[tokio::test]
async fn a_subscription_over_tls_is_answered_and_notified_with_the_tls_contact() {
    let mut alice = alice_registered_over_tls(&[]).await;
    let (tls, bob, phone) = (alice.tls, &alice.bob, &mut alice.phone);

    // Alice's phone (over the flow it registered on) watches bob, a signed-in user may.
    let subscribe = format!(
        "SUBSCRIBE sip:{BOB} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-tls-sub;rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:{BOB}>\r\nFrom: <sip:{ALICE}>;tag=tlswatch\r\n\
         Call-ID: tls-subscribe\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:phone@127.0.0.1:5999;transport=tls>\r\n\
         Event: presence\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n"
    );
    phone.send(subscribe.as_bytes()).await.unwrap();
    let ok = next_starting(phone, "SIP/2.0 ").await;
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    let tls_contact = format!("127.0.0.1:{};transport=tls", tls.port());
    assert!(
        header_lines(&ok, "Contact")[0].contains(&tls_contact),
        "{ok}"
    );
    let first = next_starting(phone, "NOTIFY ").await;
    phone
        .send(phone_response(&first, "200 OK").as_bytes())
        .await
        .unwrap();
    // Bob logs in: the NOTIFY comes over TLS, naming the relay's TLS address.
    bob.login(json!({})).await.unwrap();
    let notify = next_starting(phone, "NOTIFY ").await;
    assert!(
        header_lines(&notify, "Contact")[0].contains(&tls_contact),
        "{notify}"
    );
    assert!(
        header_lines(&notify, "Via")[0].contains(&format!("SIP/2.0/TLS 127.0.0.1:{}", tls.port())),
        "{notify}"
    );
    phone
        .send(phone_response(&notify, "200 OK").as_bytes())
        .await
        .unwrap();
}
