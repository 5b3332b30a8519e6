//! Nobody speaks as someone else over SIP (issue 18): a MESSAGE, INVITE or SERVICE whose From
//! is a local user is challenged (407) and reaches nobody without that user's credentials;
//! with them, or over the very flow the user registered on, it is delivered with the identity
//! the relay checked (and any P-Asserted-Identity the sender supplied is gone). A From of
//! another domain is accepted and shown as unauthenticated, unless `--sip-foreign-from
//! upstream-only`. Each over UDP and TCP.

use std::time::Duration;

use restsip_e2e::{Client, EventStream, Relay};
use serde_json::json;

use crate::agent::{status, Agent, Request, Transport};

const ALICE: &str = "alice@example.net";
const BOB: &str = "bob@example.net";
const CAROL: &str = "carol@elsewhere.example";
/// A P-Asserted-Identity a spoofer adds, hoping the relay believes it.
const FORGED: &str = "P-Asserted-Identity: <sip:alice@example.net>\r\n";

/// Bob's offline messages (voice mail, missed calls).
async fn mailbox(bob: &Client) -> Vec<serde_json::Value> {
    let list = bob.get(&format!("/user/{BOB}/message")).await.unwrap().body;
    list.as_array().cloned().unwrap_or_default()
}

fn message<'a>(from: &'a str, extra: &'a str) -> Request<'a> {
    Request {
        extra,
        content_type: "text/plain",
        body: "hello bob",
        ..Request::new("MESSAGE", from, BOB)
    }
}

/// Bob's next event is a message from `from`, `authenticated` or not.
async fn assert_delivered(inbox: &mut EventStream, from: &str, authenticated: bool) {
    let msg = inbox.next().await.unwrap();
    assert_eq!(msg.data["from"], from, "{}", msg.data);
    assert_eq!(
        msg.data["body"]["sip"]["authenticated"], authenticated,
        "{}",
        msg.data
    );
}

async fn spoofed_messages(transport: Transport) {
    let relay = Relay::default().await.unwrap();
    relay.user(ALICE).await.unwrap();
    let bob = relay.user(BOB).await.unwrap();
    let mut inbox = crate::phones::inbox(&bob, BOB).await;

    // As alice, without her credentials (and with a forged assertion): challenged, not
    // delivered.
    let mallory = Agent::new(&relay, transport).await;
    let answer = mallory
        .final_response(&message(ALICE, FORGED), "spoof-1")
        .await;
    assert!(answer.starts_with("SIP/2.0 407 "), "{answer}");
    let challenge = crate::phones::header_lines(&answer, "Proxy-Authenticate");
    assert!(
        challenge.iter().any(|c| c.contains("realm=\"restsip\"")),
        "{answer}"
    );
    // A wrong password: refused.
    let wrong = mallory
        .authenticated(&message(ALICE, ""), "spoof-2", ALICE, "guess")
        .await;
    assert!(wrong.starts_with("SIP/2.0 403 "), "{wrong}");
    inbox.assert_quiet().await;

    // With alice's credentials: delivered as alice, authenticated.
    let phone = Agent::new(&relay, transport).await;
    let answer = phone
        .authenticated(
            &message(ALICE, FORGED),
            "real-1",
            ALICE,
            &format!("pw-{ALICE}"),
        )
        .await;
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
    assert_delivered(&mut inbox, ALICE, true).await;

    // Over the flow alice registered on, no credentials are asked.
    let registered = Agent::new(&relay, transport).await;
    assert!(registered.register(ALICE).await.starts_with("SIP/2.0 200"));
    let answer = registered
        .final_response(&message(ALICE, ""), "flow-1")
        .await;
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
    assert_delivered(&mut inbox, ALICE, true).await;

    // Another domain's sender: accepted, shown unauthenticated, its forged assertion gone.
    let foreign = Agent::new(&relay, transport).await;
    let answer = foreign
        .final_response(&message(CAROL, FORGED), "foreign-1")
        .await;
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
    assert_delivered(&mut inbox, CAROL, false).await;
}

#[tokio::test]
async fn a_message_from_a_local_user_needs_her_credentials_or_her_flow_over_udp() {
    spoofed_messages(Transport::Udp).await;
}

