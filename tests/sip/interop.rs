//! Interop with an independent softphone: Debian's baresip 1.0.0 (`restsip_e2e::baresip`),
//! registered at the relay as alice (AoR `sip:alice@example.net`, digest user name the email,
//! the relay its outbound proxy), against bob, a web user with an inbox stream. Each flow over
//! UDP and over TCP (but one, said why), against a relay with its default settings ([`relay`]):
//! - registration: the phone shows up as a `sip` login of alice and goes when it quits;
//! - MESSAGE both ways: the phone's `message` is an `im` on bob's stream, bob's `im` SEND is
//!   shown by the phone;
//! - calls both ways: the phone dials bob, who accepts with an SDP answer; bob invites the
//!   phone with an SDP offer and the phone's user accepts; each call hung up once from either
//!   side; a web invite without an SDP offer rings the phone too;
//! - presence: bob watching alice sees the phone's login come and go; the phone watching bob
//!   shows him Offline, Online when he logs in, Offline when he logs out; the phone that quits
//!   ends its subscription (its unsubscribe is answered 200); one that restarted and answers
//!   its old subscription's NOTIFY 481 is not notified on that subscription again.
//!
//! Not tested, on baresip's or the relay's side: the phone's own status (`pubint`: baresip
//! PUBLISHes `application/pidf+xml` to its AoR) gets `501 Not Implemented` from the relay,
//! which has no PUBLISH: a phone's presence at the relay is its registration, tested above.
//! No media is checked: the relay carries signalling only, and baresip has no audio device
//! here (aubridge sends nothing).

use restsip_e2e::baresip::{free_port, Baresip, Phone, Transport};
use restsip_e2e::{Client, EventStream, Relay};
use restsip_protocol::EventKind;
use serde_json::{json, Value};

/// The phone's user.
const ALICE: &str = "alice@example.net";
/// The web user.
const BOB: &str = "bob@example.net";

/// The web user's SDP offer and answer (media is not checked).
const OFFER: &str = "v=0\r\no=webcaller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                     t=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
const ANSWER: &str = "v=0\r\no=webanswer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                      t=0 0\r\nm=audio 40002 RTP/AVP 0\r\n";

/// A flow's two tests: `$udp` runs `flow(Transport::Udp)`, `$tcp` runs `flow(Transport::Tcp)`.
macro_rules! over_udp_and_tcp {
    ($flow:ident: $udp:ident, $tcp:ident) => {
        #[tokio::test]
        async fn $udp() {
            $flow(Transport::Udp).await;
        }

        #[tokio::test]
        async fn $tcp() {
            $flow(Transport::Tcp).await;
        }
    };
}

/// The relay of every test here: its default settings, what a user runs, but for the web
/// user, which answers baresip with plain SDP as a server with its own RTP stack would:
/// phones' offers reach it as they are (browsers get theirs through rtpengine, see `media`).
async fn relay() -> Relay {
    Relay::start(&["--sip-sdp-passthrough", "on"])
        .await
        .unwrap()
}

/// Both users signed up; bob logged in on the web with his inbox stream open.
struct Users {
    relay: Relay,
    alice: Client,
    bob: Client,
    /// Bob's login id.
    bob_login: i64,
    /// Bob's inbox.
    inbox: EventStream,
}

async fn users() -> Users {
    let relay = relay().await;
    let alice = relay.user(ALICE).await.unwrap();
    let bob = relay.user(BOB).await.unwrap();
    let bob_login = bob.login(json!({})).await.unwrap();
    let mut inbox = bob
        .sse(&format!("/login/{BOB}/{bob_login}"), None)
        .await
        .unwrap();
    assert_eq!(inbox.next().await.unwrap().kind, EventKind::State);
    Users {
        relay,
        alice,
        bob,
        bob_login,
        inbox,
    }
}

/// Bob's web login `id` logged out (asserted 204).
async fn log_out(bob: &Client, id: i64) {
    let out = bob
        .request("DELETE", &format!("/login/{BOB}/{id}"), None)
        .await
        .unwrap();
    assert_eq!(out.status, 204, "{}", out.body);
}

/// [`users`], bob's web login (the fixture's) logged out: no login of bob's is left.
async fn users_offline() -> Users {
    let u = users().await;
    log_out(&u.bob, u.bob_login).await;
    u
}

/// Alice's baresip, with bob as its one contact (watched when `watch`), registered.
async fn phone(relay: &Relay, transport: Transport, watch: bool) -> Baresip {
    phone_at(relay, transport, watch, None).await
}

