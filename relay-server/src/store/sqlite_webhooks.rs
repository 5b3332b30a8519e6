//! The webhook half of the SQLite store: webhooks and their outboxes. The [`Store`] methods in
//! `sqlite.rs` call these with the pool each reads or writes through.
//!
//! [`Store`]: super::Store

use restsip_protocol::UpdateMode;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use super::sqlite_query::{changed_one, fetch_record, fetch_records, insert_or_conflict};
use super::{Queued, StoreError, StoreResult, WebhookEventRecord, WebhookRecord};

/// The columns of a webhook with the length of its outbox.
const WEBHOOK_COLUMNS: &str = "w.id, w.owner, w.target, w.resource, w.updates, w.secret, \
     w.created, w.cursor, w.failing_since, w.last_error, \
     (SELECT COUNT(*) FROM webhook_events e WHERE e.webhook_id = w.id) AS queued";

fn updates_name(mode: UpdateMode) -> &'static str {
    match mode {
        UpdateMode::Diff => "diff",
        UpdateMode::Full => "full",
    }
}

fn webhook_row(row: SqliteRow) -> StoreResult<WebhookRecord> {
    let updates: String = row.try_get("updates")?;
    let queued: i64 = row.try_get("queued")?;
    Ok(WebhookRecord {
        id: row.try_get("id")?,
        owner: row.try_get("owner")?,
        target: row.try_get("target")?,
        resource: row.try_get("resource")?,
        updates: match updates.as_str() {
            "diff" => UpdateMode::Diff,
            "full" => UpdateMode::Full,
            other => return Err(StoreError::Corrupt(format!("webhook updates {other:?}"))),
        },
        secret: row.try_get("secret")?,
        created: row.try_get("created")?,
        cursor: row.try_get("cursor")?,
        failing_since: row.try_get("failing_since")?,
        last_error: row.try_get("last_error")?,
        queued: usize::try_from(queued).unwrap_or(0),
    })
}

fn event_row(row: SqliteRow) -> StoreResult<WebhookEventRecord> {
    Ok(WebhookEventRecord {
        seq: row.try_get("seq")?,
        event_id: row.try_get("event_id")?,
        body: row.try_get("body")?,
        queued: row.try_get("queued")?,
    })
}

