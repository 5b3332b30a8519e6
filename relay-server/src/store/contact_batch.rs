//! Group commit of contact updates, on either engine: a SIP refresh is one `UPDATE` of one
//! contact, and at thousands of REGISTERs a second the cost is in the round trips to the
//! database and in the commits, not in the rows. Updates queue here; one task takes every update waiting, writes
//! them in one transaction (one commit; how is the engine's [`ContactWriter`]) and only then answers each, so a
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
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::write_behind::{self, Queue};
use super::{ContactRecord, StoreResult};

/// How an engine writes contact updates: a group in one transaction, or one alone.
#[async_trait]
pub(super) trait ContactWriter: Send + Sync + 'static {
    /// Writes every contact of `batch` (distinct contacts) in one transaction; how many rows
    /// it changed (fewer than the batch: some contact is gone).
    async fn write_all(&self, batch: &[&ContactRecord]) -> StoreResult<u64>;
    /// Writes one contact in a statement of its own; false if it is gone.
    async fn write_one(&self, contact: &ContactRecord) -> StoreResult<bool>;
}

/// The writer the task writes through.
type Writer = Arc<dyn ContactWriter>;

/// Most contacts written in one transaction (SQLite: 7 parameters each).
const MAX_BATCH: usize = 64;

/// How long refreshes written behind are gathered before they are written.
const BEHIND_DELAY: Duration = Duration::from_millis(50);

/// Most contacts gathered behind before they are written (in transactions of [`MAX_BATCH`]).
const MAX_GATHERED: usize = 1024;

/// Where the outcome of an update goes, if anyone waits for it.
type Waiter = oneshot::Sender<StoreResult<bool>>;

/// One update (the contact's whole row) with whoever waits for it.
type Row = (ContactRecord, Option<Waiter>);

/// The queue of contact updates; cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct ContactWrites {
    /// Into the writing task (at most [`write_behind::MAX_BEHIND`] updates without a waiter).
    queue: Queue<Row>,
}

impl ContactWrites {
    /// Starts the writing task on the current runtime, writing through `writer`.
    pub(super) fn start(writer: Writer) -> Self {
        Self {
            queue: Queue::start::<Group>(writer),
        }
    }

    /// Replaces a contact's fields once committed with those queued beside it; false if it is
    /// gone. None when the task is gone (its runtime ended): the caller writes it alone.
    pub(super) async fn update(&self, contact: &ContactRecord) -> Option<StoreResult<bool>> {
        self.queue.ask(|done| (contact.clone(), Some(done))).await
    }

    /// Queues a contact update without waiting for its commit; false when the task is gone
    /// or too far behind.
    pub(super) fn later(&self, contact: ContactRecord) -> bool {
        self.queue.later((contact, None))
    }

    /// Waits until every update queued before is committed (or the task is gone).
    pub(super) async fn flush(&self) {
        self.queue.flush().await;
    }
}

/// The updates of one group, one row per contact.
#[derive(Default)]
struct Group {
    /// The rows in the order their contacts were first queued.
    rows: Vec<Row>,
    /// Where each contact's row is.
    index: HashMap<(String, i64), usize>,
    /// Gathering updates written behind until then (the group began with one); else a
    /// group of at most [`MAX_BATCH`] rows, written at once.
    gathering: Option<Instant>,
}

#[async_trait]
impl write_behind::Group for Group {
    type Op = Row;
    type Writer = Writer;

    fn take(&mut self, (contact, waiter): Row) -> Option<Row> {
        if self.rows.is_empty() && waiter.is_none() {
            self.gathering = Some(Instant::now() + BEHIND_DELAY);
        }
        let key = (contact.email.clone(), contact.id);
        let gathering = self.gathering.is_some();
        match self.index.get(&key) {
            // A later update of the same contact replaces the whole row, unless someone
            // waits for the earlier one: then it goes in the next group.
            Some(&at) if self.rows[at].1.is_none() && !(gathering && waiter.is_some()) => {
                self.rows[at] = (contact, waiter);
                None
            }
            Some(_) => Some((contact, waiter)),
            // An update someone waits for ends the gathering: it goes in the next group.
            None if gathering && waiter.is_some() => Some((contact, waiter)),
            None if self.rows.len() == if gathering { MAX_GATHERED } else { MAX_BATCH } => {
                Some((contact, waiter))
            }
            None => {
                self.index.insert(key, self.rows.len());
                self.rows.push((contact, waiter));
                None
            }
        }
    }

    fn wait_until(&mut self) -> Option<Instant> {
        self.gathering.filter(|_| self.rows.len() < MAX_GATHERED)
    }

    /// Writes the rows, in transactions of at most [`MAX_BATCH`].
    async fn write(self, writer: &Writer) {
        let mut rows = self.rows;
        while !rows.is_empty() {
            let rest = rows.split_off(rows.len().min(MAX_BATCH));
            let started = std::time::Instant::now();
            write_batch(writer, rows).await;
            crate::observe::store_commit("contacts", started.elapsed());
            rows = rest;
        }
    }
}

/// Writes `batch`: one row alone, several in one transaction (each alone again if one failed).
async fn write_batch(writer: &Writer, batch: Vec<Row>) {
    if let [(contact, _)] = batch.as_slice() {
        let outcome = writer.write_one(contact).await;
        if let Some((contact, waiter)) = batch.into_iter().next() {
            tell(&contact, waiter, outcome);
        }
        return;
    }
    let rows: Vec<&ContactRecord> = batch.iter().map(|(c, _)| c).collect();
    match writer.write_all(&rows).await {
        // Every contact was there: the common case.
        Ok(updated) if updated == rows.len() as u64 => {
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
                let outcome = writer.write_one(&contact).await;
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

#[cfg(test)]
mod tests {
    use restsip_protocol::ContactSource;
    use serde_json::{json, Map};

    use crate::store::test_db::on_both_engines;
    use crate::store::write_behind::MAX_BEHIND;
    use crate::store::{ContactRecord, Store, UserRecord};

    /// Adds the user a@x.
    async fn with_user(store: &dyn Store) {
        let user = UserRecord {
            email: "a@x".into(),
            password_hash: "x".into(),
            name: None,
            data: Map::new(),
            created: 1,
        };
        store.create_user(&user).await.expect("user");
    }

    on_both_engines! {
        async fn concurrent_updates_are_committed_together_and_a_gone_contact_is_told(store) {
            with_user(&*store).await;
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

        async fn updates_written_behind_are_on_disk_after_a_flush_in_the_order_queued(store) {
            with_user(&*store).await;
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

        async fn a_writer_too_far_behind_refuses_more_until_it_catches_up(store) {
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
}
