//! The egress guard: webhooks and `POST /service` may not reach loopback, private, link-local,
//! multicast or other special-purpose addresses (in any spelling, or through a name) unless the
//! relay runs with `--allow-private-targets`; no credentials in target URLs; failures that do
//! not map the network.

use std::time::{Duration, Instant};

use restsip_e2e::receiver::Receiver;
use restsip_e2e::{Client, Relay};
use serde_json::{json, Value};

use crate::webhooks::until;

/// The guard on (the test harness allows private targets unless told otherwise).
const STRICT: &[&str] = &["--allow-private-targets=false"];

/// Webhook targets that must be refused, `{port}` standing for a live receiver's port.
const PRIVATE_URLS: &[&str] = &[
    "http://127.0.0.1:{port}/hook",
    "http://localhost:{port}/hook",
    "http://0.0.0.0:{port}/hook",
    "http://127.1:{port}/hook",
    "http://2130706433:{port}/hook",
    "http://0x7f.1:{port}/hook",
    "http://0177.0.0.1:{port}/hook",
    "http://[::1]:{port}/hook",
    "http://[::ffff:127.0.0.1]:{port}/hook",
    "http://[::]:{port}/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.1.2.3/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",
    "http://224.0.0.1/hook",
    "http://255.255.255.255/hook",
    "http://[fd00::1]/hook",
    "http://[fe80::1]/hook",
];

async fn create_hook(client: &Client, url: &str) -> (u16, Value) {
    let res = client
        .request(
            "POST",
            "/webhook",
            Some(json!({"url": url, "resource": format!("/login/{}", client.email())})),
        )
        .await
        .unwrap();
    (res.status, res.body)
}

fn port_of(receiver: &Receiver) -> String {
    receiver
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn webhooks_to_private_addresses_are_refused_in_every_spelling() {
    let rx = Receiver::start().await.unwrap();
    let port = port_of(&rx);
    let relay = Relay::start(STRICT).await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    for url in PRIVATE_URLS {
        let url = url.replace("{port}", &port);
        let (status, body) = create_hook(&alice, &url).await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["code"], "forbidden-target", "{url}: {body}");
        assert_eq!(body["type"], "urn:restsip:problem:forbidden-target");
        // The refusal names no address or port.
        let detail = body["detail"].as_str().unwrap();
        assert!(
            !detail.contains(&port) && !detail.contains("127."),
            "{detail}"
        );
    }
    // Nothing was created, and a public name is accepted (it is never reached here).
    assert_eq!(alice.get("/webhook").await.unwrap().body, json!([]));
    let (status, body) = create_hook(&alice, "https://hooks.example.com/h").await;
    assert_eq!(status, 201, "{body}");

    // With --allow-private-targets (the harness's default) every one of them is accepted.
    let open = Relay::start(&["--max-webhooks-per-user", "100"])
        .await
        .unwrap();
    let carol = open.user("carol@example.net").await.unwrap();
    for url in PRIVATE_URLS {
        let url = url.replace("{port}", &port);
        let (status, body) = create_hook(&carol, &url).await;
        assert_eq!(status, 201, "{url}: {body}");
    }
}

#[tokio::test]
async fn credentials_in_a_target_url_are_refused_and_never_sent() {
    let mut rx = Receiver::start().await.unwrap();
    let port = port_of(&rx);
    // Even where private targets are allowed.
    let relay = Relay::default().await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    for url in [
        format!("http://user:pw@127.0.0.1:{port}/hook"),
        format!("http://user@127.0.0.1:{port}/hook"),
        format!("http://:pw@127.0.0.1:{port}/hook"),
    ] {
        let (status, body) = create_hook(&alice, &url).await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["code"], "forbidden-target", "{url}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("credentials"),
            "{body}"
        );
    }
    assert!(rx.next_within(Duration::from_secs(1)).await.is_none());
}

