//! restsip's SIP stack: messages (an open method token, compact and folded headers), parsing
//! and framing over UDP and TCP, digest authentication, SDP checks, transactions with the
//! RFC 3261 timers, the transports and the endpoint. It holds no application: the endpoint
//! hands new requests to an [`endpoint::Handler`] the application implements.
#![warn(missing_docs)]

pub mod dialog;
pub mod digest;
pub mod dtmf;
pub mod endpoint;
pub mod framing;
pub mod headers;
pub mod keyed;
pub mod listener;
pub mod message;
pub mod method;
pub mod outgoing;
pub mod parse;
pub mod per_ip;
pub mod pike;
pub mod response;
mod scan;
pub mod sdp;
pub mod stats;
pub mod trace;
pub mod transaction;
pub mod transport;
pub mod uri;
