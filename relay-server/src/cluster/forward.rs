//! A phone's call to a web user waits at the relay the INVITE reached (its server
//! transaction, the pending call: `sipapp::invite::inbound`), while the web user's page may
//! stream from another relay. The `invite` message crosses the bus like any event, naming the
//! relay that made it; each relay notes, from the events of the others, which relay holds the
//! call of each (callee, caller, invite id) ([`Holders`]). A SEND that this relay's call
//! gateway does not take — an `accept`, `reject`, `bye`, `update` or `updated` — for a call
//! another relay holds goes to that relay as a NATS request ([`Forwarding`]); the holder
//! hands it to its own call gateway, as if made there, and answers with the receipt or the
//! refusal, which this relay returns to its client. A holder that says it has no such call
//! (any more) leaves the SEND to be delivered as usual here. When a stream at this relay
//! watches the contact another relay's `invite` went to, the holder is told ([`ringing`]), so
//! that its phone hears 180 Ringing as it would if the page streamed there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use restsip_protocol::{EventKind, SendReceipt};
use serde_json::Value;
use tokio::time::Instant;

use super::wire::{self, Forwarded, Outcome, Ringing};
use crate::bus::{BusEvent, Topic};
use crate::error::{Error, Result};
use crate::inbox::SendHook;
use crate::sync::lock;

/// The commands of a web user's SEND to a calling phone that its relay's gateway takes.
const FORWARDED: [&str; 5] = ["accept", "reject", "bye", "update", "updated"];
/// Most calls noted (the oldest go first past that).
const MAX_NOTED: usize = 65_536;
/// How long a call is noted without news: a day, as the call gateways keep answered calls.
const NOTED_FOR: Duration = Duration::from_secs(86_400);
/// How long the holder has to answer (above the media relay's retries an `accept` may take).
const WAIT: Duration = Duration::from_secs(20);

/// A call as the web user's SENDs name it: callee, caller, invite id.
pub(super) type Key = (String, String, u64);

/// Which relay holds each call from a phone to a web user that another relay made known.
#[derive(Default)]
pub(super) struct Holders {
    /// The holder's node and when the call was noted, per call.
    calls: Mutex<HashMap<Key, (String, Instant)>>,
}

