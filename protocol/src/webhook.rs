use serde::{Deserialize, Serialize};

use crate::UpdateMode;

/// Header of a webhook delivery: the webhook's id.
pub const WEBHOOK_ID_HEADER: &str = "x-restsip-webhook";
/// Header of a webhook delivery: the id of the event in the body.
pub const WEBHOOK_EVENT_ID_HEADER: &str = "x-restsip-event-id";
/// Header of a webhook delivery: when it was signed, in seconds since the Unix epoch.
pub const WEBHOOK_TIMESTAMP_HEADER: &str = "x-restsip-timestamp";
/// Header of a webhook delivery: `sha256=` and the hex HMAC-SHA256, keyed with the webhook's
/// secret, of the timestamp, a `.` and the body.
pub const WEBHOOK_SIGNATURE_HEADER: &str = "x-restsip-signature";

/// `POST /webhook`: deliver the events of an active resource to a URL by HTTP POST.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where events are POSTed: an absolute `http://` or `https://` URL.
    pub url: String,
    /// The active resource: `/login/{email}`, `/login/{email}/{id}` (yours: what is SENT to
    /// it) or `/call/{id}`.
    pub resource: String,
    /// Differences (the default) or the full state on each change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updates: Option<UpdateMode>,
}

/// Answer to `POST /webhook`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct WebhookCreated {
    /// The webhook's id (also in every delivery's `X-Restsip-Webhook` header).
    pub id: String,
    /// The webhook resource, `/webhook/{id}`.
    pub url: String,
    /// The key of the deliveries' signatures. Shown only here: keep it.
    pub secret: String,
}

/// How a webhook's deliveries are going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "lowercase")]
pub enum WebhookStatus {
    /// Events are delivered (or being retried within the allowed age).
    Active,
    /// An event has failed for longer than the relay's webhook age limit. The relay keeps
    /// trying at its longest interval; the first delivery that succeeds makes it active again.
    Failing,
}

/// A webhook, as `GET /webhook` and `GET /webhook/{id}` show it (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct Webhook {
    /// Its id.
    pub id: String,
    /// The webhook resource, `/webhook/{id}`.
    pub url: String,
    /// Where events are POSTed (the `url` it was created with).
    pub target: String,
    /// The active resource it follows.
    pub resource: String,
    /// Differences or full state.
    pub updates: UpdateMode,
    /// Whose it is.
    pub owner: String,
    /// When it was created, milliseconds since the Unix epoch.
    pub created: i64,
    /// Active or failing.
    pub status: WebhookStatus,
    /// Events stored and not yet acknowledged by the target.
    pub queued: u64,
    /// Since when it is failing (milliseconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<i64>,
    /// Why the last delivery attempt failed, if the last attempt did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}
