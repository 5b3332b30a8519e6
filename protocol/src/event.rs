use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What an [`Event`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The full state of the resource (`data` is what a plain GET returns). Always first; sent
    /// again whenever the stream cannot give the differences (and for every change in full mode).
    State,
    /// An item was added (`data` is the item: a contact or a participant).
    Added,
    /// An item changed (`data` is the item as it is now).
    Updated,
    /// An item went away (`data` is the item as it was, with a `reason`).
    Removed,
    /// A SEND reached this contact (`data` is an `InboxMessage`).
    Message,
    /// The resource itself went away (deleted call, logged-out contact); the stream ends.
    Gone,
}

/// One update of an active resource. Items in `added`, `updated` and `removed` carry an `id`:
/// applying the same difference twice is harmless.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct Event {
    /// Increasing event id; give the last one seen as `Last-Event-ID` (or `?since=`) to resume.
    pub id: u64,
    /// The resource the event is about, e.g. `/login/kundan@example.net`.
    pub resource: String,
    /// What happened.
    pub kind: EventKind,
    /// The state, the item or the message.
    pub data: Value,
}

/// Whether an active resource streams differences or the full state on each change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "lowercase")]
pub enum UpdateMode {
    /// `added` / `updated` / `removed` events after the first `state`.
    #[default]
    Diff,
    /// A `state` event with the whole resource on every change.
    Full,
}
