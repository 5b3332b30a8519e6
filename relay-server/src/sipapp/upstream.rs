//! The upstream SIP server (`--sip-upstream`): the relay's way into the rest of the SIP world.
//!
//! - Requests for addresses that are not accounts of the relay go through it: an `im` SEND is a
//!   MESSAGE and an `invite` SEND an INVITE (see `call_out.rs`) to `sip:{address}` with a Route
//!   to the upstream server, sent to it; a digest challenge (401/407) is answered once with the
//!   sender's upstream credentials.
//! - [`Registrations`]: while a user of a domain the upstream serves (`--sip-upstream-domain`,
//!   or one with its own `--sip-upstream-account`) has a live web login, the relay keeps the
//!   AOR `sip:{email}` registered there with the Contact `sip:{email escaped}@{relay}`
//!   (digest-authenticated, refreshed before it ends, removed with `Expires: 0` once the
//!   user's last web login ends, and for every user when the relay shuts down).
//! - [`inbound`]: a request the upstream server sends to such a Contact is for the user whose
//!   email the Contact's user part holds: its Request-URI becomes `sip:{email}` and it is
//!   handled like a request from a phone registered at the relay.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use restsip_protocol::{ContactSource, SipStatus};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::service::outbound::{respond_to, transact};
use crate::clock::now_ms;
use crate::store::Store;
use restsip_sip::endpoint::WeakEndpoint;
use restsip_sip::message::{Method, SipMessage, StartLine};
use restsip_sip::outgoing;
use restsip_sip::transport::{Peer, Transport};
use restsip_sip::uri::{unescape, Uri};

/// An upstream SIP server.
#[derive(Clone)]
pub struct Upstream {
    /// Its `sip:` URI (a Route toward it; its host, port and transport are the next hop).
    pub uri: String,
    /// Digest user name and password for its challenges (the trunk's, for every user).
    pub credentials: Option<(String, String)>,
    /// Domains it serves: their users are registered there (lowercase).
    pub domains: Vec<String>,
    /// Per-user digest credentials there, by email (lowercase); these users are registered.
    pub accounts: std::collections::HashMap<String, (String, String)>,
    /// Lifetime asked for registrations there (s).
    pub expires: u32,
}

impl Upstream {
    /// Whether the relay registers `email` at the upstream server.
    pub fn registers(&self, email: &str) -> bool {
        let email = email.to_ascii_lowercase();
        self.accounts.contains_key(&email)
            || email
                .rsplit_once('@')
                .is_some_and(|(_, domain)| self.domains.iter().any(|d| d == domain))
    }

