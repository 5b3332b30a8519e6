//! Several relays sharing one store (`--cluster nats://…`, `--node NAME`): each relay sends its
//! events to the others through NATS and applies theirs to its own bus, so a watcher, a stream
//! or a WebSocket on any relay sees a change made on any other, once; and, through leases in the
//! shared store, one relay at a time (the leader) runs the cluster's webhooks and expiry sweeps.
//!
//! Each relay holds an id slot (a lease `slot/N`, N below [`STRIDE`]) and takes only event ids
//! that are N modulo [`STRIDE`] (see [`crate::bus::IdSpace`]): ids never collide across relays.

mod forward;
mod replay;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

use crate::bus::{Bus, BusEvent, IdSpace, Outbound, Topic};
use crate::clock::now_ms;
use crate::config::ClusterConfig;
use crate::inbox::SendHook;
use crate::members::Members;
use crate::store::Store;
use crate::webhooks::Webhooks;

/// How many relays a cluster can have (distinct id slots).
pub const STRIDE: u64 = 64;
/// How long a relay's id slot stays its own without renewal: long, as a slot taken over
/// while its old holder still runs would let ids collide.
const SLOT_TTL: Duration = Duration::from_secs(60);
/// How long leadership lasts without renewal: how soon another relay takes over the
/// webhooks and sweeps after the leader stops.
const LEADER_TTL: Duration = Duration::from_secs(3);
/// How much sooner than its lease a leader stops acting as one: room for the relays' clocks
/// to disagree (the store's lease times are each relay's wall clock).
const CLOCK_MARGIN: Duration = Duration::from_secs(1);
/// How often leases are renewed (and the leader's webhooks matched to the store).
const RENEW: Duration = Duration::from_secs(1);
/// How long a relay's id slot goes without renewal before the others take it for gone.
const GONE_AFTER: Duration = Duration::from_secs(4);
/// How long the NATS server has to answer at startup.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The lease of the cluster's leader.
const LEADER: &str = "leader";
/// Events waiting to be sent to NATS; past that (NATS gone or far too slow) new ones are
/// dropped for the other relays (logged), rather than held in memory without bound.
const OUTGOING: usize = 65_536;

/// Told of each event from another relay before the bus applies it: what this relay keeps in
/// memory that the event makes stale (a user's contacts, for `/login/{email}`) is dropped
/// first, so the watchers the event wakes (a stream, a presence subscription) and every later
/// read get the store's truth.
pub type Applied = Arc<dyn Fn(&Topic) + Send + Sync>;
/// How long a change waits for its events to leave for NATS before it is acknowledged anyway
/// (NATS gone or far too slow: logged).
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// Most events sent while a change waits, before the flush that lets it be answered.
const FLUSH_BATCH: usize = 1024;

/// What the sending task takes, in order.
#[derive(Debug)]
enum Outgoing {
    /// An event: its subject and payload.
    Event(String, Vec<u8>),
    /// Tell this once NATS has taken everything queued before it.
    Flushed(oneshot::Sender<()>),
}

/// This relay's membership of a cluster.
pub struct Cluster {
    /// The settings.
    config: ClusterConfig,
    /// The shared store, holding the leases.
    store: Arc<dyn Store>,
    /// The NATS connection.
    client: async_nats::Client,
    /// The id slot this relay holds.
    slot: u64,
    /// The subject prefix of this cluster.
    prefix: String,
    /// Which relay holds the calls from phones other relays told of.
    holders: Arc<forward::Holders>,
}

