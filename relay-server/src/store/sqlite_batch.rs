//! Group commit of contact updates (and, beside them, of SENDs and their claims: see
//! [`super::sqlite_sends`]): a SIP refresh is one `UPDATE` of one contact, and at
//! thousands of REGISTERs a second the cost is in the round trips to SQLite's thread and in the
//! commits, not in the rows. Updates queue here; one task takes every update waiting, writes
//! them in one statement (one implicit transaction, one commit) and only then answers each, so a
//! caller still hears back only once its row is committed.
//!
//! A refresh queued with [`ContactWrites::later`] waits for no answer (write-behind, as
//! Kamailio's usrloc write-back): the registrar answers from memory, and the task gathers such
//! refreshes for up to [`BEHIND_DELAY`] before it writes them, so at high rates a contact
//! refreshed many times in that window is one row and the rows share commits. Updates of one
//! contact are written once, the last one winning (each replaces the whole row), and every
//! update is written after those queued before it; an update someone waits for, or a flush,
//! ends the gathering at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use super::sqlite_query::changed_one;
use super::sqlite_rows::{source_name, to_json};
use super::sqlite_sends::{ClaimWaiter, Group, SendsWaiter};
use super::{ContactRecord, SendRecord, StoreError, StoreResult};

/// Most contacts written in one transaction (7 parameters each).
const MAX_BATCH: usize = 64;

/// Most SENDs and claims written in one transaction.
const MAX_SENDS: usize = 256;

/// How long refreshes written behind are gathered before they are written.
const BEHIND_DELAY: Duration = Duration::from_millis(50);

/// Most contacts gathered behind before they are written (in transactions of [`MAX_BATCH`]).
const MAX_GATHERED: usize = 1024;

/// Most updates queued without a waiter; past it [`ContactWrites::later`] refuses, and the
/// caller waits for its commit instead (the store sets the pace when it falls behind).
const MAX_BEHIND: usize = 65_536;

/// Where the outcome of an update goes, if anyone waits for it.
type Waiter = oneshot::Sender<StoreResult<bool>>;

/// What the writing task is asked.
#[derive(Debug)]
enum Op {
    /// Write this contact; tell the waiter (if any) once committed.
    Update(ContactRecord, Option<Waiter>),
    /// Answer once everything queued before is committed.
    Flush(oneshot::Sender<()>),
    /// Store these SENDs (all or none); answer once committed.
    Sends(Vec<SendRecord>, SendsWaiter),
    /// Mark this SEND delivered unless cancelled; answer whether it was, once committed.
    Claim(i64, ClaimWaiter),
}

/// One row of a group with whoever waits for it.
type Row = (ContactRecord, Option<Waiter>);

/// The queue of contact updates; cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct ContactWrites {
    /// Into the writing task.
    tx: mpsc::UnboundedSender<Op>,
    /// How many updates without a waiter are queued and not yet taken by the task.
    behind: Arc<AtomicUsize>,
}

