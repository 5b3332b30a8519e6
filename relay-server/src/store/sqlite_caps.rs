//! The flood caps of the SQLite store: offline messages added only within their mailbox's
//! caps (one statement, so concurrent senders cannot pass a cap together), and the queued
//! SENDs of one sender to one contact. The [`Store`] methods in `sqlite.rs` call these.
//!
//! [`Store`]: super::Store

use sqlx::SqlitePool;

use super::rows::{mail_size, to_json};
use super::{MailCaps, MailRecord, MailboxFull, StoreResult};

fn sql_int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Adds `mail` unless its owner's mailbox would pass one of `caps`; else what the mailbox
/// holds.
pub(super) async fn add_mail(
    writer: &SqlitePool,
    mail: &MailRecord,
    caps: &MailCaps,
) -> StoreResult<Result<MailRecord, MailboxFull>> {
    let size = mail_size(mail);
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO mail (owner, sender, url, body, subject, created, size) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 \
         WHERE (SELECT COUNT(*) FROM mail WHERE owner = ?1) < ?8 \
           AND (SELECT COUNT(*) FROM mail WHERE owner = ?1 AND sender = ?2) < ?9 \
           AND (SELECT COALESCE(SUM(size), 0) FROM mail WHERE owner = ?1) + ?7 <= ?10 \
         RETURNING id",
    )
    .bind(&mail.owner)
    .bind(&mail.sender)
    .bind(&mail.url)
    .bind(mail.body.as_ref().map(to_json))
    .bind(&mail.subject)
    .bind(mail.created)
    .bind(sql_int(size))
    .bind(sql_int(caps.messages))
    .bind(sql_int(caps.per_sender))
    .bind(sql_int(caps.bytes))
    .fetch_optional(writer)
    .await?;
    if let Some(id) = id {
        return Ok(Ok(MailRecord { id, ..mail.clone() }));
    }
    let (messages, from_sender, bytes): (i64, i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(sender = ?2), 0), COALESCE(SUM(size), 0) \
         FROM mail WHERE owner = ?1",
    )
    .bind(&mail.owner)
    .bind(&mail.sender)
    .fetch_one(writer)
    .await?;
    let count = |n: i64| usize::try_from(n).unwrap_or(0);
    Ok(Err(MailboxFull {
        messages: count(messages),
        from_sender: count(from_sender),
        bytes: count(bytes),
        size,
    }))
}

/// How many SENDs from `sender` wait undelivered for contact `contact` of `email`.
pub(super) async fn queued_from(
    pool: &SqlitePool,
    email: &str,
    contact: i64,
    sender: &str,
) -> StoreResult<usize> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sends \
         WHERE to_email = ? AND to_contact = ? AND sender = ? AND status = 'queued'",
    )
    .bind(email)
    .bind(contact)
    .bind(sender)
    .fetch_one(pool)
    .await?;
    Ok(usize::try_from(n).unwrap_or(0))
}
