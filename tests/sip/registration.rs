//! A SIP phone (sipp) registers, refreshes and unregisters with digest authentication, and
//! the REST API shows it come and go; wrong passwords are refused; OPTIONS lists the methods.

use restsip_e2e::Relay;
use restsip_protocol::EventKind;

use crate::sipp::{free_port, Mode, Run, TCP, UDP};

const EMAIL: &str = "alice@example.net";
const PASSWORD: &str = "pw-alice@example.net";

fn register<'a>(relay: &Relay, mode: Mode, port: u16, keys: &'a [(&'a str, &'a str)]) -> Run<'a> {
    Run {
        relay: relay.sip.unwrap(),
        scenario: "register",
        mode,
        port,
        keys,
        auth: Some((EMAIL, PASSWORD)),
    }
}

async fn register_refresh_unregister(mode: Mode) {
    let relay = Relay::default().await.unwrap();
    let alice = relay.user(EMAIL).await.unwrap();
    let mut stream = alice.sse("/login/alice@example.net", None).await.unwrap();
    assert_eq!(stream.next().await.unwrap().kind, EventKind::State);
    let port = free_port();

    let keys = [("aor", EMAIL), ("expires", "120")];
    register(&relay, mode, port, &keys).pass().await.unwrap();
    let added = stream.next().await.unwrap();
    assert_eq!(added.kind, EventKind::Added);
    assert_eq!(added.data["source"], "sip");
    let contact = added.data["contact"].as_str().unwrap().to_owned();
    assert!(
        contact.starts_with(&format!("sip:phone@127.0.0.1:{port}")),
        "{contact}"
    );
    let list = alice.get("/login/alice@example.net").await.unwrap().body;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["contact"], contact.as_str());
    assert!(list[0]["expires"].as_u64().unwrap() <= 120);

    // A refresh from the same phone updates its binding: still one contact.
    register(&relay, mode, port, &keys).pass().await.unwrap();
    let updated = stream.next().await.unwrap();
    assert_eq!(updated.kind, EventKind::Updated);
    assert_eq!(updated.data["id"], added.data["id"]);
    let list = alice.get("/login/alice@example.net").await.unwrap().body;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");

    let keys = [("aor", EMAIL), ("expires", "0")];
    register(&relay, mode, port, &keys).pass().await.unwrap();
    let removed = stream.next().await.unwrap();
    assert_eq!(removed.kind, EventKind::Removed);
    assert_eq!(removed.data["reason"], "unregistered");
    let list = alice.get("/login/alice@example.net").await.unwrap().body;
    assert_eq!(list, serde_json::json!([]));
}

/// A relay where alice's phone registered for 60 s, then refreshed for 900 s.
async fn registered_then_refreshed() -> Relay {
    let relay = Relay::default().await.unwrap();
    relay.user(EMAIL).await.unwrap();
    let port = free_port();
    register(&relay, UDP, port, &[("aor", EMAIL), ("expires", "60")])
        .pass()
        .await
        .unwrap();
    register(&relay, UDP, port, &[("aor", EMAIL), ("expires", "900")])
        .pass()
        .await
        .unwrap();
    relay
}

/// A new binding is acknowledged only once it is committed: after kill -9 and a restart the
/// phone is still there. (A refresh of it is answered from memory and written behind within
/// milliseconds, so kill -9 right after a refresh may leave the earlier lifetime.)
#[tokio::test]
async fn a_registration_survives_kill_dash_nine() {
    let mut relay = registered_then_refreshed().await;

    relay.kill_and_restart().await.unwrap();

    let alice = relay.client(EMAIL, PASSWORD);
    let list = alice.get("/login/alice@example.net").await.unwrap().body;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["source"], "sip", "{list}");
    assert!(list[0]["expires"].as_u64().unwrap() > 30, "{list}");
}

/// A refresh answered from memory is on disk once the relay stops (SIGTERM): after a restart
/// the binding has the refreshed lifetime.
#[tokio::test]
async fn a_refreshed_registration_keeps_its_lifetime_across_a_restart() {
    let mut relay = registered_then_refreshed().await;

    relay.restart().await.unwrap();

    let alice = relay.client(EMAIL, PASSWORD);
    let list = alice.get("/login/alice@example.net").await.unwrap().body;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert!(list[0]["expires"].as_u64().unwrap() > 600, "{list}");
}

#[tokio::test]
async fn a_phone_registers_refreshes_and_unregisters_over_udp() {
    register_refresh_unregister(UDP).await;
}

#[tokio::test]
async fn a_phone_registers_refreshes_and_unregisters_over_tcp() {
    register_refresh_unregister(TCP).await;
}

