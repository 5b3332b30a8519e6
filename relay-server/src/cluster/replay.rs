//! The cluster's events kept for a while by NATS JetStream, so a relay cut from the NATS server
//! (a network blip, NATS restarting) gets the events made meanwhile once it is back.
//!
//! Events are published as before (core NATS, on `restsip.{cluster}.ev.…`); a stream per cluster
//! (`RESTSIP_{cluster}`, created by whichever relay starts first) captures them for
//! [`RESUME_WINDOW`]. Each relay reads it through an ordered push consumer that starts after the
//! last event stored when the relay attached; after a disconnect the consumer is recreated from
//! the last stream sequence it handed over. This relay also remembers the last sequence it
//! handled, so a replay of what it already had (the consumer recreated from the start, two
//! consumers briefly delivering to one subject) is skipped, and a gap is read again once.

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{
    self,
    consumer::{push, DeliverPolicy},
    stream::{DiscardPolicy, StorageType},
};
use futures_util::StreamExt;

use crate::bus::RESUME_WINDOW;

/// Most bytes a cluster's stream keeps (its oldest events are dropped past it).
const MAX_BYTES: i64 = 64 << 20;
/// How long to wait before a consumer that failed is made again.
const RETRY: Duration = Duration::from_secs(2);

/// The stream's name for cluster `name` (whose subject prefix is `prefix`): `RESTSIP_` and
/// the prefix's escaped cluster token, which holds no `.`, `*`, `>`, space or slash.
pub(super) fn stream_name(prefix: &str) -> String {
    let token = prefix.strip_prefix("restsip.").unwrap_or(prefix);
    format!("RESTSIP_{token}")
}

/// This relay's reading of the cluster's stream.
pub(super) struct Replay {
    /// The connection.
    client: async_nats::Client,
    /// Its JetStream API.
    context: jetstream::Context,
    /// The stream's name.
    name: String,
    /// The events' subjects.
    subjects: String,
    /// When the stream read was created (ns since 1970): another time means it was made again
    /// (deleted, or lost by a NATS server that keeps no files) and its sequences start anew.
    created: i128,
    /// The last stream sequence handed over (or stored before this relay attached).
    handled: u64,
    /// The consumer being read; `None` once it failed (made again from `handled`).
    messages: Option<push::Ordered>,
    /// Whether the consumer was already made again for the current gap.
    regapped: bool,
}

impl Replay {
    /// Creates the cluster's stream unless it exists, and a consumer of what comes after the
    /// events stored so far.
    pub(super) async fn start(client: &async_nats::Client, prefix: &str) -> anyhow::Result<Self> {
        let mut replay = Self {
            client: client.clone(),
            context: jetstream::new(client.clone()),
            name: stream_name(prefix),
            subjects: format!("{prefix}.ev.>"),
            created: 0,
            handled: 0,
            messages: None,
            regapped: false,
        };
        let info = replay.stream().await?.cached_info().clone();
        (replay.created, replay.handled) = (
            info.created.unix_timestamp_nanos(),
            info.state.last_sequence,
        );
        replay.messages = Some(
            replay
                .consume()
                .await
                .context("cluster: cannot consume the cluster's JetStream stream")?,
        );
        Ok(replay)
    }

    /// The cluster's stream, created unless it exists (`&mut`: a `Replay` is not `Sync`).
    async fn stream(&mut self) -> anyhow::Result<jetstream::stream::Stream> {
        self.context
            .get_or_create_stream(jetstream::stream::Config {
                name: self.name.clone(),
                subjects: vec![self.subjects.clone()],
                max_age: RESUME_WINDOW,
                max_bytes: MAX_BYTES,
                discard: DiscardPolicy::Old,
                storage: StorageType::File,
                ..Default::default()
            })
            .await
            .context("cluster: cannot create the cluster's JetStream stream (is JetStream enabled on the NATS server?)")
    }

    /// A consumer of the events after the last one handled (`&mut`: a `Replay` is not `Sync`).
    async fn consume(&mut self) -> anyhow::Result<push::Ordered> {
        let stream = self.stream().await?;
        let info = stream.cached_info();
        let created = info.created.unix_timestamp_nanos();
        if created != self.created {
            tracing::warn!(
                stream = %self.name,
                "cluster: the cluster's stream was made again; events made before are lost to this relay"
            );
            self.created = created;
            self.handled = info.state.first_sequence.saturating_sub(1);
        }
        let consumer = stream
            .create_consumer(push::OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                filter_subject: self.subjects.clone(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: self.handled + 1,
                },
                ..Default::default()
            })
            .await?;
        Ok(consumer.messages().await?)
    }

    /// The next event of another relay or this one, in the stream's order, each once; waits
    /// (and makes the consumer again) as long as NATS is away.
    pub(super) async fn next(&mut self) -> async_nats::Message {
        loop {
            let Some(messages) = self.messages.as_mut() else {
                match self.consume().await {
                    Ok(messages) => self.messages = Some(messages),
                    Err(e) => {
                        tracing::warn!(error = %format_args!("{e:#}"), "cluster: events not consumed; retrying");
                        tokio::time::sleep(RETRY).await;
                    }
                }
                continue;
            };
            let message = match messages.next().await {
                Some(Ok(message)) => message,
                // Silent past two heartbeats: NATS away, or the stream or consumer gone (which
                // the consumer does not recover from alone).
                Some(Err(e)) if e.kind() == push::OrderedErrorKind::MissingHeartbeat => {
                    tracing::debug!(
                        "cluster: no heartbeat from the event consumer; making it again"
                    );
                    self.messages = None;
                    continue;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "cluster: event consumer failed; making it again");
                    self.messages = None;
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
                None => {
                    self.messages = None;
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            let Ok(sequence) = message.info().map(|info| info.stream_sequence) else {
                continue;
            };
            if sequence <= self.handled {
                continue;
            }
            if sequence > self.handled + 1 {
                // Read again once from the last handled; a gap that stays is events the stream
                // no longer keeps (older than its window or past its size).
                if !self.regapped {
                    self.regapped = true;
                    self.messages = None;
                    continue;
                }
                tracing::warn!(
                    lost = sequence - self.handled - 1,
                    "cluster: events made while this relay was away are no longer kept"
                );
            }
            self.regapped = false;
            self.handled = sequence;
            return message.message;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_name_holds_no_separator_or_wildcard() {
        for name in ["prod", "a.b", "*", ">", "x y/z\\w", ""] {
            let stream = stream_name(&super::super::wire::prefix(name));
            assert!(stream.starts_with("RESTSIP_"), "{stream}");
            assert!(
                !stream.contains(['.', '*', '>', ' ', '/', '\\']),
                "{name:?} → {stream}"
            );
        }
    }
}
