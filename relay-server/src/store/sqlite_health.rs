//! What operations ask of the SQLite store: whether it can be written (`/readyz`) and the
//! counts `/metrics` samples when scraped.

use std::collections::BTreeMap;

use sqlx::SqlitePool;

use super::statements::{CALLS_UP, LEASES, LOGINS_BY_SOURCE, TAKE_LEASE};
use super::{StoreGauges, StoreResult};

/// Takes the write lock and lets it go (`BEGIN IMMEDIATE`, then a rollback): the database
/// file, its directory and the one writer connection all work. Nothing is written.
pub(super) async fn writable(writer: &SqlitePool) -> StoreResult<()> {
    let tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    tx.rollback().await?;
    Ok(())
}

/// Logins alive by source, and calls with at least one participant, at `now` (ms).
pub(super) async fn gauges(pool: &SqlitePool, now: i64) -> StoreResult<StoreGauges> {
    let rows: Vec<(String, i64)> = sqlx::query_as(LOGINS_BY_SOURCE.sqlite)
        .bind(now)
        .fetch_all(pool)
        .await?;
    let calls: i64 = sqlx::query_scalar(CALLS_UP.sqlite).fetch_one(pool).await?;
    Ok(StoreGauges {
        logins: rows
            .into_iter()
            .map(|(source, n)| (source, u64::try_from(n).unwrap_or(0)))
            .collect::<BTreeMap<_, _>>(),
        calls: u64::try_from(calls).unwrap_or(0),
    })
}

/// Takes or renews lease `name` for `holder` until `until` (ms) if it is free, expired at
/// `now`, or already `holder`'s: one statement, so two relays racing for it cannot both win.
pub(super) async fn take_lease(
    writer: &SqlitePool,
    name: &str,
    holder: &str,
    now: i64,
    until: i64,
) -> StoreResult<bool> {
    let taken = sqlx::query(TAKE_LEASE.sqlite)
        .bind(name)
        .bind(holder)
        .bind(now)
        .bind(until)
        .execute(writer)
        .await?;
    Ok(taken.rows_affected() == 1)
}

/// The leases whose names start with `prefix`.
pub(super) async fn leases(pool: &SqlitePool, prefix: &str) -> StoreResult<Vec<super::Lease>> {
    Ok(sqlx::query_as::<_, super::Lease>(LEASES.sqlite)
        .bind(prefix)
        .fetch_all(pool)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::super::{SqliteStore, Store};

    #[tokio::test]
    async fn a_lease_is_one_holders_until_it_expires() {
        let dir = tempfile_dir();
        let url = format!("sqlite:{}", dir.join("leases.db").display());
        let store = SqliteStore::open(&url).await.expect("open");
        let take = |holder: &'static str, now: i64| {
            let store = &store;
            async move {
                store
                    .take_lease("leader", holder, now, now + 3000)
                    .await
                    .expect("lease")
            }
        };
        assert!(take("a", 1000).await, "free: taken");
        assert!(!take("b", 2000).await, "held by a");
        assert!(take("a", 3000).await, "renewed by its holder");
        assert!(!take("b", 5999).await, "still a's until 6000");
        assert!(take("b", 6001).await, "expired: taken over");
        assert!(!take("a", 6002).await, "now b's");
        // Read back by prefix (which relays hold id slots).
        store
            .take_lease("slot/3", "c", 0, 60_000)
            .await
            .expect("slot");
        let slots = store.leases("slot/").await.expect("leases");
        assert_eq!(
            slots,
            vec![super::super::Lease {
                name: "slot/3".into(),
                holder: "c".into(),
                until: 60_000
            }]
        );
        assert_eq!(store.leases("lead").await.expect("leases")[0].holder, "b");
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "restsip-leases-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }
}
