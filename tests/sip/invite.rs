//! Calls from phones to web users (SIP → REST INVITE), each over UDP and TCP: sipp calls, the
//! web user's stream gets an `invite` with the SDP offer, a call URL and an id, and its SEND of
//! `accept` or `reject` to the caller's address is the phone's 200 (with the answer SDP) or
//! 486; a CANCEL reaches the stream as `cancel`, no answer is 480 with a missed-call offline
//! message, a BYE is `bye`. With two web logins the one that does not answer gets a `cancel`.
//! An unknown user, a malformed SDP or a body that is not SDP are refused before the web user
//! hears of the call; an `accept` with a malformed SDP answer is refused with a problem. A
//! phone that vanishes (its TCP connection closes, it answers the relay's keep-alive OPTIONS
//! with 481, it never ACKs the 200) ends the call with a `bye` (or, still ringing, a `cancel`).

use restsip_e2e::{Client, EventStream, Relay};
use restsip_protocol::EventKind;
use serde_json::{json, Value};

use crate::sipp::{free_port, Mode, Run, TCP, UDP};

const ALICE: &str = "alice@example.net";
const BOB: &str = "bob@example.net";

/// The web users here answer with plain SDP, as servers with an RTP stack of their own
/// would: the relay hands them phones' offers as they are (calls through rtpengine, for
/// browsers, are in `media`).
const PASSTHROUGH: &[&str] = &["--sip-sdp-passthrough", "on"];

const ANSWER: &str = "v=0\r\no=webanswer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                      t=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";

/// Bob logged in with a live inbox stream.
async fn callee(relay: &Relay) -> (Client, EventStream) {
    let bob = relay.user(BOB).await.unwrap();
    (bob.clone(), web_login(&bob).await)
}

/// A new login of `user` and its inbox stream, open.
async fn web_login(user: &Client) -> EventStream {
    let id = user.login(json!({})).await.unwrap();
    let path = format!("/login/{}/{id}", user.email());
    let mut inbox = user.sse(&path, None).await.unwrap();
    assert_eq!(inbox.next().await.unwrap().kind, EventKind::State);
    inbox
}

/// The next message's body on a stream.
async fn next_body(inbox: &mut EventStream) -> Value {
    next_message(inbox).await["body"].clone()
}

/// The next message on a stream (within `restsip_e2e::WAIT`).
async fn next_message(inbox: &mut EventStream) -> Value {
    loop {
        let e = inbox.next().await.unwrap();
        if e.kind == EventKind::Message {
            assert_eq!(e.data["from"], ALICE, "{}", e.data);
            return e.data;
        }
    }
}

/// Starts sipp calling bob from alice with `scenario`.
fn call(
    relay: &Relay,
    scenario: &'static str,
    mode: Mode,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    call_within(relay, scenario, mode, 20)
}

/// [`call`] for a scenario that may take up to `seconds`.
fn call_within(
    relay: &Relay,
    scenario: &'static str,
    mode: Mode,
    seconds: u32,
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
        .pass_within(seconds)
        .await
    })
}

/// Bob's SEND to alice; its HTTP reply.
async fn answer(bob: &Client, body: Value) -> restsip_e2e::Reply {
    bob.request("SEND", &format!("/login/{ALICE}"), Some(body))
        .await
        .unwrap()
}

/// Bob accepts `invite` with [`ANSWER`]; the call context's URL.
async fn accept(bob: &Client, invite: &Value) -> String {
    let receipt = answer(
        bob,
        json!({"command": "accept", "sdp": ANSWER, "id": invite["id"]}),
    )
    .await;
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    invite["url"].as_str().unwrap().to_owned()
}

/// The call context the relay made is deleted once the call is over.
async fn assert_context_gone(bob: &Client, url: &str) {
    let ctx = bob.get(url).await.unwrap();
    assert_eq!(ctx.status, 404, "{url} outlived its call: {}", ctx.body);
}

/// How the web user gives the SDP answer.
#[derive(Clone, Copy)]
enum Answering {
    /// In the accept SEND (`sdp`).
    InTheAccept,
    /// As the session it joins the call context with (`{"sdp": ...}`), then a bare accept
    /// (what the wasm client's `IncomingInvite.accept(session)` does).
    ByJoining,
}

