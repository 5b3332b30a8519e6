//! Without rtpengine, or with one that does not answer, a call between a browser and a phone
//! is refused clearly on both sides and nothing hangs; browsers still call each other.

use std::time::Duration;

use restsip_e2e::Relay;
use serde_json::json;
use tokio::net::UdpSocket;

use super::*;
use crate::phones::{call_setup, inbox, Phone};

/// A phone's plain offer to Alice: the relay's final response.
async fn phone_calls_alice(relay: &Relay, call_id: &str) -> String {
    let caller = Phone::new(relay).await;
    // Carol calls from a phone registered as her (or she would be challenged, 407).
    let pw = format!("pw-{CAROL}");
    let status = caller.register_as(CAROL, CAROL, &pw).await;
    assert!(status.starts_with("SIP/2.0 200"), "{status}");
    let sdp = phone_sdp(4000, "sendrecv");
    caller
        .send(&phone_invite(&caller, ALICE, call_id, &sdp))
        .await;
    loop {
        let msg = caller.next("SIP/2.0 ").await;
        if !msg.starts_with("SIP/2.0 1") {
            return msg;
        }
    }
}

fn assert_warning(msg: &str, status: &str) {
    assert!(msg.starts_with(status), "{msg}");
    let warning = header(msg, "Warning");
    assert!(warning.starts_with("399 "), "{msg}");
    assert!(warning.contains("media relay unavailable"), "{msg}");
}

#[tokio::test]
async fn without_rtpengine_calls_between_browsers_and_phones_are_refused() {
    let relay = Relay::default().await.unwrap();
    let (phone, alice, _alice_inbox) = call_setup(&relay).await;
    let invite = json!({"command": "invite", "sdp": CHROME_OFFER, "id": "n1"});
    let r = alice
        .request("SEND", &format!("/login/{CAROL}"), Some(invite))
        .await
        .unwrap();
    r.assert_problem(503, "media-relay-unavailable");
    assert!(phone
        .next_within(Duration::from_millis(300))
        .await
        .is_none());
    let answer = phone_calls_alice(&relay, "norelay-1").await;
    assert_warning(&answer, "SIP/2.0 488");

    // Browsers call each other without it: the offer arrives as it was sent.
    let bob = relay.user("bob@example.net").await.unwrap();
    let mut bob_inbox = inbox(&bob, "bob@example.net").await;
    let invite = json!({"command": "invite", "sdp": CHROME_OFFER, "id": "n2"});
    let r = alice
        .request("SEND", "/login/bob@example.net", Some(invite))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let got = next_body(&mut bob_inbox).await;
    assert_eq!(got["sdp"], CHROME_OFFER, "{got}");

    // With passthrough on, a phone's plain offer reaches web users as it is.
    let relay = Relay::start(&["--sip-sdp-passthrough", "on"])
        .await
        .unwrap();
    let alice = relay.user(ALICE).await.unwrap();
    let mut alice_inbox = inbox(&alice, ALICE).await;
    let caller = Phone::new(&relay).await;
    let sdp = phone_sdp(4000, "sendrecv");
    caller
        .send(&phone_invite(&caller, ALICE, "passthrough-1", &sdp))
        .await;
    let got = next_body(&mut alice_inbox).await;
    assert_eq!(got["sdp"], sdp, "{got}");
}

#[tokio::test]
async fn an_rtpengine_that_does_not_answer_ends_each_leg_with_503() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let relay = Relay::start(&["--rtpengine", &addr]).await.unwrap();
    let (phone, alice, mut alice_inbox) = call_setup(&relay).await;
    let invite = json!({"command": "invite", "sdp": CHROME_OFFER, "id": "t1"});
    let r = alice
        .request("SEND", &format!("/login/{CAROL}"), Some(invite))
        .await
        .unwrap();
    r.assert_problem(503, "media-relay-unavailable");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{}",
        r.body
    );
    assert!(phone
        .next_within(Duration::from_millis(300))
        .await
        .is_none());
    let answer = phone_calls_alice(&relay, "silent-1").await;
    assert_warning(&answer, "SIP/2.0 503");
    // The web user never heard of the phone's call.
    alice_inbox.assert_quiet().await;
}
