//! A sender's share of a contact's queue: a MESSAGE flood from one sender, SENDs past it.

use restsip_e2e::{Relay, WAIT};
use serde_json::json;

use super::{finals, message, Socket, ALICE, BOB, MALLORY};

async fn message_flood_leaves_other_senders_through(transport: &str) {
    // The rate limit is off: this is about the queue, whatever the request rate.
    let relay = Relay::start(&["--sip-rate-limit", "off"]).await.unwrap();
    let bob = relay.user(BOB).await.unwrap();
    let alice = relay.user(ALICE).await.unwrap();
    bob.login(json!({})).await.unwrap(); // logged in, no stream open: SENDs queue
    let mut socket = Socket::open(relay.sip.unwrap(), transport, "127.0.0.1").await;
    let via = socket.via();
    let ids: Vec<String> = (0..1000)
        .map(|n| format!("flood-{transport}-{n}"))
        .collect();
    for id in &ids {
        socket.send(&message(BOB, MALLORY, &via, id)).await;
    }
    let got = finals(&mut socket, &ids, WAIT).await;
    assert_eq!(got.len(), 1000, "every MESSAGE is answered");
    let count = |code: u16| got.values().filter(|a| a.status == code).count();
    assert_eq!(
        count(202),
        100,
        "the sender's share is queued (--max-queued-per-sender 100)"
    );
    assert_eq!(count(486), 900, "the rest are refused");
    let busy = got.values().find(|a| a.status == 486).unwrap();
    assert!(
        busy.text.lines().next().unwrap().contains(MALLORY),
        "the reason names the sender: {}",
        busy.text
    );
    // A real user's SENDs still get through, and so does a phone's MESSAGE from another sender.
    for n in 0..3 {
        let res = alice
            .request("SEND", &format!("/login/{BOB}"), Some(json!({"n": n})))
            .await
            .unwrap();
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(
            res.body["deliveries"][0]["status"], "queued",
            "{}",
            res.body
        );
    }
    let other = format!("other-{transport}");
    socket
        .send(&message(BOB, "carol@elsewhere.example", &via, &other))
        .await;
    let got = finals(&mut socket, std::slice::from_ref(&other), WAIT).await;
    assert_eq!(got[&other].status, 202, "{}", got[&other].text);
    // Once bob reads his queue, the sender may queue again.
    let mut stream = bob.ndjson(&format!("/login/{BOB}/1")).await.unwrap();
    stream.next().await.unwrap();
    let mut read = 0;
    while read < 104 {
        stream.next().await.unwrap();
        read += 1;
    }
    drop(stream);
    let again = format!("again-{transport}");
    socket.send(&message(BOB, MALLORY, &via, &again)).await;
    let got = finals(&mut socket, std::slice::from_ref(&again), WAIT).await;
    assert!(
        matches!(got[&again].status, 200 | 202),
        "{}",
        got[&again].text
    );
}

#[tokio::test]
async fn a_message_flood_from_one_sender_leaves_other_senders_through_over_udp() {
    message_flood_leaves_other_senders_through("UDP").await;
}

#[tokio::test]
async fn a_message_flood_from_one_sender_leaves_other_senders_through_over_tcp() {
    message_flood_leaves_other_senders_through("TCP").await;
}

#[tokio::test]
async fn rest_sends_past_the_senders_share_get_429_and_other_senders_do_not() {
    let relay = Relay::start(&["--max-queued-per-sender", "3"])
        .await
        .unwrap();
    let bob = relay.user(BOB).await.unwrap();
    let alice = relay.user(ALICE).await.unwrap();
    let mallory = relay.user("mallory@example.net").await.unwrap();
    bob.login(json!({})).await.unwrap();
    let send = |who: &restsip_e2e::Client, n: u32| {
        let who = who.clone();
        async move {
            who.request("SEND", &format!("/login/{BOB}"), Some(json!({"n": n})))
                .await
                .unwrap()
        }
    };
    for n in 0..3 {
        assert_eq!(send(&mallory, n).await.status, 200);
    }
    let res = send(&mallory, 3).await;
    res.assert_problem(429, "too-many-requests");
    assert!(
        res.body["detail"]
            .as_str()
            .unwrap()
            .contains("mallory@example.net"),
        "{}",
        res.body
    );
    assert_eq!(
        send(&alice, 0).await.status,
        200,
        "another sender is not affected"
    );
}