#[tokio::test]
async fn a_wrong_password_is_refused_over_udp_and_tcp() {
    let relay = Relay::default().await.unwrap();
    let alice = relay.user(EMAIL).await.unwrap();
    for mode in [UDP, TCP] {
        Run {
            relay: relay.sip.unwrap(),
            scenario: "register-wrong-password",
            mode,
            port: free_port(),
            keys: &[("aor", EMAIL)],
            auth: Some((EMAIL, "not-the-password")),
        }
        .pass()
        .await
        .unwrap();
        // And the right scenario with the wrong password fails: it expects 200.
        let wrong = Run {
            auth: Some((EMAIL, "not-the-password")),
            ..register(
                &relay,
                mode,
                free_port(),
                &[("aor", EMAIL), ("expires", "60")],
            )
        };
        assert!(wrong.pass().await.is_err());
    }
    let list = alice.get("/login/alice@example.net").await.unwrap().body;
    assert_eq!(list, serde_json::json!([]));
}

#[tokio::test]
async fn options_lists_the_methods_over_udp_and_tcp() {
    let relay = Relay::default().await.unwrap();
    for mode in [UDP, TCP] {
        Run {
            relay: relay.sip.unwrap(),
            scenario: "options",
            mode,
            port: free_port(),
            keys: &[],
            auth: None,
        }
        .pass()
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn an_expired_registration_leaves_the_login_list() {
    let relay = Relay::start(&["--min-expires", "1", "--default-expires", "1"])
        .await
        .unwrap();
    let alice = relay.user(EMAIL).await.unwrap();
    let mut stream = alice.sse("/login/alice@example.net", None).await.unwrap();
    assert_eq!(stream.next().await.unwrap().kind, EventKind::State);
    let keys = [("aor", EMAIL), ("expires", "1")];
    register(&relay, UDP, free_port(), &keys)
        .pass()
        .await
        .unwrap();
    assert_eq!(stream.next().await.unwrap().kind, EventKind::Added);
    let removed = stream.next().await.unwrap();
    assert_eq!(removed.kind, EventKind::Removed);
    assert_eq!(removed.data["reason"], "expired");
    let list = alice.get("/login/alice@example.net").await.unwrap().body;
    assert_eq!(list, serde_json::json!([]));
}

/// One UDP datagram to the relay and the answer to it.
async fn exchange(socket: &tokio::net::UdpSocket, request: &str) -> String {
    socket.send(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 65_536];
    let n = tokio::time::timeout(restsip_e2e::WAIT, socket.recv(&mut buf))
        .await
        .expect("no answer to REGISTER")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// A REGISTER has no server transaction (it is answered statelessly, like Kamailio's
/// registrar): a retransmission is processed again. The same authenticated REGISTER sent
/// twice gets two identical 200s (its nonce count is not a replay when the request is the
/// same) and makes one binding; the same nonce count in another request is still a replay.
#[tokio::test]
async fn a_retransmitted_register_gets_the_same_200_and_one_binding() {
    // SHA-256 is offered when configured (MD5 alone by default).
    let relay = Relay::start(&["--sip-digest-algorithms", "MD5,SHA-256"])
        .await
        .unwrap();
    let alice = relay.user(EMAIL).await.unwrap();
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(relay.sip.unwrap()).await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let uri = format!("sip:{}", relay.sip.unwrap());
    let request = |cseq: u32, branch: &str, authorization: &str| {
        format!(
            "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\nTo: <sip:{EMAIL}>\r\nFrom: <sip:{EMAIL}>;tag=retx\r\n\
             Call-ID: retransmitted-register\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:phone@127.0.0.1:{port}>\r\nExpires: 300\r\n{authorization}\
             Content-Length: 0\r\n\r\n"
        )
    };
    let challenge = exchange(&socket, &request(1, "first", "")).await;
    assert!(challenge.starts_with("SIP/2.0 401 "), "{challenge}");
    let line = challenge
        .lines()
        .find(|l| l.starts_with("WWW-Authenticate:") && l.contains("SHA-256"))
        .unwrap_or_else(|| panic!("no SHA-256 challenge in {challenge}"));
    let param = |name: &str| {
        let start = line.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        line[start..][..line[start..].find('"').unwrap()].to_owned()
    };
    let (realm, nonce) = (param("realm"), param("nonce"));
    let authorization = |cnonce: &str| {
        let ha1 = sha256_hex(&format!("{EMAIL}:{realm}:{PASSWORD}"));
        let ha2 = sha256_hex(&format!("REGISTER:{uri}"));
        let response = sha256_hex(&format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
        format!(
            "Authorization: Digest username=\"{EMAIL}\", realm=\"{realm}\", nonce=\"{nonce}\", \
             uri=\"{uri}\", response=\"{response}\", algorithm=SHA-256, qop=auth, \
             nc=00000001, cnonce=\"{cnonce}\"\r\n"
        )
    };

    let register = request(2, "second", &authorization("c1"));
    let first = exchange(&socket, &register).await;
    assert!(first.starts_with("SIP/2.0 200 "), "{first}");
    let again = exchange(&socket, &register).await;
    assert_eq!(first, again, "a retransmission gets the same 200");
    let list = alice.get("/login/alice@example.net").await.unwrap().body;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["source"], "sip", "{list}");

    // The nonce count used again by another request is a replay: challenged, not registered.
    let replay = exchange(&socket, &request(3, "third", &authorization("c2"))).await;
    assert!(replay.starts_with("SIP/2.0 401 "), "{replay}");
    let list = alice.get("/login/alice@example.net").await.unwrap().body;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}
