//! A relay killed under phones (issue 20 item 5): a phone registered at relay A of a cluster;
//! A is killed with SIGKILL. Relay B, which would route the phone's requests to A, refuses
//! them at once (480) once it sees A gone, instead of sending them to a relay that never
//! answers; the phone's next REGISTER goes to B, which then holds its flow and reaches it.
//! A call between a web user and a phone whose dialog A held (either side calling) ends cleanly
//! when A dies: B sends the phone a BYE and the web user a `bye` ("relay lost"). A call still
//! ringing when A dies ends too: B cancels the INVITE A sent the phone (the web user gets a
//! `reject`), or answers the phone's INVITE A held with 503 (the web user gets a `cancel`).

use std::time::{Duration, Instant};

use serde_json::json;

use restsip_e2e::cluster::{on, Cluster};
use restsip_e2e::{Client, EventStream};
use restsip_protocol::EventKind;

use crate::agent::{Agent, Request, Transport};
use crate::phones::header_lines;
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

const PHONE_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                           t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

/// A call bob (streaming at B) made to alice's UDP phone through A, answered.
struct Answered {
    cluster: Cluster,
    a: restsip_e2e::Relay,
    b: restsip_e2e::Relay,
    phone: Agent,
    inbox: restsip_e2e::EventStream,
    /// The `Call-ID: …` line of the call.
    call_id: String,
}

/// Relays A and B of a cluster started with `flags`; alice's UDP phone registered at A, bob
/// streaming his contact at B.
struct PhoneAtA {
    cluster: Cluster,
    a: restsip_e2e::Relay,
    b: restsip_e2e::Relay,
    phone: Agent,
    inbox: restsip_e2e::EventStream,
}

async fn phone_at_a(test: &str, flags: &[&str]) -> PhoneAtA {
    let mut cluster = Cluster::start(test, &["a", "b"], flags).await.unwrap();
    let b = cluster.relays.pop().unwrap();
    let a = cluster.relays.pop().unwrap();
    a.user(ALICE).await.unwrap();
    b.user(BOB).await.unwrap();
    let phone = Agent::new(&a, Transport::Udp).await;
    assert_eq!(phone.register(ALICE).await, "SIP/2.0 200 OK");
    let bob_b = on(&b, BOB);
    let contact = bob_b.login(json!({})).await.unwrap();
    let mut inbox = bob_b
        .sse(&format!("/login/{BOB}/{contact}"), None)
        .await
        .unwrap();
    assert_eq!(inbox.next().await.unwrap().kind, EventKind::State);
    PhoneAtA {
        cluster,
        a,
        b,
        phone,
        inbox,
    }
}

/// Bob calls alice's phone through A (A holds the INVITE): the receipt of his SEND, once
/// the phone has the INVITE, and the INVITE.
async fn bob_calls_the_phone_via_a(
    at: &PhoneAtA,
) -> (tokio::task::JoinHandle<restsip_e2e::Reply>, String) {
    let bob_a = on(&at.a, BOB);
    let invite = json!({"command": "invite", "url": "/call/over-a", "id": "c1"});
    let receipt = tokio::spawn(async move {
        bob_a
            .request("SEND", &format!("/login/{ALICE}"), Some(invite))
            .await
            .unwrap()
    });
    let invite = at.phone.next("INVITE ").await;
    (receipt, invite)
}

async fn answered_call(test: &str) -> Answered {
    let at = phone_at_a(test, &[]).await;
    // Bob calls the phone through A (A holds the dialog); the phone answers.
    let (receipt, invite) = bob_calls_the_phone_via_a(&at).await;
    let PhoneAtA {
        cluster,
        a,
        b,
        phone,
        mut inbox,
    } = at;
    let mut ok = "SIP/2.0 200 OK\r\n".to_owned();
    for name in ["Via", "From", "Call-ID", "CSeq"] {
        for line in header_lines(&invite, name) {
            ok.push_str(&line);
            ok.push_str("\r\n");
        }
    }
    let to = header_lines(&invite, "To").remove(0);
    ok.push_str(&format!(
        "{to};tag=phone-failover\r\nContact: <sip:alice@127.0.0.1:{}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{PHONE_OFFER}",
        phone.port(),
        PHONE_OFFER.len()
    ));
    phone.send(&ok).await;
    phone.next("ACK ").await;
    let receipt = receipt.await.unwrap();
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    let accept = inbox.next().await.unwrap();
    assert_eq!(accept.data["body"]["command"], "accept", "{}", accept.data);
    let call_id = header_lines(&invite, "Call-ID").remove(0);
    Answered {
        cluster,
        a,
        b,
        phone,
        inbox,
        call_id,
    }
}

