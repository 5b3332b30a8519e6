//! Group commit of SENDs and their claims, on either engine: at thousands of SENDs a second
//! the cost is in the round trips to the database and in the commits, not in the rows. SENDs
//! to store and claims to mark queue here; one task takes every operation waiting and writes
//! them all in one transaction (how is the engine's [`SendWriter`]), and only then answers
//! each: a SEND is still acknowledged only once it is committed. On PostgreSQL the writing is a
//! task; on SQLite a thread of its own, calling SQLite directly.
//!
//! A claim queued with [`SendWrites::claim_later`] waits for no answer: the stream hands the
//! message over at once and its mark is written with the next group (a group of such marks
//! alone waits up to [`BEHIND_DELAY`] for SENDs to share its commit; a mark queued within
//! [`write_behind::LINGER`] of the last group does not even wake the task). Whoever must see every
//! such mark (a CANCEL, a stream that reads what is still queued, shutdown) calls
//! [`SendWrites::flush`] first; see `Inbox::claim` for when a claim may go unanswered.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::oneshot;

use super::write_behind::{self, Queue};
use super::{SendRecord, StoreResult};

/// How an engine writes a group of SENDs and claims.
#[async_trait]
pub(super) trait SendWriter: std::fmt::Debug + Send + Sync + 'static {
    /// In one transaction: stores `sends` as queued, then marks the SENDs `claims` delivered
    /// unless they were cancelled; the sequence numbers it marked. A claim never names a SEND
    /// of the same group (a SEND is announced, so claimed, only once committed).
    async fn write(&self, sends: &[&SendRecord], claims: &[i64]) -> StoreResult<Vec<i64>>;
}

/// The writer the task writes through.
type Writer = Arc<dyn SendWriter>;

/// Most SEND rows written in one group.
const MAX_SENDS: usize = 64;

/// Most claims written in one group.
const MAX_CLAIMS: usize = 256;

/// How long a group of claims written behind (nobody waits for them) waits for SENDs to
/// share its commit: under load, marks ride on the next group of SENDs instead of taking a
/// commit of their own.
const BEHIND_DELAY: std::time::Duration = std::time::Duration::from_millis(2);

/// Where the outcome of storing a SEND goes.
type Stored = oneshot::Sender<StoreResult<()>>;

/// Where the outcome of a claim goes, if anyone waits for it.
type Claimed = oneshot::Sender<StoreResult<bool>>;

/// What the writing task is asked.
#[derive(Debug)]
enum Op {
    /// Store these rows (one SEND's, all or none); tell the waiter once committed.
    Queue(Vec<SendRecord>, Stored),
    /// Mark this SEND delivered unless cancelled; tell the waiter (if any) once committed.
    Claim(i64, Option<Claimed>),
}

/// The queue of SENDs and claims to write; cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct SendWrites {
    /// Into the writing task (at most [`write_behind::MAX_BEHIND`] claims without a waiter).
    queue: Queue<Op>,
    /// What the task writes through, for a caller to write alone once the task is gone.
    writer: Writer,
}

impl SendWrites {
    /// Starts the writing task on the current runtime, writing through `writer`.
    pub(super) fn start(writer: Writer) -> Self {
        let queue = Queue::start::<Group>(writer.clone());
        Self { queue, writer }
    }

    /// Starts the writing on a thread of its own, writing through `writer`, which blocks
    /// (SQLite's [`super::sqlite_sends::DirectSends`]): groups are written and answered there.
    pub(super) fn start_on_thread(writer: Writer) -> std::io::Result<Self> {
        let queue = Queue::start_on_thread::<Group>("restsip-sends", writer.clone())?;
        Ok(Self { queue, writer })
    }

    /// Stores one SEND's rows as queued, committed with those waiting beside them, all or
    /// none (alone when the task is gone: its runtime ended).
    pub(super) async fn queue(&self, sends: &[SendRecord]) -> StoreResult<()> {
        if let Some(outcome) = self.queue.ask(|done| Op::Queue(sends.to_vec(), done)).await {
            return outcome;
        }
        let rows: Vec<&SendRecord> = sends.iter().collect();
        self.writer.write(&rows, &[]).await.map(drop)
    }

