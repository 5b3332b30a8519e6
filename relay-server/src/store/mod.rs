//! Durable state behind one trait: users, offline mail, logins (contacts), calls and queued SENDs.
//! SQLite is the embedded default; PostgreSQL (`postgres://…`) serves several relays sharing
//! load. Both implement the same trait with the same semantics (the tests run on both). Every write returns only once it is committed, so what the API
//! acknowledged survives a crash.

mod contact_batch;
mod dialogs;
mod postgres;
mod postgres_batch;
mod postgres_sends;
mod postgres_webhooks;
mod query;
mod rows;
mod send_batch;
mod shared;
mod sqlite;
mod sqlite_batch;
mod sqlite_caps;
mod sqlite_checkpoint;
mod sqlite_health;
mod sqlite_sends;
mod sqlite_webhooks;
mod statements;
mod write_behind;

use std::sync::Arc;

use async_trait::async_trait;
use restsip_protocol::{ContactSource, DeliveryStatus, UpdateMode};
use serde_json::{Map, Value};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// What can go wrong in a store call.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A record with that key exists already.
    #[error("already exists")]
    Conflict,
    /// The database failed.
    #[error("database: {0}")]
    Backend(#[from] sqlx::Error),
    /// The database failed, on the connection SENDs are written through
    /// ([`sqlite_sends`]).
    #[error("database: {0}")]
    Direct(#[from] rusqlite::Error),
    /// A stored value could not be read back.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// A user account.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    /// The email: id, login name, SIP address of record.
    pub email: String,
    /// Argon2 PHC string.
    pub password_hash: String,
    /// Display name.
    pub name: Option<String>,
    /// Application profile data.
    pub data: Map<String, Value>,
    /// Sign-up time (ms).
    pub created: i64,
}

/// An offline message.
#[derive(Debug, Clone, PartialEq)]
pub struct MailRecord {
    /// Id, unique in the store.
    pub id: i64,
    /// The user whose mailbox holds it.
    pub owner: String,
    /// Who left it.
    pub sender: String,
    /// Media URL.
    pub url: Option<String>,
    /// Inline body.
    pub body: Option<Value>,
    /// Subject.
    pub subject: Option<String>,
    /// When it was left (ms).
    pub created: i64,
}

/// The caps on one mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailCaps {
    /// Most messages.
    pub messages: usize,
    /// Most bytes (url, body, subject and sender of every message).
    pub bytes: usize,
    /// Most messages from one sender.
    pub per_sender: usize,
}

impl MailCaps {
    /// No caps.
    pub const NONE: Self = Self {
        messages: usize::MAX,
        bytes: usize::MAX,
        per_sender: usize::MAX,
    };
}

/// A mailbox a message did not fit in: what it holds, and the message's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxFull {
    /// Messages in it.
    pub messages: usize,
    /// Messages in it from the message's sender.
    pub from_sender: usize,
    /// Bytes in it.
    pub bytes: usize,
    /// Bytes the refused message takes.
    pub size: usize,
}

/// A contact of a logged-in user: a REST login or a SIP registration.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactRecord {
    /// The user.
    pub email: String,
    /// Id within the user's contacts, never reused.
    pub id: i64,
    /// Contact address.
    pub contact: Option<String>,
    /// When it expires (ms).
    pub expires_at: i64,
    /// Published presence.
    pub presence: Option<Value>,
    /// REST or SIP.
    pub source: ContactSource,
    /// For SIP registrations: how to reach the phone (transport, source address, Path) and the
    /// Call-ID and CSeq of the REGISTER that made it.
    pub sip: Option<Value>,
}

/// The digest authentication secrets of a user: `H(email:realm:password)` per algorithm, and
/// the same for the other usernames a phone may be configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestRecord {
    /// The realm the values were computed for.
    pub realm: String,
    /// MD5 HA1, hex.
    pub md5: String,
    /// SHA-256 HA1, hex.
    pub sha256: String,
    /// The HA1 values of the other usernames of the account.
    pub aliases: Vec<DigestAlias>,
}

/// The digest secrets of one other username of an account (its email's local part, or the
/// email with '@' escaped): `H(username:realm:password)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DigestAlias {
    /// The username as a phone sends it.
    pub username: String,
    /// MD5 HA1, hex.
    pub md5: String,
    /// SHA-256 HA1, hex.
    pub sha256: String,
}

/// A call (conference) context.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    /// Random id.
    pub id: String,
    /// Creator's email.
    pub owner: String,
    /// Subject.
    pub subject: Option<String>,
    /// Application call data.
    pub data: Map<String, Value>,
    /// Creation time (ms).
    pub created: i64,
}

