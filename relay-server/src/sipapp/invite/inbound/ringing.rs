//! A phone's INVITE to a web user until it is answered: the call context, the invite to
//! every live web contact, ringing, the answer or the rejection, no answer in time.

use super::*;

impl Invites {
    /// Answers an INVITE (its 100 Trying is out).
    pub async fn invite(&self, responder: Responder) {
        let reply = self.run(&responder).await;
        if let Some(reply) = reply {
            responder.reply(reply);
        }
    }

    /// Handles the INVITE; the final reply, unless it was sent already (a 2xx).
    pub(super) async fn run(&self, responder: &Responder) -> Option<Reply> {
        let req = responder.request();
        let StartLine::Request { uri, .. } = &req.start else {
            return Some(Reply::bad_request("not a request"));
        };
        let Some(callee) = uri.sip().and_then(|u| u.address()) else {
            return Some(Reply::new(404, "Not Found"));
        };
        let from = match req.from() {
            Ok(f) => f,
            Err(why) => return Some(Reply::bad_request(why)),
        };
        if from.tag().is_none() {
            return Some(Reply::bad_request("From has no tag"));
        }
        // The identity the relay checked, else the From as it came (another domain's caller).
        let asserted = crate::sipapp::sender::asserted(req);
        let authenticated = asserted.is_some();
        let caller = asserted.unwrap_or_else(|| address_of(&from));
        let call_id = req.call_id().unwrap_or_default().to_owned();
        let contact = match req.contacts() {
            Ok(Some(list)) if list.len() == 1 => list[0].uri.to_string(),
            Ok(_) => return Some(Reply::bad_request("an INVITE needs one Contact")),
            Err(why) => return Some(Reply::bad_request(why)),
        };
        if self.owns(&call_id) {
            // A re-INVITE in a call the relay knows.
            return self.reinvite(responder).await;
        }
        if let Some(reply) = self.inner.reneg.too_small(req) {
            return Some(reply);
        }
        let contacts = match self.inner.store.user(&callee).await {
            Ok(Some(_)) => match self.inner.store.contacts(&callee, now_ms()).await {
                Ok(c) => c,
                Err(e) => return Some(internal(&e.to_string())),
            },
            Ok(None) => return Some(Reply::new(404, "Not Found")),
            Err(e) => return Some(internal(&e.to_string())),
        };
        // The body after the user (RFC 3261 §8.2.2 before §8.2.3): 404 before 415.
        let sdp = match offer(req) {
            Ok(sdp) => sdp,
            Err(reply) => return Some(reply),
        };
        let web: Vec<i64> = contacts
            .iter()
            .filter(|c| c.source != ContactSource::Sip)
            .map(|c| c.id)
            .collect();
        if web.is_empty() {
            self.missed_call(&caller, &callee, &call_id, authenticated)
                .await;
            return Some(Reply::new(480, "Temporarily Unavailable (not logged in)"));
        }
        if lock(&self.inner.pending).len() >= MAX_PENDING {
            return Some(Reply::new(503, "Service Unavailable (too many calls)"));
        }
        let phone_tag = from.tag().unwrap_or_default().to_owned();
        let (sdp, media) = match self.media_offer(&call_id, &phone_tag, sdp).await {
            Ok(offer) => offer,
            Err(reply) => return Some(reply),
        };
        // The phone's session, to tell a refresh with it unchanged (ended with the call).
        self.inner
            .reneg
            .seen(&call_id, &String::from_utf8_lossy(&req.body));
        let call = match self
            .inner
            .calls
            .create(
                &callee,
                CreateCall {
                    subject: Some(format!("Call from {caller}")),
                    data: serde_json::Map::from_iter(
                        [
                            ("from".to_owned(), json!(caller)),
                            (
                                "sip".to_owned(),
                                json!({"callId": call_id, "authenticated": authenticated}),
                            ),
                        ]
                        .into_iter()
                        // The caller's offer, for a page that answers by joining the call.
                        .chain(sdp.as_ref().map(|o| ("sdp".to_owned(), json!(o)))),
                    ),
                },
            )
            .await
        {
            Ok(call) => call,
            Err(e) => {
                self.inner.reneg.ended(&call_id, media);
                return Some(internal(&e.to_string()));
            }
        };
        let tag = new_tag();
        let id = self
            .inner
            .ids
            .nth(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, mut rx) = mpsc::unbounded_channel();
        lock(&self.inner.pending).insert(
            id,
            Pending {
                caller: caller.clone(),
                callee: callee.clone(),
                answer: tx,
                key: responder.key().clone(),
                peer: responder.peer(),
                offer: sdp.is_some(),
                context: call.id.clone(),
                media,
                call_id: call_id.clone(),
                phone_tag,
                tag: tag.clone(),
            },
        );
        // Kept for the other relays while it rings (in a cluster), with the final response
        // that ends it for the phone should this relay die.
        let lost = Reply::new(
            503,
            format!(
                "Service Unavailable ({})",
                super::super::failover::RELAY_LOST
            ),
        )
        .with_to_tag(tag.clone());
        let lost = restsip_sip::response::build(req, Some(responder.top()), &lost, &tag);
        let ringing = super::super::failover::RingingCall {
            web: &callee,
            phone: &caller,
            id: json!(id),
            context: Some(&call.id),
            end: &lost,
            peer: responder.peer(),
        };
        self.inner.kept.ringing(&call_id, ringing);
        let mut body = message("invite", id, &call_id);
        body["from"] = json!(caller);
        body["sip"]["authenticated"] = json!(authenticated);
        body["sdp"] = json!(sdp);
        body["url"] = json!(format!("/call/{}", call.id));
        let mut live = false;
        let mut reached = Vec::new();
        let mut busy = false;
        for cid in &web {
            match self
                .inner
                .inbox
                .send(&caller, &callee, Some(*cid), body.clone())
                .await
            {
                Ok(receipt) => {
                    live |= receipt
                        .deliveries
                        .iter()
                        .any(|d| d.status == DeliveryStatus::Delivered);
                    reached.push(*cid);
                }
                Err(Error::Limit(_)) => busy = true,
                Err(e) => tracing::debug!(error = %e, "invite SEND failed"),
            }
        }
        if reached.is_empty() {
            lock(&self.inner.pending).remove(&id);
            self.inner.kept.forget(&call_id);
            self.inner.reneg.ended(&call_id, media);
            self.forget_context(&call.id, &callee).await;
            return Some(if busy {
                Reply::new(486, "Busy Here")
            } else {
                Reply::new(480, "Temporarily Unavailable")
            });
        }
        let ringing = || responder.reply(Reply::new(180, "Ringing").with_to_tag(tag.clone()));
        if live {
            ringing();
        }
        // A page at another relay may take the invite meanwhile: 180 then, once.
        let until = Instant::now() + self.inner.timeout;
        let answer = loop {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(Answer::Ringing)) => {
                    if !live {
                        live = true;
                        ringing();
                    }
                }
                answer => break answer,
            }
        };
        lock(&self.inner.pending).remove(&id);
        let cancel = |reason: &str| {
            let mut cancel = message("cancel", id, &call_id);
            cancel["reason"] = json!(reason);
            cancel
        };
        if !matches!(answer, Ok(Some(Answer::Accept(..)))) {
            // Not kept ringing any longer (an answered call is kept again as such).
            self.inner.kept.forget(&call_id);
            // The call is over: its context is gone before anyone hears so.
            self.forget_context(&call.id, &callee).await;
            self.inner.reneg.ended(&call_id, media);
        }
        let reply = match answer {
            Ok(Some(Answer::Accept(sdp, login))) => {
                let others = others(&reached, login);
                self.tell(&caller, &callee, &others, cancel("answered elsewhere"))
                    .await;
                let ctx = call.id.clone();
                let parties = (caller.as_str(), callee.as_str());
                self.answered(responder, id, parties, contact, tag, sdp, ctx, media);
                return None;
            }
            Ok(Some(Answer::MediaFailed)) => {
                self.tell(
                    &caller,
                    &callee,
                    &reached,
                    cancel("media relay unavailable"),
                )
                .await;
                super::super::update::unavailable(503, "Service Unavailable").with_to_tag(tag)
            }
            Ok(Some(Answer::Reject(code, reason, login))) => {
                let others = others(&reached, login);
                self.tell(&caller, &callee, &others, cancel("rejected elsewhere"))
                    .await;
                Reply::new(code, reason).with_to_tag(tag)
            }
            Ok(Some(Answer::Cancel)) => {
                self.tell(&caller, &callee, &reached, message("cancel", id, &call_id))
                    .await;
                Reply::new(487, "Request Terminated").with_to_tag(tag)
            }
            Ok(Some(Answer::Gone)) => {
                self.tell(&caller, &callee, &reached, cancel(dialog::CONNECTION_LOST))
                    .await;
                self.missed_call(&caller, &callee, &call_id, authenticated)
                    .await;
                // Nobody hears it: the connection is gone.
                Reply::new(487, "Request Terminated").with_to_tag(tag)
            }
            // No answer in time (a `Ringing` never ends the wait above).
            Ok(None | Some(Answer::Ringing)) | Err(_) => {
                self.tell(&caller, &callee, &reached, cancel("timeout"))
                    .await;
                self.missed_call(&caller, &callee, &call_id, authenticated)
                    .await;
                Reply::new(480, "Temporarily Unavailable (no answer)").with_to_tag(tag)
            }
        };
        Some(reply)
    }

    /// The session description `user` last joined the call context with, when it is one (a
    /// string, or an object's `sdp` string); empty otherwise.
    pub(super) async fn joined_session(&self, context: &str, user: &str) -> String {
        let Ok(call) = self.inner.calls.view(context).await else {
            return String::new();
        };
        call.children
            .iter()
            .rev()
            .filter(|p| p.user == user)
            .find_map(|p| {
                let session = p.session.as_ref()?;
                session
                    .as_str()
                    .or_else(|| session.get("sdp")?.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_default()
    }

    /// Deletes the call context the relay made for a call that ended.
    pub(super) async fn forget_context(&self, context: &str, callee: &str) {
        if let Err(e) = self.inner.calls.delete(context, callee).await {
            tracing::debug!(error = %e, "call context not deleted");
        }
    }

    /// Sends the 200 OK with the answer, keeps the dialog and retransmits the 2xx over UDP
    /// until its ACK (RFC 3261 §13.3.1.4).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn answered(
        &self,
        responder: &Responder,
        id: u64,
        (caller, callee): (&str, &str),
        target: String,
        tag: String,
        sdp: String,
        context: String,
        media: bool,
    ) {
        let req = responder.request();
        let peer = responder.peer();
        let listen = self.inner.endpoint.listen();
        let mut ok = Reply::new(200, "OK")
            .with("Contact", outgoing::own_contact(listen, peer, req.sips()))
            .with("Allow", responder.endpoint().allow())
            .with_to_tag(tag.clone());
        let call_id = req.call_id().unwrap_or_default().to_owned();
        for (name, value) in self.inner.reneg.start_as_uas(&call_id, req) {
            ok = ok.with(name, value);
        }
        if !sdp.is_empty() {
            self.inner.reneg.sent(&call_id, &sdp);
            ok = ok.with_body("application/sdp", sdp.into_bytes());
        }
        let acked = Arc::new(Notify::new());
        {
            let mut dialogs = lock(&self.inner.dialogs);
            let day_ago = now_ms() - 86_400_000;
            dialogs.retain(|k, d| {
                let keep = d.since > day_ago;
                if !keep {
                    self.inner.reneg.ended(k, d.media);
                    self.inner.kept.forget(k);
                }
                keep
            });
            if dialogs.len() < MAX_DIALOGS {
                dialogs.insert(
                    call_id.clone(),
                    Dialog {
                        id,
                        caller: caller.to_owned(),
                        callee: callee.to_owned(),
                        acked: acked.clone(),
                        local: format!("{};tag={tag}", req.header("To").unwrap_or_default()),
                        remote: req.header("From").unwrap_or_default().to_owned(),
                        target,
                        peer,
                        routes: req
                            .headers_named("Record-Route")
                            .flat_map(restsip_sip::headers::split_list)
                            .map(|r| r.trim().to_owned())
                            .collect(),
                        since: now_ms(),
                        context,
                        cseq: 0,
                        media,
                    },
                );
                if let Some(d) = dialogs.get(&call_id) {
                    self.keep_dialog(&call_id, d);
                }
            } else {
                self.inner.reneg.ended(&call_id, media);
                self.inner.kept.forget(&call_id);
            }
        }
        let data = responder.reply(ok);
        let responder_end = Instant::now() + TIMEOUT;
        let resend = {
            let endpoint = responder.endpoint().clone();
            move |d: bytes::Bytes| endpoint.send_to(peer, d)
        };
        let this = self.clone();
        tokio::spawn(async move {
            // Over TCP the 2xx is not retransmitted, but its ACK is awaited as long.
            let mut interval = if peer.transport.reliable() {
                TIMEOUT
            } else {
                T1
            };
            loop {
                tokio::select! {
                    () = acked.notified() => break,
                    () = tokio::time::sleep(interval) => {}
                }
                if Instant::now() >= responder_end {
                    // §13.3.1.4: the session ends with a BYE.
                    tracing::debug!("no ACK for a 2xx to INVITE");
                    this.vanished(&call_id, id, dialog::NO_ACK, true).await;
                    return;
                }
                if !peer.transport.reliable() {
                    resend(data.clone());
                }
                interval = (interval * 2).min(T2);
            }
            this.keep(&call_id, id).await;
        });
    }
}
