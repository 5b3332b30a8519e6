//! A relay killed under load (issue 20 item 5): two relays of a cluster (one SQLite file, NATS),
//! SENDs to bob and changes of a call made at both in a loop while bob streams his contact and
//! the call from relay A; A is killed with SIGKILL (`kill -9`) mid-load, the streams come back
//! on B with `Last-Event-ID`, and nothing acknowledged is lost or handed over twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use restsip_e2e::cluster::{call, join, on, Cluster};
use restsip_e2e::{Client, EventStream, Relay};
use restsip_protocol::{Event, EventKind};
use serde_json::json;

const BOB: &str = "bob@example.net";
/// How long "nothing more arrives" is watched for.
const QUIET: Duration = Duration::from_millis(1500);
/// Pause between two changes of the call: fewer changes in the test than a resource's history
/// holds (256), so a resumed stream must get exactly what it missed, never a fresh `state`.
const CHANGE_EVERY: Duration = Duration::from_millis(20);
/// Pause between two SENDs of one sender.
const SEND_EVERY: Duration = Duration::from_millis(5);

/// What a load loop did: what was acknowledged, and any answer that was neither a success nor
/// a dead relay's broken connection.
#[derive(Default, Debug)]
struct Load {
    acked: Vec<String>,
    refused: Vec<String>,
    held_back: usize,
}

/// SENDs `{label}-{n}` to every contact of bob from `client` until `stop`.
async fn sends(client: Client, label: &'static str, stop: Arc<AtomicBool>) -> Load {
    let mut load = Load::default();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let text = format!("{label}-{n}");
        let body = json!({"command": "im", "text": text});
        match client
            .request("SEND", &format!("/login/{BOB}"), Some(body))
            .await
        {
            Ok(res) if res.status == 200 => load.acked.push(text),
            // Bob's queue is full while no stream takes what is sent (the stream moving from
            // A to B): refused clearly, not acknowledged.
            Ok(res) if res.status == 429 => load.held_back += 1,
            Ok(res) => load
                .refused
                .push(format!("{text}: {} {}", res.status, res.body)),
            // The relay is gone (killed): its clients see broken connections.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
        tokio::time::sleep(SEND_EVERY).await;
    }
    load
}

/// Changes the session of participant `p` to `v={k}`, k = 1, 2, …, alternately at each of
/// `clients`, one change after the other, until `stop`.
async fn changes(clients: Vec<Client>, p: String, stop: Arc<AtomicBool>) -> Load {
    let mut load = Load::default();
    let mut k = 0;
    while !stop.load(Ordering::Relaxed) {
        k += 1;
        let session = format!("v={k}");
        let client = &clients[k % clients.len()];
        match client
            .request("PUT", &p, Some(json!({"session": session})))
            .await
        {
            Ok(res) if res.status == 200 => load.acked.push(session),
            Ok(res) => load
                .refused
                .push(format!("{session}: {} {}", res.status, res.body)),
            Err(_) => {}
        }
        tokio::time::sleep(CHANGE_EVERY).await;
    }
    load
}

/// Every event of `stream` until it breaks (its relay is killed).
async fn until_broken(mut stream: EventStream) -> Vec<Event> {
    let mut events = Vec::new();
    while let Ok(event) = stream.next().await {
        events.push(event);
    }
    events
}

/// Every event of `stream` until it stays quiet for [`QUIET`].
async fn until_quiet(stream: &mut EventStream) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(event) = stream.next_within(QUIET).await.unwrap() {
        events.push(event);
    }
    events
}

