//! SEND and CANCEL: application messages from one user to the contacts of another. A SEND is
//! stored (queued) before it is acknowledged, announced on each target contact's inbox, and
//! marked delivered by the stream that hands it over; CANCEL withdraws what is still queued.
//! A SEND the SIP side can translate (an `im`) to a contact that is a SIP registration is not
//! queued: it goes out as SIP (a MESSAGE) and the phone's final response is its delivery.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use restsip_protocol::{
    CancelOutcome, ContactSource, Delivery, DeliveryStatus, EventKind, InboxMessage, SendReceipt,
    SipStatus,
};
use serde_json::Value;

use crate::bus::{Bus, BusEvent, Topic};
use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::location::Location;
use crate::observe;
use crate::send_order::SendOrder;
use crate::store::{ContactRecord, SendRecord, Store};

/// Longest a SEND waits for SIP phones' final responses (below the 32 s of a SIP client's own
/// transaction timeout, so a MESSAGE relayed from SIP is still answered in time).
const SIP_DELIVERY_WAIT: Duration = Duration::from_secs(16);

/// Locks that make a SEND's queue checks and its queueing one step for its recipient (by a
/// hash of the address), so that concurrent SENDs cannot pass a cap together.
const QUEUE_LOCKS: usize = 64;

/// Sends SENDs to contacts that are SIP registrations as SIP requests (the SIP side).
#[async_trait::async_trait]
pub trait SipDelivery: Send + Sync + 'static {
    /// Whether this SEND body is one it translates to SIP (otherwise it is queued as usual).
    fn handles(&self, body: &Value) -> bool;
    /// Sends `body` from `sender` to the SIP contact `to`; the phone's final response.
    async fn deliver(&self, sender: &str, to: &ContactRecord, body: &Value) -> SipStatus;
    /// Sends `body` to `address`, which is not an account here, through an upstream SIP
    /// server: its final response, or None when there is no upstream for this body.
    async fn upstream(&self, _sender: &str, _address: &str, _body: &Value) -> Option<SipStatus> {
        None
    }
}

/// Takes SENDs that belong to a call in progress (an answer to a phone's INVITE, a cancel or
/// bye of a call) before normal delivery: the SIP side's call gateway.
#[async_trait::async_trait]
pub trait SendHook: Send + Sync + 'static {
    /// The receipt when the hook took the SEND from `sender` to `email`; None to deliver as usual.
    async fn intercept(
        &self,
        sender: &str,
        email: &str,
        body: &Value,
    ) -> Option<Result<SendReceipt>>;

    /// Told that the `invite` message of call `id` from `caller` reached a live stream of
    /// `callee` elsewhere (a page at another relay): the caller may hear that it rings.
    async fn rings(&self, _callee: &str, _caller: &str, _id: u64) {}
}

/// Cheap-clone handle to the messaging service.
#[derive(Clone)]
pub struct Inbox {
    /// Durable queue.
    store: Arc<dyn Store>,
    /// Where deliveries are announced.
    bus: Bus,
    /// Queue limits.
    limits: Arc<Limits>,
    /// The recipients' live contacts (from memory when it holds them).
    location: Location,
    /// The SIP side, once it runs.
    sip: Arc<OnceLock<Arc<dyn SipDelivery>>>,
    /// The call gateway, once the SIP side runs.
    hook: Arc<OnceLock<Arc<dyn SendHook>>>,
    /// Queue checks and queueing, one recipient at a time (per hash of its address).
    queueing: Arc<Vec<tokio::sync::Mutex<()>>>,
    /// The CANCELs of this relay, as claims must know them (see [`Inbox::claim`]).
    cancels: Arc<std::sync::Mutex<Cancels>>,
    /// SENDs announced in sequence order.
    order: SendOrder,
}

/// What claims must know of the CANCELs of this relay.
#[derive(Debug, Default)]
struct Cancels {
    /// How many are under way.
    running: usize,
    /// The last id handed out when the last one ended: a SEND at or below it may have been
    /// cancelled; one above it was stored after, beyond the reach of every CANCEL done.
    done_at: u64,
}

/// One CANCEL under way; counted until dropped.
struct Cancelling<'a> {
    /// The inbox's CANCELs.
    cancels: &'a std::sync::Mutex<Cancels>,
    /// The bus whose last id marks its end.
    bus: &'a Bus,
}

impl<'a> Cancelling<'a> {
    fn start(cancels: &'a std::sync::Mutex<Cancels>, bus: &'a Bus) -> Self {
        cancels.lock().unwrap_or_else(|p| p.into_inner()).running += 1;
        Self { cancels, bus }
    }
}

impl Drop for Cancelling<'_> {
    fn drop(&mut self) {
        let mut cancels = self.cancels.lock().unwrap_or_else(|p| p.into_inner());
        cancels.running -= 1;
        cancels.done_at = cancels.done_at.max(self.bus.last_id());
    }
}

