//! The PostgreSQL side of the group commit of SENDs and claims ([`super::send_batch`]): a
//! group is one statement (an `INSERT … FROM UNNEST(arrays)` of every row beside an
//! `UPDATE … RETURNING` of every claim), one round trip and one commit.

use async_trait::async_trait;
use sqlx::{PgPool, Row};

use super::rows::to_json;
use super::send_batch::SendWriter;
use super::{SendRecord, StoreResult};

/// Writes SENDs and claims through the PostgreSQL store's pool.
#[derive(Debug)]
pub(super) struct PgSends(pub(super) PgPool);

/// The group's statement. The `INSERT` runs to completion although nothing reads it; the
/// `UPDATE` does not see its rows, which no claim of the same group names.
const STATEMENT: &str = "WITH queued AS ( \
        INSERT INTO sends (seq, msg_id, sender, to_email, to_contact, target, body, sent, status) \
        SELECT q.*, 'queued' FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], \
                                         $5::bigint[], $6::text[], $7::text[], $8::bigint[]) \
             AS q(seq, msg_id, sender, to_email, to_contact, target, body, sent) \
    ) \
    UPDATE sends SET status = 'delivered' \
    WHERE seq = ANY($9::bigint[]) AND status != 'cancelled' RETURNING seq";

#[async_trait]
impl SendWriter for PgSends {
    async fn write(&self, sends: &[&SendRecord], claims: &[i64]) -> StoreResult<Vec<i64>> {
        let ints = |f: fn(&SendRecord) -> i64| -> Vec<i64> { sends.iter().map(|s| f(s)).collect() };
        let texts =
            |f: fn(&SendRecord) -> String| -> Vec<String> { sends.iter().map(|s| f(s)).collect() };
        let claimed = sqlx::query(STATEMENT)
            .bind(ints(|s| s.seq))
            .bind(texts(|s| s.msg_id.clone()))
            .bind(texts(|s| s.sender.clone()))
            .bind(texts(|s| s.to_email.clone()))
            .bind(ints(|s| s.to_contact))
            .bind(texts(|s| s.target.clone()))
            .bind(texts(|s| to_json(&s.body)))
            .bind(ints(|s| s.sent))
            .bind(claims)
            .fetch_all(&self.0)
            .await?;
        Ok(claimed
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?)
    }
}