async fn answered(mode: Mode, how: Answering) {
    let relay = Relay::start(PASSTHROUGH).await.unwrap();
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
    // The call context carries the offer, for a page that answers by joining it.
    assert_eq!(ctx.body["data"]["sdp"], invite["sdp"], "{}", ctx.body);

    // A malformed SDP answer is refused and the invite still waits for a good one.
    let bad = answer(
        &bob,
        json!({"command": "accept", "sdp": "not a session description", "id": id}),
    )
    .await;
    bad.assert_problem(422, "unprocessable");
    assert!(bad.body.to_string().contains("sdp"), "{}", bad.body);
    let none = answer(&bob, json!({"command": "accept", "id": id})).await;
    none.assert_problem(422, "unprocessable");

    match how {
        Answering::InTheAccept => {
            accept(&bob, &invite).await;
        }
        Answering::ByJoining => {
            let login = bob.get(&format!("/login/{BOB}")).await.unwrap().body[0]["url"].clone();
            let joined = bob
                .request(
                    "POST",
                    &url,
                    Some(json!({"url": login, "session": {"sdp": ANSWER}})),
                )
                .await
                .unwrap();
            assert_eq!(joined.status, 201, "{}", joined.body);
            let receipt = answer(&bob, json!({"command": "accept", "id": id})).await;
            assert_eq!(receipt.status, 200, "{}", receipt.body);
        }
    }
    let bye = next_body(&mut inbox).await;
    assert_eq!(bye["command"], "bye", "{bye}");
    assert_eq!(bye["id"], id, "{bye}");
    assert!(bye.get("reason").is_none(), "{bye}");
    phone.await.unwrap().unwrap();
    assert_context_gone(&bob, &url).await;
}

#[tokio::test]
async fn a_phone_calls_a_web_user_who_answers_over_udp() {
    answered(UDP, Answering::InTheAccept).await;
}

#[tokio::test]
async fn a_web_user_answers_with_the_session_it_joined_the_call_with_over_udp() {
    answered(UDP, Answering::ByJoining).await;
}

#[tokio::test]
async fn a_phone_calls_a_web_user_who_answers_over_tcp() {
    answered(TCP, Answering::InTheAccept).await;
}

async fn rejected(mode: Mode) {
    let relay = Relay::start(PASSTHROUGH).await.unwrap();
    let (bob, mut inbox) = callee(&relay).await;
    let phone = call(&relay, "invite-busy", mode);
    let invite = next_body(&mut inbox).await;
    let body = json!({"command": "reject", "reason": "busy", "id": invite["id"]});
    let receipt = answer(&bob, body).await;
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    phone.await.unwrap().unwrap();
    // The invite is over: answering it again is an ordinary SEND (alice is no user: 404).
    let again = answer(&bob, json!({"command": "accept", "id": invite["id"]})).await;
    assert_eq!(again.status, 404, "{}", again.body);
    assert_context_gone(&bob, invite["url"].as_str().unwrap()).await;
}

#[tokio::test]
async fn a_web_user_rejects_a_call_with_486_over_udp() {
    rejected(UDP).await;
}

#[tokio::test]
async fn a_web_user_rejects_a_call_with_486_over_tcp() {
    rejected(TCP).await;
}