impl Answered {
    /// The phone gets a BYE in the call's dialog (answered 200) from B, or from `restarted`
    /// when given, and bob a `bye` "relay lost", once.
    async fn ends(&mut self, restarted: Option<&restsip_e2e::Relay>) {
        let Self {
            phone,
            inbox,
            b,
            call_id,
            ..
        } = self;
        let from = restarted.unwrap_or(b);
        phone.towards(from);
        let bye = phone.next("BYE ").await;
        phone.ok(&bye).await;
        let via = format!("127.0.0.1:{}", from.sip.unwrap().port());
        assert!(
            header_lines(&bye, "Via")[0].contains(&via),
            "from {via}: {bye}"
        );
        assert!(
            bye.starts_with(&format!("BYE sip:alice@127.0.0.1:{} SIP/2.0", phone.port())),
            "to the phone's Contact: {bye}"
        );
        assert_eq!(
            header_lines(&bye, "Call-ID"),
            std::slice::from_ref(call_id),
            "{bye}"
        );
        assert!(
            header_lines(&bye, "To")[0].contains("tag=phone-failover"),
            "in the dialog: {bye}"
        );
        let ended = inbox.next().await.unwrap();
        assert_eq!(ended.kind, EventKind::Message, "{ended:?}");
        assert_eq!(ended.data["from"], ALICE, "{}", ended.data);
        assert_eq!(ended.data["body"]["command"], "bye", "{}", ended.data);
        assert_eq!(ended.data["body"]["reason"], "relay lost", "{}", ended.data);
        assert_eq!(ended.data["body"]["id"], "c1", "{}", ended.data);
        // Once: no other relay ends it again.
        let again = inbox.next_within(Duration::from_secs(2)).await.unwrap();
        assert!(again.is_none(), "{again:?}");
        assert!(phone
            .next_within(Duration::from_millis(500))
            .await
            .is_none());
    }
}

#[tokio::test]
async fn a_call_whose_relay_is_killed_ends_for_the_phone_and_the_web_user() {
    let mut call = answered_call("call-failover").await;
    call.a.kill().await.unwrap();
    // B finds A gone (its id slot unrenewed for 4 s) and ends the call on both sides.
    call.ends(None).await;
}

#[tokio::test]
async fn a_relay_restarted_at_once_ends_the_calls_it_held_before() {
    let mut call = answered_call("call-restart").await;
    call.a.kill().await.unwrap();
    // Back under the same node name before B could find it gone: it ends what it held.
    let again = call.cluster.join("a", &[]).await.unwrap();
    call.ends(Some(&again)).await;
}

const WEB_ANSWER: &str = "v=0\r\no=webanswer 1 1 IN IP4 127.0.0.1\r\ns=-\r\n\
                          c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";

#[tokio::test]
async fn a_call_from_a_phone_whose_relay_is_killed_ends_for_both_and_its_context_goes() {
    // Plain SDP to the web user (no rtpengine here).
    let flags = ["--sip-sdp-passthrough", "on"];
    let mut cluster = Cluster::start("inbound-failover", &["a", "b"], &flags)
        .await
        .unwrap();
    let b = cluster.relays.pop().unwrap();
    let mut a = cluster.relays.pop().unwrap();
    a.user(ALICE).await.unwrap();
    b.user(BOB).await.unwrap();
    let mut phone = Agent::new(&a, Transport::Udp).await;
    assert_eq!(phone.register(ALICE).await, "SIP/2.0 200 OK");
    let bob_b = on(&b, BOB);
    let contact = bob_b.login(json!({})).await.unwrap();
    let mut inbox = bob_b
        .sse(&format!("/login/{BOB}/{contact}"), None)
        .await
        .unwrap();
    assert_eq!(inbox.next().await.unwrap().kind, EventKind::State);

    // The phone calls bob through A; bob (streaming at B) answers at A, which holds the
    // INVITE (see README: an answer must reach the relay holding it).
    let call_id = "inbound-over-a";
    let req = Request {
        content_type: "application/sdp",
        body: PHONE_OFFER,
        ..Request::new("INVITE", ALICE, BOB)
    };
    phone.send(&phone.text(&req, call_id, 1, "")).await;
    let invite = inbox.next().await.unwrap();
    assert_eq!(invite.data["body"]["command"], "invite", "{}", invite.data);
    let (id, url) = (
        invite.data["body"]["id"].clone(),
        invite.data["body"]["url"].as_str().unwrap().to_owned(),
    );
    let accepted = on(&a, BOB)
        .request(
            "SEND",
            &format!("/login/{ALICE}"),
            Some(json!({"command": "accept", "sdp": WEB_ANSWER, "id": id})),
        )
        .await
        .unwrap();
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    let ok = phone.next("SIP/2.0 200").await;
    let to = header_lines(&ok, "To").remove(0);
    phone
        .send(&format!(
            "ACK sip:{BOB} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-ack;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{ALICE}>;tag=f{port}\r\n{to}\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            port = phone.port()
        ))
        .await;
    assert_eq!(bob_b.get(&url).await.unwrap().status, 200, "{url}");

    a.kill().await.unwrap();
    phone.towards(&b);
    let bye = phone.next("BYE ").await;
    phone.ok(&bye).await;
    assert!(
        bye.starts_with(&format!("BYE sip:agent@127.0.0.1:{};", phone.port())),
        "to the phone's Contact: {bye}"
    );
    assert_eq!(
        header_lines(&bye, "Call-ID"),
        [format!("Call-ID: {call_id}")]
    );
    // From the relay's side of the dialog (its tag in the 200's To) to the phone's.
    let relay_tag = to.split(";tag=").nth(1).unwrap();
    assert!(
        header_lines(&bye, "From")[0].contains(&format!("tag={relay_tag}")),
        "{bye}"
    );
    // The call context A made for it is gone too.
    alice_call_lost(&mut inbox, "bye", &id, &bob_b, &url).await;
}