#[tokio::test]
async fn stored_targets_are_checked_again_when_connecting() {
    let mut rx = Receiver::start().await.unwrap();
    let port = port_of(&rx);
    // Accepted while private targets are allowed, by name and by address.
    let mut relay = Relay::default().await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let mut ids = Vec::new();
    for url in [
        format!("http://localhost:{port}/hook"),
        format!("http://127.0.0.1:{port}/hook"),
    ] {
        let (status, body) = create_hook(&alice, &url).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    // Both deliver the login's state.
    let first = rx.next().await.unwrap();
    let second = rx.next().await.unwrap();
    assert!(first.accepted() && second.accepted());

    // The relay comes back without the permission: the stored webhooks resume, but the guard
    // refuses their targets when connecting (the name is resolved again, to loopback).
    relay.restart_with(STRICT).await.unwrap();
    alice.login(json!({})).await.unwrap();
    for id in &ids {
        let view = until(&alice, &format!("/webhook/{id}"), |_, b| {
            b["last_error"].is_string()
        })
        .await;
        assert_eq!(view["last_error"], "target not allowed", "{view}");
    }
    assert!(rx.next_within(Duration::from_secs(1)).await.is_none());
}

#[tokio::test]
async fn failed_deliveries_say_little() {
    // A port nothing listens on: connection refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let relay = Relay::start(&["--webhook-timeout", "1"]).await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let (_, body) = create_hook(&alice, &format!("http://127.0.0.1:{closed}/hook")).await;
    let id = body["id"].as_str().unwrap();
    let view = until(&alice, &format!("/webhook/{id}"), |_, b| {
        b["last_error"].is_string()
    })
    .await;
    assert_eq!(view["last_error"], "could not connect", "{view}");
}

/// A SOAP request envelope.
const ENVELOPE: &str =
    "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\">\
    <SOAP-ENV:Body><m:GetLastTradePrice xmlns:m=\"Some-URI\"><symbol>DIS</symbol>\
    </m:GetLastTradePrice></SOAP-ENV:Body></SOAP-ENV:Envelope>";

async fn service(client: &Client, request: Value) -> (u16, Value, Duration) {
    let mut body = json!({"body": ENVELOPE});
    if let (Some(body), Some(request)) = (body.as_object_mut(), request.as_object()) {
        body.extend(request.clone());
    }
    let started = Instant::now();
    let res = client
        .builder("POST", "/service")
        .json(&body)
        .timeout(Duration::from_secs(90))
        .send()
        .await
        .unwrap();
    let reply = restsip_e2e::read(res).await.unwrap();
    (reply.status, reply.body, started.elapsed())
}

#[tokio::test]
async fn post_service_to_private_destinations_is_refused() {
    let relay = Relay::start(STRICT).await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let own = relay.sip.unwrap();
    let own_uri = format!("sip:{own}");
    for request in [
        json!({"uri": own_uri}),
        json!({"uri": "sip:svc@127.0.0.1"}),
        json!({"uri": "sip:svc@127.1:5060", "transport": "tcp"}),
        json!({"uri": "sip:svc@2130706433"}),
        json!({"uri": "sip:svc@0x7f.1"}),
        json!({"uri": "sip:svc@localhost"}),
        json!({"uri": "sip:svc@0.0.0.0"}),
        json!({"uri": "sip:svc@[::1]"}),
        json!({"uri": "sip:svc@[::ffff:127.0.0.1]"}),
        json!({"uri": "sip:svc@169.254.169.254"}),
        json!({"uri": "sip:svc@10.0.0.1"}),
        json!({"uri": "sip:svc@192.168.0.1:5080"}),
        json!({"uri": "sip:svc@[fc00::1]"}),
        // A public Request-URI through a private proxy.
        json!({"uri": "sip:svc@example.com", "proxy": "sip:127.0.0.1"}),
    ] {
        let (status, body, _) = service(&alice, request.clone()).await;
        assert_eq!(status, 422, "{request}: {body}");
        assert_eq!(body["code"], "forbidden-target", "{request}: {body}");
    }
    // Credentials in a SIP URI are not sent on, whatever the address.
    let open = Relay::default().await.unwrap();
    let bob = open.user("bob@example.net").await.unwrap();
    let (status, body, _) = service(&bob, json!({"uri": "sip:svc:pw@127.0.0.1:9"})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "forbidden-target", "{body}");
    // Allowed, the relay's own address answers (its built-in services).
    let (status, body, _) =
        service(&bob, json!({"uri": format!("sip:{}", open.sip.unwrap())})).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn post_service_failures_look_alike_and_take_as_long() {
    let relay = Relay::default().await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    // Nothing listens: the connection is refused at once.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // Something listens and hangs up at once (not SIP).
    let hangup = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hangup_port = hangup.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((conn, _)) = hangup.accept().await {
            drop(conn);
        }
    });
    // Something listens and never answers (as a filtering firewall would look).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    let tcp = |port: u16| json!({"uri": format!("sip:svc@127.0.0.1:{port}"), "transport": "tcp"});
    let (a, b, c, d) = tokio::join!(
        service(&alice, tcp(closed)),
        service(&alice, tcp(hangup_port)),
        service(&alice, tcp(silent_port)),
        service(
            &alice,
            json!({"uri": format!("sip:svc@127.0.0.1:{closed}")})
        ),
    );
    for (status, body, took) in [&a, &b, &c, &d] {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body, &a.1, "every failure reads the same");
        assert_eq!(body["outcome"], "failed", "{body}");
        assert_eq!(body["status"], 408, "{body}");
        // The relay holds every unanswered SERVICE for the transaction's full 32 s: a refusal
        // is not told from silence by the time it takes.
        assert!(*took >= Duration::from_secs(32), "{took:?} {body}");
    }
}

