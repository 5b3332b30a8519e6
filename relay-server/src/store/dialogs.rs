//! The dialogs table of both stores ([`super::Store::keep_dialog`] and the others): calls a
//! relay of a cluster holds, for another relay to end when it is gone.

use serde_json::Value;
use sqlx::{PgPool, SqlitePool};

use super::statements::{DROP_DIALOG, KEEP_DIALOG, TAKE_DIALOGS};
use super::StoreResult;

/// The records taken, parsed; a record that no longer parses as a JSON object (damaged, or
/// written by something else) is logged with its Call-ID and left out: it names nothing to
/// end.
fn decode(rows: Vec<(String, String)>) -> Vec<(String, Value)> {
    rows.into_iter()
        .filter_map(|(call_id, record)| match serde_json::from_str(&record) {
            Ok(record) => Some((call_id, Value::Object(record))),
            Err(e) => {
                tracing::warn!(call_id, error = %e, "a kept call's record does not parse; skipped");
                None
            }
        })
        .collect()
}

/// The three statements on one engine: `$keep`, `$drop` and `$take` through a `$pool`, with
/// the `$engine` text of each [`super::statements`] entry (the same SQL on both engines).
macro_rules! on_engine {
    ($keep:ident, $drop:ident, $take:ident, $pool:ty, $engine:ident) => {
        pub(super) async fn $keep(
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

        pub(super) async fn $drop(pool: &$pool, call_id: &str) -> StoreResult<()> {
            sqlx::query(DROP_DIALOG.$engine)
                .bind(call_id)
                .execute(pool)
                .await?;
            Ok(())
        }

        pub(super) async fn $take(pool: &$pool, node: &str) -> StoreResult<Vec<(String, Value)>> {
            let rows = sqlx::query_as(TAKE_DIALOGS.$engine)
                .bind(node)
                .fetch_all(pool)
                .await?;
            Ok(decode(rows))
        }
    };
}

on_engine!(keep_sqlite, drop_sqlite, take_sqlite, SqlitePool, sqlite);
on_engine!(keep_pg, drop_pg, take_pg, PgPool, pg);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::decode;

    #[test]
    fn a_record_that_is_not_a_json_object_is_left_out_and_the_others_kept() {
        let rows = vec![
            ("a".to_owned(), r#"{"web":"a@x"}"#.to_owned()),
            ("b".to_owned(), r#"{"web":"#.to_owned()),
            ("c".to_owned(), String::new()),
            ("d".to_owned(), "[1]".to_owned()),
            ("e".to_owned(), r#"{"proxied":[]}"#.to_owned()),
        ];
        assert_eq!(
            decode(rows),
            vec![
                ("a".to_owned(), json!({"web": "a@x"})),
                ("e".to_owned(), json!({"proxied": []})),
            ]
        );
    }
}