/// A participant of a call.
#[derive(Debug, Clone, PartialEq)]
pub struct ParticipantRecord {
    /// The call.
    pub call_id: String,
    /// Id within the call, never reused.
    pub id: i64,
    /// The login it joined with (`/login/{email}` or `/login/{email}/{id}`).
    pub login: String,
    /// Its user's email.
    pub user: String,
    /// Session description.
    pub session: Option<Value>,
    /// Application data.
    pub data: Map<String, Value>,
}

/// One SEND on its way to one contact.
#[derive(Debug, Clone, PartialEq)]
pub struct SendRecord {
    /// Event id of the delivery; increasing per contact.
    pub seq: i64,
    /// Message id shared by all contacts of one SEND.
    pub msg_id: String,
    /// Sender's email.
    pub sender: String,
    /// Recipient user.
    pub to_email: String,
    /// Recipient contact id.
    pub to_contact: i64,
    /// The resource the SEND named.
    pub target: String,
    /// The body as sent.
    pub body: Value,
    /// When (ms).
    pub sent: i64,
    /// Queued, delivered or cancelled.
    pub status: DeliveryStatus,
}

/// A webhook: a subscription of a URL to an active resource.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRecord {
    /// Random id.
    pub id: String,
    /// The user who made it.
    pub owner: String,
    /// Where events are POSTed.
    pub target: String,
    /// The active resource it follows.
    pub resource: String,
    /// Differences or full state.
    pub updates: UpdateMode,
    /// The HMAC key of its signatures.
    pub secret: String,
    /// Creation time (ms).
    pub created: i64,
    /// Id of the last event queued: where its source resumes.
    pub cursor: Option<i64>,
    /// When an event outlived the age limit (ms); None while healthy.
    pub failing_since: Option<i64>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// Events queued and not yet acknowledged (read only).
    pub queued: usize,
}

/// One event in a webhook's outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEventRecord {
    /// Position in the outbox (increasing).
    pub seq: i64,
    /// The event's id.
    pub event_id: i64,
    /// The JSON `Event` as it is POSTed.
    pub body: String,
    /// When it was queued (ms).
    pub queued: i64,
}

/// What [`Store::queue_webhook_event`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Stored; the outbox now holds this many events.
    Stored(usize),
    /// The SEND to claim was cancelled: nothing stored.
    NotClaimed,
    /// The webhook no longer exists.
    NoWebhook,
}

