//! Floods (issue 18) against the real relay over real sockets: 1,000 unauthenticated MESSAGEs
//! from one sender fill only that sender's share of a user's queue (486 past it) and another
//! user's REST SENDs still get through; a flood of SERVICE LeaveMessage stops at the mailbox's
//! caps with a SOAP Fault saying so while other senders still leave messages; and a flood from
//! one source address gets one 503 with Retry-After, then silence, while another source is
//! served; each over UDP and TCP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use restsip_e2e::{Relay, WAIT};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const BOB: &str = "bob@example.net";
const ALICE: &str = "alice@example.net";
const MALLORY: &str = "mallory@attacker.example";

/// A request from `from` to `sip:{to}` sent by `via` (`UDP 127.0.0.1:PORT`), with Call-ID
/// `id`, and `extra` header lines (each ending in CRLF) before the body.
fn request(
    method: &str,
    to: &str,
    from: &str,
    via: &str,
    id: &str,
    extra: &str,
    body: &str,
) -> String {
    format!(
        "{method} sip:{to} SIP/2.0\r\nVia: SIP/2.0/{via};branch=z9hG4bK-{id};rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:{to}>\r\nFrom: <sip:{from}>;tag=f-{id}\r\nCall-ID: {id}\r\n\
         CSeq: 1 {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn message(to: &str, from: &str, via: &str, id: &str) -> String {
    request(
        "MESSAGE",
        to,
        from,
        via,
        id,
        "Content-Type: text/plain\r\n",
        "buy now",
    )
}

/// A response read: its status, Call-ID and whole text.
struct Answer {
    status: u16,
    call_id: String,
    text: String,
}

fn answer(text: &str) -> Option<Answer> {
    let status = text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()?;
    let call_id = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("Call-ID: ")
                .or_else(|| l.strip_prefix("i: "))
        })?
        .trim()
        .to_owned();
    Some(Answer {
        status,
        call_id,
        text: text.to_owned(),
    })
}

/// Either transport's socket to the relay.
enum Socket {
    Udp(UdpSocket),
    Tcp(TcpStream, Vec<u8>),
}

impl Socket {
    async fn open(relay: SocketAddr, transport: &str, ip: &str) -> Self {
        if transport == "UDP" {
            let socket = UdpSocket::bind((ip, 0)).await.unwrap();
            socket.connect(relay).await.unwrap();
            Socket::Udp(socket)
        } else {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
            Socket::Tcp(socket.connect(relay).await.unwrap(), Vec::new())
        }
    }

    /// The Via sent-by of its requests: `UDP 127.0.0.1:PORT`.
    fn via(&self) -> String {
        match self {
            Socket::Udp(s) => format!("UDP {}", s.local_addr().unwrap()),
            Socket::Tcp(s, _) => format!("TCP {}", s.local_addr().unwrap()),
        }
    }

    async fn send(&mut self, text: &str) {
        match self {
            Socket::Udp(s) => {
                s.send(text.as_bytes()).await.unwrap();
            }
            Socket::Tcp(s, _) => s.write_all(text.as_bytes()).await.unwrap(),
        }
    }

    /// The next response within `wait`, if any (final or not).
    async fn next(&mut self, wait: Duration) -> Option<Answer> {
        match self {
            Socket::Udp(s) => {
                let mut buf = vec![0u8; 65_536];
                let n = tokio::time::timeout(wait, s.recv(&mut buf))
                    .await
                    .ok()?
                    .unwrap();
                answer(&String::from_utf8_lossy(&buf[..n]))
            }
            Socket::Tcp(s, pending) => loop {
                if let Some(text) = framed(pending) {
                    return answer(&text);
                }
                let mut buf = [0u8; 16_384];
                let n = tokio::time::timeout(wait, s.read(&mut buf))
                    .await
                    .ok()?
                    .unwrap();
                if n == 0 {
                    return None;
                }
                pending.extend_from_slice(&buf[..n]);
            },
        }
    }
}

/// The first whole message in `pending` (taken out of it), by its Content-Length.
fn framed(pending: &mut Vec<u8>) -> Option<String> {
    let text = String::from_utf8_lossy(pending).into_owned();
    let end = text.find("\r\n\r\n")? + 4;
    let length: usize = text[..end]
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |n| n.trim().parse().unwrap_or(0));
    if pending.len() < end + length {
        return None;
    }
    let whole: Vec<u8> = pending.drain(..end + length).collect();
    Some(String::from_utf8_lossy(&whole).into_owned())
}