/// Milliseconds of a duration, for lease times.
fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Cluster {
    /// Connects to NATS and takes a free id slot in the store.
    pub async fn join(config: &ClusterConfig, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .name(format!("restsip-{}", config.node))
            .connection_timeout(CONNECT_TIMEOUT)
            .connect(config.url.as_str())
            .await
            .with_context(|| format!("cluster: cannot connect to {}", config.url))?;
        let mut slot = None;
        for n in 0..STRIDE {
            let now = now_ms();
            if store
                .take_lease(&format!("slot/{n}"), &config.node, now, now + ms(SLOT_TTL))
                .await
                .context("cluster: the store cannot hold leases")?
            {
                slot = Some(n);
                break;
            }
        }
        let slot = slot.with_context(|| {
            format!("cluster: all {STRIDE} id slots are held by running relays")
        })?;
        tracing::info!(node = %config.node, cluster = %config.name, slot, "joined the cluster");
        Ok(Self {
            config: config.clone(),
            store,
            client,
            slot,
            prefix: wire::prefix(&config.name),
            holders: Arc::default(),
        })
    }

    /// The ids this relay takes.
    pub fn ids(&self) -> IdSpace {
        IdSpace {
            slot: self.slot,
            stride: STRIDE,
        }
    }

    /// Connects `bus` to the other relays: its local events are sent, theirs applied to it
    /// (this relay's own echo skipped), each told to `applied` first. Theirs are read from the
    /// cluster's JetStream stream (see `replay.rs`) from the last event stored before it returns,
    /// so nothing sent after is missed, even while this relay is cut from NATS.
    pub async fn attach(
        &self,
        bus: &Bus,
        applied: Applied,
    ) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
        let mut incoming = replay::Replay::start(&self.client, &self.prefix).await?;
        // Where this relay's barriers come back (see `confirm`).
        let barrier = self.client.new_inbox();
        let mut echoes = self
            .client
            .subscribe(barrier.clone())
            .await
            .context("cluster: cannot subscribe")?;
        let (tx, mut rx) = mpsc::channel::<Outgoing>(OUTGOING);
        bus.attach(Arc::new(Sender {
            node: self.config.node.clone(),
            prefix: self.prefix.clone(),
            queue: tx,
        }));
        let client = self.client.clone();
        // One task sends, in the order the bus queued: one resource's events stay in order.
        // What waits to be flushed is told once NATS confirms everything queued before it.
        let sending = tokio::spawn(async move {
            let mut waiting = Vec::new();
            let mut token = 0u64;
            while let Some(first) = rx.recv().await {
                let mut next = Some(first);
                let mut sent = 0;
                while let Some(item) = next.take() {
                    match item {
                        Outgoing::Event(subject, payload) => {
                            if let Err(e) = client.publish(subject, payload.into()).await {
                                tracing::warn!(error = %e, "cluster: an event could not be sent");
                            }
                            sent += 1;
                        }
                        Outgoing::Flushed(tell) => waiting.push(tell),
                    }
                    // Under a steady stream of events, those waiting are told every so often.
                    if waiting.is_empty() || sent < FLUSH_BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                if !waiting.is_empty() {
                    token += 1;
                    if !confirm(&client, &barrier, &mut echoes, token).await {
                        tracing::warn!("cluster: NATS did not confirm this relay's events");
                    }
                    for tell in waiting.drain(..) {
                        let _ = tell.send(());
                    }
                }
            }
        });
        let (bus, node) = (bus.clone(), self.config.node.clone());
        let (holders, client) = (self.holders.clone(), self.client.clone());
        let prefix = self.prefix.clone();
        let receiving = tokio::spawn(async move {
            loop {
                let message = incoming.next().await;
                match wire::decode(&message.payload) {
                    Ok((from, _, _)) if from == node => {}
                    Ok((from, topic, event)) => {
                        let invite = holders.saw(&from, &topic, &event);
                        applied(&topic);
                        bus.apply_remote(&topic, event);
                        // A stream here takes the invite: the caller at its holder rings.
                        if let Some(call) = invite.filter(|_| bus.is_watched(&topic)) {
                            forward::ringing(&client, &prefix, &from, call);
                        }
                    }
                    Err(why) => {
                        tracing::warn!(subject = %message.subject, %why, "cluster: message dropped")
                    }
                }
            }
        });
        Ok(vec![sending, receiving])
    }

    /// This relay's call gateway `local` joined to the other relays' (see `forward.rs`): the
    /// hook for the inbox, which passes the SENDs `local` does not take to the relay holding
    /// their call, and the task that hands `local` the SENDs other relays pass here.
    pub async fn forward(
        &self,
        local: Arc<dyn SendHook>,
    ) -> anyhow::Result<(Arc<dyn SendHook>, tokio::task::JoinHandle<()>)> {
        let subjects = (
            wire::sends_to(&self.prefix, &self.config.node),
            wire::rings_to(&self.prefix, &self.config.node),
        );
        let task = forward::serve(self.client.clone(), subjects, local.clone()).await?;
        let hook = forward::Forwarding {
            local,
            holders: self.holders.clone(),
            client: self.client.clone(),
            prefix: self.prefix.clone(),
            node: self.config.node.clone(),
        };
        Ok((Arc::new(hook), task))
    }

    /// Renews this relay's leases every [`RENEW`]: its id slot, and leadership when free —
    /// the leader runs the webhooks and the expiry sweeps (`webhooks`'
    /// [`crate::leadership::Leadership`], which lapses on this relay's own clock when a renewal
    /// does not come in time); and tells `members` which relays are gone (their id slots not
    /// renewed).
    pub fn lead(&self, webhooks: Webhooks, members: Members) -> tokio::task::JoinHandle<()> {
        let (store, node) = (self.store.clone(), self.config.node.clone());
        let slot = format!("slot/{}", self.slot);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RENEW);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut led = false;
            loop {
                tick.tick().await;
                let now = now_ms();
                match store
                    .take_lease(&slot, &node, now, now + ms(SLOT_TTL))
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::error!(%slot, "cluster: another relay took this relay's id slot; event ids may collide: restart this relay")
                    }
                    Err(e) => tracing::warn!(error = %e, "cluster: id slot not renewed; retrying"),
                }
                // Leadership is counted from the moment it was asked for: the store's lease
                // runs from `now`, and another relay may take it once that has passed on its
                // clock.
                let asked = tokio::time::Instant::now();
                let leading = store
                    .take_lease(LEADER, &node, now_ms(), now_ms() + ms(LEADER_TTL))
                    .await
                    .unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "cluster: leadership not renewed; stepping down");
                        false
                    });
                if leading != led {
                    tracing::info!(leading, "cluster: leadership changed");
                    led = leading;
                }
                metrics::gauge!(crate::observe::CLUSTER_LEADER).set(if leading {
                    1.0
                } else {
                    0.0
                });
                // Which relays are gone: their id slots not renewed for a while.
                match store.leases("slot/").await {
                    Ok(leases) => {
                        for node in members.update(&leases, now, ms(SLOT_TTL), ms(GONE_AFTER)) {
                            tracing::warn!(%node, "cluster: a relay is gone (its id slot is not renewed)");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cluster: id slots not read"),
                }
                let until = leading.then(|| asked + LEADER_TTL.saturating_sub(CLOCK_MARGIN));
                if let Err(e) = webhooks.lead(until).await {
                    tracing::warn!(error = %e, "cluster: webhooks not matched to the store; retrying");
                }
            }
        })
    }
}

