//! Rows of either store engine as records and back: JSON columns (text on both engines), enum
//! names, one function per table's row; shared by both stores and their batch writers. A row is
//! read through [`Columns`], which each engine's row type implements.

use restsip_protocol::{ContactSource, DeliveryStatus};
use serde_json::{Map, Value};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use restsip_protocol::UpdateMode;

use super::{
    CallRecord, ContactRecord, DigestRecord, MailRecord, ParticipantRecord, SendRecord, StoreError,
    StoreResult, UserRecord, WebhookEventRecord, WebhookRecord,
};

/// The column types the stores use, read by name from a row of either engine.
pub(super) trait Columns {
    /// A text column.
    fn text(&self, column: &str) -> StoreResult<String>;
    /// A text column that may be NULL.
    fn text_or_null(&self, column: &str) -> StoreResult<Option<String>>;
    /// An integer column.
    fn int(&self, column: &str) -> StoreResult<i64>;
    /// An integer column that may be NULL.
    fn int_or_null(&self, column: &str) -> StoreResult<Option<i64>>;
}

/// [`Columns`] for a row type that decodes `String` and `i64` (both engines' rows).
macro_rules! columns {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, column: &str) -> StoreResult<String> {
                Ok(self.try_get(column)?)
            }
            fn text_or_null(&self, column: &str) -> StoreResult<Option<String>> {
                Ok(self.try_get(column)?)
            }
            fn int(&self, column: &str) -> StoreResult<i64> {
                Ok(self.try_get(column)?)
            }
            fn int_or_null(&self, column: &str) -> StoreResult<Option<i64>> {
                Ok(self.try_get(column)?)
            }
        }
    };
}
columns!(SqliteRow);
columns!(PgRow);

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// Bytes a message takes in its mailbox: its url, body, subject and sender as stored.
pub(super) fn mail_size(mail: &MailRecord) -> usize {
    mail.url.as_ref().map_or(0, String::len)
        + mail.body.as_ref().map_or(0, |b| to_json(b).len())
        + mail.subject.as_ref().map_or(0, String::len)
        + mail.sender.len()
}

pub(super) fn json_value(text: Option<String>) -> StoreResult<Option<Value>> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

pub(super) fn json_map(text: String) -> StoreResult<Map<String, Value>> {
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) fn source_name(source: ContactSource) -> &'static str {
    match source {
        ContactSource::Web => "web",
        ContactSource::Sip => "sip",
    }
}

pub(super) fn parse_status(name: &str) -> StoreResult<DeliveryStatus> {
    match name {
        "queued" => Ok(DeliveryStatus::Queued),
        "delivered" => Ok(DeliveryStatus::Delivered),
        "cancelled" => Ok(DeliveryStatus::Cancelled),
        "failed" => Ok(DeliveryStatus::Failed),
        other => Err(StoreError::Corrupt(format!("delivery status {other:?}"))),
    }
}

pub(super) fn user_row<R: Columns>(row: R) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        email: row.text("email")?,
        password_hash: row.text("password_hash")?,
        name: row.text_or_null("name")?,
        data: json_map(row.text("data")?)?,
        created: row.int("created")?,
    })
}

/// The digest columns of a user's row.
pub(super) fn digest_row<R: Columns>(row: R) -> StoreResult<DigestRecord> {
    let aliases = row.text_or_null("ha1_aliases")?;
    Ok(DigestRecord {
        realm: row.text("digest_realm")?,
        md5: row.text("ha1_md5")?,
        sha256: row.text("ha1_sha256")?,
        // Stored before aliases existed: none until the next password login.
        aliases: match aliases {
            Some(text) => {
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))?
            }
            None => Vec::new(),
        },
    })
}

pub(super) fn mail_row<R: Columns>(row: R) -> StoreResult<MailRecord> {
    Ok(MailRecord {
        id: row.int("id")?,
        owner: row.text("owner")?,
        sender: row.text("sender")?,
        url: row.text_or_null("url")?,
        body: json_value(row.text_or_null("body")?)?,
        subject: row.text_or_null("subject")?,
        created: row.int("created")?,
    })
}

pub(super) fn contact_row<R: Columns>(row: R) -> StoreResult<ContactRecord> {
    let source = row.text("source")?;
    Ok(ContactRecord {
        email: row.text("email")?,
        id: row.int("id")?,
        contact: row.text_or_null("contact")?,
        expires_at: row.int("expires_at")?,
        presence: json_value(row.text_or_null("presence")?)?,
        source: if source == "sip" {
            ContactSource::Sip
        } else {
            ContactSource::Web
        },
        sip: json_value(row.text_or_null("sip")?)?,
    })
}

pub(super) fn call_row<R: Columns>(row: R) -> StoreResult<CallRecord> {
    Ok(CallRecord {
        id: row.text("id")?,
        owner: row.text("owner")?,
        subject: row.text_or_null("subject")?,
        data: json_map(row.text("data")?)?,
        created: row.int("created")?,
    })
}

pub(super) fn participant_row<R: Columns>(row: R) -> StoreResult<ParticipantRecord> {
    Ok(ParticipantRecord {
        call_id: row.text("call_id")?,
        id: row.int("id")?,
        login: row.text("login")?,
        user: row.text("user")?,
        session: json_value(row.text_or_null("session")?)?,
        data: json_map(row.text("data")?)?,
    })
}

pub(super) fn send_row<R: Columns>(row: R) -> StoreResult<SendRecord> {
    let body = row.text("body")?;
    let status = row.text("status")?;
    Ok(SendRecord {
        seq: row.int("seq")?,
        msg_id: row.text("msg_id")?,
        sender: row.text("sender")?,
        to_email: row.text("to_email")?,
        to_contact: row.int("to_contact")?,
        target: row.text("target")?,
        body: serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        sent: row.int("sent")?,
        status: parse_status(&status)?,
    })
}

/// The columns of a webhook with the length of its outbox.
pub(super) const WEBHOOK_COLUMNS: &str =
    "w.id, w.owner, w.target, w.resource, w.updates, w.secret, \
     w.created, w.cursor, w.failing_since, w.last_error, \
     (SELECT COUNT(*) FROM webhook_events e WHERE e.webhook_id = w.id) AS queued";

pub(super) fn updates_name(mode: UpdateMode) -> &'static str {
    match mode {
        UpdateMode::Diff => "diff",
        UpdateMode::Full => "full",
    }
}

pub(super) fn webhook_row<R: Columns>(row: R) -> StoreResult<WebhookRecord> {
    let updates = row.text("updates")?;
    let queued = row.int("queued")?;
    Ok(WebhookRecord {
        id: row.text("id")?,
        owner: row.text("owner")?,
        target: row.text("target")?,
        resource: row.text("resource")?,
        updates: match updates.as_str() {
            "diff" => UpdateMode::Diff,
            "full" => UpdateMode::Full,
            other => return Err(StoreError::Corrupt(format!("webhook updates {other:?}"))),
        },
        secret: row.text("secret")?,
        created: row.int("created")?,
        cursor: row.int_or_null("cursor")?,
        failing_since: row.int_or_null("failing_since")?,
        last_error: row.text_or_null("last_error")?,
        queued: usize::try_from(queued).unwrap_or(0),
    })
}

pub(super) fn event_row<R: Columns>(row: R) -> StoreResult<WebhookEventRecord> {
    Ok(WebhookEventRecord {
        seq: row.int("seq")?,
        event_id: row.int("event_id")?,
        body: row.text("body")?,
        queued: row.int("queued")?,
    })
}
