//! The dialogs table of both stores ([`super::Store::keep_dialog`] and the others): calls a
//! relay of a cluster holds, for another relay to end when it is gone.

use serde_json::Value;
use sqlx::{PgPool, SqlitePool};

use super::StoreResult;

fn decode(rows: Vec<(String, String)>) -> Vec<(String, Value)> {
    rows.into_iter()
        .map(|(call_id, record)| {
            let record = serde_json::from_str(&record).unwrap_or(Value::Null);
            (call_id, record)
        })
        .collect()
}

pub(super) async fn keep_sqlite(
    pool: &SqlitePool,
    call_id: &str,
    node: &str,
    record: &Value,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO dialogs (call_id, node, record) VALUES (?1, ?2, ?3) \
         ON CONFLICT (call_id) DO UPDATE SET node = excluded.node, record = excluded.record",
    )
    .bind(call_id)
    .bind(node)
    .bind(record.to_string())
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn drop_sqlite(pool: &SqlitePool, call_id: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM dialogs WHERE call_id = ?1")
        .bind(call_id)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn take_sqlite(
    pool: &SqlitePool,
    node: &str,
) -> StoreResult<Vec<(String, Value)>> {
    let rows = sqlx::query_as("DELETE FROM dialogs WHERE node = ?1 RETURNING call_id, record")
        .bind(node)
        .fetch_all(pool)
        .await?;
    Ok(decode(rows))
}

pub(super) async fn keep_pg(
    pool: &PgPool,
    call_id: &str,
    node: &str,
    record: &Value,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO dialogs (call_id, node, record) VALUES ($1, $2, $3) \
         ON CONFLICT (call_id) DO UPDATE SET node = EXCLUDED.node, record = EXCLUDED.record",
    )
    .bind(call_id)
    .bind(node)
    .bind(record.to_string())
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn drop_pg(pool: &PgPool, call_id: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM dialogs WHERE call_id = $1")
        .bind(call_id)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn take_pg(pool: &PgPool, node: &str) -> StoreResult<Vec<(String, Value)>> {
    let rows = sqlx::query_as("DELETE FROM dialogs WHERE node = $1 RETURNING call_id, record")
        .bind(node)
        .fetch_all(pool)
        .await?;
    Ok(decode(rows))
}