pub(super) async fn create(
    writer: &SqlitePool,
    hook: &WebhookRecord,
    max: usize,
) -> StoreResult<bool> {
    let mut tx = writer.begin().await?;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE owner = ?")
        .bind(&hook.owner)
        .fetch_one(&mut *tx)
        .await?;
    if usize::try_from(count).unwrap_or(usize::MAX) >= max {
        return Ok(false);
    }
    let insert = sqlx::query(
        "INSERT INTO webhooks (id, owner, target, resource, updates, secret, created, cursor) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&hook.id)
    .bind(&hook.owner)
    .bind(&hook.target)
    .bind(&hook.resource)
    .bind(updates_name(hook.updates))
    .bind(&hook.secret)
    .bind(hook.created)
    .bind(hook.cursor);
    insert_or_conflict(insert, &mut *tx).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn get(pool: &SqlitePool, id: &str) -> StoreResult<Option<WebhookRecord>> {
    let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks w WHERE w.id = ?");
    fetch_record(sqlx::query(&sql).bind(id), pool, webhook_row).await
}

pub(super) async fn list(
    pool: &SqlitePool,
    owner: Option<&str>,
) -> StoreResult<Vec<WebhookRecord>> {
    let sql = format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks w WHERE ? IS NULL OR w.owner = ? \
         ORDER BY w.created, w.id"
    );
    let query = sqlx::query(&sql).bind(owner).bind(owner);
    fetch_records(query, pool, webhook_row).await
}

pub(super) async fn delete(writer: &SqlitePool, id: &str) -> StoreResult<bool> {
    let delete = sqlx::query("DELETE FROM webhooks WHERE id = ?").bind(id);
    changed_one(delete, writer).await
}

pub(super) async fn queue(
    writer: &SqlitePool,
    id: &str,
    event_id: i64,
    body: &str,
    claim: Option<i64>,
) -> StoreResult<Queued> {
    let mut tx = writer.begin().await?;
    // The cursor first: it tells whether the webhook still exists.
    let moved =
        sqlx::query("UPDATE webhooks SET cursor = MAX(COALESCE(cursor, 0), ?) WHERE id = ?")
            .bind(event_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    if moved.rows_affected() != 1 {
        return Ok(Queued::NoWebhook);
    }
    if let Some(seq) = claim {
        let claimed = sqlx::query(
            "UPDATE sends SET status = 'delivered' WHERE seq = ? AND status != 'cancelled'",
        )
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() != 1 {
            return Ok(Queued::NotClaimed);
        }
    }
    sqlx::query(
        "INSERT INTO webhook_events (webhook_id, event_id, body, queued) VALUES (?, ?, ?, ?)",
    )
    .bind(id)
    .bind(event_id)
    .bind(body)
    .bind(crate::clock::now_ms())
    .execute(&mut *tx)
    .await?;
    let queued: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events WHERE webhook_id = ?")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(Queued::Stored(usize::try_from(queued).unwrap_or(0)))
}

pub(super) async fn head(pool: &SqlitePool, id: &str) -> StoreResult<Option<WebhookEventRecord>> {
    let query = sqlx::query(
        "SELECT seq, event_id, body, queued FROM webhook_events WHERE webhook_id = ? \
         ORDER BY seq LIMIT 1",
    )
    .bind(id);
    fetch_record(query, pool, event_row).await
}

pub(super) async fn ack(writer: &SqlitePool, id: &str, seq: i64) -> StoreResult<bool> {
    let mut tx = writer.begin().await?;
    sqlx::query("DELETE FROM webhook_events WHERE webhook_id = ? AND seq = ?")
        .bind(id)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
    let healthy =
        sqlx::query("UPDATE webhooks SET failing_since = NULL, last_error = NULL WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(healthy.rows_affected() == 1)
}

pub(super) async fn failed(
    writer: &SqlitePool,
    id: &str,
    error: &str,
    failing_since: Option<i64>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE webhooks SET last_error = ?, failing_since = COALESCE(failing_since, ?) \
         WHERE id = ?",
    )
    .bind(error)
    .bind(failing_since)
    .bind(id)
    .execute(writer)
    .await?;
    Ok(())
}

pub(super) async fn queue_len(pool: &SqlitePool, id: &str) -> StoreResult<usize> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events WHERE webhook_id = ?")
        .bind(id)
        .fetch_one(pool)
        .await?;
    Ok(usize::try_from(n).unwrap_or(0))
}

pub(super) async fn max_cursor(pool: &SqlitePool) -> StoreResult<i64> {
    let max: Option<i64> = sqlx::query_scalar("SELECT MAX(cursor) FROM webhooks")
        .fetch_one(pool)
        .await?;
    Ok(max.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::super::{DeliveryStatus, SendRecord, SqliteStore, Store, UserRecord};
    use super::*;

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

    async fn store() -> SqliteStore {
        let s = SqliteStore::open("sqlite::memory:").await.expect("store");
        s.create_user(&UserRecord {
            email: "a@x".into(),
            password_hash: String::new(),
            name: None,
            data: Default::default(),
            created: 1,
        })
        .await
        .expect("user");
        s
    }

    #[tokio::test]
    async fn the_limit_per_owner_holds_and_deleting_a_user_deletes_its_webhooks() {
        let s = store().await;
        assert!(s.create_webhook(&hook("h1", "a@x"), 2).await.expect("h1"));
        assert!(s.create_webhook(&hook("h2", "a@x"), 2).await.expect("h2"));
        assert!(!s.create_webhook(&hook("h3", "a@x"), 2).await.expect("h3"));
        assert_eq!(s.webhooks(Some("a@x")).await.expect("list").len(), 2);
        assert!(s.webhooks(Some("b@x")).await.expect("list").is_empty());
        s.delete_user("a@x").await.expect("delete");
        assert!(s.webhooks(None).await.expect("list").is_empty());
    }

    #[tokio::test]
    async fn the_outbox_is_ordered_moves_the_cursor_and_claims_atomically() {
        let s = store().await;
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
            .add_contact(&super::super::ContactRecord {
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
