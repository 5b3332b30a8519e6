//! A relay cut from the NATS server (a network failure, NATS restarting) gets the events the
//! other relays made meanwhile once it is back (the cluster's JetStream stream): relay B reaches
//! NATS through a [`Link`] the test cuts and restores. And the relays make that stream again
//! when it is gone.

use std::time::Duration;

use restsip_e2e::cluster::{call, join, on, Cluster, Link};
use restsip_protocol::EventKind;
use serde_json::json;

/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(1500);
/// How long B may take to be back after the link is restored (its reconnect backoff grows to
/// 4 s while the link refuses it).
const BACK: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_relay_cut_from_nats_gets_the_changes_made_meanwhile_in_order_once() {
    let cluster = Cluster::start("cut", &["a"], &["--sip", "off"])
        .await
        .unwrap();
    let a = &cluster.relays[0];
    let link = Link::open().await.unwrap();
    let b = cluster
        .join_via(&link.url, "b", &["--sip", "off"])
        .await
        .unwrap();
    let host_a = a.user("host@example.net").await.unwrap();
    let url = call(&host_a).await;
    let mut logins = Vec::new();
    for _ in 0..3 {
        logins.push(host_a.login(json!({})).await.unwrap());
    }
    let mut watch = on(&b, "host@example.net").sse(&url, None).await.unwrap();
    assert_eq!(watch.next().await.unwrap().kind, EventKind::State);

    // Before the cut, a change at A reaches B (the link works).
    let first = join(
        &host_a,
        &url,
        &format!("/login/host@example.net/{}", logins[0]),
    )
    .await;
    let seen = watch.next().await.unwrap();
    assert_eq!(
        (seen.kind, seen.data["url"].as_str()),
        (EventKind::Added, Some(first.as_str()))
    );

    link.cut();
    let mut made = Vec::new();
    for login in &logins[1..] {
        made.push(join(&host_a, &url, &format!("/login/host@example.net/{login}")).await);
    }
    let part = made[0].clone();
    let left = host_a.request("DELETE", &part, None).await.unwrap();
    assert!(left.status < 300, "{} {}", left.status, left.body);
    // Cut: B hears none of it.
    let early = watch.next_within(QUIET).await.unwrap();
    assert!(early.is_none(), "an event while cut: {early:?}");

    link.restore();
    let mut got = Vec::new();
    for _ in 0..3 {
        let event = watch
            .next_within(BACK)
            .await
            .unwrap()
            .expect("the changes made while B was cut, after it is back");
        got.push((event.kind, event.data["url"].as_str().map(str::to_owned)));
    }
    assert_eq!(
        got,
        vec![
            (EventKind::Added, Some(made[0].clone())),
            (EventKind::Added, Some(made[1].clone())),
            (EventKind::Removed, Some(part)),
        ]
    );
    let again = watch.next_within(QUIET).await.unwrap();
    assert!(again.is_none(), "a repeat: {again:?}");

    // And B is live again: a later change arrives as usual.
    let last = join(
        &host_a,
        &url,
        &format!("/login/host@example.net/{}", logins[1]),
    )
    .await;
    let seen = watch.next().await.unwrap();
    assert_eq!(
        (seen.kind, seen.data["url"].as_str()),
        (EventKind::Added, Some(last.as_str()))
    );
}

#[tokio::test]
async fn relays_make_the_clusters_stream_again_when_it_is_deleted_and_read_it_from_its_start() {
    let cluster = Cluster::start("restream", &["a", "b"], &["--sip", "off"])
        .await
        .unwrap();
    let (a, b) = (&cluster.relays[0], &cluster.relays[1]);
    let host_a = a.user("host@example.net").await.unwrap();
    let url = call(&host_a).await;
    let mut logins = Vec::new();
    for _ in 0..4 {
        logins.push(host_a.login(json!({})).await.unwrap());
    }
    let mut watch = on(b, "host@example.net").sse(&url, None).await.unwrap();
    assert_eq!(watch.next().await.unwrap().kind, EventKind::State);
    // Some events in the stream first, so its sequences are past 1 when it goes.
    for login in &logins[..2] {
        let part = join(&host_a, &url, &format!("/login/host@example.net/{login}")).await;
        let seen = watch.next().await.unwrap();
        assert_eq!(seen.data["url"].as_str(), Some(part.as_str()));
    }

    let js = async_nats::jetstream::new(
        async_nats::connect(restsip_e2e::cluster::NATS)
            .await
            .unwrap(),
    );
    let name = format!("RESTSIP_{}", cluster.name);
    js.delete_stream(&name).await.unwrap();
    // The relays' consumers hear no heartbeat for 10 s, then make the stream and themselves
    // again (one consumer per relay); the new stream's sequences start at 1.
    let deadline = tokio::time::Instant::now() + BACK;
    loop {
        if let Ok(mut stream) = js.get_stream(&name).await {
            if stream.info().await.unwrap().state.consumer_count >= 2 {
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no stream again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut made = Vec::new();
    for login in &logins[2..] {
        made.push(join(&host_a, &url, &format!("/login/host@example.net/{login}")).await);
    }
    for part in &made {
        let seen = watch.next().await.unwrap();
        assert_eq!(
            (seen.kind, seen.data["url"].as_str()),
            (EventKind::Added, Some(part.as_str()))
        );
    }
    let again = watch.next_within(QUIET).await.unwrap();
    assert!(again.is_none(), "a repeat: {again:?}");
}
