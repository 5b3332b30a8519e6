//! The event source of an active resource: the task logic that turns a bus topic into the
//! protocol's `Event`s — a first `state`, then every change — with resume from an event id,
//! resynchronisation (a fresh `state`) when it falls behind, and, for a contact's inbox, the
//! stored SENDs it claims. Streams (SSE, NDJSON, WebSocket) and webhooks both run it; each gives
//! a [`Sink`] that says where events go and how a SEND is claimed.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use restsip_protocol::{normalize_email, Event, EventKind, UpdateMode};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::bus::{Bus, Published, Topic};
use crate::calls::Calls;
use crate::error::{Error, Result};
use crate::inbox::{inbox_message, Inbox};
use crate::location::Location;
use crate::outgoing::Outgoing;

/// The services an event source reads; cheap to clone.
#[derive(Clone)]
pub struct Resources {
    /// Changes of every resource.
    pub bus: Bus,
    /// Logins, for `/login/...` states.
    pub location: Location,
    /// Calls, for `/call/...` states.
    pub calls: Calls,
    /// Stored SENDs, for inboxes.
    pub inbox: Inbox,
}

/// Whether a source goes on after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// The consumer wants no more (gone, full): the source ends.
    Stop,
}

/// Where a source's events go.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Hands over one event.
    async fn emit(&self, event: Event) -> Result<Flow>;
    /// Hands over a change shared with the resource's other watchers; a sink that can send it
    /// as it is (its encodings made once for all) takes the `Arc`, others a copy of the event.
    async fn emit_shared(&self, event: Arc<Outgoing>) -> Result<Flow> {
        self.emit(event.event.clone()).await
    }
    /// Hands over the `message` event of stored SEND `seq` if this consumer may claim it (it was
    /// not cancelled); None when it may not.
    async fn emit_claimed(&self, seq: i64, event: Event) -> Result<Option<Flow>>;
    /// Hands over, in order, the `message` events of stored SENDs (sequence number, event)
    /// that may be claimed, skipping the others. One after the other unless the consumer can
    /// claim several at once.
    async fn emit_claimed_all(&self, events: Vec<(i64, Event)>) -> Result<Flow> {
        for (seq, event) in events {
            if self.emit_claimed(seq, event).await? == Some(Flow::Stop) {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }
}

/// Most SENDs waiting on a stream's bus receiver that are claimed together.
const CLAIM_BATCH: usize = 64;

/// Parses an active resource's path: `/login/{email}`, `/login/{email}/{id}`, `/call/{id}`;
/// the email is put in its canonical form.
pub fn parse_topic(path: &str) -> Option<Topic> {
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    match segments.as_slice() {
        ["login", email] if !email.is_empty() => Some(Topic::Login(normalize_email(email))),
        ["login", email, id] if !email.is_empty() => {
            Some(Topic::Inbox(normalize_email(email), id.parse().ok()?))
        }
        ["call", id] if !id.is_empty() => Some(Topic::Call((*id).to_owned())),
        _ => None,
    }
}

/// Checks that `topic` exists and that `user` may watch it: anyone signed in may watch a user's
/// logins and a call; only its owner a contact's inbox.
pub async fn authorize(resources: &Resources, user: &str, topic: &Topic) -> Result<()> {
    match topic {
        Topic::Login(email) => {
            resources.location.contacts(email).await?;
            // The user's presence rule says who may watch.
            if !resources.location.may_watch(email, Some(user)).await? {
                return Err(Error::Forbidden(format!(
                    "{email}'s presence rule does not let {user} watch"
                )));
            }
            Ok(())
        }
        Topic::Inbox(email, id) => {
            if email != user {
                return Err(Error::Forbidden(format!(
                    "{user} may not read the inbox of {email}"
                )));
            }
            resources.location.live_contact(email, *id).await.map(drop)
        }
        Topic::Call(id) => resources.calls.view(id).await.map(drop),
    }
}

/// Runs the source of `topic` into `sink` until the resource goes away (after its `gone`
/// event), the sink stops, or the bus closes. `since` resumes after that event id (for an inbox:
/// the delivered SENDs after it are handed over again, as a stream may have lost them in flight).
pub async fn run(
    resources: &Resources,
    topic: &Topic,
    since: Option<u64>,
    mode: UpdateMode,
    sink: &dyn Sink,
) -> Result<()> {
    let source = Source {
        resources,
        topic,
        sink,
        mode,
    };
    match topic {
        Topic::Inbox(email, id) => source.run_inbox(email, *id, since).await,
        _ => source.run_resource(since).await,
    }
}

/// One running source.
struct Source<'a> {
    /// What it reads.
    resources: &'a Resources,
    /// The resource.
    topic: &'a Topic,
    /// Where events go.
    sink: &'a dyn Sink,
    /// Differences or full state.
    mode: UpdateMode,
}

