//! The statements both engines run alike, each written once: for PostgreSQL (`$1`, `$2`, …),
//! the SQLite text (`?1`, `?2`, …: the same numbered parameters, bound the same way) made from
//! it at compile time by [`sql!`]. Statements whose SQL differs (functions, casts, locks) stay
//! in the engine's own file.

use super::query::{sql, Sql};

/// Keeps a call's dialog record for node `$2` (`$1` its Call-ID, `$3` the record).
pub(super) const KEEP_DIALOG: Sql = sql!(
    "INSERT INTO dialogs (call_id, node, record) VALUES ($1, $2, $3) \
     ON CONFLICT (call_id) DO UPDATE SET node = excluded.node, record = excluded.record"
);
/// Forgets call `$1`'s dialog record.
pub(super) const DROP_DIALOG: Sql = sql!("DELETE FROM dialogs WHERE call_id = $1");
/// Takes (deletes and returns) node `$1`'s dialog records.
pub(super) const TAKE_DIALOGS: Sql =
    sql!("DELETE FROM dialogs WHERE node = $1 RETURNING call_id, record");

/// Takes or renews lease `$1` for holder `$2` until `$4` if it is free, expired at `$3`, or
/// already the holder's.
pub(super) const TAKE_LEASE: Sql = sql!(
    "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $4) \
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
     WHERE leases.holder = excluded.holder OR leases.until < $3"
);
/// The leases whose names start with `$1` (cast: PostgreSQL cannot tell `length`'s type).
pub(super) const LEASES: Sql = sql!(
    "SELECT name, holder, until FROM leases \
     WHERE substr(name, 1, length(CAST($1 AS TEXT))) = CAST($1 AS TEXT)"
);

/// Logins alive at `$1` (ms) by source.
pub(super) const LOGINS_BY_SOURCE: Sql =
    sql!("SELECT source, COUNT(*) FROM contacts WHERE expires_at > $1 GROUP BY source");
/// Calls with at least one participant.
pub(super) const CALLS_UP: Sql = sql!("SELECT COUNT(DISTINCT call_id) FROM participants");

/// How many webhooks user `$1` has.
pub(super) const COUNT_WEBHOOKS: Sql = sql!("SELECT COUNT(*) FROM webhooks WHERE owner = $1");
/// Adds a webhook.
pub(super) const INSERT_WEBHOOK: Sql = sql!(
    "INSERT INTO webhooks (id, owner, target, resource, updates, secret, created, cursor) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
);
/// Deletes webhook `$1`.
pub(super) const DELETE_WEBHOOK: Sql = sql!("DELETE FROM webhooks WHERE id = $1");
/// Marks SEND `$1` delivered unless it was cancelled.
pub(super) const CLAIM_SEND: Sql =
    sql!("UPDATE sends SET status = 'delivered' WHERE seq = $1 AND status != 'cancelled'");
/// Moves webhook `$2`'s cursor up to event `$1`, never down; changes no row once the webhook
/// is gone. Each engine's own text: the larger of two is `GREATEST` on PostgreSQL, `MAX` on
/// SQLite.
pub(super) const MOVE_WEBHOOK_CURSOR: Sql = Sql {
    pg: "UPDATE webhooks SET cursor = GREATEST(COALESCE(cursor, 0), $1) WHERE id = $2",
    sqlite: "UPDATE webhooks SET cursor = MAX(COALESCE(cursor, 0), ?1) WHERE id = ?2",
};
/// Adds event `$2` (body `$3`, queued at `$4`) to webhook `$1`'s outbox.
pub(super) const INSERT_WEBHOOK_EVENT: Sql =
    sql!("INSERT INTO webhook_events (webhook_id, event_id, body, queued) VALUES ($1, $2, $3, $4)");
/// How many events webhook `$1`'s outbox holds.
pub(super) const COUNT_WEBHOOK_EVENTS: Sql =
    sql!("SELECT COUNT(*) FROM webhook_events WHERE webhook_id = $1");
/// The oldest event of webhook `$1`'s outbox.
pub(super) const HEAD_WEBHOOK_EVENT: Sql = sql!(
    "SELECT seq, event_id, body, queued FROM webhook_events WHERE webhook_id = $1 \
     ORDER BY seq LIMIT 1"
);
/// Deletes event `$2` of webhook `$1`'s outbox.
pub(super) const DELETE_WEBHOOK_EVENT: Sql =
    sql!("DELETE FROM webhook_events WHERE webhook_id = $1 AND seq = $2");
/// Webhook `$1` delivers again.
pub(super) const WEBHOOK_HEALTHY: Sql =
    sql!("UPDATE webhooks SET failing_since = NULL, last_error = NULL WHERE id = $1");
/// Webhook `$3` failed with error `$1`, failing since `$2` unless it was already.
pub(super) const WEBHOOK_FAILED: Sql = sql!(
    "UPDATE webhooks SET last_error = $1, failing_since = COALESCE(failing_since, $2) \
     WHERE id = $3"
);
/// The highest cursor of all webhooks.
pub(super) const MAX_WEBHOOK_CURSOR: Sql = sql!("SELECT MAX(cursor) FROM webhooks");

#[cfg(test)]
mod tests {
    use super::super::query::{sql, Sql};

    #[test]
    fn the_sqlite_text_numbers_the_same_parameters() {
        const S: Sql = sql!("SELECT $1, '$', $12 FROM t WHERE a = $2 AND b = '$x'");
        assert_eq!(S.pg, "SELECT $1, '$', $12 FROM t WHERE a = $2 AND b = '$x'");
        assert_eq!(
            S.sqlite,
            "SELECT ?1, '$', ?12 FROM t WHERE a = ?2 AND b = '$x'"
        );
        assert_eq!(
            super::DROP_DIALOG.sqlite,
            "DELETE FROM dialogs WHERE call_id = ?1"
        );
    }
}
