//! Webhooks and their outboxes, checked on both engines.

use restsip_protocol::{DeliveryStatus, UpdateMode};

use super::test_db::on_both_engines;
use super::tests::user;
use super::{ContactRecord, Queued, SendRecord, WebhookRecord};

fn hook(id: &str, owner: &str) -> WebhookRecord {
    WebhookRecord {
        id: id.to_owned(),
        owner: owner.to_owned(),
        target: "http://127.0.0.1:9/hook".to_owned(),
        resource: "/login/a@x".to_owned(),
        updates: UpdateMode::Diff,
        secret: "s".to_owned(),
        created: 1,
        cursor: None,
        failing_since: None,
        last_error: None,
        queued: 0,
    }
}

on_both_engines! {
    async fn the_limit_per_owner_holds_and_deleting_a_user_deletes_its_webhooks(s) {
        s.create_user(&user("a@x")).await.expect("user");
        assert!(s.create_webhook(&hook("h1", "a@x"), 2).await.expect("h1"));
        assert!(s.create_webhook(&hook("h2", "a@x"), 2).await.expect("h2"));
        assert!(!s.create_webhook(&hook("h3", "a@x"), 2).await.expect("h3"));
        assert_eq!(s.webhooks(Some("a@x")).await.expect("list").len(), 2);
        assert!(s.webhooks(Some("b@x")).await.expect("list").is_empty());
        s.delete_user("a@x").await.expect("delete");
        assert!(s.webhooks(None).await.expect("list").is_empty());
    }

    async fn the_outbox_is_ordered_moves_the_cursor_and_claims_atomically(s) {
        s.create_user(&user("a@x")).await.expect("user");
        s.create_webhook(&hook("h", "a@x"), 8)
            .await
            .expect("create");
        assert_eq!(
            s.queue_webhook_event("h", 10, "{}", None).await.expect("q"),
            Queued::Stored(1)
        );
        assert_eq!(
            s.queue_webhook_event("h", 11, "{}", None).await.expect("q"),
            Queued::Stored(2)
        );
        assert_eq!(
            s.queue_webhook_event("gone", 12, "{}", None)
                .await
                .expect("q"),
            Queued::NoWebhook
        );
        // A cancelled SEND is not claimed, and nothing is queued for it.
        let c = s
            .add_contact(&ContactRecord {
                email: "a@x".into(),
                id: 0,
                contact: None,
                expires_at: i64::MAX,
                presence: None,
                source: restsip_protocol::ContactSource::Web,
                sip: None,
            })
            .await
            .expect("add")
            .expect("user");
        let send = |seq| SendRecord {
            seq,
            msg_id: format!("m{seq}"),
            sender: "b@x".into(),
            to_email: "a@x".into(),
            to_contact: c.id,
            target: "/login/a@x".into(),
            body: serde_json::json!({}),
            sent: 1,
            status: DeliveryStatus::Queued,
        };
        s.queue_sends(&[send(20), send(21)]).await.expect("sends");
        s.cancel_send("b@x", "m21", "a@x", None)
            .await
            .expect("cancel");
        assert_eq!(
            s.queue_webhook_event("h", 20, "{}", Some(20))
                .await
                .expect("q"),
            Queued::Stored(3)
        );
        assert_eq!(
            s.queue_webhook_event("h", 21, "{}", Some(21))
                .await
                .expect("q"),
            Queued::NotClaimed
        );
        assert_eq!(s.queued_count("a@x", c.id).await.expect("count"), 0);
        let w = s.webhook("h").await.expect("get").expect("exists");
        assert_eq!((w.cursor, w.queued), (Some(20), 3));
        assert_eq!(s.max_webhook_cursor().await.expect("max"), 20);
        // Failing is kept until a delivery succeeds.
        s.webhook_failed("h", "503", Some(5)).await.expect("fail");
        s.webhook_failed("h", "timeout", Some(9))
            .await
            .expect("fail");
        let w = s.webhook("h").await.expect("get").expect("exists");
        assert_eq!(
            (w.failing_since, w.last_error.as_deref()),
            (Some(5), Some("timeout"))
        );
        let head = s.webhook_head("h").await.expect("head").expect("some");
        assert_eq!(head.event_id, 10);
        assert!(s.ack_webhook_event("h", head.seq).await.expect("ack"));
        let w = s.webhook("h").await.expect("get").expect("exists");
        assert_eq!((w.failing_since, w.last_error, w.queued), (None, None, 2));
        let head = s.webhook_head("h").await.expect("head").expect("some");
        assert_eq!(head.event_id, 11);
        assert!(s.delete_webhook("h").await.expect("delete"));
        assert!(s.webhook_head("h").await.expect("head").is_none());
        assert!(!s.ack_webhook_event("h", head.seq).await.expect("ack"));
    }
}
