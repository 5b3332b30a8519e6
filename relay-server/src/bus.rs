//! Events of active resources, in process: one broadcast channel per resource with a short
//! history, so a stream that reconnects with the last event id it saw gets what it missed.
//!
//! Event ids come from one counter shared by all resources and start above the wall clock in
//! microseconds (and above every id the store ever handed out), so ids stay increasing across
//! restarts and a client's `Last-Event-ID` from before a restart is never mistaken for a newer one.
//!
//! In a cluster (`--cluster`) the bus also hands every local event to an [`Outbound`] (the
//! cluster module sends it to the other relays) and takes theirs with [`Bus::apply_remote`].
//! Ids then come from an [`IdSpace`]: a hybrid clock — above the last id handed out, the wall
//! clock in µs, and every id seen from other relays — rounded up to this relay's residue modulo
//! the stride, so ids of two relays never collide and an event made after another was seen has
//! a greater id.

use std::collections::{HashMap, VecDeque};
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use restsip_protocol::{Event, EventKind, UpdateMode};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::outgoing::Outgoing;

mod ids;
#[cfg(test)]
mod tests;

use ids::clock_us;
pub use ids::IdSpace;

/// An active resource that can be watched.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// `/login/{email}`: a user's contacts and presence.
    Login(String),
    /// `/login/{email}/{id}`: what is SENT to one contact.
    Inbox(String, i64),
    /// `/call/{id}`: a call's participants.
    Call(String),
}

impl Topic {
    /// The resource path.
    pub fn resource(&self) -> String {
        match self {
            Self::Login(email) => format!("/login/{email}"),
            Self::Inbox(email, id) => format!("/login/{email}/{id}"),
            Self::Call(id) => format!("/call/{id}"),
        }
    }
}

/// One change of a resource.
#[derive(Debug, Clone)]
pub struct BusEvent {
    /// Event id.
    pub id: u64,
    /// What happened.
    pub kind: EventKind,
    /// The item, message or state.
    pub data: Value,
    /// The full state after the change, for streams in full mode.
    pub state: Option<Value>,
}

/// A published change as its watchers get it: the protocol event of each update mode is built
/// once, by the first watcher that needs it, and shared by all the others (with its encodings).
#[derive(Debug)]
pub struct Published {
    /// The change.
    event: BusEvent,
    /// Its resource's path.
    resource: String,
    /// What a watcher in diff mode, then in full mode, is sent (None: nothing).
    shared: [OnceLock<Option<Arc<Outgoing>>>; 2],
    /// Made at another relay and applied here after a later event of the resource: a live
    /// stream may have handed out the later one already.
    late: bool,
}

impl Deref for Published {
    type Target = BusEvent;

    fn deref(&self) -> &BusEvent {
        &self.event
    }
}

impl Published {
    fn new(topic: &Topic, event: BusEvent) -> Self {
        Self {
            event,
            resource: topic.resource(),
            shared: Default::default(),
            late: false,
        }
    }

    /// Whether it came after a later event of its resource (see [`Bus::apply_remote`]).
    pub fn late(&self) -> bool {
        self.late
    }

    /// The event a watcher in `mode` is sent, if any: in full mode an added, updated or removed
    /// item becomes a `state` event with the whole resource.
    pub fn outgoing(&self, mode: UpdateMode) -> Option<Arc<Outgoing>> {
        let e = &self.event;
        let slot = &self.shared[usize::from(mode == UpdateMode::Full)];
        slot.get_or_init(|| {
            let (kind, data) = match (mode, e.kind) {
                (UpdateMode::Full, EventKind::Added | EventKind::Updated | EventKind::Removed) => {
                    (EventKind::State, e.state.clone()?)
                }
                _ => (e.kind, e.data.clone()),
            };
            Some(Outgoing::new(Event {
                id: e.id,
                resource: self.resource.clone(),
                kind,
                data,
            }))
        })
        .clone()
    }
}

/// Cheap-clone handle to the event bus.
#[derive(Debug, Clone)]
pub struct Bus {
    /// Shared state.
    inner: Arc<Inner>,
}

/// Where a clustered bus sends its local events: the other relays. Implemented above the
/// domain (the cluster module); it must not block (it queues).
pub trait Outbound: Send + Sync + std::fmt::Debug {
    /// Sends one local event of `topic`.
    fn send(&self, topic: &Topic, event: &BusEvent);
    /// Resolves once every event sent before the call has been taken for the other relays
    /// (or after a bounded wait when they cannot be reached).
    fn flushed(&self) -> futures_util::future::BoxFuture<'static, ()>;
}

