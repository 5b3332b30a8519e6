//! Presence is told only to whom its owner allows (issue 18): a SUBSCRIBE from a local user
//! needs her credentials (407), one from another domain is refused unless bob's rule says
//! `everyone`; a `listed` rule leaves out whoever it does not name, over SIP as over REST;
//! the rule is bob's alone to read and set. An anonymous SERVICE GetPresence learns whether
//! bob is online, never his contact addresses or expiry times. Over UDP and TCP.

use restsip_e2e::Relay;
use serde_json::json;

use crate::agent::{Agent, Request, Transport};

const ALICE: &str = "alice@example.net";
const BOB: &str = "bob@example.net";
const CAROL: &str = "carol@example.net";
const DAVE: &str = "dave@elsewhere.example";

fn subscribe(from: &str) -> Request<'_> {
    Request {
        extra: "Event: presence\r\nAccept: application/pidf+xml\r\nExpires: 60\r\n",
        ..Request::new("SUBSCRIBE", from, BOB)
    }
}

async fn subscriptions(transport: Transport) {
    let relay = Relay::default().await.unwrap();
    relay.user(ALICE).await.unwrap();
    relay.user(CAROL).await.unwrap();
    let bob = relay.user(BOB).await.unwrap();
    let alice_pw = format!("pw-{ALICE}");

    // Anonymous (alice's address, no credentials): challenged.
    let agent = Agent::new(&relay, transport).await;
    let answer = agent.final_response(&subscribe(ALICE), "sub-1").await;
    assert!(answer.starts_with("SIP/2.0 407 "), "{answer}");
    // Authenticated: allowed by the default rule (signed-in users).
    let answer = agent
        .authenticated(&subscribe(ALICE), "sub-2", ALICE, &alice_pw)
        .await;
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
    // Another domain: not signed in.
    let foreign = Agent::new(&relay, transport).await;
    let answer = foreign.final_response(&subscribe(DAVE), "sub-3").await;
    assert!(answer.starts_with("SIP/2.0 403 "), "{answer}");

    // Bob lists carol alone: alice, authenticated, is refused now.
    let rule = json!({"allow": "listed", "emails": [CAROL]});
    let put = bob
        .request("PUT", &format!("/user/{BOB}/presence-rule"), Some(rule))
        .await
        .unwrap();
    assert_eq!(put.status, 200, "{}", put.body);
    let answer = agent
        .authenticated(&subscribe(ALICE), "sub-4", ALICE, &alice_pw)
        .await;
    assert!(answer.starts_with("SIP/2.0 403 "), "{answer}");
    let answer = agent
        .authenticated(&subscribe(CAROL), "sub-5", CAROL, &format!("pw-{CAROL}"))
        .await;
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");

    // Everyone: another domain may watch too.
    let rule = json!({"allow": "everyone"});
    let put = bob
        .request("PUT", &format!("/user/{BOB}/presence-rule"), Some(rule))
        .await
        .unwrap();
    assert_eq!(put.status, 200, "{}", put.body);
    let answer = foreign.final_response(&subscribe(DAVE), "sub-6").await;
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
}

#[tokio::test]
async fn presence_subscriptions_follow_the_owners_rule_over_udp() {
    subscriptions(Transport::Udp).await;
}

#[tokio::test]
async fn presence_subscriptions_follow_the_owners_rule_over_tcp() {
    subscriptions(Transport::Tcp).await;
}

#[tokio::test]
async fn the_presence_rule_is_the_owners_and_rest_reads_follow_it() {
    let relay = Relay::default().await.unwrap();
    let alice = relay.user(ALICE).await.unwrap();
    let carol = relay.user(CAROL).await.unwrap();
    let bob = relay.user(BOB).await.unwrap();
    let path = format!("/user/{BOB}/presence-rule");
    let default = bob.get(&path).await.unwrap();
    assert_eq!(default.status, 200);
    assert_eq!(default.body["allow"], "signed-in", "{}", default.body);
    // Nobody else reads or sets it.
    alice
        .get(&path)
        .await
        .unwrap()
        .assert_problem(403, "forbidden");
    let rule = json!({"allow": "everyone"});
    alice
        .request("PUT", &path, Some(rule))
        .await
        .unwrap()
        .assert_problem(403, "forbidden");
    // A rule that is none: 422, as any body of the wrong shape.
    bob.request("PUT", &path, Some(json!({"allow": "nobody"})))
        .await
        .unwrap()
        .assert_problem(422, "unprocessable");
    // Listed: carol may read bob's logins, alice may not; bob always may.
    let rule = json!({"allow": "listed", "emails": ["Carol@Example.net"]});
    let set = bob.request("PUT", &path, Some(rule)).await.unwrap();
    assert_eq!(set.body["emails"], json!([CAROL]), "{}", set.body);
    let logins = format!("/login/{BOB}");
    assert_eq!(carol.get(&logins).await.unwrap().status, 200);
    assert_eq!(bob.get(&logins).await.unwrap().status, 200);
    alice
        .get(&logins)
        .await
        .unwrap()
        .assert_problem(403, "forbidden");
}

fn get_presence(from: &str) -> Request<'_> {
    Request {
        content_type: "text/xml",
        body: "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\">\
               <SOAP-ENV:Body><m:GetPresence xmlns:m=\"urn:restsip:user\">\
               <user>bob@example.net</user></m:GetPresence></SOAP-ENV:Body>\
               </SOAP-ENV:Envelope>",
        ..Request::new("SERVICE", from, "presence@example.net")
    }
}

async fn get_presence_discloses_nothing_anonymously(transport: Transport) {
    let relay = Relay::default().await.unwrap();
    relay.user(ALICE).await.unwrap();
    let bob = relay.user(BOB).await.unwrap();
    bob.login(json!({"contact": "sip:bob@192.0.2.7:5060"}))
        .await
        .unwrap();
    let anonymous = Agent::new(&relay, transport).await;
    let answer = anonymous.final_response(&get_presence(DAVE), "gp-1").await;
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
    assert!(answer.contains("<online>true</online>"), "{answer}");
    assert!(!answer.contains("192.0.2.7"), "an address leaked: {answer}");
    assert!(
        !answer.contains("<uri>") && !answer.contains("<expires>"),
        "{answer}"
    );
    // Alice, authenticated, sees where bob is.
    let answer = anonymous
        .authenticated(&get_presence(ALICE), "gp-2", ALICE, &format!("pw-{ALICE}"))
        .await;
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
    assert!(answer.contains("192.0.2.7"), "{answer}");
    assert!(answer.contains("<expires>"), "{answer}");
}

#[tokio::test]
async fn an_anonymous_get_presence_shows_no_contacts_over_udp() {
    get_presence_discloses_nothing_anonymously(Transport::Udp).await;
}

#[tokio::test]
async fn an_anonymous_get_presence_shows_no_contacts_over_tcp() {
    get_presence_discloses_nothing_anonymously(Transport::Tcp).await;
}
