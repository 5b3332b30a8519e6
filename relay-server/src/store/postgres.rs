//! [`Store`] on PostgreSQL, for several relays sharing one database: every id is handed out by
//! the database (identity sequences, counters in locked rows), caps are checked under a row
//! lock, and every write returns once committed (`synchronous_commit` as the server has it;
//! its default waits for the WAL flush).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use restsip_protocol::DeliveryStatus;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

use super::contact_batch::ContactWrites;
use super::postgres_batch::{update_one, PgContacts};
use super::postgres_sends::PgSends;
use super::postgres_webhooks as webhooks;
use super::query::{changed_one, fetch_records, insert_or_conflict};
use super::rows::{contact_row, parse_status, participant_row, send_row, source_name, to_json};
use super::send_batch::SendWrites;
use super::{
    CallRecord, ContactRecord, DigestRecord, MailCaps, MailRecord, MailboxFull, ParticipantRecord,
    Queued, SendRecord, Store, StoreError, StoreResult, UserRecord, WebhookEventRecord,
    WebhookRecord,
};

/// Most connections one relay opens.
const MAX_CONNECTIONS: u32 = 16;

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    /// Readers and writers alike: PostgreSQL runs transactions side by side.
    pub(super) pool: PgPool,
    /// Contact updates, committed in groups.
    contact_writes: ContactWrites,
    /// SENDs and their claims, committed in groups.
    send_writes: SendWrites,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`) and brings its
    /// schema up to date (relays starting together take turns: the migrator holds an advisory
    /// lock).
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL: {e}"))?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        let contact_writes = ContactWrites::start(Arc::new(PgContacts(pool.clone())));
        let send_writes = SendWrites::start(Arc::new(PgSends(pool.clone())));
        Ok(Self {
            pool,
            contact_writes,
            send_writes,
        })
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn writable(&self) -> StoreResult<()> {
        webhooks::writable(&self.pool).await
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> StoreResult<bool> {
        super::shared::pg::take_lease(&self.pool, name, holder, now, until).await
    }

    async fn leases(&self, prefix: &str) -> StoreResult<Vec<super::Lease>> {
        super::shared::pg::leases(&self.pool, prefix).await
    }

    async fn keep_dialog(
        &self,
        call_id: &str,
        node: &str,
        record: &serde_json::Value,
    ) -> StoreResult<()> {
        super::shared::pg::keep_dialog(&self.pool, call_id, node, record).await
    }

    async fn drop_dialog(&self, call_id: &str) -> StoreResult<()> {
        super::shared::pg::drop_dialog(&self.pool, call_id).await
    }

    async fn take_dialogs(&self, node: &str) -> StoreResult<Vec<(String, serde_json::Value)>> {
        super::shared::pg::take_dialogs(&self.pool, node).await
    }

    async fn gauges(&self, now: i64) -> StoreResult<super::StoreGauges> {
        super::shared::pg::gauges(&self.pool, now).await
    }

    async fn create_user(&self, user: &UserRecord) -> StoreResult<()> {
        let insert = sqlx::query(
            "INSERT INTO users (email, password_hash, name, data, created) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(&user.name)
        .bind(to_json(&user.data))
        .bind(user.created);
        insert_or_conflict(insert, &self.pool).await
    }

    async fn user(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        super::shared::pg::user(&self.pool, email).await
    }

    async fn update_user(&self, user: &UserRecord) -> StoreResult<bool> {
        let update = sqlx::query(
            "UPDATE users SET password_hash = $1, name = $2, data = $3 WHERE email = $4",
        )
        .bind(&user.password_hash)
        .bind(&user.name)
        .bind(to_json(&user.data))
        .bind(&user.email);
        changed_one(update, &self.pool).await
    }

    async fn delete_user(&self, email: &str) -> StoreResult<bool> {
        super::shared::pg::delete_user(&self.pool, email).await
    }

    async fn set_digest(&self, email: &str, digest: &DigestRecord) -> StoreResult<bool> {
        let update = sqlx::query(
            "UPDATE users SET digest_realm = $1, ha1_md5 = $2, ha1_sha256 = $3, ha1_aliases = $4 \
             WHERE email = $5",
        )
        .bind(&digest.realm)
        .bind(&digest.md5)
        .bind(&digest.sha256)
        .bind(to_json(&digest.aliases))
        .bind(email);
        changed_one(update, &self.pool).await
    }

    async fn digest(&self, email: &str) -> StoreResult<Option<DigestRecord>> {
        super::shared::pg::digest(&self.pool, email).await
    }

    async fn presence_rule(&self, email: &str) -> StoreResult<Option<String>> {
        super::shared::pg::presence_rule(&self.pool, email).await
    }

    async fn set_presence_rule(&self, email: &str, rule: &str) -> StoreResult<bool> {
        super::shared::pg::set_presence_rule(&self.pool, email, rule).await
    }

    async fn add_mail(&self, mail: &MailRecord) -> StoreResult<MailRecord> {
        webhooks::add_mail(&self.pool, mail, &MailCaps::NONE)
            .await?
            .map_err(|_| StoreError::Corrupt("an uncapped mailbox is full".into()))
    }

    async fn add_mail_within(
        &self,
        mail: &MailRecord,
        caps: &MailCaps,
    ) -> StoreResult<Result<MailRecord, MailboxFull>> {
        webhooks::add_mail(&self.pool, mail, caps).await
    }

    async fn mail(&self, owner: &str) -> StoreResult<Vec<MailRecord>> {
        super::shared::pg::mail(&self.pool, owner).await
    }

    async fn delete_mail(&self, owner: &str, id: i64) -> StoreResult<bool> {
        super::shared::pg::delete_mail(&self.pool, owner, id).await
    }

    async fn add_contact(&self, contact: &ContactRecord) -> StoreResult<Option<ContactRecord>> {
        let mut tx = self.pool.begin().await?;
        // The user's row is locked until the commit: no other relay takes the same id.
        let id: Option<i64> = sqlx::query_scalar(
            "UPDATE users SET next_contact = next_contact + 1 WHERE email = $1 \
             RETURNING next_contact - 1",
        )
        .bind(&contact.email)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else { return Ok(None) };
        sqlx::query(
            "INSERT INTO contacts (email, id, contact, expires_at, presence, source, sip) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&contact.email)
        .bind(id)
        .bind(&contact.contact)
        .bind(contact.expires_at)
        .bind(contact.presence.as_ref().map(to_json))
        .bind(source_name(contact.source))
        .bind(contact.sip.as_ref().map(to_json))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(ContactRecord {
            id,
            ..contact.clone()
        }))
    }

    async fn update_contact(&self, contact: &ContactRecord) -> StoreResult<bool> {
        match self.contact_writes.update(contact).await {
            Some(outcome) => outcome,
            None => update_one(&self.pool, contact).await,
        }
    }

    fn update_contact_later(&self, contact: ContactRecord) -> bool {
        self.contact_writes.later(contact)
    }

    async fn flush(&self) {
        self.contact_writes.flush().await;
        self.send_writes.flush().await;
    }

    async fn contact(&self, email: &str, id: i64) -> StoreResult<Option<ContactRecord>> {
        super::shared::pg::contact(&self.pool, email, id).await
    }

    async fn contacts(&self, email: &str, now: i64) -> StoreResult<Vec<ContactRecord>> {
        super::shared::pg::contacts(&self.pool, email, now).await
    }

    async fn remove_contact(&self, email: &str, id: i64) -> StoreResult<Option<ContactRecord>> {
        super::shared::pg::remove_contact(&self.pool, email, id).await
    }

    async fn take_expired_contacts(&self, now: i64) -> StoreResult<Vec<ContactRecord>> {
        // Two relays sweeping at once each take a contact once: a row deleted by the other
        // is not returned here.
        let delete =
            sqlx::query("DELETE FROM contacts WHERE expires_at <= $1 RETURNING *").bind(now);
        fetch_records(delete, &self.pool, contact_row).await
    }

    async fn next_expiry(&self) -> StoreResult<Option<i64>> {
        super::shared::pg::next_expiry(&self.pool).await
    }

    async fn logged_in(&self, now: i64) -> StoreResult<Vec<String>> {
        super::shared::pg::logged_in(&self.pool, now).await
    }

    async fn create_call(&self, call: &CallRecord) -> StoreResult<()> {
        super::shared::pg::create_call(&self.pool, call).await
    }

    async fn call(&self, id: &str) -> StoreResult<Option<CallRecord>> {
        super::shared::pg::call(&self.pool, id).await
    }

    async fn delete_call(&self, id: &str) -> StoreResult<bool> {
        super::shared::pg::delete_call(&self.pool, id).await
    }

    async fn add_participant(
        &self,
        p: &ParticipantRecord,
    ) -> StoreResult<Option<ParticipantRecord>> {
        let mut tx = self.pool.begin().await?;
        let id: Option<i64> = sqlx::query_scalar(
            "UPDATE calls SET next_participant = next_participant + 1 WHERE id = $1 \
             RETURNING next_participant - 1",
        )
        .bind(&p.call_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else { return Ok(None) };
        sqlx::query(
            "INSERT INTO participants (call_id, id, login, \"user\", session, data) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&p.call_id)
        .bind(id)
        .bind(&p.login)
        .bind(&p.user)
        .bind(p.session.as_ref().map(to_json))
        .bind(to_json(&p.data))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(ParticipantRecord { id, ..p.clone() }))
    }

    async fn participants(&self, call_id: &str) -> StoreResult<Vec<ParticipantRecord>> {
        super::shared::pg::participants(&self.pool, call_id).await
    }

    async fn participant(&self, call_id: &str, id: i64) -> StoreResult<Option<ParticipantRecord>> {
        super::shared::pg::participant(&self.pool, call_id, id).await
    }

    async fn update_participant(&self, p: &ParticipantRecord) -> StoreResult<bool> {
        super::shared::pg::update_participant(&self.pool, p).await
    }

    async fn remove_participant(
        &self,
        call_id: &str,
        id: i64,
    ) -> StoreResult<Option<ParticipantRecord>> {
        super::shared::pg::remove_participant(&self.pool, call_id, id).await
    }

    async fn remove_participants_of(
        &self,
        logins: &[String],
    ) -> StoreResult<Vec<ParticipantRecord>> {
        let delete =
            sqlx::query("DELETE FROM participants WHERE login = ANY($1) RETURNING *").bind(logins);
        fetch_records(delete, &self.pool, participant_row).await
    }

    async fn queue_sends(&self, sends: &[SendRecord]) -> StoreResult<()> {
        self.send_writes.queue(sends).await
    }

    async fn queued_count(&self, email: &str, contact: i64) -> StoreResult<usize> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sends WHERE to_email = $1 AND to_contact = $2 \
             AND status = 'queued'",
        )
        .bind(email)
        .bind(contact)
        .fetch_one(&self.pool)
        .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn queued_from(&self, email: &str, contact: i64, sender: &str) -> StoreResult<usize> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sends \
             WHERE to_email = $1 AND to_contact = $2 AND sender = $3 AND status = 'queued'",
        )
        .bind(email)
        .bind(contact)
        .bind(sender)
        .fetch_one(&self.pool)
        .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn claim_send(&self, seq: i64) -> StoreResult<bool> {
        self.send_writes.claim(seq).await
    }

    fn claim_send_later(&self, seq: i64) -> bool {
        self.send_writes.claim_later(seq)
    }

    async fn flush_sends(&self) {
        self.send_writes.flush().await;
    }

    async fn pending_sends(
        &self,
        email: &str,
        contact: i64,
        after: Option<i64>,
    ) -> StoreResult<Vec<SendRecord>> {
        let query = sqlx::query(
            "SELECT * FROM sends WHERE to_email = $1 AND to_contact = $2 \
             AND (status = 'queued' OR $3::bigint IS NOT NULL AND seq > $3 \
                  AND status != 'cancelled') ORDER BY seq",
        )
        .bind(email)
        .bind(contact)
        .bind(after);
        fetch_records(query, &self.pool, send_row).await
    }

    async fn cancel_send(
        &self,
        sender: &str,
        msg_id: &str,
        email: &str,
        contact: Option<i64>,
    ) -> StoreResult<Vec<(i64, DeliveryStatus)>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE sends SET status = 'cancelled' WHERE msg_id = $1 AND sender = $2 \
             AND to_email = $3 AND ($4::bigint IS NULL OR to_contact = $4) AND status = 'queued'",
        )
        .bind(msg_id)
        .bind(sender)
        .bind(email)
        .bind(contact)
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query(
            "SELECT to_contact, status FROM sends WHERE msg_id = $1 AND sender = $2 \
             AND to_email = $3 AND ($4::bigint IS NULL OR to_contact = $4) ORDER BY to_contact",
        )
        .bind(msg_id)
        .bind(sender)
        .bind(email)
        .bind(contact)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter()
            .map(|row| {
                let status: String = row.try_get("status")?;
                Ok((row.try_get("to_contact")?, parse_status(&status)?))
            })
            .collect()
    }

    async fn max_send_seq(&self) -> StoreResult<i64> {
        super::shared::pg::max_send_seq(&self.pool).await
    }

    async fn secret(&self) -> StoreResult<Vec<u8>> {
        let fresh: [u8; 32] = rand::random();
        // The first relay's secret wins; every relay signs with it.
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ('token-secret', $1) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(&fresh[..])
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = 'token-secret'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn revoke_token(&self, id: &str, expires: u64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO revoked_tokens (id, expires) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(i64::try_from(expires).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn revoked_tokens(&self, now: u64) -> StoreResult<Vec<(String, u64)>> {
        super::shared::pg::revoked_tokens(&self.pool, now).await
    }

    // Webhooks: the SQL is in postgres_webhooks.rs.

    async fn create_webhook(&self, hook: &WebhookRecord, max: usize) -> StoreResult<bool> {
        webhooks::create(&self.pool, hook, max).await
    }

    async fn webhook(&self, id: &str) -> StoreResult<Option<WebhookRecord>> {
        webhooks::get(&self.pool, id).await
    }

    async fn webhooks(&self, owner: Option<&str>) -> StoreResult<Vec<WebhookRecord>> {
        webhooks::list(&self.pool, owner).await
    }

    async fn delete_webhook(&self, id: &str) -> StoreResult<bool> {
        super::shared::pg::delete_webhook(&self.pool, id).await
    }

    async fn queue_webhook_event(
        &self,
        id: &str,
        event_id: i64,
        body: &str,
        claim: Option<i64>,
    ) -> StoreResult<Queued> {
        super::shared::pg::queue(&self.pool, id, event_id, body, claim).await
    }

    async fn webhook_head(&self, id: &str) -> StoreResult<Option<WebhookEventRecord>> {
        super::shared::pg::head(&self.pool, id).await
    }

    async fn ack_webhook_event(&self, id: &str, seq: i64) -> StoreResult<bool> {
        super::shared::pg::ack(&self.pool, id, seq).await
    }

    async fn webhook_failed(
        &self,
        id: &str,
        error: &str,
        failing_since: Option<i64>,
    ) -> StoreResult<()> {
        super::shared::pg::failed(&self.pool, id, error, failing_since).await
    }

    async fn webhook_queue_len(&self, id: &str) -> StoreResult<usize> {
        super::shared::pg::queue_len(&self.pool, id).await
    }

    async fn max_webhook_cursor(&self) -> StoreResult<i64> {
        super::shared::pg::max_cursor(&self.pool).await
    }
}
