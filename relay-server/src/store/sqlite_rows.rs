//! Rows of the SQLite store as records and back: JSON columns, enum names, one function per
//! table's row; shared by the store and its batch writer.

use restsip_protocol::{ContactSource, DeliveryStatus};
use serde_json::{Map, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{
    CallRecord, ContactRecord, DigestRecord, MailRecord, ParticipantRecord, SendRecord, StoreError,
    StoreResult, UserRecord,
};

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
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

pub(super) fn user_row(row: SqliteRow) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        name: row.try_get("name")?,
        data: json_map(row.try_get("data")?)?,
        created: row.try_get("created")?,
    })
}

/// The digest columns of a user's row.
pub(super) fn digest_row(row: SqliteRow) -> StoreResult<DigestRecord> {
    let aliases: Option<String> = row.try_get("ha1_aliases")?;
    Ok(DigestRecord {
        realm: row.try_get("digest_realm")?,
        md5: row.try_get("ha1_md5")?,
        sha256: row.try_get("ha1_sha256")?,
        // Stored before aliases existed: none until the next password login.
        aliases: match aliases {
            Some(text) => {
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))?
            }
            None => Vec::new(),
        },
    })
}

pub(super) fn mail_row(row: SqliteRow) -> StoreResult<MailRecord> {
    Ok(MailRecord {
        id: row.try_get("id")?,
        owner: row.try_get("owner")?,
        sender: row.try_get("sender")?,
        url: row.try_get("url")?,
        body: json_value(row.try_get("body")?)?,
        subject: row.try_get("subject")?,
        created: row.try_get("created")?,
    })
}

pub(super) fn contact_row(row: SqliteRow) -> StoreResult<ContactRecord> {
    let source: String = row.try_get("source")?;
    Ok(ContactRecord {
        email: row.try_get("email")?,
        id: row.try_get("id")?,
        contact: row.try_get("contact")?,
        expires_at: row.try_get("expires_at")?,
        presence: json_value(row.try_get("presence")?)?,
        source: if source == "sip" {
            ContactSource::Sip
        } else {
            ContactSource::Web
        },
        sip: json_value(row.try_get("sip")?)?,
    })
}

pub(super) fn call_row(row: SqliteRow) -> StoreResult<CallRecord> {
    Ok(CallRecord {
        id: row.try_get("id")?,
        owner: row.try_get("owner")?,
        subject: row.try_get("subject")?,
        data: json_map(row.try_get("data")?)?,
        created: row.try_get("created")?,
    })
}

pub(super) fn participant_row(row: SqliteRow) -> StoreResult<ParticipantRecord> {
    Ok(ParticipantRecord {
        call_id: row.try_get("call_id")?,
        id: row.try_get("id")?,
        login: row.try_get("login")?,
        user: row.try_get("user")?,
        session: json_value(row.try_get("session")?)?,
        data: json_map(row.try_get("data")?)?,
    })
}

pub(super) fn send_row(row: SqliteRow) -> StoreResult<SendRecord> {
    let body: String = row.try_get("body")?;
    let status: String = row.try_get("status")?;
    Ok(SendRecord {
        seq: row.try_get("seq")?,
        msg_id: row.try_get("msg_id")?,
        sender: row.try_get("sender")?,
        to_email: row.try_get("to_email")?,
        to_contact: row.try_get("to_contact")?,
        target: row.try_get("target")?,
        body: serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        sent: row.try_get("sent")?,
        status: parse_status(&status)?,
    })
}