/// The invite id a body names (a number, or its digits as a string).
fn id_of(body: &Value) -> Option<u64> {
    match body.get("id")? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

impl Holders {
    /// Notes what `event` of `topic`, made by `node`, says of the calls it holds: an
    /// `invite` message to a web user's login is a call `node` holds (the call returned), a
    /// `bye` one ended.
    pub(super) fn saw(&self, node: &str, topic: &Topic, event: &BusEvent) -> Option<Key> {
        let Topic::Inbox(callee, _) = topic else {
            return None;
        };
        if event.kind != EventKind::Message {
            return None;
        }
        let body = &event.data["body"];
        let (Some(command), Some(caller), Some(id)) = (
            body.get("command").and_then(Value::as_str),
            event.data.get("from").and_then(Value::as_str),
            id_of(body),
        ) else {
            return None;
        };
        let key = (callee.clone(), caller.to_owned(), id);
        let mut calls = lock(&self.calls);
        match command {
            "invite" => {
                if calls.len() >= MAX_NOTED && !calls.contains_key(&key) {
                    calls.retain(|_, (_, since)| since.elapsed() < NOTED_FOR);
                    let oldest = calls
                        .iter()
                        .min_by_key(|(_, (_, since))| *since)
                        .map(|(k, _)| k.clone());
                    if let (true, Some(oldest)) = (calls.len() >= MAX_NOTED, oldest) {
                        calls.remove(&oldest);
                    }
                }
                calls.insert(key.clone(), (node.to_owned(), Instant::now()));
                return Some(key);
            }
            "bye" => {
                calls.remove(&key);
            }
            _ => {}
        }
        None
    }

    /// The call of `callee` with `caller` (invite `id`, else the latest noted) and its holder.
    fn holder(&self, callee: &str, caller: &str, id: Option<u64>) -> Option<(Key, String)> {
        let calls = lock(&self.calls);
        if let Some(id) = id {
            let key = (callee.to_owned(), caller.to_owned(), id);
            return calls
                .get(&key)
                .filter(|(_, since)| since.elapsed() < NOTED_FOR)
                .map(|(node, _)| (key.clone(), node.clone()));
        }
        calls
            .iter()
            .filter(|((to, from, _), (_, since))| {
                to == callee && from == caller && since.elapsed() < NOTED_FOR
            })
            .max_by_key(|(_, (_, since))| *since)
            .map(|(k, (node, _))| (k.clone(), node.clone()))
    }

    /// Forgets a call its holder no longer has.
    fn forget(&self, key: &Key) {
        lock(&self.calls).remove(key);
    }
}

/// This relay's call gateway, then the relays holding calls it does not: the inbox's hook.
pub(super) struct Forwarding {
    /// This relay's call gateway.
    pub(super) local: Arc<dyn SendHook>,
    /// Who holds which call.
    pub(super) holders: Arc<Holders>,
    /// The NATS connection.
    pub(super) client: async_nats::Client,
    /// The subject prefix.
    pub(super) prefix: String,
    /// This relay.
    pub(super) node: String,
}

#[async_trait::async_trait]
impl SendHook for Forwarding {
    async fn intercept(
        &self,
        sender: &str,
        email: &str,
        body: &Value,
    ) -> Option<Result<SendReceipt>> {
        if let Some(taken) = self.local.intercept(sender, email, body).await {
            return Some(taken);
        }
        let command = body.get("command").and_then(Value::as_str)?;
        if !FORWARDED.contains(&command) {
            return None;
        }
        let (key, node) = self.holders.holder(sender, email, id_of(body))?;
        if node == self.node {
            return None;
        }
        let payload = serde_json::to_vec(&Forwarded {
            sender: sender.to_owned(),
            email: email.to_owned(),
            body: body.clone(),
        })
        .ok()?;
        let request = async_nats::Request::new()
            .payload(payload.into())
            .timeout(Some(WAIT));
        let reply = match self
            .client
            .send_request(wire::sends_to(&self.prefix, &node), request)
            .await
        {
            Ok(reply) => reply,
            Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                self.holders.forget(&key);
                return Some(Err(Error::Conflict(format!(
                    "invite {} has ended: relay {node}, which held it, is gone",
                    key.2
                ))));
            }
            Err(e) => {
                tracing::warn!(%node, error = %e, "cluster: a SEND for a call there got no answer");
                return Some(Err(Error::Internal(format!(
                    "relay {node}, which holds the call, did not answer: {e}"
                ))));
            }
        };
        match serde_json::from_slice::<Outcome>(&reply.payload) {
            Ok(outcome) => {
                let taken = outcome.into_taken();
                if taken.is_none() {
                    self.holders.forget(&key);
                }
                taken
            }
            Err(e) => Some(Err(Error::Internal(format!(
                "relay {node}'s answer is not understood: {e}"
            )))),
        }
    }
}

/// Tells relay `holder` that a page here took the `invite` of its call `key` (from the bus:
/// a stream here watched the contact it went to), so that its phone hears 180 Ringing.
pub(super) fn ringing(client: &async_nats::Client, prefix: &str, holder: &str, key: Key) {
    let (callee, caller, id) = key;
    let Ok(payload) = serde_json::to_vec(&Ringing { callee, caller, id }) else {
        return;
    };
    let (client, subject) = (client.clone(), wire::rings_to(prefix, holder));
    tokio::spawn(async move {
        if let Err(e) = client.publish(subject, payload.into()).await {
            tracing::warn!(error = %e, "cluster: a call's ringing was not told to its holder");
        }
    });
}

