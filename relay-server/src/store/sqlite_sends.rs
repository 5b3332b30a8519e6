//! The SQLite side of the group commit of SENDs and claims ([`super::send_batch`]): a group is
//! one script (an `INSERT` of every row, an `UPDATE … RETURNING` of every claim) in one
//! transaction, sent to SQLite's thread at once. Rows and claims are padded to a power of two
//! with NULLs that match nothing, so few scripts are prepared whatever the groups' sizes.

use async_trait::async_trait;
use sqlx::{Row, SqlitePool};

use super::rows::to_json;
use super::send_batch::SendWriter;
use super::{SendRecord, StoreResult};

/// Writes SENDs and claims through the SQLite store's one writer connection.
#[derive(Debug)]
pub(super) struct SqliteSends(pub(super) SqlitePool);

/// The script storing `rows` SEND rows and claiming `claims` SENDs (either may be 0).
fn script(rows: usize, claims: usize) -> String {
    let mut sql = String::from("BEGIN IMMEDIATE;");
    if rows > 0 {
        sql.push_str(
            " INSERT INTO sends (seq, msg_id, sender, to_email, to_contact, target, body, sent, \
             status) SELECT column1, column2, column3, column4, column5, column6, column7, \
             column8, 'queued' FROM (VALUES ",
        );
        let row = "(?, ?, ?, ?, ?, ?, ?, ?)";
        sql.push_str(&vec![row; rows].join(", "));
        sql.push_str(") WHERE column1 IS NOT NULL;");
    }
    if claims > 0 {
        sql.push_str(" UPDATE sends SET status = 'delivered' WHERE seq IN (");
        sql.push_str(&vec!["?"; claims].join(", "));
        sql.push_str(") AND status != 'cancelled' RETURNING seq;");
    }
    sql.push_str(" COMMIT;");
    sql
}

/// `n` rounded up to a power of two; 0 stays 0.
fn padded(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        n.next_power_of_two()
    }
}

#[async_trait]
impl SendWriter for SqliteSends {
    async fn write(&self, sends: &[&SendRecord], claims: &[i64]) -> StoreResult<Vec<i64>> {
        let (rows, claimed) = (padded(sends.len()), padded(claims.len()));
        let sql = script(rows, claimed);
        let mut query = sqlx::query(&sql);
        for s in sends {
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
        // Padding rows are skipped (no seq); padding claims match no SEND.
        for _ in sends.len()..rows {
            for _ in 0..8 {
                query = query.bind(None::<i64>);
            }
        }
        for seq in claims {
            query = query.bind(seq);
        }
        for _ in claims.len()..claimed {
            query = query.bind(None::<i64>);
        }
        // The connection stays ours until the transaction is over, committed or rolled back.
        let mut conn = self.0.acquire().await?;
        match query.fetch_all(&mut *conn).await {
            Ok(claimed) => Ok(claimed
                .iter()
                .map(|r| r.try_get::<i64, _>(0))
                .collect::<Result<_, _>>()?),
            Err(e) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                Err(e.into())
            }
        }
    }
}