/// [`phone`] on a given SIP port.
async fn phone_at(
    relay: &Relay,
    transport: Transport,
    watch: bool,
    sip_port: Option<u16>,
) -> Baresip {
    start_phone(relay, transport, Some((BOB, watch)), sip_port).await
}

/// Alice's baresip with `contact` (see [`Phone`]), registered.
async fn start_phone(
    relay: &Relay,
    transport: Transport,
    contact: Option<(&str, bool)>,
    sip_port: Option<u16>,
) -> Baresip {
    let mut phone = Phone {
        relay: relay.sip.unwrap(),
        transport,
        email: ALICE,
        password: &format!("pw-{ALICE}"),
        contact,
        sip_port,
    }
    .start()
    .await
    .unwrap();
    phone.registered().await.unwrap();
    phone
}

/// The next message's body on bob's inbox (other events skipped).
async fn next_body(inbox: &mut EventStream) -> Value {
    loop {
        let e = inbox.next().await.unwrap();
        if e.kind == EventKind::Message {
            assert_eq!(e.data["from"], ALICE, "{}", e.data);
            return e.data["body"].clone();
        }
    }
}

/// Bob's SEND to alice; the receipt (asserted 200).
async fn send(bob: &Client, body: Value) -> Value {
    let r = bob
        .request("SEND", &format!("/login/{ALICE}"), Some(body))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// `body` (bob's invite or accept) carries the phone's own SDP: audio, from baresip.
fn assert_phone_sdp(body: &Value) {
    let sdp = body["sdp"].as_str().unwrap_or_default();
    assert!(sdp.contains("m=audio"), "{body}");
    assert!(sdp.contains("baresip"), "{body}");
}

/// Everything the phone sent and received went over `transport` (in-dialog requests too:
/// a phone on TCP may be unreachable over UDP, behind NAT).
fn assert_one_transport(phone: &Baresip, transport: Transport) {
    let name = transport.name().to_uppercase();
    for m in phone.trace() {
        assert_eq!(
            m.transport,
            name,
            "{} -> {}: {}",
            m.from,
            m.to,
            m.start_line()
        );
    }
}

// --- (a), (b) registration -------------------------------------------------------------------

/// The phone registers: alice's login list shows a `sip` login at the phone's address; when
/// the phone quits it unregisters and the login goes.
async fn registers(transport: Transport) {
    let relay = relay().await;
    let alice = relay.user(ALICE).await.unwrap();
    let mut logins = alice.sse(&format!("/login/{ALICE}"), None).await.unwrap();
    assert_eq!(logins.next().await.unwrap().kind, EventKind::State);
    let mut phone = start_phone(&relay, transport, None, None).await;
    let added = logins.next().await.unwrap();
    assert_eq!(added.kind, EventKind::Added, "{:?}", added.data);
    assert_eq!(added.data["source"], "sip", "{}", added.data);
    let contact = added.data["contact"].as_str().unwrap().to_owned();
    assert!(
        contact.contains(&format!("@127.0.0.1:{}", phone.sip_port)),
        "{contact}"
    );
    assert_eq!(
        contact.contains("transport=tcp"),
        transport == Transport::Tcp,
        "{contact}"
    );
    let list = alice.get(&format!("/login/{ALICE}")).await.unwrap().body;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["source"], "sip", "{list}");
    assert_eq!(list[0]["contact"], contact.as_str(), "{list}");
    assert_one_transport(&phone, transport);

    phone.quit().await.unwrap();
    let removed = logins.next().await.unwrap();
    assert_eq!(removed.kind, EventKind::Removed, "{:?}", removed.data);
    assert_eq!(removed.data["reason"], "unregistered", "{}", removed.data);
    let list = alice.get(&format!("/login/{ALICE}")).await.unwrap().body;
    assert_eq!(list, json!([]));
}

over_udp_and_tcp!(registers: baresip_registers_and_unregisters_over_udp, baresip_registers_and_unregisters_over_tcp);

// --- (c) MESSAGE -----------------------------------------------------------------------------

