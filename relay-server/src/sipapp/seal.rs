//! The seal of requests the relay sends itself for web users it authenticated over REST
//! (a leaf: the senders' check and the outgoing SERVICE both use it).

/// The header sealing a request the relay sends itself for a web user: a keyed hash (this
/// process's random key) of its Call-ID and From, which nobody else can make.
pub const SEAL: &str = "X-Restsip-Sender";

/// The seal of a request with this Call-ID and From header value.
pub fn seal(call_id: &str, from: &str) -> String {
    format!(
        "{:016x}",
        restsip_sip::keyed::hash_one(("restsip sender", call_id, from.trim()))
    )
}
