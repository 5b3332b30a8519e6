//! Sizes, counts and lifetimes the relay enforces: below the domain, which reads them, and
//! filled in by the configuration.

/// Sizes, counts and lifetimes the relay enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Most HTTP connections at once.
    pub max_connections: usize,
    /// Most HTTP connections at once from one IP address.
    pub max_connections_per_ip: usize,
    /// Time a connection has to send a request's header block (s).
    pub header_timeout: u64,
    /// Most streams per user.
    pub max_streams_per_user: usize,
    /// Most undelivered SENDs waiting for one contact.
    pub max_queued_per_contact: usize,
    /// Default login lifetime (s).
    pub default_expires: u32,
    /// Shortest login lifetime (s).
    pub min_expires: u32,
    /// Longest login lifetime (s).
    pub max_expires: u32,
    /// Bearer token lifetime (s).
    pub token_ttl: u64,
    /// Keep-alive interval on streams (s).
    pub keepalive: u64,
    /// Most webhooks per user.
    pub max_webhooks_per_user: usize,
    /// Most unacknowledged events stored per webhook.
    pub max_webhook_queue: usize,
    /// Time a webhook target has to answer (s).
    pub webhook_timeout: u64,
    /// Longest wait between delivery attempts (s).
    pub webhook_max_backoff: u64,
    /// Age of a failing event after which its webhook is marked failing (s).
    pub webhook_max_age: u64,
    /// Most undelivered SENDs one sender may hold for one contact.
    pub max_queued_per_sender: usize,
    /// Most offline messages in one mailbox.
    pub max_mailbox_messages: usize,
    /// Most bytes of offline messages in one mailbox.
    pub max_mailbox_bytes: usize,
    /// Most offline messages from one sender in one mailbox.
    pub max_mailbox_per_sender: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_connections: 10_000,
            max_connections_per_ip: 1000,
            header_timeout: 10,
            max_streams_per_user: 32,
            max_queued_per_contact: 1000,
            default_expires: 3600,
            min_expires: 30,
            max_expires: 86_400,
            token_ttl: 600,
            keepalive: 15,
            max_webhooks_per_user: 32,
            max_webhook_queue: 1000,
            webhook_timeout: 10,
            webhook_max_backoff: 300,
            webhook_max_age: 86_400,
            max_queued_per_sender: 100,
            max_mailbox_messages: 1000,
            max_mailbox_bytes: 10 * 1024 * 1024,
            max_mailbox_per_sender: 50,
        }
    }
}
