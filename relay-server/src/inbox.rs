//! SEND and CANCEL: application messages from one user to the contacts of another. A SEND is
//! stored (queued) before it is acknowledged, announced on each target contact's inbox, and
//! marked delivered by the stream that hands it over; CANCEL withdraws what is still queued.

use std::sync::Arc;

use restsip_protocol::{
    CancelOutcome, Delivery, DeliveryStatus, EventKind, InboxMessage, SendReceipt,
};
use serde_json::Value;

use crate::bus::{Bus, BusEvent, Topic};
use crate::clock::now_ms;
use crate::config::Limits;
use crate::error::{Error, Result};
use crate::store::{SendRecord, Store};

/// Cheap-clone handle to the messaging service.
#[derive(Clone)]
pub struct Inbox {
    /// Durable queue.
    store: Arc<dyn Store>,
    /// Where deliveries are announced.
    bus: Bus,
    /// Queue limits.
    limits: Arc<Limits>,
}

/// The message a recipient's stream carries for a stored SEND.
pub fn inbox_message(s: &SendRecord) -> InboxMessage {
    InboxMessage {
        id: s.msg_id.clone(),
        from: s.sender.clone(),
        to: s.target.clone(),
        body: s.body.clone(),
        sent: s.sent,
    }
}

impl Inbox {
    /// The messaging service over `store`, announcing on `bus`.
    pub fn new(store: Arc<dyn Store>, bus: Bus, limits: Arc<Limits>) -> Self {
        Self { store, bus, limits }
    }

    /// Sends `body` from `sender` to every live contact of `email`, or to contact `contact` only.
    pub async fn send(
        &self,
        sender: &str,
        email: &str,
        contact: Option<i64>,
        body: Value,
    ) -> Result<SendReceipt> {
        let now = now_ms();
        let targets = match contact {
            Some(id) => match self.store.contact(email, id).await? {
                Some(c) if c.expires_at > now => vec![c],
                _ => return Err(Error::NotFound(format!("no login /login/{email}/{id}"))),
            },
            None => {
                if self.store.user(email).await?.is_none() {
                    return Err(Error::NotFound(format!("no user {email}")));
                }
                self.store.contacts(email, now).await?
            }
        };
        if targets.is_empty() {
            return Err(Error::Conflict(format!(
                "{email} is not logged in; leave an offline message instead"
            )));
        }
        let target = match contact {
            Some(id) => Topic::Inbox(email.to_owned(), id).resource(),
            None => Topic::Login(email.to_owned()).resource(),
        };
        for c in &targets {
            let topic = Topic::Inbox(email.to_owned(), c.id);
            if !self.bus.is_watched(&topic)
                && self.store.queued_count(email, c.id).await? >= self.limits.max_queued_per_contact
            {
                return Err(Error::Limit(format!(
                    "{} already has {} undelivered messages",
                    topic.resource(),
                    self.limits.max_queued_per_contact
                )));
            }
        }
        let msg_id = self.bus.next_id().to_string();
        let records: Vec<SendRecord> = targets
            .iter()
            .map(|c| SendRecord {
                seq: i64::try_from(self.bus.next_id()).unwrap_or(i64::MAX),
                msg_id: msg_id.clone(),
                sender: sender.to_owned(),
                to_email: email.to_owned(),
                to_contact: c.id,
                target: target.clone(),
                body: body.clone(),
                sent: now,
                status: DeliveryStatus::Queued,
            })
            .collect();
        self.store.queue_sends(&records).await?;
        let deliveries = records
            .iter()
            .map(|r| {
                let topic = Topic::Inbox(email.to_owned(), r.to_contact);
                let status = if self.bus.is_watched(&topic) {
                    DeliveryStatus::Delivered
                } else {
                    DeliveryStatus::Queued
                };
                let data = serde_json::to_value(inbox_message(r)).unwrap_or_default();
                self.bus.publish_with_id(
                    &topic,
                    BusEvent {
                        id: u64::try_from(r.seq).unwrap_or(0),
                        kind: EventKind::Message,
                        data,
                        state: None,
                    },
                );
                Delivery {
                    contact: topic.resource(),
                    status,
                }
            })
            .collect();
        Ok(SendReceipt {
            id: msg_id,
            deliveries,
        })
    }

    /// Withdraws message `msg_id` of `sender` from `email`'s contacts (or one of them) where it
    /// is still queued. Nothing matching is NotFound; nothing left to withdraw is a Conflict.
    pub async fn cancel(
        &self,
        sender: &str,
        email: &str,
        contact: Option<i64>,
        msg_id: &str,
    ) -> Result<CancelOutcome> {
        let rows = self
            .store
            .cancel_send(sender, msg_id, email, contact)
            .await?;
        if rows.is_empty() {
            return Err(Error::NotFound(format!(
                "no message {msg_id} from {sender} to {email}"
            )));
        }
        let deliveries: Vec<Delivery> = rows
            .into_iter()
            .map(|(cid, status)| Delivery {
                contact: Topic::Inbox(email.to_owned(), cid).resource(),
                status,
            })
            .collect();
        if deliveries
            .iter()
            .all(|d| d.status == DeliveryStatus::Delivered)
        {
            let to: Vec<&str> = deliveries.iter().map(|d| d.contact.as_str()).collect();
            return Err(Error::Conflict(format!(
                "message {msg_id} was already delivered to {}",
                to.join(", ")
            )));
        }
        Ok(CancelOutcome {
            id: msg_id.to_owned(),
            deliveries,
        })
    }

    /// Marks a SEND delivered unless it was cancelled; true if it may be handed over.
    pub async fn claim(&self, seq: i64) -> Result<bool> {
        Ok(self.store.claim_send(seq).await?)
    }

    /// What a contact's stream must hand over when it (re)connects.
    pub async fn pending(
        &self,
        email: &str,
        contact: i64,
        after: Option<i64>,
    ) -> Result<Vec<SendRecord>> {
        Ok(self.store.pending_sends(email, contact, after).await?)
    }
}
