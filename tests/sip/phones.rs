//! What stock phones need from the relay's default settings, at the socket level: an MD5
//! challenge alone, the usernames phones are configured with, a preloaded Route to an account
//! of an IP domain, a NOTIFY answered 481 ending its subscription, an invitation without an
//! offer as an INVITE without a body, delivery receipts on the phone's own answers, and the
//! SIP message trace.

use std::net::SocketAddr;
use std::time::Duration;

use md5::{Digest, Md5};
use restsip_e2e::{Client, Relay, WAIT};
use restsip_protocol::EventKind;
use serde_json::{json, Value};
use tokio::net::UdpSocket;

const JAN: &str = "jan@example.net";

pub(crate) fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

/// The next message `next_within` gets within [`WAIT`] whose start line begins with `start`;
/// each other one before it is handed to `other`.
pub(crate) async fn next_starting(
    start: &str,
    next_within: impl AsyncFn(Duration) -> Option<String>,
    other: impl AsyncFn(&str),
) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let msg = next_within(left)
            .await
            .unwrap_or_else(|| panic!("no {start} within {WAIT:?}"));
        if msg.starts_with(start) {
            return msg;
        }
        other(&msg).await;
    }
}

/// A phone on a UDP socket of its own.
pub(crate) struct Phone {
    pub(crate) socket: UdpSocket,
    pub(crate) relay: SocketAddr,
    pub(crate) port: u16,
}

impl Phone {
    pub(crate) async fn new(relay: &Relay) -> Self {
        Self::on(relay, "127.0.0.1").await
    }

    /// A phone at the address `ip` (another loopback address is another source).
    pub(crate) async fn on(relay: &Relay, ip: &str) -> Self {
        let socket = UdpSocket::bind((ip, 0)).await.unwrap();
        let port = socket.local_addr().unwrap().port();
        Self {
            socket,
            relay: relay.sip.unwrap(),
            port,
        }
    }

    pub(crate) async fn send(&self, text: &str) {
        self.socket
            .send_to(text.as_bytes(), self.relay)
            .await
            .unwrap();
    }

    /// The next message the relay sends, within `wait`.
    pub(crate) async fn next_within(&self, wait: Duration) -> Option<String> {
        let mut buf = vec![0u8; 65_536];
        let (n, _) = tokio::time::timeout(wait, self.socket.recv_from(&mut buf))
            .await
            .ok()?
            .unwrap();
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// The next message whose start line begins with `start` (others, such as
    /// retransmissions, are skipped).
    pub(crate) async fn next(&self, start: &str) -> String {
        next_starting(
            start,
            async |wait| self.next_within(wait).await,
            async |_| {},
        )
        .await
    }

    /// A REGISTER for `aor` as `username` (None: no Authorization).
    pub(crate) fn register(&self, aor: &str, cseq: u32, authorization: Option<&str>) -> String {
        let port = self.port;
        let relay = self.relay;
        let authorization = authorization.map_or(String::new(), |a| format!("{a}\r\n"));
        format!(
            "REGISTER sip:{relay} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-reg-{cseq}-{port};rport\r\n\
             Max-Forwards: 70\r\nTo: <sip:{aor}>\r\nFrom: <sip:{aor}>;tag=r{port}\r\n\
             Call-ID: reg-{port}\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:phone@127.0.0.1:{port}>\r\nExpires: 300\r\n{authorization}\
             Content-Length: 0\r\n\r\n"
        )
    }

    /// Registers `aor` authenticating as `username` with MD5; the final status line.
    pub(crate) async fn register_as(&self, aor: &str, username: &str, password: &str) -> String {
        self.register_rewritten(aor, username, password, |r| r)
            .await
    }

    /// [`Phone::register_as`] with each REGISTER changed by `rewrite` (another Contact, say).
    pub(crate) async fn register_rewritten(
        &self,
        aor: &str,
        username: &str,
        password: &str,
        rewrite: impl Fn(String) -> String,
    ) -> String {
        self.send(&rewrite(self.register(aor, 1, None))).await;
        let challenge = self.next("SIP/2.0 401").await;
        let line = header_lines(&challenge, "WWW-Authenticate")
            .into_iter()
            .find(|l| l.contains("algorithm=MD5"))
            .unwrap_or_else(|| panic!("no MD5 challenge in {challenge}"));
        let (realm, nonce) = (param(&line, "realm"), param(&line, "nonce"));
        let uri = format!("sip:{}", self.relay);
        let ha1 = md5_hex(&format!("{username}:{realm}:{password}"));
        let ha2 = md5_hex(&format!("REGISTER:{uri}"));
        let response = md5_hex(&format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}"));
        let authorization = format!(
            "Authorization: Digest username=\"{username}\", realm=\"{realm}\", \
             nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, \
             qop=auth, nc=00000001, cnonce=\"c0ffee\""
        );
        self.send(&rewrite(self.register(aor, 2, Some(&authorization))))
            .await;
        let answer = self.next("SIP/2.0 ").await;
        answer.lines().next().unwrap_or_default().to_owned()
    }

    /// Sends a response to `req` with `status` (a To tag added) and extra header lines.
    pub(crate) async fn answer(&self, req: &str, status: &str, extra: &str, body: &str) {
        let mut head = format!("SIP/2.0 {status}\r\n");
        for name in ["Via", "From", "Call-ID", "CSeq"] {
            for line in header_lines(req, name) {
                head.push_str(&line);
                head.push_str("\r\n");
            }
        }
        let to = header_lines(req, "To").remove(0);
        if to.contains(";tag=") {
            head.push_str(&format!("{to}\r\n"));
        } else {
            head.push_str(&format!("{to};tag=phone{}\r\n", self.port));
        }
        head.push_str(extra);
        head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        self.send(&head).await;
    }
}

/// The header lines named `name` of a message.
pub(crate) fn header_lines(msg: &str, name: &str) -> Vec<String> {
    msg.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.split(':')
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case(name))
        })
        .map(str::to_owned)
        .collect()
}

