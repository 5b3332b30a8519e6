//! What only PostgreSQL promises: several relays (here, several stores) on one database hand
//! out distinct ids, keep the caps together, and start on a schema already migrated.

use std::sync::Arc;

use super::test_db::TestDatabase;
use super::tests::{contact, user};
use super::{MailCaps, MailRecord, PostgresStore, Store};

/// Two stores on one fresh database, as two relays would open it.
async fn two_relays(db: &TestDatabase) -> (Arc<dyn Store>, Arc<dyn Store>) {
    let (a, b) = tokio::join!(PostgresStore::open(&db.url), PostgresStore::open(&db.url));
    (
        Arc::new(a.expect("relay a migrates")),
        Arc::new(b.expect("relay b starts beside it")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_sharing_a_database_hand_out_distinct_ids_and_keep_caps_together() {
    let db = TestDatabase::create().await;
    let (a, b) = two_relays(&db).await;
    a.create_user(&user("o@x")).await.expect("user");
    // Contact ids: 20 logins at once through both relays, each id once.
    let adds = (0..20).map(|n| {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        async move { store.add_contact(&contact("o@x", i64::MAX)).await }
    });
    let mut ids: Vec<i64> = futures_util::future::join_all(adds)
        .await
        .into_iter()
        .map(|c| c.expect("add").expect("user").id)
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>());
    // A mailbox cap of 5 holds against 12 senders racing through both relays.
    let caps = MailCaps {
        messages: 5,
        bytes: usize::MAX,
        per_sender: usize::MAX,
    };
    let sends = (0..12).map(|n| {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        let mail = MailRecord {
            id: 0,
            owner: "o@x".into(),
            sender: format!("s{n}@x"),
            url: None,
            body: None,
            subject: None,
            created: 1,
        };
        async move { store.add_mail_within(&mail, &caps).await }
    });
    let stored = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(Ok(_))))
        .count();
    assert_eq!(stored, 5);
    assert_eq!(a.mail("o@x").await.expect("mail").len(), 5);
    // The token secret is one for all.
    assert_eq!(
        a.secret().await.expect("secret"),
        b.secret().await.expect("secret")
    );
    drop((a, b));
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_relay_holds_a_lease_until_it_expires() {
    let db = TestDatabase::create().await;
    let (a, b) = two_relays(&db).await;
    // Both race for it: one wins.
    let (took_a, took_b) = tokio::join!(
        a.take_lease("leader", "a", 1000, 4000),
        b.take_lease("leader", "b", 1000, 4000)
    );
    let (took_a, took_b) = (took_a.expect("lease"), took_b.expect("lease"));
    assert!(took_a ^ took_b, "exactly one: {took_a} {took_b}");
    let (holder, other) = if took_a { ("a", &b) } else { ("b", &a) };
    let (holding, waiting) = if took_a { (&a, "b") } else { (&b, "a") };
    assert!(holding
        .take_lease("leader", holder, 2000, 5000)
        .await
        .expect("renew"));
    assert!(!other
        .take_lease("leader", waiting, 4999, 8000)
        .await
        .expect("held"));
    assert!(other
        .take_lease("leader", waiting, 5001, 8000)
        .await
        .expect("expired"));
    assert!(!holding
        .take_lease("leader", holder, 5002, 9000)
        .await
        .expect("lost"));
    // Read back by prefix, from either relay.
    let read = holding.leases("lead").await.expect("leases");
    assert_eq!(
        (read.len(), read[0].holder.as_str(), read[0].until),
        (1, waiting, 8000)
    );
    assert!(other.leases("slot/").await.expect("leases").is_empty());
}