/// The phone messages bob (an `im` on his stream), and bob's `im` SEND is shown by the phone.
async fn messages(transport: Transport) {
    let mut u = users().await;
    let mut phone = phone(&u.relay, transport, false).await;

    phone.command("message", "hello web").await.unwrap();
    let im = next_body(&mut u.inbox).await;
    assert_eq!(im["command"], "im", "{im}");
    assert_eq!(im["text"], "hello web", "{im}");
    assert!(
        im["contentType"]
            .as_str()
            .is_some_and(|t| t.starts_with("text/plain")),
        "{im}"
    );

    let receipt = send(&u.bob, json!({"command": "im", "text": "hello phone"})).await;
    let deliveries = receipt["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{receipt}");
    assert_eq!(deliveries[0]["status"], "delivered", "{receipt}");
    assert_eq!(deliveries[0]["sip"]["code"], 200, "{receipt}");
    // baresip shows `sip:bob@example.net: "hello phone"`.
    let line = phone.shows("\"hello phone\"").await.unwrap();
    assert!(line.contains(&format!("sip:{BOB}")), "{line}");
    assert_one_transport(&phone, transport);
}

over_udp_and_tcp!(messages: baresip_and_a_web_user_message_each_other_over_udp, baresip_and_a_web_user_message_each_other_over_tcp);

// --- (d) calls -------------------------------------------------------------------------------

/// The phone dials bob; bob gets the invite with the phone's offer and accepts with his answer;
/// the phone's call is established. Returns the invite.
async fn phone_calls_bob(u: &mut Users, phone: &mut Baresip) -> Value {
    phone.command("dial", &format!("sip:{BOB}")).await.unwrap();
    let invite = next_body(&mut u.inbox).await;
    assert_eq!(invite["command"], "invite", "{invite}");
    assert_eq!(invite["from"], ALICE, "{invite}");
    assert_phone_sdp(&invite);
    // Bob's stream had it: the phone hears 180.
    phone.event("CALL_RINGING").await.unwrap();
    let receipt = send(
        &u.bob,
        json!({"command": "accept", "sdp": ANSWER, "id": invite["id"]}),
    )
    .await;
    assert_eq!(receipt["deliveries"][0]["status"], "delivered", "{receipt}");
    let established = phone.event("CALL_ESTABLISHED").await.unwrap();
    assert_eq!(established["direction"], "outgoing", "{established}");
    invite
}

/// Two calls from the phone to bob: the phone hangs up the first (bob gets `bye`), bob the
/// second (the phone's call closes).
async fn phone_calls_web(transport: Transport) {
    let mut u = users().await;
    let mut phone = phone(&u.relay, transport, false).await;

    let invite = phone_calls_bob(&mut u, &mut phone).await;
    phone.command("hangup", "").await.unwrap();
    let bye = next_body(&mut u.inbox).await;
    assert_eq!(bye["command"], "bye", "{bye}");
    assert_eq!(bye["id"], invite["id"], "{bye}");
    phone.event("CALL_CLOSED").await.unwrap();
    let ctx = u.bob.get(invite["url"].as_str().unwrap()).await.unwrap();
    assert_eq!(
        ctx.status, 404,
        "the call context outlived the call: {}",
        ctx.body
    );

    let invite = phone_calls_bob(&mut u, &mut phone).await;
    let receipt = send(&u.bob, json!({"command": "bye", "id": invite["id"]})).await;
    assert_eq!(receipt["deliveries"][0]["status"], "delivered", "{receipt}");
    phone.event("CALL_CLOSED").await.unwrap();
    u.inbox.assert_quiet().await;
    assert_one_transport(&phone, transport);
}

over_udp_and_tcp!(phone_calls_web: baresip_calls_a_web_user_who_answers_and_either_hangs_up_over_udp, baresip_calls_a_web_user_who_answers_and_either_hangs_up_over_tcp);

/// Bob invites the phone with his offer (`id`); it rings (the phone's CALL_INCOMING, bob's
/// `ringing`), the phone's user accepts, bob gets `accept` with the phone's answer.
async fn bob_calls_phone(u: &mut Users, phone: &mut Baresip, id: u64) {
    let receipt = send(&u.bob, json!({"command": "invite", "sdp": OFFER, "id": id})).await;
    let d = &receipt["deliveries"][0];
    assert_eq!(d["status"], "delivered", "{receipt}");
    assert_eq!(d["sip"]["code"], 180, "{receipt}");
    let incoming = phone.event("CALL_INCOMING").await.unwrap();
    assert!(
        incoming["peeruri"]
            .as_str()
            .is_some_and(|p| p.starts_with(&format!("sip:{BOB}"))),
        "{incoming}"
    );
    let ringing = next_body(&mut u.inbox).await;
    assert_eq!(ringing["command"], "ringing", "{ringing}");
    assert_eq!(ringing["id"], id, "{ringing}");
    phone.command("accept", "").await.unwrap();
    let accept = next_body(&mut u.inbox).await;
    assert_eq!(accept["command"], "accept", "{accept}");
    assert_eq!(accept["id"], id, "{accept}");
    assert_phone_sdp(&accept);
    let established = phone.event("CALL_ESTABLISHED").await.unwrap();
    assert_eq!(established["direction"], "incoming", "{established}");
}