/// Reads final answers until every one of `ids` has one, or nothing comes for `quiet`: the
/// final answer by Call-ID.
async fn finals(socket: &mut Socket, ids: &[String], quiet: Duration) -> HashMap<String, Answer> {
    let mut got = HashMap::new();
    while got.len() < ids.len() {
        let Some(a) = socket.next(quiet).await else {
            break;
        };
        if a.status >= 200 {
            got.insert(a.call_id.clone(), a);
        }
    }
    got
}

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

/// OPTIONS from `ip` over `transport` as fast as it can send them; what came back.
async fn options_flood(
    relay: SocketAddr,
    transport: &str,
    ip: &str,
    n: usize,
) -> (Vec<Answer>, Duration) {
    let mut socket = Socket::open(relay, transport, ip).await;
    let via = socket.via();
    let started = Instant::now();
    for i in 0..n {
        let id = format!("options-{transport}-{ip}-{i}");
        socket
            .send(&request(
                "OPTIONS",
                "127.0.0.1",
                "scanner@attacker.example",
                &via,
                &id,
                "",
                "",
            ))
            .await;
    }
    let elapsed = started.elapsed();
    let mut got = Vec::new();
    // Every answer comes soon after its request; one second of quiet ends the reading.
    while let Some(a) = socket.next(Duration::from_secs(1)).await {
        got.push(a);
    }
    (got, elapsed)
}

async fn a_flood_gets_503_then_silence(transport: &str) {
    // 2 requests a second with a burst of 20: the flood of 300 outruns it by far.
    let relay = Relay::start(&["--sip-rate-limit", "2/s", "--sip-rate-burst", "20"])
        .await
        .unwrap();
    let sip = relay.sip.unwrap();
    let (got, elapsed) = options_flood(sip, transport, "127.0.0.1", 300).await;
    let ok = got.iter().filter(|a| a.status == 200).count();
    let refusals: Vec<&Answer> = got.iter().filter(|a| a.status == 503).collect();
    // The burst, plus what refilled while the flood was sent and read, plus the 503.
    let refilled = 2 * (elapsed.as_secs() as usize + 2);
    assert!(
        ok >= 20 && ok <= 20 + refilled,
        "{ok} answered in {elapsed:?}"
    );
    assert_eq!(refusals.len(), 1, "one 503 per window, then silence");
    assert!(
        refusals[0].text.contains("Retry-After: 10\r\n"),
        "{}",
        refusals[0].text
    );
    assert_eq!(got.len(), ok + 1, "nothing else is answered");
    // Another source is served at once.
    let (other, _) = options_flood(sip, transport, "127.0.0.2", 1).await;
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].status, 200, "{}", other[0].text);
    // And the flooded source is still told nothing within its window.
    let (again, _) = options_flood(sip, transport, "127.0.0.1", 1).await;
    assert!(
        again.iter().all(|a| a.status == 200),
        "no second 503 in the window"
    );
}

#[tokio::test]
async fn a_udp_flood_from_one_source_gets_503_then_silence_and_another_source_is_served() {
    a_flood_gets_503_then_silence("UDP").await;
}

#[tokio::test]
async fn a_tcp_flood_from_one_source_gets_503_then_silence_and_another_source_is_served() {
    a_flood_gets_503_then_silence("TCP").await;
}

#[tokio::test]
async fn exempt_sources_and_an_unlimited_relay_answer_every_request() {
    for args in [
        &[
            "--sip-rate-limit",
            "2/s",
            "--sip-rate-burst",
            "20",
            "--sip-rate-exempt",
            "127.0.0.0/8",
        ][..],
        &["--sip-rate-limit", "off"][..],
    ] {
        let relay = Relay::start(args).await.unwrap();
        let (got, _) = options_flood(relay.sip.unwrap(), "UDP", "127.0.0.1", 300).await;
        assert_eq!(got.len(), 300, "{args:?}");
        assert!(got.iter().all(|a| a.status == 200), "{args:?}");
    }
}
