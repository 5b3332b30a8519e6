//! The relay's limits ([`Limits`]): sizes, counts and lifetimes, from the flags over the file
//! over their defaults, checked.

use super::Settings;
use crate::limits::Limits;

/// The limits `cli` sets over those of its `file` over the defaults, checked.
pub(super) fn resolve_limits(cli: &Settings, file: &Settings) -> anyhow::Result<Limits> {
    let d = Limits::default();
    let limits = Limits {
        max_body_bytes: cli
            .max_body_bytes
            .or(file.max_body_bytes)
            .unwrap_or(d.max_body_bytes),
        max_connections: cli
            .max_connections
            .or(file.max_connections)
            .unwrap_or(d.max_connections),
        max_connections_per_ip: cli
            .max_connections_per_ip
            .or(file.max_connections_per_ip)
            .unwrap_or(d.max_connections_per_ip),
        header_timeout: cli
            .header_timeout
            .or(file.header_timeout)
            .unwrap_or(d.header_timeout),
        max_streams_per_user: cli
            .max_streams_per_user
            .or(file.max_streams_per_user)
            .unwrap_or(d.max_streams_per_user),
        max_queued_per_contact: cli
            .max_queued_per_contact
            .or(file.max_queued_per_contact)
            .unwrap_or(d.max_queued_per_contact),
        default_expires: cli
            .default_expires
            .or(file.default_expires)
            .unwrap_or(d.default_expires),
        min_expires: cli
            .min_expires
            .or(file.min_expires)
            .unwrap_or(d.min_expires),
        max_expires: cli
            .max_expires
            .or(file.max_expires)
            .unwrap_or(d.max_expires),
        token_ttl: cli.token_ttl.or(file.token_ttl).unwrap_or(d.token_ttl),
        keepalive: cli.keepalive.or(file.keepalive).unwrap_or(d.keepalive),
        max_webhooks_per_user: cli
            .max_webhooks_per_user
            .or(file.max_webhooks_per_user)
            .unwrap_or(d.max_webhooks_per_user),
        max_webhook_queue: cli
            .max_webhook_queue
            .or(file.max_webhook_queue)
            .unwrap_or(d.max_webhook_queue),
        webhook_timeout: cli
            .webhook_timeout
            .or(file.webhook_timeout)
            .unwrap_or(d.webhook_timeout),
        webhook_max_backoff: cli
            .webhook_max_backoff
            .or(file.webhook_max_backoff)
            .unwrap_or(d.webhook_max_backoff),
        webhook_max_age: cli
            .webhook_max_age
            .or(file.webhook_max_age)
            .unwrap_or(d.webhook_max_age),
        max_queued_per_sender: cli
            .max_queued_per_sender
            .or(file.max_queued_per_sender)
            .unwrap_or(d.max_queued_per_sender),
        max_mailbox_messages: cli
            .max_mailbox_messages
            .or(file.max_mailbox_messages)
            .unwrap_or(d.max_mailbox_messages),
        max_mailbox_bytes: cli
            .max_mailbox_bytes
            .or(file.max_mailbox_bytes)
            .unwrap_or(d.max_mailbox_bytes),
        max_mailbox_per_sender: cli
            .max_mailbox_per_sender
            .or(file.max_mailbox_per_sender)
            .unwrap_or(d.max_mailbox_per_sender),
    };
    super::floods::check_caps(&limits)?;
    anyhow::ensure!(
        limits.min_expires >= 1,
        "min-expires must be at least 1 second"
    );
    anyhow::ensure!(
        limits.min_expires <= limits.default_expires
            && limits.default_expires <= limits.max_expires,
        "expiry settings must satisfy min-expires <= default-expires <= max-expires"
    );
    anyhow::ensure!(
        limits.max_body_bytes >= 1024,
        "max-body-bytes must be at least 1024"
    );
    anyhow::ensure!(
        limits.max_connections >= 1,
        "max-connections must be at least 1"
    );
    anyhow::ensure!(
        limits.max_connections_per_ip >= 1,
        "max-connections-per-ip must be at least 1"
    );
    anyhow::ensure!(
        (1..=3600).contains(&limits.header_timeout),
        "header-timeout must be from 1 to 3600 seconds"
    );
    anyhow::ensure!(limits.keepalive >= 1, "keepalive must be at least 1 second");
    anyhow::ensure!(
        limits.max_webhook_queue >= 1,
        "max-webhook-queue must be at least 1"
    );
    anyhow::ensure!(
        limits.webhook_timeout >= 1 && limits.webhook_max_backoff >= 1,
        "webhook-timeout and webhook-max-backoff must be at least 1 second"
    );
    Ok(limits)
}