#[tokio::test]
async fn a_relay_killed_under_load_loses_no_acknowledged_send_change_or_login() {
    let mut cluster = Cluster::start("failover", &["a", "b"], &["--sip", "off"])
        .await
        .unwrap();
    let b = cluster.relays.pop().unwrap();
    let mut a = cluster.relays.pop().unwrap();
    let bob_a = a.user(BOB).await.unwrap();
    let bob_b = on(&b, BOB);
    a.user("alice@example.net").await.unwrap();
    a.user("host@example.net").await.unwrap();
    let alice = |relay: &Relay| on(relay, "alice@example.net");
    let host = |relay: &Relay| on(relay, "host@example.net");

    // Registered at A: bob's login, streamed at A; a call, streamed at A.
    let contact = bob_a.login(json!({})).await.unwrap();
    let inbox = format!("/login/{BOB}/{contact}");
    let host_login = host(&a).login(json!({})).await.unwrap();
    let url = call(&host(&a)).await;
    let p = join(
        &host(&a),
        &url,
        &format!("/login/host@example.net/{host_login}"),
    )
    .await;
    let mut inbox_a = bob_a.sse(&inbox, None).await.unwrap();
    assert_eq!(inbox_a.next().await.unwrap().kind, EventKind::State);
    let mut call_a = host(&a).sse(&url, None).await.unwrap();
    assert_eq!(call_a.next().await.unwrap().kind, EventKind::State);
    let inbox_a = tokio::spawn(until_broken(inbox_a));
    let call_a = tokio::spawn(until_broken(call_a));

    // Load at both relays.
    let stop = Arc::new(AtomicBool::new(false));
    let load = [
        tokio::spawn(sends(alice(&a), "at-a", stop.clone())),
        tokio::spawn(sends(alice(&b), "at-b", stop.clone())),
        tokio::spawn(changes(vec![host(&a), host(&b)], p, stop.clone())),
    ];
    tokio::time::sleep(Duration::from_millis(1500)).await;

    a.kill().await.unwrap();
    let before = (inbox_a.await.unwrap(), call_a.await.unwrap());
    let last = |events: &[Event]| events.last().map(|e| e.id);
    assert!(
        before.0.len() > 10 && before.1.len() > 10,
        "too little load before the kill: {} messages, {} call changes",
        before.0.len(),
        before.1.len()
    );

    // The streams come back at B with the last id they saw, as an EventSource does.
    let mut inbox_b = bob_b.sse(&inbox, last(&before.0)).await.unwrap();
    let mut call_b = host(&b).sse(&url, last(&before.1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let mut loads = Vec::new();
    for task in load {
        loads.push(task.await.unwrap());
    }
    let (after_inbox, after_call) =
        tokio::join!(until_quiet(&mut inbox_b), until_quiet(&mut call_b));

    for load in &loads {
        assert!(load.refused.is_empty(), "refused: {:?}", &load.refused[..1]);
    }
    // At B, SENDs went on across the kill.
    assert!(
        loads[1].acked.len() > 20,
        "{} acknowledged, {} held back",
        loads[1].acked.len(),
        loads[1].held_back
    );

    // Every acknowledged SEND reached bob exactly once, before the kill or after the resume;
    // nothing reached him twice.
    assert_eq!(after_inbox.first().map(|e| e.kind), Some(EventKind::State));
    let mut got: HashMap<String, usize> = HashMap::new();
    for event in before.0.iter().chain(&after_inbox[1..]) {
        assert_eq!(event.kind, EventKind::Message, "{event:?}");
        let text = event.data["body"]["text"].as_str().unwrap_or_default();
        *got.entry(text.to_owned()).or_default() += 1;
    }
    let twice: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "handed over more than once: {twice:?}");
    let lost: Vec<_> = loads[..2]
        .iter()
        .flat_map(|l| &l.acked)
        .filter(|t| !got.contains_key(*t))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged but never handed over: {lost:?}"
    );

    // The call's changes: in order, none twice, none acknowledged missing — unless a fresh
    // `state` after it shows it (a change made at one relay that reached the other after a
    // later one: see README). The resumed stream got what it missed (the history reaches
    // back).
    let seen: Vec<(u64, EventKind, u64)> = before
        .1
        .iter()
        .chain(&after_call)
        .map(|e| {
            let session = match e.kind {
                EventKind::Updated => &e.data["session"],
                EventKind::State => &e.data["children"][0]["session"],
                _ => panic!("{e:?}"),
            };
            let s = session.as_str().unwrap_or_default();
            let k = s.strip_prefix("v=").and_then(|k| k.parse().ok()).unwrap();
            (k, e.kind, e.id)
        })
        .collect();
    for w in seen.windows(2) {
        let ((k0, _, id0), (k1, kind, id1)) = (w[0], w[1]);
        // A state may already show the change its next event brings (read after it).
        let ordered = match (w[0].1, kind) {
            (_, EventKind::State) => k0 <= k1 && id0 <= id1,
            (EventKind::State, _) => k0 <= k1 && id0 < id1,
            _ => k0 < k1 && id0 < id1,
        };
        assert!(ordered, "out of order or twice: {seen:?}");
    }
    let changes = &loads[2];
    for k in changes
        .acked
        .iter()
        .filter_map(|s| s.strip_prefix("v=").and_then(|k| k.parse::<u64>().ok()))
    {
        // Its own event, or a state after everything before it (a state that shows it).
        let before_k = seen
            .iter()
            .rposition(|(v, _, _)| *v < k)
            .map_or(0, |i| i + 1);
        let shown = seen
            .iter()
            .any(|(v, kind, _)| *kind == EventKind::Updated && *v == k)
            || seen[before_k..]
                .iter()
                .any(|(v, kind, _)| *kind == EventKind::State && *v >= k);
        assert!(shown, "acknowledged change v={k} missing: {seen:?}");
    }

    // Bob's login, made at A, is listed at B.
    let logins = bob_b.get(&format!("/login/{BOB}")).await.unwrap();
    assert_eq!(logins.status, 200, "{}", logins.body);
    assert!(logins.body.to_string().contains(&inbox), "{}", logins.body);
}
