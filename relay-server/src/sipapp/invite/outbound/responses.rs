//! The phones' responses to a call from a web user: ringing, the answer (the relay sends
//! the ACK and cancels the other phones), rejections, each told to the sender's inbox.

use super::*;

impl Outgoing {
    /// Handles one response of a leg; true once the INVITE transaction is over.
    pub(super) async fn on_outcome(&self, call_id: &str, outcome: Outcome) -> bool {
        let resp = match outcome {
            Outcome::Response(resp) => resp,
            Outcome::Timeout => {
                let mut reject = if self.connection_lost(call_id) {
                    let reason = format!(
                        "Service Unavailable ({})",
                        restsip_sip::dialog::CONNECTION_LOST
                    );
                    json!({"command": "reject", "code": 503, "reason": reason})
                } else {
                    json!({"command": "reject", "code": 408, "reason": "Request Timeout"})
                };
                self.tell(call_id, &mut reject, true).await;
                return true;
            }
        };
        let Some(code) = resp.code() else {
            return false;
        };
        let reason = match &resp.start {
            StartLine::Response { reason, .. } => reason.clone(),
            StartLine::Request { .. } => String::new(),
        };
        if code < 200 {
            if code == 180 || code == 183 {
                let mut ringing = json!({"command": "ringing", "code": code, "reason": reason});
                if code == 183 && !resp.body.is_empty() {
                    // Early media: the phone's answer, through rtpengine when it relays.
                    let early = String::from_utf8_lossy(&resp.body);
                    if let Ok(sdp) = self.media_answer(call_id, &resp, &early).await {
                        ringing["sdp"] = json!(sdp);
                    }
                }
                self.tell(call_id, &mut ringing, false).await;
            }
            return false;
        }
        if code >= 300 {
            let mut reject = json!({"command": "reject", "code": code, "reason": reason});
            self.tell(call_id, &mut reject, true).await;
            return true;
        }
        // 2xx: acknowledge, keep the dialog, cancel the other phones of the call.
        let others = self.up(call_id, &resp);
        let answer = String::from_utf8_lossy(&resp.body);
        let bad = Some(&*answer)
            .filter(|a| !a.is_empty())
            .and_then(|a| restsip_sip::sdp::check(a).err());
        if let Some(why) = bad {
            // §13.2.2.4 (an unusable answer): the call is ACKed, then hung up.
            let reason = format!("Not Acceptable Here (malformed SDP answer: {why})");
            let mut reject = json!({"command": "reject", "code": 488, "reason": reason});
            self.tell(call_id, &mut reject, false).await;
            self.hang_up(call_id);
        } else {
            let answer = match self.media_answer(call_id, &resp, &answer).await {
                Ok(sdp) => sdp,
                Err(e) => {
                    // The call is ACKed, then hung up: rtpengine cannot carry its media.
                    let reason = format!("Service Unavailable ({e})");
                    let mut reject = json!({"command": "reject", "code": 503, "reason": reason});
                    self.tell(call_id, &mut reject, false).await;
                    self.hang_up(call_id);
                    for other in others {
                        self.cancel_leg(&other);
                    }
                    return true;
                }
            };
            let mut accept = json!({"command": "accept", "sdp": answer});
            self.tell(call_id, &mut accept, false).await;
            let gone = self.lock().get_mut(call_id).is_some_and(|c| {
                c.told = true;
                c.gone
            });
            if gone {
                self.lost(call_id, restsip_sip::dialog::CONNECTION_LOST)
                    .await;
            } else {
                let (this, call_id) = (self.clone(), call_id.to_owned());
                tokio::spawn(async move { this.keep(&call_id).await });
            }
        }
        for other in others {
            self.cancel_leg(&other);
        }
        true
    }

    /// The phone's answer `sdp` in `resp` as the web user gets it: through rtpengine when
    /// the leg's media go through it (an error is logged), else as it is.
    async fn media_answer(
        &self,
        call_id: &str,
        resp: &SipMessage,
        sdp: &str,
    ) -> Result<String, crate::sipapp::media::MediaError> {
        let tags = self.lock().get(call_id).filter(|c| c.media).map(|c| {
            let from = match &c.leg {
                Leg::Ringing(invite) => invite.from().ok(),
                Leg::Up { local, .. } => restsip_sip::headers::NameAddr::parse(local).ok(),
            };
            from.and_then(|f| f.tag().map(str::to_owned))
        });
        let Some(from_tag) = tags else {
            return Ok(sdp.to_owned());
        };
        let to_tag = resp.to().ok().and_then(|t| t.tag().map(str::to_owned));
        let media = self.inner.reneg.media();
        let result = match (from_tag, to_tag) {
            (Some(from), Some(to)) => media.answer(call_id, &from, &to, sdp).await,
            _ => Err(crate::sipapp::media::MediaError::NoTag),
        };
        if let Err(e) = &result {
            tracing::warn!(call_id, error = %e, "the phone's answer did not pass rtpengine");
        }
        result
    }

