//! Webhooks: a server application subscribes a URL to an active resource and receives the same
//! events a stream would, each POSTed as JSON, signed, in order, retried with backoff.
//!
//! Each webhook runs one task ([`runner`]) with two halves: a feeder, which runs the resource's
//! event source ([`crate::events`]) into a durable outbox in the store, and a sender, which
//! POSTs the outbox's oldest event until the target acknowledges it with a 2xx. Both the webhook
//! and every event are committed before they count as accepted, so a crash loses nothing: on
//! start every webhook re-subscribes from its last stored event id and its outbox is sent on.

mod deliver;
mod runner;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use restsip_protocol::{CreateWebhook, Webhook, WebhookStatus};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::clock::now_ms;
use crate::egress::{self, Egress, Refused};
use crate::error::{Error, Result};
use crate::events::{self, Resources};
use crate::leadership::Leadership;
use crate::limits::Limits;
use crate::store::{Store, StoreError, WebhookRecord};

pub use deliver::signature;

/// Longest target URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Cheap-clone handle to the webhook service.
#[derive(Clone)]
pub struct Webhooks {
    /// Shared state.
    inner: Arc<Inner>,
}

/// What the service and its runners share.
struct Inner {
    /// Webhooks and outboxes.
    store: Arc<dyn Store>,
    /// What event sources read.
    resources: Resources,
    /// Limits and delivery settings.
    limits: Arc<Limits>,
    /// The outgoing HTTP client (every connection through the egress guard), or why it could
    /// not be made.
    http: std::result::Result<reqwest::Client, String>,
    /// Where targets may be.
    egress: Egress,
    /// Running webhooks by id, with their owner.
    running: Mutex<HashMap<String, (String, AbortHandle)>>,
    /// Turns true when the relay shuts down.
    closing: watch::Receiver<bool>,
    /// Whether this relay runs the webhooks: always alone; in a cluster, only the leader, so
    /// each event is delivered once for the whole cluster (checked again before each POST).
    leadership: Leadership,
}

