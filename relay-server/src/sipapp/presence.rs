//! Presence subscriptions (RFC 6665 with the presence event package of RFC 3856): a SUBSCRIBE
//! with `Event: presence` to `sip:{email}` gets 200 and a NOTIFY at once carrying a PIDF
//! document (RFC 3863: `open` while the user has a live login, REST or SIP), then a NOTIFY on
//! every change of `/login/{email}`; a refresh gets a NOTIFY too, `Expires: 0` or the end of
//! the subscription's lifetime a last NOTIFY with `Subscription-State: terminated`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::bus::{Bus, Topic};
use crate::location::Location;
use restsip_sip::endpoint::WeakEndpoint;
use restsip_sip::message::{parse_u32, Method, SipMessage, StartLine};
use restsip_sip::outgoing;
use restsip_sip::response::Reply;
use restsip_sip::transport::Peer;

/// The methods this feature answers (gathered into the Allow header by the core).
pub const METHODS: &[&str] = &["SUBSCRIBE"];

/// Lifetime granted when the SUBSCRIBE names none (RFC 3856 §6.4: one hour).
const DEFAULT_EXPIRES: u32 = 3600;
/// Shortest lifetime accepted (423 below it).
const MIN_EXPIRES: u32 = 30;
/// Longest lifetime granted.
const MAX_EXPIRES: u32 = 86_400;
/// Most subscriptions at once.
const MAX_SUBSCRIPTIONS: usize = 10_000;

/// Identifies a subscription's dialog: Call-ID and the subscriber's From tag.
type DialogKey = (String, String);

/// What a subscription's task is told.
#[derive(Debug)]
enum Cmd {
    /// A SUBSCRIBE was accepted: its new end, or None for `Expires: 0`.
    Refresh(Option<Instant>),
    /// The 200 went out: send a NOTIFY now.
    NotifyNow,
}

/// One subscription's dialog, as its NOTIFYs need it.
struct Dialog {
    /// The presentity.
    email: String,
    /// Call-ID.
    call_id: String,
    /// The relay's tag (From of NOTIFYs).
    local_tag: String,
    /// The subscriber's From value with its tag (To of NOTIFYs).
    remote: String,
    /// The subscriber's Contact URI (Request-URI of NOTIFYs).
    target: String,
    /// Where NOTIFYs go: where the SUBSCRIBE came from.
    peer: Peer,
    /// The route set: the SUBSCRIBE's Record-Route in order (RFC 3261 §12.1.1), so NOTIFYs
    /// pass the proxies on the path (an upstream server).
    routes: Vec<String>,
    /// The last CSeq sent.
    cseq: u32,
}

/// Presence subscriptions; cheap to clone.
#[derive(Clone)]
pub struct Presence {
    /// Shared state.
    inner: Arc<Inner>,
}

struct Inner {
    /// Live subscriptions: the handle of each one's task, and the relay's tag.
    subs: Mutex<HashMap<DialogKey, (mpsc::UnboundedSender<Cmd>, String)>>,
    /// Logins, for the state.
    location: Location,
    /// Changes of logins.
    bus: Bus,
    /// The endpoint that sends NOTIFYs (set when SIP starts).
    endpoint: WeakEndpoint,
}

fn event_is_presence(req: &SipMessage) -> bool {
    req.header("Event").is_some_and(|e| {
        e.split(';')
            .next()
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("presence"))
    })
}

/// The PIDF document (RFC 3863) of `email`: one tuple, open or closed.
pub fn pidf(email: &str, open: bool) -> String {
    let entity: String = email
        .chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&apos;".to_owned(),
            c => c.to_string(),
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
         <presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:{entity}\">\r\n\
         <tuple id=\"restsip\"><status><basic>{}</basic></status></tuple>\r\n\
         </presence>\r\n",
        if open { "open" } else { "closed" }
    )
}

