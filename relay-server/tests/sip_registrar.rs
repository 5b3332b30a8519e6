//! The registrar and the endpoint in process: digest authentication (MD5 and SHA-256, stale
//! nonces, replays, wrong passwords), bindings (refresh, several contacts, `*`, expiry limits),
//! the location service events, OPTIONS, 404/501/513, retransmissions and response routing.
#![allow(clippy::unwrap_used)]

mod harness;

use std::net::SocketAddr;

use harness::{harness, harness_with, options, Harness, CLIENT};
use restsip_protocol::EventKind;
use restsip_relay::bus::Topic;
use restsip_relay::clock::now_ms;
use restsip_relay::config::Limits;
use restsip_relay::location::BindingChange;
use restsip_sip::digest::{ha1, Algorithm, Credentials};
use restsip_sip::endpoint::MAX_REGISTERS_WAITING;
use restsip_sip::message::SipMessage;
use restsip_sip::transport::{Peer, Transport};

const AOR: &str = "alice@example.net";

/// A REGISTER from alice with `extra` header lines (each ending in CRLF).
fn register(branch: &str, cseq: u32, extra: &str) -> String {
    format!(
        "REGISTER sip:example.net SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.99:40000;branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:{AOR}>\r\nFrom: <sip:{AOR}>;tag=a1\r\nCall-ID: reg-1\r\n\
         CSeq: {cseq} REGISTER\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

/// The Authorization header answering `challenge` (a 401) with `password`.
fn authorization(challenge: &SipMessage, algorithm: Algorithm, password: &str, nc: u32) -> String {
    let www = challenge
        .headers_named("WWW-Authenticate")
        .find(|v| v.contains(&format!("algorithm={}", algorithm.name())))
        .unwrap();
    let nonce = www
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let mut c = Credentials {
        username: AOR.into(),
        realm: "restsip".into(),
        nonce: nonce.into(),
        uri: "sip:example.net".into(),
        algorithm: Some(algorithm.name().into()),
        cnonce: Some("0a4f113b".into()),
        nc: Some(format!("{nc:08x}")),
        qop: Some("auth".into()),
        ..Credentials::default()
    };
    c.response = c.expected(
        algorithm,
        &ha1(algorithm, AOR, "restsip", password),
        "REGISTER",
    );
    format!(
        "Authorization: Digest username=\"{AOR}\", realm=\"restsip\", nonce=\"{nonce}\", \
         uri=\"sip:example.net\", response=\"{}\", algorithm={}, cnonce=\"0a4f113b\", \
         qop=auth, nc={nc:08x}\r\n",
        c.response,
        algorithm.name()
    )
}

async fn alice() -> Harness {
    let h = harness().await;
    h.user(AOR, "s3cret").await;
    h
}

/// Registers `contact` with `expires` through a challenge; returns the 200.
async fn registered(h: &Harness, n: u32, contact: &str, algorithm: Algorithm) -> SipMessage {
    let challenge = h.request(&register(&format!("c{n}"), n * 2, "")).await;
    assert_eq!(challenge.code(), Some(401));
    let auth = authorization(&challenge, algorithm, "s3cret", 1);
    h.request(&register(
        &format!("r{n}"),
        n * 2 + 1,
        &format!("{auth}{contact}"),
    ))
    .await
}

#[tokio::test]
async fn md5_and_sha256_digests_register_and_the_binding_is_a_login() {
    let h = alice().await;
    let mut watch = h.bus.subscribe(&Topic::Login(AOR.into()), None).receiver;
    let ok = registered(
        &h,
        1,
        "Contact: <sip:alice@192.0.2.99:40000>\r\n",
        Algorithm::Md5,
    )
    .await;
    assert_eq!(ok.code(), Some(200));
    assert_eq!(
        ok.header("Contact"),
        Some("<sip:alice@192.0.2.99:40000>;expires=3600")
    );
    assert!(ok.header("Date").unwrap().ends_with("GMT"));
    let event = watch.recv().await.unwrap();
    assert_eq!(event.kind, EventKind::Added);
    assert_eq!(event.data["source"], "sip");
    assert_eq!(event.data["contact"], "sip:alice@192.0.2.99:40000");
    let ok = registered(
        &h,
        2,
        "Contact: <sip:alice@[2001:db8::9]>;expires=60\r\n",
        Algorithm::Sha256,
    )
    .await;
    assert_eq!(ok.code(), Some(200));
    assert_eq!(ok.headers_named("Contact").count(), 2);
    assert_eq!(h.location.contacts(AOR).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_refresh_updates_the_binding_instead_of_adding_one() {
    let h = alice().await;
    let contact = "Contact: <sip:alice@192.0.2.99:40000>\r\n";
    registered(&h, 1, contact, Algorithm::Md5).await;
    let mut watch = h.bus.subscribe(&Topic::Login(AOR.into()), None).receiver;
    let ok = registered(&h, 2, &format!("Expires: 120\r\n{contact}"), Algorithm::Md5).await;
    assert_eq!(
        ok.header("Contact"),
        Some("<sip:alice@192.0.2.99:40000>;expires=120")
    );
    let event = watch.recv().await.unwrap();
    assert_eq!(event.kind, EventKind::Updated);
    // The changed login and the whole list, with the new lifetime.
    assert_eq!(event.data["id"], 1, "{event:?}");
    let expires = event.data["expires"].as_u64().unwrap();
    assert!((118..=120).contains(&expires), "{event:?}");
    assert_eq!(event.state.as_ref().unwrap().as_array().unwrap().len(), 1);
    let contacts = h.location.contacts(AOR).await.unwrap();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].id, 1);
}

/// A refresh of a binding in memory is answered without waiting for the store, and its new
/// lifetime is written behind; what needs the store (a new Contact, an unknown user, an older
/// CSeq, a binding near its end) is left to the full path.
#[tokio::test]
async fn a_refresh_is_answered_from_memory_and_written_behind() {
    let h = alice().await;
    let uri = "sip:alice@192.0.2.99:40000";
    registered(&h, 1, &format!("Contact: <{uri}>\r\n"), Algorithm::Md5).await;
    let bind = |uri: &str, expires| {
        vec![BindingChange::Bind {
            uri: uri.into(),
            expires,
            route: serde_json::json!({"transport": "udp"}),
        }]
    };
    let refresh = |cseq, expires| {
        h.location
            .refresh_sip(AOR, "reg-1", cseq, bind(uri, expires))
    };
    assert!(h
        .location
        .refresh_sip(AOR, "reg-1", 9, bind("sip:alice@192.0.2.7", 60))
        .is_none());
    assert!(h
        .location
        .refresh_sip("bob@example.net", "reg-1", 9, bind(uri, 60))
        .is_none());
    assert!(
        refresh(2, 60).is_none(),
        "CSeq 2 is older than the binding's 3"
    );

    let after = refresh(10, 7_200).unwrap();
    assert_eq!(after.len(), 1);
    let expires_at = after[0].expires_at;
    assert!((expires_at - now_ms() - 7_200_000).abs() < 5_000);
    assert_eq!(
        refresh(10, 7_200).unwrap()[0].expires_at,
        expires_at,
        "a retransmission"
    );
    h.store.flush().await;
    let stored = h.store.contacts(AOR, 0).await.unwrap();
    assert_eq!(stored[0].expires_at, expires_at);
    assert_eq!(stored[0].sip.as_ref().unwrap()["cseq"], 10);
    assert_eq!(stored[0].sip.as_ref().unwrap()["transport"], "udp");

    // Five seconds left: the next refresh goes through the store.
    refresh(11, 5).unwrap();
    assert!(refresh(12, 60).is_none());
}

#[tokio::test]
async fn expires_zero_and_star_remove_bindings_and_rest_logins_stay() {
    let h = alice().await;
    let rest = h
        .location
        .register(
            AOR,
            serde_json::from_value(serde_json::json!({})).unwrap(),
            restsip_protocol::ContactSource::Web,
        )
        .await
        .unwrap();
    registered(
        &h,
        1,
        "Contact: <sip:a@192.0.2.1>, <sip:b@192.0.2.2>\r\n",
        Algorithm::Md5,
    )
    .await;
    let mut watch = h.bus.subscribe(&Topic::Login(AOR.into()), None).receiver;
    let ok = registered(
        &h,
        2,
        "Contact: <sip:a@192.0.2.1>;expires=0\r\n",
        Algorithm::Md5,
    )
    .await;
    assert_eq!(
        ok.headers_named("Contact").collect::<Vec<_>>(),
        ["<sip:b@192.0.2.2>;expires=3600"]
    );
    let removed = watch.recv().await.unwrap();
    assert_eq!(
        (removed.kind, removed.data["reason"].as_str()),
        (EventKind::Removed, Some("unregistered"))
    );
    let bad_star = registered(&h, 3, "Contact: *\r\n", Algorithm::Md5).await;
    assert_eq!(bad_star.code(), Some(400), "* without Expires: 0");
    let ok = registered(&h, 4, "Contact: *\r\nExpires: 0\r\n", Algorithm::Md5).await;
    assert_eq!(ok.code(), Some(200));
    assert_eq!(ok.header("Contact"), None);
    let left = h.location.contacts(AOR).await.unwrap();
    assert_eq!(left.iter().map(|c| c.id).collect::<Vec<_>>(), [rest.id]);
}

#[tokio::test]
async fn a_register_without_contact_lists_the_bindings() {
    let h = alice().await;
    registered(&h, 1, "Contact: <sip:a@192.0.2.1>\r\n", Algorithm::Md5).await;
    let ok = registered(&h, 2, "", Algorithm::Md5).await;
    assert_eq!(ok.code(), Some(200));
    assert_eq!(ok.header("Contact"), Some("<sip:a@192.0.2.1>;expires=3600"));
}

#[tokio::test]
async fn expiry_below_the_minimum_is_423_and_above_the_maximum_is_capped() {
    let h = alice().await;
    let brief = registered(
        &h,
        1,
        "Contact: <sip:a@192.0.2.1>;expires=5\r\n",
        Algorithm::Md5,
    )
    .await;
    assert_eq!(brief.code(), Some(423));
    assert_eq!(brief.header("Min-Expires"), Some("30"));
    let long = registered(
        &h,
        2,
        "Contact: <sip:a@192.0.2.1>;expires=999999\r\n",
        Algorithm::Md5,
    )
    .await;
    assert_eq!(
        long.header("Contact"),
        Some("<sip:a@192.0.2.1>;expires=86400")
    );
}

#[tokio::test]
async fn wrong_passwords_other_users_and_replays_are_refused() {
    let h = alice().await;
    h.user("bob@example.net", "b").await;
    let challenge = h.request(&register("w1", 1, "")).await;
    let wrong = authorization(&challenge, Algorithm::Md5, "guess", 1);
    let refused = h
        .request(&register(
            "w2",
            2,
            &format!("{wrong}Contact: <sip:a@192.0.2.1>\r\n"),
        ))
        .await;
    assert_eq!(refused.code(), Some(403));
    assert!(h.location.contacts(AOR).await.unwrap().is_empty());
    // Right credentials once; the same nonce count again is a replay: challenged anew.
    let right = authorization(&challenge, Algorithm::Sha256, "s3cret", 1);
    let first = h.request(&register("w3", 3, &right)).await;
    assert_eq!(first.code(), Some(200));
    let replay = h.request(&register("w4", 4, &right)).await;
    assert_eq!(replay.code(), Some(401));
    // Alice's credentials do not register Bob.
    let as_bob = register("w5", 5, &right).replace("To: <sip:alice@", "To: <sip:bob@");
    assert_eq!(h.request(&as_bob).await.code(), Some(403));
}

#[tokio::test]
async fn unknown_users_are_challenged_like_known_ones_and_without_auth_anyone_registers() {
    let h = alice().await;
    let nobody = register("n1", 1, "").replace("alice@", "nobody@");
    let known = register("n2", 1, "");
    let (nobody, known) = (h.request(&nobody).await, h.request(&known).await);
    assert_eq!(nobody.code(), Some(401), "no account list by REGISTER");
    assert_eq!(nobody.code(), known.code());
    assert_eq!(
        nobody.headers_named("WWW-Authenticate").count(),
        known.headers_named("WWW-Authenticate").count()
    );
    let open = harness_with(Limits::default(), false).await;
    open.user(AOR, "x").await;
    let ok = open
        .request(&register("o1", 1, "Contact: <sip:a@192.0.2.1>\r\n"))
        .await;
    assert_eq!(ok.code(), Some(200));
}

#[tokio::test]
async fn options_unknown_methods_and_oversize_messages() {
    let h = alice().await;
    let ok = h.request(&options("o1")).await;
    assert_eq!(ok.code(), Some(200));
    assert!(ok.header("Allow").unwrap().contains("REGISTER"));
    assert!(ok.header("Accept").is_some() && ok.header("Supported").is_some());
    let foobar = options("f1")
        .replace("OPTIONS sip:", "FOOBAR sip:")
        .replace("1 OPTIONS", "1 FOOBAR");
    let nope = h.request(&foobar).await;
    assert_eq!(nope.code(), Some(501));
    assert!(nope.header("Allow").unwrap().contains("OPTIONS"));
    let to_user = options("u1").replace(
        "OPTIONS sip:relay.example.net",
        &format!("OPTIONS sip:{AOR}"),
    );
    assert_eq!(h.request(&to_user).await.code(), Some(200));
    let to_nobody = options("u2").replace(
        "OPTIONS sip:relay.example.net",
        "OPTIONS sip:nobody@example.net",
    );
    // The same answer for an address that is no account (nobody lists the accounts).
    assert_eq!(h.request(&to_nobody).await.code(), Some(200));
    let big = options("b1").replace(
        "Content-Length: 0\r\n",
        &format!("X-Padding: {}\r\nContent-Length: 0\r\n", "x".repeat(70_000)),
    );
    assert_eq!(h.request(&big).await.code(), Some(513));
    let require = options("r1").replace("Max-Forwards", "Require: 100rel\r\nMax-Forwards");
    let ext = h.request(&require).await;
    assert_eq!(
        (ext.code(), ext.header("Unsupported")),
        (Some(420), Some("100rel"))
    );
}

#[tokio::test]
async fn retransmitted_requests_get_the_same_response_without_being_handled_again() {
    let h = alice().await;
    let first = h.request(&options("x1")).await;
    let again = h.request(&options("x1")).await;
    assert_eq!(first, again, "the very same 200, To tag included");
    assert_eq!(h.endpoint.server().len(), 1);
}

/// REGISTER is answered without a server transaction (like Kamailio's stateless registrar):
/// its retransmission is handled again and gets an answer with the same To tag (a 401 with a
/// fresh nonce, either of which works).
#[tokio::test]
async fn a_retransmitted_register_is_answered_again_without_a_transaction() {
    let h = alice().await;
    let first = h.request(&register("x1", 1, "")).await;
    let again = h.request(&register("x1", 1, "")).await;
    assert_eq!((first.code(), again.code()), (Some(401), Some(401)));
    assert_eq!(first.header("To"), again.header("To"));
    assert_eq!(h.endpoint.server().len(), 0);
}

/// A REGISTER that waits for the store is a transaction of sorts: its retransmission meanwhile
/// is absorbed, and the one answer comes when the store has spoken.
#[tokio::test]
async fn a_retransmission_while_the_register_waits_for_the_store_is_absorbed() {
    let h = harness_with(Limits::default(), false).await;
    h.user(AOR, "x").await;
    let first = register("w1", 1, "Contact: <sip:a@192.0.2.1>\r\n");
    let from = Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(CLIENT),
    };
    // Both arrive before the first one's task runs (this runtime has one thread).
    h.endpoint.inbound().datagram(first.as_bytes(), from);
    let got = h.exchange(first.as_bytes(), Transport::Udp, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.code(), Some(200));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(
        h.sent(),
        1,
        "one answer for the request and its retransmission"
    );
    // Once answered, a retransmission is handled again (the 200 may have been lost).
    assert_eq!(h.request(&first).await.code(), Some(200));
}

/// Past the most REGISTERs that may wait for the store, the relay says it is overloaded
/// (503 with Retry-After) instead of queueing without end, and serves again once they are done.
#[tokio::test]
async fn registers_past_the_most_waiting_get_503_with_retry_after() {
    let h = harness_with(Limits::default(), false).await;
    h.user(AOR, "x").await;
    let from = Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(CLIENT),
    };
    let nobody = |n: usize| {
        register(&format!("o{n}"), 1, "")
            .replace("alice@", "nobody@")
            .replace("reg-1", &format!("reg-o{n}"))
    };
    for n in 0..MAX_REGISTERS_WAITING {
        h.endpoint.inbound().datagram(nobody(n).as_bytes(), from);
    }
    assert_eq!(h.sent(), 0, "all of them wait for the store");
    let over = h.request(&nobody(MAX_REGISTERS_WAITING)).await;
    assert_eq!(over.code(), Some(503));
    assert!(over.header("Retry-After").is_some());
    // The ones waiting are all answered, then the relay takes new ones again.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while h.sent() < MAX_REGISTERS_WAITING + 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(h.sent(), MAX_REGISTERS_WAITING + 1);
    assert_eq!(
        h.request(&nobody(0).replace("z9hG4bKo0", "z9hG4bKlater"))
            .await
            .code(),
        Some(404)
    );
    let ok = h
        .request(&register("l1", 1, "Contact: <sip:a@192.0.2.1>\r\n"))
        .await;
    assert_eq!(ok.code(), Some(200));
}