    /// Marks a leg answered and sends the ACK; the Call-IDs of the call's other ringing legs.
    pub(super) fn up(&self, call_id: &str, resp: &SipMessage) -> Vec<String> {
        let mut calls = self.lock();
        let Some(call) = calls.get_mut(call_id) else {
            return Vec::new();
        };
        let Leg::Ringing(invite) = &call.leg else {
            return Vec::new();
        };
        let target = resp
            .contacts()
            .ok()
            .flatten()
            .and_then(|c| c.into_iter().next())
            .map(|c| c.uri.to_string())
            .or_else(|| match &invite.start {
                StartLine::Request { uri, .. } => Some(uri.to_string()),
                StartLine::Response { .. } => None,
            })
            .unwrap_or_default();
        let local = invite.header("From").unwrap_or_default().to_owned();
        let remote = resp.header("To").unwrap_or_default().to_owned();
        let cseq = invite.cseq().map(|c| c.seq).unwrap_or(1);
        // The route set (RFC 3261 §12.1.2): the Record-Route of the 2xx in reverse order; the
        // INVITE's own Route (a Path, the upstream server) when there is none.
        let mut routes: Vec<String> = resp
            .headers_named("Record-Route")
            .flat_map(restsip_sip::headers::split_list)
            .map(|r| r.trim().to_owned())
            .collect();
        routes.reverse();
        if routes.is_empty() {
            routes = invite.headers_named("Route").map(str::to_owned).collect();
        }
        let weak = &self.inner.endpoint;
        if let (Some(endpoint), Ok(uri)) = (weak.upgrade(), Uri::parse(&target)) {
            let addr = outgoing::local_addr(weak.listen(), call.peer);
            let mut ack = outgoing::request(Method::ACK, uri, addr, call.peer.transport);
            for route in &routes {
                ack.push("Route", route.clone());
            }
            ack.push("From", local.clone());
            ack.push("To", remote.clone());
            ack.push("Call-ID", call_id.to_owned());
            ack.push("CSeq", format!("{cseq} ACK"));
            if invite.body.is_empty() && !resp.body.is_empty() {
                // The INVITE made no offer, so the 2xx did: the ACK answers it (RFC 3264),
                // declining its media until the web user offers some.
                let offer = String::from_utf8_lossy(&resp.body);
                ack.push("Content-Type", "application/sdp");
                ack.body = restsip_sip::sdp::decline(&offer).into_bytes();
            }
            endpoint.send_to(call.peer, Bytes::from(ack.to_bytes()));
        }
        self.inner.reneg.start_as_uac(call_id, resp);
        self.inner
            .reneg
            .seen(call_id, &String::from_utf8_lossy(&resp.body));
        call.leg = Leg::Up {
            local,
            remote,
            target,
            routes,
            cseq,
        };
        self.keep_dialog(call_id, call);
        let (sender, callee, id) = (call.sender.clone(), call.callee.clone(), call.id.clone());
        calls
            .iter()
            .filter(|(k, c)| {
                k.as_str() != call_id
                    && c.sender == sender
                    && c.callee == callee
                    && c.id == id
                    && matches!(c.leg, Leg::Ringing(_))
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Sends `body` (with the call's id and Call-ID) from the callee to the sender; `end`
    /// forgets the leg.
    pub(super) async fn tell(&self, call_id: &str, body: &mut Value, end: bool) {
        let found = {
            let mut calls = self.lock();
            let found = calls
                .get(call_id)
                .map(|c| (c.sender.clone(), c.callee.clone(), c.id.clone()));
            if end {
                if let Some(c) = calls.remove(call_id) {
                    self.inner.reneg.ended(call_id, c.media);
                    self.drop_dialog(call_id);
                }
            }
            found
        };
        let Some((sender, callee, id)) = found else {
            return;
        };
        body["id"] = id;
        body["sip"] = json!({"callId": call_id});
        if let Err(e) = self
            .inner
            .inbox
            .send(&callee, &sender, None, body.clone())
            .await
        {
            tracing::debug!(error = %e, "call progress not delivered to {sender}");
        }
    }
}
