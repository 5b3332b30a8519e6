//! Who sent a request (the credential defines the sender, as over REST): a request whose
//! From is a local user (an account) is taken as that user's only when it carries the user's
//! digest credentials (407 otherwise, RFC 3261 §22.3) or arrives over the very flow the user
//! registered on (same transport and source address; for TCP the same connection, RFC 5626
//! style). The relay strips any P-Asserted-Identity the sender supplied and asserts the
//! identity it checked (RFC 3325): downstream, a P-Asserted-Identity is the relay's word.
//! A request from an address to itself (From = Request-URI, as scanners send) is challenged
//! the same way when the address is no account (and refused after: no password matches), so
//! nobody tells accounts from other addresses by asking each about itself. Requests from
//! other domains are taken unauthenticated, or only from the upstream server
//! (`--sip-foreign-from upstream-only`). The upstream server is a trusted hop: what it
//! asserts is kept, and the From of its requests is taken as checked.

use std::sync::Arc;

use restsip_protocol::ContactSource;
use restsip_sip::message::{SipMessage, StartLine};
use restsip_sip::response::Reply;
use restsip_sip::transport::Peer;
use serde_json::Value;

use super::credentials::{Asker, Checker};
use super::seal::{seal, SEAL};
use super::upstream::UpstreamSender;
use crate::location::Location;
use crate::store::Store;

pub use super::asserted::ASSERTED;

/// Whether `req` carries the relay's own seal.
fn sealed(req: &SipMessage) -> bool {
    match (req.header(SEAL), req.call_id(), req.header("From")) {
        (Some(value), Some(call_id), Some(from)) => value.trim() == seal(call_id, from),
        _ => false,
    }
}

/// Whom requests whose From is another domain are taken from (`--sip-foreign-from`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForeignFrom {
    /// Anyone (a SIP server takes calls and messages from other domains); they are shown as
    /// unauthenticated.
    #[default]
    Any,
    /// Only the configured upstream server; others get 403.
    UpstreamOnly,
}

impl ForeignFrom {
    /// The setting of a flag value (`any`, `upstream-only`).
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "any" => Some(ForeignFrom::Any),
            "upstream-only" => Some(ForeignFrom::UpstreamOnly),
            _ => None,
        }
    }
}

/// Checks the senders of requests; cheap to clone.
#[derive(Clone)]
pub struct Senders {
    /// The digest check the registrar uses too.
    credentials: Checker,
    /// Accounts.
    store: Arc<dyn Store>,
    /// The users' SIP bindings: the flows they registered on.
    location: Location,
    /// Who may send requests from other domains.
    foreign: ForeignFrom,
    /// The upstream server, a trusted hop.
    upstream: Option<Arc<UpstreamSender>>,
}

impl Senders {
    /// Checks senders with `credentials` over the accounts of `store` and the bindings of
    /// `location`.
    pub fn new(
        credentials: Checker,
        store: Arc<dyn Store>,
        location: Location,
        foreign: ForeignFrom,
        upstream: Option<Arc<UpstreamSender>>,
    ) -> Self {
        Self {
            credentials,
            store,
            location,
            foreign,
            upstream,
        }
    }

