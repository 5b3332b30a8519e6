use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What happened to a SEND at one contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// A live stream of the contact had it.
    Delivered,
    /// Stored; it is delivered when the contact next connects.
    Queued,
    /// Withdrawn by CANCEL before delivery.
    Cancelled,
}

/// The fate of a SEND at one contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct Delivery {
    /// The contact, `/login/{email}/{id}`.
    pub contact: String,
    /// Delivered or queued.
    pub status: DeliveryStatus,
}

/// Answer to `SEND /login/{email}[/{id}]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct SendReceipt {
    /// The message id, for CANCEL.
    pub id: String,
    /// One entry per contact it went to.
    pub deliveries: Vec<Delivery>,
}

/// `CANCEL /login/{email}[/{id}]`: withdraw a SEND that is still queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// The message id from the SEND's receipt.
    pub id: String,
}

/// Answer to CANCEL: which deliveries were withdrawn and which had already happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct CancelOutcome {
    /// The message id.
    pub id: String,
    /// Per contact: `cancelled` or `delivered` (too late to withdraw).
    pub deliveries: Vec<Delivery>,
}

/// A SEND as its recipient receives it on `GET /login/{email}/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct InboxMessage {
    /// The message id (the same for every contact it went to).
    pub id: String,
    /// The sender's email, from the sender's credential (SIP `From`).
    pub from: String,
    /// The resource it was sent to: `/login/{email}` or `/login/{email}/{id}`.
    pub to: String,
    /// The body exactly as sent.
    pub body: Value,
    /// When it was sent, milliseconds since the Unix epoch.
    pub sent: i64,
}