#[derive(Debug)]
struct Inner {
    /// The last id handed out, or seen from another relay.
    last_id: AtomicU64,
    /// Which ids this relay takes.
    space: IdSpace,
    /// The other relays, when clustered.
    outbound: OnceLock<Arc<dyn Outbound>>,
    /// Channels and histories by resource.
    topics: Mutex<HashMap<Topic, Channel>>,
    /// Events kept per resource for resuming.
    history: usize,
    /// Events a slow subscriber may fall behind before it is resynchronised.
    capacity: usize,
}

/// Subscribers per broadcast channel of a resource: a resource watched by more gets more
/// channels, and each event goes to every one of them. A tokio broadcast channel has one lock
/// over its waiters, taken by the sender for every 32 it wakes and by each receiver that waits
/// again; with 10,000 watchers of one call on two cores, the receivers woken first queued on
/// it (a futex wait and a context switch each) while the sender was still waking the others,
/// and the fan-out ran on one core for much of its time (README, Benchmarks, "Eighth round").
/// Each channel allocates its `capacity` slots (about 40 KiB at 1,024), so a channel per 256
/// subscribers costs under 0.2 KB per watcher; the sweep drops the channels left empty.
const SHARD: usize = 256;

#[derive(Debug)]
struct Channel {
    /// Live subscribers, at most [`SHARD`] per broadcast channel; the first is made by the first
    /// subscription (a broadcast channel allocates all its `capacity` slots at once, tens of
    /// KiB, and most resources, such as calls and new users, are never watched before the
    /// sweep forgets them).
    tx: Vec<broadcast::Sender<Arc<Published>>>,
    /// The most recent events, oldest first.
    recent: VecDeque<Arc<Published>>,
    /// `recent` holds every event of this resource with an id above this one: the last id handed
    /// out when the channel was made (earlier events were before this process, or swept away),
    /// then the id of each event dropped from the history. A resume from below it is impossible.
    floor: u64,
    /// Last publish or subscribe.
    touched: Instant,
    /// When a subscriber was last seen: until [`RESUME_WINDOW`] after it, events are kept for
    /// a stream that comes back with the last id it saw.
    watched: Option<Instant>,
    /// Counts the resource's events (built or not): a state read while it stood still
    /// reflects every event so far.
    changes: u64,
    /// The resource's state as a stream's first event, kept until its next event, so that
    /// watchers arriving together share one read of the store (see [`Bus::keep_state`]).
    state: Option<Arc<Outgoing>>,
}

/// How long after its last subscriber a resource's events are still built and kept, so a
/// stream that reconnects gets what it missed; after that a resume starts from the full state
/// (as after a sweep), and an unwatched resource's changes cost no event at all.
pub const RESUME_WINDOW: Duration = Duration::from_secs(600);

impl Channel {
    fn new(floor: u64) -> Self {
        Self {
            tx: Vec::new(),
            recent: VecDeque::new(),
            floor,
            touched: Instant::now(),
            watched: None,
            changes: 0,
            state: None,
        }
    }

    /// The resource changed: a state read before is out of date.
    fn changed(&mut self) {
        self.changes += 1;
        self.state = None;
    }

    /// Live subscribers now.
    fn receivers(&self) -> usize {
        self.tx.iter().map(broadcast::Sender::receiver_count).sum()
    }

    /// Sends `event` to every live subscriber.
    fn send(&self, event: &Arc<Published>) {
        for tx in &self.tx {
            let _ = tx.send(event.clone());
        }
    }

    /// A receiver of the first channel with room, or of a new one.
    fn receiver(&mut self, capacity: usize) -> broadcast::Receiver<Arc<Published>> {
        if let Some(tx) = self.tx.iter().find(|tx| tx.receiver_count() < SHARD) {
            return tx.subscribe();
        }
        let (tx, rx) = broadcast::channel(capacity);
        self.tx.push(tx);
        rx
    }

    /// Whether events must be built: someone watches, or watched recently enough to resume.
    fn wanted(&mut self) -> bool {
        if self.receivers() > 0 {
            self.watched = Some(Instant::now());
            return true;
        }
        self.watched.is_some_and(|at| at.elapsed() < RESUME_WINDOW)
    }
}

/// What a subscriber gets: the live receiver and, when asked to resume, the missed events.
#[derive(Debug)]
pub struct Subscription {
    /// Events from now on.
    pub receiver: broadcast::Receiver<Arc<Published>>,
    /// Events after the requested id, or None when the history no longer reaches back that far
    /// (the subscriber must start from the full state).
    pub missed: Option<Vec<Arc<Published>>>,
}