/// Bob's page hears `command` (`bye`, `cancel`) of alice's call `id` with the reason `relay
/// lost`, and the call context A made for it (`url`) is gone.
async fn alice_call_lost(
    inbox: &mut EventStream,
    command: &str,
    id: &serde_json::Value,
    bob: &Client,
    url: &str,
) {
    let ended = inbox.next().await.unwrap();
    assert_eq!(ended.data["from"], ALICE, "{}", ended.data);
    assert_eq!(ended.data["body"]["command"], command, "{}", ended.data);
    assert_eq!(ended.data["body"]["reason"], "relay lost", "{}", ended.data);
    assert_eq!(ended.data["body"]["id"], *id, "{}", ended.data);
    let context = bob.get(url).await.unwrap();
    assert_eq!(
        context.status, 404,
        "{url} outlived its call: {}",
        context.body
    );
}

/// The first header line named `name` of `msg`.
fn first(msg: &str, name: &str) -> String {
    header_lines(msg, name).remove(0)
}

#[tokio::test]
async fn a_call_to_a_phone_ringing_when_its_relay_is_killed_is_cancelled_and_rejected() {
    let mut at = phone_at_a("ringing-out-failover", &[]).await;
    let (receipt, invite) = bob_calls_the_phone_via_a(&at).await;
    at.phone
        .answer(&invite, "180 Ringing", Some("phone-ringing"), "", "")
        .await;
    let receipt = receipt.await.unwrap();
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    let ringing = at.inbox.next().await.unwrap();
    assert_eq!(
        ringing.data["body"]["command"], "ringing",
        "{}",
        ringing.data
    );

    at.a.kill().await.unwrap();
    // B finds A gone and sends the phone the CANCEL of A's INVITE (RFC 3261 §9.1).
    let cancel = at.phone.next("CANCEL ").await;
    let uri = invite
        .lines()
        .next()
        .unwrap()
        .strip_prefix("INVITE ")
        .unwrap();
    assert!(cancel.starts_with(&format!("CANCEL {uri}\r\n")), "{cancel}");
    assert_eq!(first(&cancel, "Via"), first(&invite, "Via"), "same branch");
    for name in ["From", "To", "Call-ID"] {
        assert_eq!(first(&cancel, name), first(&invite, name), "{cancel}");
    }
    let seq = first(&invite, "CSeq").replace("INVITE", "CANCEL");
    assert_eq!(first(&cancel, "CSeq"), seq, "{cancel}");
    // Bob is told his call failed, as when a phone vanishes before it answers.
    let ended = at.inbox.next().await.unwrap();
    assert_eq!(ended.data["from"], ALICE, "{}", ended.data);
    assert_eq!(ended.data["body"]["command"], "reject", "{}", ended.data);
    assert_eq!(ended.data["body"]["code"], 503, "{}", ended.data);
    assert_eq!(
        ended.data["body"]["reason"], "Service Unavailable (relay lost)",
        "{}",
        ended.data
    );
    assert_eq!(ended.data["body"]["id"], "c1", "{}", ended.data);
    let call_id = first(&invite, "Call-ID");
    let call_id = call_id.strip_prefix("Call-ID: ").unwrap();
    assert_eq!(
        ended.data["body"]["sip"]["callId"], call_id,
        "{}",
        ended.data
    );
    // Once.
    let again = at.inbox.next_within(Duration::from_secs(2)).await.unwrap();
    assert!(again.is_none(), "{again:?}");
}

