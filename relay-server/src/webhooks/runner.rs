//! One webhook's task. The feeder runs the resource's event source into the durable outbox
//! (claiming SENDs in the same transaction, for an inbox); the sender POSTs the outbox's oldest
//! event until the target answers 2xx, one at a time, so events arrive in order.
//!
//! The outbox is bounded: when it is full the feeder lets go of the resource (SENDs then wait in
//! the store, queued) and, once the target has caught up, resumes after its last stored event —
//! from the bus's history, or with a fresh `state` when the history no longer reaches back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use restsip_protocol::{Event, EventKind};
use tokio::sync::Notify;

use super::{deliver, Inner};
use crate::bus::Topic;
use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::events::{self, Flow, Sink};
use crate::store::{Queued, WebhookRecord};
use crate::sync::lock;

/// Wait before trying again after the store failed.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// How often a webhook whose relay's leadership lapsed looks again before it POSTs.
const LEADERSHIP_RECHECK: Duration = Duration::from_millis(100);
/// The first wait after a failed delivery; it doubles up to the configured longest.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Why the feeder's source stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The outbox is full: wait for room.
    Full,
    /// The resource went away (its `gone` event is queued): the webhook ends once delivered.
    Gone,
    /// The webhook was deleted.
    Deleted,
}

/// One running webhook.
pub(super) struct Runner {
    /// The service's shared state.
    inner: Arc<Inner>,
    /// The webhook as it was loaded (target, secret, resource, mode, cursor).
    hook: WebhookRecord,
    /// Its resource.
    topic: Topic,
    /// Wakes the sender: an event was queued, or the feeder ended.
    queued: Notify,
    /// Wakes the feeder: an event was delivered, so the outbox has room.
    room: Notify,
    /// The resource went away and its `gone` event is queued.
    ended: AtomicBool,
    /// The webhook no longer exists.
    deleted: AtomicBool,
}

impl Runner {
    pub(super) fn new(inner: Arc<Inner>, hook: WebhookRecord, topic: Topic) -> Self {
        Self {
            inner,
            hook,
            topic,
            queued: Notify::new(),
            room: Notify::new(),
            ended: AtomicBool::new(false),
            deleted: AtomicBool::new(false),
        }
    }

    /// Feeds and sends until the webhook is deleted, has delivered its resource's end, or the
    /// relay shuts down.
    pub(super) async fn run(self: Arc<Self>) {
        let mut closing = self.inner.closing.clone();
        tokio::select! {
            _ = async { tokio::join!(self.feed(), self.send()) } => {}
            _ = closing.wait_for(|c| *c) => {}
        }
        self.inner.running().remove(&self.hook.id);
    }

    async fn feed(&self) {
        let mut cursor = self.hook.cursor.and_then(|c| u64::try_from(c).ok());
        // After the outbox filled up, the source resumes once it is half empty: resuming at
        // every free slot would spend each one on a fresh `state`.
        let mut limit = self.inner.limits.max_webhook_queue;
        loop {
            match self.inner.store.webhook_queue_len(&self.hook.id).await {
                Ok(n) if n >= limit => {
                    self.room.notified().await;
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(webhook = %self.hook.id, error = %e, "webhook outbox unreadable; retrying");
                    tokio::time::sleep(STORE_RETRY).await;
                    continue;
                }
            }
            let outbox = Outbox {
                runner: self,
                cursor: Mutex::new(cursor),
                stop: Mutex::new(None),
            };
            // An inbox hands over every SEND still queued; its delivered ones are in the outbox.
            let since = match self.topic {
                Topic::Inbox(..) => None,
                _ => cursor,
            };
            let resources = &self.inner.resources;
            let result =
                events::run(resources, &self.topic, since, self.hook.updates, &outbox).await;
            cursor = *lock(&outbox.cursor);
            let stop = *lock(&outbox.stop);
            limit = self.inner.limits.max_webhook_queue;
            match stop {
                Some(Stop::Full) => {
                    limit = limit / 2 + 1;
                    continue;
                }
                Some(Stop::Gone) => self.ended.store(true, Ordering::SeqCst),
                Some(Stop::Deleted) => self.deleted.store(true, Ordering::SeqCst),
                None => {
                    if let Err(e) = result {
                        tracing::warn!(webhook = %self.hook.id, error = %e, "webhook source failed; resuming");
                    }
                    tokio::time::sleep(STORE_RETRY).await;
                    continue;
                }
            }
            self.queued.notify_one();
            return;
        }
    }

