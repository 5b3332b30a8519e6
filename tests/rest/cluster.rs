//! Several relays (`--cluster nats://… --node NAME`): two real relay processes sharing one store
//! and the NATS server on 127.0.0.1:4222, each test in a cluster of its own name. A change made
//! on one relay reaches watchers, WebSockets and webhooks on the other, once; a stream resumes
//! on the other relay without loss or duplicates.

use std::time::Duration;

use restsip_e2e::cluster::{call, join, on, Cluster};
use restsip_e2e::metrics::Scrape;
use restsip_e2e::receiver::Receiver;
use restsip_e2e::{Client, EventStream, Relay};
use restsip_protocol::EventKind;
use serde_json::json;

/// How long "nothing more arrives" is watched for.
const QUIET: Duration = Duration::from_millis(1500);

/// Two relays (nodes `a` and `b`, no SIP) of a new cluster sharing one database.
async fn pair(test: &str) -> (Relay, Relay, Cluster) {
    let mut cluster = Cluster::start(test, &["a", "b"], &["--sip", "off"])
        .await
        .unwrap();
    let b = cluster.relays.pop().unwrap();
    let a = cluster.relays.pop().unwrap();
    (a, b, cluster)
}

async fn quiet(stream: &mut EventStream) {
    let more = stream.next_within(QUIET).await.unwrap();
    assert!(more.is_none(), "a second event: {more:?}");
}

#[tokio::test]
async fn a_watcher_on_one_relay_sees_a_call_change_made_on_the_other_once() {
    let (a, b, _db) = pair("watch").await;
    let host_a = a.user("host@example.net").await.unwrap();
    let host_b = on(&b, "host@example.net");
    let login = host_b.login(json!({})).await.unwrap();
    let url = call(&host_b).await;
    let mut watch = host_a.sse(&url, None).await.unwrap();
    let state = watch.next().await.unwrap();
    assert_eq!(state.kind, EventKind::State);
    assert_eq!(state.data["subject"], "cluster");

    join(&host_b, &url, &format!("/login/host@example.net/{login}")).await;
    let added = watch.next().await.unwrap();
    assert_eq!(added.kind, EventKind::Added);
    assert_eq!(added.data["user"], "host@example.net");
    assert!(added.id > state.id, "{} after {}", added.id, state.id);
    quiet(&mut watch).await;
}

#[tokio::test]
async fn a_send_on_one_relay_reaches_a_websocket_on_the_other_once() {
    let (a, b, _db) = pair("send").await;
    let bob = a.user("bob@example.net").await.unwrap();
    b.user("alice@example.net").await.unwrap();
    let alice = on(&b, "alice@example.net");
    let contact = bob.login(json!({})).await.unwrap();
    let inbox = format!("/login/bob@example.net/{contact}");
    let mut ws = bob.ws().await.unwrap();
    ws.send(json!({"op": "subscribe", "path": inbox}))
        .await
        .unwrap();
    assert_eq!(ws.next_event().await.unwrap().kind, EventKind::State);

    let receipt = alice
        .request(
            "SEND",
            "/login/bob@example.net",
            Some(json!({"command": "im", "text": "across"})),
        )
        .await
        .unwrap();
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    let msg = ws.next_event().await.unwrap();
    assert_eq!(
        (msg.resource.as_str(), msg.kind),
        (inbox.as_str(), EventKind::Message)
    );
    assert_eq!(msg.data["from"], "alice@example.net");
    assert_eq!(msg.data["body"]["text"], "across");
    assert_eq!(msg.data["id"], receipt.body["id"]);
    let again = tokio::time::timeout(QUIET, ws.next()).await;
    assert!(again.is_err(), "a second frame: {again:?}");

    // Claimed once for the cluster: a stream opened later on the sending relay gets nothing
    // of it again.
    let mut later = on(&b, "bob@example.net").sse(&inbox, None).await.unwrap();
    assert_eq!(later.next().await.unwrap().kind, EventKind::State);
    quiet(&mut later).await;
}

