//! Calls from web users to phones (REST → SIP INVITE), each over UDP and TCP: a web user's
//! SEND of an `invite` to a user with a registered sipp phone is an INVITE; the phone's 180,
//! 200 (with its SDP answer) or 486 come back to the caller's stream as `ringing`, `accept` or
//! `reject`; SENDs of `cancel` and `bye` are CANCEL and BYE. A malformed SDP offer is refused
//! before anything is sent; a phone's malformed SDP answer is a `reject` 488 (and the relay
//! hangs up). A phone nobody answers is cancelled after the invite timeout (`reject` 480). A
//! phone that vanishes ends the call: a `bye` (answered) or a `reject` (ringing), at once over
//! TCP (the connection closes); over UDP once the keep-alive OPTIONS times out (Timer F, 32 s)
//! or, ringing, at the invite timeout.

use std::time::Duration;

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
    setup_with(&[], mode, scenario).await
}

/// [`setup`] with extra relay flags.
async fn setup_with(args: &[&str], mode: Mode, scenario: &'static str) -> Setup {
    let relay = Relay::start(args).await.unwrap();
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
        self.next_body_within(restsip_e2e::WAIT).await
    }

    /// The next message's body, waiting up to `wait` (past a SIP transaction's 32 s).
    async fn next_body_within(&mut self, wait: Duration) -> Value {
        loop {
            let e = self.inbox.next_within(wait).await.unwrap();
            let e = e.expect("a message in time");
            if e.kind == EventKind::Message {
                assert_eq!(e.data["from"], ALICE, "{}", e.data);
                return e.data["body"].clone();
            }
        }
    }
}

/// Longer than a SIP transaction's timeout (64*T1 = 32 s), for what only it reveals.
const PAST_TIMER_F: Duration = Duration::from_secs(60);

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

