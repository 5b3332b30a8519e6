//! Queued SENDs and their claims, written in groups by the batch writer
//! ([`super::sqlite_batch`]): every SEND and claim waiting when the writer comes round goes
//! into one transaction, and each waiter is told only after its commit, so a SEND is still
//! durable before it is acknowledged and a claim before its message is handed over. A group
//! that fails (a contact removed meanwhile breaks its SENDs' foreign key) is written again one
//! operation at a time, so one bad SEND fails alone.

use std::collections::HashSet;

use sqlx::{Sqlite, SqlitePool, Transaction};
use tokio::sync::oneshot;

use super::sqlite_query::changed_one;
use super::sqlite_rows::to_json;
use super::{SendRecord, StoreResult};

/// Most rows of one statement (8 parameters per SEND); statements are made in power-of-two
/// sizes up to this, so few are prepared.
const MAX_ROWS: usize = 64;

/// Who waits for SENDs to be stored.
pub(super) type SendsWaiter = oneshot::Sender<StoreResult<()>>;
/// Who waits for a claim.
pub(super) type ClaimWaiter = oneshot::Sender<StoreResult<bool>>;

/// The SENDs and claims of one group, with their waiters.
#[derive(Debug, Default)]
pub(super) struct Group {
    /// SENDs to store, each list all or none.
    pub(super) sends: Vec<(Vec<SendRecord>, SendsWaiter)>,
    /// SENDs to mark delivered unless cancelled.
    pub(super) claims: Vec<(i64, ClaimWaiter)>,
}

impl Group {
    /// Nothing to write.
    pub(super) fn is_empty(&self) -> bool {
        self.sends.is_empty() && self.claims.is_empty()
    }

    /// Operations gathered.
    pub(super) fn len(&self) -> usize {
        self.sends.len() + self.claims.len()
    }
}

/// Writes a group in one transaction and tells each waiter; on failure, each alone.
pub(super) async fn write(writer: &SqlitePool, group: Group) {
    if group.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    match together(writer, &group).await {
        Ok(claimed) => {
            for (_, done) in group.sends {
                let _ = done.send(Ok(()));
            }
            for (seq, done) in group.claims {
                let _ = done.send(Ok(claimed.contains(&seq)));
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, ops = group.len(), "grouped SENDs failed; one at a time");
            for (records, done) in group.sends {
                let _ = done.send(insert_alone(writer, &records).await);
            }
            for (seq, done) in group.claims {
                let _ = done.send(claim_one(writer, seq).await);
            }
        }
    }
    crate::observe::store_commit("sends", started.elapsed());
}

/// One transaction: every SEND inserted, then every claim; the claimed sequence numbers.
async fn together(writer: &SqlitePool, group: &Group) -> StoreResult<HashSet<i64>> {
    let mut tx = writer.begin().await?;
    let records: Vec<&SendRecord> = group.sends.iter().flat_map(|(r, _)| r).collect();
    insert(&mut tx, &records).await?;
    let seqs: Vec<i64> = group.claims.iter().map(|(seq, _)| *seq).collect();
    let mut claimed = HashSet::new();
    let mut rest = seqs.as_slice();
    while !rest.is_empty() {
        let size = rest.len().min(MAX_ROWS).next_power_of_two();
        let (chunk, after) = rest.split_at(rest.len().min(size));
        let marks = vec!["?"; size].join(", ");
        let sql = format!(
            "UPDATE sends SET status = 'delivered' WHERE seq IN ({marks}) \
             AND status != 'cancelled' RETURNING seq"
        );
        let mut query = sqlx::query_scalar::<_, i64>(&sql);
        for seq in chunk {
            query = query.bind(seq);
        }
        // Padding matches no SEND (sequence numbers are positive).
        for _ in chunk.len()..size {
            query = query.bind(-1i64);
        }
        claimed.extend(query.fetch_all(&mut *tx).await?);
        rest = after;
    }
    tx.commit().await?;
    Ok(claimed)
}

