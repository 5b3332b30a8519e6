//! The webhook half of the PostgreSQL store, with its flood caps and its health checks: the
//! [`Store`] methods in `postgres.rs` call these. Where SQLite's one writer serialises a
//! check-then-write (a cap), PostgreSQL transactions run side by side, possibly in several
//! relays: such a transaction first locks the row of the user the cap is about.
//!
//! [`Store`]: super::Store

use std::collections::BTreeMap;

use sqlx::{PgPool, Postgres, Transaction};

use super::query::{changed_one, fetch_record, fetch_records, insert_or_conflict};
use super::rows::{event_row, mail_size, to_json, updates_name, webhook_row, WEBHOOK_COLUMNS};
use super::statements::{
    CALLS_UP, CLAIM_SEND, COUNT_WEBHOOKS, COUNT_WEBHOOK_EVENTS, DELETE_WEBHOOK,
    DELETE_WEBHOOK_EVENT, HEAD_WEBHOOK_EVENT, INSERT_WEBHOOK, INSERT_WEBHOOK_EVENT, LEASES,
    LOGINS_BY_SOURCE, MAX_WEBHOOK_CURSOR, TAKE_LEASE, WEBHOOK_FAILED, WEBHOOK_HEALTHY,
};
use super::{
    MailCaps, MailRecord, MailboxFull, Queued, StoreGauges, StoreResult, WebhookEventRecord,
    WebhookRecord,
};

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

/// Logins alive by source, and calls with at least one participant, at `now` (ms).
pub(super) async fn gauges(pool: &PgPool, now: i64) -> StoreResult<StoreGauges> {
    let rows: Vec<(String, i64)> = sqlx::query_as(LOGINS_BY_SOURCE.pg)
        .bind(now)
        .fetch_all(pool)
        .await?;
    let calls: i64 = sqlx::query_scalar(CALLS_UP.pg).fetch_one(pool).await?;
    Ok(StoreGauges {
        logins: rows
            .into_iter()
            .map(|(source, n)| (source, u64::try_from(n).unwrap_or(0)))
            .collect::<BTreeMap<_, _>>(),
        calls: u64::try_from(calls).unwrap_or(0),
    })
}

pub(super) async fn create(pool: &PgPool, hook: &WebhookRecord, max: usize) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    lock_user(&mut tx, &hook.owner).await?;
    let n: i64 = sqlx::query_scalar(COUNT_WEBHOOKS.pg)
        .bind(&hook.owner)
        .fetch_one(&mut *tx)
        .await?;
    if usize::try_from(n).unwrap_or(usize::MAX) >= max {
        return Ok(false);
    }
    let insert = sqlx::query(INSERT_WEBHOOK.pg)
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

pub(super) async fn delete(pool: &PgPool, id: &str) -> StoreResult<bool> {
    changed_one(sqlx::query(DELETE_WEBHOOK.pg).bind(id), pool).await
}

pub(super) async fn queue(
    pool: &PgPool,
    id: &str,
    event_id: i64,
    body: &str,
    claim: Option<i64>,
) -> StoreResult<Queued> {
    let mut tx = pool.begin().await?;
    // The cursor first: it tells whether the webhook still exists (and locks it, so the
    // outbox count below is this webhook's after this event).
    let moved =
        sqlx::query("UPDATE webhooks SET cursor = GREATEST(COALESCE(cursor, 0), $1) WHERE id = $2")
            .bind(event_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    if moved.rows_affected() != 1 {
        return Ok(Queued::NoWebhook);
    }
    if let Some(seq) = claim {
        let claimed = sqlx::query(CLAIM_SEND.pg)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        if claimed.rows_affected() != 1 {
            return Ok(Queued::NotClaimed);
        }
    }
    sqlx::query(INSERT_WEBHOOK_EVENT.pg)
        .bind(id)
        .bind(event_id)
        .bind(body)
        .bind(crate::clock::now_ms())
        .execute(&mut *tx)
        .await?;
    let queued: i64 = sqlx::query_scalar(COUNT_WEBHOOK_EVENTS.pg)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Queued::Stored(count(queued)))
}

pub(super) async fn head(pool: &PgPool, id: &str) -> StoreResult<Option<WebhookEventRecord>> {
    let query = sqlx::query(HEAD_WEBHOOK_EVENT.pg).bind(id);
    fetch_record(query, pool, event_row).await
}

pub(super) async fn ack(pool: &PgPool, id: &str, seq: i64) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    sqlx::query(DELETE_WEBHOOK_EVENT.pg)
        .bind(id)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
    let healthy = sqlx::query(WEBHOOK_HEALTHY.pg)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(healthy.rows_affected() == 1)
}

pub(super) async fn failed(
    pool: &PgPool,
    id: &str,
    error: &str,
    failing_since: Option<i64>,
) -> StoreResult<()> {
    sqlx::query(WEBHOOK_FAILED.pg)
        .bind(error)
        .bind(failing_since)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn queue_len(pool: &PgPool, id: &str) -> StoreResult<usize> {
    let n: i64 = sqlx::query_scalar(COUNT_WEBHOOK_EVENTS.pg)
        .bind(id)
        .fetch_one(pool)
        .await?;
    Ok(count(n))
}

pub(super) async fn max_cursor(pool: &PgPool) -> StoreResult<i64> {
    let max: Option<i64> = sqlx::query_scalar(MAX_WEBHOOK_CURSOR.pg)
        .fetch_one(pool)
        .await?;
    Ok(max.unwrap_or(0))
}

/// Takes or renews lease `name` for `holder` until `until` (ms) if it is free, expired at
/// `now`, or already `holder`'s: one statement (the row is locked while it runs), so two
/// relays racing for it cannot both win.
pub(super) async fn take_lease(
    pool: &PgPool,
    name: &str,
    holder: &str,
    now: i64,
    until: i64,
) -> StoreResult<bool> {
    let taken = sqlx::query(TAKE_LEASE.pg)
        .bind(name)
        .bind(holder)
        .bind(now)
        .bind(until)
        .execute(pool)
        .await?;
    Ok(taken.rows_affected() == 1)
}

/// The leases whose names start with `prefix`.
pub(super) async fn leases(pool: &PgPool, prefix: &str) -> StoreResult<Vec<super::Lease>> {
    Ok(sqlx::query_as::<_, super::Lease>(LEASES.pg)
        .bind(prefix)
        .fetch_all(pool)
        .await?)
}