    /// The digest credentials `email` answers the upstream server's challenges with.
    pub fn credentials_of(&self, email: &str) -> Option<&(String, String)> {
        self.accounts
            .get(&email.to_ascii_lowercase())
            .or(self.credentials.as_ref())
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("uri", &self.uri)
            .field("user", &self.credentials.as_ref().map(|c| &c.0))
            .field("domains", &self.domains)
            .field("accounts", &self.accounts.keys().collect::<Vec<_>>())
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Sends requests for non-accounts through the upstream server.
pub struct UpstreamSender {
    /// The server's URI, parsed.
    uri: Uri,
    /// Its Route value.
    route: String,
    /// Credentials, registered users, lifetime.
    config: Upstream,
    /// The endpoint (weak: the endpoint's core holds the inbox that holds this).
    endpoint: WeakEndpoint,
    /// The address the SIP listeners are bound to.
    listen: outgoing::Listening,
}

fn status(code: u16, reason: &str) -> SipStatus {
    SipStatus {
        code,
        reason: reason.to_owned(),
    }
}

/// The Authorization (or Proxy-Authorization) header answering the challenge of a 401 or 407
/// `response` to a `method` request for `uri`, with `credentials`.
pub fn authorization(
    response: &SipMessage,
    credentials: Option<&(String, String)>,
    uri: &Uri,
    method: &Method,
) -> Option<(&'static str, String)> {
    let (user, password) = credentials?;
    let (challenge, answer) = match response.code()? {
        401 => ("WWW-Authenticate", "Authorization"),
        407 => ("Proxy-Authenticate", "Proxy-Authorization"),
        _ => return None,
    };
    response
        .headers_named(challenge)
        .find_map(|c| respond_to(c, user, password, uri, method))
        .map(|value| (answer, value))
}

/// An email as the user part of a SIP URI, `@` included (`alice%40example.net`): the user part
/// of the Contact the relay registers for it.
pub fn contact_user(email: &str) -> String {
    let mut out = String::with_capacity(email.len() + 2);
    for b in email.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The Request-URI a request from the upstream server really names: `sip:{email}` when the
/// URI is a Contact the relay registered (its user part is an escaped email), else None.
pub fn inbound(uri: &Uri) -> Option<Uri> {
    let sip = uri.sip()?;
    let email = unescape(sip.user.as_deref()?);
    let (local, domain) = email.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() {
        return None;
    }
    Uri::parse(&format!("sip:{}", super::im::sip_user(&email))).ok()
}

impl UpstreamSender {
    /// The sender for `config` (None when its URI does not parse, which the configuration
    /// already refused).
    pub fn new(
        config: &Upstream,
        endpoint: WeakEndpoint,
        listen: outgoing::Listening,
    ) -> Option<Self> {
        let uri = Uri::parse(&config.uri).ok()?;
        let sip = uri.sip()?;
        let route = if sip.param("lr").is_some() {
            format!("<{uri}>")
        } else {
            format!("<{uri};lr>")
        };
        Some(Self {
            uri,
            route,
            config: config.clone(),
            endpoint,
            listen,
        })
    }

    /// The Route value toward the upstream server.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// The digest credentials `sender` answers the upstream server's challenges with.
    pub fn credentials_of(&self, sender: &str) -> Option<&(String, String)> {
        self.config.credentials_of(sender)
    }

    /// Whether the upstream server serves `domain` (a `--sip-upstream-domain`).
    pub fn serves_domain(&self, domain: &str) -> bool {
        self.config
            .domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// The address the SIP listeners are bound to.
    pub fn listen(&self) -> outgoing::Listening {
        self.listen
    }

    /// The endpoint requests go out through.
    pub(crate) fn endpoint(&self) -> &WeakEndpoint {
        &self.endpoint
    }

    /// The upstream server's address and transport.
    pub async fn peer(&self) -> Option<Peer> {
        let sip = self.uri.sip()?;
        let transport = Transport::of_uri(sip);
        let host = sip.host.trim_start_matches('[').trim_end_matches(']');
        let port = sip.port.unwrap_or(transport.default_port());
        let addr = match host.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => tokio::net::lookup_host((host, port)).await.ok()?.next()?,
        };
        if transport == Transport::Tls {
            if let Some(endpoint) = self.endpoint.upgrade() {
                endpoint.expect_tls_name(addr, host);
            }
        }
        Some(Peer { transport, addr })
    }

    /// The SIP URI of an address that is not an account here.
    pub fn target(address: &str) -> Option<Uri> {
        Uri::parse(&format!("sip:{}", super::im::sip_user(address))).ok()
    }

    /// Sends an `im` SEND body from `sender` to `address` as a MESSAGE through the upstream
    /// server; its final response (408 without one).
    pub async fn message(&self, sender: &str, address: &str, body: &Value) -> SipStatus {
        let (content_type, text) = match super::im::payload(body) {
            Ok(p) => p,
            Err(s) => return s,
        };
        let Some(target) = Self::target(address) else {
            return status(404, "Not Found (not a SIP address)");
        };
        let Some(peer) = self.peer().await else {
            return status(
                503,
                "Service Unavailable (cannot resolve the upstream server)",
            );
        };
        let local = outgoing::local_addr(self.listen, peer);
        let from = format!(
            "<sip:{}>;tag={}",
            super::im::sip_user(sender),
            outgoing::token()
        );
        let call_id = format!("{}@{}", outgoing::token(), outgoing::host_port(local));
        let build = |cseq: u32, authorization: Option<(&'static str, String)>| {
            let mut msg: SipMessage =
                outgoing::request(Method::MESSAGE, target.clone(), local, peer.transport);
            msg.push("Route", self.route.clone());
            msg.push("From", from.clone());
            msg.push("To", format!("<{target}>"));
            msg.push("Call-ID", call_id.clone());
            msg.push("CSeq", format!("{cseq} MESSAGE"));
            super::asserted::assert_sender(&mut msg, &super::im::sip_user(sender));
            if let Some((name, value)) = authorization {
                msg.push(name, value);
            }
            msg.push("Content-Type", content_type.to_owned());
            msg.body = text.as_bytes().to_vec();
            msg
        };
        let unavailable = || status(503, "Service Unavailable (SIP is stopping)");
        let Ok(mut response) = transact(&self.endpoint, &build(1, None), peer).await else {
            return unavailable();
        };
        let answer = response
            .as_ref()
            .and_then(|r| authorization(r, self.credentials_of(sender), &target, &Method::MESSAGE));
        if let Some(answer) = answer {
            match transact(&self.endpoint, &build(2, Some(answer)), peer).await {
                Ok(r) => response = r,
                Err(_) => return unavailable(),
            }
        }
        match response.as_ref().map(|r| &r.start) {
            Some(StartLine::Response { code, reason }) => status(*code, reason),
            _ => status(408, "Request Timeout"),
        }
    }

    /// An OPTIONS to the upstream server (readiness): `Ok` with its final response, whatever
    /// the code (it answers); `Err` when it cannot be resolved or nothing came back. The
    /// caller bounds the wait.
    pub async fn ping(&self) -> Result<String, String> {
        let peer = self
            .peer()
            .await
            .ok_or_else(|| "cannot resolve the upstream server".to_owned())?;
        let local = outgoing::local_addr(self.listen, peer);
        let host = outgoing::host_port(local);
        let mut options =
            outgoing::request(Method::OPTIONS, self.uri.clone(), local, peer.transport);
        options.push(
            "From",
            format!("<sip:relay@{host}>;tag={}", outgoing::token()),
        );
        options.push("To", format!("<{}>", self.uri));
        options.push("Call-ID", format!("{}@{host}", outgoing::token()));
        options.push("CSeq", "1 OPTIONS");
        match transact(&self.endpoint, &options, peer).await {
            Ok(Some(SipMessage {
                start: StartLine::Response { code, reason },
                ..
            })) => Ok(format!("answered OPTIONS: {code} {reason}")),
            Ok(_) => Err(format!("no answer to OPTIONS from {}", peer.addr)),
            Err(_) => Err("SIP is stopping".to_owned()),
        }
    }
}

/// Shortest wait before a failed registration is tried again.
const RETRY_MIN: Duration = Duration::from_secs(5);
/// Longest wait between two tries.
const RETRY_MAX: Duration = Duration::from_secs(300);

/// When to refresh a registration granted for `granted` seconds: a minute before it ends, or
/// half way through a short one.
pub(crate) fn refresh_after(granted: u32) -> Duration {
    Duration::from_secs(u64::from(
        (granted / 2).max(granted.saturating_sub(60)).max(1),
    ))
}

/// What a user's registration task is told.
#[derive(Debug)]
enum Cmd {
    /// The user's logins changed: look at them again.
    Look,
    /// The relay is stopping: unregister, then say so.
    Stop(tokio::sync::oneshot::Sender<()>),
}

/// The registrations of the relay's users at the upstream server; cheap to clone.
#[derive(Clone)]
pub struct Registrations {
    /// Shared state.
    inner: Arc<RegInner>,
}

struct RegInner {
    /// Where REGISTERs go.
    sender: Arc<UpstreamSender>,
    /// Logins.
    store: Arc<dyn Store>,
    /// The task of each user being registered: poking it makes it look at the logins again.
    users: Mutex<HashMap<String, mpsc::UnboundedSender<Cmd>>>,
}

/// Why a REGISTER did not succeed.
#[derive(Debug)]
enum RegisterError {
    /// SIP is stopping.
    Stopped,
    /// The upstream server's final answer, or none.
    Refused(SipStatus),
}

/// One user's registration dialog: Call-ID, From tag and CSeq stay for its refreshes.
struct Dialog {
    /// The AOR's email.
    email: String,
    /// Call-ID of every REGISTER.
    call_id: String,
    /// From tag.
    tag: String,
    /// The last CSeq sent.
    cseq: u32,
}

impl Registrations {
    /// Registers users at `sender`'s server as `changes` (emails whose logins changed, from
    /// [`crate::location::Location::observe`]) tell; the handle (for [`Self::stop`]) and the
    /// task reading the changes.
    pub fn start(
        sender: Arc<UpstreamSender>,
        store: Arc<dyn Store>,
        mut changes: mpsc::UnboundedReceiver<String>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let this = Self {
            inner: Arc::new(RegInner {
                sender,
                store,
                users: Mutex::default(),
            }),
        };
        let reader = this.clone();
        let task = tokio::spawn(async move {
            // Logins that outlived a restart: their users are registered again.
            match reader.inner.store.logged_in(now_ms()).await {
                Ok(emails) => {
                    for email in emails {
                        if reader.inner.sender.config.registers(&email) {
                            reader.poke(&email.to_ascii_lowercase());
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "logins not read; none registered upstream"),
            }
            while let Some(email) = changes.recv().await {
                if reader.inner.sender.config.registers(&email) {
                    reader.poke(&email.to_ascii_lowercase());
                }
            }
        });
        (this, task)
    }

    /// Unregisters every user registered at the upstream server (the relay is stopping); the
    /// tasks end.
    pub async fn stop(&self) {
        let waits: Vec<_> = self
            .users()
            .drain()
            .filter_map(|(_, tx)| {
                let (done, wait) = tokio::sync::oneshot::channel();
                tx.send(Cmd::Stop(done)).ok().map(|()| wait)
            })
            .collect();
        for wait in waits {
            let _ = wait.await;
        }
    }

    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<Cmd>>> {
        self.inner.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `email`'s task look at its logins, starting one if none runs.
    fn poke(&self, email: &str) {
        let mut users = self.users();
        if users
            .get(email)
            .is_some_and(|tx| tx.send(Cmd::Look).is_ok())
        {
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        users.insert(email.to_owned(), tx);
        tokio::spawn(self.clone().run(email.to_owned(), rx));
    }

    /// Whether `email` has a live login that is not a SIP phone of the relay.
    async fn web_login(&self, email: &str) -> bool {
        match self.inner.store.contacts(email, now_ms()).await {
            Ok(contacts) => contacts.iter().any(|c| c.source != ContactSource::Sip),
            Err(e) => {
                tracing::warn!(error = %e, "logins of {email} not read");
                false
            }
        }
    }

    /// Keeps `email` registered while it has a web login, then unregisters it and ends.
    async fn run(self, email: String, mut pokes: mpsc::UnboundedReceiver<Cmd>) {
        let mut dialog = Dialog {
            email: email.clone(),
            call_id: format!("{}@restsip", outgoing::token()),
            tag: outgoing::token(),
            cseq: 0,
        };
        let mut registered = false;
        let mut next = Instant::now();
        let mut retry = RETRY_MIN;
        let mut stopped: Option<tokio::sync::oneshot::Sender<()>> = None;
        loop {
            if stopped.is_none() && self.web_login(&email).await {
                if Instant::now() >= next {
                    match self.register(&mut dialog, self.expires()).await {
                        Ok(granted) => {
                            registered = true;
                            retry = RETRY_MIN;
                            next = Instant::now() + refresh_after(granted);
                            tracing::debug!(granted, "{email} registered upstream");
                        }
                        Err(RegisterError::Stopped) => break,
                        Err(RegisterError::Refused(s)) => {
                            tracing::warn!(
                                code = s.code,
                                reason = %s.reason,
                                "registering {email} upstream failed; retrying in {}s",
                                retry.as_secs()
                            );
                            next = Instant::now() + retry;
                            retry = (retry * 2).min(RETRY_MAX);
                        }
                    }
                }
            } else {
                if registered {
                    registered = false;
                    match self.register(&mut dialog, 0).await {
                        Ok(_) => tracing::debug!("{email} unregistered upstream"),
                        Err(RegisterError::Stopped) => break,
                        Err(RegisterError::Refused(s)) => tracing::warn!(
                            code = s.code,
                            "unregistering {email} upstream failed; it expires there"
                        ),
                    }
                }
                if let Some(done) = stopped {
                    let _ = done.send(());
                    return;
                }
                // Ends unless a login came meanwhile (pokes are sent under the same lock).
                let mut users = self.users();
                match pokes.try_recv() {
                    Err(_) => {
                        users.remove(&email);
                        return;
                    }
                    Ok(Cmd::Stop(done)) => stopped = Some(done),
                    Ok(Cmd::Look) => {}
                }
                continue;
            }
            tokio::select! {
                cmd = pokes.recv() => match cmd {
                    None => break,
                    Some(Cmd::Stop(done)) => stopped = Some(done),
                    Some(Cmd::Look) => {
                        while let Ok(cmd) = pokes.try_recv() {
                            if let Cmd::Stop(done) = cmd {
                                stopped = Some(done);
                            }
                        }
                    }
                },
                () = tokio::time::sleep_until(next) => {}
            }
        }
        self.users().remove(&email);
    }

    fn expires(&self) -> u32 {
        self.inner.sender.config.expires
    }

    /// Sends a REGISTER for `dialog` asking `expires` seconds (0: remove the binding),
    /// answering one digest challenge and one 423; the lifetime granted.
    async fn register(&self, dialog: &mut Dialog, expires: u32) -> Result<u32, RegisterError> {
        let sender = &self.inner.sender;
        let refused = |code, reason: &str| RegisterError::Refused(status(code, reason));
        let Some(peer) = sender.peer().await else {
            return Err(refused(503, "cannot resolve the upstream server"));
        };
        let Some((_, domain)) = dialog.email.rsplit_once('@') else {
            return Err(refused(404, "not an email"));
        };
        let request_uri = Uri::parse(&format!("sip:{domain}"))
            .map_err(|_| refused(404, "the email's domain is not a SIP host"))?;
        let local = outgoing::local_addr(sender.listen, peer);
        let contact = format!(
            "<{}>",
            outgoing::own_uri(
                sender.listen,
                peer,
                Some(&contact_user(&dialog.email)),
                false
            )
        );
        let aor = format!("<sip:{}>", super::im::sip_user(&dialog.email));
        let credentials = sender.credentials_of(&dialog.email);
        let mut asked = expires;
        let mut answer: Option<(&'static str, String)> = None;
        let mut challenged = false;
        let mut too_brief = false;
        loop {
            dialog.cseq += 1;
            let mut req =
                outgoing::request(Method::REGISTER, request_uri.clone(), local, peer.transport);
            req.push("From", format!("{aor};tag={}", dialog.tag));
            req.push("To", aor.clone());
            req.push("Call-ID", dialog.call_id.clone());
            req.push("CSeq", format!("{} REGISTER", dialog.cseq));
            req.push("Contact", contact.clone());
            req.push("Expires", asked.to_string());
            if let Some((name, value)) = answer.take() {
                req.push(name, value);
            }
            let response = transact(&sender.endpoint, &req, peer)
                .await
                .map_err(|_| RegisterError::Stopped)?;
            let Some(response) = response else {
                return Err(refused(408, "Request Timeout"));
            };
            let (code, reason) = match &response.start {
                StartLine::Response { code, reason } => (*code, reason.clone()),
                StartLine::Request { .. } => (500, String::new()),
            };
            match code {
                200..=299 => return Ok(granted(&response, &contact_user(&dialog.email), asked)),
                401 | 407 if !challenged => {
                    challenged = true;
                    answer = authorization(&response, credentials, &request_uri, &Method::REGISTER);
                    if answer.is_none() {
                        return Err(refused(code, "no credentials for its challenge"));
                    }
                }
                423 if !too_brief && expires > 0 => {
                    too_brief = true;
                    match response
                        .header("Min-Expires")
                        .and_then(restsip_sip::message::parse_u32)
                    {
                        Some(min) if min > asked => asked = min,
                        _ => return Err(refused(code, &reason)),
                    }
                }
                _ => return Err(refused(code, &reason)),
            }
        }
    }
}

/// The lifetime a 2xx to REGISTER granted the relay's Contact (whose user part is `user`): its
/// `expires` parameter, else the Expires header, else what was asked.
fn granted(response: &SipMessage, user: &str, asked: u32) -> u32 {
    let mine = response.contacts().ok().flatten().and_then(|list| {
        list.into_iter().find(|c| {
            c.uri
                .sip()
                .and_then(|s| s.user.as_deref())
                .is_some_and(|u| unescape(u) == unescape(user))
        })
    });
    mine.and_then(|c| {
        c.param("expires")
            .flatten()
            .and_then(restsip_sip::message::parse_u32)
    })
    .or_else(|| response.expires().ok().flatten())
    .unwrap_or(asked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_contact_names_its_user() {
        let user = contact_user("alice@example.net");
        assert_eq!(user, "alice%40example.net");
        let uri = Uri::parse(&format!("sip:{user}@192.0.2.10:5060;transport=tcp")).expect("uri");
        assert_eq!(
            inbound(&uri).map(|u| u.to_string()),
            Some("sip:alice@example.net".into())
        );
        let plain = Uri::parse("sip:alice@192.0.2.10:5060").expect("uri");
        assert!(inbound(&plain).is_none());
        assert!(inbound(&Uri::parse("sip:192.0.2.10").expect("uri")).is_none());
    }

    #[test]
    fn registrations_are_refreshed_before_they_end() {
        assert_eq!(refresh_after(600), Duration::from_secs(540));
        assert_eq!(refresh_after(10), Duration::from_secs(5));
        assert_eq!(refresh_after(0), Duration::from_secs(1));
    }

    #[test]
    fn the_granted_lifetime_is_the_contacts() {
        let mut resp = SipMessage {
            start: StartLine::Response {
                code: 200,
                reason: "OK".into(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        resp.push("Contact", "<sip:phone@192.0.2.1>;expires=3600");
        resp.push(
            "Contact",
            "<sip:alice%40example.net@192.0.2.10>;expires=120",
        );
        assert_eq!(granted(&resp, "alice%40example.net", 600), 120);
        assert_eq!(granted(&resp, "bob%40example.net", 600), 600);
    }
}
