//! SERVICE (draft-deason-sip-soap) by direction: [`inbound`], a SERVICE to the relay answered
//! by a SOAP service (a page, an HTTP endpoint, a built-in); [`outbound`], `POST /service`
//! sent to any SIP URI.

pub mod inbound;
pub mod outbound;
mod outcome;

/// The methods this feature answers (gathered into the Allow header by the core).
pub const METHODS: &[&str] = &["SERVICE"];
