//! One delivery: the stored event POSTed to the target, signed, within the timeout. Any 2xx
//! acknowledges it; anything else is a failure to retry after a jittered backoff.

use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::Rng;
use restsip_protocol::{
    WEBHOOK_EVENT_ID_HEADER, WEBHOOK_ID_HEADER, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER,
};
use sha2::Sha256;

use crate::egress::{self, Egress};
use crate::limits::Limits;
use crate::store::{WebhookEventRecord, WebhookRecord};

/// The outgoing HTTP client: HTTP/1.1 and HTTP/2, HTTPS with rustls and Mozilla's roots, the
/// configured timeout, every connection through the egress guard, and no redirects (a 3xx is
/// not an acknowledgement).
pub(super) fn client(limits: &Limits, egress: Egress) -> reqwest::Result<reqwest::Client> {
    let timeout = Duration::from_secs(limits.webhook_timeout);
    egress::http::client_builder(egress)
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("restsip-relay/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// `X-Restsip-Signature` without its `sha256=` prefix: the hex HMAC-SHA256, keyed with the
/// webhook's secret (its UTF-8 bytes), of the timestamp, a `.` and the body.
pub fn signature(secret: &str, timestamp: u64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `backoff` with jitter: somewhere from half of it to all of it, so many webhooks failing at
/// once do not retry in step.
pub(super) fn jittered(backoff: Duration) -> Duration {
    let half = backoff / 2;
    let spread = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(rand::thread_rng().gen_range(0..=spread))
}

/// The target is not allowed (see [`crate::egress`]).
const REFUSED: &str = "target not allowed";
/// No connection could be made: refused, unreachable, filtered, or the name did not resolve.
const NO_CONNECTION: &str = "could not connect";
/// The target did not answer within the timeout.
const TIMED_OUT: &str = "timed out";
/// The target answered, but not with a 2xx.
const ERROR_ANSWER: &str = "answered with an error";

/// What went wrong, in words for the webhook's `last_error`: coarse on purpose, with no
/// address, port, status or system message, so that webhooks cannot be used to map the network
/// behind the relay (a target that refuses connections looks like one that drops them).
fn describe(err: &reqwest::Error) -> String {
    let what = if egress::http::is_refusal(err) {
        REFUSED
    } else if err.is_timeout() && !err.is_connect() {
        TIMED_OUT
    } else if err.is_connect() || err.is_timeout() {
        NO_CONNECTION
    } else {
        ERROR_ANSWER
    };
    what.to_owned()
}

/// POSTs `event` to the webhook's target; Ok on a 2xx answer, else why not (counted). A
/// target with credentials or at a forbidden address (stored before the guard, or before the
/// relay lost `--allow-private-targets`) is never contacted.
pub(super) async fn post(
    http: &reqwest::Client,
    egress: &Egress,
    hook: &WebhookRecord,
    event: &WebhookEventRecord,
) -> Result<(), String> {
    let result = attempt(http, egress, hook, event).await;
    crate::observe::webhook_delivery(result.is_ok());
    result
}

/// One POST of `event` to the webhook's target.
async fn attempt(
    http: &reqwest::Client,
    egress: &Egress,
    hook: &WebhookRecord,
    event: &WebhookEventRecord,
) -> Result<(), String> {
    let url = reqwest::Url::parse(&hook.target).map_err(|_| REFUSED.to_owned())?;
    egress::http::check_literal(egress, &url).map_err(|_| REFUSED.to_owned())?;
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let signed = signature(&hook.secret, timestamp, &event.body);
    let response = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(WEBHOOK_ID_HEADER, &hook.id)
        .header(WEBHOOK_EVENT_ID_HEADER, event.event_id.to_string())
        .header(WEBHOOK_TIMESTAMP_HEADER, timestamp.to_string())
        .header(WEBHOOK_SIGNATURE_HEADER, format!("sha256={signed}"))
        .body(event.body.clone())
        .send()
        .await
        .map_err(|e| {
            // The operator's log has the details; the webhook's owner gets the coarse words.
            tracing::debug!(webhook = %hook.id, error = %e, "webhook delivery failed");
            describe(&e)
        })?;
    let status = response.status();
    // The body is not read: the status says it all, and a big body must not hold the sender.
    drop(response);
    if status.is_success() {
        Ok(())
    } else {
        Err(ERROR_ANSWER.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: Python's hmac.new(b"key", b'1700000000.{"id":1}', sha256).
        assert_eq!(
            signature("key", 1_700_000_000, "{\"id\":1}"),
            "1d542af0cd7355fefa5c19021ad89d3e2afd77ebff5448db280f180e013d2651"
        );
        assert_ne!(
            signature("key", 1_700_000_001, "{\"id\":1}"),
            signature("key", 1_700_000_000, "{\"id\":1}")
        );
    }

    #[test]
    fn jitter_stays_within_half_and_all_of_the_backoff() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(8));
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(8),
                "{d:?}"
            );
        }
        assert_eq!(jittered(Duration::ZERO), Duration::ZERO);
    }
}
