//! The store functions both engines run alike, statement and binds, written once: reads and
//! plain writes of users, contacts, calls and participants, kept dialogs, webhooks and their
//! outbox, the leases and the gauges `/metrics` samples. [`on_engine!`] makes them for each
//! engine's pool, with that engine's text of each statement (written for PostgreSQL, `$1`;
//! [`sql!`] makes SQLite's): `shared::sqlite::head`, `shared::pg::head`, … The [`Store`]
//! methods call them with the pool each reads or writes through (SQLite writes through its one
//! writer). What differs between the engines (SQL functions, locks, transactions of other
//! steps) stays in their own files.
//!
//! [`sql!`]: super::query::sql
//!
//! [`Store`]: super::Store

/// The functions on one engine: a module `$engine` of functions through a `&$pool` (or a
/// transaction on database `$db`), using the `$engine` field of each statement.
macro_rules! on_engine {
    ($engine:ident, $pool:ty, $db:ty) => {
        pub(super) mod $engine {
            use serde_json::Value;

            use crate::store::dialogs::decode;
            use crate::store::query::*;
            use crate::store::rows::*;
            use crate::store::statements::*;
            use crate::store::*;

            /// Keeps call `call_id`'s dialog record for `node` ([`Store::keep_dialog`]).
            pub(in crate::store) async fn keep_dialog(
                pool: &$pool,
                call_id: &str,
                node: &str,
                record: &Value,
            ) -> StoreResult<()> {
                sqlx::query(KEEP_DIALOG.$engine)
                    .bind(call_id)
                    .bind(node)
                    .bind(record.to_string())
                    .execute(pool)
                    .await?;
                Ok(())
            }

            /// Forgets call `call_id`'s dialog record ([`Store::drop_dialog`]).
            pub(in crate::store) async fn drop_dialog(
                pool: &$pool,
                call_id: &str,
            ) -> StoreResult<()> {
                sqlx::query(DROP_DIALOG.$engine)
                    .bind(call_id)
                    .execute(pool)
                    .await?;
                Ok(())
            }

            /// Takes `node`'s dialog records, those that parse ([`Store::take_dialogs`]).
            pub(in crate::store) async fn take_dialogs(
                pool: &$pool,
                node: &str,
            ) -> StoreResult<Vec<(String, Value)>> {
                let rows = sqlx::query_as(TAKE_DIALOGS.$engine)
                    .bind(node)
                    .fetch_all(pool)
                    .await?;
                Ok(decode(rows))
            }

            /// In `tx`, adds webhook `hook` unless its owner has `max` already (false then,
            /// and nothing is added); the caller commits. PostgreSQL's caller first locks the
            /// owner's row, so two relays cannot both add the last one allowed; SQLite's one
            /// writer already does the same.
            pub(in crate::store) async fn insert_webhook(
                tx: &mut sqlx::Transaction<'_, $db>,
                hook: &WebhookRecord,
                max: usize,
            ) -> StoreResult<bool> {
                let count: i64 = sqlx::query_scalar(COUNT_WEBHOOKS.$engine)
                    .bind(&hook.owner)
                    .fetch_one(&mut **tx)
                    .await?;
                if usize::try_from(count).unwrap_or(usize::MAX) >= max {
                    return Ok(false);
                }
                let insert = sqlx::query(INSERT_WEBHOOK.$engine)
                    .bind(&hook.id)
                    .bind(&hook.owner)
                    .bind(&hook.target)
                    .bind(&hook.resource)
                    .bind(updates_name(hook.updates))
                    .bind(&hook.secret)
                    .bind(hook.created)
                    .bind(hook.cursor);
                insert_or_conflict(insert, &mut **tx).await?;
                Ok(true)
            }

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

            /// [`Store::user`](crate::store::Store::user).
            pub(in crate::store) async fn user(
                pool: &$pool,
                email: &str,
            ) -> StoreResult<Option<UserRecord>> {
                let query = sqlx::query(sql!(
                    "SELECT email, password_hash, name, data, created FROM users WHERE email = $1"
                ).$engine)
                .bind(email);
                fetch_record(query, pool, user_row).await
            }

            /// [`Store::delete_user`](crate::store::Store::delete_user).
            pub(in crate::store) async fn delete_user(
                pool: &$pool,
                email: &str,
            ) -> StoreResult<bool> {
                let delete =
                    sqlx::query(sql!("DELETE FROM users WHERE email = $1").$engine).bind(email);
                changed_one(delete, pool).await
            }

            /// [`Store::digest`](crate::store::Store::digest).
            pub(in crate::store) async fn digest(
                pool: &$pool,
                email: &str,
            ) -> StoreResult<Option<DigestRecord>> {
                let query = sqlx::query(sql!(
                    "SELECT digest_realm, ha1_md5, ha1_sha256, ha1_aliases FROM users \
                         WHERE email = $1 AND digest_realm IS NOT NULL"
                ).$engine)
                .bind(email);
                fetch_record(query, pool, digest_row).await
            }

            /// [`Store::presence_rule`](crate::store::Store::presence_rule).
            pub(in crate::store) async fn presence_rule(
                pool: &$pool,
                email: &str,
            ) -> StoreResult<Option<String>> {
                let rule: Option<Option<String>> = sqlx::query_scalar(sql!(
                    "SELECT presence_rule FROM users WHERE email = $1"
                ).$engine)
                .bind(email)
                .fetch_optional(pool)
                .await?;
                Ok(rule.flatten())
            }

            /// [`Store::set_presence_rule`](crate::store::Store::set_presence_rule).
            pub(in crate::store) async fn set_presence_rule(
                pool: &$pool,
                email: &str,
                rule: &str,
            ) -> StoreResult<bool> {
                let update = sqlx::query(sql!(
                    "UPDATE users SET presence_rule = $1 WHERE email = $2"
                ).$engine)
                .bind(rule)
                .bind(email);
                changed_one(update, pool).await
            }

            /// [`Store::mail`](crate::store::Store::mail).
            pub(in crate::store) async fn mail(
                pool: &$pool,
                owner: &str,
            ) -> StoreResult<Vec<MailRecord>> {
                let query = sqlx::query(sql!(
                    "SELECT * FROM mail WHERE owner = $1 ORDER BY id"
                ).$engine)
                .bind(owner);
                fetch_records(query, pool, mail_row).await
            }

            /// [`Store::delete_mail`](crate::store::Store::delete_mail).
            pub(in crate::store) async fn delete_mail(
                pool: &$pool,
                owner: &str,
                id: i64,
            ) -> StoreResult<bool> {
                let delete = sqlx::query(sql!(
                    "DELETE FROM mail WHERE owner = $1 AND id = $2"
                ).$engine)
                .bind(owner)
                .bind(id);
                changed_one(delete, pool).await
            }

            /// [`Store::contact`](crate::store::Store::contact).
            pub(in crate::store) async fn contact(
                pool: &$pool,
                email: &str,
                id: i64,
            ) -> StoreResult<Option<ContactRecord>> {
                let query = sqlx::query(sql!(
                    "SELECT * FROM contacts WHERE email = $1 AND id = $2"
                ).$engine)
                .bind(email)
                .bind(id);
                fetch_record(query, pool, contact_row).await
            }

            /// [`Store::contacts`](crate::store::Store::contacts).
            pub(in crate::store) async fn contacts(
                pool: &$pool,
                email: &str,
                now: i64,
            ) -> StoreResult<Vec<ContactRecord>> {
                let query = sqlx::query(sql!(
                    "SELECT * FROM contacts WHERE email = $1 AND expires_at > $2 ORDER BY id"
                ).$engine)
                .bind(email)
                .bind(now);
                fetch_records(query, pool, contact_row).await
            }

            /// [`Store::remove_contact`](crate::store::Store::remove_contact).
            pub(in crate::store) async fn remove_contact(
                pool: &$pool,
                email: &str,
                id: i64,
            ) -> StoreResult<Option<ContactRecord>> {
                let delete = sqlx::query(sql!(
                    "DELETE FROM contacts WHERE email = $1 AND id = $2 RETURNING *"
                ).$engine)
                .bind(email)
                .bind(id);
                fetch_record(delete, pool, contact_row).await
            }

            /// [`Store::next_expiry`](crate::store::Store::next_expiry).
            pub(in crate::store) async fn next_expiry(pool: &$pool) -> StoreResult<Option<i64>> {
                Ok(
                    sqlx::query_scalar(sql!("SELECT MIN(expires_at) FROM contacts").$engine)
                        .fetch_one(pool)
                        .await?,
                )
            }

            /// [`Store::logged_in`](crate::store::Store::logged_in).
            pub(in crate::store) async fn logged_in(
                pool: &$pool,
                now: i64,
            ) -> StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar(sql!(
                    "SELECT DISTINCT email FROM contacts WHERE expires_at > $1"
                ).$engine)
                .bind(now)
                .fetch_all(pool)
                .await?)
            }

            /// [`Store::create_call`](crate::store::Store::create_call).
            pub(in crate::store) async fn create_call(
                pool: &$pool,
                call: &CallRecord,
            ) -> StoreResult<()> {
                let insert = sqlx::query(sql!(
                    "INSERT INTO calls (id, owner, subject, data, created) \
                     VALUES ($1, $2, $3, $4, $5)"
                ).$engine)
                .bind(&call.id)
                .bind(&call.owner)
                .bind(&call.subject)
                .bind(to_json(&call.data))
                .bind(call.created);
                insert_or_conflict(insert, pool).await
            }

            /// [`Store::call`](crate::store::Store::call).
            pub(in crate::store) async fn call(
                pool: &$pool,
                id: &str,
            ) -> StoreResult<Option<CallRecord>> {
                let query = sqlx::query(sql!("SELECT * FROM calls WHERE id = $1").$engine).bind(id);
                fetch_record(query, pool, call_row).await
            }

            /// [`Store::delete_call`](crate::store::Store::delete_call).
            pub(in crate::store) async fn delete_call(pool: &$pool, id: &str) -> StoreResult<bool> {
                let delete = sqlx::query(sql!("DELETE FROM calls WHERE id = $1").$engine).bind(id);
                changed_one(delete, pool).await
            }

            /// [`Store::participants`](crate::store::Store::participants).
            pub(in crate::store) async fn participants(
                pool: &$pool,
                call_id: &str,
            ) -> StoreResult<Vec<ParticipantRecord>> {
                let query = sqlx::query(sql!(
                    "SELECT * FROM participants WHERE call_id = $1 ORDER BY id"
                ).$engine)
                .bind(call_id);
                fetch_records(query, pool, participant_row).await
            }

            /// [`Store::participant`](crate::store::Store::participant).
            pub(in crate::store) async fn participant(
                pool: &$pool,
                call_id: &str,
                id: i64,
            ) -> StoreResult<Option<ParticipantRecord>> {
                let query = sqlx::query(sql!(
                    "SELECT * FROM participants WHERE call_id = $1 AND id = $2"
                ).$engine)
                .bind(call_id)
                .bind(id);
                fetch_record(query, pool, participant_row).await
            }

            /// [`Store::update_participant`](crate::store::Store::update_participant).
            pub(in crate::store) async fn update_participant(
                pool: &$pool,
                p: &ParticipantRecord,
            ) -> StoreResult<bool> {
                let update = sqlx::query(sql!(
                    "UPDATE participants SET session = $1, data = $2 \
                     WHERE call_id = $3 AND id = $4"
                ).$engine)
                .bind(p.session.as_ref().map(to_json))
                .bind(to_json(&p.data))
                .bind(&p.call_id)
                .bind(p.id);
                changed_one(update, pool).await
            }

            /// [`Store::remove_participant`](crate::store::Store::remove_participant).
            pub(in crate::store) async fn remove_participant(
                pool: &$pool,
                call_id: &str,
                id: i64,
            ) -> StoreResult<Option<ParticipantRecord>> {
                let delete = sqlx::query(sql!(
                    "DELETE FROM participants WHERE call_id = $1 AND id = $2 RETURNING *"
                ).$engine)
                .bind(call_id)
                .bind(id);
                fetch_record(delete, pool, participant_row).await
            }

            /// [`Store::max_send_seq`](crate::store::Store::max_send_seq).
            pub(in crate::store) async fn max_send_seq(pool: &$pool) -> StoreResult<i64> {
                let max: Option<i64> =
                    sqlx::query_scalar(sql!("SELECT MAX(seq) FROM sends").$engine)
                        .fetch_one(pool)
                        .await?;
                Ok(max.unwrap_or(0))
            }

            /// [`Store::revoked_tokens`](crate::store::Store::revoked_tokens).
            pub(in crate::store) async fn revoked_tokens(
                pool: &$pool,
                now: u64,
            ) -> StoreResult<Vec<(String, u64)>> {
                let now = i64::try_from(now).unwrap_or(i64::MAX);
                sqlx::query(sql!(
                    "DELETE FROM revoked_tokens WHERE expires < $1"
                ).$engine)
                .bind(now)
                .execute(pool)
                .await?;
                let rows: Vec<(String, i64)> =
                    sqlx::query_as(sql!("SELECT id, expires FROM revoked_tokens").$engine)
                        .fetch_all(pool)
                        .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, e)| (id, u64::try_from(e).unwrap_or(0)))
                    .collect())
            }
        }
    };
}

on_engine!(sqlite, sqlx::SqlitePool, sqlx::Sqlite);
on_engine!(pg, sqlx::PgPool, sqlx::Postgres);