/// Takes the SENDs other relays pass for calls this relay holds (on `sends`) and hands each
/// to `local`, answering with its outcome; and tells `local` of the invites pages at other
/// relays took (on `rings`). Subscribed before it returns.
pub(super) async fn serve(
    client: async_nats::Client,
    (sends, rings): (String, String),
    local: Arc<dyn SendHook>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut requests = client
        .subscribe(sends)
        .await
        .context("cluster: cannot subscribe to forwarded SENDs")?;
    let mut ringing = client
        .subscribe(rings)
        .await
        .context("cluster: cannot subscribe to calls' ringing")?;
    client
        .flush()
        .await
        .context("cluster: NATS did not confirm the subscription")?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(message) = requests.next() => answer(&client, &local, message),
                Some(message) = ringing.next() => {
                    if message.payload.len() > wire::MAX_MESSAGE {
                        continue;
                    }
                    match serde_json::from_slice::<Ringing>(&message.payload) {
                        Ok(r) => local.rings(&r.callee, &r.caller, r.id).await,
                        Err(e) => tracing::warn!(error = %e, "cluster: not a call's ringing"),
                    }
                }
                else => break,
            }
        }
        tracing::error!("cluster: the subscriptions to forwarded SENDs ended");
    }))
}

/// Hands a forwarded SEND to `local` and answers with its outcome, on a task of its own: an
/// `accept` waiting for the media relay holds no other.
fn answer(client: &async_nats::Client, local: &Arc<dyn SendHook>, message: async_nats::Message) {
    let Some(reply) = message.reply.clone() else {
        return;
    };
    let (client, local) = (client.clone(), local.clone());
    tokio::spawn(async move {
        let outcome = if message.payload.len() > wire::MAX_MESSAGE {
            Outcome::of(Some(Err(Error::Invalid("the SEND is too large".into()))))
        } else {
            match serde_json::from_slice::<Forwarded>(&message.payload) {
                Ok(f) => Outcome::of(local.intercept(&f.sender, &f.email, &f.body).await),
                Err(e) => Outcome::of(Some(Err(Error::Invalid(format!(
                    "not a forwarded SEND: {e}"
                ))))),
            }
        };
        match serde_json::to_vec(&outcome) {
            Ok(bytes) => {
                if let Err(e) = client.publish(reply, bytes.into()).await {
                    tracing::warn!(error = %e, "cluster: a forwarded SEND's answer was not sent");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cluster: answer not encoded"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(from: &str, body: Value) -> BusEvent {
        BusEvent {
            id: 1,
            kind: EventKind::Message,
            data: json!({"id": "9", "from": from, "to": "/login/b@x/1", "body": body, "sent": 0}),
            state: None,
        }
    }

    #[test]
    fn invites_from_other_relays_are_noted_until_their_bye() {
        let holders = Holders::default();
        let topic = Topic::Inbox("b@x".into(), 1);
        let noted = holders.saw(
            "a",
            &topic,
            &message("p@x", json!({"command": "invite", "id": 7})),
        );
        assert_eq!(noted, Some(("b@x".into(), "p@x".into(), 7)));
        let noted = holders.saw(
            "a",
            &topic,
            &message("p@x", json!({"command": "im", "id": 8})),
        );
        assert_eq!(noted, None);
        holders.saw(
            "a",
            &Topic::Login("b@x".into()),
            &message("p@x", json!({"command": "invite", "id": 9})),
        );
        assert_eq!(
            holders.holder("b@x", "p@x", Some(7)).map(|h| h.1),
            Some("a".into())
        );
        assert_eq!(holders.holder("b@x", "p@x", None).map(|h| h.0 .2), Some(7));
        assert!(holders.holder("b@x", "p@x", Some(8)).is_none());
        assert!(holders.holder("b@x", "p@x", Some(9)).is_none());
        assert!(holders.holder("p@x", "b@x", Some(7)).is_none());
        holders.saw(
            "a",
            &topic,
            &message("p@x", json!({"command": "bye", "id": "7"})),
        );
        assert!(holders.holder("b@x", "p@x", Some(7)).is_none());
    }
}
