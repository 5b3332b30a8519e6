//! A phone's re-INVITE: the web user is asked with an `update`, its `updated` is the 200.

use super::*;

impl Renegotiation {
    /// A phone's re-INVITE in `leg`: the web user is asked (`update`), its answer is the 200.
    /// The final reply, unless it was sent (a 2xx).
    pub async fn from_phone(&self, responder: &Responder, leg: Leg) -> Option<Reply> {
        let req = responder.request();
        if let Some(reply) = self.too_small(req) {
            return Some(reply);
        }
        if !lock(&self.inner.busy).insert(leg.call_id.clone()) {
            return Some(Reply::new(491, "Request Pending").with("Retry-After", "1"));
        }
        let reply = self.phone_offer(responder, &leg, req).await;
        lock(&self.inner.busy).remove(&leg.call_id);
        reply
    }

    async fn phone_offer(
        &self,
        responder: &Responder,
        leg: &Leg,
        req: &SipMessage,
    ) -> Option<Reply> {
        let media = &self.inner.media;
        if req.body.is_empty() {
            // No offer (a session refresh): the session as the phone last had it.
            let Some(sdp) = lock(&self.inner.sent).get(&leg.call_id).cloned() else {
                return Some(Reply::new(488, "Not Acceptable Here (no offer)"));
            };
            self.ok(responder, leg, sdp);
            return None;
        }
        let offer = match std::str::from_utf8(&req.body) {
            Ok(t) if restsip_sip::sdp::check(t).is_ok() => t.to_owned(),
            _ => return Some(Reply::new(488, "Not Acceptable Here (malformed SDP)")),
        };
        if let Some(sdp) = self.unchanged(&leg.call_id, &offer) {
            // The phone's session unchanged (a refresh): answered here, as before.
            self.ok(responder, leg, sdp);
            return None;
        }
        let phone_offer = offer.clone();
        let offer = if leg.media {
            let rewritten = media
                .offer(
                    &leg.call_id,
                    &leg.phone_tag,
                    Some(&leg.relay_tag),
                    &offer,
                    Toward::Browser,
                )
                .await;
            match rewritten {
                Ok(sdp) => sdp,
                Err(e) => {
                    tracing::warn!(call_id = leg.call_id, error = %e, "re-INVITE: rtpengine offer failed");
                    return Some(unavailable(503, "Service Unavailable"));
                }
            }
        } else {
            offer
        };
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.waiting).insert(
            leg.call_id.clone(),
            Waiting {
                web: leg.web.clone(),
                other: leg.other.clone(),
                id: leg.id.clone(),
                answer: tx,
            },
        );
        self.tell(leg, json!({"command": "update", "sdp": offer}))
            .await;
        let answer = tokio::time::timeout(UPDATE_WAIT, rx).await;
        lock(&self.inner.waiting).remove(&leg.call_id);
        let Ok(Ok(answer)) = answer else {
            return Some(
                Reply::new(500, "Server Internal Error (no answer from the web user)")
                    .with("Retry-After", "5"),
            );
        };
        let answer = if leg.media {
            match media
                .answer(&leg.call_id, &leg.phone_tag, &leg.relay_tag, &answer)
                .await
            {
                Ok(sdp) => sdp,
                Err(e) => {
                    tracing::warn!(call_id = leg.call_id, error = %e, "re-INVITE: rtpengine answer failed");
                    return Some(unavailable(503, "Service Unavailable"));
                }
            }
        } else {
            answer
        };
        self.seen(&leg.call_id, &phone_offer);
        self.ok(responder, leg, answer);
        None
    }

    /// A phone's UPDATE (RFC 3311) in `leg`: a session refresh, without an offer or with its
    /// session unchanged (answered with the relay's last one); a new offer is refused (488:
    /// new sessions go in a re-INVITE, which reaches the page).
    pub fn update(&self, req: &SipMessage, leg: &Leg, peer: Peer) -> Reply {
        if let Some(reply) = self.too_small(req) {
            return reply;
        }
        let mut ok = Reply::new(200, "OK");
        if !req.body.is_empty() {
            let offer = match std::str::from_utf8(&req.body) {
                Ok(t) if restsip_sip::sdp::check(t).is_ok() => t,
                _ => return Reply::new(488, "Not Acceptable Here (malformed SDP)"),
            };
            let Some(sdp) = self.unchanged(&leg.call_id, offer) else {
                return Reply::new(488, "Not Acceptable Here")
                    .with("Warning", "399 RELAY \"a new offer goes in a re-INVITE\"");
            };
            ok = ok.with_body("application/sdp", sdp.into_bytes());
        }
        for (name, value) in self.refreshed(&leg.call_id, req) {
            ok = ok.with(name, value);
        }
        ok.with("Contact", contact(self.inner.endpoint.listen(), peer))
    }

    /// Sends the 200 with `sdp` to a phone's re-INVITE, again until its ACK (UDP).
    fn ok(&self, responder: &Responder, leg: &Leg, sdp: String) {
        self.sent(&leg.call_id, &sdp);
        let peer = responder.peer();
        let mut ok = Reply::new(200, "OK")
            .with("Contact", contact(self.inner.endpoint.listen(), peer))
            .with("Allow", responder.endpoint().allow())
            .with_body("application/sdp", sdp.into_bytes());
        for (name, value) in self.refreshed(&leg.call_id, responder.request()) {
            ok = ok.with(name, value);
        }
        let acked = Arc::new(Notify::new());
        lock(&self.inner.acks).insert(leg.call_id.clone(), acked.clone());
        let data = responder.reply(ok);
        if peer.transport.reliable() {
            return;
        }
        let endpoint = responder.endpoint().clone();
        tokio::spawn(async move {
            let end = tokio::time::Instant::now() + TIMEOUT;
            let mut interval = T1;
            loop {
                tokio::select! {
                    () = acked.notified() => return,
                    () = tokio::time::sleep(interval) => {}
                }
                if tokio::time::Instant::now() >= end {
                    return;
                }
                endpoint.send_to(peer, data.clone());
                interval = (interval * 2).min(T2);
            }
        });
    }
}
