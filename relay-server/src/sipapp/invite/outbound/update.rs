//! New offers in an answered call a web user placed: the web user's `update` SEND (a
//! re-INVITE to the phone) and the phone's re-INVITE (an `update` to the web user); see
//! [`crate::sipapp::invite::update`].

use super::*;
use crate::error::Result;
use crate::sipapp::invite::update::{same_id, sdp_of, Leg as View};
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
        })
    }

    /// Answered leg `call_id` as the renegotiation sees it.
    pub fn leg(&self, call_id: &str) -> Option<View> {
        self.lock()
            .get(call_id)
            .and_then(|c| Self::view(call_id, c))
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
        let listen = self.inner.endpoint.listen();
        let found = {
            let mut calls = self.lock();
            let (call_id, call) = calls.iter_mut().find(|(_, c)| {
                c.sender == sender
                    && c.callee == email
                    && same_id(body, &c.id)
                    && matches!(c.leg, Leg::Up { .. })
            })?;
            let view = Self::view(call_id, call)?;
            let sdp = sdp_of(body);
            let (d, cseq) = call.dialog(call_id)?;
            if sdp.is_ok() {
                *cseq += 1;
            }
            let req = d.request(Method::INVITE, *cseq, listen);
            let ack = d.request(Method::ACK, *cseq, listen);
            (view, sdp, req.zip(ack), d.peer)
        };
        let (view, sdp, requests, peer) = found;
        let sdp = match sdp {
            Ok(sdp) => sdp,
            Err(e) => return Some(Err(e)),
        };
        let Some((req, ack)) = requests else {
            return Some(Err(crate::error::Error::Internal(
                "the phone's Contact is not a URI".into(),
            )));
        };
        Some(self.inner.reneg.from_web(view, sdp, req, ack, peer).await)
    }
}