impl Bus {
    /// A bus whose ids continue above `floor`.
    pub fn new(floor: u64, history: usize, capacity: usize) -> Self {
        Self::with_ids(floor, history, capacity, IdSpace::ALONE)
    }

    /// A bus whose ids continue above `floor` in `space` (a relay of a cluster).
    pub fn with_ids(floor: u64, history: usize, capacity: usize, space: IdSpace) -> Self {
        Self {
            inner: Arc::new(Inner {
                last_id: AtomicU64::new(clock_us().max(floor)),
                space,
                outbound: OnceLock::new(),
                topics: Mutex::new(HashMap::new()),
                history,
                capacity,
            }),
        }
    }

    /// The ids this relay takes (its slot in a cluster).
    pub fn ids(&self) -> IdSpace {
        self.inner.space
    }

    /// A fresh id, for events whose id must be stored before they are published.
    pub fn next_id(&self) -> u64 {
        let space = self.inner.space;
        if space == IdSpace::ALONE {
            return self.inner.last_id.fetch_add(1, Ordering::SeqCst) + 1;
        }
        // The hybrid clock: above the last id and the wall clock, in this relay's residue.
        let now = clock_us();
        let take = |last: u64| space.above(last.max(now));
        match self
            .inner
            .last_id
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(take(last)))
        {
            Ok(last) | Err(last) => take(last),
        }
    }

    /// Joins a cluster: local events are sent to `outbound` from now on, and unwatched
    /// resources' events are built too (a watcher may be on another relay). Once only.
    pub fn attach(&self, outbound: Arc<dyn Outbound>) {
        if self.inner.outbound.set(outbound).is_err() {
            tracing::warn!("bus already attached to a cluster; ignored");
        }
    }

    /// Waits until the local events published so far have been taken for the other relays (at
    /// once alone): what a change awaits before it is acknowledged, so an acknowledged change
    /// is not lost with this relay if it dies right after, and a request the client makes
    /// next at another relay comes after it there.
    pub async fn flushed(&self) {
        if let Some(outbound) = self.inner.outbound.get() {
            outbound.flushed().await;
        }
    }

    /// Whether the bus is part of a cluster.
    pub fn clustered(&self) -> bool {
        self.inner.outbound.get().is_some()
    }

    /// Applies an event another relay published: kept in the resource's history in id order
    /// (a channel made for it starts just below it) and handed to this relay's subscribers;
    /// ids handed out here from now on are above it. An id already held is ignored, so an
    /// event applied twice is seen once.
    pub fn apply_remote(&self, topic: &Topic, event: BusEvent) {
        let mut topics = self.lock();
        let before = self.inner.last_id.fetch_max(event.id, Ordering::SeqCst);
        let channel = topics
            .entry(topic.clone())
            .or_insert_with(|| Channel::new(before.min(event.id.saturating_sub(1))));
        if event.id <= channel.floor || channel.recent.iter().any(|e| e.id == event.id) {
            return;
        }
        channel.changed();
        let at = channel
            .recent
            .iter()
            .rposition(|e| e.id < event.id)
            .map_or(0, |i| i + 1);
        let event = Arc::new(Published {
            late: at < channel.recent.len(),
            ..Published::new(topic, event)
        });
        channel.recent.insert(at, event.clone());
        while channel.recent.len() > self.inner.history {
            if let Some(dropped) = channel.recent.pop_front() {
                channel.floor = dropped.id;
            }
        }
        channel.touched = Instant::now();
        channel.send(&event);
    }

    /// The last id handed out: a state read after this call reflects every event up to it.
    pub fn last_id(&self) -> u64 {
        self.inner.last_id.load(Ordering::SeqCst)
    }

    /// Publishes a change of `topic` with a new id; returns the id.
    pub fn publish(
        &self,
        topic: &Topic,
        kind: EventKind,
        data: Value,
        state: Option<Value>,
    ) -> u64 {
        let mut topics = self.lock();
        // The channel first, so its history covers this event; the id is taken under the lock,
        // so per resource ids are published in order.
        self.channel(&mut topics, topic);
        let id = self.next_id();
        self.push(
            &mut topics,
            topic,
            BusEvent {
                id,
                kind,
                data,
                state,
            },
        );
        id
    }

    /// Publishes a change of `topic` whose data and state `make` builds, only if someone watches
    /// it or did so within [`RESUME_WINDOW`]; otherwise the change only takes an id and moves
    /// the resource's history floor past it, so a resume from before it starts from the full
    /// state instead of missing it. Returns the id.
    pub fn publish_lazy(
        &self,
        topic: &Topic,
        kind: EventKind,
        make: impl FnOnce() -> (Value, Option<Value>),
    ) -> u64 {
        if self.clustered() {
            // Another relay may watch it: always built, as a plain publish.
            let (data, state) = make();
            return self.publish(topic, kind, data, state);
        }
        let mut topics = self.lock();
        let Some(channel) = topics.get_mut(topic) else {
            // No channel: nobody watches, and one made later starts at the last id (this one).
            return self.next_id();
        };
        if !channel.wanted() {
            let id = self.next_id();
            channel.recent.clear();
            channel.floor = id;
            channel.changed();
            return id;
        }
        let (data, state) = make();
        let id = self.next_id();
        self.push(
            &mut topics,
            topic,
            BusEvent {
                id,
                kind,
                data,
                state,
            },
        );
        id
    }

    /// Publishes an event whose id was taken earlier with [`Bus::next_id`].
    pub fn publish_with_id(&self, topic: &Topic, event: BusEvent) {
        let mut topics = self.lock();
        self.push(&mut topics, topic, event);
    }

    fn push(&self, topics: &mut HashMap<Topic, Channel>, topic: &Topic, event: BusEvent) {
        let channel = self.channel(topics, topic);
        channel.changed();
        let event = Arc::new(Published::new(topic, event));
        channel.recent.push_back(event.clone());
        while channel.recent.len() > self.inner.history {
            if let Some(dropped) = channel.recent.pop_front() {
                channel.floor = dropped.id;
            }
        }
        channel.touched = Instant::now();
        if let Some(outbound) = self.inner.outbound.get() {
            // Under the lock: the other relays get one resource's events in id order.
            outbound.send(topic, &event);
        }
        // No receivers is fine: the event is in the history for the next subscriber.
        channel.send(&event);
    }

    /// Subscribes to `topic`; with `since`, also returns the events after that id if the
    /// history still holds them all.
    pub fn subscribe(&self, topic: &Topic, since: Option<u64>) -> Subscription {
        let mut topics = self.lock();
        let channel = self.channel(&mut topics, topic);
        channel.touched = Instant::now();
        channel.watched = Some(channel.touched);
        let receiver = channel.receiver(self.inner.capacity);
        let missed = since.and_then(|since| {
            // Events before the floor are unknown here (an earlier process, a sweep, or dropped
            // from the history): the subscriber must start again from the full state.
            (since >= channel.floor).then(|| {
                channel
                    .recent
                    .iter()
                    .filter(|e| e.id > since)
                    .cloned()
                    .collect()
            })
        });
        Subscription { receiver, missed }
    }

    /// The channel of `topic`, made on first use with its floor at the last id handed out.
    fn channel<'t>(
        &self,
        topics: &'t mut HashMap<Topic, Channel>,
        topic: &Topic,
    ) -> &'t mut Channel {
        let floor = self.last_id();
        topics
            .entry(topic.clone())
            .or_insert_with(|| Channel::new(floor))
    }

    /// The state of `topic` kept by [`Bus::keep_state`], if no event came since, and the count
    /// of the resource's events to hand to `keep_state` with a state read from now on.
    pub fn kept_state(&self, topic: &Topic) -> (u64, Option<Arc<Outgoing>>) {
        self.lock()
            .get(topic)
            .map_or((0, None), |c| (c.changes, c.state.clone()))
    }

    /// Keeps `state` (a `state` event read after [`Bus::kept_state`] gave `changes`) for the
    /// next watchers of `topic`, unless an event came in between; the next event drops it.
    /// (A resource without a channel, nobody subscribed, keeps nothing.)
    pub fn keep_state(&self, topic: &Topic, changes: u64, state: Arc<Outgoing>) {
        if let Some(channel) = self.lock().get_mut(topic) {
            if channel.changes == changes {
                channel.state = Some(state);
            }
        }
    }

    /// Whether anyone is watching `topic` now.
    pub fn is_watched(&self, topic: &Topic) -> bool {
        self.lock().get(topic).is_some_and(|c| c.receivers() > 0)
    }

    /// Forgets resources nobody watches that have been quiet for `idle`, so memory does not grow
    /// with every resource ever touched. A later resume on them starts from the full state.
    /// Also drops the broadcast channels their subscribers have all left (a resource once
    /// watched by thousands keeps one channel per 256 of those still there).
    pub fn sweep(&self, idle: Duration) {
        self.lock().retain(|_, c| {
            c.tx.retain(|tx| tx.receiver_count() > 0);
            !c.tx.is_empty() || c.touched.elapsed() < idle
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Topic, Channel>> {
        // A panic while holding this lock cannot leave the map half-changed: recover it.
        self.inner.topics.lock().unwrap_or_else(|p| p.into_inner())
    }
}
