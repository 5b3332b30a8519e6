//! SIP across relays (issue 20 item 3): two relay processes of one cluster (a shared SQLite
//! file, NATS on 127.0.0.1:4222), a phone registered at relay A over UDP or TCP, and requests
//! for its user arriving at relay B: B sends them to A with a Route naming A (the binding
//! records A as the holder of the phone's flow), A passes them on over the phone's flow, and
//! the phone's answer comes back along the Vias. B's copy of the user's bindings follows what
//! happens at A (the cluster bus tells it), and a presence subscription held at A hears of
//! changes made at B.

use std::time::Duration;

use serde_json::json;

use restsip_e2e::cluster::{on, Cluster};
use restsip_e2e::{Client, EventStream, Relay, Reply};
use restsip_protocol::EventKind;

use crate::agent::{status, Agent, Request, Transport};
use crate::phones::header_lines;

const ALICE: &str = "alice@example.net";
const BOB: &str = "bob@example.net";

/// Relays `a` and `b` of a new cluster named after `test` (A started first: it makes the
/// schema), each with `extra` flags.
async fn two_relays(test: &str, extra: &[&str]) -> Cluster {
    Cluster::start(test, &["a", "b"], extra).await.unwrap()
}

/// `sender`'s SEND of an `im` to every contact of alice, run beside the phone (the receipt
/// waits for the phone's answer).
fn send_im(sender: &Client, text: &str) -> tokio::task::JoinHandle<Reply> {
    let (sender, text) = (sender.clone(), text.to_owned());
    tokio::spawn(async move {
        sender
            .request(
                "SEND",
                &format!("/login/{ALICE}"),
                Some(json!({"command": "im", "text": text})),
            )
            .await
            .unwrap()
    })
}

