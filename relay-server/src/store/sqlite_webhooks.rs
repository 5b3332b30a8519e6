//! The webhook half of the SQLite store: webhooks and their outboxes. The [`Store`] methods in
//! `sqlite.rs` call these with the pool each reads or writes through.
//!
//! [`Store`]: super::Store

use sqlx::SqlitePool;

use super::query::{changed_one, fetch_record, fetch_records, insert_or_conflict};
use super::rows::{event_row, updates_name, webhook_row, WEBHOOK_COLUMNS};
use super::statements::{
    CLAIM_SEND, COUNT_WEBHOOKS, COUNT_WEBHOOK_EVENTS, DELETE_WEBHOOK, DELETE_WEBHOOK_EVENT,
    HEAD_WEBHOOK_EVENT, INSERT_WEBHOOK, INSERT_WEBHOOK_EVENT, MAX_WEBHOOK_CURSOR, WEBHOOK_FAILED,
    WEBHOOK_HEALTHY,
};
use super::{Queued, StoreResult, WebhookEventRecord, WebhookRecord};

pub(super) async fn create(
    writer: &SqlitePool,
    hook: &WebhookRecord,
    max: usize,
) -> StoreResult<bool> {
    let mut tx = writer.begin().await?;
    let count: i64 = sqlx::query_scalar(COUNT_WEBHOOKS.sqlite)
        .bind(&hook.owner)
        .fetch_one(&mut *tx)
        .await?;
    if usize::try_from(count).unwrap_or(usize::MAX) >= max {
        return Ok(false);
    }
    let insert = sqlx::query(INSERT_WEBHOOK.sqlite)
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
    let delete = sqlx::query(DELETE_WEBHOOK.sqlite).bind(id);
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
        let claimed = sqlx::query(CLAIM_SEND.sqlite)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        if claimed.rows_affected() != 1 {
            return Ok(Queued::NotClaimed);
        }
    }
    sqlx::query(INSERT_WEBHOOK_EVENT.sqlite)
        .bind(id)
        .bind(event_id)
        .bind(body)
        .bind(crate::clock::now_ms())
        .execute(&mut *tx)
        .await?;
    let queued: i64 = sqlx::query_scalar(COUNT_WEBHOOK_EVENTS.sqlite)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Queued::Stored(usize::try_from(queued).unwrap_or(0)))
}

pub(super) async fn head(pool: &SqlitePool, id: &str) -> StoreResult<Option<WebhookEventRecord>> {
    let query = sqlx::query(HEAD_WEBHOOK_EVENT.sqlite).bind(id);
    fetch_record(query, pool, event_row).await
}

pub(super) async fn ack(writer: &SqlitePool, id: &str, seq: i64) -> StoreResult<bool> {
    let mut tx = writer.begin().await?;
    sqlx::query(DELETE_WEBHOOK_EVENT.sqlite)
        .bind(id)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
    let healthy = sqlx::query(WEBHOOK_HEALTHY.sqlite)
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
    sqlx::query(WEBHOOK_FAILED.sqlite)
        .bind(error)
        .bind(failing_since)
        .bind(id)
        .execute(writer)
        .await?;
    Ok(())
}

pub(super) async fn queue_len(pool: &SqlitePool, id: &str) -> StoreResult<usize> {
    let n: i64 = sqlx::query_scalar(COUNT_WEBHOOK_EVENTS.sqlite)
        .bind(id)
        .fetch_one(pool)
        .await?;
    Ok(usize::try_from(n).unwrap_or(0))
}

pub(super) async fn max_cursor(pool: &SqlitePool) -> StoreResult<i64> {
    let max: Option<i64> = sqlx::query_scalar(MAX_WEBHOOK_CURSOR.sqlite)
        .fetch_one(pool)
        .await?;
    Ok(max.unwrap_or(0))
}