#[tokio::test]
async fn a_call_from_a_phone_ringing_when_its_relay_is_killed_gets_503_and_a_cancel() {
    let flags = ["--sip-sdp-passthrough", "on"];
    let mut at = phone_at_a("ringing-in-failover", &flags).await;
    // The phone calls bob through A; bob's page at B has the invite, the phone hears 180.
    let call_id = "ringing-in-over-a";
    let req = Request {
        content_type: "application/sdp",
        body: PHONE_OFFER,
        ..Request::new("INVITE", ALICE, BOB)
    };
    let invite = at.phone.text(&req, call_id, 1, "");
    at.phone.send(&invite).await;
    let invited = at.inbox.next().await.unwrap();
    assert_eq!(
        invited.data["body"]["command"], "invite",
        "{}",
        invited.data
    );
    let id = invited.data["body"]["id"].clone();
    let url = invited.data["body"]["url"].as_str().unwrap().to_owned();
    let ringing = at.phone.next("SIP/2.0 180").await;
    let bob_b = on(&at.b, BOB);
    assert_eq!(bob_b.get(&url).await.unwrap().status, 200, "{url}");

    at.a.kill().await.unwrap();
    // B answers the INVITE A held: 503, matched by its branch, in the early dialog's tag.
    let lost = at.phone.next("SIP/2.0 503").await;
    assert_eq!(
        lost.lines().next().unwrap(),
        "SIP/2.0 503 Service Unavailable (relay lost)"
    );
    let via = first(&invite, "Via");
    let branch = via
        .split(";branch=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    assert!(
        first(&lost, "Via").contains(&format!(";branch={branch}")),
        "{lost}"
    );
    for name in ["From", "Call-ID", "CSeq"] {
        assert_eq!(first(&lost, name), first(&invite, name), "{lost}");
    }
    assert_eq!(first(&lost, "To"), first(&ringing, "To"), "the 180's tag");
    // Bob's page is told the call is off, and the call context A made is gone.
    alice_call_lost(&mut at.inbox, "cancel", &id, &bob_b, &url).await;
    let again = at.inbox.next_within(Duration::from_secs(2)).await.unwrap();
    assert!(again.is_none(), "{again:?}");
}

/// A call between two UDP phones, both registered at relay A of a cluster, which A
/// Record-Routed: answered and ACKed.
struct ProxiedCall {
    _cluster: Cluster,
    a: restsip_e2e::Relay,
    b: restsip_e2e::Relay,
    caller: Agent,
    callee: Agent,
    /// The INVITE as the callee got it.
    invite: String,
}

/// Bob's phone calls alice's through A (Call-ID `test`); alice's answers with the tag
/// `callee-tag`, bob's ACKs.
async fn proxied_call(test: &str) -> ProxiedCall {
    let mut cluster = Cluster::start(test, &["a", "b"], &[]).await.unwrap();
    let b = cluster.relays.pop().unwrap();
    let a = cluster.relays.pop().unwrap();
    a.user(ALICE).await.unwrap();
    a.user(BOB).await.unwrap();
    let callee = Agent::new(&a, Transport::Udp).await;
    assert_eq!(callee.register(ALICE).await, "SIP/2.0 200 OK");
    let caller = Agent::new(&a, Transport::Udp).await;
    assert_eq!(caller.register(BOB).await, "SIP/2.0 200 OK");
    let req = Request {
        content_type: "application/sdp",
        body: PHONE_OFFER,
        ..Request::new("INVITE", BOB, ALICE)
    };
    let (answer, invite) = tokio::join!(caller.final_response(&req, test), async {
        let invite = callee.next("INVITE ").await;
        let contact = format!("Contact: {}\r\n", callee.contact());
        callee
            .answer(&invite, "200 OK", Some("callee-tag"), &contact, PHONE_OFFER)
            .await;
        invite
    });
    assert_eq!(answer.lines().next(), Some("SIP/2.0 200 OK"), "{answer}");
    assert_eq!(
        header_lines(&invite, "Record-Route").len(),
        1,
        "A's: {invite}"
    );
    caller.send(&caller.ack_of(&answer)).await;
    callee.next("ACK ").await;
    // A keeps the answered call in the shared store behind the 200 (written behind); killed
    // before that write, A would take the call with it, and B would have nothing to end.
    kept(&cluster.database, test, true).await;
    ProxiedCall {
        _cluster: cluster,
        a,
        b,
        caller,
        callee,
        invite,
    }
}

