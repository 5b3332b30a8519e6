//! The SQLite side of the group commit of contact updates ([`super::contact_batch`]): a group
//! is one script of one `UPDATE` per contact in one transaction, sent to SQLite's thread at
//! once.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::SqlitePool;

use super::contact_batch::ContactWriter;
use super::query::changed_one;
use super::rows::{source_name, to_json};
use super::{ContactRecord, StoreError, StoreResult};

/// Writes contact updates through the SQLite store's one writer connection, in the store's
/// turn to write.
#[derive(Debug)]
pub(super) struct SqliteContacts {
    /// The writer.
    pub(super) writer: SqlitePool,
    /// The store's turn to write (`SqliteStore::writing`).
    pub(super) turn: Arc<tokio::sync::Mutex<()>>,
}

#[async_trait]
impl ContactWriter for SqliteContacts {
    async fn write_all(&self, batch: &[&ContactRecord]) -> StoreResult<u64> {
        let _turn = self.turn.lock().await;
        write_all(&self.writer, batch).await
    }

    async fn write_one(&self, contact: &ContactRecord) -> StoreResult<bool> {
        let _turn = self.turn.lock().await;
        update_one(&self.writer, contact).await
    }
}

/// The script updating `rows` contacts (a power of two, so few scripts are prepared): one
/// transaction of one `UPDATE` per contact by primary key, sent to SQLite's thread at once, with
/// the connection's change count before and after (two rows back instead of one per contact).
fn script(rows: usize) -> String {
    let mut sql = String::from("BEGIN IMMEDIATE; SELECT total_changes();");
    for _ in 0..rows {
        sql.push_str(
            " UPDATE contacts SET contact = ?, expires_at = ?, presence = ?, source = ?, sip = ? \
             WHERE email = ? AND id = ?;",
        );
    }
    sql.push_str(" SELECT total_changes(); COMMIT;");
    sql
}

/// Runs the updates of `batch` in one transaction; how many rows they changed.
async fn write_all(writer: &SqlitePool, batch: &[&ContactRecord]) -> StoreResult<u64> {
    let rows = batch.len().next_power_of_two();
    let sql = script(rows);
    let mut query = sqlx::query(&sql);
    for c in batch {
        query = query
            .bind(&c.contact)
            .bind(c.expires_at)
            .bind(c.presence.as_ref().map(to_json))
            .bind(source_name(c.source))
            .bind(c.sip.as_ref().map(to_json))
            .bind(&c.email)
            .bind(c.id);
    }
    // Padding rows match no contact (ids start at 1).
    for _ in batch.len()..rows {
        query = query
            .bind(None::<String>)
            .bind(0i64)
            .bind(None::<String>)
            .bind("")
            .bind(None::<String>)
            .bind("")
            .bind(-1i64);
    }
    // The connection stays ours until the transaction is over, committed or rolled back.
    let mut conn = writer.acquire().await?;
    match query.fetch_all(&mut *conn).await {
        Ok(counts) => match counts.as_slice() {
            [before, after] => {
                let count = |r: &sqlx::sqlite::SqliteRow| sqlx::Row::try_get::<i64, _>(r, 0);
                Ok(u64::try_from(count(after)? - count(before)?).unwrap_or(0))
            }
            _ => Err(StoreError::Corrupt(format!(
                "{} change counts for one batch",
                counts.len()
            ))),
        },
        Err(e) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            Err(e.into())
        }
    }
}

/// Updates one contact in a statement of its own; false if it is gone.
pub(super) async fn update_one(writer: &SqlitePool, contact: &ContactRecord) -> StoreResult<bool> {
    let update = sqlx::query(
        "UPDATE contacts SET contact = ?, expires_at = ?, presence = ?, source = ?, sip = ? WHERE email = ? AND id = ?",
    )
    .bind(&contact.contact)
    .bind(contact.expires_at)
    .bind(contact.presence.as_ref().map(to_json))
    .bind(source_name(contact.source))
    .bind(contact.sip.as_ref().map(to_json))
    .bind(&contact.email)
    .bind(contact.id);
    changed_one(update, writer).await
}