    async fn send(&self) {
        let id = &self.hook.id;
        let limits = &self.inner.limits;
        let max_backoff = Duration::from_secs(limits.webhook_max_backoff);
        let max_age =
            i64::try_from(limits.webhook_max_age.saturating_mul(1000)).unwrap_or(i64::MAX);
        let mut backoff = FIRST_BACKOFF.min(max_backoff);
        loop {
            if self.deleted.load(Ordering::SeqCst) {
                return;
            }
            let head = match self.inner.store.webhook_head(id).await {
                Ok(head) => head,
                Err(e) => {
                    tracing::warn!(webhook = %id, error = %e, "webhook outbox unreadable; retrying");
                    tokio::time::sleep(STORE_RETRY).await;
                    continue;
                }
            };
            let Some(event) = head else {
                if self.ended.load(Ordering::SeqCst) {
                    // Everything is delivered, the `gone` included: the webhook ends with its
                    // resource.
                    if let Err(e) = self.inner.store.delete_webhook(id).await {
                        tracing::warn!(webhook = %id, error = %e, "ended webhook not removed");
                    }
                    return;
                }
                self.queued.notified().await;
                continue;
            };
            if !self.inner.leadership.holds() {
                // The lease ran out while this task waited or the relay was frozen: another
                // relay may lead and send this event; wait for the renewal (or the abort).
                tokio::time::sleep(LEADERSHIP_RECHECK).await;
                continue;
            }
            let outcome = match &self.inner.http {
                Ok(http) => deliver::post(http, &self.inner.egress, &self.hook, &event).await,
                Err(why) => Err(format!("no HTTP client: {why}")),
            };
            match outcome {
                Ok(()) => match self.inner.store.ack_webhook_event(id, event.seq).await {
                    Ok(true) => {
                        backoff = FIRST_BACKOFF.min(max_backoff);
                        self.room.notify_one();
                    }
                    Ok(false) => return,
                    Err(e) => {
                        // Unacknowledged in the store: it is sent again (at least once).
                        tracing::warn!(webhook = %id, error = %e, "delivery not recorded; retrying");
                        tokio::time::sleep(STORE_RETRY).await;
                    }
                },
                Err(why) => {
                    let now = now_ms();
                    let failing = (now.saturating_sub(event.queued) > max_age).then_some(now);
                    if let Err(e) = self.inner.store.webhook_failed(id, &why, failing).await {
                        tracing::warn!(webhook = %id, error = %e, "failed delivery not recorded");
                    }
                    tracing::debug!(webhook = %id, event = event.event_id, error = %why, "delivery failed; retrying");
                    tokio::time::sleep(deliver::jittered(backoff)).await;
                    backoff = (backoff * 2).min(max_backoff);
                }
            }
        }
    }
}

/// The feeder's sink: each event is committed to the outbox (with its SEND's claim) before the
/// source goes on.
struct Outbox<'a> {
    /// The webhook.
    runner: &'a Runner,
    /// Id of the last event stored.
    cursor: Mutex<Option<u64>>,
    /// Why the source must stop, once it must.
    stop: Mutex<Option<Stop>>,
}

impl Outbox<'_> {
    async fn queue(&self, event: Event, claim: Option<i64>) -> Result<Option<Flow>> {
        // Only the leader stores events: a relay that lost its lease (frozen past it, say)
        // waits here for the renewal, or for the cluster to stop this task, rather than queue
        // again what the new leader queues.
        while !self.runner.inner.leadership.holds() {
            tokio::time::sleep(LEADERSHIP_RECHECK).await;
        }
        let body = serde_json::to_string(&event).map_err(|e| Error::Internal(e.to_string()))?;
        let event_id = i64::try_from(event.id).unwrap_or(i64::MAX);
        let runner = self.runner;
        let queued = runner
            .inner
            .store
            .queue_webhook_event(&runner.hook.id, event_id, &body, claim)
            .await?;
        let stop = match queued {
            Queued::NotClaimed => return Ok(None),
            Queued::NoWebhook => Some(Stop::Deleted),
            Queued::Stored(n) => {
                let mut cursor = lock(&self.cursor);
                *cursor = Some(cursor.map_or(event.id, |c| c.max(event.id)));
                runner.queued.notify_one();
                if event.kind == EventKind::Gone {
                    Some(Stop::Gone)
                } else if n >= runner.inner.limits.max_webhook_queue {
                    Some(Stop::Full)
                } else {
                    None
                }
            }
        };
        *lock(&self.stop) = stop;
        Ok(Some(if stop.is_some() {
            Flow::Stop
        } else {
            Flow::Continue
        }))
    }
}

#[async_trait]
impl Sink for Outbox<'_> {
    async fn emit(&self, event: Event) -> Result<Flow> {
        Ok(self.queue(event, None).await?.unwrap_or(Flow::Continue))
    }

    async fn emit_claimed(&self, seq: i64, event: Event) -> Result<Option<Flow>> {
        self.queue(event, Some(seq)).await
    }
}
