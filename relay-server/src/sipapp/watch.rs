//! Presence of addresses of other domains, watched through the upstream server: while web
//! users watch `/login/{address}` for an address that is no account here and whose domain the
//! upstream serves (`--sip-upstream-domain`), the relay holds one presence subscription
//! (RFC 6665, RFC 3856) to `sip:{address}` through the upstream server, From the first
//! watcher (digest with its upstream credentials or the trunk's, as for MESSAGE), refreshed
//! before it ends and ended with `Expires: 0` once the last watcher leaves. Each NOTIFY's PIDF
//! (RFC 3863, open or closed) becomes the login resource's state: one contact
//! `{"contact": "sip:{address}", "presence": "open"|"closed", "source": "sip"}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use restsip_protocol::{Contact, ContactSource, EventKind};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::service::outbound::transact;
use super::upstream::{authorization, UpstreamSender};
use crate::bus::{Bus, Topic};
use restsip_sip::message::{Method, SipMessage, StartLine};
use restsip_sip::outgoing;
use restsip_sip::response::Reply;
use restsip_sip::uri::Uri;

/// Lifetime asked for a subscription (s).
const EXPIRES: u32 = 600;
/// Wait before a terminated or failed subscription is made again while watched.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(2);

/// What a subscription's task is told.
#[derive(Debug)]
enum Cmd {
    /// The notifier ended the subscription: make a new one.
    Terminated,
    /// The last watcher left: unsubscribe and end.
    Stop,
}

/// One watched address.
struct Sub {
    /// Watchers holding a guard.
    watchers: usize,
    /// The last state a NOTIFY gave: None before the first.
    open: Option<bool>,
    /// When the subscription ends, as last granted.
    until: Instant,
    /// Its task.
    tx: mpsc::UnboundedSender<Cmd>,
    /// Tells this subscription from a later one of the same address.
    generation: u64,
}

/// Subscriptions to addresses of other domains; cheap to clone.
#[derive(Clone)]
pub struct Watches {
    /// Shared state.
    inner: Arc<Inner>,
}

struct Inner {
    /// Where SUBSCRIBEs go: set once, when SIP starts with an upstream server (the location
    /// service, and so this port, exist before the SIP endpoint the sender needs).
    sender: OnceLock<Arc<UpstreamSender>>,
    /// Where state changes are announced.
    bus: Bus,
    /// Watched addresses (lowercase).
    subs: Mutex<HashMap<String, Sub>>,
    /// The address and generation of each Call-ID the relay subscribed with.
    calls: Mutex<HashMap<String, (String, u64)>>,
    /// Generations handed out.
    next: std::sync::atomic::AtomicU64,
}

/// A watcher of an address: dropping it leaves.
pub struct WatchGuard {
    /// The subscriptions.
    watches: Watches,
    /// The address watched.
    address: String,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let mut subs = self.watches.subs();
        let last = match subs.get_mut(&self.address) {
            Some(sub) => {
                sub.watchers = sub.watchers.saturating_sub(1);
                sub.watchers == 0
            }
            None => false,
        };
        if last {
            if let Some(sub) = subs.remove(&self.address) {
                let _ = sub.tx.send(Cmd::Stop);
            }
        }
    }
}

impl crate::location::Foreign for Watches {
    fn watchable(&self, address: &str) -> bool {
        Watches::watchable(self, address)
    }

    fn watch(&self, address: &str, watcher: &str) -> Option<Box<dyn Send + Sync>> {
        Watches::watch(self, address, watcher).map(|g| Box::new(g) as Box<dyn Send + Sync>)
    }

    fn state(&self, address: &str) -> Option<Value> {
        Watches::state(self, address)
    }
}

/// Whether a PIDF document says open: any tuple's `basic` status is `open`.
pub fn pidf_open(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    text.split("basic>")
        .skip(1)
        .any(|rest| rest.trim_start().starts_with("open"))
}

impl Watches {
    /// Subscriptions announced on `bus`, inert until [`Watches::attach`].
    pub fn new(bus: Bus) -> Self {
        Self {
            inner: Arc::new(Inner {
                sender: OnceLock::new(),
                bus,
                subs: Mutex::default(),
                calls: Mutex::default(),
                next: std::sync::atomic::AtomicU64::default(),
            }),
        }
    }