async fn busy(mode: Mode) {
    let mut s = setup(mode, "invite-uas-busy").await;
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
async fn a_phone_that_is_busy_makes_a_reject_over_udp() {
    busy(UDP).await;
}

#[tokio::test]
async fn a_phone_that_is_busy_makes_a_reject_over_tcp() {
    busy(TCP).await;
}

async fn cancelled(mode: Mode) {
    let mut s = setup(mode, "invite-uas-cancel").await;
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

#[tokio::test]
async fn a_web_user_cancels_a_ringing_call_over_udp() {
    cancelled(UDP).await;
}

#[tokio::test]
async fn a_web_user_cancels_a_ringing_call_over_tcp() {
    cancelled(TCP).await;
}

/// A malformed SDP offer is refused with a problem before the phone hears anything (no UAS
/// runs: an INVITE would go unanswered and the SEND would wait).
async fn bad_offer(mode: Mode) {
    let s = setup(mode, "invite-uas-busy").await;
    let r = s
        .bob
        .request(
            "SEND",
            &format!("/login/{ALICE}"),
            Some(json!({"command": "invite", "sdp": "v=0\r\nnot sdp\r\n"})),
        )
        .await
        .unwrap();
    r.assert_problem(422, "unprocessable");
    assert!(r.body.to_string().contains("sdp"), "{}", r.body);
    // The phone is still free: a good invite reaches it.
    let receipt = s.send(json!({"command": "invite", "sdp": OFFER})).await;
    assert_eq!(receipt["deliveries"][0]["sip"]["code"], 486, "{receipt}");
    s.phone.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_malformed_sdp_offer_is_refused_over_udp() {
    bad_offer(UDP).await;
}

#[tokio::test]
async fn a_malformed_sdp_offer_is_refused_over_tcp() {
    bad_offer(TCP).await;
}

/// The phone answers with a malformed SDP: the caller gets `reject` 488 and the phone a BYE.
async fn bad_answer(mode: Mode) {
    let mut s = setup(mode, "invite-uas-bad-sdp").await;
    s.send(json!({"command": "invite", "sdp": OFFER, "id": 9}))
        .await;
    let ringing = s.next_body().await;
    assert_eq!(ringing["command"], "ringing", "{ringing}");
    let reject = s.next_body().await;
    assert_eq!(reject["command"], "reject", "{reject}");
    assert_eq!(reject["code"], 488, "{reject}");
    assert!(
        reject["reason"].as_str().unwrap().contains("malformed SDP"),
        "{reject}"
    );
    assert_eq!(reject["id"], 9, "{reject}");
    s.phone.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_phone_s_malformed_sdp_answer_is_a_reject_over_udp() {
    bad_answer(UDP).await;
}

#[tokio::test]
async fn a_phone_s_malformed_sdp_answer_is_a_reject_over_tcp() {
    bad_answer(TCP).await;
}

/// The phone answers, then vanishes: the caller gets `bye` with `reason`. Over UDP only the
/// keep-alive tells (every 3 s here: sipp is gone by the first).
async fn callee_vanishes(mode: Mode, reason: &str) {
    let args: &[&str] = if mode == UDP {
        &["--sip-call-keepalive", "3"]
    } else {
        &[]
    };
    let mut s = setup_with(args, mode, "invite-uas-vanish").await;
    s.send(json!({"command": "invite", "sdp": OFFER, "id": 5}))
        .await;
    assert_eq!(s.next_body().await["command"], "ringing");
    assert_eq!(s.next_body().await["command"], "accept");
    (&mut s.phone).await.unwrap().unwrap();
    let bye = s.next_body_within(PAST_TIMER_F).await;
    assert_eq!(bye["command"], "bye", "{bye}");
    assert_eq!(bye["reason"], reason, "{bye}");
    assert_eq!(bye["id"], 5, "{bye}");
}

#[tokio::test]
async fn a_phone_whose_connection_closes_mid_call_ends_it_over_tcp() {
    callee_vanishes(TCP, "connection lost").await;
}

/// Slow: the keep-alive OPTIONS goes unanswered until Timer F (32 s).
#[tokio::test]
async fn a_phone_that_stops_answering_mid_call_ends_it_over_udp() {
    callee_vanishes(UDP, "the phone stopped answering").await;
}

/// Ringing phones are cancelled after this (`--sip-invite-timeout`).
const RING: [&str; 2] = ["--sip-invite-timeout", "2"];

/// Nobody answers the ringing phone: the relay cancels it after the invite timeout and the
/// caller gets `reject` 480; the phone gets the CANCEL, answers 487 and gets the ACK.
async fn unanswered(mode: Mode) {
    let mut s = setup_with(&RING, mode, "invite-uas-cancel").await;
    s.send(json!({"command": "invite", "sdp": OFFER, "id": 4}))
        .await;
    assert_eq!(s.next_body().await["command"], "ringing");
    let reject = s.next_body().await;
    assert_eq!(reject["command"], "reject", "{reject}");
    assert_eq!(reject["code"], 480, "{reject}");
    assert_eq!(reject["id"], 4, "{reject}");
    (&mut s.phone).await.unwrap().unwrap();
    s.inbox.assert_quiet().await;
}

#[tokio::test]
async fn a_phone_nobody_answers_is_cancelled_after_the_invite_timeout_over_udp() {
    unanswered(UDP).await;
}

#[tokio::test]
async fn a_phone_nobody_answers_is_cancelled_after_the_invite_timeout_over_tcp() {
    unanswered(TCP).await;
}

/// The phone rings, then vanishes: the caller gets `reject` with `code`.
async fn vanishes_while_ringing(mode: Mode, code: u16) {
    let mut s = setup_with(&RING, mode, "invite-uas-ring-vanish").await;
    s.send(json!({"command": "invite", "sdp": OFFER, "id": 6}))
        .await;
    assert_eq!(s.next_body().await["command"], "ringing");
    (&mut s.phone).await.unwrap().unwrap();
    let reject = s.next_body_within(PAST_TIMER_F).await;
    assert_eq!(reject["command"], "reject", "{reject}");
    assert_eq!(reject["code"], code, "{reject}");
    assert_eq!(reject["id"], 6, "{reject}");
}

#[tokio::test]
async fn a_phone_whose_connection_closes_while_ringing_is_a_reject_over_tcp() {
    vanishes_while_ringing(TCP, 503).await;
}

/// Over UDP nothing tells a vanished phone from one ringing: the invite timeout ends it.
#[tokio::test]
async fn a_phone_that_vanishes_while_ringing_is_a_reject_over_udp() {
    vanishes_while_ringing(UDP, 480).await;
}