/// Whether the NATS server has taken (and routed to the other relays) every message this
/// relay's connection published so far: a message of our own to `barrier` comes back through
/// `echoes` (NATS keeps one connection's order), within [`FLUSH_WAIT`]. Written to the socket is
/// not enough: a relay killed right after may leave it unread (its socket reset).
async fn confirm(
    client: &async_nats::Client,
    barrier: &str,
    echoes: &mut async_nats::Subscriber,
    token: u64,
) -> bool {
    let token = token.to_string();
    if client
        .publish(barrier.to_owned(), token.clone().into())
        .await
        .is_err()
        || client.flush().await.is_err()
    {
        return false;
    }
    tokio::time::timeout(FLUSH_WAIT, async {
        while let Some(echo) = echoes.next().await {
            // An older barrier's echo, late after a timeout: skipped.
            if echo.payload.as_ref() == token.as_bytes() {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false)
}

/// The bus's [`Outbound`]: queues each event for the sending task.
#[derive(Debug)]
struct Sender {
    /// This relay, so that it skips its own echo.
    node: String,
    /// The subject prefix.
    prefix: String,
    /// To the sending task.
    queue: mpsc::Sender<Outgoing>,
}

impl Outbound for Sender {
    fn send(&self, topic: &Topic, event: &BusEvent) {
        match wire::encode(&self.node, topic, event) {
            Ok(payload) => {
                match self
                    .queue
                    .try_send(Outgoing::Event(wire::subject(&self.prefix, topic), payload))
                {
                    // Closed only when the relay stops.
                    Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => tracing::warn!(
                        resource = %topic.resource(),
                        "cluster: NATS is not keeping up; an event was not sent to the other relays"
                    ),
                }
            }
            Err(e) => tracing::warn!(error = %e, "cluster: event not encoded"),
        }
    }

    fn flushed(&self) -> futures_util::future::BoxFuture<'static, ()> {
        let queue = self.queue.clone();
        Box::pin(async move {
            let (tell, told) = oneshot::channel();
            let done = async {
                queue.send(Outgoing::Flushed(tell)).await.ok()?;
                told.await.ok()
            };
            if tokio::time::timeout(FLUSH_WAIT, done).await.is_err() {
                tracing::warn!(
                    "cluster: NATS did not take this relay's events in time; acknowledged anyway"
                );
            }
        })
    }
}
