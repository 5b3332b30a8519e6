//! The SQLite side of the group commit of SENDs and claims ([`super::send_batch`]): a
//! connection of its own (rusqlite), called directly on the thread that forms the groups
//! ([`super::write_behind::Queue::start_on_thread`]), so a group is written where it forms and
//! its waiters are answered from there. Through sqlx, a group crossed from the group-writing
//! task to sqlx's SQLite thread and back, with one more message per statement and per returned
//! row, and a ping on every connection release: the SEND scenario of `rest-bench` went from
//! about 9,700 to 12,600 SEND/s when the group moved to a thread of its own (README,
//! "Benchmarks").
//!
//! The store's other writes keep their sqlx writer connection. SQLite lets one of the two
//! write at a time, so both take the store's turn to write first (`SqliteStore::writing`, an
//! async mutex): within a relay they queue there, not in SQLite's busy handler, whose sleeps
//! (a millisecond and more on sqlx's connection) put 5 ms on the p99 of other writes under a
//! SEND load. Other relays on the same file are waited for in a busy handler of this
//! connection's own, which sleeps a few microseconds at first.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, TransactionBehavior};

use super::rows::to_json;
use super::send_batch::SendWriter;
use super::statements::CLAIM_SEND;
use super::{SendRecord, StoreResult};

/// How long a group waits for the other writer before it fails.
const BUSY_FOR: Duration = Duration::from_secs(10);

/// Stores one SEND row, queued.
const INSERT: &str = "INSERT INTO sends (seq, msg_id, sender, to_email, to_contact, target, \
                      body, sent, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued')";

/// Writes SENDs and claims through a connection of its own, blocking the calling thread.
#[derive(Debug)]
pub(super) struct DirectSends {
    /// The connection.
    conn: Mutex<Connection>,
    /// The store's turn to write (`SqliteStore::writing`), taken for each group.
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl DirectSends {
    /// Opens the database file at `path`, already created and migrated by the store; each
    /// group is written in the store's `turn` to write.
    pub(super) fn open(path: &Path, turn: Arc<tokio::sync::Mutex<()>>) -> StoreResult<Self> {
        let conn = Connection::open(path)?;
        // WAL is the file's own setting (the store set it); the others are the connection's.
        // NORMAL in WAL mode: a commit is in the WAL file before it returns (it survives
        // kill -9), as on the store's other connections.
        // The log is checkpointed by a thread of its own ([`super::sqlite_checkpoint`]).
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA wal_autocheckpoint = 0;",
        )?;
        conn.busy_handler(Some(wait_for_writer))?;
        Ok(Self {
            conn: Mutex::new(conn),
            turn,
        })
    }
}

/// SQLite's busy handler: called with how many times it was called for this lock; true to
/// try again after sleeping. The sleeps grow from 20 µs to 1 ms and stop after [`BUSY_FOR`].
fn wait_for_writer(tries: i32) -> bool {
    match backoff(tries) {
        Some(sleep) => {
            std::thread::sleep(sleep);
            true
        }
        None => false,
    }
}

/// The sleep before try `tries + 1`, or none once [`BUSY_FOR`] has passed.
fn backoff(tries: i32) -> Option<Duration> {
    let tries = u32::try_from(tries).unwrap_or(0);
    // At most 1 ms each: past the first few, 1 ms per try.
    if Duration::from_millis(u64::from(tries)) >= BUSY_FOR {
        return None;
    }
    Some(Duration::from_micros(20u64 << tries.min(6)).min(Duration::from_millis(1)))
}

#[async_trait]
impl SendWriter for DirectSends {
    /// Blocks the thread for the transaction (it is the group-writing thread's own, or, once
    /// that is gone, a rare caller writing alone).
    async fn write(&self, sends: &[&SendRecord], claims: &[i64]) -> StoreResult<Vec<i64>> {
        let _turn = self.turn.lock().await;
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut claimed = Vec::with_capacity(claims.len());
        {
            let mut insert = tx.prepare_cached(INSERT)?;
            for s in sends {
                insert.execute(params![
                    s.seq,
                    s.msg_id,
                    s.sender,
                    s.to_email,
                    s.to_contact,
                    s.target,
                    to_json(&s.body),
                    s.sent
                ])?;
            }
            let mut claim = tx.prepare_cached(CLAIM_SEND.sqlite)?;
            for &seq in claims {
                if claim.execute([seq])? == 1 {
                    claimed.push(seq);
                }
            }
        }
        // Dropped without a commit (an error above), the transaction rolls back.
        tx.commit()?;
        Ok(claimed)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use restsip_protocol::DeliveryStatus;

    use super::*;
    use crate::store::tests::{contact, user};
    use crate::store::{SqliteStore, Store};

    /// A store on a scratch database file, its directory, and a contact of a@x.
    pub(in crate::store) async fn scratch_store() -> (SqliteStore, std::path::PathBuf, i64) {
        let store = SqliteStore::open("sqlite::memory:").await.expect("store");
        let dir = store.scratch().expect("a scratch directory").to_owned();
        store.create_user(&user("a@x")).await.expect("user");
        let c = store
            .add_contact(&contact("a@x", i64::MAX))
            .await
            .expect("add")
            .expect("user")
            .id;
        (store, dir, c)
    }

    #[tokio::test]
    async fn a_send_waits_for_the_other_writer_then_commits_and_memory_leaves_nothing_behind() {
        let (store, dir, c) = scratch_store().await;
        assert!(dir.join("store.db").exists());
        let send = SendRecord {
            seq: 1,
            msg_id: "m1".to_owned(),
            sender: "b@x".to_owned(),
            to_email: "a@x".to_owned(),
            to_contact: c,
            target: format!("/login/a@x/{c}"),
            body: serde_json::json!({"command": "im", "text": "hi"}),
            sent: 1,
            status: DeliveryStatus::Queued,
        };
        // The store's other writer holds SQLite's write lock for a while.
        let mut other = store.writer.acquire().await.expect("writer");
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *other)
            .await
            .expect("begin");
        let queued = tokio::spawn({
            let store = store.clone();
            let send = send.clone();
            async move { store.queue_sends(&[send]).await }
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            !queued.is_finished(),
            "the SEND waits for the lock, it does not fail"
        );
        sqlx::query("COMMIT")
            .execute(&mut *other)
            .await
            .expect("commit");
        drop(other);
        queued
            .await
            .expect("task")
            .expect("stored once the lock is free");
        let stored = store.pending_sends("a@x", c, None).await.expect("pending");
        assert_eq!(stored.iter().map(|s| &s.msg_id).collect::<Vec<_>>(), ["m1"]);
        drop(store);
        assert!(
            !dir.exists(),
            "the scratch directory is removed with the store"
        );
    }

    #[test]
    fn the_busy_handler_backs_off_then_gives_up() {
        // The first tries sleep microseconds, not SQLite's default milliseconds.
        assert_eq!(backoff(0), Some(Duration::from_micros(20)));
        assert_eq!(backoff(1), Some(Duration::from_micros(40)));
        assert_eq!(backoff(100), Some(Duration::from_millis(1)));
        let last = i32::try_from(BUSY_FOR.as_millis()).expect("fits");
        assert!(backoff(last - 1).is_some());
        assert_eq!(backoff(last), None, "gives up after BUSY_FOR");
        assert!(!wait_for_writer(last));
        assert!(wait_for_writer(0), "sleeps, then tries again");
    }
}
