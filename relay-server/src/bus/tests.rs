use super::*;
use serde_json::json;

#[test]
fn ids_increase_and_start_above_the_floor() {
    let far = u64::MAX / 4;
    let bus = Bus::new(far, 8, 8);
    let a = bus.publish(&Topic::Call("c".into()), EventKind::Added, json!(1), None);
    let b = bus.next_id();
    assert!(a > far && b > a);
}

#[test]
fn a_resume_gets_exactly_the_missed_events() {
    let bus = Bus::new(0, 8, 8);
    let topic = Topic::Login("a@x".into());
    let first = bus.publish(&topic, EventKind::Added, json!(1), None);
    let second = bus.publish(&topic, EventKind::Removed, json!(2), None);
    let sub = bus.subscribe(&topic, Some(first));
    let missed = sub.missed.expect("history covers it");
    assert_eq!(
        missed.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![second]
    );
}

#[test]
fn a_resume_older_than_the_history_asks_for_full_state() {
    let bus = Bus::new(0, 2, 8);
    let topic = Topic::Login("a@x".into());
    let first = bus.publish(&topic, EventKind::Added, json!(1), None);
    for n in 0..3 {
        bus.publish(&topic, EventKind::Updated, json!(n), None);
    }
    assert!(bus.subscribe(&topic, Some(first)).missed.is_none());
}

#[tokio::test]
async fn subscribers_receive_live_events_and_others_do_not() {
    let bus = Bus::new(0, 8, 8);
    let topic = Topic::Call("c1".into());
    let mut sub = bus.subscribe(&topic, None);
    assert!(bus.is_watched(&topic));
    bus.publish(
        &Topic::Call("other".into()),
        EventKind::Added,
        json!("x"),
        None,
    );
    let id = bus.publish(&topic, EventKind::Added, json!("y"), None);
    let got = sub.receiver.recv().await.expect("event");
    assert_eq!(got.id, id);
    assert_eq!(got.data, json!("y"));
}

#[test]
fn a_resume_from_before_the_channel_existed_asks_for_full_state() {
    // As after a restart, or a sweep: ids from before are unknown to this channel.
    let bus = Bus::new(0, 8, 8);
    let topic = Topic::Call("c".into());
    let old = bus.next_id();
    bus.next_id();
    assert!(bus.subscribe(&topic, Some(old)).missed.is_none());
    let now = bus.last_id();
    let sub = bus.subscribe(&topic, Some(now));
    assert_eq!(sub.missed.map(|m| m.len()), Some(0));
    let id = bus.publish(&topic, EventKind::Added, json!(1), None);
    let sub = bus.subscribe(&topic, Some(now));
    assert_eq!(
        sub.missed
            .map(|m| m.iter().map(|e| e.id).collect::<Vec<_>>()),
        Some(vec![id])
    );
}

#[test]
fn lazy_events_are_built_only_for_watched_or_recently_watched_topics() {
    let bus = Bus::new(0, 8, 8);
    let topic = Topic::Login("a@x".into());
    let before = bus.last_id();
    let id = bus.publish_lazy(&topic, EventKind::Updated, || {
        unreachable!("nobody watches")
    });
    assert!(id > before);
    // A resume from before the unbuilt event must start from the full state.
    assert!(bus.subscribe(&topic, Some(before)).missed.is_none());
    let sub = bus.subscribe(&topic, None);
    let id = bus.publish_lazy(&topic, EventKind::Updated, || (json!(1), None));
    drop(sub);
    // Watched a moment ago: still built, and a resume gets it.
    let later = bus.publish_lazy(&topic, EventKind::Updated, || (json!(2), None));
    let missed = bus.subscribe(&topic, Some(id - 1)).missed.expect("history");
    assert_eq!(
        missed.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![id, later]
    );
}

#[test]
fn an_unbuilt_event_moves_the_history_floor() {
    let bus = Bus::new(0, 8, 8);
    let topic = Topic::Login("a@x".into());
    let first = bus.publish(&topic, EventKind::Added, json!(1), None);
    let skipped = bus.publish_lazy(&topic, EventKind::Updated, || unreachable!());
    assert!(bus.subscribe(&topic, Some(first)).missed.is_none());
    let sub = bus.subscribe(&topic, Some(skipped)).missed;
    assert_eq!(sub.map(|m| m.len()), Some(0));
}

