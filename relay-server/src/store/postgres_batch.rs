//! The PostgreSQL side of the group commit of contact updates ([`super::contact_batch`]): a
//! group is one `UPDATE … FROM UNNEST(arrays)` statement, one round trip and one commit.

use async_trait::async_trait;
use sqlx::PgPool;

use super::contact_batch::ContactWriter;
use super::query::changed_one;
use super::rows::{source_name, to_json};
use super::{ContactRecord, StoreResult};

/// Writes contact updates through the PostgreSQL store's pool.
#[derive(Debug)]
pub(super) struct PgContacts(pub(super) PgPool);

#[async_trait]
impl ContactWriter for PgContacts {
    async fn write_all(&self, batch: &[&ContactRecord]) -> StoreResult<u64> {
        // In key order, so two relays writing overlapping groups lock rows in the same order.
        let mut batch = batch.to_vec();
        batch.sort_by(|a, b| (&a.email, a.id).cmp(&(&b.email, b.id)));
        let column = |f: fn(&ContactRecord) -> Option<String>| -> Vec<Option<String>> {
            batch.iter().map(|c| f(c)).collect()
        };
        let updated = sqlx::query(
            "UPDATE contacts AS c SET contact = u.contact, expires_at = u.expires_at, \
             presence = u.presence, source = u.source, sip = u.sip \
             FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
                         $6::text[], $7::bigint[]) \
                  AS u(contact, expires_at, presence, source, sip, email, id) \
             WHERE c.email = u.email AND c.id = u.id",
        )
        .bind(column(|c| c.contact.clone()))
        .bind(batch.iter().map(|c| c.expires_at).collect::<Vec<i64>>())
        .bind(column(|c| c.presence.as_ref().map(to_json)))
        .bind(column(|c| Some(source_name(c.source).to_owned())))
        .bind(column(|c| c.sip.as_ref().map(to_json)))
        .bind(column(|c| Some(c.email.clone())))
        .bind(batch.iter().map(|c| c.id).collect::<Vec<i64>>())
        .execute(&self.0)
        .await?;
        Ok(updated.rows_affected())
    }

    async fn write_one(&self, contact: &ContactRecord) -> StoreResult<bool> {
        update_one(&self.0, contact).await
    }
}

/// Updates one contact in a statement of its own; false if it is gone.
pub(super) async fn update_one(pool: &PgPool, contact: &ContactRecord) -> StoreResult<bool> {
    let update = sqlx::query(
        "UPDATE contacts SET contact = $1, expires_at = $2, presence = $3, source = $4, sip = $5 \
         WHERE email = $6 AND id = $7",
    )
    .bind(&contact.contact)
    .bind(contact.expires_at)
    .bind(contact.presence.as_ref().map(to_json))
    .bind(source_name(contact.source))
    .bind(contact.sip.as_ref().map(to_json))
    .bind(&contact.email)
    .bind(contact.id);
    changed_one(update, pool).await
}
