//! The relay's metrics, by name, and the one-line helpers the domain and the API count with,
//! through the `metrics` facade (a leaf: the recorder and `/metrics` are in `operations`).
//! Labels are bounded: route templates, not paths; a fixed set of outcomes.
//!
//! The counts made on every SEND keep their handles after the first lookup (a lookup hashes
//! the name and labels into the recorder's map: about 1.4% of the relay's CPU in the SEND
//! scenario). A handle taken before the recorder is installed would count nowhere, so the
//! relay installs it first thing ([`crate::start`]).

use std::sync::OnceLock;
use std::time::Duration;

/// HTTP requests answered, by `method`, `route` (the matched template) and `status`.
pub const HTTP_REQUESTS: &str = "restsip_http_requests_total";
/// Time to the response head, by `method` and `route` (a histogram, seconds).
pub const HTTP_DURATION: &str = "restsip_http_request_duration_seconds";
/// SSE and NDJSON streams open.
pub const STREAMS_OPEN: &str = "restsip_streams_open";
/// Multiplexed WebSockets (`/ws`) open.
pub const WEBSOCKETS_OPEN: &str = "restsip_websockets_open";
/// SENDs stored for contacts (one per target contact).
pub const SENDS_QUEUED: &str = "restsip_sends_queued_total";
/// SENDs handed over to a contact (a stream, a WebSocket, a phone's 2xx).
pub const SENDS_DELIVERED: &str = "restsip_sends_delivered_total";
/// SENDs withdrawn by CANCEL before delivery.
pub const SENDS_CANCELLED: &str = "restsip_sends_cancelled_total";
/// Logins alive, by `source` (`web` or `sip`: SIP registrations), sampled when scraped.
pub const LOGINS_ACTIVE: &str = "restsip_logins_active";
/// Call contexts with at least one participant, sampled when scraped.
pub const CALLS_ACTIVE: &str = "restsip_calls_active";
/// rtpengine sessions the relay holds open.
pub const MEDIA_SESSIONS_ACTIVE: &str = "restsip_media_sessions_active";
/// Webhook POSTs, by `result` (`delivered` or `failed`: an error, a timeout or a non-2xx).
pub const WEBHOOK_DELIVERIES: &str = "restsip_webhook_deliveries_total";
/// Store commits, by `kind`, (a histogram, seconds).
pub const STORE_COMMIT: &str = "restsip_store_commit_seconds";
/// 1 on the relay that leads its cluster (runs the webhooks and expiry sweeps), 0 on the
/// others; absent on a relay alone.
pub const CLUSTER_LEADER: &str = "restsip_cluster_leader";

/// A gauge raised while this lives (an open stream, an open WebSocket).
pub struct Open(metrics::Gauge);

impl std::fmt::Debug for Open {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Open")
    }
}

impl Open {
    /// Counts one more of `gauge` until dropped.
    pub fn new(gauge: &'static str) -> Self {
        let gauge = metrics::gauge!(gauge);
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// `n` SENDs stored, handed over or withdrawn (`metric`: one of the `SENDS_*` names).
pub fn sends(metric: &'static str, n: usize) {
    if n == 0 {
        return;
    }
    static HANDLES: [OnceLock<metrics::Counter>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = match metric {
        SENDS_QUEUED => &HANDLES[0],
        SENDS_DELIVERED => &HANDLES[1],
        SENDS_CANCELLED => &HANDLES[2],
        other => return metrics::counter!(other).increment(n as u64),
    };
    slot.get_or_init(|| metrics::counter!(metric))
        .increment(n as u64);
}

/// One webhook POST and whether it was taken.
pub fn webhook_delivery(delivered: bool) {
    let result = if delivered { "delivered" } else { "failed" };
    metrics::counter!(WEBHOOK_DELIVERIES, "result" => result).increment(1);
}

/// A store commit of `kind` took `took`.
pub fn store_commit(kind: &'static str, took: Duration) {
    static HANDLES: [OnceLock<metrics::Histogram>; 2] = [OnceLock::new(), OnceLock::new()];
    let slot = match kind {
        "sends" => &HANDLES[0],
        "contacts" => &HANDLES[1],
        other => {
            return metrics::histogram!(STORE_COMMIT, "kind" => other).record(took.as_secs_f64())
        }
    };
    slot.get_or_init(|| metrics::histogram!(STORE_COMMIT, "kind" => kind))
        .record(took.as_secs_f64());
}

/// `n` rtpengine sessions are open.
pub fn media_sessions(n: usize) {
    metrics::gauge!(MEDIA_SESSIONS_ACTIVE).set(n as f64);
}
