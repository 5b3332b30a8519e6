//! A relay killed under phones (issue 20 item 5): a phone registered at relay A of a cluster;
//! A is killed with SIGKILL. Relay B, which would route the phone's requests to A, refuses
//! them at once (480) once it sees A gone, instead of sending them to a relay that never
//! answers; the phone's next REGISTER goes to B, which then holds its flow and reaches it.

use std::time::{Duration, Instant};

use serde_json::json;

use restsip_e2e::cluster::{on, Cluster};

use crate::agent::{Agent, Transport};
use crate::relays::vias;

const ALICE: &str = "alice@example.net";
const BOB: &str = "bob@example.net";

#[tokio::test]
async fn a_phone_of_a_killed_relay_is_refused_at_once_then_re_registers_at_another() {
    let mut cluster = Cluster::start("phone-failover", &["a", "b"], &[])
        .await
        .unwrap();
    let b = cluster.relays.pop().unwrap();
    let mut a = cluster.relays.pop().unwrap();
    a.user(ALICE).await.unwrap();
    b.user(BOB).await.unwrap();
    let bob = on(&b, BOB);
    let mut phone = Agent::new(&a, Transport::Udp).await;
    assert_eq!(phone.register(ALICE).await, "SIP/2.0 200 OK");

    a.kill().await.unwrap();
    // B takes A for gone once A's id slot has gone unrenewed for 4 s (checked every second).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let im = json!({"command": "im", "text": "are you there?"});
    let started = Instant::now();
    let refused = bob
        .request("SEND", &format!("/login/{ALICE}"), Some(im.clone()))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(refused.status, 200, "{}", refused.body);
    let delivery = &refused.body["deliveries"][0];
    assert_eq!(delivery["status"], "failed", "{}", refused.body);
    assert_eq!(delivery["sip"]["code"], 480, "{}", refused.body);
    assert!(
        delivery["sip"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("relay holding its connection is gone")),
        "{}",
        refused.body
    );
    // At once, not after a SIP transaction's timeout.
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(
        phone
            .next_within(Duration::from_millis(300))
            .await
            .is_none(),
        "nothing reaches the phone"
    );

    // Its next REGISTER goes to B (another Call-ID: another registrar); B now holds the flow.
    phone.towards(&b);
    assert_eq!(
        phone.register_in(ALICE, "reg-after-failover").await,
        "SIP/2.0 200 OK"
    );
    let send = tokio::spawn(async move {
        bob.request("SEND", &format!("/login/{ALICE}"), Some(im))
            .await
            .unwrap()
    });
    let message = phone.next("MESSAGE ").await;
    assert!(message.ends_with("are you there?"), "{message}");
    assert_eq!(vias(&message), 1, "straight from B: {message}");
    phone.ok(&message).await;
    let receipt = send.await.unwrap();
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    let deliveries = receipt.body["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "one binding: {}", receipt.body);
    assert_eq!(deliveries[0]["status"], "delivered", "{}", receipt.body);
    assert_eq!(deliveries[0]["sip"]["code"], 200, "{}", receipt.body);
}
