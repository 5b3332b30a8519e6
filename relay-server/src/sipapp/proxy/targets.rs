//! Which requests the proxy takes and where they go: to the upstream server (a relay user's
//! request for a non-account), to a user's SIP bindings, or on along a Route naming the relay.

use std::net::IpAddr;

use restsip_protocol::ContactSource;

use super::{top_route, Proxy, ToUpstream};
use crate::clock::now_ms;
use crate::sipapp::contact::contact_peer;
use crate::store::ContactRecord;
use restsip_sip::endpoint::Endpoint;
use restsip_sip::message::{SipMessage, StartLine};
use restsip_sip::transport::Peer;
use restsip_sip::uri::Uri;

impl Proxy {
    /// Whether `req`, which `from` sent, goes to the upstream server: there is one, the
    /// Request-URI names an address that is no account here, the From is an account (a phone
    /// of a relay user; the relay is no open relay) and the request did not come from the
    /// upstream server itself (no loop). A request for a non-account that may not go there is
    /// [`ToUpstream::Refuse`].
    pub async fn to_upstream(&self, req: &SipMessage, from: Peer) -> ToUpstream {
        let Some(upstream) = self.inner.upstream.as_ref() else {
            return ToUpstream::No;
        };
        let StartLine::Request { uri, .. } = &req.start else {
            return ToUpstream::No;
        };
        let Some(target) = uri.sip().and_then(|u| u.address()) else {
            return ToUpstream::No;
        };
        let store = &self.inner.store;
        match store.user(&target).await {
            Ok(None) => {}
            Ok(Some(_)) => return ToUpstream::No,
            Err(e) => {
                tracing::warn!(error = %e, "user lookup failed");
                return ToUpstream::No;
            }
        }
        let sender = req
            .from()
            .ok()
            .and_then(|f| f.uri.sip().and_then(|u| u.address()));
        let account = match sender {
            Some(sender) => match store.user(&sender).await {
                Ok(found) => found.is_some(),
                Err(e) => {
                    tracing::warn!(error = %e, "user lookup failed");
                    false
                }
            },
            None => false,
        };
        if account && upstream.peer().await.map(|p| p.addr) != Some(from.addr) {
            ToUpstream::Proxy
        } else {
            ToUpstream::Refuse
        }
    }

    /// The SIP bindings to proxy a request for `email` to: the user's contacts when every
    /// live one is a SIP binding (a user with a web login is served by the gateway instead).
    pub async fn targets(&self, email: &str) -> Vec<ContactRecord> {
        match self.inner.store.contacts(email, now_ms()).await {
            Ok(contacts)
                if !contacts.is_empty()
                    && contacts.iter().all(|c| c.source == ContactSource::Sip) =>
            {
                contacts
            }
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::warn!(error = %e, "contact lookup failed");
                Vec::new()
            }
        }
    }

    /// The flow of the phone a routed request (its Route naming the relay spent) is for: when
    /// no Route is left and its Request-URI is the Contact of a binding of its To user (as
    /// another relay sharing the store sends them, `contact::contact_hop`), the transport and
    /// source that binding registered from (RFC 5626 style: over TCP, its connection while
    /// open), or the reason (`contact_peer`'s checks) it is not reached. None otherwise: the
    /// request goes to its Request-URI, never back to a relay.
    pub async fn flow_of(
        &self,
        req: &SipMessage,
        endpoint: &Endpoint,
    ) -> Option<Result<Peer, &'static str>> {
        if top_route(req).is_some() {
            return None;
        }
        let StartLine::Request { uri, .. } = &req.start else {
            return None;
        };
        let email = req.to().ok()?.uri.sip()?.address()?;
        let contacts = match self.inner.store.contacts(&email, now_ms()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "contact lookup failed");
                return None;
            }
        };
        let target = uri.to_string();
        let binding = contacts.iter().find(|c| {
            c.source == ContactSource::Sip
                && c.contact
                    .as_deref()
                    .and_then(|s| Uri::parse(s).ok())
                    .is_some_and(|u| u.to_string() == target)
        })?;
        Some(contact_peer(binding, |p| endpoint.is_open(p)).map(|(_, peer)| peer))
    }

    /// Whether the request's top Route names the relay and the request goes on from here
    /// (another Route follows, or the Request-URI is another IP address: an in-dialog
    /// request). A request whose only Route is the relay and whose Request-URI is a user at a
    /// domain, or the relay itself, is the relay's own (a phone using it as outbound proxy).
    pub fn routed_here(&self, req: &SipMessage) -> bool {
        if !top_route(req).is_some_and(|r| self.is_relay(&r.uri)) {
            return false;
        }
        let routes: usize = req
            .headers_named("Route")
            .map(|v| restsip_sip::headers::split_list(v).len())
            .sum();
        if routes > 1 {
            return true;
        }
        let StartLine::Request { uri, .. } = &req.start else {
            return false;
        };
        let ip_literal = uri.sip().is_some_and(|u| {
            u.host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok()
        });
        ip_literal && !self.is_relay_host(uri) && !self.is_own_address(req, uri)
    }

    /// Whether `uri` is an address of record of the relay's own IP domain: a user at the
    /// relay's IP address, no port, in a request outside any dialog (no To tag). Such a
    /// request with a preloaded Route to the relay is served as if the Route were absent,
    /// as for a name domain (an account `web@127.0.0.1`); an in-dialog request to a phone's
    /// Contact at the same IP goes on.
    fn is_own_address(&self, req: &SipMessage, uri: &Uri) -> bool {
        let Some(sip) = uri.sip() else {
            return false;
        };
        let host = sip.host.trim_start_matches('[').trim_end_matches(']');
        let in_dialog = req.to().is_ok_and(|to| to.tag().is_some());
        sip.user.is_some()
            && sip.port.is_none()
            && !in_dialog
            && host.parse::<IpAddr>().ok() == Some(self.inner.endpoint.listen().addr.ip())
    }
}