/// The relay's durable state.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Adds a user; [`StoreError::Conflict`] when the email is taken.
    async fn create_user(&self, user: &UserRecord) -> StoreResult<()>;
    /// A user by email.
    async fn user(&self, email: &str) -> StoreResult<Option<UserRecord>>;
    /// Replaces a user's name, data and password hash; false if there is no such user.
    async fn update_user(&self, user: &UserRecord) -> StoreResult<bool>;
    /// Deletes a user with its mail, contacts and queued SENDs; false if there was none.
    async fn delete_user(&self, email: &str) -> StoreResult<bool>;
    /// Replaces a user's digest secrets; false if there is no such user.
    async fn set_digest(&self, email: &str, digest: &DigestRecord) -> StoreResult<bool>;
    /// A user's digest secrets; None if the user does not exist or has none stored.
    async fn digest(&self, email: &str) -> StoreResult<Option<DigestRecord>>;
    /// A user's presence rule (JSON text); None if the user does not exist or has set none.
    async fn presence_rule(&self, email: &str) -> StoreResult<Option<String>>;
    /// Replaces a user's presence rule (JSON text); false if there is no such user.
    async fn set_presence_rule(&self, email: &str, rule: &str) -> StoreResult<bool>;

    /// Stores an offline message (its `id` is assigned) and returns it.
    async fn add_mail(&self, mail: &MailRecord) -> StoreResult<MailRecord>;
    /// Adds an offline message unless its owner's mailbox would pass one of `caps` (checked
    /// and added at once); else what the mailbox holds.
    async fn add_mail_within(
        &self,
        mail: &MailRecord,
        caps: &MailCaps,
    ) -> StoreResult<Result<MailRecord, MailboxFull>>;
    /// The owner's messages, oldest first.
    async fn mail(&self, owner: &str) -> StoreResult<Vec<MailRecord>>;
    /// Deletes one of the owner's messages; false if there was none.
    async fn delete_mail(&self, owner: &str, id: i64) -> StoreResult<bool>;

    /// Adds a contact for an existing user (its `id` is assigned); None if the user is gone.
    async fn add_contact(&self, contact: &ContactRecord) -> StoreResult<Option<ContactRecord>>;
    /// Replaces a contact's address, expiry and presence; false if it is gone.
    async fn update_contact(&self, contact: &ContactRecord) -> StoreResult<bool>;
    /// Queues a contact update to be written shortly without waiting for its commit
    /// (write-behind, for SIP refreshes answered from memory); false if this store cannot,
    /// and the caller writes it with [`Store::update_contact`].
    fn update_contact_later(&self, contact: ContactRecord) -> bool {
        let _ = contact;
        false
    }
    /// Waits until every update queued with [`Store::update_contact_later`] and every claim
    /// queued with [`Store::claim_send_later`] is written.
    async fn flush(&self) {}
    /// One contact, expired or not.
    async fn contact(&self, email: &str, id: i64) -> StoreResult<Option<ContactRecord>>;
    /// The user's contacts that have not expired at `now`, by id.
    async fn contacts(&self, email: &str, now: i64) -> StoreResult<Vec<ContactRecord>>;
    /// Removes a contact and its undelivered SENDs, returning it.
    async fn remove_contact(&self, email: &str, id: i64) -> StoreResult<Option<ContactRecord>>;
    /// Removes every contact expired at `now`, returning them.
    async fn take_expired_contacts(&self, now: i64) -> StoreResult<Vec<ContactRecord>>;
    /// The earliest contact expiry, if any contact exists.
    async fn next_expiry(&self) -> StoreResult<Option<i64>>;
    /// The users with a contact that has not expired at `now` (after a restart, the relay
    /// registers them at its upstream SIP server again).
    async fn logged_in(&self, now: i64) -> StoreResult<Vec<String>> {
        let _ = now;
        Ok(Vec::new())
    }

    /// Adds a call.
    async fn create_call(&self, call: &CallRecord) -> StoreResult<()>;
    /// A call by id.
    async fn call(&self, id: &str) -> StoreResult<Option<CallRecord>>;
    /// Deletes a call and its participants; false if there was none.
    async fn delete_call(&self, id: &str) -> StoreResult<bool>;
    /// Adds a participant (its `id` is assigned); None if the call is gone.
    async fn add_participant(
        &self,
        p: &ParticipantRecord,
    ) -> StoreResult<Option<ParticipantRecord>>;
    /// The participants of a call, by id.
    async fn participants(&self, call_id: &str) -> StoreResult<Vec<ParticipantRecord>>;
    /// One participant.
    async fn participant(&self, call_id: &str, id: i64) -> StoreResult<Option<ParticipantRecord>>;
    /// Replaces a participant's session and data; false if it is gone.
    async fn update_participant(&self, p: &ParticipantRecord) -> StoreResult<bool>;
    /// Removes a participant, returning it.
    async fn remove_participant(
        &self,
        call_id: &str,
        id: i64,
    ) -> StoreResult<Option<ParticipantRecord>>;
    /// Removes every participant that joined with one of `logins`, returning them.
    async fn remove_participants_of(
        &self,
        logins: &[String],
    ) -> StoreResult<Vec<ParticipantRecord>>;

    /// Stores SENDs as queued, all or none.
    async fn queue_sends(&self, sends: &[SendRecord]) -> StoreResult<()>;
    /// How many SENDs wait undelivered for a contact.
    async fn queued_count(&self, email: &str, contact: i64) -> StoreResult<usize>;
    /// How many SENDs from `sender` wait undelivered for a contact.
    async fn queued_from(&self, email: &str, contact: i64, sender: &str) -> StoreResult<usize>;
    /// Marks a SEND delivered unless it was cancelled; true if it may be handed over.
    async fn claim_send(&self, seq: i64) -> StoreResult<bool>;
    /// Queues the mark of SEND `seq` as delivered without waiting for its commit; false when
    /// this store cannot (or is too far behind), and the caller claims it with
    /// [`Store::claim_send`]. Only for a SEND known not to be cancelled.
    fn claim_send_later(&self, _seq: i64) -> bool {
        false
    }
    /// Waits until every claim queued before with [`Store::claim_send_later`] is written.
    async fn flush_sends(&self) {}
    /// SENDs for a contact: the queued ones, and with `after` also the delivered ones after it
    /// (a stream that resumes gets again what it may have lost in flight).
    async fn pending_sends(
        &self,
        email: &str,
        contact: i64,
        after: Option<i64>,
    ) -> StoreResult<Vec<SendRecord>>;
    /// Cancels the queued deliveries of message `msg_id` from `sender` to `email` (one contact
    /// or all), returning each matching delivery with its status after the call.
    async fn cancel_send(
        &self,
        sender: &str,
        msg_id: &str,
        email: &str,
        contact: Option<i64>,
    ) -> StoreResult<Vec<(i64, DeliveryStatus)>>;
    /// The largest SEND sequence number ever stored, 0 if none.
    async fn max_send_seq(&self) -> StoreResult<i64>;

    /// A random secret created on first use and kept, for signing tokens.
    async fn secret(&self) -> StoreResult<Vec<u8>>;
    /// Records that the bearer token `id`, valid until `expires` (s), is withdrawn.
    async fn revoke_token(&self, id: &str, expires: u64) -> StoreResult<()>;
    /// The withdrawn tokens still unexpired at `now` (s), with their expiry; forgets the rest.
    async fn revoked_tokens(&self, now: u64) -> StoreResult<Vec<(String, u64)>>;

    /// Adds a webhook unless its owner has `max_per_owner` already; false then.
    async fn create_webhook(&self, hook: &WebhookRecord, max_per_owner: usize)
        -> StoreResult<bool>;
    /// A webhook by id.
    async fn webhook(&self, id: &str) -> StoreResult<Option<WebhookRecord>>;
    /// The webhooks of `owner` (every webhook with None), oldest first.
    async fn webhooks(&self, owner: Option<&str>) -> StoreResult<Vec<WebhookRecord>>;
    /// Deletes a webhook and its outbox; false if there was none.
    async fn delete_webhook(&self, id: &str) -> StoreResult<bool>;
    /// Appends an event (id and JSON body) to a webhook's outbox and moves its cursor, all or
    /// none; with `claim`, only if that SEND can be claimed, which is then marked delivered.
    async fn queue_webhook_event(
        &self,
        id: &str,
        event_id: i64,
        body: &str,
        claim: Option<i64>,
    ) -> StoreResult<Queued>;
    /// The oldest event of a webhook's outbox.
    async fn webhook_head(&self, id: &str) -> StoreResult<Option<WebhookEventRecord>>;
    /// Removes a delivered event and marks the webhook healthy; false if the webhook is gone.
    async fn ack_webhook_event(&self, id: &str, seq: i64) -> StoreResult<bool>;
    /// Records a failed attempt; with `failing_since`, marks the webhook failing (keeping an
    /// earlier mark).
    async fn webhook_failed(
        &self,
        id: &str,
        error: &str,
        failing_since: Option<i64>,
    ) -> StoreResult<()>;
    /// How many events a webhook's outbox holds.
    async fn webhook_queue_len(&self, id: &str) -> StoreResult<usize>;
    /// The largest event id any webhook queued, 0 if none.
    async fn max_webhook_cursor(&self) -> StoreResult<i64>;

    /// Ok when a write could be committed now (for `/readyz`); nothing is written.
    async fn writable(&self) -> StoreResult<()>;

    /// Counts for `/metrics`: logins alive at `now` (ms) by source, calls in progress.
    async fn gauges(&self, now: i64) -> StoreResult<StoreGauges>;

    /// Takes or renews lease `name` (relays of a cluster: who leads, which id slot is whose)
    /// for `holder` until `until` (ms), if it is free, expired at `now`, or already `holder`'s;
    /// true when `holder` holds it now. Atomic across relays sharing the database. A store that
    /// cannot (the default) refuses, and a relay with `--cluster` does not start on it.
    async fn take_lease(
        &self,
        _name: &str,
        _holder: &str,
        _now: i64,
        _until: i64,
    ) -> StoreResult<bool> {
        Err(StoreError::Backend(sqlx::Error::Configuration(
            "this store has no leases: it cannot be shared by a cluster".into(),
        )))
    }

    /// The leases whose names start with `prefix` (the id slots `slot/`: which relays run),
    /// held or expired; none in a store without leases.
    async fn leases(&self, _prefix: &str) -> StoreResult<Vec<Lease>> {
        Ok(Vec::new())
    }

    /// Keeps (or replaces) the record of call `call_id`, whose SIP dialog relay `node` holds:
    /// what another relay needs to end the call if `node` is gone.
    async fn keep_dialog(&self, _call_id: &str, _node: &str, _record: &Value) -> StoreResult<()> {
        Ok(())
    }

    /// Forgets the record of call `call_id` (it ended).
    async fn drop_dialog(&self, _call_id: &str) -> StoreResult<()> {
        Ok(())
    }

    /// Takes (deletes and returns) the records of every call relay `node` held: Call-ID and
    /// record. Atomic across relays: each record is taken by one.
    async fn take_dialogs(&self, _node: &str) -> StoreResult<Vec<(String, Value)>> {
        Ok(Vec::new())
    }
}

/// A lease ([`Store::take_lease`]) as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Lease {
    /// Its name.
    pub name: String,
    /// Who took or last renewed it.
    pub holder: String,
    /// When it expires (ms since the epoch).
    pub until: i64,
}

/// What [`Store::gauges`] counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreGauges {
    /// Logins alive, by source (`web`, `sip`).
    pub logins: std::collections::BTreeMap<String, u64>,
    /// Calls with at least one participant.
    pub calls: u64,
}

/// Opens the store a database URL names.
pub async fn open(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url).await?))
    } else {
        anyhow::bail!(
            "unsupported database URL {url:?}: use sqlite:PATH or postgres://USER@HOST:PORT/DB"
        )
    }
}

#[cfg(test)]
mod canonical_tests;
#[cfg(test)]
mod postgres_tests;
#[cfg(test)]
mod test_db;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod webhook_tests;