#[tokio::test]
async fn a_stream_resumes_on_the_other_relay_without_loss_or_duplicates() {
    let (a, b, _db) = pair("resume").await;
    let host_a = a.user("host@example.net").await.unwrap();
    let host_b = on(&b, "host@example.net");
    a.user("guest@example.net").await.unwrap();
    let guest_a = on(&a, "guest@example.net");
    let host_login = host_b.login(json!({})).await.unwrap();
    let guest_login = guest_a.login(json!({})).await.unwrap();
    let url = call(&host_a).await;
    let mut on_a = host_a.sse(&url, None).await.unwrap();
    assert_eq!(on_a.next().await.unwrap().kind, EventKind::State);
    // The guest watches on B: a change on A is made on B only after B has it (changes of one
    // resource racing on two relays within NATS's latency are not ordered: README).
    let mut guest_on_b = on(&b, "guest@example.net").sse(&url, None).await.unwrap();
    assert_eq!(guest_on_b.next().await.unwrap().kind, EventKind::State);

    // A change on B, seen on A.
    let host_p = join(
        &host_b,
        &url,
        &format!("/login/host@example.net/{host_login}"),
    )
    .await;
    let first = on_a.next().await.unwrap();
    assert_eq!(
        (first.kind, first.data["user"].as_str()),
        (EventKind::Added, Some("host@example.net"))
    );
    drop(on_a);

    // While the stream is away: a change on A, then one on B.
    let guest_p = join(
        &guest_a,
        &url,
        &format!("/login/guest@example.net/{guest_login}"),
    )
    .await;
    assert_eq!(guest_on_b.next().await.unwrap().kind, EventKind::Added);
    assert_eq!(guest_on_b.next().await.unwrap().kind, EventKind::Added);
    let res = host_b
        .request("PUT", &host_p, Some(json!({"session": "v=0 again"})))
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.body);

    // It comes back on B with the last id it saw: exactly what it missed, in order.
    let mut on_b = host_b.sse(&url, Some(first.id)).await.unwrap();
    let missed = [on_b.next().await.unwrap(), on_b.next().await.unwrap()];
    assert_eq!(
        (missed[0].kind, missed[0].data["url"].as_str()),
        (EventKind::Added, Some(guest_p.as_str())),
        "{missed:?}"
    );
    assert_eq!(
        (missed[1].kind, missed[1].data["session"].as_str()),
        (EventKind::Updated, Some("v=0 again")),
        "{missed:?}"
    );
    assert!(first.id < missed[0].id && missed[0].id < missed[1].id);
    quiet(&mut on_b).await;
}

/// A call of host's with a webhook on it, made on B, its first delivery (the state) received.
struct Hooked {
    receiver: Receiver,
    host_a: Client,
    host_b: Client,
    /// Host's login id.
    login: i64,
    /// The call's path.
    url: String,
}

