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
    /// Serve the SOAP service of `namespace` to SIP: a `SERVICE sip:{your email}@...` whose SOAP
    /// method is in `namespace` arrives as a `service` frame. Answered by a `reply`.
    Serve {
        /// Chosen by the client to match the reply.
        #[serde(rename = "ref")]
        reference: String,
        /// The namespace of the methods served.
        namespace: String,
    },
    /// Stop serving `namespace`.
    Unserve {
        /// The namespace.
        namespace: String,
    },
    /// The answer to a `service` frame: the method's result, or a SOAP Fault.
    #[serde(rename = "service-reply")]
    ServiceReply {
        /// The `id` of the `service` frame.
        id: String,
        /// The result: an object whose fields become the response's elements, in name order
        /// (nested objects nest, arrays repeat `item` elements).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<Value>,
        /// The service failed: `code` `Client` (the request was wrong) or `Server`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fault: Option<crate::SoapFault>,
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
    /// A SIP SERVICE for a namespace this client serves: answer with a `service-reply` carrying
    /// the same `id` (within the relay's SOAP timeout, else the SIP side gets a Server Fault).
    Service {
        /// Matches the answer.
        id: String,
        /// The namespace of the method.
        namespace: String,
        /// The method's local name.
        method: String,
        /// The SIP sender's address (`user@host`) as its From claims it (not authenticated).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// The parameters: an object of name to text.
        params: Value,
        /// The whole SOAP envelope, as XML text.
        body: String,
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
