//! The web user's SENDs to a calling phone (accept, reject, bye), taken before normal
//! delivery: the inbox's [`SendHook`]; and the word that a page at another relay took an
//! invite (the phone then hears 180 Ringing).

use super::*;

#[async_trait::async_trait]
impl SendHook for Invites {
    async fn intercept(
        &self,
        sender: &str,
        email: &str,
        body: &Value,
    ) -> Option<Result<SendReceipt>> {
        if let Some(r) = self.inner.out.intercept(sender, email, body) {
            return Some(Ok(r));
        }
        let command = body.get("command").and_then(Value::as_str)?;
        match command {
            "invite" => {
                if let Some(e) = self.bad_offer(email, body).await {
                    return Some(Err(e));
                }
                return self.media_check(email, body).await.map(Err);
            }
            "update" => return self.update(sender, email, body).await,
            "updated" => return self.inner.reneg.updated(sender, email, body),
            _ => {}
        }
        if !matches!(command, "accept" | "reject" | "bye") {
            return None;
        }
        let id = body.get("id").and_then(|v| match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        });
        if command == "bye" {
            let (call_id, d) = {
                let mut dialogs = lock(&self.inner.dialogs);
                let call_id = dialogs
                    .iter()
                    .find(|(_, d)| {
                        d.callee == sender && d.caller == email && id.is_none_or(|id| id == d.id)
                    })
                    .map(|(k, _)| k.clone())?;
                let d = dialogs.remove(&call_id)?;
                self.inner.kept.forget(&call_id);
                (call_id, d)
            };
            let did = d.id;
            d.acked.notify_one();
            self.inner.reneg.ended(&call_id, d.media);
            let context = d.context.clone();
            let status = self.hang_up(&call_id, d);
            self.forget_context(&context, sender).await;
            return Some(receipt(did, email, status));
        }
        let id = id?;
        let (offer, context, media) = {
            let pending = lock(&self.inner.pending);
            let p = pending.get(&id)?;
            if p.callee != sender || p.caller != email {
                return None;
            }
            let media = p
                .media
                .then(|| (p.call_id.clone(), p.phone_tag.clone(), p.tag.clone()));
            (p.offer, p.context.clone(), media)
        };
        let login = login_of(body);
        let answer = if command == "accept" {
            let mut sdp = body
                .get("sdp")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if sdp.is_empty() && offer {
                // The answer may be the session the callee joined the call context with.
                sdp = self.joined_session(&context, sender).await;
            }
            if sdp.len() > MAX_SDP {
                return Some(Err(Error::Invalid(format!(
                    "sdp is longer than {MAX_SDP} bytes"
                ))));
            }
            if sdp.is_empty() && offer {
                return Some(Err(Error::Invalid(format!(
                    "invite {id} carried an SDP offer: accept needs an sdp answer \
                     (in the accept, or as the session you joined /call/{context} with)"
                ))));
            }
            if let Err(why) = Some(sdp.as_str())
                .filter(|s| !s.is_empty())
                .map_or(Ok(()), sdp::check)
            {
                return Some(Err(Error::Invalid(format!(
                    "sdp is not a valid session description: {why}"
                ))));
            }
            match self.media_answer(id, media, sdp).await {
                Ok(sdp) => Answer::Accept(sdp, login),
                Err(e) => return Some(Err(e)),
            }
        } else {
            let (code, reason) = rejection(body);
            Answer::Reject(code, reason, login)
        };
        let code = match &answer {
            Answer::Reject(code, ..) => *code,
            _ => 200,
        };
        let sent = lock(&self.inner.pending)
            .get(&id)
            .is_some_and(|p| p.answer.send(answer).is_ok());
        if !sent {
            return Some(Err(Error::Conflict(format!("invite {id} has ended"))));
        }
        Some(receipt(
            id,
            email,
            SipStatus {
                code,
                reason: "answered".into(),
            },
        ))
    }

    async fn rings(&self, callee: &str, caller: &str, id: u64) {
        if let Some(p) = lock(&self.inner.pending).get(&id) {
            if p.callee == callee && p.caller == caller {
                let _ = p.answer.send(Answer::Ringing);
            }
        }
    }
}
