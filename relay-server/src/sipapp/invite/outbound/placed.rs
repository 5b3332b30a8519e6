//! A call from a web user once placed: the web user's cancel and bye, the phone's BYE, and
//! keep-alive probes that notice a phone that vanished.

use super::*;

/// The CANCEL of `invite` (§9.1): its Request-URI, Via, Route, From, To, Call-ID and CSeq
/// number; the phone matches it by the top Via's branch.
pub(super) fn cancel_of(invite: &SipMessage) -> SipMessage {
    let mut cancel = SipMessage {
        start: match &invite.start {
            StartLine::Request { uri, .. } => StartLine::Request {
                method: Method::CANCEL,
                uri: uri.clone(),
            },
            other => other.clone(),
        },
        headers: Vec::new(),
        body: Vec::new(),
    };
    for name in ["Via", "Route", "Max-Forwards", "From", "To", "Call-ID"] {
        for v in invite.headers_named(name) {
            cancel.push(name, v.to_owned());
        }
    }
    let seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
    cancel.push("CSeq", format!("{seq} CANCEL"));
    cancel
}

impl Outgoing {
    /// Probes an answered leg with OPTIONS every keep-alive interval until it ends; a phone
    /// that is gone ends it (the sender gets a `bye` with the reason).
    pub(super) async fn keep(&self, call_id: &str) {
        let every = self.inner.timers.keepalive;
        let gone = restsip_sip::dialog::keep_alive(every, &self.inner.endpoint, |listen| {
            let mut calls = self.lock();
            let (d, cseq) = calls.get_mut(call_id)?.dialog(call_id)?;
            *cseq += 1;
            Some((d.request(Method::OPTIONS, *cseq, listen)?, d.peer))
        })
        .await;
        if let Some(why) = gone {
            self.lost(call_id, why).await;
        }
    }

    /// Ends a leg whose phone is gone: a ringing one as a `reject` (503), an answered one as
    /// a `bye`, with `reason`.
    pub(super) async fn lost(&self, call_id: &str, reason: &str) {
        let ringing = match self.lock().get(call_id) {
            Some(c) => matches!(c.leg, Leg::Ringing(_)),
            None => return,
        };
        let mut body = if ringing {
            json!({"command": "reject", "code": 503, "reason": format!("Service Unavailable ({reason})")})
        } else {
            json!({"command": "bye", "reason": reason})
        };
        self.tell(call_id, &mut body, true).await;
    }

    /// A leg still ringing when the ring timeout ends: CANCEL, and a `reject` 480 to the
    /// sender at once (the phone's 487, or its silence, no longer matters).
    pub(super) async fn unanswered(&self, call_id: &str) {
        if !self.cancel_leg(call_id) {
            return;
        }
        let reason = "Temporarily Unavailable (no answer)";
        let mut reject = json!({"command": "reject", "code": 480, "reason": reason});
        self.tell(call_id, &mut reject, true).await;
    }

    /// Whether the leg's phone was reached over a TCP connection that is gone.
    pub(super) fn connection_lost(&self, call_id: &str) -> bool {
        let Some(peer) = self.lock().get(call_id).map(|c| c.peer) else {
            return false;
        };
        let endpoint = self.inner.endpoint.upgrade();
        peer.transport.reliable() && endpoint.is_some_and(|e| !e.is_open(peer))
    }

