//! The SIP side of the relay: messages (an open method token, compact and folded headers),
//! framing over UDP and TCP, transactions with the RFC 3261 timers, a registrar with digest
//! authentication over the same accounts and location service as the REST API, and OPTIONS.

pub mod call_out;
pub mod core;
pub mod dialog;
pub mod digest;
pub mod endpoint;
pub mod framing;
pub mod headers;
pub mod im;
pub mod invite;
pub mod listener;
pub mod message;
pub mod method;
pub mod outgoing;
pub mod parse;
pub mod presence;
pub mod proxy;
pub mod registrar;
pub mod response;
mod scan;
pub mod sdp;
pub mod service;
pub mod service_out;
pub mod transaction;
pub mod transport;
pub mod upstream;
pub mod uri;
pub mod watch;
