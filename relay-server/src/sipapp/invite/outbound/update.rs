//! New offers in an answered call a web user placed: the web user's `update` SEND (a
//! re-INVITE to the phone) and the phone's re-INVITE (an `update` to the web user); see
//! [`crate::sipapp::invite::update`].

use super::*;
use crate::error::Result;
use crate::sipapp::invite::update::{same_id, sdp_of, Leg as View, Requests};
use restsip_sip::endpoint::Responder;
use restsip_sip::headers::NameAddr;
use restsip_sip::response::Reply;

/// The tag of a From or To value.
fn tag_of(value: &str) -> Option<String> {
    NameAddr::parse(value).ok()?.tag().map(str::to_owned)
}

impl Outgoing {
    /// Answered leg `call_id` as the renegotiation sees it.
    fn view(call_id: &str, call: &Call) -> Option<View> {
        let Leg::Up { local, remote, .. } = &call.leg else {
            return None;
        };
        Some(View {
            call_id: call_id.to_owned(),
            web: call.sender.clone(),
            other: call.callee.clone(),
            id: call.id.clone(),
            media: call.media,
            relay_tag: tag_of(local)?,
            phone_tag: tag_of(remote)?,
            owner: true,
        })
    }

    /// Answered leg `call_id` as the renegotiation sees it.
    pub fn leg(&self, call_id: &str) -> Option<View> {
        self.lock()
            .get(call_id)
            .and_then(|c| Self::view(call_id, c))
    }

    /// The relay's next re-INVITE in answered leg `call_id` and its ACK (a new CSeq), and
    /// where they go.
    pub fn reinvite_requests(&self, call_id: &str) -> Option<(SipMessage, SipMessage, Peer)> {
        let listen = self.inner.endpoint.listen();
        let mut calls = self.lock();
        let (d, cseq) = calls.get_mut(call_id)?.dialog(call_id)?;
        *cseq += 1;
        let req = d.request(Method::INVITE, *cseq, listen)?;
        let ack = d.request(Method::ACK, *cseq, listen)?;
        Some((req, ack, d.peer))
    }

    /// The answered legs whose media go through rtpengine.
    pub fn media_calls(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, c)| c.media && matches!(c.leg, Leg::Up { .. }))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Ends answered leg `call_id` for `reason` (an expired session, media rtpengine
    /// dropped): `bye` with the reason to the sender, BYE to the phone.
    pub async fn end(&self, call_id: &str, reason: &str) {
        if !self.owns(call_id) {
            return;
        }
        let mut bye = json!({"command": "bye", "reason": reason});
        self.tell(call_id, &mut bye, false).await;
        self.hang_up(call_id);
    }

    /// Whether `call_id` is an answered leg of a web user's call.
    pub fn owns(&self, call_id: &str) -> bool {
        self.lock()
            .get(call_id)
            .is_some_and(|c| matches!(c.leg, Leg::Up { .. }))
    }

    /// A phone's re-INVITE in an answered leg: the final reply, unless it was sent (a 2xx).
    pub async fn reinvite(&self, responder: &Responder) -> Option<Reply> {
        let call_id = responder.request().call_id().unwrap_or_default();
        let view = self
            .lock()
            .get(call_id)
            .and_then(|c| Self::view(call_id, c));
        let Some(view) = view else {
            return Some(Reply::new(481, "Call/Transaction Does Not Exist"));
        };
        self.inner.reneg.from_phone(responder, view).await
    }

    /// The web user's `update` SEND to `email` for one of its answered calls: a re-INVITE
    /// with the new offer; None when no call matches.
    pub async fn update(
        &self,
        sender: &str,
        email: &str,
        body: &Value,
    ) -> Option<Result<SendReceipt>> {
        let view = {
            let calls = self.lock();
            let (call_id, call) = calls.iter().find(|(_, c)| {
                c.sender == sender
                    && c.callee == email
                    && same_id(body, &c.id)
                    && matches!(c.leg, Leg::Up { .. })
            })?;
            Self::view(call_id, call)?
        };
        let sdp = match sdp_of(body) {
            Ok(sdp) => sdp,
            Err(e) => return Some(Err(e)),
        };
        let (this, call_id) = (self.clone(), view.call_id.clone());
        let next: Requests = Arc::new(move || this.reinvite_requests(&call_id));
        Some(self.inner.reneg.from_web(view, sdp, next).await)
    }
}