/// Waits (up to 10 s) until call `call_id` is kept in the store `database` (`kept`), or is
/// no longer (`!kept`): the relays write these records behind the SIP messages.
async fn kept(database: &str, call_id: &str, kept: bool) {
    let store = sqlx::SqlitePool::connect(database).await.unwrap();
    for _ in 0..500 {
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dialogs WHERE call_id = ?")
            .bind(call_id)
            .fetch_one(&store)
            .await
            .unwrap();
        if (rows == 1) == kept {
            store.close().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("call {call_id} kept: {}, not {kept}, after 10 s", !kept);
}

/// Alice's and bob's UDP phones both registered at A; bob's calls alice's through A (which
/// Record-Routes it), answered and ACKed. A is killed: B sends each phone a BYE in the
/// call's dialog, from its own socket.
#[tokio::test]
async fn a_call_between_two_phones_proxied_by_a_killed_relay_ends_for_both() {
    let ProxiedCall {
        _cluster,
        mut a,
        b,
        mut caller,
        mut callee,
        invite,
    } = proxied_call("proxied-failover").await;

    a.kill().await.unwrap();
    // B finds A gone (its id slot unrenewed for 4 s) and sends each phone a BYE.
    caller.towards(&b);
    callee.towards(&b);
    let via = format!("127.0.0.1:{}", b.sip.unwrap().port());
    let caller_from = header_lines(&invite, "From").remove(0);
    let caller_tag = caller_from.split(";tag=").nth(1).unwrap().to_owned();
    // To each phone, To is that phone's side (its own tag), From the other's.
    for (phone, own, other) in [
        (&caller, caller_tag.as_str(), "callee-tag"),
        (&callee, "callee-tag", caller_tag.as_str()),
    ] {
        let bye = tokio::time::timeout(Duration::from_secs(12), phone.next("BYE "))
            .await
            .expect("a BYE within 12 s");
        phone.ok(&bye).await;
        assert!(
            header_lines(&bye, "Via")[0].contains(&via),
            "from B ({via}): {bye}"
        );
        assert!(
            bye.starts_with(&format!(
                "BYE {} SIP/2.0",
                phone.contact().trim_matches(['<', '>'])
            )),
            "to the phone's Contact: {bye}"
        );
        assert_eq!(
            header_lines(&bye, "Call-ID"),
            ["Call-ID: proxied-failover"],
            "{bye}"
        );
        let to = &header_lines(&bye, "To")[0];
        let from = &header_lines(&bye, "From")[0];
        assert!(
            to.ends_with(&format!(";tag={own}")) && from.ends_with(&format!(";tag={other}")),
            "in the dialog: {bye}"
        );
    }
    // Once: no other relay ends it again.
    for phone in [&caller, &callee] {
        assert!(phone
            .next_within(Duration::from_millis(1500))
            .await
            .is_none());
    }
}

/// A proxied call hung up through A (the callee's BYE, answered) is not ended again when A
/// dies: B sends neither phone anything.
#[tokio::test]
async fn a_proxied_call_hung_up_before_its_relay_dies_is_left_alone() {
    let ProxiedCall {
        _cluster,
        mut a,
        b,
        mut caller,
        mut callee,
        invite,
    } = proxied_call("proxied-hung-up").await;
    callee
        .send(&callee.in_dialog(&invite, "callee-tag", "BYE", 1))
        .await;
    let bye = caller.next("BYE ").await;
    caller.ok(&bye).await;
    let done = callee.final_to("1 BYE").await;
    assert!(done.starts_with("SIP/2.0 200 OK"), "{done}");
    // The BYE's end of the record is written behind it too.
    kept(&_cluster.database, "proxied-hung-up", false).await;

    a.kill().await.unwrap();
    caller.towards(&b);
    callee.towards(&b);
    // B finds A gone within ~6 s; the call was over, so nothing reaches either phone.
    for (phone, wait) in [(&caller, 10_000), (&callee, 1_000)] {
        let got = phone.next_within(Duration::from_millis(wait)).await;
        assert!(got.is_none(), "{got:?}");
    }
}
