//! Group commit of contact updates: a SIP refresh is one `UPDATE` of one contact, and at
//! thousands of REGISTERs a second the cost is in the round trips to SQLite's thread and in the
//! commits, not in the rows. Updates queue here; one task takes every update waiting, writes
//! them in one statement (one implicit transaction, one commit) and only then answers each, so a
//! caller still hears back only once its row is committed.

use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use super::sqlite::{source_name, to_json};
use super::{ContactRecord, StoreError, StoreResult};

/// Most updates written in one transaction (7 parameters each).
const MAX_BATCH: usize = 64;

/// One update waiting, with where its outcome goes.
type Pending = (ContactRecord, oneshot::Sender<StoreResult<bool>>);

/// The queue of contact updates; cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct ContactWrites {
    /// Into the writing task.
    tx: mpsc::UnboundedSender<Pending>,
}

impl ContactWrites {
    /// Starts the writing task on the current runtime, writing through `writer`.
    pub(super) fn start(writer: SqlitePool) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(writer.clone(), rx));
        Self { tx }
    }

    /// Replaces a contact's fields once committed with those queued beside it; false if it is
    /// gone. None when the task is gone (its runtime ended): the caller writes it alone.
    pub(super) async fn update(&self, contact: &ContactRecord) -> Option<StoreResult<bool>> {
        let (done, outcome) = oneshot::channel();
        self.tx.send((contact.clone(), done)).ok()?;
        outcome.await.ok()
    }
}

async fn run(writer: SqlitePool, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let mut carry: Option<Pending> = None;
    loop {
        let first = match carry.take() {
            Some(first) => first,
            None => match rx.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            let Ok(next) = rx.try_recv() else { break };
            // Two updates of one contact go in order, in separate statements.
            if batch
                .iter()
                .any(|(c, _)| c.id == next.0.id && c.email == next.0.email)
            {
                carry = Some(next);
                break;
            }
            batch.push(next);
        }
        write(&writer, batch).await;
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

async fn write(writer: &SqlitePool, batch: Vec<Pending>) {
    if let [(contact, _)] = batch.as_slice() {
        let outcome = update_one(writer, contact).await;
        if let Some((_, done)) = batch.into_iter().next() {
            let _ = done.send(outcome);
        }
        return;
    }
    match write_all(writer, &batch).await {
        // Every contact was there: the common case.
        Ok(updated) if updated == batch.len() as i64 => {
            for (_, done) in batch {
                let _ = done.send(Ok(true));
            }
        }
        outcome => {
            // Some contact is gone (or the script failed): tell which, each on its own (an
            // update written twice changes nothing more).
            if let Err(e) = outcome {
                tracing::debug!(error = %e, rows = batch.len(), "batched contact update failed");
            }
            for (c, done) in batch {
                let _ = done.send(update_one(writer, &c).await);
            }
        }
    }
}

/// Runs the updates of `batch` in one transaction; how many rows they changed.
async fn write_all(writer: &SqlitePool, batch: &[Pending]) -> StoreResult<i64> {
    let rows = batch.len().next_power_of_two();
    let sql = script(rows);
    let mut query = sqlx::query(&sql);
    for (c, _) in batch {
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
                Ok(count(after)? - count(before)?)
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
    let done = sqlx::query(
        "UPDATE contacts SET contact = ?, expires_at = ?, presence = ?, source = ?, sip = ? WHERE email = ? AND id = ?",
    )
    .bind(&contact.contact)
    .bind(contact.expires_at)
    .bind(contact.presence.as_ref().map(to_json))
    .bind(source_name(contact.source))
    .bind(contact.sip.as_ref().map(to_json))
    .bind(&contact.email)
    .bind(contact.id)
    .execute(writer)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use restsip_protocol::ContactSource;
    use serde_json::{json, Map};

    use crate::store::{ContactRecord, SqliteStore, Store, UserRecord};

    #[tokio::test]
    async fn concurrent_updates_are_committed_together_and_a_gone_contact_is_told() {
        let store = SqliteStore::open("sqlite::memory:").await.expect("store");
        let user = UserRecord {
            email: "a@x".into(),
            password_hash: "x".into(),
            name: None,
            data: Map::new(),
            created: 1,
        };
        store.create_user(&user).await.expect("user");
        let mut contacts = Vec::new();
        for n in 0..5 {
            let c = ContactRecord {
                email: "a@x".into(),
                id: 0,
                contact: Some(format!("sip:p{n}@h")),
                expires_at: 1_000,
                presence: None,
                source: ContactSource::Sip,
                sip: None,
            };
            contacts.push(store.add_contact(&c).await.expect("add").expect("user"));
        }
        let mut gone = contacts[0].clone();
        gone.id = 99;
        let mut updates: Vec<ContactRecord> = contacts
            .iter()
            .map(|c| ContactRecord {
                expires_at: 5_000 + c.id,
                sip: Some(json!({"cseq": c.id})),
                ..c.clone()
            })
            .collect();
        updates.push(gone);
        // Two updates of one contact in a row: the later one wins.
        let mut again = updates[1].clone();
        again.expires_at = 9_000;
        updates.push(again);
        let outcomes =
            futures_util::future::join_all(updates.iter().map(|u| store.update_contact(u))).await;
        let found: Vec<bool> = outcomes.into_iter().map(|o| o.expect("update")).collect();
        assert_eq!(found, vec![true, true, true, true, true, false, true]);
        let stored = store.contacts("a@x", 0).await.expect("contacts");
        assert_eq!(stored.len(), 5);
        for (s, c) in stored.iter().zip(&contacts) {
            let expires = if s.id == contacts[1].id {
                9_000
            } else {
                5_000 + c.id
            };
            assert_eq!(s.expires_at, expires);
            assert_eq!(s.sip, Some(json!({"cseq": c.id})));
        }
        // A group where every contact is there.
        let later: Vec<ContactRecord> = stored
            .iter()
            .map(|c| ContactRecord {
                expires_at: 20_000,
                ..c.clone()
            })
            .collect();
        let outcomes =
            futures_util::future::join_all(later.iter().map(|u| store.update_contact(u))).await;
        assert!(outcomes.into_iter().all(|o| o.expect("update")));
        let stored = store.contacts("a@x", 0).await.expect("contacts");
        assert!(stored.iter().all(|c| c.expires_at == 20_000), "{stored:?}");
    }
}