/// Sends `body` to every SIP contact in `to` at once and waits (a bounded time) for each
/// final response: 2xx is delivered, anything else (or no answer: 408) failed.
async fn deliver_by_sip(
    sip: &dyn SipDelivery,
    sender: &str,
    email: &str,
    to: &[ContactRecord],
    body: &Value,
) -> Vec<Delivery> {
    let sends = to.iter().map(|c| async move {
        let status = tokio::time::timeout(SIP_DELIVERY_WAIT, sip.deliver(sender, c, body))
            .await
            .unwrap_or_else(|_| SipStatus {
                code: 408,
                reason: "Request Timeout".into(),
            });
        Delivery {
            contact: Topic::Inbox(email.to_owned(), c.id).resource(),
            // A 1xx: a call is ringing (its answer comes as a message later).
            status: if (100..300).contains(&status.code) {
                DeliveryStatus::Delivered
            } else {
                DeliveryStatus::Failed
            },
            sip: Some(status),
        }
    });
    futures_util::future::join_all(sends).await
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
    /// The messaging service over `store`, announcing on `bus`, reaching the contacts
    /// `location` knows.
    pub fn new(store: Arc<dyn Store>, bus: Bus, limits: Arc<Limits>, location: Location) -> Self {
        Self {
            store,
            bus,
            limits,
            location,
            sip: Arc::default(),
            hook: Arc::default(),
            queueing: Arc::new((0..QUEUE_LOCKS).map(|_| Default::default()).collect()),
            cancels: Arc::default(),
            order: SendOrder::default(),
        }
    }

    /// The limits it enforces (the mailbox caps for missed calls among them).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Lets `hook` take the SENDs of calls in progress (set once, when the SIP side starts).
    pub fn set_hook(&self, hook: Arc<dyn SendHook>) {
        let _ = self.hook.set(hook);
    }

    /// Lets SENDs reach SIP registrations through `sip` (set once, when the SIP side starts).
    pub fn set_sip(&self, sip: Arc<dyn SipDelivery>) {
        let _ = self.sip.set(sip);
    }

    /// Sends `body` from `sender` to every live contact of `email`, or to contact `contact` only.
    pub async fn send(
        &self,
        sender: &str,
        email: &str,
        contact: Option<i64>,
        body: Value,
    ) -> Result<SendReceipt> {
        if let Some(hook) = self.hook.get() {
            if let Some(taken) = hook.intercept(sender, email, &body).await {
                return taken;
            }
        }
        let now = now_ms();
        let targets = match contact {
            Some(id) => vec![self.location.live_contact(email, id).await?],
            None => match self.location.contacts(email).await {
                Err(Error::NotFound(why)) => {
                    if let Some(receipt) = self.upstream(sender, email, &body).await {
                        return Ok(receipt);
                    }
                    return Err(Error::NotFound(why));
                }
                r => r?,
            },
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
        let sip = self.sip.get().filter(|s| s.handles(&body));
        let (by_sip, targets): (Vec<ContactRecord>, Vec<ContactRecord>) = targets
            .into_iter()
            .partition(|c| sip.is_some() && c.source == ContactSource::Sip);
        // The contacts no stream watches: their queues have caps.
        let capped: Vec<(i64, Topic)> = targets
            .iter()
            .map(|c| (c.id, Topic::Inbox(email.to_owned(), c.id)))
            .filter(|(_, topic)| !self.bus.is_watched(topic))
            .collect();
        // Only a SEND with caps to check takes its recipient's lock: one to contacts that are
        // all watched (handed over at once) waits for no other SEND's commit, so concurrent
        // SENDs to a live contact share a group commit.
        let queueing = if capped.is_empty() {
            None
        } else {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            email.hash(&mut h);
            let shard = usize::try_from(h.finish() % QUEUE_LOCKS as u64).unwrap_or(0);
            let lock = self.queueing[shard].lock().await;
            // The counts below must not include SENDs handed over whose marks are still
            // being written behind.
            self.store.flush_sends().await;
            Some(lock)
        };
        for (id, topic) in &capped {
            // One sender's share first: a flood from one sender stops here, before it can
            // fill the contact's whole queue and crowd out everyone else.
            let per_sender = self.limits.max_queued_per_sender;
            if self.store.queued_from(email, *id, sender).await? >= per_sender {
                return Err(Error::Limit(format!(
                    "{} already has {per_sender} undelivered messages from {sender}",
                    topic.resource(),
                )));
            }
            if self.store.queued_count(email, *id).await? >= self.limits.max_queued_per_contact {
                return Err(Error::Limit(format!(
                    "{} already has {} undelivered messages",
                    topic.resource(),
                    self.limits.max_queued_per_contact
                )));
            }
        }
        let msg_id = self.bus.next_id().to_string();
        // Announced in the order of these numbers, whatever the order of the commits.
        let ticket = self.order.take(&self.bus, targets.len());
        let records: Vec<SendRecord> = targets
            .iter()
            .zip(ticket.seqs())
            .map(|(c, &seq)| SendRecord {
                seq: i64::try_from(seq).unwrap_or(i64::MAX),
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
        if !records.is_empty() {
            self.store.queue_sends(&records).await?;
            observe::sends(observe::SENDS_QUEUED, records.len());
        }
        drop(queueing);
        let mut events = Vec::with_capacity(records.len());
        let mut deliveries: Vec<Delivery> = records
            .iter()
            .map(|r| {
                let topic = Topic::Inbox(email.to_owned(), r.to_contact);
                let status = if self.bus.is_watched(&topic) {
                    DeliveryStatus::Delivered
                } else {
                    DeliveryStatus::Queued
                };
                let data = serde_json::to_value(inbox_message(r)).unwrap_or_default();
                let delivery = Delivery {
                    contact: topic.resource(),
                    status,
                    sip: None,
                };
                let event = BusEvent {
                    id: u64::try_from(r.seq).unwrap_or(0),
                    kind: EventKind::Message,
                    data,
                    state: None,
                };
                events.push((topic, event));
                delivery
            })
            .collect();
        ticket.announce(events);
        if let Some(sip) = sip.filter(|_| !by_sip.is_empty()) {
            let by_sip = deliver_by_sip(sip.as_ref(), sender, email, &by_sip, &body).await;
            let taken = by_sip
                .iter()
                .filter(|d| d.status == DeliveryStatus::Delivered);
            observe::sends(observe::SENDS_DELIVERED, taken.count());
            deliveries.extend(by_sip);
        }
        Ok(SendReceipt {
            id: msg_id,
            deliveries,
        })
    }

    /// A SEND to a non-account through the upstream SIP server, if the SIP side has one for
    /// this body: one delivery `sip:{email}` with the final response.
    async fn upstream(&self, sender: &str, email: &str, body: &Value) -> Option<SendReceipt> {
        let sip = self.sip.get()?;
        let status = tokio::time::timeout(SIP_DELIVERY_WAIT, sip.upstream(sender, email, body))
            .await
            .unwrap_or_else(|_| {
                Some(SipStatus {
                    code: 408,
                    reason: "Request Timeout".into(),
                })
            })?;
        Some(SendReceipt {
            id: self.bus.next_id().to_string(),
            deliveries: vec![Delivery {
                contact: format!("sip:{email}"),
                // A 1xx: a call is ringing (its answer comes as a message later).
                status: if (100..300).contains(&status.code) {
                    DeliveryStatus::Delivered
                } else {
                    DeliveryStatus::Failed
                },
                sip: Some(status),
            }],
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
        // Claims from now on wait for their commit, and those written behind before are
        // committed first: the store then tells what was handed over.
        let _cancelling = Cancelling::start(&self.cancels, &self.bus);
        self.store.flush_sends().await;
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
                sip: None,
            })
            .collect();
        let withdrawn = deliveries
            .iter()
            .filter(|d| d.status == DeliveryStatus::Cancelled);
        observe::sends(observe::SENDS_CANCELLED, withdrawn.count());
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
    ///
    /// On a relay alone (the only one on its store), while no CANCEL is under way here and
    /// for a SEND stored after the last one ended, the SEND cannot have been cancelled: the
    /// claim is true at once and its mark is written behind, with the next group of SENDs. A
    /// CANCEL (and a stream that reads what is still queued) first waits for the marks queued
    /// before it. If the relay dies before a mark is written, the message is handed over
    /// again on the next connection (at least once, never lost). Otherwise, and always in a
    /// cluster (a CANCEL may come through another relay), the claim waits for its commit.
    pub async fn claim(&self, seq: i64) -> Result<bool> {
        let behind = !self.bus.clustered() && {
            let cancels = self.cancels.lock().unwrap_or_else(|p| p.into_inner());
            let after = u64::try_from(seq).is_ok_and(|seq| seq > cancels.done_at);
            cancels.running == 0 && after && self.store.claim_send_later(seq)
        };
        let claimed = behind || self.store.claim_send(seq).await?;
        observe::sends(observe::SENDS_DELIVERED, usize::from(claimed));
        Ok(claimed)
    }

    /// What a contact's stream must hand over when it (re)connects.
    pub async fn pending(
        &self,
        email: &str,
        contact: i64,
        after: Option<i64>,
    ) -> Result<Vec<SendRecord>> {
        // Not again what was handed over with its mark not yet written.
        self.store.flush_sends().await;
        Ok(self.store.pending_sends(email, contact, after).await?)
    }
}
