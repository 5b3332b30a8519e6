//! Mailbox caps: a LeaveMessage flood over SIP SERVICE, offline messages over REST.

use restsip_e2e::{Relay, WAIT};
use serde_json::json;

use super::{finals, request, Answer, Socket, ALICE, BOB, MALLORY};

/// A SOAP LeaveMessage of `size` bytes of body for `user`.
fn leave_message(user: &str, size: usize) -> String {
    format!(
        "<?xml version=\"1.0\"?><SOAP-ENV:Envelope \
         xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\"><SOAP-ENV:Body>\
         <m:LeaveMessage xmlns:m=\"urn:restsip:user\"><user>{user}</user><body>{}</body>\
         </m:LeaveMessage></SOAP-ENV:Body></SOAP-ENV:Envelope>",
        "x".repeat(size)
    )
}

/// SERVICE LeaveMessage requests from `from`, one at a time; their final answers in order.
async fn leave_messages(
    socket: &mut Socket,
    from: &str,
    n: usize,
    size: usize,
    transport: &str,
) -> Vec<Answer> {
    let via = socket.via();
    let mut out = Vec::new();
    for i in 0..n {
        let id = format!("leave-{transport}-{}-{i}", from.replace('@', "-at-"));
        let body = leave_message(BOB, size);
        socket
            .send(&request(
                "SERVICE",
                BOB,
                from,
                &via,
                &id,
                "Content-Type: text/xml\r\n",
                &body,
            ))
            .await;
        let got = finals(socket, std::slice::from_ref(&id), WAIT).await;
        out.push(
            got.into_values()
                .next()
                .unwrap_or_else(|| panic!("no answer to {id}")),
        );
    }
    out
}

async fn leave_message_flood_stops_at_the_caps(transport: &str) {
    let relay = Relay::start(&[
        "--max-mailbox-messages",
        "80",
        "--max-mailbox-bytes",
        "400000",
    ])
    .await
    .unwrap();
    let bob = relay.user(BOB).await.unwrap();
    let mut socket = Socket::open(relay.sip.unwrap(), transport, "127.0.0.1").await;
    // One sender: 50 messages of 4 KB (the default share of one sender), then refusals.
    let answers = leave_messages(&mut socket, MALLORY, 60, 4000, transport).await;
    let ok = answers.iter().take_while(|a| a.status == 200).count();
    assert_eq!(ok, 50, "{}", answers[ok].text);
    for refused in &answers[50..] {
        assert_eq!(refused.status, 500, "{}", refused.text);
        assert!(
            refused
                .text
                .contains("<faultcode>SOAP-ENV:Client</faultcode>"),
            "{}",
            refused.text
        );
        assert!(refused.text.contains("mailbox-full"), "{}", refused.text);
        assert!(refused.text.contains("from one sender"), "{}", refused.text);
    }
    // Other senders still leave messages, until the mailbox's 400,000 bytes are used up
    // (about 200,000 by the first sender's 50 messages).
    let answers = leave_messages(&mut socket, "carol@elsewhere.example", 5, 4000, transport).await;
    assert!(
        answers.iter().all(|a| a.status == 200),
        "{}",
        answers[0].text
    );
    let answers = leave_messages(&mut socket, "dave@elsewhere.example", 25, 8000, transport).await;
    let stored = answers.iter().take_while(|a| a.status == 200).count();
    assert!(
        (20..25).contains(&stored),
        "{stored} of 8 KB fit in what was left"
    );
    let refused = &answers[stored];
    assert!(
        refused.text.contains("mailbox-full") && refused.text.contains("bytes"),
        "{}",
        refused.text
    );
    // A small message still fits, and every stored one is in the mailbox.
    let small = leave_messages(&mut socket, "erin@elsewhere.example", 1, 10, transport).await;
    assert_eq!(small[0].status, 200, "{}", small[0].text);
    let mail = bob.get(&format!("/user/{BOB}/message")).await.unwrap().body;
    let mail = mail.as_array().unwrap();
    let from = |who: &str| mail.iter().filter(|m| m["from"] == who).count();
    assert_eq!(from(MALLORY), 50);
    assert_eq!(from("carol@elsewhere.example"), 5);
    assert_eq!(from("dave@elsewhere.example"), stored);
    assert_eq!(from("erin@elsewhere.example"), 1);
}

#[tokio::test]
async fn a_leave_message_flood_stops_at_the_mailbox_caps_over_udp() {
    leave_message_flood_stops_at_the_caps("UDP").await;
}

#[tokio::test]
async fn a_leave_message_flood_stops_at_the_mailbox_caps_over_tcp() {
    leave_message_flood_stops_at_the_caps("TCP").await;
}

#[tokio::test]
async fn rest_mail_past_a_cap_gets_507_mailbox_full() {
    let relay = Relay::start(&[
        "--max-mailbox-messages",
        "3",
        "--max-mailbox-per-sender",
        "2",
    ])
    .await
    .unwrap();
    relay.user(BOB).await.unwrap();
    let alice = relay.user(ALICE).await.unwrap();
    let carol = relay.user("carol@example.net").await.unwrap();
    let leave = |who: &restsip_e2e::Client| {
        let who = who.clone();
        async move {
            who.request(
                "POST",
                &format!("/user/{BOB}/message"),
                Some(json!({"body": "hi"})),
            )
            .await
            .unwrap()
        }
    };
    assert_eq!(leave(&alice).await.status, 201);
    assert_eq!(leave(&alice).await.status, 201);
    let res = leave(&alice).await;
    res.assert_problem(507, "mailbox-full");
    assert!(
        res.body["detail"].as_str().unwrap().contains("one sender"),
        "{}",
        res.body
    );
    assert_eq!(leave(&carol).await.status, 201, "another sender still may");
    let res = leave(&carol).await;
    res.assert_problem(507, "mailbox-full");
    assert!(
        res.body["detail"].as_str().unwrap().contains("3 messages"),
        "{}",
        res.body
    );
}
