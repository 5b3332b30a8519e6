//! The webhook half of the SQLite store: webhooks and their outboxes, where its SQL or its
//! steps differ from PostgreSQL's (what both run alike is in `shared.rs`). The [`Store`]
//! methods in `sqlite.rs` call these with the pool each reads or writes through.
//!
//! [`Store`]: super::Store

use sqlx::SqlitePool;

use super::query::{fetch_record, fetch_records, insert_or_conflict};
use super::rows::{updates_name, webhook_row, WEBHOOK_COLUMNS};
use super::statements::{COUNT_WEBHOOKS, INSERT_WEBHOOK};
use super::{StoreResult, WebhookRecord};

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
