//! The store functions both engines run alike, statement and binds, written once: the
//! webhook outbox, the leases and the gauges `/metrics` samples. [`on_engine!`] makes them for each engine's
//! pool, with that engine's text of each [`super::statements`] entry: `shared::sqlite::head`,
//! `shared::pg::head`, … The [`Store`] methods call them with the pool each reads or writes
//! through (SQLite writes through its one writer).
//!
//! [`Store`]: super::Store

/// The functions on one engine: a module `$engine` of functions through a `&$pool`, using the
/// `$engine` field of each statement.
macro_rules! on_engine {
    ($engine:ident, $pool:ty) => {
        pub(super) mod $engine {
            use crate::store::query::{changed_one, fetch_record};
            use crate::store::rows::event_row;
            use crate::store::statements::{
                CALLS_UP, CLAIM_SEND, COUNT_WEBHOOK_EVENTS, DELETE_WEBHOOK, DELETE_WEBHOOK_EVENT,
                HEAD_WEBHOOK_EVENT, INSERT_WEBHOOK_EVENT, LEASES, LOGINS_BY_SOURCE,
                MAX_WEBHOOK_CURSOR, MOVE_WEBHOOK_CURSOR, TAKE_LEASE, WEBHOOK_FAILED,
                WEBHOOK_HEALTHY,
            };
            use crate::store::{Lease, Queued, StoreGauges, StoreResult, WebhookEventRecord};

            /// Deletes webhook `id` (its outbox goes with it); false if there was none.
            pub(in crate::store) async fn delete_webhook(
                pool: &$pool,
                id: &str,
            ) -> StoreResult<bool> {
                changed_one(sqlx::query(DELETE_WEBHOOK.$engine).bind(id), pool).await
            }

            /// Adds event `event_id` (`body`) to webhook `id`'s outbox and moves its cursor
            /// there, in one transaction; with `claim`, also marks that SEND delivered (a
            /// message handed to the webhook), and nothing is queued unless it could be.
            pub(in crate::store) async fn queue(
                pool: &$pool,
                id: &str,
                event_id: i64,
                body: &str,
                claim: Option<i64>,
            ) -> StoreResult<Queued> {
                let mut tx = pool.begin().await?;
                // The cursor first: it tells whether the webhook still exists (and on
                // PostgreSQL locks it, so the outbox count below is this webhook's after this
                // event).
                let moved = sqlx::query(MOVE_WEBHOOK_CURSOR.$engine)
                    .bind(event_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if moved.rows_affected() != 1 {
                    return Ok(Queued::NoWebhook);
                }
                if let Some(seq) = claim {
                    let claimed = sqlx::query(CLAIM_SEND.$engine)
                        .bind(seq)
                        .execute(&mut *tx)
                        .await?;
                    if claimed.rows_affected() != 1 {
                        return Ok(Queued::NotClaimed);
                    }
                }
                sqlx::query(INSERT_WEBHOOK_EVENT.$engine)
                    .bind(id)
                    .bind(event_id)
                    .bind(body)
                    .bind(crate::clock::now_ms())
                    .execute(&mut *tx)
                    .await?;
                let queued: i64 = sqlx::query_scalar(COUNT_WEBHOOK_EVENTS.$engine)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Queued::Stored(usize::try_from(queued).unwrap_or(0)))
            }

            /// Logins alive by source, and calls with at least one participant, at `now`
            /// (ms): what `/metrics` samples when scraped.
            pub(in crate::store) async fn gauges(
                pool: &$pool,
                now: i64,
            ) -> StoreResult<StoreGauges> {
                let rows: Vec<(String, i64)> = sqlx::query_as(LOGINS_BY_SOURCE.$engine)
                    .bind(now)
                    .fetch_all(pool)
                    .await?;
                let calls: i64 = sqlx::query_scalar(CALLS_UP.$engine).fetch_one(pool).await?;
                Ok(StoreGauges {
                    logins: rows
                        .into_iter()
                        .map(|(source, n)| (source, u64::try_from(n).unwrap_or(0)))
                        .collect(),
                    calls: u64::try_from(calls).unwrap_or(0),
                })
            }

            /// The oldest event in webhook `id`'s outbox.
            pub(in crate::store) async fn head(
                pool: &$pool,
                id: &str,
            ) -> StoreResult<Option<WebhookEventRecord>> {
                let query = sqlx::query(HEAD_WEBHOOK_EVENT.$engine).bind(id);
                fetch_record(query, pool, event_row).await
            }

            /// Removes event `seq` from webhook `id`'s outbox (delivered) and marks the webhook
            /// healthy; true if it was failing until now.
            pub(in crate::store) async fn ack(
                pool: &$pool,
                id: &str,
                seq: i64,
            ) -> StoreResult<bool> {
                let mut tx = pool.begin().await?;
                sqlx::query(DELETE_WEBHOOK_EVENT.$engine)
                    .bind(id)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
                let healthy = sqlx::query(WEBHOOK_HEALTHY.$engine)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(healthy.rows_affected() == 1)
            }

            /// Records webhook `id`'s last delivery error, failing since `failing_since`.
            pub(in crate::store) async fn failed(
                pool: &$pool,
                id: &str,
                error: &str,
                failing_since: Option<i64>,
            ) -> StoreResult<()> {
                sqlx::query(WEBHOOK_FAILED.$engine)
                    .bind(error)
                    .bind(failing_since)
                    .bind(id)
                    .execute(pool)
                    .await?;
                Ok(())
            }

            /// How many events wait in webhook `id`'s outbox.
            pub(in crate::store) async fn queue_len(pool: &$pool, id: &str) -> StoreResult<usize> {
                let n: i64 = sqlx::query_scalar(COUNT_WEBHOOK_EVENTS.$engine)
                    .bind(id)
                    .fetch_one(pool)
                    .await?;
                Ok(usize::try_from(n).unwrap_or(0))
            }

            /// The highest outbox cursor handed out (0 before any).
            pub(in crate::store) async fn max_cursor(pool: &$pool) -> StoreResult<i64> {
                let max: Option<i64> = sqlx::query_scalar(MAX_WEBHOOK_CURSOR.$engine)
                    .fetch_one(pool)
                    .await?;
                Ok(max.unwrap_or(0))
            }

            /// Takes or renews lease `name` for `holder` until `until` (ms) if it is free,
            /// expired at `now`, or already `holder`'s: one statement (on PostgreSQL the row is
            /// locked while it runs; SQLite has one writer), so two relays racing for it cannot
            /// both win.
            pub(in crate::store) async fn take_lease(
                pool: &$pool,
                name: &str,
                holder: &str,
                now: i64,
                until: i64,
            ) -> StoreResult<bool> {
                let taken = sqlx::query(TAKE_LEASE.$engine)
                    .bind(name)
                    .bind(holder)
                    .bind(now)
                    .bind(until)
                    .execute(pool)
                    .await?;
                Ok(taken.rows_affected() == 1)
            }

            /// The leases whose names start with `prefix`.
            pub(in crate::store) async fn leases(
                pool: &$pool,
                prefix: &str,
            ) -> StoreResult<Vec<Lease>> {
                Ok(sqlx::query_as::<_, Lease>(LEASES.$engine)
                    .bind(prefix)
                    .fetch_all(pool)
                    .await?)
            }
        }
    };
}

on_engine!(sqlite, sqlx::SqlitePool);
on_engine!(pg, sqlx::PgPool);