impl ContactWrites {
    /// Starts the writing task on the current runtime, writing through `writer`.
    pub(super) fn start(writer: SqlitePool) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let behind = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run(writer.clone(), rx, behind.clone()));
        Self { tx, behind }
    }

    /// Replaces a contact's fields once committed with those queued beside it; false if it is
    /// gone. None when the task is gone (its runtime ended): the caller writes it alone.
    pub(super) async fn update(&self, contact: &ContactRecord) -> Option<StoreResult<bool>> {
        let (done, outcome) = oneshot::channel();
        self.tx.send(Op::Update(contact.clone(), Some(done))).ok()?;
        outcome.await.ok()
    }

    /// Queues a contact update without waiting for its commit; false when the task is gone
    /// or too far behind.
    pub(super) fn later(&self, contact: ContactRecord) -> bool {
        if self.behind.fetch_add(1, Ordering::Relaxed) >= MAX_BEHIND {
            self.behind.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        if self.tx.send(Op::Update(contact, None)).is_err() {
            self.behind.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Stores SENDs once committed with the other SENDs and claims waiting; None when the
    /// task is gone: the caller writes them alone.
    pub(super) async fn sends(&self, sends: &[SendRecord]) -> Option<StoreResult<()>> {
        let (done, outcome) = oneshot::channel();
        self.tx.send(Op::Sends(sends.to_vec(), done)).ok()?;
        outcome.await.ok()
    }

    /// Claims a SEND once committed with the others waiting; None when the task is gone.
    pub(super) async fn claim(&self, seq: i64) -> Option<StoreResult<bool>> {
        let (done, outcome) = oneshot::channel();
        self.tx.send(Op::Claim(seq, done)).ok()?;
        outcome.await.ok()
    }

    /// Waits until every update queued before is committed (or the task is gone).
    pub(super) async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.tx.send(Op::Flush(done)).is_ok() {
            let _ = flushed.await;
        }
    }
}

async fn run(writer: SqlitePool, mut rx: mpsc::UnboundedReceiver<Op>, behind: Arc<AtomicUsize>) {
    let mut carry: Option<Op> = None;
    loop {
        let first = match carry.take() {
            Some(first) => first,
            None => match rx.recv().await {
                Some(first) => taken(first, &behind),
                None => return,
            },
        };
        let first = match first {
            Op::Update(contact, None) => {
                let (mut rows, next) = gather(contact, &mut rx, &behind).await;
                carry = next;
                while !rows.is_empty() {
                    let rest = rows.split_off(rows.len().min(MAX_BATCH));
                    write(&writer, rows.into_iter().map(|c| (c, None)).collect()).await;
                    rows = rest;
                }
                continue;
            }
            first => first,
        };
        let mut batch: Vec<Row> = Vec::new();
        let mut sends = Group::default();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(op) = next.take() {
            match op {
                Op::Flush(done) => flushes.push(done),
                op @ (Op::Sends(..) | Op::Claim(..)) if sends.len() == MAX_SENDS => {
                    carry = Some(op);
                    break;
                }
                Op::Sends(records, done) => sends.sends.push((records, done)),
                Op::Claim(seq, done) => sends.claims.push((seq, done)),
                Op::Update(contact, waiter) => {
                    let full = batch.len() == MAX_BATCH;
                    let same = |(c, _): &&mut Row| c.id == contact.id && c.email == contact.email;
                    match batch.iter_mut().find(same) {
                        // A later update of the same contact replaces the whole row, unless
                        // someone waits for the earlier one: then it goes in the next group.
                        Some((row, slot @ None)) => {
                            *row = contact;
                            *slot = waiter;
                        }
                        Some(_) => {
                            carry = Some(Op::Update(contact, waiter));
                            break;
                        }
                        None if full => {
                            carry = Some(Op::Update(contact, waiter));
                            break;
                        }
                        None => batch.push((contact, waiter)),
                    }
                }
            }
            next = rx.try_recv().ok().map(|op| taken(op, &behind));
        }
        if !batch.is_empty() {
            write(&writer, batch).await;
        }
        super::sqlite_sends::write(&writer, sends).await;
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Gathers the updates without a waiter that come within [`BEHIND_DELAY`] of `first`, the
/// last of each contact; stops early at [`MAX_GATHERED`] contacts or at another kind of
/// operation, returned to be done after them.
async fn gather(
    first: ContactRecord,
    rx: &mut mpsc::UnboundedReceiver<Op>,
    behind: &AtomicUsize,
) -> (Vec<ContactRecord>, Option<Op>) {
    let deadline = tokio::time::sleep(BEHIND_DELAY);
    tokio::pin!(deadline);
    let mut index = HashMap::from([((first.email.clone(), first.id), 0)]);
    let mut rows = vec![first];
    while rows.len() < MAX_GATHERED {
        let op = tokio::select! {
            op = rx.recv() => op,
            () = &mut deadline => break,
        };
        match op.map(|op| taken(op, behind)) {
            Some(Op::Update(contact, None)) => {
                match index.get(&(contact.email.clone(), contact.id)) {
                    Some(&at) => rows[at] = contact,
                    None => {
                        index.insert((contact.email.clone(), contact.id), rows.len());
                        rows.push(contact);
                    }
                }
            }
            Some(other) => return (rows, Some(other)),
            None => break,
        }
    }
    (rows, None)
}

/// Counts an update without a waiter as no longer queued.
fn taken(op: Op, behind: &AtomicUsize) -> Op {
    if matches!(op, Op::Update(_, None)) {
        behind.fetch_sub(1, Ordering::Relaxed);
    }
    op
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

async fn write(writer: &SqlitePool, batch: Vec<Row>) {
    let started = std::time::Instant::now();
    write_batch(writer, batch).await;
    crate::observe::store_commit("contacts", started.elapsed());
}

/// Writes `batch`: one row alone, several in one statement (each alone again if one failed).
async fn write_batch(writer: &SqlitePool, batch: Vec<Row>) {
    if let [(contact, _)] = batch.as_slice() {
        let outcome = update_one(writer, contact).await;
        if let Some((contact, waiter)) = batch.into_iter().next() {
            tell(&contact, waiter, outcome);
        }
        return;
    }
    match write_all(writer, &batch).await {
        // Every contact was there: the common case.
        Ok(updated) if updated == batch.len() as i64 => {
            for (contact, waiter) in batch {
                tell(&contact, waiter, Ok(true));
            }
        }
        outcome => {
            // Some contact is gone (or the script failed): tell which, each on its own (an
            // update written twice changes nothing more).
            if let Err(e) = outcome {
                tracing::debug!(error = %e, rows = batch.len(), "batched contact update failed");
            }
            for (contact, waiter) in batch {
                let outcome = update_one(writer, &contact).await;
                tell(&contact, waiter, outcome);
            }
        }
    }
}

/// Gives the row's outcome to whoever waits for it; with nobody waiting (a write-behind
/// refresh), a failure is logged: the binding was removed meanwhile, or the store failed.
fn tell(contact: &ContactRecord, waiter: Option<Waiter>, outcome: StoreResult<bool>) {
    match (waiter, &outcome) {
        (Some(done), _) => {
            let _ = done.send(outcome);
        }
        (None, Ok(true)) => {}
        (None, Ok(false)) => {
            tracing::debug!(email = %contact.email, id = contact.id, "refreshed contact was gone");
        }
        (None, Err(e)) => {
            tracing::warn!(error = %e, email = %contact.email, "writing a refreshed contact failed");
        }
    }
}

/// Runs the updates of `batch` in one transaction; how many rows they changed.
async fn write_all(writer: &SqlitePool, batch: &[Row]) -> StoreResult<i64> {
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

#[cfg(test)]
mod tests {
    use restsip_protocol::ContactSource;
    use serde_json::{json, Map};

    use super::MAX_BEHIND;
    use crate::store::{ContactRecord, SqliteStore, Store, UserRecord};

    /// A store in memory with the user a@x.
    async fn store_with_user() -> SqliteStore {
        let store = SqliteStore::open("sqlite::memory:").await.expect("store");
        let user = UserRecord {
            email: "a@x".into(),
            password_hash: "x".into(),
            name: None,
            data: Map::new(),
            created: 1,
        };
        store.create_user(&user).await.expect("user");
        store
    }

    #[tokio::test]
    async fn concurrent_updates_are_committed_together_and_a_gone_contact_is_told() {
        let store = store_with_user().await;
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

    #[tokio::test]
    async fn updates_written_behind_are_on_disk_after_a_flush_in_the_order_queued() {
        let store = store_with_user().await;
        let contact = ContactRecord {
            email: "a@x".into(),
            id: 0,
            contact: Some("sip:p@h".into()),
            expires_at: 1_000,
            presence: None,
            source: ContactSource::Sip,
            sip: None,
        };
        let contact = store
            .add_contact(&contact)
            .await
            .expect("add")
            .expect("user");
        let at = |expires_at| ContactRecord {
            expires_at,
            ..contact.clone()
        };
        for n in 1..=50 {
            assert!(store.update_contact_later(at(10_000 + n)));
        }
        store.flush().await;
        let stored = store.contacts("a@x", 0).await.expect("contacts");
        assert_eq!(stored[0].expires_at, 10_050, "the last refresh wins");
        // One written behind, then one waited for, then one behind again: each in turn.
        assert!(store.update_contact_later(at(20_000)));
        assert!(store.update_contact(&at(30_000)).await.expect("update"));
        assert!(store.update_contact_later(at(40_000)));
        store.flush().await;
        let stored = store.contacts("a@x", 0).await.expect("contacts");
        assert_eq!(stored[0].expires_at, 40_000);
        // A contact removed meanwhile stays removed.
        store
            .remove_contact("a@x", contact.id)
            .await
            .expect("remove");
        assert!(store.update_contact_later(at(50_000)));
        store.flush().await;
        assert!(store.contacts("a@x", 0).await.expect("contacts").is_empty());
    }

    #[tokio::test]
    async fn a_writer_too_far_behind_refuses_more_until_it_catches_up() {
        let store = SqliteStore::open("sqlite::memory:").await.expect("store");
        let contact = ContactRecord {
            email: "a@x".into(),
            id: 1,
            contact: None,
            expires_at: 1_000,
            presence: None,
            source: ContactSource::Sip,
            sip: None,
        };
        // The writing task cannot run meanwhile (one thread, no await).
        for _ in 0..MAX_BEHIND {
            assert!(store.update_contact_later(contact.clone()));
        }
        assert!(
            !store.update_contact_later(contact.clone()),
            "past the bound"
        );
        store.flush().await;
        assert!(store.update_contact_later(contact), "caught up");
    }
}
