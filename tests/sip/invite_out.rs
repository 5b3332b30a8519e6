//! Calls from web users to phones (REST → SIP INVITE): a web user's SEND of an `invite` to a
//! user with a registered sipp phone is an INVITE; the phone's 180, 200 (with its SDP answer)
//! or 486 come back to the caller's stream as `ringing`, `accept` or `reject`; SENDs of
//! `cancel` and `bye` are CANCEL and BYE.

use restsip_e2e::{Client, EventStream, Relay};
use restsip_protocol::EventKind;
use serde_json::{json, Value};

use crate::sipp::{free_port, Mode, TCP, UDP};

const ALICE: &str = "alice@example.net";
const BOB: &str = "bob@example.net";

/// A call in progress: bob (web, with his inbox stream) calls alice's sipp phone.
struct Setup {
    /// The relay (kept alive).
    _relay: Relay,
    /// Bob.
    bob: Client,
    /// Bob's inbox.
    inbox: EventStream,
    /// The phone's sipp run.
    phone: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn setup(mode: Mode, scenario: &'static str) -> Setup {
    let relay = Relay::default().await.unwrap();
    let alice = relay.user(ALICE).await.unwrap();
    let bob = relay.user(BOB).await.unwrap();
    let id = bob.login(json!({})).await.unwrap();
    let mut inbox = bob.sse(&format!("/login/{BOB}/{id}"), None).await.unwrap();
    assert_eq!(inbox.next().await.unwrap().kind, EventKind::State);
    let mut logins = alice.sse(&format!("/login/{ALICE}"), None).await.unwrap();
    assert_eq!(logins.next().await.unwrap().kind, EventKind::State);
    let sip = relay.sip.unwrap();
    let port = free_port();
    crate::sipp::register_phone(sip, mode, ALICE, port).await;
    assert_eq!(logins.next().await.unwrap().kind, EventKind::Added);
    let phone = crate::sipp::spawn_uas(sip, mode, port, scenario).await;
    Setup {
        _relay: relay,
        bob,
        inbox,
        phone,
    }
}

const OFFER: &str = "v=0\r\no=webcaller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                     t=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";

impl Setup {
    async fn send(&self, body: Value) -> Value {
        let r = self
            .bob
            .request("SEND", &format!("/login/{ALICE}"), Some(body))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    async fn next_body(&mut self) -> Value {
        loop {
            let e = self.inbox.next().await.unwrap();
            if e.kind == EventKind::Message {
                assert_eq!(e.data["from"], ALICE, "{}", e.data);
                return e.data["body"].clone();
            }
        }
    }
}

async fn answered(mode: Mode) {
    let mut s = setup(mode, "invite-uas").await;
    let receipt = s
        .send(json!({"command": "invite", "sdp": OFFER, "id": 7}))
        .await;
    let d = &receipt["deliveries"][0];
    assert_eq!(d["status"], "delivered", "{receipt}");
    let ringing = s.next_body().await;
    assert_eq!(ringing["command"], "ringing", "{ringing}");
    assert_eq!(ringing["code"], 180, "{ringing}");
    assert_eq!(ringing["id"], 7, "{ringing}");
    let accept = s.next_body().await;
    assert_eq!(accept["command"], "accept", "{accept}");
    assert!(
        accept["sdp"].as_str().unwrap().contains("o=phoneanswer"),
        "{accept}"
    );
    assert_eq!(accept["id"], 7, "{accept}");
    let bye = s.send(json!({"command": "bye", "id": 7})).await;
    assert_eq!(bye["deliveries"][0]["status"], "delivered", "{bye}");
    s.phone.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_web_user_calls_a_phone_that_answers_over_udp() {
    answered(UDP).await;
}

#[tokio::test]
async fn a_web_user_calls_a_phone_that_answers_over_tcp() {
    answered(TCP).await;
}

#[tokio::test]
async fn a_phone_that_is_busy_makes_a_reject() {
    let mut s = setup(UDP, "invite-uas-busy").await;
    let receipt = s
        .send(json!({"command": "invite", "url": "/call/abc", "id": "x1"}))
        .await;
    assert_eq!(receipt["deliveries"][0]["sip"]["code"], 486, "{receipt}");
    let reject = s.next_body().await;
    assert_eq!(reject["command"], "reject", "{reject}");
    assert_eq!(reject["code"], 486, "{reject}");
    assert_eq!(reject["reason"], "Busy Here", "{reject}");
    assert_eq!(reject["id"], "x1", "{reject}");
    s.phone.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_web_user_cancels_a_ringing_call() {
    let mut s = setup(UDP, "invite-uas-cancel").await;
    s.send(json!({"command": "invite", "sdp": OFFER})).await;
    let ringing = s.next_body().await;
    assert_eq!(ringing["command"], "ringing", "{ringing}");
    let cancel = s.send(json!({"command": "cancel"})).await;
    assert_eq!(cancel["deliveries"][0]["status"], "delivered", "{cancel}");
    let reject = s.next_body().await;
    assert_eq!(reject["command"], "reject", "{reject}");
    assert_eq!(reject["code"], 487, "{reject}");
    s.phone.await.unwrap().unwrap();
}
