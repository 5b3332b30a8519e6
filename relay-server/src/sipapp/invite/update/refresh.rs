//! The relay's re-INVITEs to a phone: sent with an offer, answered 491 (glare: the phone's own
//! re-INVITE crossed it) retried after RFC 3261 §14.1's random delay, the 2xx ACKed; and the
//! session refresh the relay sends when it is the RFC 4028 refresher.

use super::*;

/// Builds the relay's next request pair in a call: a re-INVITE (no body, no Contact) and its
/// ACK with the same, new CSeq, and where they go; None when the call is gone or its target
/// is not a URI.
pub type Requests = Arc<dyn Fn() -> Option<(SipMessage, SipMessage, Peer)> + Send + Sync>;

/// How often a re-INVITE answered 491 is sent again.
const GLARE_TRIES: u32 = 3;

/// A call ended because the relay's refresh failed (408 or 481, RFC 4028 §10).
pub(super) const REFRESH_FAILED: &str = "session refresh failed";

/// RFC 3261 §14.1: 2.1 to 4 s when the relay made the Call-ID, else 0 to 2 s, in 10 ms steps.
fn glare_delay(owner: bool) -> Duration {
    let steps = u64::from(rand::random::<u16>());
    let ms = if owner {
        2100 + (steps % 191) * 10
    } else {
        (steps % 201) * 10
    };
    Duration::from_millis(ms)
}

impl Renegotiation {
    /// Sends `offer` in a re-INVITE of `leg` (built by `next`; `first` when already built) and
    /// waits for its final response: the answer's SDP (the 2xx ACKed) or the failure. A 491
    /// is retried after the glare delay, with a new CSeq.
    pub(super) async fn send_reinvite(
        &self,
        leg: &Leg,
        offer: &str,
        mut first: Option<(SipMessage, SipMessage, Peer)>,
        next: &Requests,
    ) -> std::result::Result<String, (u16, String)> {
        let mut tries = 0;
        loop {
            tries += 1;
            let Some((mut req, ack, peer)) = first.take().or_else(|| next()) else {
                return Err((481, "Call/Transaction Does Not Exist".into()));
            };
            req.push("Contact", contact(self.inner.endpoint.listen(), peer));
            for (name, value) in self.refresh_headers(&leg.call_id) {
                req.push(name, value);
            }
            req.push("Content-Type", "application/sdp");
            req.body = offer.as_bytes().to_vec();
            let rx = self
                .inner
                .endpoint
                .upgrade()
                .and_then(|e| e.client().send(&req, peer));
            let Some(rx) = rx else {
                return Err((503, "Service Unavailable (SIP is stopping)".into()));
            };
            match self.reinvite_answer(rx, &ack, peer).await {
                Err((491, _)) if tries < GLARE_TRIES => {
                    let delay = glare_delay(leg.owner);
                    tracing::debug!(
                        call_id = leg.call_id,
                        ?delay,
                        "re-INVITE answered 491: again after a delay"
                    );
                    tokio::time::sleep(delay).await;
                }
                Ok(answer) => {
                    self.seen(&leg.call_id, &answer);
                    return Ok(answer);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The relay refreshes the session of `leg` (RFC 4028, the relay the refresher): a
    /// re-INVITE with the session the phone last had, nothing told to the page or rtpengine.
    /// Err with the reason the call ends (408 or 481); other failures leave it to expire.
    pub async fn refresh(
        &self,
        leg: &Leg,
        next: Requests,
    ) -> std::result::Result<(), &'static str> {
        let call_id = &leg.call_id;
        let Some(sdp) = lock(&self.inner.sent).get(call_id).cloned() else {
            // No session to repeat (a call without SDP): nothing to refresh with.
            self.relay_refreshes(call_id);
            return Ok(());
        };
        if !lock(&self.inner.busy).insert(call_id.clone()) {
            // A re-INVITE under way refreshes the session too.
            self.relay_refreshes(call_id);
            return Ok(());
        }
        let result = self.send_reinvite(leg, &sdp, None, &next).await;
        lock(&self.inner.busy).remove(call_id);
        match result {
            Ok(_) => {
                self.relay_refreshes(call_id);
                Ok(())
            }
            Err((408 | 481, _)) => Err(REFRESH_FAILED),
            Err((code, reason)) => {
                tracing::debug!(
                    call_id,
                    code,
                    reason,
                    "session refresh refused; the session may expire"
                );
                Ok(())
            }
        }
    }
}
