//! What operations ask of the SQLite store: whether it can be written (`/readyz`) and the
//! counts `/metrics` samples when scraped.

use std::collections::BTreeMap;

use sqlx::SqlitePool;

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
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT source, COUNT(*) FROM contacts WHERE expires_at > ? GROUP BY source",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    let calls: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT call_id) FROM participants")
        .fetch_one(pool)
        .await?;
    Ok(StoreGauges {
        logins: rows
            .into_iter()
            .map(|(source, n)| (source, u64::try_from(n).unwrap_or(0)))
            .collect::<BTreeMap<_, _>>(),
        calls: u64::try_from(calls).unwrap_or(0),
    })
}
