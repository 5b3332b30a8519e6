//! SIP across relays (issue 20 item 3): two relay processes over one store (a shared SQLite
//! file), a phone registered at relay A over UDP or TCP, and requests for its user arriving
//! at relay B: B sends them to A with a Route naming A (the binding records A as the holder
//! of the phone's flow), A passes them on over the phone's flow, and the phone's answer comes
//! back along the Vias.

use serde_json::json;

use restsip_e2e::Relay;

use crate::agent::{status, Agent, Request, Transport};
use crate::phones::header_lines;

const ALICE: &str = "alice@example.net";
const BOB: &str = "bob@example.net";

/// Two relays sharing one SQLite file (A started first: it makes the schema); the directory
/// holding the file lives as long as the first value.
async fn two_relays() -> (tempfile::TempDir, Relay, Relay) {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("shared.db").display());
    let a = Relay::start(&["--database", &db]).await.unwrap();
    let b = Relay::start(&["--database", &db]).await.unwrap();
    (dir, a, b)
}

/// The number of Via values of a message.
pub(crate) fn vias(msg: &str) -> usize {
    header_lines(msg, "Via")
        .iter()
        .map(|line| line.split(',').count())
        .sum()
}

/// A phone registered at A over `transport` gets a web user's `im` SEND made at B, and then
/// a SIP MESSAGE sent to B; both carry the phone's 200 back.
async fn phone_at_a_reached_from_b(transport: Transport) {
    let (_dir, a, b) = two_relays().await;
    a.user(ALICE).await.unwrap();
    let bob = b.user(BOB).await.unwrap();
    let phone = Agent::new(&a, transport).await;
    assert_eq!(phone.register(ALICE).await, "SIP/2.0 200 OK");

    // A SEND at B: the receipt waits for the phone's answer, so it runs beside the phone.
    let send = tokio::spawn(async move {
        bob.request(
            "SEND",
            &format!("/login/{ALICE}"),
            Some(json!({"command": "im", "text": "hello from relay B"})),
        )
        .await
        .unwrap()
    });
    let message = phone.next("MESSAGE ").await;
    assert!(message.ends_with("hello from relay B"), "{message}");
    // B's Via and A's: it came through both relays.
    assert_eq!(vias(&message), 2, "{message}");
    assert!(
        header_lines(&message, "Route").is_empty(),
        "A spent its Route: {message}"
    );
    phone.ok(&message).await;
    let receipt = send.await.unwrap();
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    let deliveries = receipt.body["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{}", receipt.body);
    assert_eq!(deliveries[0]["status"], "delivered", "{}", receipt.body);
    assert_eq!(deliveries[0]["sip"]["code"], 200, "{}", receipt.body);

    // A SIP MESSAGE from another domain's peer, sent to B.
    let peer = Agent::new(&b, Transport::Udp).await;
    let req = Request {
        content_type: "text/plain",
        body: "hello over SIP via B",
        ..Request::new("MESSAGE", "carol@elsewhere.example", ALICE)
    };
    let (answer, message) = tokio::join!(peer.final_response(&req, "relays-msg-1"), async {
        let message = phone.next("MESSAGE ").await;
        phone.ok(&message).await;
        message
    });
    assert!(message.ends_with("hello over SIP via B"), "{message}");
    assert_eq!(vias(&message), 3, "the peer's, B's and A's: {message}");
    assert_eq!(status(&answer), "SIP/2.0 200 OK", "{answer}");
}

#[tokio::test]
async fn a_phone_registered_at_one_relay_is_reached_from_another_over_udp() {
    phone_at_a_reached_from_b(Transport::Udp).await;
}

#[tokio::test]
async fn a_phone_registered_at_one_relay_is_reached_from_another_over_tcp() {
    phone_at_a_reached_from_b(Transport::Tcp).await;
}