/// Two calls from bob to the phone: bob hangs up the first (the phone's call closes), the
/// phone the second (bob gets `bye`).
async fn web_calls_phone(transport: Transport) {
    let mut u = users().await;
    let mut phone = phone(&u.relay, transport, false).await;

    bob_calls_phone(&mut u, &mut phone, 7).await;
    let receipt = send(&u.bob, json!({"command": "bye", "id": 7})).await;
    assert_eq!(receipt["deliveries"][0]["status"], "delivered", "{receipt}");
    phone.event("CALL_CLOSED").await.unwrap();

    bob_calls_phone(&mut u, &mut phone, 8).await;
    phone.command("hangup", "").await.unwrap();
    let bye = next_body(&mut u.inbox).await;
    assert_eq!(bye["command"], "bye", "{bye}");
    assert_eq!(bye["id"], 8, "{bye}");
    phone.event("CALL_CLOSED").await.unwrap();
    u.inbox.assert_quiet().await;
    assert_one_transport(&phone, transport);
}

over_udp_and_tcp!(web_calls_phone: a_web_user_calls_baresip_which_answers_and_either_hangs_up_over_udp, a_web_user_calls_baresip_which_answers_and_either_hangs_up_over_tcp);

/// Bob invites the phone with a call URL and no SDP offer (the REST API allows it): the phone
/// rings all the same, and bob's `cancel` stops it (`reject` 487).
async fn offerless_invite(transport: Transport) {
    let mut u = users().await;
    let mut phone = phone(&u.relay, transport, false).await;
    let receipt = send(
        &u.bob,
        json!({"command": "invite", "url": "/call/abc", "id": 9}),
    )
    .await;
    let d = &receipt["deliveries"][0];
    assert_eq!(d["status"], "delivered", "{receipt}");
    assert_eq!(d["sip"]["code"], 180, "{receipt}");
    phone.event("CALL_INCOMING").await.unwrap();
    let ringing = next_body(&mut u.inbox).await;
    assert_eq!(ringing["command"], "ringing", "{ringing}");
    send(&u.bob, json!({"command": "cancel", "id": 9})).await;
    phone.event("CALL_CLOSED").await.unwrap();
    let reject = next_body(&mut u.inbox).await;
    assert_eq!(reject["command"], "reject", "{reject}");
    assert_eq!(reject["code"], 487, "{reject}");
    assert_one_transport(&phone, transport);
}

over_udp_and_tcp!(offerless_invite: a_web_users_invite_without_an_sdp_offer_rings_baresip_over_udp, a_web_users_invite_without_an_sdp_offer_rings_baresip_over_tcp);

// --- (e) presence ----------------------------------------------------------------------------

/// Bob watches alice: her phone's registration is a login (`added`), its unregistering when
/// it quits ends it (`removed`).
async fn web_watches_phone(transport: Transport) {
    let u = users().await;
    let mut watch = u.bob.sse(&format!("/login/{ALICE}"), None).await.unwrap();
    let state = watch.next().await.unwrap();
    assert_eq!(state.kind, EventKind::State);
    assert_eq!(state.data, json!([]), "{}", state.data);
    let mut phone = phone(&u.relay, transport, false).await;
    let added = watch.next().await.unwrap();
    assert_eq!(added.kind, EventKind::Added, "{:?}", added.data);
    assert_eq!(added.data["source"], "sip", "{}", added.data);
    phone.quit().await.unwrap();
    let removed = watch.next().await.unwrap();
    assert_eq!(removed.kind, EventKind::Removed, "{:?}", removed.data);
    // Alice's own view agrees.
    let list = u.alice.get(&format!("/login/{ALICE}")).await.unwrap().body;
    assert_eq!(list, json!([]));
}

over_udp_and_tcp!(web_watches_phone: a_web_user_sees_baresip_come_and_go_over_udp, a_web_user_sees_baresip_come_and_go_over_tcp);

/// Bob logs in and out; the phone (watching him) shows each.
async fn bob_comes_and_goes(u: &Users, phone: &mut Baresip) {
    let id = u.bob.login(json!({})).await.unwrap();
    phone.shows_presence(BOB, "Online").await.unwrap();
    log_out(&u.bob, id).await;
    phone.shows_presence(BOB, "Offline").await.unwrap();
}