impl Source<'_> {
    fn event(&self, id: u64, kind: EventKind, data: Value) -> Event {
        Event {
            id,
            resource: self.topic.resource(),
            kind,
            data,
        }
    }

    async fn emit(&self, id: u64, kind: EventKind, data: Value) -> Result<Flow> {
        let flow = self.sink.emit(self.event(id, kind, data)).await?;
        Ok(if kind == EventKind::Gone {
            Flow::Stop
        } else {
            flow
        })
    }

    /// Emits a bus event as the mode asks; the event is built once for all its watchers.
    async fn emit_change(&self, event: &Published) -> Result<Flow> {
        let Some(out) = event.outgoing(self.mode) else {
            return Ok(Flow::Continue);
        };
        let gone = out.event.kind == EventKind::Gone;
        let flow = self.sink.emit_shared(out).await?;
        Ok(if gone { Flow::Stop } else { flow })
    }

    /// Emits the current state; returns the id it stands for, or None when the source ends.
    /// A call's state is read once for all the watchers that come while it does not change (a
    /// login's or a contact's counts down their expiry: read for each).
    async fn emit_state(&self) -> Result<Option<u64>> {
        let shared = matches!(self.topic, Topic::Call(_));
        let (changes, kept) = self.resources.bus.kept_state(self.topic);
        if let (true, Some(state)) = (shared, kept) {
            let id = state.id;
            let flow = self.sink.emit_shared(state).await?;
            return Ok((flow == Flow::Continue).then_some(id));
        }
        // Every event up to this id is reflected in a state read after it.
        let id = self.resources.bus.last_id();
        let loaded = match self.topic {
            Topic::Login(email) => self.resources.location.state(email).await,
            Topic::Call(call) => self.resources.calls.state(call).await,
            Topic::Inbox(email, cid) => self
                .resources
                .location
                .live_contact(email, *cid)
                .await
                .map(|c| {
                    serde_json::to_value(crate::location::contact_view(&c, crate::clock::now_ms()))
                        .unwrap_or_default()
                }),
        };
        let flow = match loaded {
            Ok(data) => {
                let state = Outgoing::new(self.event(id, EventKind::State, data));
                if shared {
                    self.resources
                        .bus
                        .keep_state(self.topic, changes, state.clone());
                }
                self.sink.emit_shared(state).await?
            }
            Err(Error::NotFound(why)) => {
                self.emit(id, EventKind::Gone, serde_json::json!({"reason": why}))
                    .await?
            }
            Err(e) => return Err(e),
        };
        Ok((flow == Flow::Continue).then_some(id))
    }

    async fn run_resource(&self, since: Option<u64>) -> Result<()> {
        let sub = self.resources.bus.subscribe(self.topic, since);
        let mut rx = sub.receiver;
        let mut last = match sub.missed {
            Some(missed) => {
                let mut last = since.unwrap_or(0);
                for event in missed {
                    if self.emit_change(&event).await? == Flow::Stop {
                        return Ok(());
                    }
                    last = event.id;
                }
                last
            }
            // Boxed, here and below: reading the store is a large future, and a source's own
            // stays as large as the largest it awaits for as long as it runs.
            None => match Box::pin(self.emit_state()).await? {
                Some(id) => id,
                None => return Ok(()),
            },
        };
        loop {
            match rx.recv().await {
                // A change made at another relay that reached this one after a later change
                // of the resource, which this stream may have handed out: a fresh state
                // shows it rather than a gap (ids stay increasing).
                Ok(event) if event.id <= last && event.late() => match self.emit_state().await? {
                    Some(id) => last = id.max(last),
                    None => return Ok(()),
                },
                Ok(event) if event.id <= last => {}
                Ok(event) => {
                    last = event.id;
                    if self.emit_change(&event).await? == Flow::Stop {
                        return Ok(());
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    match Box::pin(self.emit_state()).await? {
                        Some(id) => last = id,
                        None => return Ok(()),
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
    }

    /// Hands over the stored SEND `seq` unless already handed (then or, with `remember`, later)
    /// or not claimable.
    async fn hand_over(
        &self,
        seq: i64,
        data: Value,
        handed: &mut HashSet<i64>,
        remember: bool,
    ) -> Result<Flow> {
        if handed.contains(&seq) {
            return Ok(Flow::Continue);
        }
        let event = self.event(u64::try_from(seq).unwrap_or(0), EventKind::Message, data);
        match self.sink.emit_claimed(seq, event).await? {
            Some(flow) => {
                if remember {
                    handed.insert(seq);
                }
                Ok(flow)
            }
            None => Ok(Flow::Continue),
        }
    }

    /// Hands over stored SENDs the store lets this consumer claim; remembers them in `handed`.
    async fn hand_over_pending(
        &self,
        email: &str,
        cid: i64,
        after: Option<u64>,
        handed: &mut HashSet<i64>,
    ) -> Result<Flow> {
        let after = after.map(|a| i64::try_from(a).unwrap_or(i64::MAX));
        for record in self.resources.inbox.pending(email, cid, after).await? {
            let data = serde_json::to_value(inbox_message(&record)).unwrap_or_default();
            // Remembered: the same SEND may still come on the bus.
            if self.hand_over(record.seq, data, handed, true).await? == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }

    async fn run_inbox(&self, email: &str, cid: i64, since: Option<u64>) -> Result<()> {
        let sub = self.resources.bus.subscribe(self.topic, None);
        let mut rx = sub.receiver;
        if Box::pin(self.emit_state()).await?.is_none() {
            return Ok(());
        }
        let mut handed = HashSet::new();
        if Box::pin(self.hand_over_pending(email, cid, since, &mut handed)).await? == Flow::Stop {
            return Ok(());
        }
        // The highest id a message of this stream carried: a SEND made at another relay can
        // arrive after a later one (its id from that relay's clock), and carries this id
        // instead of its own, so the ids a client resumes from never go down (a resume after
        // a lower id would hand over again what came between).
        let mut high = handed
            .iter()
            .filter_map(|seq| u64::try_from(*seq).ok())
            .chain(since)
            .max()
            .unwrap_or(0);
        let mut carried = None;
        loop {
            let received = match carried.take() {
                Some(received) => received,
                None => rx.recv().await,
            };
            let flow = match received {
                Ok(event) if event.kind == EventKind::Message => {
                    // The messages already waiting behind it are claimed with it; what else
                    // comes is dealt with after them.
                    let mut batch = vec![event];
                    while batch.len() < CLAIM_BATCH {
                        match rx.try_recv() {
                            Ok(next) if next.kind == EventKind::Message => batch.push(next),
                            Ok(next) => {
                                carried = Some(Ok(next));
                                break;
                            }
                            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                                carried = Some(Err(broadcast::error::RecvError::Lagged(n)));
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    // A bus event comes once: no need to remember it.
                    let events = batch
                        .iter()
                        .map(|e| (i64::try_from(e.id).unwrap_or(i64::MAX), e))
                        .filter(|(seq, _)| !handed.contains(seq))
                        .map(|(seq, e)| {
                            high = high.max(e.id);
                            (seq, self.event(high, e.kind, e.data.clone()))
                        })
                        .collect();
                    self.sink.emit_claimed_all(events).await?
                }
                Ok(event) => self.emit(event.id, event.kind, event.data.clone()).await?,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    Box::pin(self.hand_over_pending(email, cid, None, &mut handed)).await?
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            };
            if flow == Flow::Stop {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_resource_paths() {
        assert_eq!(parse_topic("/login/a@x"), Some(Topic::Login("a@x".into())));
        assert_eq!(
            parse_topic("/login/a@x/3"),
            Some(Topic::Inbox("a@x".into(), 3))
        );
        assert_eq!(parse_topic("/call/c1"), Some(Topic::Call("c1".into())));
        for bad in [
            "",
            "/",
            "login/a@x",
            "/login/",
            "/login/a@x/x",
            "/call/",
            "/call/a/b",
            "/user/a",
            "/login//1",
        ] {
            assert_eq!(parse_topic(bad), None, "{bad}");
        }
    }
}
