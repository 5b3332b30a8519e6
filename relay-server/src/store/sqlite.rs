//! [`Store`] on SQLite in WAL mode: one file, created on first start.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use restsip_protocol::DeliveryStatus;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::contact_batch::ContactWrites;
use super::query::{changed_one, fetch_records, insert_or_conflict};
use super::rows::{contact_row, parse_status, participant_row, send_row, source_name, to_json};
use super::send_batch::SendWrites;
use super::sqlite_caps as caps;
use super::sqlite_webhooks as webhooks;
use super::{
    CallRecord, ContactRecord, DigestRecord, MailCaps, MailRecord, MailboxFull, ParticipantRecord,
    Queued, SendRecord, Store, StoreError, StoreResult, UserRecord, WebhookEventRecord,
    WebhookRecord,
};

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Readers: WAL lets them run beside the writer.
    pool: SqlitePool,
    /// The one writer. SQLite allows one write transaction at a time; writers queueing here in
    /// the pool instead of in SQLite's busy handler (which sleeps) keeps writes fast under load.
    pub(super) writer: SqlitePool,
    /// Whose turn it is to write: every write of this store takes it first, SENDs on their
    /// own connection included ([`super::sqlite_sends`]), so this relay's writers queue here
    /// instead of in SQLite's busy handler (which sleeps a millisecond and more).
    write_turn: Arc<tokio::sync::Mutex<()>>,
    /// Contact updates, committed in groups through `writer`.
    contact_writes: ContactWrites,
    /// SENDs and their claims, committed in groups on a thread and connection of their own
    /// ([`super::sqlite_sends`]).
    send_writes: SendWrites,
    /// Checkpoints the write-ahead log; stops with the last clone.
    _checkpointer: Arc<super::sqlite_checkpoint::Checkpointer>,
    /// The temporary directory of `sqlite::memory:`, removed with the last clone.
    _scratch: Option<Arc<tempfile::TempDir>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite:PATH` or `sqlite::memory:`) and
    /// brings its schema up to date.
    ///
    /// `sqlite::memory:` is a database file of its own in a fresh temporary directory, removed
    /// once the store and its clones are dropped: nothing outlives the store, as in memory, and
    /// the store runs exactly as it does on a file (one writer, readers beside it, SENDs on
    /// their own connection), which an in-memory database cannot (each connection to it is a
    /// database of its own).
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let (url, scratch) = if url.contains(":memory:") {
            let dir = tempfile::Builder::new()
                .prefix("restsip-store-")
                .tempdir()?;
            let url = format!("sqlite:{}", dir.path().join("store.db").display());
            (url, Some(Arc::new(dir)))
        } else {
            (url.to_owned(), None)
        };
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode: a commit is in the WAL file before it returns, so a killed
            // process loses nothing; only a power cut could lose the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // The log is checkpointed by a thread of its own, not by the commit that fills it.
            .pragma("wal_autocheckpoint", "0")
            .busy_timeout(Duration::from_secs(10));
        let path = Path::new(options.get_filename()).to_owned();
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)?;
            }
        }
        // No ping before each use (sqlx's default): a connection to a file in this process
        // cannot have hung up, and the ping was one more round trip to SQLite's thread per
        // statement or group.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&writer).await?;
        warn_look_alikes(&writer).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        let write_turn = Arc::new(tokio::sync::Mutex::new(()));
        let contacts = super::sqlite_batch::SqliteContacts {
            writer: writer.clone(),
            turn: write_turn.clone(),
        };
        let sends = super::sqlite_sends::DirectSends::open(&path, write_turn.clone())?;
        let checkpointer =
            super::sqlite_checkpoint::Checkpointer::start(&path, write_turn.clone())?;
        Ok(Self {
            pool,
            write_turn,
            contact_writes: ContactWrites::start(Arc::new(contacts)),
            send_writes: SendWrites::start_on_thread(Arc::new(sends))?,
            writer,
            _checkpointer: Arc::new(checkpointer),
            _scratch: scratch,
        })
    }
}

impl SqliteStore {
    /// The writer, once it is this caller's turn to write.
    async fn writing(&self) -> Writing<'_> {
        Writing {
            writer: &self.writer,
            _turn: self.write_turn.lock().await,
        }
    }
}

/// The store's writer during one caller's turn to write (see `write_turn`).
struct Writing<'a> {
    writer: &'a SqlitePool,
    _turn: tokio::sync::MutexGuard<'a, ()>,
}

impl std::ops::Deref for Writing<'_> {
    type Target = SqlitePool;

    fn deref(&self) -> &SqlitePool {
        self.writer
    }
}

#[cfg(test)]
impl SqliteStore {
    /// The temporary directory of `sqlite::memory:`.
    pub(super) fn scratch(&self) -> Option<&Path> {
        self._scratch.as_deref().map(tempfile::TempDir::path)
    }
}

/// Names in the log the accounts that migration 0005 could not put in canonical form (a
/// look-alike kept the address): nobody can log in to them; an operator may delete them or
/// rename them by hand.
async fn warn_look_alikes(db: &SqlitePool) -> anyhow::Result<()> {
    let stuck: Vec<String> =
        sqlx::query_scalar("SELECT email FROM users WHERE email <> lower(rtrim(email, '.'))")
            .fetch_all(db)
            .await?;
    for email in stuck {
        tracing::warn!(
            %email,
            canonical = %restsip_protocol::normalize_email(&email),
            "an account whose address differs from another only in case or a trailing dot \
             cannot be reached: the other account holds the address"
        );
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn writable(&self) -> StoreResult<()> {
        super::sqlite_health::writable(&*self.writing().await).await
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> StoreResult<bool> {
        super::shared::sqlite::take_lease(&*self.writing().await, name, holder, now, until).await
    }

    async fn leases(&self, prefix: &str) -> StoreResult<Vec<super::Lease>> {
        super::shared::sqlite::leases(&self.pool, prefix).await
    }

    async fn keep_dialog(
        &self,
        call_id: &str,
        node: &str,
        record: &serde_json::Value,
    ) -> StoreResult<()> {
        super::shared::sqlite::keep_dialog(&*self.writing().await, call_id, node, record).await
    }

    async fn drop_dialog(&self, call_id: &str) -> StoreResult<()> {
        super::shared::sqlite::drop_dialog(&*self.writing().await, call_id).await
    }

    async fn take_dialogs(&self, node: &str) -> StoreResult<Vec<(String, serde_json::Value)>> {
        super::shared::sqlite::take_dialogs(&*self.writing().await, node).await
    }

    async fn gauges(&self, now: i64) -> StoreResult<super::StoreGauges> {
        super::shared::sqlite::gauges(&self.pool, now).await
    }

    async fn create_user(&self, user: &UserRecord) -> StoreResult<()> {
        let insert = sqlx::query(
            "INSERT INTO users (email, password_hash, name, data, created) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(&user.name)
        .bind(to_json(&user.data))
        .bind(user.created);
        insert_or_conflict(insert, &*self.writing().await).await
    }

    async fn user(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        super::shared::sqlite::user(&self.pool, email).await
    }

    async fn update_user(&self, user: &UserRecord) -> StoreResult<bool> {
        let update =
            sqlx::query("UPDATE users SET password_hash = ?, name = ?, data = ? WHERE email = ?")
                .bind(&user.password_hash)
                .bind(&user.name)
                .bind(to_json(&user.data))
                .bind(&user.email);
        changed_one(update, &*self.writing().await).await
    }

    async fn delete_user(&self, email: &str) -> StoreResult<bool> {
        super::shared::sqlite::delete_user(&*self.writing().await, email).await
    }

    async fn set_digest(&self, email: &str, digest: &DigestRecord) -> StoreResult<bool> {
        let aliases = to_json(&digest.aliases);
        let update = sqlx::query(
            "UPDATE users SET digest_realm = ?, ha1_md5 = ?, ha1_sha256 = ?, ha1_aliases = ? \
             WHERE email = ?",
        )
        .bind(&digest.realm)
        .bind(&digest.md5)
        .bind(&digest.sha256)
        .bind(aliases)
        .bind(email);
        changed_one(update, &*self.writing().await).await
    }

    async fn digest(&self, email: &str) -> StoreResult<Option<DigestRecord>> {
        super::shared::sqlite::digest(&self.pool, email).await
    }

    async fn presence_rule(&self, email: &str) -> StoreResult<Option<String>> {
        super::shared::sqlite::presence_rule(&self.pool, email).await
    }

    async fn set_presence_rule(&self, email: &str, rule: &str) -> StoreResult<bool> {
        super::shared::sqlite::set_presence_rule(&*self.writing().await, email, rule).await
    }

    async fn add_mail(&self, mail: &MailRecord) -> StoreResult<MailRecord> {
        caps::add_mail(&*self.writing().await, mail, &MailCaps::NONE)
            .await?
            .map_err(|_| StoreError::Corrupt("an uncapped mailbox is full".into()))
    }

    async fn add_mail_within(
        &self,
        mail: &MailRecord,
        limits: &MailCaps,
    ) -> StoreResult<Result<MailRecord, MailboxFull>> {
        caps::add_mail(&*self.writing().await, mail, limits).await
    }

    async fn mail(&self, owner: &str) -> StoreResult<Vec<MailRecord>> {
        super::shared::sqlite::mail(&self.pool, owner).await
    }

    async fn delete_mail(&self, owner: &str, id: i64) -> StoreResult<bool> {
        super::shared::sqlite::delete_mail(&*self.writing().await, owner, id).await
    }

    async fn add_contact(&self, contact: &ContactRecord) -> StoreResult<Option<ContactRecord>> {
        let writing = self.writing().await;
        let mut tx = writing.begin().await?;
        let id: Option<i64> = sqlx::query_scalar(
            "UPDATE users SET next_contact = next_contact + 1 WHERE email = ? RETURNING next_contact - 1",
        )
        .bind(&contact.email)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else { return Ok(None) };
        sqlx::query(
            "INSERT INTO contacts (email, id, contact, expires_at, presence, source, sip) VALUES (?, ?, ?, ?, ?, ?, ?)",
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
            None => super::sqlite_batch::update_one(&*self.writing().await, contact).await,
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
        super::shared::sqlite::contact(&self.pool, email, id).await
    }

    async fn contacts(&self, email: &str, now: i64) -> StoreResult<Vec<ContactRecord>> {
        super::shared::sqlite::contacts(&self.pool, email, now).await
    }

    async fn remove_contact(&self, email: &str, id: i64) -> StoreResult<Option<ContactRecord>> {
        super::shared::sqlite::remove_contact(&*self.writing().await, email, id).await
    }

    async fn take_expired_contacts(&self, now: i64) -> StoreResult<Vec<ContactRecord>> {
        let delete =
            sqlx::query("DELETE FROM contacts WHERE expires_at <= ? RETURNING *").bind(now);
        fetch_records(delete, &*self.writing().await, contact_row).await
    }

    async fn next_expiry(&self) -> StoreResult<Option<i64>> {
        super::shared::sqlite::next_expiry(&self.pool).await
    }

    async fn logged_in(&self, now: i64) -> StoreResult<Vec<String>> {
        super::shared::sqlite::logged_in(&self.pool, now).await
    }

    async fn create_call(&self, call: &CallRecord) -> StoreResult<()> {
        super::shared::sqlite::create_call(&*self.writing().await, call).await
    }

    async fn call(&self, id: &str) -> StoreResult<Option<CallRecord>> {
        super::shared::sqlite::call(&self.pool, id).await
    }

    async fn delete_call(&self, id: &str) -> StoreResult<bool> {
        super::shared::sqlite::delete_call(&*self.writing().await, id).await
    }

    async fn add_participant(
        &self,
        p: &ParticipantRecord,
    ) -> StoreResult<Option<ParticipantRecord>> {
        let writing = self.writing().await;
        let mut tx = writing.begin().await?;
        let id: Option<i64> = sqlx::query_scalar(
            "UPDATE calls SET next_participant = next_participant + 1 WHERE id = ? RETURNING next_participant - 1",
        )
        .bind(&p.call_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else { return Ok(None) };
        sqlx::query("INSERT INTO participants (call_id, id, login, user, session, data) VALUES (?, ?, ?, ?, ?, ?)")
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
        super::shared::sqlite::participants(&self.pool, call_id).await
    }

    async fn participant(&self, call_id: &str, id: i64) -> StoreResult<Option<ParticipantRecord>> {
        super::shared::sqlite::participant(&self.pool, call_id, id).await
    }

    async fn update_participant(&self, p: &ParticipantRecord) -> StoreResult<bool> {
        super::shared::sqlite::update_participant(&*self.writing().await, p).await
    }

    async fn remove_participant(
        &self,
        call_id: &str,
        id: i64,
    ) -> StoreResult<Option<ParticipantRecord>> {
        super::shared::sqlite::remove_participant(&*self.writing().await, call_id, id).await
    }

    async fn remove_participants_of(
        &self,
        logins: &[String],
    ) -> StoreResult<Vec<ParticipantRecord>> {
        let mut removed = Vec::new();
        for login in logins {
            let delete =
                sqlx::query("DELETE FROM participants WHERE login = ? RETURNING *").bind(login);
            removed.extend(fetch_records(delete, &*self.writing().await, participant_row).await?);
        }
        Ok(removed)
    }

    async fn queue_sends(&self, sends: &[SendRecord]) -> StoreResult<()> {
        self.send_writes.queue(sends).await
    }

    async fn queued_count(&self, email: &str, contact: i64) -> StoreResult<usize> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sends WHERE to_email = ? AND to_contact = ? AND status = 'queued'",
        )
        .bind(email)
        .bind(contact)
        .fetch_one(&self.pool)
        .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn queued_from(&self, email: &str, contact: i64, sender: &str) -> StoreResult<usize> {
        caps::queued_from(&self.pool, email, contact, sender).await
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
        let query = match after {
            Some(after) => sqlx::query(
                "SELECT * FROM sends WHERE to_email = ? AND to_contact = ? \
                 AND (seq > ? AND status != 'cancelled' OR status = 'queued') ORDER BY seq",
            )
            .bind(email)
            .bind(contact)
            .bind(after),
            None => sqlx::query(
                "SELECT * FROM sends WHERE to_email = ? AND to_contact = ? AND status = 'queued' ORDER BY seq",
            )
            .bind(email)
            .bind(contact),
        };
        fetch_records(query, &self.pool, send_row).await
    }

    async fn cancel_send(
        &self,
        sender: &str,
        msg_id: &str,
        email: &str,
        contact: Option<i64>,
    ) -> StoreResult<Vec<(i64, DeliveryStatus)>> {
        let writing = self.writing().await;
        let mut tx = writing.begin().await?;
        sqlx::query(
            "UPDATE sends SET status = 'cancelled' WHERE msg_id = ? AND sender = ? AND to_email = ? \
             AND (? IS NULL OR to_contact = ?) AND status = 'queued'",
        )
        .bind(msg_id)
        .bind(sender)
        .bind(email)
        .bind(contact)
        .bind(contact)
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query(
            "SELECT to_contact, status FROM sends WHERE msg_id = ? AND sender = ? AND to_email = ? \
             AND (? IS NULL OR to_contact = ?) ORDER BY to_contact",
        )
        .bind(msg_id)
        .bind(sender)
        .bind(email)
        .bind(contact)
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
        super::shared::sqlite::max_send_seq(&self.pool).await
    }

    async fn secret(&self) -> StoreResult<Vec<u8>> {
        let fresh: [u8; 32] = rand::random();
        sqlx::query("INSERT OR IGNORE INTO settings (key, value) VALUES ('token-secret', ?)")
            .bind(&fresh[..])
            .execute(&*self.writing().await)
            .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = 'token-secret'")
                .fetch_one(&*self.writing().await)
                .await?,
        )
    }

    async fn revoke_token(&self, id: &str, expires: u64) -> StoreResult<()> {
        sqlx::query("INSERT OR IGNORE INTO revoked_tokens (id, expires) VALUES (?, ?)")
            .bind(id)
            .bind(i64::try_from(expires).unwrap_or(i64::MAX))
            .execute(&*self.writing().await)
            .await?;
        Ok(())
    }

    async fn revoked_tokens(&self, now: u64) -> StoreResult<Vec<(String, u64)>> {
        super::shared::sqlite::revoked_tokens(&*self.writing().await, now).await
    }

    // Webhooks: the SQL is in sqlite_webhooks.rs.

    async fn create_webhook(&self, hook: &WebhookRecord, max: usize) -> StoreResult<bool> {
        webhooks::create(&*self.writing().await, hook, max).await
    }

    async fn webhook(&self, id: &str) -> StoreResult<Option<WebhookRecord>> {
        webhooks::get(&self.pool, id).await
    }

    async fn webhooks(&self, owner: Option<&str>) -> StoreResult<Vec<WebhookRecord>> {
        webhooks::list(&self.pool, owner).await
    }

    async fn delete_webhook(&self, id: &str) -> StoreResult<bool> {
        super::shared::sqlite::delete_webhook(&*self.writing().await, id).await
    }

    async fn queue_webhook_event(
        &self,
        id: &str,
        event_id: i64,
        body: &str,
        claim: Option<i64>,
    ) -> StoreResult<Queued> {
        super::shared::sqlite::queue(&*self.writing().await, id, event_id, body, claim).await
    }

    async fn webhook_head(&self, id: &str) -> StoreResult<Option<WebhookEventRecord>> {
        super::shared::sqlite::head(&self.pool, id).await
    }

    async fn ack_webhook_event(&self, id: &str, seq: i64) -> StoreResult<bool> {
        super::shared::sqlite::ack(&*self.writing().await, id, seq).await
    }

    async fn webhook_failed(
        &self,
        id: &str,
        error: &str,
        failing_since: Option<i64>,
    ) -> StoreResult<()> {
        super::shared::sqlite::failed(&*self.writing().await, id, error, failing_since).await
    }

    async fn webhook_queue_len(&self, id: &str) -> StoreResult<usize> {
        super::shared::sqlite::queue_len(&self.pool, id).await
    }

    async fn max_webhook_cursor(&self) -> StoreResult<i64> {
        super::shared::sqlite::max_cursor(&self.pool).await
    }
}