    /// Checks the sender of `req`, which came from `from`, and rewrites its identity: Ok with
    /// the request carrying the relay's P-Asserted-Identity when its From is a local user
    /// who proved it, with none when the sender is unauthenticated (another domain, or
    /// authentication off); Err is the challenge (407) or refusal (403) to answer.
    pub async fn check(&self, req: &mut SipMessage, from: Peer) -> Result<(), Reply> {
        // A request this relay sent itself for a web user it authenticated over REST (POST
        // /service to its own address) carries its seal.
        let own = sealed(req);
        req.remove(SEAL);
        if own || self.is_upstream(from).await {
            // A trusted hop (RFC 3325 §5) that authenticates its own users (or the relay
            // itself): what it asserts stands, and its From is its word when it asserts
            // nothing else.
            if req.header(ASSERTED).is_none() {
                if let Some(address) = from_address(req) {
                    req.push(ASSERTED, format!("<sip:{address}>"));
                }
            }
            return Ok(());
        }
        req.remove(ASSERTED);
        req.remove("P-Preferred-Identity");
        let Some(address) = from_address(req) else {
            return self.foreign();
        };
        let account = match self.store.user(&address).await {
            Ok(user) => user.is_some(),
            Err(e) => {
                tracing::warn!(error = %e, "user lookup failed");
                return Err(Reply::new(500, "Server Internal Error"));
            }
        };
        if !self.credentials.on() {
            // Anyone may be anyone: nothing is asserted.
            return if account { Ok(()) } else { self.foreign() };
        }
        if !account && !to_itself(req, &address) {
            return self.foreign();
        }
        // An account, or an address sending to itself: both go the same way, the latter
        // against random secrets (credentials.rs), so the answers (407, then 403) and their
        // cost tell no account from an address that is none.
        if !self.registered_flow(&address, from).await {
            let digest = self.credentials.secrets(&address).await?;
            self.credentials
                .verify(Asker::Proxy, req, &address, digest.as_ref(), from)?;
        }
        // The credentials for this realm were for this hop only (RFC 3261 §22.3); those for
        // another (the upstream's) go on.
        let realm = self.credentials.realm().unwrap_or_default().to_owned();
        req.headers.retain(|h| {
            !h.name.eq_ignore_ascii_case("Proxy-Authorization")
                || restsip_sip::digest::Credentials::parse(&h.value)
                    .is_none_or(|c| c.realm != realm)
        });
        req.push(ASSERTED, format!("<sip:{address}>"));
        Ok(())
    }

    /// A request from another domain (or with a From that is no SIP address).
    fn foreign(&self) -> Result<(), Reply> {
        match self.foreign {
            ForeignFrom::Any => Ok(()),
            ForeignFrom::UpstreamOnly => Err(Reply::new(
                403,
                "Forbidden (requests from other domains come through the upstream server only)",
            )),
        }
    }

    /// Whether `from` is the upstream server.
    async fn is_upstream(&self, from: Peer) -> bool {
        match &self.upstream {
            Some(upstream) => upstream.peer().await.map(|p| p.addr) == Some(from.addr),
            None => false,
        }
    }

    /// Whether `address` has a live SIP binding registered over `from` (same transport and
    /// source address: for TCP, the same connection).
    async fn registered_flow(&self, address: &str, from: Peer) -> bool {
        let bindings = match self.location.sip_bindings(address).await {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(error = %e, "binding lookup failed");
                return false;
            }
        };
        bindings.iter().any(|b| {
            let route = b.sip.as_ref();
            let field = |name: &str| route.and_then(|r| r.get(name)).and_then(Value::as_str);
            b.source == ContactSource::Sip
                && field("transport").is_some_and(|t| t.eq_ignore_ascii_case(from.transport.name()))
                && field("source") == Some(from.addr.to_string().as_str())
        })
    }
}

/// Whether the From `address` is the request's Request-URI address: a request from an
/// address to itself (as scanners send them, From = To) is taken as that user's, challenged
/// like an account's whether or not the address is one.
fn to_itself(req: &SipMessage, address: &str) -> bool {
    let StartLine::Request { uri, .. } = &req.start else {
        return false;
    };
    uri.sip().and_then(|u| u.address()).as_deref() == Some(address)
}

/// The address of the request's From (an email), if it is a SIP address.
fn from_address(req: &SipMessage) -> Option<String> {
    req.from().ok()?.uri.sip()?.address()
}

/// The identity the relay (or the trusted upstream) asserted for `req`: the address of its
/// P-Asserted-Identity; None for an unauthenticated sender.
pub fn asserted(req: &SipMessage) -> Option<String> {
    let value = req.header(ASSERTED)?;
    let uri = match value.split_once('<') {
        Some((_, rest)) => rest.split('>').next().unwrap_or_default(),
        None => value.trim(),
    };
    restsip_sip::uri::Uri::parse(uri).ok()?.sip()?.address()
}