    /// Subscriptions through `sender`, the upstream server.
    pub fn attach(&self, sender: Arc<UpstreamSender>) {
        let _ = self.inner.sender.set(sender);
    }

    fn subs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Sub>> {
        self.inner.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, u64)>> {
        self.inner.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `address` (no account here) may be watched: an upstream server is set and
    /// serves its domain.
    pub fn watchable(&self, address: &str) -> bool {
        let Some(sender) = self.inner.sender.get() else {
            return false;
        };
        let address = address.to_ascii_lowercase();
        address
            .rsplit_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && sender.serves_domain(domain))
            && UpstreamSender::target(&address).is_some()
    }

    /// `watcher` watches `address` (no account here): the subscription starts with the first
    /// watcher; None when `address` may not be watched.
    pub fn watch(&self, address: &str, watcher: &str) -> Option<WatchGuard> {
        if !self.watchable(address) {
            return None;
        }
        let address = address.to_ascii_lowercase();
        let mut subs = self.subs();
        if let Some(sub) = subs.get_mut(&address) {
            sub.watchers += 1;
        } else {
            let (tx, rx) = mpsc::unbounded_channel();
            let generation = self
                .inner
                .next
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            subs.insert(
                address.clone(),
                Sub {
                    watchers: 1,
                    open: None,
                    until: Instant::now(),
                    tx,
                    generation,
                },
            );
            tokio::spawn(
                self.clone()
                    .run(address.clone(), watcher.to_owned(), generation, rx),
            );
        }
        Some(WatchGuard {
            watches: self.clone(),
            address,
        })
    }

    /// The state of `/login/{address}` while it is watched: no contact before the first
    /// NOTIFY, then the one pseudo-contact.
    pub fn state(&self, address: &str) -> Option<Value> {
        let address = address.to_ascii_lowercase();
        let subs = self.subs();
        let sub = subs.get(&address)?;
        Some(match contact(&address, sub) {
            Some(c) => json!([c]),
            None => json!([]),
        })
    }

    /// Whether a request is a NOTIFY for one of the relay's subscriptions.
    pub fn owns(&self, req: &SipMessage) -> bool {
        req.call_id()
            .is_some_and(|id| self.calls().contains_key(id))
    }