impl Presence {
    /// Subscriptions to the logins of `location`, whose changes come on `bus`, notified
    /// through `endpoint`.
    pub fn new(location: Location, bus: Bus, endpoint: WeakEndpoint) -> Self {
        Self {
            inner: Arc::new(Inner {
                subs: Mutex::default(),
                location,
                bus,
                endpoint,
            }),
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<DialogKey, (mpsc::UnboundedSender<Cmd>, String)>> {
        self.inner.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many subscriptions are alive.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Answers a SUBSCRIBE that came from `from`.
    pub async fn subscribe(&self, req: &SipMessage, from: Peer) -> Reply {
        match self.try_subscribe(req, from).await {
            Ok(reply) | Err(reply) => reply,
        }
    }

    async fn try_subscribe(&self, req: &SipMessage, from: Peer) -> Result<Reply, Reply> {
        if !event_is_presence(req) {
            return Err(Reply::new(489, "Bad Event").with("Allow-Events", "presence"));
        }
        if let Some(accept) = req.header("Accept") {
            let ok = accept.split(',').any(|t| {
                let t = t.split(';').next().unwrap_or_default().trim();
                t.eq_ignore_ascii_case("application/pidf+xml") || t == "*/*"
            });
            if !ok {
                return Err(
                    Reply::new(406, "Not Acceptable").with("Accept", "application/pidf+xml")
                );
            }
        }
        let StartLine::Request { uri, .. } = &req.start else {
            return Err(Reply::bad_request("not a request"));
        };
        // An in-dialog request (a refresh, an unsubscribe) goes to the relay's Contact, which
        // names no user: the user is required of a new subscription only.
        let email = uri.sip().and_then(|u| u.address());
        let expires = match req.header("Expires") {
            Some(v) => parse_u32(v).ok_or_else(|| Reply::bad_request("Expires is not a number"))?,
            None => DEFAULT_EXPIRES,
        };
        if expires != 0 && expires < MIN_EXPIRES {
            return Err(
                Reply::new(423, "Interval Too Brief").with("Min-Expires", MIN_EXPIRES.to_string())
            );
        }
        let expires = expires.min(MAX_EXPIRES);
        let deadline = (expires > 0).then(|| Instant::now() + Duration::from_secs(expires.into()));
        let subscriber = req.from().map_err(Reply::bad_request)?;
        let remote_tag = subscriber
            .tag()
            .ok_or_else(|| Reply::bad_request("From has no tag"))?
            .to_owned();
        let call_id = req
            .call_id()
            .ok_or_else(|| Reply::bad_request("no Call-ID"))?
            .to_owned();
        let key = (call_id.clone(), remote_tag);
        let to_tag = req
            .to()
            .map_err(Reply::bad_request)?
            .tag()
            .map(str::to_owned);
        // The relay's Contact (RFC 6665 §4.2.1.1): where requests in the dialog go.
        let contact = outgoing::own_contact(self.inner.endpoint.listen(), from, req.sips());
        let ok = |tag: String| {
            Reply::new(200, "OK")
                .with("Expires", expires.to_string())
                .with_to_tag(tag)
                .with("Contact", contact.clone())
        };
        if let Some(tag) = to_tag {
            // A refresh or an unsubscribe within the dialog.
            let subs = self.lock();
            return match subs.get(&key) {
                Some((tx, local)) if *local == tag => {
                    let _ = tx.send(Cmd::Refresh(deadline));
                    Ok(ok(tag))
                }
                _ => Err(Reply::new(481, "Subscription Does Not Exist")),
            };
        }
        let Some(email) = email else {
            return Err(Reply::new(404, "Not Found"));
        };
        match self.inner.location.contacts(&email).await {
            Ok(_) => {}
            Err(crate::error::Error::NotFound(_)) => return Err(Reply::new(404, "Not Found")),
            Err(e) => {
                tracing::warn!(error = %e, "presence lookup failed");
                return Err(Reply::new(500, "Server Internal Error"));
            }
        }
        // The user's presence rule: by default only authenticated local users may watch (the
        // core challenged a local From without credentials; another domain's is anonymous).
        let watcher = super::sender::asserted(req);
        match self
            .inner
            .location
            .may_watch(&email, watcher.as_deref())
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return Err(Reply::new(
                    403,
                    "Forbidden (the user's presence rule does not let you watch)",
                ))
            }
            Err(crate::error::Error::NotFound(_)) => return Err(Reply::new(404, "Not Found")),
            Err(e) => {
                tracing::warn!(error = %e, "presence rule lookup failed");
                return Err(Reply::new(500, "Server Internal Error"));
            }
        }
        let target = match req.contacts() {
            Ok(Some(list)) if !list.is_empty() => list[0].uri.to_string(),
            _ => return Err(Reply::bad_request("SUBSCRIBE without a Contact")),
        };
        let local_tag = outgoing::token();
        let dialog = Dialog {
            email: email.clone(),
            call_id,
            local_tag: local_tag.clone(),
            remote: req.header("From").unwrap_or_default().to_owned(),
            target,
            peer: from,
            routes: req
                .headers_named("Record-Route")
                .flat_map(restsip_sip::headers::split_list)
                .map(|r| r.trim().to_owned())
                .collect(),
            cseq: 0,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut subs = self.lock();
            if subs.len() >= MAX_SUBSCRIPTIONS {
                return Err(
                    Reply::new(503, "Service Unavailable (too many subscriptions)")
                        .with("Retry-After", "60"),
                );
            }
            if subs.contains_key(&key) {
                return Err(Reply::bad_request(
                    "a subscription with this Call-ID and tag exists",
                ));
            }
            subs.insert(key.clone(), (tx.clone(), local_tag.clone()));
        }
        let _ = tx.send(Cmd::Refresh(deadline));
        // Subscribe to changes before the 200 goes out, so none is missed.
        let changes = self
            .inner
            .bus
            .subscribe(&Topic::Login(email), None)
            .receiver;
        tokio::spawn(self.clone().run(key, dialog, rx, changes));
        Ok(ok(local_tag))
    }

    /// After the response to a SUBSCRIBE went out: the NOTIFY that must follow a 2xx.
    pub fn after(&self, req: &SipMessage, code: u16) {
        if !(200..300).contains(&code) {
            return;
        }
        let Some(key) = req
            .call_id()
            .zip(req.from().ok().and_then(|f| f.tag().map(str::to_owned)))
            .map(|(c, t)| (c.to_owned(), t))
        else {
            return;
        };
        if let Some((tx, _)) = self.lock().get(&key) {
            let _ = tx.send(Cmd::NotifyNow);
        }
    }

    async fn run(
        self,
        key: DialogKey,
        mut dialog: Dialog,
        mut rx: mpsc::UnboundedReceiver<Cmd>,
        mut changes: tokio::sync::broadcast::Receiver<Arc<crate::bus::Published>>,
    ) {
        let mut deadline: Option<Instant> = None;
        let mut started = false;
        loop {
            let wait = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => break,
                    Some(Cmd::Refresh(d)) => deadline = d,
                    Some(Cmd::NotifyNow) => {
                        started = true;
                        if deadline.is_none() {
                            self.notify(&mut dialog, Some("terminated;reason=timeout"), None).await;
                            break;
                        }
                        if !self.notify(&mut dialog, None, deadline).await {
                            break;
                        }
                    }
                },
                change = changes.recv(), if started => match change {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        if !self.notify(&mut dialog, None, deadline).await {
                            break;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                _ = tokio::time::sleep_until(wait), if started && deadline.is_some() => {
                    self.notify(&mut dialog, Some("terminated;reason=timeout"), None).await;
                    break;
                }
            }
        }
        self.lock().remove(&key);
    }

    /// Sends a NOTIFY with the presentity's state now; `state` None is `active` with the time
    /// left. False when the subscription is over for the subscriber: it answered 481, or
    /// nothing at all (RFC 6665 §4.2.2: the notifier removes the subscription then).
    async fn notify(
        &self,
        dialog: &mut Dialog,
        state: Option<&str>,
        deadline: Option<Instant>,
    ) -> bool {
        let weak = &self.inner.endpoint;
        let listen = &weak.listen();
        let open = self
            .inner
            .location
            .contacts(&dialog.email)
            .await
            .is_ok_and(|c| !c.is_empty());
        let Ok(uri) = restsip_sip::uri::Uri::parse(&dialog.target) else {
            return false;
        };
        let local = outgoing::local_addr(*listen, dialog.peer);
        let mut req = outgoing::request(Method::NOTIFY, uri, local, dialog.peer.transport);
        for route in &dialog.routes {
            req.push("Route", route.clone());
        }
        dialog.cseq += 1;
        req.push(
            "From",
            format!("<sip:{}>;tag={}", dialog.email, dialog.local_tag),
        );
        req.push("To", dialog.remote.clone());
        req.push("Call-ID", dialog.call_id.clone());
        req.push("CSeq", format!("{} NOTIFY", dialog.cseq));
        // The same Contact as the 200's: over TCP or TLS it says so, or the subscriber's
        // next request in the dialog would go over UDP.
        req.push(
            "Contact",
            outgoing::own_contact(*listen, dialog.peer, false),
        );
        req.push("Event", "presence");
        let state = match (state, deadline) {
            (Some(s), _) => s.to_owned(),
            (None, Some(d)) => format!(
                "active;expires={}",
                d.saturating_duration_since(Instant::now()).as_secs()
            ),
            (None, None) => "active".to_owned(),
        };
        req.push("Subscription-State", state);
        req.push("Content-Type", "application/pidf+xml");
        req.body = pidf(&dialog.email, open).into_bytes();
        let Some(endpoint) = weak.upgrade() else {
            return false;
        };
        let rx = endpoint.client().send(&req, dialog.peer);
        drop(endpoint);
        let status = outgoing::final_status(rx).await;
        if status.code >= 300 {
            tracing::debug!(code = status.code, "NOTIFY refused");
        }
        // 408 is also what final_status reports when no answer came (Timer F).
        !matches!(status.code, 481 | 408)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pidf_escapes_the_entity() {
        let doc = super::pidf("a&b@example.net", true);
        assert!(doc.contains("entity=\"sip:a&amp;b@example.net\""));
        assert!(doc.contains("<basic>open</basic>"));
    }
}