async fn hooked_call(a: &Relay, b: &Relay) -> Hooked {
    let mut receiver = Receiver::start().await.unwrap();
    let host_a = a.user("host@example.net").await.unwrap();
    let host_b = on(b, "host@example.net");
    let login = host_a.login(json!({})).await.unwrap();
    let url = call(&host_a).await;
    let res = host_b
        .request(
            "POST",
            "/webhook",
            Some(json!({"url": receiver.url, "resource": url})),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 201, "{}", res.body);
    // Run by whichever relay leads: its first delivery is the state.
    let first = receiver.next_accepted().await.unwrap();
    assert_eq!(first.event.kind, EventKind::State);
    // Until the leader has committed that delivery (its outbox is empty again): a test that
    // freezes the leader must not catch it inside that write, which would hold the shared
    // SQLite file's write lock for as long as it is frozen.
    let hook = res.body["url"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while host_b.get(&hook).await.unwrap().body["queued"] != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first delivery is never acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Hooked {
        receiver,
        host_a,
        host_b,
        login,
        url,
    }
}

#[tokio::test]
async fn a_webhook_fires_once_for_two_relays() {
    let (a, b, _db) = pair("hook").await;
    let Hooked {
        mut receiver,
        host_a,
        host_b,
        login,
        url,
    } = hooked_call(&a, &b).await;

    // Changes made on either relay are delivered once each.
    join(&host_a, &url, &format!("/login/host@example.net/{login}")).await;
    let added = receiver.next_accepted().await.unwrap();
    assert_eq!(added.event.kind, EventKind::Added);
    host_b.request("DELETE", &url, None).await.unwrap();
    let gone = receiver.next_accepted().await.unwrap();
    assert_eq!(gone.event.kind, EventKind::Gone);
    let more = receiver.next_within(Duration::from_secs(3)).await;
    assert!(
        more.is_none(),
        "delivered again: {:?}",
        more.map(|d| d.event)
    );

    // One relay leads, and it made every POST: the other ran no webhook.
    let (ma, mb) = (
        Scrape::get(&a.url("/metrics")).await.unwrap(),
        Scrape::get(&b.url("/metrics")).await.unwrap(),
    );
    let leader = |m: &Scrape| m.sum("restsip_cluster_leader", &[]);
    let posts = |m: &Scrape| m.sum("restsip_webhook_deliveries_total", &[]);
    assert_eq!(leader(&ma) + leader(&mb), 1.0, "one leader");
    let (lead, other) = if leader(&ma) == 1.0 {
        (ma, mb)
    } else {
        (mb, ma)
    };
    assert_eq!((posts(&lead), posts(&other)), (3.0, 0.0));
}

/// Behind a load balancer without sticky sessions: every request of a user's session lands on
/// another of three relays, as a round-robin balancer sends them, and the session goes on as
/// on one relay.
#[tokio::test]
async fn three_relays_serve_a_session_whose_every_request_lands_on_another() {
    let cluster = Cluster::start("balanced", &["a", "b", "c"], &["--sip", "off"])
        .await
        .unwrap();
    let relays = &cluster.relays;
    // The balancer: request n goes to relay n mod 3.
    let next = std::cell::Cell::new(0usize);
    let as_user = |email: &str| {
        let n = next.get();
        next.set(n + 1);
        on(&relays[n % relays.len()], email)
    };
    let anyone = relays[0].anonymous();
    for email in ["kundan@example.net", "alok@example.net"] {
        let res = anyone
            .request(
                "POST",
                "/user",
                Some(json!({"email": email, "password": format!("pw-{email}")})),
            )
            .await
            .unwrap();
        assert_eq!(res.status, 201, "{}", res.body);
    }

    // Alok logs in on one relay and streams what is sent to him from another (one long
    // connection: the balancer keeps it where it landed).
    let alok_login = as_user("alok@example.net").login(json!({})).await.unwrap();
    let inbox = format!("/login/alok@example.net/{alok_login}");
    let mut alok = as_user("alok@example.net").sse(&inbox, None).await.unwrap();
    assert_eq!(alok.next().await.unwrap().kind, EventKind::State);

    // Kundan: log in, see Alok online, make a call and join it, invite Alok — each on the
    // next relay.
    let kundan_login = as_user("kundan@example.net")
        .login(json!({}))
        .await
        .unwrap();
    let online = as_user("kundan@example.net")
        .get("/login/alok@example.net")
        .await
        .unwrap();
    assert_eq!(online.status, 200, "{}", online.body);
    assert!(online.body.to_string().contains(&inbox), "{}", online.body);
    let url = call(&as_user("kundan@example.net")).await;
    join(
        &as_user("kundan@example.net"),
        &url,
        &format!("/login/kundan@example.net/{kundan_login}"),
    )
    .await;
    let invite = as_user("kundan@example.net")
        .request(
            "SEND",
            "/login/alok@example.net",
            Some(json!({"command": "invite", "url": url, "id": 567})),
        )
        .await
        .unwrap();
    assert_eq!(invite.status, 200, "{}", invite.body);
    let got = alok.next().await.unwrap();
    assert_eq!(got.kind, EventKind::Message, "{got:?}");
    assert_eq!(got.data["from"], "kundan@example.net");
    assert_eq!(got.data["body"]["url"], url.as_str());
    quiet(&mut alok).await;

    // Alok joins on yet another relay; Kundan sees both participants from the next one.
    join(
        &as_user("alok@example.net"),
        &url,
        &format!("/login/alok@example.net/{alok_login}"),
    )
    .await;
    let state = as_user("kundan@example.net").get(&url).await.unwrap();
    assert_eq!(state.status, 200, "{}", state.body);
    let text = state.body.to_string();
    assert!(
        text.contains("kundan@example.net") && text.contains("alok@example.net"),
        "{text}"
    );

    // A voice mail left on one relay is read and deleted on others.
    let left = as_user("kundan@example.net")
        .request(
            "POST",
            "/user/alok@example.net/message",
            Some(json!({"url": "rtsp://mail.example.net/1"})),
        )
        .await
        .unwrap();
    assert_eq!(left.status, 201, "{}", left.body);
    let mail = as_user("alok@example.net")
        .get("/user/alok@example.net/message")
        .await
        .unwrap();
    assert!(
        mail.body.to_string().contains("rtsp://mail.example.net/1"),
        "{}",
        mail.body
    );
    let gone = as_user("alok@example.net")
        .request(
            "DELETE",
            &format!("/user/alok@example.net/message/{}", left.body["id"]),
            None,
        )
        .await
        .unwrap();
    assert!(gone.status == 200 || gone.status == 204, "{}", gone.body);

    // Logging out on one relay is seen on another at once.
    let out = as_user("alok@example.net")
        .request("DELETE", &inbox, None)
        .await
        .unwrap();
    assert!(out.status == 200 || out.status == 204, "{}", out.body);
    let after = as_user("kundan@example.net")
        .get("/login/alok@example.net")
        .await
        .unwrap();
    assert!(!after.body.to_string().contains(&inbox), "{}", after.body);
}

/// Sends `signal` (`STOP`, `CONT`) to `relay`'s process.
fn signal(relay: &Relay, signal: &str) {
    let pid = relay.pid().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// A leader frozen past its lease (SIGSTOP: a VM paused, a machine swapping) wakes up to find
/// another relay leading: the events made meanwhile are delivered once, by the new leader, and
/// the old one neither queues nor POSTs them again.
#[tokio::test]
async fn a_leader_frozen_past_its_lease_wakes_up_without_delivering_again() {
    let (a, b, _db) = pair("frozen").await;
    let Hooked {
        mut receiver,
        host_a,
        host_b,
        login,
        url,
    } = hooked_call(&a, &b).await;
    let leads = |r: &Relay| {
        let url = r.url("/metrics");
        async move {
            Scrape::get(&url)
                .await
                .unwrap()
                .sum("restsip_cluster_leader", &[])
                == 1.0
        }
    };
    let (leader, other, other_client) = if leads(&a).await {
        (&a, &b, &host_b)
    } else {
        (&b, &a, &host_a)
    };

    // Frozen for longer than the lease (3 s): the other relay takes over and delivers what
    // is made meanwhile.
    signal(leader, "STOP");
    join(
        other_client,
        &url,
        &format!("/login/host@example.net/{login}"),
    )
    .await;
    let added = receiver.next_accepted().await;
    signal(leader, "CONT");
    assert_eq!(added.unwrap().event.kind, EventKind::Added);
    assert!(leads(other).await, "the other relay leads now");

    // Woken up, the old leader has the event from NATS too: it must not go out again.
    let res = other_client.request("DELETE", &url, None).await.unwrap();
    assert!(res.status == 200 || res.status == 204, "{}", res.body);
    assert_eq!(
        receiver.next_accepted().await.unwrap().event.kind,
        EventKind::Gone
    );
    let more = receiver.next_within(Duration::from_secs(4)).await;
    assert!(
        more.is_none(),
        "delivered again: {:?}",
        more.map(|d| d.event)
    );
    assert!(!leads(leader).await, "the woken relay does not lead");
}