/// The next datagram on `sink` within `wait`, as text.
async fn datagram(sink: &tokio::net::UdpSocket, wait: Duration) -> Option<String> {
    let mut buf = vec![0u8; 65_536];
    let (n, _) = tokio::time::timeout(wait, sink.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Every SIP target a web user names goes through the guard or nowhere: `POST /service` to a
/// private `sip:` URI is refused (and with `--allow-private-targets` reaches the test's
/// socket, which shows the socket hears what comes); a login's `sip:` contact is a label the
/// relay never sends SIP to (a SEND to that login is queued for its stream); a SEND or call
/// to an address with no account here goes to the configured upstream server only (a
/// setting, not checked), else is `404`, never to the address's own host.
#[tokio::test]
async fn a_web_users_sip_targets_go_through_the_guard_or_nowhere() {
    let sink = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = sink.local_addr().unwrap().port();
    let target = format!("sip:svc@127.0.0.1:{port}");
    let quiet = Duration::from_millis(700);

    for (args, allowed) in [(STRICT, false), (&[][..], true)] {
        let relay = Relay::start(args).await.unwrap();
        let alice = relay.user("alice@example.net").await.unwrap();
        let bob = relay.user("bob@example.net").await.unwrap();

        // A web login whose contact names the sink: SENDs to it are queued, never SIP.
        let login = alice
            .request(
                "POST",
                "/login/alice@example.net",
                Some(json!({"contact": target})),
            )
            .await
            .unwrap();
        assert_eq!(login.status, 201, "{}", login.body);
        for command in [
            json!({"command": "im", "text": "hi"}),
            json!({"command": "invite", "id": 1}),
        ] {
            let sent = bob
                .request("SEND", "/login/alice@example.net", Some(command.clone()))
                .await
                .unwrap();
            assert!(sent.status < 300, "{command}: {}", sent.body);
            assert_eq!(datagram(&sink, quiet).await, None, "{command}");
        }

        // An address with no account (and no upstream server): 404, nothing sent.
        for command in [
            json!({"command": "im", "text": "hi"}),
            json!({"command": "invite", "id": 2}),
        ] {
            let sent = bob
                .request("SEND", "/login/svc@127.0.0.1", Some(command.clone()))
                .await
                .unwrap();
            assert_eq!(sent.status, 404, "{command}: {}", sent.body);
        }
        assert_eq!(datagram(&sink, quiet).await, None);

        // Last (over UDP the SERVICE is retransmitted for a while).
        if allowed {
            // The sink does not answer: the SERVICE is seen, then the request given up.
            let alice = alice.clone();
            let uri = target.clone();
            let pending = tokio::spawn(async move { service(&alice, json!({"uri": uri})).await });
            let got = datagram(&sink, restsip_e2e::WAIT).await;
            assert!(
                got.as_deref()
                    .is_some_and(|m| m.starts_with(&format!("SERVICE {target} "))),
                "allowed, the SERVICE reaches the sink: {got:?}"
            );
            pending.abort();
        } else {
            let (status, body, _) = service(&alice, json!({"uri": target})).await;
            assert_eq!(status, 422, "{body}");
            assert_eq!(body["code"], "forbidden-target", "{body}");
            assert_eq!(datagram(&sink, quiet).await, None);
        }
    }
    // The relays are gone: what they retransmitted is drained.
    while datagram(&sink, quiet).await.is_some() {}

    // With an upstream server, a SEND to such an address goes to it, the operator's setting.
    let upstream = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let route = format!("sip:{}", upstream.local_addr().unwrap());
    let relay = Relay::start(&["--allow-private-targets=false", "--sip-upstream", &route])
        .await
        .unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    let sending = tokio::spawn(async move {
        bob.request(
            "SEND",
            "/login/svc@127.0.0.1",
            Some(json!({"command": "im", "text": "via upstream"})),
        )
        .await
    });
    let got = datagram(&upstream, restsip_e2e::WAIT).await;
    assert!(
        got.as_deref()
            .is_some_and(|m| m.starts_with("MESSAGE sip:svc@127.0.0.1 ")),
        "{got:?}"
    );
    assert_eq!(datagram(&sink, quiet).await, None);
    sending.abort();
}