    /// A TCP connection closed: the answered legs on it are over (the sender gets a `bye`
    /// once told of the answer), but for those through a proxy; ringing ones end through
    /// their INVITE transaction, which the closed connection ends after any response read
    /// from it.
    pub fn closed(&self, peer: Peer) {
        let legs: Vec<String> = self
            .lock()
            .iter_mut()
            .filter(|(_, c)| c.peer == peer)
            .filter_map(|(k, c)| {
                if let Leg::Up { routes, .. } = &c.leg {
                    if let Some(route) = routes.first() {
                        // Through a proxy: its next requests go to the first route.
                        c.peer = restsip_sip::dialog::route_peer(route).unwrap_or(c.peer);
                        return None;
                    }
                }
                c.gone = true;
                (c.told && matches!(c.leg, Leg::Up { .. })).then(|| k.clone())
            })
            .collect();
        if legs.is_empty() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            for leg in legs {
                this.lost(&leg, restsip_sip::dialog::CONNECTION_LOST).await;
            }
        });
    }

    /// Sends a CANCEL for a ringing leg (§9.1); its INVITE then ends with 487.
    pub(super) fn cancel_leg(&self, call_id: &str) -> bool {
        let calls = self.lock();
        let Some(Call {
            leg: Leg::Ringing(invite),
            peer,
            ..
        }) = calls.get(call_id)
        else {
            return false;
        };
        let cancel = cancel_of(invite);
        let peer = *peer;
        drop(calls);
        self.send(&cancel, peer)
    }

    /// Sends a request in a client transaction, not waiting for its answer.
    pub(super) fn send(&self, req: &SipMessage, peer: Peer) -> bool {
        let Some(endpoint) = self.inner.endpoint.upgrade() else {
            return false;
        };
        endpoint.client().send(req, peer).is_some()
    }

    /// Sends a BYE in an answered leg and forgets it.
    pub(super) fn hang_up(&self, call_id: &str) -> bool {
        let Some(mut call) = self.lock().remove(call_id) else {
            return false;
        };
        self.inner.reneg.ended(call_id, call.media);
        self.drop_dialog(call_id);
        let Some((d, cseq)) = call.dialog(call_id) else {
            return false;
        };
        let (seq, peer) = (*cseq + 1, d.peer);
        let Some(bye) = d.request(Method::BYE, seq, self.inner.endpoint.listen()) else {
            return false;
        };
        self.send(&bye, peer)
    }

    /// A `cancel` or `bye` SEND from `sender` to `email` for one of its calls: the CANCELs or
    /// BYEs sent; None when no call matches.
    pub fn intercept(&self, sender: &str, email: &str, body: &Value) -> Option<SendReceipt> {
        let command = body.get("command").and_then(Value::as_str)?;
        let ringing = match command {
            "cancel" => true,
            "bye" => false,
            _ => return None,
        };
        let legs: Vec<String> = {
            let mut calls = self.lock();
            let day_ago = now_ms() - 86_400_000;
            calls.retain(|k, c| {
                let keep = c.since > day_ago;
                if !keep {
                    self.inner.reneg.ended(k, c.media);
                    self.drop_dialog(k);
                }
                keep
            });
            calls
                .iter()
                .filter(|(_, c)| {
                    c.sender == sender
                        && c.callee == email
                        && same_id(body, &c.id)
                        && matches!(c.leg, Leg::Ringing(_)) == ringing
                })
                .map(|(k, _)| k.clone())
                .collect()
        };
        if legs.is_empty() {
            return None;
        }
        let deliveries = legs
            .iter()
            .map(|leg| {
                let sent = if ringing {
                    self.cancel_leg(leg)
                } else {
                    self.hang_up(leg)
                };
                Delivery {
                    contact: format!("sip:{email}"),
                    status: if sent {
                        DeliveryStatus::Delivered
                    } else {
                        DeliveryStatus::Failed
                    },
                    sip: Some(if sent {
                        failed(200, if ringing { "CANCEL sent" } else { "BYE sent" })
                    } else {
                        failed(503, "Service Unavailable")
                    }),
                }
            })
            .collect();
        Some(SendReceipt {
            id: legs.join(","),
            deliveries,
        })
    }

    /// A BYE from a phone in a call a web user made: true when it was one (the sender gets a
    /// `bye` message).
    pub async fn bye(&self, call_id: &str) -> bool {
        let up = matches!(
            self.lock().get(call_id),
            Some(Call {
                leg: Leg::Up { .. },
                ..
            })
        );
        if !up {
            return false;
        }
        let mut bye = json!({"command": "bye"});
        self.tell(call_id, &mut bye, true).await;
        true
    }

    /// Sends the INVITE of a leg again with the answer to the challenge of `resp` (a 401 or
    /// 407) and a new CSeq; the new transaction's outcomes.
    pub(super) fn authorize(
        &self,
        call_id: &str,
        resp: &SipMessage,
        credentials: Option<&(String, String)>,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<Outcome>> {
        let uri = match &self.lock().get(call_id)?.leg {
            Leg::Ringing(SipMessage {
                start: StartLine::Request { uri, .. },
                ..
            }) => uri.clone(),
            _ => return None,
        };
        let answer =
            crate::sipapp::upstream::authorization(resp, credentials, &uri, &Method::INVITE)?;
        self.again(call_id, vec![answer])
    }

    /// A 422 Session Interval Too Small (RFC 4028 §7.3): the INVITE of a leg again, asking
    /// for the response's Min-SE; the new transaction's outcomes.
    pub(super) fn raise_interval(
        &self,
        call_id: &str,
        resp: &SipMessage,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<Outcome>> {
        let min: u64 = resp
            .header("Min-SE")?
            .split(';')
            .next()?
            .trim()
            .parse()
            .ok()?;
        let min = min.to_string();
        self.again(
            call_id,
            vec![("Session-Expires", min.clone()), ("Min-SE", min)],
        )
    }

    /// Sends the INVITE of a leg again with a new CSeq and `headers` (replacing those of the
    /// same names); the new transaction's outcomes.
    fn again(
        &self,
        call_id: &str,
        headers: Vec<(&'static str, String)>,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<Outcome>> {
        let weak = &self.inner.endpoint;
        let listen = &weak.listen();
        let mut calls = self.lock();
        let call = calls.get_mut(call_id)?;
        let Leg::Ringing(invite) = &call.leg else {
            return None;
        };
        let StartLine::Request { uri, .. } = &invite.start else {
            return None;
        };
        let seq = invite.cseq().map(|c| c.seq).unwrap_or(1) + 1;
        let local = outgoing::local_addr(*listen, call.peer);
        let mut again = outgoing::request(Method::INVITE, uri.clone(), local, call.peer.transport);
        for h in &invite.headers {
            let skip = ["Via", "Max-Forwards", "CSeq", "Content-Type"];
            let replaced = headers.iter().any(|(n, _)| h.name.eq_ignore_ascii_case(n));
            if !replaced && !skip.iter().any(|n| h.name.eq_ignore_ascii_case(n)) {
                again.push(h.name.clone(), h.value.clone());
            }
        }
        again.push("CSeq", format!("{seq} INVITE"));
        for (name, value) in headers {
            again.push(name, value);
        }
        if let Some(t) = invite.header("Content-Type") {
            again.push("Content-Type", t.to_owned());
        }
        again.body = invite.body.clone();
        let endpoint = weak.upgrade()?;
        let rx = endpoint.client().send(&again, call.peer)?;
        call.leg = Leg::Ringing(again);
        self.keep_ringing(call_id, call);
        Some(rx)
    }
}