async fn cancelled(mode: Mode) {
    let relay = Relay::start(PASSTHROUGH).await.unwrap();
    let (_bob, mut inbox) = callee(&relay).await;
    let phone = call(&relay, "invite-cancel", mode);
    let invite = next_body(&mut inbox).await;
    assert_eq!(invite["command"], "invite");
    let cancel = next_body(&mut inbox).await;
    assert_eq!(cancel["command"], "cancel", "{cancel}");
    assert_eq!(cancel["id"], invite["id"], "{cancel}");
    phone.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_phone_cancels_a_call_over_udp() {
    cancelled(UDP).await;
}

#[tokio::test]
async fn a_phone_cancels_a_call_over_tcp() {
    cancelled(TCP).await;
}

async fn unanswered(mode: Mode) {
    let relay = Relay::start(&["--sip-invite-timeout", "1", PASSTHROUGH[0], PASSTHROUGH[1]])
        .await
        .unwrap();
    let (bob, mut inbox) = callee(&relay).await;
    let phone = call(&relay, "invite-timeout", mode);
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

#[tokio::test]
async fn an_unanswered_call_is_480_and_a_missed_call_message_over_udp() {
    unanswered(UDP).await;
}

#[tokio::test]
async fn an_unanswered_call_is_480_and_a_missed_call_message_over_tcp() {
    unanswered(TCP).await;
}

/// Bob has two web logins; the invite reaches both, one answers (naming itself as `login`),
/// and the other gets a `cancel`.
async fn answered_elsewhere(mode: Mode) {
    let relay = Relay::start(PASSTHROUGH).await.unwrap();
    let (bob, mut desk) = callee(&relay).await;
    let mut laptop = web_login(&bob).await;
    let phone = call(&relay, "invite-accept", mode);
    let on_desk = next_message(&mut desk).await;
    let on_laptop = next_message(&mut laptop).await;
    let invite = on_desk["body"].clone();
    assert_eq!(invite["command"], "invite", "{invite}");
    assert_eq!(on_laptop["body"]["id"], invite["id"], "{on_laptop}");
    let receipt = answer(
        &bob,
        json!({"command": "accept", "sdp": ANSWER, "id": invite["id"], "login": on_desk["to"]}),
    )
    .await;
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    let cancel = next_body(&mut laptop).await;
    assert_eq!(cancel["command"], "cancel", "{cancel}");
    assert_eq!(cancel["reason"], "answered elsewhere", "{cancel}");
    assert_eq!(cancel["id"], invite["id"], "{cancel}");
    // The login that answered hears no cancel: the next thing it hears is the phone's BYE.
    let bye = next_body(&mut desk).await;
    assert_eq!(bye["command"], "bye", "{bye}");
    phone.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_other_web_logins_hear_a_cancel_when_one_answers_over_udp() {
    answered_elsewhere(UDP).await;
}

#[tokio::test]
async fn the_other_web_logins_hear_a_cancel_when_one_answers_over_tcp() {
    answered_elsewhere(TCP).await;
}

/// Runs `invite-refused` from alice to `to` with a one-line body; the final status line.
async fn refusal(relay: &Relay, mode: Mode, to: &str, ctype: &str, body: &str) -> String {
    let keys = [
        ("from", ALICE),
        ("to", to),
        ("ctype", ctype),
        ("body", body),
    ];
    crate::sipp::final_status(relay.sip.unwrap(), "invite-refused", mode, &keys).await
}

/// Unknown users, malformed SDP and bodies that are not SDP are refused, and the web user
/// hears nothing of them.
async fn refused(mode: Mode) {
    let relay = Relay::start(PASSTHROUGH).await.unwrap();
    let (_bob, mut inbox) = callee(&relay).await;
    let sdp = "application/sdp";
    let line = refusal(&relay, mode, "nobody@example.net", sdp, "v=0").await;
    assert!(line.starts_with("SIP/2.0 404 "), "{line}");
    let line = refusal(&relay, mode, BOB, sdp, "this is not SDP").await;
    assert!(line.starts_with("SIP/2.0 400 "), "{line}");
    assert!(line.contains("malformed SDP"), "{line}");
    let line = refusal(&relay, mode, BOB, "text/html", "<p>call me</p>").await;
    assert!(line.starts_with("SIP/2.0 415 "), "{line}");
    inbox.assert_quiet().await;
}

#[tokio::test]
async fn unknown_users_and_bad_bodies_are_refused_over_udp() {
    refused(UDP).await;
}

#[tokio::test]
async fn unknown_users_and_bad_bodies_are_refused_over_tcp() {
    refused(TCP).await;
}

/// The caller vanishes once answered (`scenario`; the relay runs with `args`): the web user
/// gets a `bye` with `reason` and the call context goes.
async fn caller_vanishes(args: &[&str], mode: Mode, scenario: &'static str, reason: &str) {
    let args: Vec<&str> = args.iter().chain(PASSTHROUGH).copied().collect();
    let relay = Relay::start(&args).await.unwrap();
    let (bob, mut inbox) = callee(&relay).await;
    let phone = call_within(&relay, scenario, mode, 60);
    let invite = next_body(&mut inbox).await;
    let url = accept(&bob, &invite).await;
    phone.await.unwrap().unwrap();
    let bye = next_body(&mut inbox).await;
    assert_eq!(bye["command"], "bye", "{bye}");
    assert_eq!(bye["id"], invite["id"], "{bye}");
    assert_eq!(bye["reason"], reason, "{bye}");
    assert_context_gone(&bob, &url).await;
    // Hanging up a call that is over is an ordinary SEND again.
    let late = answer(&bob, json!({"command": "bye", "id": invite["id"]})).await;
    assert_eq!(late.status, 404, "{}", late.body);
}

#[tokio::test]
async fn a_caller_whose_connection_closes_mid_call_ends_it_over_tcp() {
    // No keep-alive needed: the closed connection tells.
    caller_vanishes(&[], TCP, "invite-accept-vanish", "connection lost").await;
}

/// Slow: the relay waits 64*T1 (32 s) for the ACK, then hangs up with a BYE (sipp checks it).
#[tokio::test]
async fn a_caller_that_never_acks_the_answer_is_hung_up_over_tcp() {
    caller_vanishes(&[], TCP, "invite-no-ack", "no ACK for the answer").await;
}

#[tokio::test]
async fn a_caller_that_forgot_the_call_answers_the_keepalive_481_over_udp() {
    let reason = "the phone no longer knows the call";
    let args = ["--sip-call-keepalive", "1"];
    caller_vanishes(&args, UDP, "invite-accept-forget", reason).await;
}

#[tokio::test]
async fn a_caller_whose_connection_closes_while_ringing_is_a_cancel_over_tcp() {
    let relay = Relay::start(PASSTHROUGH).await.unwrap();
    let (bob, mut inbox) = callee(&relay).await;
    let phone = call(&relay, "invite-ring-vanish", TCP);
    let invite = next_body(&mut inbox).await;
    phone.await.unwrap().unwrap();
    let cancel = next_body(&mut inbox).await;
    assert_eq!(cancel["command"], "cancel", "{cancel}");
    assert_eq!(cancel["reason"], "connection lost", "{cancel}");
    assert_eq!(cancel["id"], invite["id"], "{cancel}");
    assert_context_gone(&bob, invite["url"].as_str().unwrap()).await;
}
