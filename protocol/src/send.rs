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
    /// Not delivered: a SIP phone refused it or did not answer (see `sip`).
    Failed,
}

/// The final SIP response a SIP contact gave to a SEND translated to SIP (e.g. MESSAGE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct SipStatus {
    /// Status code (200 to 699; 408 when the phone did not answer in time).
    pub code: u16,
    /// Reason phrase.
    pub reason: String,
}

/// The fate of a SEND at one contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct Delivery {
    /// The contact, `/login/{email}/{id}`.
    pub contact: String,
    /// Delivered, queued, or (SIP contacts) failed.
    pub status: DeliveryStatus,
    /// For a contact that is a SIP registration: the phone's final response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip: Option<SipStatus>,
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