#[tokio::test]
async fn responses_go_to_the_source_port_with_rport_and_to_the_via_port_without() {
    let h = alice().await;
    let got = h
        .exchange(options("p1").as_bytes(), Transport::Udp, 1)
        .await;
    assert_eq!(got[0].0.addr, SocketAddr::from(CLIENT));
    let via = got[0].1.top_via().unwrap();
    assert_eq!(via.param("rport"), Some(Some("40000")));
    assert_eq!(via.param("received"), Some(Some("192.0.2.99")));
    // No rport, a sent-by port and a host that is not the source: the source IP, the Via port.
    let plain = options("p2").replace(
        "192.0.2.99:40000;branch=z9hG4bKp2;rport",
        "phone.example.net:5080;branch=z9hG4bKp2",
    );
    let got = h.exchange(plain.as_bytes(), Transport::Udp, 1).await;
    assert_eq!(got[0].0.addr, SocketAddr::from(([192, 0, 2, 99], 5080)));
    assert_eq!(
        got[0].1.top_via().unwrap().param("received"),
        Some(Some("192.0.2.99"))
    );
    // Over TCP the answer goes back on the connection.
    let got = h
        .exchange(options("p3").as_bytes(), Transport::Tcp, 1)
        .await;
    assert_eq!(
        (got[0].0.transport, got[0].0.addr),
        (Transport::Tcp, SocketAddr::from(CLIENT))
    );
}

#[tokio::test]
async fn an_account_without_digest_secrets_is_told_to_set_its_password_again() {
    let h = harness().await;
    h.store
        .create_user(&restsip_relay::store::UserRecord {
            email: AOR.into(),
            password_hash: "from before SIP".into(),
            name: None,
            data: Default::default(),
            created: 0,
        })
        .await
        .unwrap();
    let challenge = h.request(&register("d1", 1, "")).await;
    assert_eq!(challenge.code(), Some(401));
    let auth = authorization(&challenge, Algorithm::Md5, "whatever", 1);
    let refused = h.request(&register("d2", 2, &auth)).await;
    assert_eq!(refused.code(), Some(403));
    assert!(refused
        .to_string()
        .contains("set the account's password again"));
}