/// A quoted parameter of a challenge line.
pub(crate) fn param(line: &str, name: &str) -> String {
    let start = line.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    line[start..][..line[start..].find('"').unwrap()].to_owned()
}

pub(crate) fn body_of(msg: &str) -> &str {
    msg.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[tokio::test]
async fn the_default_challenge_is_md5_alone_and_sha_256_is_offered_when_configured() {
    let relay = Relay::default().await.unwrap();
    relay.user(JAN).await.unwrap();
    let phone = Phone::new(&relay).await;
    phone.send(&phone.register(JAN, 1, None)).await;
    let challenge = phone.next("SIP/2.0 401").await;
    let lines = header_lines(&challenge, "WWW-Authenticate");
    assert_eq!(lines.len(), 1, "{challenge}");
    assert!(lines[0].contains("algorithm=MD5"), "{challenge}");

    let relay = Relay::start(&["--sip-digest-algorithms", "SHA-256,MD5"])
        .await
        .unwrap();
    relay.user(JAN).await.unwrap();
    let phone = Phone::new(&relay).await;
    phone.send(&phone.register(JAN, 1, None)).await;
    let challenge = phone.next("SIP/2.0 401").await;
    let lines = header_lines(&challenge, "WWW-Authenticate");
    assert_eq!(lines.len(), 2, "{challenge}");
    assert!(lines[0].contains("algorithm=SHA-256"), "{challenge}");
}

#[tokio::test]
async fn phones_authenticate_with_the_username_they_are_configured_with() {
    let relay = Relay::default().await.unwrap();
    let jan = relay.user(JAN).await.unwrap();
    relay.user("bob@example.net").await.unwrap();
    let password = format!("pw-{JAN}");
    for username in [JAN, "jan", "jan%40example.net"] {
        let phone = Phone::new(&relay).await;
        let status = phone.register_as(JAN, username, &password).await;
        assert!(status.starts_with("SIP/2.0 200"), "{username}: {status}");
    }
    let list = jan.get(&format!("/login/{JAN}")).await.unwrap().body;
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
    // A username of another account, or a wrong password, is refused.
    let phone = Phone::new(&relay).await;
    let status = phone.register_as(JAN, "bob", &password).await;
    assert!(status.starts_with("SIP/2.0 403"), "{status}");
    let phone = Phone::new(&relay).await;
    let status = phone.register_as(JAN, "jan", "wrong").await;
    assert!(status.starts_with("SIP/2.0 403"), "{status}");
}

#[tokio::test]
async fn a_contact_built_from_the_whole_email_is_refused_clearly() {
    let relay = Relay::default().await.unwrap();
    relay.user(JAN).await.unwrap();
    let phone = Phone::new(&relay).await;
    let own = format!("Contact: <sip:phone@127.0.0.1:{}>", phone.port);
    let bad = format!("Contact: <sip:{JAN}@127.0.0.1:{}>", phone.port);
    phone
        .send(&phone.register(JAN, 1, None).replace(&own, &bad))
        .await;
    let answer = phone.next("SIP/2.0 ").await;
    let status = answer.lines().next().unwrap_or_default();
    assert!(status.starts_with("SIP/2.0 400"), "{answer}");
    assert!(
        status.contains("Contact"),
        "the reason names the header: {status}"
    );
}

/// A web user's inbox stream, after its `state` event.
pub(crate) async fn inbox(client: &Client, email: &str) -> restsip_e2e::EventStream {
    let id = client.login(json!({})).await.unwrap();
    let mut inbox = client
        .sse(&format!("/login/{email}/{id}"), None)
        .await
        .unwrap();
    assert_eq!(inbox.next().await.unwrap().kind, EventKind::State);
    inbox
}

#[tokio::test]
async fn a_preloaded_route_to_an_account_of_an_ip_domain_is_served_here() {
    let relay = Relay::default().await.unwrap();
    let web = relay.user("web@127.0.0.1").await.unwrap();
    let mut inbox = inbox(&web, "web@127.0.0.1").await;
    let phone = Phone::new(&relay).await;
    let (relay_addr, port) = (phone.relay, phone.port);
    phone
        .send(&format!(
            "MESSAGE sip:web@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-route-{port};rport\r\n\
             Route: <sip:{relay_addr};lr>\r\nMax-Forwards: 70\r\n\
             To: <sip:web@127.0.0.1>\r\nFrom: <sip:carol@example.org>;tag=c{port}\r\n\
             Call-ID: route-{port}\r\nCSeq: 1 MESSAGE\r\n\
             Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
        ))
        .await;
    let answer = phone.next("SIP/2.0 2").await;
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
    let msg = inbox.next().await.unwrap();
    assert_eq!(msg.kind, EventKind::Message);
    assert_eq!(msg.data["body"]["text"], "hello", "{}", msg.data);
}

#[tokio::test]
async fn a_notify_answered_481_ends_the_subscription() {
    let relay = Relay::default().await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    // The watcher is of another domain: bob lets everyone watch (see disclosure.rs).
    let rule = json!({"allow": "everyone"});
    let r = bob
        .request("PUT", "/user/bob@example.net/presence-rule", Some(rule))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let phone = Phone::new(&relay).await;
    let port = phone.port;
    phone
        .send(&format!(
            "SUBSCRIBE sip:bob@example.net SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-sub-{port};rport\r\n\
             Max-Forwards: 70\r\nTo: <sip:bob@example.net>\r\n\
             From: <sip:watcher@example.org>;tag=w{port}\r\nCall-ID: sub-{port}\r\n\
             CSeq: 1 SUBSCRIBE\r\nContact: <sip:watcher@127.0.0.1:{port}>\r\n\
             Event: presence\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n"
        ))
        .await;
    let ok = phone.next("SIP/2.0 ").await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let first = phone.next("NOTIFY ").await;
    phone.answer(&first, "200 OK", "", "").await;
    // A change notifies again: the subscription is live.
    bob.login(json!({})).await.unwrap();
    let second = phone.next("NOTIFY ").await;
    assert!(body_of(&second).contains("<basic>open</basic>"), "{second}");
    // The subscriber no longer knows it: 481 ends it, and the next change notifies nobody.
    phone
        .answer(&second, "481 Subscription Does Not Exist", "", "")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    bob.login(json!({})).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Some(msg) = phone
        .next_within(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        // The 481's own NOTIFY may be retransmitted before its answer arrives; a new one has
        // a higher CSeq.
        assert!(
            !msg.starts_with("NOTIFY ")
                || header_lines(&msg, "CSeq") == header_lines(&second, "CSeq"),
            "a NOTIFY after 481: {msg}"
        );
    }
}

/// Carol's phone registered (full email as username), and Alice on the web with her inbox.
pub(crate) async fn call_setup(relay: &Relay) -> (Phone, Client, restsip_e2e::EventStream) {
    relay.user("carol@example.net").await.unwrap();
    let phone = Phone::new(relay).await;
    let status = phone
        .register_as(
            "carol@example.net",
            "carol@example.net",
            "pw-carol@example.net",
        )
        .await;
    assert!(status.starts_with("SIP/2.0 200"), "{status}");
    let alice = relay.user("alice@example.net").await.unwrap();
    let inbox = inbox(&alice, "alice@example.net").await;
    (phone, alice, inbox)
}

/// Alice's SEND to Carol, answered when its receipt comes.
pub(crate) fn send_invite(alice: &Client, body: Value) -> tokio::task::JoinHandle<Value> {
    let alice = alice.clone();
    tokio::spawn(async move {
        let r = alice
            .request("SEND", "/login/carol@example.net", Some(body))
            .await
            .unwrap();
        assert!(r.status < 300, "{} {}", r.status, r.body);
        r.body
    })
}

const PHONE_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                           t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

#[tokio::test]
async fn an_invitation_without_an_offer_is_an_invite_without_a_body() {
    let relay = Relay::default().await.unwrap();
    let (phone, alice, mut inbox) = call_setup(&relay).await;
    let receipt = send_invite(
        &alice,
        json!({"command": "invite", "url": "/call/abc", "id": "i1"}),
    );
    let invite = phone.next("INVITE ").await;
    assert_eq!(body_of(&invite), "", "{invite}");
    assert!(header_lines(&invite, "Content-Type").is_empty(), "{invite}");
    assert_eq!(
        header_lines(&invite, "X-Restsip-Call"),
        ["X-Restsip-Call: /call/abc"],
        "{invite}"
    );
    // A 100 Trying is not yet a delivery; the phone ringing is, with its own status line.
    phone.answer(&invite, "100 Trying", "", "").await;
    phone.answer(&invite, "180 Ringing Loudly", "", "").await;
    let receipt = tokio::time::timeout(WAIT, receipt).await.unwrap().unwrap();
    let delivery = &receipt["deliveries"][0];
    assert_eq!(delivery["status"], "delivered", "{receipt}");
    assert_eq!(delivery["sip"]["code"], 180, "{receipt}");
    assert_eq!(delivery["sip"]["reason"], "Ringing Loudly", "{receipt}");
    // The phone offers in its 200; the relay's ACK answers, declining media for now.
    let contact = format!(
        "Contact: <sip:carol@127.0.0.1:{}>\r\nContent-Type: application/sdp\r\n",
        phone.port
    );
    phone.answer(&invite, "200 OK", &contact, PHONE_OFFER).await;
    let ack = phone.next("ACK ").await;
    assert_eq!(
        header_lines(&ack, "Content-Type"),
        ["Content-Type: application/sdp"],
        "{ack}"
    );
    assert!(body_of(&ack).contains("m=audio 0 RTP/AVP 0"), "{ack}");
    let ringing = inbox.next().await.unwrap();
    assert_eq!(
        ringing.data["body"]["command"], "ringing",
        "{}",
        ringing.data
    );
    let accept = inbox.next().await.unwrap();
    assert_eq!(accept.data["body"]["command"], "accept", "{}", accept.data);
}

#[tokio::test]
async fn a_busy_phone_makes_a_failed_receipt_with_its_own_status_line() {
    let relay = Relay::default().await.unwrap();
    let (phone, alice, _inbox) = call_setup(&relay).await;
    let receipt = send_invite(
        &alice,
        json!({"command": "invite", "url": "/call/abc", "id": "b1"}),
    );
    let invite = phone.next("INVITE ").await;
    phone.answer(&invite, "100 Trying", "", "").await;
    phone
        .answer(&invite, "486 Busy Here (in a meeting)", "", "")
        .await;
    let receipt = tokio::time::timeout(WAIT, receipt).await.unwrap().unwrap();
    let delivery = &receipt["deliveries"][0];
    assert_eq!(delivery["status"], "failed", "{receipt}");
    assert_eq!(delivery["sip"]["code"], 486, "{receipt}");
    assert_eq!(
        delivery["sip"]["reason"], "Busy Here (in a meeting)",
        "{receipt}"
    );
}

#[tokio::test]
async fn the_sip_trace_shows_each_message_in_and_out_with_its_peer() {
    let relay = Relay::start_logging(&[], "warn,restsip_sip::trace=trace")
        .await
        .unwrap();
    let phone = Phone::new(&relay).await;
    let (relay_addr, port) = (phone.relay, phone.port);
    phone
        .send(&format!(
            "OPTIONS sip:{relay_addr} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-opt-{port};rport\r\n\
             Max-Forwards: 70\r\nTo: <sip:{relay_addr}>\r\nFrom: <sip:x@example.org>;tag=o\r\n\
             Call-ID: trace-{port}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ))
        .await;
    phone.next("SIP/2.0 200").await;
    let peer = format!("peer=127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let log = relay.log();
        let received =
            log.contains(&format!("OPTIONS sip:{relay_addr}")) && log.contains("received");
        let sent = log.contains("SIP/2.0 200 OK") && log.contains("sent");
        if received && sent && log.contains(&peer) && log.contains("transport=UDP") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "trace incomplete:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Off by default: a relay at the default level traces nothing.
    let quiet = Relay::start_logging(&[], "info").await.unwrap();
    let phone = Phone::new(&quiet).await;
    phone.send(&phone.register(JAN, 1, None)).await;
    phone.next("SIP/2.0 ").await;
    assert!(!quiet.log().contains("REGISTER sip:"), "{}", quiet.log());
}
