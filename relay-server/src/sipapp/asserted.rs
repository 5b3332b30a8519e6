//! The identity the relay asserts on what it sends (RFC 3325): `P-Asserted-Identity` on the
//! requests it originates for web users it authenticated over REST, and withheld from phones
//! when the sender asks for privacy. Checking the senders of what arrives is `sender.rs`.

use restsip_sip::message::SipMessage;

/// The header carrying the identity the relay checked.
pub const ASSERTED: &str = "P-Asserted-Identity";

/// Asserts `address` (a SIP `user@host`, escaped as a URI needs) as the sender of a request the
/// relay originates for a web user it authenticated over REST: a MESSAGE or INVITE to a phone
/// registered here or through the upstream server. Web users give no SIP headers, so this is
/// the only one.
pub fn assert_sender(req: &mut SipMessage, address: &str) {
    req.remove(ASSERTED);
    req.remove("P-Preferred-Identity");
    req.push(ASSERTED, format!("<sip:{address}>"));
}

/// Removes the asserted identity of a request whose sender asked for privacy (`Privacy: id`,
/// RFC 3325 §9.3) before it leaves the trust domain (the relay and its upstream server) for
/// a phone.
pub fn withhold_if_private(req: &mut SipMessage) {
    let private = req
        .headers_named("Privacy")
        .flat_map(|v| v.split(';'))
        .any(|p| p.trim().eq_ignore_ascii_case("id"));
    if private {
        req.remove(ASSERTED);
    }
}