/// Inserts `records` as queued within `tx`, in statements of power-of-two sizes.
async fn insert(tx: &mut Transaction<'_, Sqlite>, records: &[&SendRecord]) -> StoreResult<()> {
    let mut rest = records;
    while !rest.is_empty() {
        // The largest power of two that fits: no padding rows in an INSERT.
        let size = 1usize << rest.len().min(MAX_ROWS).ilog2();
        let (chunk, after) = rest.split_at(size);
        let row = "(?, ?, ?, ?, ?, ?, ?, ?, 'queued')";
        let sql = format!(
            "INSERT INTO sends (seq, msg_id, sender, to_email, to_contact, target, body, sent, \
             status) VALUES {}",
            vec![row; size].join(", ")
        );
        let mut query = sqlx::query(&sql);
        for s in chunk {
            query = query
                .bind(s.seq)
                .bind(&s.msg_id)
                .bind(&s.sender)
                .bind(&s.to_email)
                .bind(s.to_contact)
                .bind(&s.target)
                .bind(to_json(&s.body))
                .bind(s.sent);
        }
        query.execute(&mut **tx).await?;
        rest = after;
    }
    Ok(())
}

/// Stores one SEND's records in a transaction of their own.
pub(super) async fn insert_alone(writer: &SqlitePool, records: &[SendRecord]) -> StoreResult<()> {
    let mut tx = writer.begin().await?;
    let records: Vec<&SendRecord> = records.iter().collect();
    insert(&mut tx, &records).await?;
    tx.commit().await?;
    Ok(())
}

/// Claims one SEND in a statement of its own.
pub(super) async fn claim_one(writer: &SqlitePool, seq: i64) -> StoreResult<bool> {
    let claim = sqlx::query(
        "UPDATE sends SET status = 'delivered' WHERE seq = ? AND status != 'cancelled'",
    )
    .bind(seq);
    changed_one(claim, writer).await
}

#[cfg(test)]
mod tests {
    use restsip_protocol::{ContactSource, DeliveryStatus};
    use serde_json::{json, Map};

    use crate::store::{ContactRecord, SendRecord, SqliteStore, Store, UserRecord};

    fn send(seq: i64, contact: i64) -> SendRecord {
        SendRecord {
            seq,
            msg_id: format!("m{seq}"),
            sender: "b@x".into(),
            to_email: "a@x".into(),
            to_contact: contact,
            target: "/login/a@x".into(),
            body: json!({"n": seq}),
            sent: 1,
            status: DeliveryStatus::Queued,
        }
    }

    #[tokio::test]
    async fn sends_and_claims_made_together_are_each_answered_and_a_bad_one_fails_alone() {
        let store = SqliteStore::open("sqlite::memory:").await.expect("store");
        let user = UserRecord {
            email: "a@x".into(),
            password_hash: "x".into(),
            name: None,
            data: Map::new(),
            created: 1,
        };
        store.create_user(&user).await.expect("user");
        let contact = ContactRecord {
            email: "a@x".into(),
            id: 0,
            contact: None,
            expires_at: i64::MAX,
            presence: None,
            source: ContactSource::Web,
            sip: None,
        };
        let id = store
            .add_contact(&contact)
            .await
            .expect("add")
            .expect("user")
            .id;
        // 100 SENDs at once (more than one statement's rows), one to a contact that is not
        // there: it alone fails.
        let records: Vec<SendRecord> = (1..=100).map(|n| send(n, id)).collect();
        let bad = send(1000, id + 7);
        let mut writes: Vec<_> = records
            .iter()
            .map(|r| store.queue_sends(std::slice::from_ref(r)))
            .collect();
        writes.push(store.queue_sends(std::slice::from_ref(&bad)));
        let outcomes = futures_util::future::join_all(writes).await;
        assert!(outcomes[..100].iter().all(Result::is_ok), "{outcomes:?}");
        assert!(outcomes[100].is_err(), "a SEND to no contact");
        assert_eq!(store.queued_count("a@x", id).await.expect("count"), 100);
        // Claims made together, one of a cancelled SEND and one of no SEND.
        store
            .cancel_send("b@x", "m5", "a@x", None)
            .await
            .expect("cancel");
        let seqs: Vec<i64> = (1..=70).chain([5000]).collect();
        let claims = futures_util::future::join_all(seqs.iter().map(|s| store.claim_send(*s)));
        let claimed: Vec<bool> = claims
            .await
            .into_iter()
            .map(|c| c.expect("claim"))
            .collect();
        for (seq, claimed) in seqs.iter().zip(&claimed) {
            assert_eq!(*claimed, *seq != 5 && *seq != 5000, "seq {seq}");
        }
        let pending = store.pending_sends("a@x", id, None).await.expect("pending");
        let left: Vec<i64> = pending.iter().map(|s| s.seq).collect();
        assert_eq!(left, (71..=100).collect::<Vec<_>>());
        assert_eq!(pending[0].body, json!({"n": 71}));
    }
}