    /// Marks SEND `seq` delivered unless cancelled, committed with the operations waiting
    /// beside it (alone when the task is gone); true if it may be handed over.
    pub(super) async fn claim(&self, seq: i64) -> StoreResult<bool> {
        if let Some(outcome) = self.queue.ask(|done| Op::Claim(seq, Some(done))).await {
            return outcome;
        }
        Ok(self.writer.write(&[], &[seq]).await?.contains(&seq))
    }

    /// Queues the mark of SEND `seq` as delivered without waiting for it; false when the task
    /// is gone or too far behind.
    pub(super) fn claim_later(&self, seq: i64) -> bool {
        self.queue.later(Op::Claim(seq, None))
    }

    /// Waits until everything queued before is committed (or the task is gone).
    pub(super) async fn flush(&self) {
        self.queue.flush().await;
    }
}

/// The operations of one group.
#[derive(Default)]
struct Group {
    /// SENDs to store, each with its waiter.
    queued: Vec<(Vec<SendRecord>, Stored)>,
    /// Their rows together.
    rows: usize,
    /// Claims, each with its waiter if any.
    claims: Vec<(i64, Option<Claimed>)>,
    /// Whether it waited for more already.
    waited: bool,
}

impl Group {
    /// Whether nobody waits for this group: claims written behind only.
    fn behind_only(&self) -> bool {
        self.queued.is_empty() && self.claims.iter().all(|(_, done)| done.is_none())
    }
}

#[async_trait]
impl write_behind::Group for Group {
    type Op = Op;
    type Writer = Writer;

    /// Takes `op` into the group; gives it back when the group is full.
    fn take(&mut self, op: Op) -> Option<Op> {
        let full = match &op {
            Op::Queue(rows, _) => self.rows > 0 && self.rows + rows.len() > MAX_SENDS,
            Op::Claim(..) => self.claims.len() == MAX_CLAIMS,
        };
        if full {
            return Some(op);
        }
        match op {
            Op::Queue(rows, done) => {
                self.rows += rows.len();
                self.queued.push((rows, done));
            }
            Op::Claim(seq, done) => self.claims.push((seq, done)),
        }
        None
    }

    /// Marks alone wait a moment, once, for SENDs to share their commit.
    fn wait_until(&mut self) -> Option<tokio::time::Instant> {
        if !self.behind_only() || std::mem::replace(&mut self.waited, true) {
            return None;
        }
        Some(tokio::time::Instant::now() + BEHIND_DELAY)
    }

    /// Writes the group in one transaction and answers everyone; if that fails, each SEND
    /// and claim alone, so one bad row fails only its own SEND.
    async fn write(self, writer: &Writer) {
        if !self.queued.is_empty() || !self.claims.is_empty() {
            let started = std::time::Instant::now();
            let sends: Vec<&SendRecord> = self.queued.iter().flat_map(|(s, _)| s).collect();
            let seqs: Vec<i64> = self.claims.iter().map(|(seq, _)| *seq).collect();
            let outcome = writer.write(&sends, &seqs).await;
            crate::observe::store_commit("sends", started.elapsed());
            match outcome {
                Ok(claimed) => {
                    let claimed: HashSet<i64> = claimed.into_iter().collect();
                    for (_, done) in self.queued {
                        let _ = done.send(Ok(()));
                    }
                    for (seq, done) in self.claims {
                        tell(seq, done, Ok(claimed.contains(&seq)));
                    }
                }
                Err(e) if self.queued.len() + self.claims.len() == 1 => {
                    if let Some((_, done)) = self.queued.into_iter().next() {
                        let _ = done.send(Err(e));
                    } else if let Some((seq, done)) = self.claims.into_iter().next() {
                        tell(seq, done, Err(e));
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "a group of SENDs failed; writing each alone");
                    for (rows, done) in self.queued {
                        let rows: Vec<&SendRecord> = rows.iter().collect();
                        let _ = done.send(writer.write(&rows, &[]).await.map(drop));
                    }
                    for (seq, done) in self.claims {
                        let outcome = writer.write(&[], &[seq]).await;
                        tell(seq, done, outcome.map(|claimed| claimed.contains(&seq)));
                    }
                }
            }
        }
    }
}

