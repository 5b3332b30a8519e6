//! The web user's `update`: a re-INVITE to the phone, its answer back as `updated`.

use super::*;

impl Renegotiation {
    /// The web user's `update` in `leg`: the offer `sdp` in a re-INVITE built by `next` (a
    /// 491 is retried, see [`Renegotiation::send_reinvite`]).
    pub async fn from_web(&self, leg: Leg, sdp: String, next: Requests) -> Result<SendReceipt> {
        if !lock(&self.inner.busy).insert(leg.call_id.clone()) {
            return Err(Error::Conflict(format!(
                "call {} is already being renegotiated; try again",
                leg.id
            )));
        }
        let offer = if leg.media {
            let rewritten = self
                .inner
                .media
                .offer(
                    &leg.call_id,
                    &leg.relay_tag,
                    Some(&leg.phone_tag),
                    &sdp,
                    Toward::Phone,
                )
                .await;
            match rewritten {
                Ok(sdp) => sdp,
                Err(e) => {
                    lock(&self.inner.busy).remove(&leg.call_id);
                    tracing::warn!(call_id = leg.call_id, error = %e, "update: rtpengine offer failed");
                    return Err(Error::MediaRelay(e.to_string()));
                }
            }
        } else {
            sdp
        };
        let Some(first) = next() else {
            lock(&self.inner.busy).remove(&leg.call_id);
            return Err(Error::Internal(
                "the re-INVITE could not be built (the phone's Contact is not a URI)".into(),
            ));
        };
        self.sent(&leg.call_id, &offer);
        let this = self.clone();
        let other = leg.other.clone();
        tokio::spawn(async move {
            let answer = this.send_reinvite(&leg, &offer, Some(first), &next).await;
            lock(&this.inner.busy).remove(&leg.call_id);
            let body = match answer {
                Ok(sdp) => {
                    // A re-INVITE refreshes the session too (RFC 4028 §7.4).
                    if let Some(s) = lock(&this.inner.sessions).get_mut(&leg.call_id) {
                        s.restart();
                    }
                    this.web_answer(&leg, sdp).await
                }
                Err((code, reason)) => {
                    json!({"command": "updated", "code": code, "reason": reason})
                }
            };
            this.tell(&leg, body).await;
        });
        Ok(receipt(&other, "re-INVITE sent"))
    }

    /// The `updated` body for the phone's answer `sdp` to the web user's offer.
    async fn web_answer(&self, leg: &Leg, sdp: String) -> Value {
        if !leg.media {
            return json!({"command": "updated", "sdp": sdp});
        }
        let media = &self.inner.media;
        match media
            .answer(&leg.call_id, &leg.relay_tag, &leg.phone_tag, &sdp)
            .await
        {
            Ok(sdp) => json!({"command": "updated", "sdp": sdp}),
            Err(e) => {
                tracing::warn!(call_id = leg.call_id, error = %e, "update: rtpengine answer failed");
                json!({"command": "updated", "code": 503, "reason": e.to_string()})
            }
        }
    }

    /// The final response to a re-INVITE: the 2xx's SDP (the 2xx ACKed with `ack`), else
    /// the failure.
    pub(super) async fn reinvite_answer(
        &self,
        mut rx: tokio::sync::mpsc::UnboundedReceiver<Outcome>,
        ack: &SipMessage,
        peer: Peer,
    ) -> std::result::Result<String, (u16, String)> {
        while let Some(outcome) = rx.recv().await {
            let Outcome::Response(resp) = outcome else {
                break;
            };
            let StartLine::Response { code, reason } = &resp.start else {
                continue;
            };
            if *code < 200 {
                continue;
            }
            if *code >= 300 {
                return Err((*code, reason.clone()));
            }
            if let Some(endpoint) = self.inner.endpoint.upgrade() {
                endpoint.send_to(peer, bytes::Bytes::from(ack.to_bytes()));
            }
            let sdp = String::from_utf8_lossy(&resp.body).into_owned();
            return match restsip_sip::sdp::check(&sdp) {
                Ok(()) => Ok(sdp),
                Err(why) => Err((
                    488,
                    format!("Not Acceptable Here (malformed SDP answer: {why})"),
                )),
            };
        }
        Err((408, "Request Timeout".into()))
    }
}
