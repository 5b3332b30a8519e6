//! The webhook half of the PostgreSQL store, with its flood caps and its health checks, where
//! its SQL or its steps differ from SQLite's (what both run alike is in `shared.rs`): the
//! [`Store`] methods in `postgres.rs` call these. Where SQLite's one writer serialises a
//! check-then-write (a cap), PostgreSQL transactions run side by side, possibly in several
//! relays: such a transaction first locks the row of the user the cap is about.
//!
//! [`Store`]: super::Store

use sqlx::{PgPool, Postgres, Transaction};

use super::query::{fetch_record, fetch_records};
use super::rows::{mail_size, to_json, webhook_row, WEBHOOK_COLUMNS};
use super::{MailCaps, MailRecord, MailboxFull, StoreResult, WebhookRecord};

fn sql_int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn count(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}

/// Locks the row of user `email` until the transaction ends: checks and writes about that
/// user's mailbox or webhooks then run one at a time, whichever relay runs them.
async fn lock_user(tx: &mut Transaction<'_, Postgres>, email: &str) -> StoreResult<()> {
    sqlx::query("SELECT 1 FROM users WHERE email = $1 FOR UPDATE")
        .bind(email)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Adds `mail` unless its owner's mailbox would pass one of `caps`; else what it holds.
pub(super) async fn add_mail(
    pool: &PgPool,
    mail: &MailRecord,
    caps: &MailCaps,
) -> StoreResult<Result<MailRecord, MailboxFull>> {
    let size = mail_size(mail);
    let mut tx = pool.begin().await?;
    lock_user(&mut tx, &mail.owner).await?;
    let (messages, from_sender, bytes): (i64, i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE sender = $2), COALESCE(SUM(size), 0)::bigint \
         FROM mail WHERE owner = $1",
    )
    .bind(&mail.owner)
    .bind(&mail.sender)
    .fetch_one(&mut *tx)
    .await?;
    if count(messages) >= caps.messages
        || count(from_sender) >= caps.per_sender
        || count(bytes).saturating_add(size) > caps.bytes
    {
        return Ok(Err(MailboxFull {
            messages: count(messages),
            from_sender: count(from_sender),
            bytes: count(bytes),
            size,
        }));
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO mail (owner, sender, url, body, subject, created, size) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(&mail.owner)
    .bind(&mail.sender)
    .bind(&mail.url)
    .bind(mail.body.as_ref().map(to_json))
    .bind(&mail.subject)
    .bind(mail.created)
    .bind(sql_int(size))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Ok(MailRecord { id, ..mail.clone() }))
}

/// Ok when a write could be committed now: a transaction that takes a transaction id (which
/// a read-only server or a standby refuses), rolled back. Nothing is written.
pub(super) async fn writable(pool: &PgPool) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_current_xact_id()::text")
        .execute(&mut *tx)
        .await?;
    tx.rollback().await?;
    Ok(())
}

/// Adds webhook `hook` unless its owner has `max` already (false then), under a lock on the
/// owner's row.
pub(super) async fn create(pool: &PgPool, hook: &WebhookRecord, max: usize) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    lock_user(&mut tx, &hook.owner).await?;
    let added = super::shared::pg::insert_webhook(&mut tx, hook, max).await?;
    if added {
        tx.commit().await?;
    }
    Ok(added)
}

pub(super) async fn get(pool: &PgPool, id: &str) -> StoreResult<Option<WebhookRecord>> {
    let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks w WHERE w.id = $1");
    fetch_record(sqlx::query(&sql).bind(id), pool, webhook_row).await
}

pub(super) async fn list(pool: &PgPool, owner: Option<&str>) -> StoreResult<Vec<WebhookRecord>> {
    let sql = format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks w WHERE $1::text IS NULL OR w.owner = $1 \
         ORDER BY w.created, w.id"
    );
    fetch_records(sqlx::query(&sql).bind(owner), pool, webhook_row).await
}
