//! A call from a phone once answered or given up: ACK, CANCEL and BYE, the web user's bye,
//! keep-alive probes and vanished callers, missed-call messages.

use super::*;

impl Invites {
    /// Probes an answered call with OPTIONS every keep-alive interval until it ends; a phone
    /// that is gone ends it.
    pub(super) async fn keep(&self, call_id: &str, id: u64) {
        let every = self.inner.keepalive;
        let gone = dialog::keep_alive(every, &self.inner.endpoint, |listen| {
            let mut dialogs = lock(&self.inner.dialogs);
            let d = dialogs.get_mut(call_id).filter(|d| d.id == id)?;
            d.cseq += 1;
            let req = in_dialog(call_id, d).request(Method::OPTIONS, d.cseq, listen)?;
            Some((req, d.peer))
        })
        .await;
        if let Some(why) = gone {
            self.vanished(call_id, id, why, false).await;
        }
    }

    /// Ends call `id` whose phone is gone: the web user gets a `bye` with `reason`; `bye`
    /// sends the phone a BYE too (it may still be there, but it never ACKed).
    pub(super) async fn vanished(&self, call_id: &str, id: u64, reason: &str, bye: bool) {
        let found = {
            let mut dialogs = lock(&self.inner.dialogs);
            match dialogs.get(call_id) {
                Some(d) if d.id == id => dialogs.remove(call_id),
                _ => None,
            }
        };
        if found.is_some() {
            self.inner.kept.forget(call_id);
        }
        let Some(d) = found else { return };
        tracing::debug!(call_id, reason, "call ended without the phone's BYE");
        self.ended(call_id, &d, Some(reason)).await;
        if bye {
            self.hang_up(call_id, d);
        }
    }

    /// A TCP connection closed: the calls on it are over (the phone cannot be reached
    /// there any more), ringing or answered, but for answered ones through a proxy; calls to
    /// phones too.
    pub fn closed(&self, peer: Peer) {
        for p in lock(&self.inner.pending).values() {
            if p.peer == peer {
                let _ = p.answer.send(Answer::Gone);
            }
        }
        let up: Vec<(String, u64)> = lock(&self.inner.dialogs)
            .iter_mut()
            .filter(|(_, d)| d.peer == peer)
            .filter_map(|(k, d)| match d.routes.first() {
                // Through a proxy: its next requests go to the first route.
                Some(route) => {
                    d.peer = dialog::route_peer(route).unwrap_or(d.peer);
                    None
                }
                None => Some((k.clone(), d.id)),
            })
            .collect();
        if !up.is_empty() {
            let this = self.clone();
            tokio::spawn(async move {
                for (call_id, id) in up {
                    this.vanished(&call_id, id, dialog::CONNECTION_LOST, false)
                        .await;
                }
            });
        }
        self.inner.out.closed(peer);
    }

    /// Sends `body` from the caller to the web contacts the invite reached.
    pub(super) async fn tell(&self, caller: &str, callee: &str, contacts: &[i64], body: Value) {
        for cid in contacts {
            if let Err(e) = self
                .inner
                .inbox
                .send(caller, callee, Some(*cid), body.clone())
                .await
            {
                tracing::debug!(error = %e, "call message not delivered");
            }
        }
    }

    /// Leaves a missed-call offline message for the callee.
    pub(super) async fn missed_call(
        &self,
        caller: &str,
        callee: &str,
        call_id: &str,
        authenticated: bool,
    ) {
        let mail = MailRecord {
            id: 0,
            owner: callee.to_owned(),
            sender: caller.to_owned(),
            url: None,
            body: Some(json!({
                "command": "missed-call",
                "from": caller,
                "sip": {"callId": call_id, "authenticated": authenticated},
            })),
            subject: Some(format!("Missed call from {caller}")),
            created: now_ms(),
        };
        let stored =
            crate::mailbox::leave(self.inner.store.as_ref(), self.inner.inbox.limits(), &mail);
        if let Err(e) = stored.await {
            tracing::warn!(error = %e, "missed-call message not stored");
        }
    }

