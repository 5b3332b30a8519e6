//! Key presses from a phone in an answered call with a web user, either way: a SIP INFO with
//! `application/dtmf-relay` (`Signal=5`, `Duration=160`) or `application/dtmf` (`5`) in the
//! dialog, and RFC 4733 telephone-events rtpengine saw (see [`crate::sipapp::media::dtmf`]),
//! become a SEND `{"command": "dtmf", "id": ID, "digits": "5", "duration"?: 160, "sip":
//! {"callId"}}` from the phone to the web user, on the same path as the call's other news.
//!
//! An INFO is answered 200 once taken; 481 outside an answered call (an unknown Call-ID, or
//! tags that are not the dialog's); 469 with any `Info-Package` (RFC 6086: the relay supports
//! none, only the legacy usage phones have); 415 with `Accept` for another body type; 400 for
//! a body that is not one key press. An INFO without a body (a probe) is 200.

use restsip_sip::dtmf;
use restsip_sip::message::SipMessage;
use restsip_sip::response::Reply;
use serde_json::json;

use super::update::{Leg, Renegotiation};

/// The key press an INFO in `leg` carries (None: an empty probe), or the refusal.
fn read(req: &SipMessage, leg: Option<&Leg>) -> Result<Option<dtmf::Dtmf>, Reply> {
    let tag = |h: Result<restsip_sip::headers::NameAddr, _>| {
        h.ok().and_then(|n| n.tag().map(str::to_owned))
    };
    let in_dialog = leg.is_some_and(|leg| {
        tag(req.from()).as_deref() == Some(leg.phone_tag.as_str())
            && tag(req.to()).as_deref() == Some(leg.relay_tag.as_str())
    });
    if !in_dialog {
        return Err(Reply::new(481, "Call/Transaction Does Not Exist"));
    }
    if req.header("Info-Package").is_some() {
        return Err(Reply::new(469, "Bad Info Package").with("Recv-Info", ""));
    }
    if req.body.is_empty() {
        return Ok(None);
    }
    let kind = dtmf::kind(req.header("Content-Type").unwrap_or_default()).ok_or_else(|| {
        Reply::new(415, "Unsupported Media Type (INFO carries DTMF only)")
            .with("Accept", dtmf::TYPES)
    })?;
    dtmf::parse(kind, &req.body)
        .map(Some)
        .map_err(|why| Reply::bad_request(&format!("malformed DTMF: {why}")))
}

/// Answers an INFO in `leg` (None: no answered call has its Call-ID), telling the web user
/// the key pressed.
pub async fn answer(reneg: &Renegotiation, leg: Option<Leg>, req: &SipMessage) -> Reply {
    match read(req, leg.as_ref()) {
        Err(reply) => reply,
        Ok(None) => Reply::new(200, "OK"),
        Ok(Some(press)) => {
            if let Some(leg) = leg {
                tell(reneg, &leg, press).await;
            }
            Reply::new(200, "OK")
        }
    }
}

/// Tells the web user of `leg` that the phone pressed `press`.
pub async fn tell(reneg: &Renegotiation, leg: &Leg, press: dtmf::Dtmf) {
    let mut body = json!({"command": "dtmf", "digits": press.key.to_string()});
    if let Some(ms) = press.duration {
        body["duration"] = json!(ms);
    }
    reneg.tell(leg, body).await;
}