#[test]
fn counters_drawn_through_two_relays_slots_never_meet() {
    let (a, b) = (
        IdSpace {
            slot: 0,
            stride: 64,
        },
        IdSpace {
            slot: 1,
            stride: 64,
        },
    );
    // Two relays' counters from the same start (or any starts) hand out distinct ids.
    let from_a: std::collections::HashSet<u64> = (500..1_500).map(|n| a.nth(n)).collect();
    assert_eq!(from_a.len(), 1_000);
    assert!((0..2_000).map(|n| b.nth(n)).all(|id| !from_a.contains(&id)));
    assert!((0..2_000).all(|n| b.nth(n) % 64 == 1));
    assert_eq!((a.nth(3), b.nth(3)), (192, 193));
    assert_eq!(IdSpace::ALONE.nth(41), 41);
    assert_eq!(b.nth(u64::MAX), u64::MAX);
}

#[test]
fn clustered_ids_are_in_the_relays_residue_above_the_clock_and_every_id_seen() {
    let space = IdSpace {
        slot: 5,
        stride: 64,
    };
    assert_eq!(space.above(0), 5);
    assert_eq!(space.above(5), 69);
    assert_eq!(space.above(68), 69);
    assert_eq!(IdSpace::ALONE.above(7), 8);
    let (a, b) = (
        Bus::with_ids(
            0,
            8,
            8,
            IdSpace {
                slot: 1,
                stride: 64,
            },
        ),
        Bus::with_ids(
            0,
            8,
            8,
            IdSpace {
                slot: 2,
                stride: 64,
            },
        ),
    );
    let before = clock_us();
    let x = a.next_id();
    assert!(x > before && x % 64 == 1);
    // b sees a's event far ahead (a clock ahead of its own): its next id is above it.
    let far = x + 1_000_000_000;
    b.apply_remote(
        &Topic::Call("c".into()),
        BusEvent {
            id: far,
            kind: EventKind::Added,
            data: json!(1),
            state: None,
        },
    );
    let y = b.next_id();
    assert!(y > far && y % 64 == 2);
}

#[derive(Debug, Default)]
struct Sent(Mutex<Vec<(Topic, u64)>>);
impl Outbound for Sent {
    fn send(&self, topic: &Topic, event: &BusEvent) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((topic.clone(), event.id));
    }
    fn flushed(&self) -> futures_util::future::BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

#[tokio::test]
async fn remote_events_are_kept_in_order_once_and_local_ones_sent() {
    let bus = Bus::with_ids(0, 8, 8, IdSpace { slot: 0, stride: 4 });
    let sent = Arc::new(Sent::default());
    bus.attach(sent.clone());
    let topic = Topic::Call("c".into());
    let mut sub = bus.subscribe(&topic, None);
    let remote = |id| BusEvent {
        id,
        kind: EventKind::Updated,
        data: json!(id),
        state: None,
    };
    let base = bus.last_id() + 100;
    bus.apply_remote(&topic, remote(base + 3));
    bus.apply_remote(&topic, remote(base + 1));
    bus.apply_remote(&topic, remote(base + 3));
    // Unwatched here, but built: a watcher may be on another relay.
    let local = bus.publish_lazy(&Topic::Login("a@x".into()), EventKind::Updated, || {
        (json!(1), None)
    });
    let got: Vec<u64> = [sub.receiver.recv().await, sub.receiver.recv().await]
        .into_iter()
        .filter_map(|e| e.ok().map(|e| e.id))
        .collect();
    assert_eq!(got, vec![base + 3, base + 1]);
    assert!(sub.receiver.try_recv().is_err(), "a repeat is ignored");
    let missed = bus.subscribe(&topic, Some(base)).missed.expect("history");
    assert_eq!(
        missed.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![base + 1, base + 3]
    );
    assert!(local > base + 3 && local.is_multiple_of(4));
    let sent = sent.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(sent, vec![(Topic::Login("a@x".into()), local)]);
}