/// Gives a claim's outcome to whoever waits for it; with nobody waiting, a failure is logged
/// (the message was handed over and stays queued: it is handed over again on the next
/// connection, at least once rather than lost).
fn tell(seq: i64, done: Option<Claimed>, outcome: StoreResult<bool>) {
    match (done, &outcome) {
        (Some(done), _) => {
            let _ = done.send(outcome);
        }
        (None, Ok(true)) => {}
        (None, Ok(false)) => tracing::debug!(seq, "a SEND claimed behind was gone or cancelled"),
        (None, Err(e)) => tracing::warn!(error = %e, seq, "marking a SEND delivered failed"),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use restsip_protocol::DeliveryStatus;

    use crate::store::test_db::on_both_engines;
    use crate::store::tests::{contact, user};
    use crate::store::{SendRecord, Store};

    /// SEND `seq` (message `m{seq}`) from b@x to contact `to` of a@x.
    pub(in crate::store) fn send(seq: i64, to: i64) -> SendRecord {
        SendRecord {
            seq,
            msg_id: format!("m{seq}"),
            sender: "b@x".to_owned(),
            to_email: "a@x".to_owned(),
            to_contact: to,
            target: format!("/login/a@x/{to}"),
            body: serde_json::json!({"command": "im", "text": format!("hi {seq}"), "n": [seq]}),
            sent: 1_000 + seq,
            status: DeliveryStatus::Queued,
        }
    }

    /// A user a@x with one contact; its id.
    async fn with_contact(store: &dyn Store) -> i64 {
        store.create_user(&user("a@x")).await.expect("user");
        store
            .add_contact(&contact("a@x", i64::MAX))
            .await
            .expect("add")
            .expect("user")
            .id
    }

    on_both_engines! {
        async fn concurrent_sends_are_stored_together_and_a_bad_one_fails_alone(store) {
            let c = with_contact(&*store).await;
            // Ten SENDs at once, one of them to a contact that does not exist (its row breaks
            // the group's transaction; the others must still be stored) and one with a taken
            // sequence number.
            let mut groups: Vec<Vec<SendRecord>> = (1..=8).map(|n| vec![send(n, c)]).collect();
            groups.push(vec![send(20, c + 100)]);
            groups.push(vec![send(3, c)]);
            let outcomes = futures_util::future::join_all(
                groups.iter().map(|g| store.queue_sends(g)),
            )
            .await;
            for (n, outcome) in outcomes.iter().enumerate().take(8) {
                assert!(outcome.is_ok(), "SEND {n}: {outcome:?}");
            }
            assert!(outcomes[8].is_err(), "to a missing contact: {:?}", outcomes[8]);
            assert!(outcomes[9].is_err(), "a taken seq: {:?}", outcomes[9]);
            let stored = store.pending_sends("a@x", c, None).await.expect("pending");
            assert_eq!(stored.iter().map(|s| s.seq).collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>());
            // Every field comes back as it went in.
            for s in &stored {
                let sent = send(s.seq, c);
                assert_eq!((&s.msg_id, &s.sender, &s.target, &s.body, s.sent), (&sent.msg_id, &sent.sender, &sent.target, &sent.body, sent.sent));
            }
            // A SEND of two rows is all or none.
            let two = vec![send(30, c), send(31, c + 100)];
            assert!(store.queue_sends(&two).await.is_err());
            assert_eq!(store.pending_sends("a@x", c, None).await.expect("pending").len(), 8);
        }

        async fn claims_in_a_group_are_told_each_and_claims_behind_are_on_disk_after_a_flush(store) {
            let c = with_contact(&*store).await;
            let rows: Vec<SendRecord> = (1..=6).map(|n| send(n, c)).collect();
            store.queue_sends(&rows).await.expect("queue");
            let out = store.cancel_send("b@x", "m2", "a@x", None).await.expect("cancel");
            assert_eq!(out, vec![(c, DeliveryStatus::Cancelled)]);
            // Claims at once: the cancelled one and one that does not exist are refused.
            let claims = futures_util::future::join_all(
                [1, 2, 3, 99].map(|seq| store.claim_send(seq)),
            )
            .await;
            let claims: Vec<bool> = claims.into_iter().map(|c| c.expect("claim")).collect();
            assert_eq!(claims, vec![true, false, true, false]);
            // Claims behind: nobody waits, a flush makes them visible.
            assert!(store.claim_send_later(4));
            assert!(store.claim_send_later(5));
            store.flush_sends().await;
            let queued = store.pending_sends("a@x", c, None).await.expect("pending");
            assert_eq!(queued.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![6]);
            let out = store.cancel_send("b@x", "m5", "a@x", None).await.expect("cancel");
            assert_eq!(out, vec![(c, DeliveryStatus::Delivered)], "claimed behind, then cancelled");
        }
    }
}