impl Inner {
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, AbortHandle)>> {
        // The map is never left half-changed: recover it after a panic elsewhere.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The API view of a webhook (without its secret).
pub fn webhook_view(w: &WebhookRecord) -> Webhook {
    Webhook {
        url: format!("/webhook/{}", w.id),
        id: w.id.clone(),
        target: w.target.clone(),
        resource: w.resource.clone(),
        updates: w.updates,
        owner: w.owner.clone(),
        created: w.created,
        status: if w.failing_since.is_some() {
            WebhookStatus::Failing
        } else {
            WebhookStatus::Active
        },
        queued: u64::try_from(w.queued).unwrap_or(u64::MAX),
        failing_since: w.failing_since,
        last_error: w.last_error.clone(),
    }
}

/// Checks a target URL: absolute, `http` or `https`, with a host, not too long, without
/// credentials, and somewhere the egress guard lets users' targets be.
pub async fn check_target(egress: &Egress, url: &str) -> Result<String> {
    let parsed = parse_target(url)?;
    egress::http::check_url(egress, &parsed)
        .await
        .map_err(|refused| {
            let why = match refused {
                Refused::Credentials => "url carries credentials (user:password@): they would be \
                                         sent to the target; sign requests with the webhook's \
                                         secret instead"
                    .to_owned(),
                other => format!("url: {other}"),
            };
            Error::ForbiddenTarget(why)
        })?;
    Ok(parsed.into())
}

/// Parses a target URL: absolute, `http` or `https`, with a host, not too long.
fn parse_target(url: &str) -> Result<reqwest::Url> {
    if url.len() > MAX_URL_LEN {
        return Err(Error::Invalid(format!(
            "url is longer than {MAX_URL_LEN} bytes"
        )));
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| Error::Invalid(format!("url {url:?} is not an absolute URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::Invalid(format!(
            "url {url:?} must be http:// or https://"
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(Error::Invalid(format!("url {url:?} has no host")));
    }
    Ok(parsed)
}

impl Webhooks {
    /// The service over `store`, reading resources through `resources`.
    pub fn new(
        store: Arc<dyn Store>,
        resources: Resources,
        limits: Arc<Limits>,
        closing: watch::Receiver<bool>,
        egress: Egress,
    ) -> Self {
        let http = deliver::client(&limits, egress).map_err(|e| {
            tracing::error!(error = %e, "no HTTP client for webhooks; deliveries will fail");
            e.to_string()
        });
        Self {
            inner: Arc::new(Inner {
                store,
                resources,
                limits,
                http,
                egress,
                running: Mutex::new(HashMap::new()),
                closing,
                leadership: Leadership::always(),
            }),
        }
    }

    /// Starts every stored webhook: each resumes its resource after its last stored event, and
    /// its outbox is sent on.
    pub async fn start_all(&self) -> Result<usize> {
        let hooks = self.inner.store.webhooks(None).await?;
        let n = hooks.len();
        for hook in hooks {
            self.spawn(hook);
        }
        Ok(n)
    }

    /// Creates a webhook of `owner` for `req.resource`, which `owner` must be allowed to watch.
    /// Returns it with its secret.
    pub async fn create(&self, owner: &str, req: CreateWebhook) -> Result<WebhookRecord> {
        let target = check_target(&self.inner.egress, &req.url).await?;
        let topic = events::parse_topic(&req.resource).ok_or_else(|| {
            Error::Invalid(format!(
                "resource {:?} is not an active resource: use /login/{{email}}, \
                 /login/{{email}}/{{id}} or /call/{{id}}",
                req.resource
            ))
        })?;
        events::authorize(&self.inner.resources, owner, &topic).await?;
        loop {
            let record = WebhookRecord {
                id: hex::encode(rand::random::<[u8; 8]>()),
                owner: owner.to_owned(),
                target: target.clone(),
                resource: topic.resource(),
                updates: req.updates.unwrap_or_default(),
                secret: hex::encode(rand::random::<[u8; 32]>()),
                created: now_ms(),
                cursor: None,
                failing_since: None,
                last_error: None,
                queued: 0,
            };
            match self
                .inner
                .store
                .create_webhook(&record, self.inner.limits.max_webhooks_per_user)
                .await
            {
                Ok(true) => {
                    if self.inner.leadership.holds() {
                        self.spawn(record.clone());
                    }
                    return Ok(record);
                }
                Ok(false) => {
                    return Err(Error::Limit(format!(
                        "{owner} already has {} webhooks; delete one first",
                        self.inner.limits.max_webhooks_per_user
                    )))
                }
                // A random id collided: draw again.
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One of `user`'s webhooks.
    pub async fn get(&self, user: &str, id: &str) -> Result<WebhookRecord> {
        let hook = self
            .inner
            .store
            .webhook(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no webhook /webhook/{id}")))?;
        if hook.owner != user {
            return Err(Error::Forbidden(format!(
                "/webhook/{id} belongs to {}",
                hook.owner
            )));
        }
        Ok(hook)
    }

    /// `user`'s webhooks, oldest first.
    pub async fn list(&self, user: &str) -> Result<Vec<WebhookRecord>> {
        Ok(self.inner.store.webhooks(Some(user)).await?)
    }

    /// Deletes one of `user`'s webhooks: it stops at once, and what it had queued is dropped.
    pub async fn delete(&self, user: &str, id: &str) -> Result<()> {
        self.get(user, id).await?;
        self.inner.store.delete_webhook(id).await?;
        if let Some((_, task)) = self.inner.running().remove(id) {
            task.abort();
        }
        Ok(())
    }

    /// Stops the webhooks of a deleted user (the store deleted them with the user).
    pub fn forget_owner(&self, owner: &str) {
        self.inner.running().retain(|_, (o, task)| {
            if o == owner {
                task.abort();
            }
            o != owner
        });
    }

    /// This relay's leadership, which the cluster renews (and the expiry sweeps check too).
    pub fn leadership(&self) -> Leadership {
        self.inner.leadership.clone()
    }

    /// Says until when this relay leads its cluster (None: it does not), then makes the
    /// running webhooks match: a leader runs every stored webhook (those created or deleted on
    /// other relays too), any other relay none. Called by the cluster on every lease renewal.
    pub async fn lead(&self, until: Option<tokio::time::Instant>) -> Result<()> {
        match until {
            Some(deadline) => self.inner.leadership.hold_until(deadline),
            None => self.inner.leadership.lose(),
        }
        let leading = self.inner.leadership.holds();
        if !leading {
            for (_, (_, task)) in self.inner.running().drain() {
                task.abort();
            }
            return Ok(());
        }
        let hooks = self.inner.store.webhooks(None).await?;
        let stored: std::collections::HashSet<String> =
            hooks.iter().map(|h| h.id.clone()).collect();
        self.inner.running().retain(|id, (_, task)| {
            if !stored.contains(id) {
                task.abort();
            }
            stored.contains(id)
        });
        for hook in hooks {
            self.spawn(hook);
        }
        Ok(())
    }

    /// Runs `hook` unless it runs already.
    fn spawn(&self, hook: WebhookRecord) {
        let Some(topic) = events::parse_topic(&hook.resource) else {
            tracing::warn!(webhook = %hook.id, resource = %hook.resource, "stored webhook of no active resource; skipped");
            return;
        };
        let (id, owner) = (hook.id.clone(), hook.owner.clone());
        let mut running = self.inner.running();
        if running.contains_key(&id) {
            return;
        }
        let runner = Arc::new(runner::Runner::new(self.inner.clone(), hook, topic));
        let task = tokio::spawn(runner.run());
        running.insert(id, (owner, task.abort_handle()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn targets_must_be_absolute_http_urls() {
        let open = Egress::new(true);
        assert_eq!(
            check_target(&open, "http://app.example/hook")
                .await
                .ok()
                .as_deref(),
            Some("http://app.example/hook")
        );
        assert!(check_target(&open, "https://127.0.0.1:8443/h?x=1")
            .await
            .is_ok());
        assert!(matches!(
            check_target(&Egress::new(false), "https://127.0.0.1:8443/h").await,
            Err(Error::ForbiddenTarget(_))
        ));
        assert!(matches!(
            check_target(&open, "https://u:pw@app.example/h").await,
            Err(Error::ForbiddenTarget(_))
        ));
        let long = format!("http://a.example/{}", "x".repeat(MAX_URL_LEN));
        for bad in [
            "",
            "/relative",
            "app.example/hook",
            "ftp://app.example/hook",
            "javascript:alert(1)",
            "http://",
            "http://:80/",
            long.as_str(),
        ] {
            assert!(
                matches!(check_target(&open, bad).await, Err(Error::Invalid(_))),
                "{bad}"
            );
        }
    }
}
