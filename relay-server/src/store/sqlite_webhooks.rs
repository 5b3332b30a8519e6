//! The webhook half of the SQLite store: webhooks and their outboxes, where its SQL or its
//! steps differ from PostgreSQL's (what both run alike is in `shared.rs`). The [`Store`]
//! methods in `sqlite.rs` call these with the pool each reads or writes through.
//!
//! [`Store`]: super::Store

use sqlx::SqlitePool;

use super::query::{fetch_record, fetch_records};
use super::rows::{webhook_row, WEBHOOK_COLUMNS};
use super::{StoreResult, WebhookRecord};

/// Adds webhook `hook` unless its owner has `max` already (false then).
pub(super) async fn create(
    writer: &SqlitePool,
    hook: &WebhookRecord,
    max: usize,
) -> StoreResult<bool> {
    let mut tx = writer.begin().await?;
    let added = super::shared::sqlite::insert_webhook(&mut tx, hook, max).await?;
    if added {
        tx.commit().await?;
    }
    Ok(added)
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
