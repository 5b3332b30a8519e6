use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Event, UpdateMode};

/// A frame the client sends on the multiplexed WebSocket (`GET /ws`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum ClientFrame {
    /// Watch an active resource (`/login/{email}`, `/login/{email}/{id}`, `/call/{id}`).
    Subscribe {
        /// The resource path.
        path: String,
        /// Resume after this event id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
        /// Differences (default) or the full state on each change.
        #[serde(default)]
        updates: UpdateMode,
    },
    /// Stop watching a resource.
    Unsubscribe {
        /// The resource path.
        path: String,
    },
    /// SEND `body` to `path`, as the HTTP method does; answered by a `reply` with the same `ref`.
    Send {
        /// Chosen by the client to match the reply.
        #[serde(rename = "ref")]
        reference: String,
        /// `/login/{email}` or `/login/{email}/{id}`.
        path: String,
        /// The message.
        body: Value,
    },
    /// CANCEL the message `id` at `path`; answered by a `reply`.
    Cancel {
        /// Chosen by the client to match the reply.
        #[serde(rename = "ref")]
        reference: String,
        /// `/login/{email}` or `/login/{email}/{id}`.
        path: String,
        /// The message id from the SEND's receipt.
        id: String,
    },
}

/// A frame the relay sends on the WebSocket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum ServerFrame {
    /// An update of a subscribed resource.
    Event {
        /// The event (its `resource` names the subscription).
        event: Event,
    },
    /// The answer to a `send` or `cancel`: the HTTP status and body the HTTP method would give.
    Reply {
        /// The client's `ref`.
        #[serde(rename = "ref")]
        reference: String,
        /// HTTP status code.
        status: u16,
        /// The receipt, outcome or problem.
        body: Value,
    },
    /// A frame could not be handled (bad JSON, unknown resource, forbidden subscription).
    Error {
        /// The path concerned, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// The problem.
        problem: crate::Problem,
    },
}