#[tokio::test]
async fn a_message_from_a_local_user_needs_her_credentials_or_her_flow_over_tcp() {
    spoofed_messages(Transport::Tcp).await;
}

fn invite(from: &str) -> Request<'_> {
    Request {
        content_type: "application/sdp",
        body: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        ..Request::new("INVITE", from, BOB)
    }
}

fn leave_message(from: &str) -> Request<'_> {
    Request {
        content_type: "text/xml",
        body: "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\">\
               <SOAP-ENV:Body><m:LeaveMessage xmlns:m=\"urn:restsip:user\">\
               <user>bob@example.net</user><body>call me</body></m:LeaveMessage>\
               </SOAP-ENV:Body></SOAP-ENV:Envelope>",
        ..Request::new("SERVICE", from, BOB)
    }
}

/// A spoofed INVITE (bob offline: a missed call) and SERVICE LeaveMessage leave nothing in
/// bob's mailbox; the same with alice's credentials do, as alice, authenticated.
async fn spoofed_calls_and_voice_mail(transport: Transport) {
    let relay = Relay::default().await.unwrap();
    relay.user(ALICE).await.unwrap();
    let bob = relay.user(BOB).await.unwrap();
    let mallory = Agent::new(&relay, transport).await;
    for (req, call_id) in [
        (invite(ALICE), "inv-spoof"),
        (leave_message(ALICE), "svc-spoof"),
    ] {
        let answer = mallory.final_response(&req, call_id).await;
        assert!(answer.starts_with("SIP/2.0 407 "), "{call_id}: {answer}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(mailbox(&bob).await.is_empty(), "spoofed mail landed");

    let phone = Agent::new(&relay, transport).await;
    let password = format!("pw-{ALICE}");
    let answer = phone
        .authenticated(&invite(ALICE), "inv-real", ALICE, &password)
        .await;
    assert!(answer.starts_with("SIP/2.0 480 "), "{answer}");
    let answer = phone
        .authenticated(&leave_message(ALICE), "svc-real", ALICE, &password)
        .await;
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
    let mail = mailbox(&bob).await;
    assert_eq!(mail.len(), 2, "{mail:?}");
    assert!(mail.iter().all(|m| m["from"] == ALICE), "{mail:?}");
    let missed = mail
        .iter()
        .find(|m| m["body"]["command"] == "missed-call")
        .unwrap_or_else(|| panic!("no missed call in {mail:?}"));
    assert_eq!(missed["body"]["sip"]["authenticated"], true, "{missed}");
}

#[tokio::test]
async fn a_spoofed_call_or_voice_mail_leaves_nothing_over_udp() {
    spoofed_calls_and_voice_mail(Transport::Udp).await;
}

#[tokio::test]
async fn a_spoofed_call_or_voice_mail_leaves_nothing_over_tcp() {
    spoofed_calls_and_voice_mail(Transport::Tcp).await;
}

/// `--sip-foreign-from upstream-only`: another domain's sender is refused unless it is the
/// upstream server; local users still get in with credentials.
async fn upstream_only(transport: Transport) {
    // An upstream that never answers: nothing here goes to it.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let upstream = format!("sip:{}", silent.local_addr().unwrap());
    let relay = Relay::start(&[
        "--sip-upstream",
        &upstream,
        "--sip-foreign-from",
        "upstream-only",
    ])
    .await
    .unwrap();
    relay.user(ALICE).await.unwrap();
    let bob = relay.user(BOB).await.unwrap();
    bob.login(json!({})).await.unwrap();
    let foreign = Agent::new(&relay, transport).await;
    let answer = foreign.final_response(&message(CAROL, ""), "up-1").await;
    assert!(answer.starts_with("SIP/2.0 403 "), "{answer}");
    let phone = Agent::new(&relay, transport).await;
    let answer = phone
        .authenticated(&message(ALICE, ""), "up-2", ALICE, &format!("pw-{ALICE}"))
        .await;
    assert_eq!(status(&answer), "SIP/2.0 202 Accepted", "{answer}");
}

#[tokio::test]
async fn upstream_only_refuses_other_domains_over_udp() {
    upstream_only(Transport::Udp).await;
}

#[tokio::test]
async fn upstream_only_refuses_other_domains_over_tcp() {
    upstream_only(Transport::Tcp).await;
}