/// The next event of `kind` on `stream` (others skipped).
async fn next_of(stream: &mut EventStream, kind: EventKind) -> restsip_protocol::Event {
    loop {
        let e = stream.next().await.unwrap();
        if e.kind == kind {
            return e;
        }
    }
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
    let cluster = two_relays("sip-reach", &[]).await;
    let (a, b) = (&cluster.relays[0], &cluster.relays[1]);
    a.user(ALICE).await.unwrap();
    let bob = b.user(BOB).await.unwrap();
    let phone = Agent::new(a, transport).await;
    assert_eq!(phone.register(ALICE).await, "SIP/2.0 200 OK");

    // A SEND at B: the receipt waits for the phone's answer, so it runs beside the phone.
    let send = send_im(&bob, "hello from relay B");
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
    let peer = Agent::new(b, Transport::Udp).await;
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

/// A SEND made at B reaches alice's phone registered at A, and is answered: `delivered`.
async fn send_reaches(bob: &Client, phone: &Agent, text: &str) {
    let send = send_im(bob, text);
    let message = phone.next("MESSAGE ").await;
    assert!(message.ends_with(text), "{message}");
    phone.ok(&message).await;
    let receipt = send.await.unwrap();
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    assert_eq!(
        receipt.body["deliveries"][0]["status"], "delivered",
        "{}",
        receipt.body
    );
}

/// B keeps alice's bindings in memory once a SEND read them; when the phone de-registers at
/// A, and when another phone registers there, B's next SEND uses what the store now holds.
async fn bindings_changed_at_a_are_seen_at_b(transport: Transport) {
    let cluster = two_relays("sip-forget", &[]).await;
    let (a, b) = (&cluster.relays[0], &cluster.relays[1]);
    a.user(ALICE).await.unwrap();
    let bob = b.user(BOB).await.unwrap();
    // Alice's logins as B sees them: when the bus brought A's change to B.
    let mut logins = on(b, ALICE)
        .sse(&format!("/login/{ALICE}"), None)
        .await
        .unwrap();
    assert_eq!(logins.next().await.unwrap().kind, EventKind::State);
    let phone = Agent::new(a, transport).await;
    assert_eq!(phone.register(ALICE).await, "SIP/2.0 200 OK");
    next_of(&mut logins, EventKind::Added).await;
    send_reaches(&bob, &phone, "first, through A").await;

    // De-registered at A: B's SEND right after the change reached it finds no live contact,
    // and the phone hears nothing.
    assert_eq!(phone.unregister(ALICE).await, "SIP/2.0 200 OK");
    next_of(&mut logins, EventKind::Removed).await;
    let r = send_im(&bob, "not to the old binding").await.unwrap();
    assert_eq!(r.status, 409, "no live contact: {}", r.body);
    assert_eq!(phone.next_within(Duration::from_millis(300)).await, None);

    // Another phone registers at A: B's next SEND reaches it, not the old one.
    let other = Agent::new(a, transport).await;
    assert_eq!(other.register(ALICE).await, "SIP/2.0 200 OK");
    next_of(&mut logins, EventKind::Added).await;
    send_reaches(&bob, &other, "to the new binding").await;
    assert_eq!(phone.next_within(Duration::from_millis(300)).await, None);
}

#[tokio::test]
async fn bindings_changed_at_one_relay_are_seen_at_another_over_udp() {
    bindings_changed_at_a_are_seen_at_b(Transport::Udp).await;
}

#[tokio::test]
async fn bindings_changed_at_one_relay_are_seen_at_another_over_tcp() {
    bindings_changed_at_a_are_seen_at_b(Transport::Tcp).await;
}

/// A presence watcher on a socket of its own, subscribed at `relay` to bob.
async fn subscribe_to_bob(relay: &Relay) -> Agent {
    let watcher = Agent::new(relay, Transport::Udp).await;
    let req = Request {
        extra: "Event: presence\r\nExpires: 600\r\nAccept: application/pidf+xml\r\n",
        ..Request::new("SUBSCRIBE", "carol@elsewhere.example", BOB)
    };
    let answer = watcher.final_response(&req, "relays-presence").await;
    assert_eq!(status(&answer), "SIP/2.0 200 OK", "{answer}");
    watcher
}

/// The next NOTIFY the watcher gets (answered 200): whether it says open.
async fn next_notify(watcher: &Agent) -> bool {
    let notify = watcher.next("NOTIFY ").await;
    watcher.ok(&notify).await;
    assert!(notify.contains("Subscription-State: active"), "{notify}");
    match (
        notify.contains("<basic>open</basic>"),
        notify.contains("<basic>closed</basic>"),
    ) {
        (true, false) => true,
        (false, true) => false,
        _ => panic!("no PIDF status: {notify}"),
    }
}

/// No NOTIFY comes for a while: each change was notified once.
async fn no_more_notify(watcher: &Agent) {
    if let Some(msg) = watcher.next_within(Duration::from_millis(500)).await {
        panic!("a second NOTIFY for one change: {msg}");
    }
}

/// A SUBSCRIBE held at A hears of bob's REST login at B, his logout there, and his phone
/// registering at B; a change made at A itself is notified once.
#[tokio::test]
async fn a_presence_subscription_at_one_relay_hears_changes_made_at_another() {
    let cluster = two_relays("sip-presence", &[]).await;
    let (a, b) = (&cluster.relays[0], &cluster.relays[1]);
    let bob_a = a.user(BOB).await.unwrap();
    crate::presence::everyone_may_watch(&bob_a).await;
    let bob_b = on(b, BOB);
    let watcher = subscribe_to_bob(a).await;
    assert!(!next_notify(&watcher).await, "bob is not logged in yet");

    let id = bob_b.login(json!({})).await.unwrap();
    assert!(next_notify(&watcher).await, "logged in at B");
    no_more_notify(&watcher).await;
    let r = bob_b
        .request("DELETE", &format!("/login/{BOB}/{id}"), None)
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(!next_notify(&watcher).await, "logged out at B");
    no_more_notify(&watcher).await;

    let phone = Agent::new(b, Transport::Udp).await;
    assert_eq!(phone.register(BOB).await, "SIP/2.0 200 OK");
    assert!(next_notify(&watcher).await, "his phone registered at B");
    no_more_notify(&watcher).await;

    assert_eq!(phone.unregister(BOB).await, "SIP/2.0 200 OK");
    assert!(!next_notify(&watcher).await, "his phone de-registered at B");
    no_more_notify(&watcher).await;

    // A change at A itself: one NOTIFY, not one more when the bus carries it.
    bob_a.login(json!({})).await.unwrap();
    assert!(next_notify(&watcher).await, "logged in at A");
    no_more_notify(&watcher).await;
}

const OFFER: &str = "v=0\r\no=webcaller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                     t=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
const ANSWER: &str = "v=0\r\no=phoneanswer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                      t=0 0\r\nm=audio 40002 RTP/AVP 0\r\n";

/// The body of the next message on a web user's inbox stream.
async fn next_command(inbox: &mut EventStream) -> serde_json::Value {
    let e = next_of(inbox, EventKind::Message).await;
    assert_eq!(e.data["from"], ALICE, "{}", e.data);
    e.data["body"].clone()
}

/// The value of the first `name` header of `msg`.
fn value(msg: &str, name: &str) -> String {
    let line = header_lines(msg, name).remove(0);
    line.split_once(':').unwrap().1.trim().to_owned()
}

/// Bob (at B) calls alice's phone (at A), which rings and answers with To tag `tag`: bob hears
/// `ringing` and `accept`, and the phone gets the ACK. The INVITE as the phone got it.
async fn answered_call(bob: &Client, phone: &Agent, inbox: &mut EventStream, tag: &str) -> String {
    let send = {
        let (bob, tag) = (bob.clone(), tag.to_owned());
        tokio::spawn(async move {
            let invite = json!({"command": "invite", "sdp": OFFER, "id": tag});
            bob.request("SEND", &format!("/login/{ALICE}"), Some(invite))
                .await
                .unwrap()
        })
    };
    let invite = phone.next("INVITE ").await;
    assert!(invite.contains("o=webcaller"), "{invite}");
    assert_eq!(vias(&invite), 2, "B's and A's: {invite}");
    assert!(
        header_lines(&invite, "Route").is_empty(),
        "A spent its Route: {invite}"
    );
    phone
        .answer(&invite, "180 Ringing", Some(tag), "", "")
        .await;
    let receipt = send.await.unwrap();
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    let delivery = &receipt.body["deliveries"][0];
    assert_eq!(delivery["status"], "delivered", "{}", receipt.body);
    assert_eq!(delivery["sip"]["code"], 180, "{}", receipt.body);
    let ringing = next_command(inbox).await;
    assert_eq!(ringing["command"], "ringing", "{ringing}");
    assert_eq!(ringing["id"], tag, "{ringing}");

    let contact = format!("Contact: {}\r\n", phone.contact());
    phone
        .answer(&invite, "200 OK", Some(tag), &contact, ANSWER)
        .await;
    let accept = next_command(inbox).await;
    assert_eq!(accept["command"], "accept", "{accept}");
    let sdp = accept["sdp"].as_str().unwrap_or_default();
    assert!(sdp.contains("o=phoneanswer"), "{accept}");
    // The ACK of the 2xx comes over the phone's flow (over TCP, its connection).
    let ack = phone.next("ACK ").await;
    assert_eq!(value(&ack, "Call-ID"), value(&invite, "Call-ID"), "{ack}");
    assert_eq!(value(&ack, "CSeq"), "1 ACK", "{ack}");
    assert_eq!(vias(&ack), 2, "B's and A's: {ack}");
    invite
}

/// A web user at B calls a phone registered at A over `transport` (its Contact not its
/// address: A reaches it over its flow only, the ACK of the 2xx too) twice: the phone hangs up
/// the first call (its BYE reaches the web user's stream as `bye`), the web user the second
/// (its `bye` reaches the phone as a BYE).
async fn a_web_user_at_b_calls_a_phone_at_a(transport: Transport) {
    let cluster = two_relays("sip-invite", &["--sip-sdp-passthrough", "on"]).await;
    let (bob, mut inbox, phone) = bob_at_b_alice_phone_at_a(&cluster, transport).await;

    // The phone hangs up: its BYE goes to A, then to B, which tells bob.
    let invite = answered_call(&bob, &phone, &mut inbox, "c1").await;
    phone.send(&phone.in_dialog(&invite, "c1", "BYE", 1)).await;
    let answer = phone.final_to("1 BYE").await;
    assert_eq!(status(&answer), "SIP/2.0 200 OK", "{answer}");
    let bye = next_command(&mut inbox).await;
    assert_eq!(bye["command"], "bye", "{bye}");

    // Bob hangs up: B's BYE goes to A, then over the phone's flow.
    let invite = answered_call(&bob, &phone, &mut inbox, "c2").await;
    let send = {
        let bob = bob.clone();
        tokio::spawn(async move {
            let bye = json!({"command": "bye", "id": "c2"});
            bob.request("SEND", &format!("/login/{ALICE}"), Some(bye))
                .await
                .unwrap()
        })
    };
    let bye = phone.next("BYE ").await;
    assert_eq!(value(&bye, "Call-ID"), value(&invite, "Call-ID"), "{bye}");
    assert_eq!(vias(&bye), 2, "B's and A's: {bye}");
    phone.ok(&bye).await;
    let receipt = send.await.unwrap();
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    assert_eq!(
        receipt.body["deliveries"][0]["status"], "delivered",
        "{}",
        receipt.body
    );
}

#[tokio::test]
async fn a_web_user_at_one_relay_calls_a_phone_at_another_over_udp() {
    a_web_user_at_b_calls_a_phone_at_a(Transport::Udp).await;
}

#[tokio::test]
async fn a_web_user_at_one_relay_calls_a_phone_at_another_over_tcp() {
    a_web_user_at_b_calls_a_phone_at_a(Transport::Tcp).await;
}

/// Bob streaming his login at B (SSE, its first `state` read) and alice's phone registered at
/// A, reached over its flow only.
async fn bob_at_b_alice_phone_at_a(
    cluster: &Cluster,
    transport: Transport,
) -> (Client, EventStream, Agent) {
    let (a, b) = (&cluster.relays[0], &cluster.relays[1]);
    a.user(ALICE).await.unwrap();
    let bob = b.user(BOB).await.unwrap();
    let id = bob.login(json!({})).await.unwrap();
    let mut inbox = bob.sse(&format!("/login/{BOB}/{id}"), None).await.unwrap();
    assert_eq!(inbox.next().await.unwrap().kind, EventKind::State);
    let phone = reached_by_flow_only(a, transport).await;
    assert_eq!(phone.register(ALICE).await, "SIP/2.0 200 OK");
    (bob, inbox, phone)
}

/// An agent at `relay` over `transport` whose Contact names a port where nothing listens:
/// only its flow reaches it.
async fn reached_by_flow_only(relay: &Relay, transport: Transport) -> Agent {
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = nowhere.local_addr().unwrap().port();
    Agent::new(relay, transport).await.advertising(port)
}

/// Bob's phone registered at B calls alice's phone registered at A (both reached only over
/// their flows): the INVITE passes B and A (each record-routes), the caller's ACK and the
/// callee's BYE follow the route set across both relays.
async fn a_phone_at_b_calls_a_phone_at_a(transport: Transport) {
    let cluster = two_relays("sip-phones", &[]).await;
    let (a, b) = (&cluster.relays[0], &cluster.relays[1]);
    a.user(ALICE).await.unwrap();
    b.user(BOB).await.unwrap();
    let callee = reached_by_flow_only(a, transport).await;
    assert_eq!(callee.register(ALICE).await, "SIP/2.0 200 OK");
    let caller = reached_by_flow_only(b, transport).await;
    assert_eq!(caller.register(BOB).await, "SIP/2.0 200 OK");

    let req = Request {
        content_type: "application/sdp",
        body: OFFER,
        ..Request::new("INVITE", BOB, ALICE)
    };
    // Over the flow bob registered, B takes the caller as bob without a challenge.
    let (answer, invite) = tokio::join!(caller.final_response(&req, "relays-p2p"), async {
        let invite = callee.next("INVITE ").await;
        callee
            .answer(&invite, "180 Ringing", Some("p1"), "", "")
            .await;
        let contact = format!("Contact: {}\r\n", callee.contact());
        callee
            .answer(&invite, "200 OK", Some("p1"), &contact, ANSWER)
            .await;
        invite
    });
    assert_eq!(status(&answer), "SIP/2.0 200 OK", "{answer}");
    assert!(answer.contains("o=phoneanswer"), "{answer}");
    assert_eq!(vias(&invite), 3, "the caller's, B's and A's: {invite}");
    assert_eq!(
        header_lines(&invite, "Record-Route").len(),
        2,
        "A's and B's: {invite}"
    );

    caller.send(&caller.ack_of(&answer)).await;
    let ack = callee.next("ACK ").await;
    assert_eq!(value(&ack, "Call-ID"), "relays-p2p", "{ack}");
    assert_eq!(vias(&ack), 3, "the caller's, B's and A's: {ack}");

    callee
        .send(&callee.in_dialog(&invite, "p1", "BYE", 1))
        .await;
    let bye = caller.next("BYE ").await;
    assert_eq!(value(&bye, "Call-ID"), "relays-p2p", "{bye}");
    assert_eq!(vias(&bye), 3, "the callee's, A's and B's: {bye}");
    caller.ok(&bye).await;
    let answer = callee.final_to("1 BYE").await;
    assert_eq!(status(&answer), "SIP/2.0 200 OK", "{answer}");
}

#[tokio::test]
async fn a_phone_at_one_relay_calls_a_phone_at_another_over_udp() {
    a_phone_at_b_calls_a_phone_at_a(Transport::Udp).await;
}

#[tokio::test]
async fn a_phone_at_one_relay_calls_a_phone_at_another_over_tcp() {
    a_phone_at_b_calls_a_phone_at_a(Transport::Tcp).await;
}

/// The web user's answer to the phone's offer.
const WEB_ANSWER: &str = "v=0\r\no=webanswer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                          t=0 0\r\nm=audio 40004 RTP/AVP 0\r\n";

/// Alice's phone INVITEs bob (Call-ID `call_id`, [`OFFER`]); the `invite` bob's stream gets.
async fn phone_calls_bob(
    phone: &Agent,
    inbox: &mut EventStream,
    call_id: &str,
) -> serde_json::Value {
    let req = Request {
        content_type: "application/sdp",
        body: OFFER,
        ..Request::new("INVITE", ALICE, BOB)
    };
    phone.send(&phone.text(&req, call_id, 1, "")).await;
    let invite = next_command(inbox).await;
    assert_eq!(invite["command"], "invite", "{invite}");
    assert_eq!(invite["sip"]["callId"], call_id, "{invite}");
    assert!(
        invite["sdp"].as_str().unwrap().contains("o=webcaller"),
        "{invite}"
    );
    invite
}

/// Bob's SEND of `body` to alice (made at his relay); its receipt, which must be a 200.
async fn bob_sends(bob: &Client, body: serde_json::Value) -> serde_json::Value {
    let receipt = bob
        .request("SEND", &format!("/login/{ALICE}"), Some(body))
        .await
        .unwrap();
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    receipt.body
}

/// Bob accepts the phone's `invite` at B: the phone gets the 200 with his answer and ACKs it.
/// The 200.
async fn accepted(bob: &Client, phone: &Agent, invite: &serde_json::Value) -> String {
    let accept = json!({"command": "accept", "id": invite["id"], "sdp": WEB_ANSWER});
    let receipt = bob_sends(bob, accept).await;
    assert_eq!(receipt["deliveries"][0]["sip"]["code"], 200, "{receipt}");
    let ok = phone.final_to("1 INVITE").await;
    assert_eq!(status(&ok), "SIP/2.0 200 OK", "{ok}");
    assert!(ok.contains("o=webanswer"), "{ok}");
    phone.send(&phone.ack_of(&ok)).await;
    ok
}

/// The phone's final responses to its requests of the CSeqs `cseqs` (in any order).
async fn finals(phone: &Agent, cseqs: &[&str]) -> Vec<String> {
    let mut got = vec![String::new(); cseqs.len()];
    while got.iter().any(String::is_empty) {
        let msg = phone.next("SIP/2.0 ").await;
        if msg.starts_with("SIP/2.0 1") {
            continue;
        }
        if let Some(i) = cseqs
            .iter()
            .position(|c| msg.contains(&format!("CSeq: {c}\r\n")))
        {
            got[i] = msg;
        }
    }
    got
}

/// Alice's phone registered at A (reached over its flow only) calls bob, whose page streams
/// at B: the call waits at A, and bob's SENDs made at B reach it. Four calls: bob accepts
/// (the phone gets his SDP, ACKs) and the phone hangs up; bob accepts, holds and hangs up; bob
/// declines (603); the phone cancels while ringing (bob's page hears `cancel`).
async fn a_phone_at_a_calls_a_web_user_at_b(transport: Transport) {
    let cluster = two_relays("sip-inbound", &["--sip-sdp-passthrough", "on"]).await;
    let (bob, mut inbox, phone) = bob_at_b_alice_phone_at_a(&cluster, transport).await;

    // Bob's page at B takes the invite: the phone hears `180 Ringing` from A, as when the
    // page streams at A. Bob answers at B; the phone hangs up: its BYE at A reaches bob's
    // stream at B.
    let invite = phone_calls_bob(&phone, &mut inbox, "in-1").await;
    let ringing = phone.next("SIP/2.0 180 Ringing").await;
    assert!(ringing.contains("CSeq: 1 INVITE\r\n"), "{ringing}");
    assert_eq!(value(&ringing, "Call-ID"), "in-1", "{ringing}");
    let ok = accepted(&bob, &phone, &invite).await;
    phone.send(&phone.after(&ok, "BYE", Some(2))).await;
    let answer = phone.final_to("2 BYE").await;
    assert_eq!(status(&answer), "SIP/2.0 200 OK", "{answer}");
    let bye = next_command(&mut inbox).await;
    assert_eq!(bye["command"], "bye", "{bye}");
    assert_eq!(bye["id"], invite["id"], "{bye}");

    // Bob answers, puts the call on hold and hangs up, all at B: A sends the phone a
    // re-INVITE with his new offer (its answer reaches bob's stream as `updated`), then a BYE.
    let invite = phone_calls_bob(&phone, &mut inbox, "in-2").await;
    accepted(&bob, &phone, &invite).await;
    let hold = WEB_ANSWER.replace("1 1 IN", "1 2 IN") + "a=sendonly\r\n";
    let update = json!({"command": "update", "id": invite["id"], "sdp": hold});
    bob_sends(&bob, update).await;
    let reinvite = phone.next("INVITE ").await;
    assert_eq!(value(&reinvite, "Call-ID"), "in-2", "{reinvite}");
    assert!(reinvite.contains("a=sendonly"), "{reinvite}");
    phone
        .answer(
            &reinvite,
            "200 OK",
            None,
            "",
            &ANSWER.replace("1 1 IN", "1 2 IN"),
        )
        .await;
    let updated = next_command(&mut inbox).await;
    assert_eq!(updated["command"], "updated", "{updated}");
    assert!(
        updated["sdp"]
            .as_str()
            .unwrap_or_default()
            .contains("o=phoneanswer"),
        "{updated}"
    );
    let send = {
        let bob = bob.clone();
        let body = json!({"command": "bye", "id": invite["id"]});
        tokio::spawn(async move { bob_sends(&bob, body).await })
    };
    let bye = phone.next("BYE ").await;
    assert_eq!(value(&bye, "Call-ID"), "in-2", "{bye}");
    phone.ok(&bye).await;
    let receipt = send.await.unwrap();
    assert_eq!(receipt["deliveries"][0]["status"], "delivered", "{receipt}");

    // Bob declines at B: the phone gets 603.
    let invite = phone_calls_bob(&phone, &mut inbox, "in-3").await;
    let reject = json!({"command": "reject", "id": invite["id"], "reason": "decline"});
    let receipt = bob_sends(&bob, reject).await;
    assert_eq!(receipt["deliveries"][0]["sip"]["code"], 603, "{receipt}");
    let declined = phone.final_to("1 INVITE").await;
    assert!(declined.starts_with("SIP/2.0 603 "), "{declined}");

    // The phone cancels while bob's page rings: 200 to the CANCEL, 487 to the INVITE, and
    // a `cancel` on bob's stream.
    let invite = phone_calls_bob(&phone, &mut inbox, "in-4").await;
    let cancel = Request::new("CANCEL", ALICE, BOB);
    phone.send(&phone.text(&cancel, "in-4", 1, "")).await;
    let got = finals(&phone, &["1 CANCEL", "1 INVITE"]).await;
    assert_eq!(status(&got[0]), "SIP/2.0 200 OK", "{}", got[0]);
    assert!(got[1].starts_with("SIP/2.0 487 "), "{}", got[1]);
    let cancelled = next_command(&mut inbox).await;
    assert_eq!(cancelled["command"], "cancel", "{cancelled}");
    assert_eq!(cancelled["id"], invite["id"], "{cancelled}");
}

#[tokio::test]
async fn a_phone_at_one_relay_calls_a_web_user_at_another_over_udp() {
    a_phone_at_a_calls_a_web_user_at_b(Transport::Udp).await;
}

#[tokio::test]
async fn a_phone_at_one_relay_calls_a_web_user_at_another_over_tcp() {
    a_phone_at_a_calls_a_web_user_at_b(Transport::Tcp).await;
}