#[test]
fn an_unwatched_topic_has_no_broadcast_channel_until_subscribed() {
    let bus = Bus::new(0, 8, 8);
    let topic = Topic::Call("c".into());
    let first = bus.publish(&topic, EventKind::Added, json!(1), None);
    assert!(bus.lock().get(&topic).is_some_and(|c| c.tx.is_empty()));
    let mut sub = bus.subscribe(&topic, Some(first - 1));
    assert_eq!(sub.missed.map(|m| m.len()), Some(1));
    let second = bus.publish(&topic, EventKind::Updated, json!(2), None);
    assert_eq!(sub.receiver.try_recv().map(|e| e.id).ok(), Some(second));
}

#[test]
fn a_kept_state_lasts_until_the_next_event() {
    let bus = Bus::new(0, 8, 8);
    let topic = Topic::Call("c".into());
    let state = |id| {
        Outgoing::new(restsip_protocol::Event {
            id,
            resource: topic.resource(),
            kind: EventKind::State,
            data: json!([]),
        })
    };
    let _watching = bus.subscribe(&topic, None);
    let (changes, kept) = bus.kept_state(&topic);
    assert!(kept.is_none());
    bus.keep_state(&topic, changes, state(1));
    assert_eq!(bus.kept_state(&topic).1.map(|s| s.id), Some(1));
    bus.publish(&topic, EventKind::Added, json!(1), None);
    assert!(bus.kept_state(&topic).1.is_none(), "an event drops it");
    // A state read before that event is not kept: it may not reflect it.
    bus.keep_state(&topic, changes, state(2));
    assert!(bus.kept_state(&topic).1.is_none());
    // Nor one read before an event nobody watched (not built).
    let login = Topic::Login("a@x".into());
    bus.publish(&login, EventKind::Added, json!(1), None);
    let (changes, _) = bus.kept_state(&login);
    bus.publish_lazy(&login, EventKind::Updated, || {
        unreachable!("nobody watches")
    });
    bus.keep_state(&login, changes, state(3));
    assert!(bus.kept_state(&login).1.is_none());
    bus.keep_state(&login, bus.kept_state(&login).0, state(4));
    assert_eq!(bus.kept_state(&login).1.map(|s| s.id), Some(4));
}

#[test]
fn sweeping_keeps_watched_topics() {
    let bus = Bus::new(0, 8, 8);
    let watched = Topic::Call("w".into());
    let _sub = bus.subscribe(&watched, None);
    bus.publish(
        &Topic::Call("idle".into()),
        EventKind::Added,
        json!(1),
        None,
    );
    bus.sweep(Duration::ZERO);
    assert!(bus.is_watched(&watched));
    assert_eq!(bus.lock().len(), 1);
}

#[test]
fn a_topic_with_many_subscribers_gives_every_one_every_event_in_order() {
    let bus = Bus::new(0, 8, 8);
    let topic = Topic::Call("c".into());
    let mut subs: Vec<_> = (0..SHARD * 2 + 1)
        .map(|_| bus.subscribe(&topic, None))
        .collect();
    let channels = |bus: &Bus| bus.lock().get(&topic).map_or(0, |c| c.tx.len());
    assert_eq!(channels(&bus), 3, "a channel per {SHARD} subscribers");
    assert!(bus.is_watched(&topic));
    let ids: Vec<u64> = (0..3)
        .map(|n| bus.publish(&topic, EventKind::Updated, json!(n), None))
        .collect();
    for sub in &mut subs {
        let got: Vec<u64> =
            std::iter::from_fn(|| sub.receiver.try_recv().ok().map(|e| e.id)).collect();
        assert_eq!(got, ids);
    }
    // A subscriber that leaves makes room in its channel for the next one.
    subs.swap_remove(0);
    let next = bus.subscribe(&topic, None);
    assert_eq!(channels(&bus), 3);
    assert_eq!(
        bus.lock().get(&topic).map(|c| c.receivers()),
        Some(SHARD * 2 + 1)
    );
    // Once the crowd has gone, the sweep keeps only the channels someone still listens on.
    drop(subs);
    bus.sweep(Duration::from_secs(3600));
    assert_eq!(channels(&bus), 1);
    assert!(bus.is_watched(&topic));
    drop(next);
    bus.sweep(Duration::from_secs(3600));
    assert_eq!(channels(&bus), 0, "an unwatched resource keeps no channel");
    assert!(
        bus.lock().contains_key(&topic),
        "but its history, until idle"
    );
}