/// The phone watches bob (SUBSCRIBE through the relay): Offline with no web login (the
/// fixture's login is logged out first), Online once bob logs in, Offline when he logs out.
async fn phone_watches_web(transport: Transport) -> (Users, Baresip) {
    let u = users_offline().await;
    let mut phone = phone(&u.relay, transport, true).await;
    phone.shows_presence(BOB, "Offline").await.unwrap();
    bob_comes_and_goes(&u, &mut phone).await;
    (u, phone)
}

/// [`phone_watches_web`], all over `transport`.
async fn phone_watches_web_over(transport: Transport) {
    let (_u, phone) = phone_watches_web(transport).await;
    assert_one_transport(&phone, transport);
}

over_udp_and_tcp!(phone_watches_web_over: baresip_watches_a_web_user_log_in_and_out_over_udp, baresip_watches_a_web_user_log_in_and_out_over_tcp);

/// A phone that quits unsubscribes (SUBSCRIBE in the dialog, `Expires: 0`, to the relay's
/// Contact): the relay answers 200 (and stops notifying a phone that is gone), over the
/// transport of the subscription.
async fn phone_unsubscribes(transport: Transport) {
    let (_u, mut phone) = phone_watches_web(transport).await;
    phone.quit().await.unwrap();
    let trace = phone.trace();
    let unsubscribe = trace
        .iter()
        .find(|m| m.start_line().starts_with("SUBSCRIBE ") && m.header("Expires") == Some("0"))
        .expect("the phone sent an unsubscribe");
    let cseq = unsubscribe.header("CSeq").unwrap();
    let call_id = unsubscribe.header("Call-ID").unwrap();
    let answer = trace
        .iter()
        .find(|m| {
            m.start_line().starts_with("SIP/2.0 ")
                && m.header("CSeq") == Some(cseq)
                && m.header("Call-ID") == Some(call_id)
        })
        .expect("the unsubscribe got an answer");
    assert!(
        answer.start_line().starts_with("SIP/2.0 200 "),
        "the relay refused the unsubscribe:\n{}\n{}",
        unsubscribe.text,
        answer.text
    );
    assert_one_transport(&phone, transport);
}

over_udp_and_tcp!(phone_unsubscribes: baresip_that_quits_ends_its_presence_subscription_over_udp, baresip_that_quits_ends_its_presence_subscription_over_tcp);

/// A phone watching bob loses power (killed: it unsubscribes from nothing) and starts again on
/// the same address, watching him anew. The relay's NOTIFY of the old subscription gets 481
/// (RFC 6665 §4.1.3: the subscription is over), so the relay notifies on it no more: while
/// bob comes and goes twice more (the new subscription shows each), the old one hears
/// nothing. UDP only: over TCP the old subscription's connection closes with the phone.
#[tokio::test]
async fn a_restarted_baresip_that_answers_481_is_notified_no_more_over_udp() {
    let u = users_offline().await;
    let port = free_port();
    let mut before = phone_at(&u.relay, Transport::Udp, true, Some(port)).await;
    before.shows_presence(BOB, "Offline").await.unwrap();
    let subscribe = before
        .traced(|m| m.start_line().starts_with("SUBSCRIBE "))
        .await
        .unwrap();
    let old = subscribe.header("Call-ID").unwrap().to_owned();
    before.kill().await.unwrap();

    let mut after = phone_at(&u.relay, Transport::Udp, true, Some(port)).await;
    after.shows_presence(BOB, "Offline").await.unwrap();
    bob_comes_and_goes(&u, &mut after).await;
    // The old subscription's NOTIFY came (bob's login) and the restarted phone refused it.
    let is_old_notify = |m: &restsip_e2e::baresip::Traced| {
        m.start_line().starts_with("NOTIFY ") && m.header("Call-ID") == Some(old.as_str())
    };
    after.traced(is_old_notify).await.unwrap();
    after
        .traced(|m| {
            m.start_line().starts_with("SIP/2.0 481 ") && m.header("Call-ID") == Some(old.as_str())
        })
        .await
        .unwrap();
    bob_comes_and_goes(&u, &mut after).await;
    bob_comes_and_goes(&u, &mut after).await;
    let mut notifies: Vec<String> = after
        .trace()
        .iter()
        .filter(|m| is_old_notify(m))
        .map(|m| m.text.clone())
        .collect();
    // A retransmission is the same NOTIFY.
    notifies.dedup();
    assert_eq!(
        notifies.len(),
        1,
        "the relay kept notifying a subscription answered 481:\n{}",
        notifies.join("\n")
    );
}
