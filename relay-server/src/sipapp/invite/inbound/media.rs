//! The media side of calls between phones and web users: a phone's offer rewritten by
//! rtpengine for browsers (or refused without it), the web user's answer rewritten back, a
//! browser's invite to phones checked against the media relay, and new offers both ways in
//! answered calls (see [`crate::sipapp::invite::update`]).

use super::*;
use crate::sipapp::invite::update::{same_id, sdp_of, unavailable, Leg as View, Requests};
use crate::sipapp::media::{is_webrtc, Toward};
use restsip_sip::headers::NameAddr;

/// The tag of a From or To value.
fn tag_of(value: &str) -> Option<String> {
    NameAddr::parse(value).ok()?.tag().map(str::to_owned)
}

/// Answered call `call_id` (a phone's call to a web user) as the renegotiation sees it.
fn view(call_id: &str, d: &Dialog) -> Option<View> {
    Some(View {
        call_id: call_id.to_owned(),
        web: d.callee.clone(),
        other: d.caller.clone(),
        id: json!(d.id),
        media: d.media,
        relay_tag: tag_of(&d.local)?,
        phone_tag: tag_of(&d.remote)?,
        owner: false,
    })
}

impl Invites {
    /// The offer web users get for a phone's offer `sdp` in call `call_id` (the phone's tag
    /// `phone_tag`), and whether it went through rtpengine: rewritten for browsers when
    /// rtpengine runs; else as it is when it is WebRTC already or passthrough is on; else
    /// refused (488 with a Warning). rtpengine failing is a 503, logged.
    pub(super) async fn media_offer(
        &self,
        call_id: &str,
        phone_tag: &str,
        sdp: Option<String>,
    ) -> std::result::Result<(Option<String>, bool), Reply> {
        let media = self.inner.reneg.media();
        let Some(offer) = sdp else {
            if media.enabled() {
                // The offer would come in the page's answer and the phone's in the ACK, past
                // rtpengine's offer/answer order: refused rather than a call without media.
                tracing::info!(call_id, "a phone's INVITE without an SDP offer refused");
                return Err(Reply::new(488, "Not Acceptable Here").with(
                    "Warning",
                    "399 RELAY \"an INVITE without an SDP offer cannot reach a browser; send an offer\"",
                ));
            }
            return Ok((None, false));
        };
        if media.enabled() {
            return match media
                .offer(call_id, phone_tag, None, &offer, Toward::Browser)
                .await
            {
                Ok(sdp) => Ok((Some(sdp), true)),
                Err(e) => {
                    tracing::warn!(call_id, error = %e, "a phone's call refused");
                    Err(unavailable(503, "Service Unavailable"))
                }
            };
        }
        if self.inner.passthrough || is_webrtc(&offer) {
            return Ok((Some(offer), false));
        }
        tracing::info!(
            call_id,
            "a phone's plain RTP offer refused: no rtpengine (--rtpengine)"
        );
        Err(unavailable(488, "Not Acceptable Here"))
    }

    /// The web user's answer `sdp` to invite `id` as the phone gets it: through rtpengine when
    /// the offer went through it (`media`: Call-ID, phone's tag, relay's tag). When rtpengine
    /// fails the phone gets 503 and the web user a problem.
    pub(super) async fn media_answer(
        &self,
        id: u64,
        media: Option<(String, String, String)>,
        sdp: String,
    ) -> Result<String> {
        let Some((call_id, phone_tag, tag)) = media.filter(|_| !sdp.is_empty()) else {
            return Ok(sdp);
        };
        let answer = self.inner.reneg.media();
        match answer.answer(&call_id, &phone_tag, &tag, &sdp).await {
            Ok(sdp) => Ok(sdp),
            Err(e) => {
                tracing::warn!(call_id, error = %e, "the web user's answer did not pass rtpengine");
                if let Some(p) = lock(&self.inner.pending).get(&id) {
                    let _ = p.answer.send(Answer::MediaFailed);
                }
                Err(Error::MediaRelay(e.to_string()))
            }
        }
    }

    /// A web user's `invite` with a WebRTC offer to `email` whose logins are all phones (or
    /// that is reached through the upstream server): refused when rtpengine is missing or
    /// does not answer its ping. (To a user with web logins too, the web logins ring and the
    /// phones' deliveries fail with 503.)
    pub(super) async fn media_check(&self, email: &str, body: &Value) -> Option<Error> {
        let sdp = body.get("sdp").and_then(Value::as_str)?;
        if !is_webrtc(sdp) {
            return None;
        }
        let phones_only = match self.inner.store.user(email).await {
            Ok(None) => self.inner.upstream,
            Ok(Some(_)) => {
                let contacts = self.inner.store.contacts(email, now_ms()).await.ok()?;
                let sip = contacts.iter().any(|c| c.source == ContactSource::Sip);
                sip && contacts.iter().all(|c| c.source == ContactSource::Sip)
            }
            Err(_) => false,
        };
        if !phones_only {
            return None;
        }
        let e = self.inner.reneg.media().ready().await.err()?;
        if e == crate::sipapp::media::MediaError::Unconfigured {
            tracing::debug!(error = %e, "a web user's call to {email} refused");
        } else {
            tracing::warn!(error = %e, "a web user's call to {email} refused");
        }
        Some(Error::MediaRelay(format!(
            "{e}: a browser's call reaches SIP phones only through rtpengine"
        )))
    }

    /// Whether `call_id` is an answered call between a phone and a web user.
    pub fn owns(&self, call_id: &str) -> bool {
        lock(&self.inner.dialogs).contains_key(call_id) || self.inner.out.owns(call_id)
    }

