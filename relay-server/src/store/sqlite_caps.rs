//! The flood caps of the SQLite store: offline messages added only within their mailbox's
//! caps (one statement, so concurrent senders cannot pass a cap together), and the queued
//! SENDs of one sender to one contact. The [`Store`] methods in `sqlite.rs` call these.
//!
//! [`Store`]: super::Store

use sqlx::SqlitePool;

use super::sqlite_rows::to_json;
use super::{MailCaps, MailRecord, MailboxFull, StoreResult};

/// Bytes a message takes in its mailbox: its url, body, subject and sender as stored.
pub(super) fn mail_size(mail: &MailRecord) -> usize {
    mail.url.as_ref().map_or(0, String::len)
        + mail.body.as_ref().map_or(0, |b| to_json(b).len())
        + mail.subject.as_ref().map_or(0, String::len)
        + mail.sender.len()
}

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

#[cfg(test)]
mod tests {
    use super::super::{SqliteStore, Store, UserRecord};
    use super::*;

    fn mail(owner: &str, sender: &str, body: &str) -> MailRecord {
        MailRecord {
            id: 0,
            owner: owner.to_owned(),
            sender: sender.to_owned(),
            url: None,
            body: Some(serde_json::Value::String(body.to_owned())),
            subject: None,
            created: 1,
        }
    }

    #[tokio::test]
    async fn a_mailbox_takes_messages_until_a_cap_and_says_which() {
        let s = SqliteStore::open("sqlite::memory:").await.expect("store");
        s.create_user(&UserRecord {
            email: "o@x".to_owned(),
            password_hash: "x".to_owned(),
            name: None,
            data: serde_json::Map::new(),
            created: 1,
        })
        .await
        .expect("user");
        let caps = MailCaps {
            messages: 3,
            bytes: 100,
            per_sender: 2,
        };
        let add = |m: MailRecord| {
            let s = s.clone();
            async move { s.add_mail_within(&m, &caps).await.expect("store") }
        };
        assert!(add(mail("o@x", "a@x", "1")).await.is_ok());
        assert!(add(mail("o@x", "a@x", "2")).await.is_ok());
        let full = add(mail("o@x", "a@x", "3")).await.expect_err("a's share");
        assert_eq!((full.messages, full.from_sender), (2, 2));
        assert_eq!(full.bytes, 2 * mail_size(&mail("o@x", "a@x", "1")));
        let big = add(mail("o@x", "b@x", &"x".repeat(90)))
            .await
            .expect_err("bytes");
        assert_eq!(big.from_sender, 0);
        assert!(big.bytes + big.size > caps.bytes);
        assert!(add(mail("o@x", "b@x", "4")).await.is_ok(), "b's first fits");
        let full = add(mail("o@x", "c@x", "5")).await.expect_err("3 messages");
        assert_eq!(full.messages, 3);
        assert_eq!(s.mail("o@x").await.expect("mail").len(), 3);
        // Unlimited, the store's plain add still adds.
        assert!(s.add_mail(&mail("o@x", "c@x", "6")).await.is_ok());
    }
}