    /// Answers a NOTIFY of one of the relay's subscriptions: its PIDF is the address's state.
    pub fn notify(&self, req: &SipMessage) -> Reply {
        let Some((address, generation)) =
            req.call_id().and_then(|id| self.calls().get(id).cloned())
        else {
            return Reply::new(481, "Subscription Does Not Exist");
        };
        let state = req.header("Subscription-State").unwrap_or("active");
        let terminated = state
            .split(';')
            .next()
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("terminated"));
        let open = pidf_open(&req.body);
        let expires = state.split(';').find_map(|p| {
            p.trim()
                .strip_prefix("expires=")
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
        let mut subs = self.subs();
        let Some(sub) = subs
            .get_mut(&address)
            .filter(|s| s.generation == generation)
        else {
            // An old subscription's last NOTIFY.
            return Reply::new(200, "OK");
        };
        if let Some(secs) = expires {
            sub.until = Instant::now() + Duration::from_secs(secs);
        }
        if terminated {
            let _ = sub.tx.send(Cmd::Terminated);
            return Reply::new(200, "OK");
        }
        let kind = match sub.open {
            None => EventKind::Added,
            Some(o) if o == open => return Reply::new(200, "OK"),
            Some(_) => EventKind::Updated,
        };
        sub.open = Some(open);
        let item = contact(&address, sub);
        drop(subs);
        let item = serde_json::to_value(&item).unwrap_or_default();
        self.inner.bus.publish(
            &Topic::Login(address),
            kind,
            item.clone(),
            Some(json!([item])),
        );
        Reply::new(200, "OK")
    }

    /// The subscription gave up: watchers are told the resource is gone.
    fn failed(&self, address: &str, generation: u64, why: String) {
        let removed = {
            let mut subs = self.subs();
            match subs.get(address) {
                Some(s) if s.generation == generation => subs.remove(address).is_some(),
                _ => false,
            }
        };
        if removed {
            tracing::warn!("watching {address} upstream failed: {why}");
            self.inner.bus.publish(
                &Topic::Login(address.to_owned()),
                EventKind::Gone,
                json!({ "reason": why }),
                None,
            );
        }
    }

    /// Holds the subscription to `address` until told to stop.
    async fn run(
        self,
        address: String,
        watcher: String,
        generation: u64,
        mut rx: mpsc::UnboundedReceiver<Cmd>,
    ) {
        let Some(sender) = self.inner.sender.get().cloned() else {
            return;
        };
        'dialogs: loop {
            let mut dialog = SubDialog::new(&address, &watcher);
            self.calls()
                .insert(dialog.call_id.clone(), (address.clone(), generation));
            let granted = match dialog.subscribe(&sender, EXPIRES).await {
                Ok(granted) => granted,
                Err(why) => {
                    self.calls().remove(&dialog.call_id);
                    self.failed(&address, generation, why);
                    return;
                }
            };
            if let Some(sub) = self
                .subs()
                .get_mut(&address)
                .filter(|s| s.generation == generation)
            {
                sub.until = Instant::now() + Duration::from_secs(granted.into());
            }
            let mut next = Instant::now() + super::upstream::refresh_after(granted);
            loop {
                tokio::select! {
                    cmd = rx.recv() => match cmd {
                        None | Some(Cmd::Stop) => {
                            if let Err(why) = dialog.subscribe(&sender, 0).await {
                                tracing::debug!("unsubscribing {address} upstream: {why}");
                            }
                            // Its last NOTIFY (terminated) may still come: answered, then gone.
                            tokio::time::sleep(Duration::from_secs(2)).await;
                            self.calls().remove(&dialog.call_id);
                            return;
                        }
                        Some(Cmd::Terminated) => {
                            self.calls().remove(&dialog.call_id);
                            tokio::time::sleep(RESUBSCRIBE_AFTER).await;
                            continue 'dialogs;
                        }
                    },
                    () = tokio::time::sleep_until(next) => {
                        match dialog.subscribe(&sender, EXPIRES).await {
                            Ok(granted) => {
                                next = Instant::now() + super::upstream::refresh_after(granted);
                            }
                            Err(why) => {
                                tracing::debug!("refreshing {address} upstream: {why}; anew");
                                self.calls().remove(&dialog.call_id);
                                continue 'dialogs;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The pseudo-contact of a watched address once a NOTIFY told its state.
fn contact(address: &str, sub: &Sub) -> Option<Contact> {
    let open = sub.open?;
    Some(Contact {
        id: 0,
        url: Topic::Inbox(address.to_owned(), 0).resource(),
        contact: Some(format!("sip:{}", super::im::sip_user(address))),
        expires: u32::try_from(
            sub.until
                .saturating_duration_since(Instant::now())
                .as_secs(),
        )
        .unwrap_or(u32::MAX),
        presence: Some(json!(if open { "open" } else { "closed" })),
        source: ContactSource::Sip,
    })
}

/// The relay's side of one subscription dialog (RFC 6665 §4.1).
struct SubDialog {
    /// The presentity.
    target: Uri,
    /// The watcher (From; whose credentials answer challenges).
    watcher: String,
    /// Call-ID.
    call_id: String,
    /// From tag.
    tag: String,
    /// The notifier's tag, once a 2xx came.
    remote_tag: Option<String>,
    /// Request-URI of requests within the dialog (the 2xx's Contact).
    remote_target: Option<Uri>,
    /// Route set: the 2xx's Record-Route reversed.
    routes: Vec<String>,
    /// The last CSeq sent.
    cseq: u32,
}

impl SubDialog {
    fn new(address: &str, watcher: &str) -> Self {
        Self {
            target: UpstreamSender::target(address)
                .unwrap_or_else(|| Uri::parse("sip:invalid").expect("a valid URI")),
            watcher: watcher.to_owned(),
            call_id: format!("{}@restsip", outgoing::token()),
            tag: outgoing::token(),
            remote_tag: None,
            remote_target: None,
            routes: Vec::new(),
            cseq: 0,
        }
    }

    /// Sends a SUBSCRIBE asking `expires` seconds (the first one, or within the dialog),
    /// answering one digest challenge; the lifetime granted.
    async fn subscribe(&mut self, sender: &UpstreamSender, expires: u32) -> Result<u32, String> {
        let peer = sender
            .peer()
            .await
            .ok_or("cannot resolve the upstream server")?;
        let local = outgoing::local_addr(sender.listen(), peer);
        let uri = self
            .remote_target
            .clone()
            .unwrap_or_else(|| self.target.clone());
        let in_dialog = self.remote_tag.is_some();
        let mut answer: Option<(&'static str, String)> = None;
        let mut challenged = false;
        loop {
            self.cseq += 1;
            let mut req = outgoing::request(Method::SUBSCRIBE, uri.clone(), local, peer.transport);
            if in_dialog {
                for route in &self.routes {
                    req.push("Route", route.clone());
                }
            } else {
                req.push("Route", sender.route().to_owned());
            }
            req.push(
                "From",
                format!(
                    "<sip:{}>;tag={}",
                    super::im::sip_user(&self.watcher),
                    self.tag
                ),
            );
            req.push(
                "To",
                match &self.remote_tag {
                    Some(t) => format!("<{}>;tag={t}", self.target),
                    None => format!("<{}>", self.target),
                },
            );
            req.push("Call-ID", self.call_id.clone());
            req.push("CSeq", format!("{} SUBSCRIBE", self.cseq));
            req.push(
                "Contact",
                format!(
                    "<{}>",
                    outgoing::own_uri(sender.listen(), peer, Some("restsip-watch"), false)
                ),
            );
            req.push("Event", "presence");
            req.push("Accept", "application/pidf+xml");
            req.push("Expires", expires.to_string());
            if let Some((name, value)) = answer.take() {
                req.push(name, value);
            }
            let response = transact(sender.endpoint(), &req, peer)
                .await
                .map_err(|_| "SIP is stopping".to_owned())?
                .ok_or("no answer (408)")?;
            let (code, reason) = match &response.start {
                StartLine::Response { code, reason } => (*code, reason.clone()),
                StartLine::Request { .. } => (500, String::new()),
            };
            match code {
                200..=299 => {
                    if !in_dialog {
                        self.remote_tag =
                            response.to().ok().and_then(|t| t.tag().map(str::to_owned));
                        self.remote_target = response
                            .contacts()
                            .ok()
                            .flatten()
                            .and_then(|c| c.into_iter().next())
                            .map(|c| c.uri);
                        let mut routes: Vec<String> = response
                            .headers_named("Record-Route")
                            .flat_map(restsip_sip::headers::split_list)
                            .map(|r| r.trim().to_owned())
                            .collect();
                        routes.reverse();
                        self.routes = routes;
                    }
                    return Ok(response.expires().ok().flatten().unwrap_or(expires));
                }
                401 | 407 if !challenged => {
                    challenged = true;
                    answer = authorization(
                        &response,
                        sender.credentials_of(&self.watcher),
                        &uri,
                        &Method::SUBSCRIBE,
                    );
                    if answer.is_none() {
                        return Err(format!("{code} {reason} (no credentials for it)"));
                    }
                }
                _ => return Err(format!("{code} {reason}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{pidf_open, Watches};

    #[test]
    fn nothing_is_watched_without_an_upstream() {
        let watches = Watches::new(crate::bus::Bus::new(0, 16, 16));
        assert!(!watches.watchable("carol@pbx.example.org"));
        assert!(watches.watch("carol@pbx.example.org", "a@x").is_none());
        assert!(watches.state("carol@pbx.example.org").is_none());
    }

    #[test]
    fn pidf_states() {
        assert!(pidf_open(
            b"<presence><tuple id=\"a\"><status><basic>open</basic></status></tuple></presence>"
        ));
        assert!(pidf_open(
            b"<p:presence><p:tuple><p:status><p:basic> Open </p:basic>"
        ));
        assert!(!pidf_open(
            b"<presence><tuple><status><basic>closed</basic>"
        ));
        assert!(!pidf_open(b""));
    }
}