    /// A CANCEL (RFC 3261 §9.2): 200 and a 487 to its INVITE while it waits, else 481.
    pub fn cancel(&self, req: &SipMessage) -> Reply {
        let key = TxKey::cancelled(req);
        let pending = lock(&self.inner.pending);
        let found = key.and_then(|key| pending.values().find(|p| p.key == key));
        match found {
            Some(p) => {
                let _ = p.answer.send(Answer::Cancel);
                Reply::new(200, "OK")
            }
            None => Reply::new(481, "Call/Transaction Does Not Exist"),
        }
    }

    /// The ACK of a 2xx (to an INVITE or a re-INVITE): its retransmissions stop.
    pub fn acked(&self, req: &SipMessage) {
        let Some(call_id) = req.call_id() else { return };
        if self.inner.reneg.acked(call_id) {
            return;
        }
        if let Some(d) = lock(&self.inner.dialogs).get(call_id) {
            d.acked.notify_one();
        }
    }

    /// A BYE from the phone: 200 and a `bye` message to the web user, or 481.
    pub async fn bye(&self, req: &SipMessage) -> Reply {
        let Some(call_id) = req.call_id() else {
            return Reply::bad_request("no Call-ID");
        };
        let found = lock(&self.inner.dialogs).remove(call_id);
        if found.is_some() {
            self.inner.kept.forget(call_id);
        }
        let Some(d) = found else {
            return if self.inner.out.bye(call_id).await {
                Reply::new(200, "OK")
            } else {
                Reply::new(481, "Call/Transaction Does Not Exist")
            };
        };
        d.acked.notify_one();
        self.ended(call_id, &d, None).await;
        Reply::new(200, "OK")
    }

    /// Tells the web user that answered call `d` that it is over (with why, when the phone
    /// did not say so with a BYE), once its call context is gone.
    async fn ended(&self, call_id: &str, d: &Dialog, reason: Option<&str>) {
        self.inner.reneg.ended(call_id, d.media);
        self.forget_context(&d.context, &d.callee).await;
        let mut body = message("bye", d.id, call_id);
        if let Some(reason) = reason {
            body["reason"] = json!(reason);
        }
        if let Err(e) = self
            .inner
            .inbox
            .send(&d.caller, &d.callee, None, body)
            .await
        {
            tracing::debug!(error = %e, "bye not delivered");
        }
    }

    /// An `invite` SEND whose SDP offer is malformed, to a user with phones or to an address
    /// that is not an account (which goes to SIP): refused before anything is sent.
    pub(super) async fn bad_offer(&self, email: &str, body: &Value) -> Option<Error> {
        let why = sdp::check(body.get("sdp").and_then(Value::as_str)?).err()?;
        let to_sip = match self.inner.store.user(email).await {
            Ok(None) => true,
            Ok(Some(_)) => self
                .inner
                .store
                .contacts(email, now_ms())
                .await
                .map(|c| c.iter().any(|c| c.source == ContactSource::Sip))
                .unwrap_or(false),
            Err(_) => false,
        };
        to_sip.then(|| Error::Invalid(format!("sdp is not a valid session description: {why}")))
    }

    /// A web user's `bye` SEND to the caller: a BYE to the phone.
    pub(super) fn hang_up(&self, call_id: &str, d: Dialog) -> SipStatus {
        let failed = |code, reason: &str| SipStatus {
            code,
            reason: reason.to_owned(),
        };
        let weak = &self.inner.endpoint;
        let listen = &weak.listen();
        let Some(endpoint) = weak.upgrade() else {
            return failed(503, "Service Unavailable");
        };
        let Some(bye) = in_dialog(call_id, &d).request(Method::BYE, d.cseq + 1, *listen) else {
            return failed(400, "Bad Request (the phone's Contact is not a URI)");
        };
        // The final response is not awaited: the call is over either way.
        let _ = endpoint.client().send(&bye, d.peer);
        SipStatus {
            code: 200,
            reason: "BYE sent".into(),
        }
    }
}