    /// Answered call `call_id` between a phone and a web user (either way), as the
    /// renegotiation sees it.
    pub fn leg(&self, call_id: &str) -> Option<View> {
        let found = lock(&self.inner.dialogs)
            .get(call_id)
            .map(|d| view(call_id, d));
        match found {
            Some(view) => view,
            None => self.inner.out.leg(call_id),
        }
    }

    /// A phone's INFO (DTMF) in an answered call; see [`crate::sipapp::invite::info`].
    pub async fn info(&self, req: &SipMessage) -> Reply {
        let leg = req.call_id().and_then(|c| self.leg(c));
        crate::sipapp::invite::info::answer(&self.inner.reneg, leg, req).await
    }

    /// Tells the web user of call `call_id` that the phone pressed `press` (an RFC 4733
    /// event rtpengine saw coming from `source_tag`); false when no answered call has that
    /// Call-ID and that phone's tag (the web user's own tones come back as the relay's tag).
    pub async fn dtmf(
        &self,
        call_id: &str,
        source_tag: &str,
        press: restsip_sip::dtmf::Dtmf,
    ) -> bool {
        let Some(leg) = self.leg(call_id).filter(|l| l.phone_tag == source_tag) else {
            return false;
        };
        crate::sipapp::invite::info::tell(&self.inner.reneg, &leg, press).await;
        true
    }

    /// Tells web users the key presses rtpengine logs to `socket` (its `--dtmf-log-dest`),
    /// taking datagrams from `source` only when given (rtpengine's address), until the relay
    /// stops.
    pub async fn dtmf_from_rtpengine(
        self,
        socket: Arc<tokio::net::UdpSocket>,
        source: Option<std::net::IpAddr>,
    ) {
        use crate::sipapp::media::dtmf;
        let mut buf = vec![0u8; dtmf::MAX_DATAGRAM];
        loop {
            let (n, from) = match socket.recv_from(&mut buf).await {
                Ok(got) => got,
                Err(e) => {
                    tracing::debug!(error = %e, "rtpengine DTMF socket");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if source.is_some_and(|ip| ip != from.ip()) {
                tracing::debug!(%from, "a DTMF event not from rtpengine, ignored");
                continue;
            }
            let Some(e) = buf.get(..n).and_then(dtmf::event) else {
                continue;
            };
            if !self.dtmf(&e.call_id, &e.source_tag, e.press).await {
                tracing::debug!(
                    call_id = e.call_id,
                    "rtpengine DTMF event of no phone in a call"
                );
            }
        }
    }

    /// A phone's re-INVITE in an answered call: the final reply, unless it was sent (a 2xx).
    pub async fn reinvite(&self, responder: &Responder) -> Option<Reply> {
        let call_id = responder.request().call_id().unwrap_or_default();
        let found = lock(&self.inner.dialogs)
            .get(call_id)
            .map(|d| view(call_id, d));
        match found {
            Some(Some(v)) => self.inner.reneg.from_phone(responder, v).await,
            Some(None) => Some(Reply::new(
                500,
                "Server Internal Error (dialog without tags)",
            )),
            None => self.inner.out.reinvite(responder).await,
        }
    }

    /// The web user's `update` SEND to `email` for an answered call (either way): a
    /// re-INVITE with the new offer; None when no call matches.
    pub(super) async fn update(
        &self,
        sender: &str,
        email: &str,
        body: &Value,
    ) -> Option<Result<SendReceipt>> {
        if let Some(taken) = self.inner.out.update(sender, email, body).await {
            return Some(taken);
        }
        let v = {
            let dialogs = lock(&self.inner.dialogs);
            let (call_id, d) = dialogs.iter().find(|(_, d)| {
                d.callee == sender && d.caller == email && same_id(body, &json!(d.id))
            })?;
            view(call_id, d)?
        };
        let sdp = match sdp_of(body) {
            Ok(sdp) => sdp,
            Err(e) => return Some(Err(e)),
        };
        let next = self.requests_of(&v.call_id);
        Some(self.inner.reneg.from_web(v, sdp, next).await)
    }

    /// The builder of the relay's re-INVITEs in call `call_id`, either way.
    pub(super) fn requests_of(&self, call_id: &str) -> Requests {
        let (this, call_id) = (self.clone(), call_id.to_owned());
        Arc::new(move || this.reinvite_requests(&call_id))
    }

    /// The relay's next re-INVITE in call `call_id` and its ACK (a new CSeq), and where
    /// they go.
    fn reinvite_requests(&self, call_id: &str) -> Option<(SipMessage, SipMessage, Peer)> {
        let listen = self.inner.endpoint.listen();
        let mut dialogs = lock(&self.inner.dialogs);
        if !dialogs.contains_key(call_id) {
            drop(dialogs);
            return self.inner.out.reinvite_requests(call_id);
        }
        let d = dialogs.get_mut(call_id)?;
        d.cseq += 1;
        let dialog = in_dialog(call_id, d);
        let req = dialog.request(Method::INVITE, d.cseq, listen)?;
        let ack = dialog.request(Method::ACK, d.cseq, listen)?;
        Some((req, ack, d.peer))
    }

    /// A phone's UPDATE (RFC 3311) from `peer`: a session refresh in an answered call.
    pub fn update_request(&self, req: &SipMessage, peer: Peer) -> Reply {
        let call_id = req.call_id().unwrap_or_default();
        match self.leg(call_id) {
            Some(leg) => self.inner.reneg.update(req, &leg, peer),
            None => Reply::new(481, "Call/Transaction Does Not Exist"),
        }
    }
}
