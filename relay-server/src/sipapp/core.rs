//! What the relay answers to a new request: the checks every request goes through (method,
//! CSeq, Require, URI scheme) and the handlers of the methods implemented so far.

use std::sync::LazyLock;

use restsip_sip::endpoint::{Endpoint, Responder};
use restsip_sip::endpoint::{Handler, Pending};
use restsip_sip::message::{Method, SipMessage, StartLine};
use restsip_sip::response::Reply;
use restsip_sip::transport::Peer;

use super::registrar::Registrar;
use crate::inbox::Inbox;

/// The methods the core answers itself.
const METHODS: &[&str] = &["OPTIONS"];

/// The methods the relay handles: what each feature declares, gathered.
static ALLOW: LazyLock<String> = LazyLock::new(|| {
    [
        super::invite::METHODS,
        super::registrar::METHODS,
        METHODS,
        super::im::METHODS,
        super::presence::METHODS,
        super::service::METHODS,
    ]
    .concat()
    .join(", ")
});
/// Body types the relay accepts.
pub const ACCEPT: &str =
    "application/sdp, text/plain, application/json, text/xml, application/soap+xml";
/// Option tags the relay supports (RFC 3327 Path: kept with bindings and echoed).
pub const SUPPORTED: &str = "path, timer";

/// The next step for a request.
#[derive(Debug)]
pub enum Step {
    /// Answer at once.
    Reply(Reply),
    /// Answer after asynchronous work (the store).
    Async(Task),
    /// An INVITE: 100 Trying at once, then [`Core::invite`] answers it over time.
    Invite,
    /// A MESSAGE: [`Core::message`] proxies it to phones or hands it to the web user.
    Message,
    /// A SERVICE: [`Core::service`] proxies it to a user's phones or dispatches it to a service.
    Service,
    /// A request whose top Route names the relay: [`Core::route`] passes it on (100 Trying
    /// first for an INVITE).
    Route,
    /// A SUBSCRIBE with an upstream server: [`Core::subscribe`] proxies one for a non-account
    /// there, else answers it as a presence subscription.
    Subscribe,
}

/// Work that needs the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// REGISTER.
    Register,
    /// SUBSCRIBE (RFC 6665, presence): a subscription to the user's logins.
    Subscribe,
    /// BYE: the end of a call's dialog.
    Bye,
    /// NOTIFY of a subscription the relay holds through the upstream server.
    Notify,
    /// UPDATE (RFC 3311) in a call between a phone and a web user: a session refresh.
    Update,
    /// INFO: a key press in a call between a phone and a web user.
    Info,
}

/// The request handlers; cheap to clone.
#[derive(Clone)]
pub struct Core {
    /// REGISTER.
    registrar: Registrar,
    /// SOAP services, for SERVICE; None answers every SERVICE with 501.
    services: Option<crate::soap::Services>,
    /// SENDs, for MESSAGE; None answers MESSAGE with 501.
    inbox: Option<Inbox>,
    /// Presence subscriptions; None answers SUBSCRIBE with 501.
    presence: Option<super::presence::Presence>,
    /// Calls between phones and web users; None answers INVITE and BYE with 501.
    invites: Option<super::invite::inbound::Invites>,
    /// Proxying between phones; None leaves every request to the gateway.
    proxy: Option<super::proxy::Proxy>,
    /// Whether users are registered at an upstream server: requests to the Contacts registered
    /// there are for the users they name.
    upstream: bool,
    /// Presence the relay watches through the upstream server; its NOTIFYs.
    watches: Option<super::watch::Watches>,
    /// Checks who sent requests (From a local user: credentials or the registration flow);
    /// None takes every From as it is.
    senders: Option<super::sender::Senders>,
}

fn not_implemented() -> Reply {
    Reply::new(501, "Not Implemented").with("Allow", ALLOW.as_str())
}

fn options() -> Reply {
    Reply::new(200, "OK")
        .with("Allow", ALLOW.as_str())
        .with("Accept", ACCEPT)
        .with("Supported", SUPPORTED)
}

impl Core {
    /// The handlers.
    pub fn new(registrar: Registrar) -> Self {
        Self {
            registrar,
            services: None,
            inbox: None,
            presence: None,
            invites: None,
            proxy: None,
            upstream: false,
            watches: None,
            senders: None,
        }
    }

    /// Checks the senders of requests with `senders`.
    pub fn with_senders(mut self, senders: super::sender::Senders) -> Self {
        self.senders = Some(senders);
        self
    }

    /// Checks the sender of a new request and asserts its identity (see
    /// [`super::sender`]); false when it was answered (challenged or refused). A request in
    /// a dialog the relay holds (a re-INVITE, a refresh of a subscription) is the dialog's.
    async fn sender_checked(&self, responder: &mut Responder) -> bool {
        let Some(senders) = &self.senders else {
            return true;
        };
        let req = responder.request();
        let in_dialog = req.to().is_ok_and(|to| to.tag().is_some());
        let method = req.method();
        if in_dialog && matches!(method, Some(m) if *m == Method::INVITE || *m == Method::SUBSCRIBE)
        {
            return true;
        }
        let source = responder.source();
        match senders.check(responder.request_mut(), source).await {
            Ok(()) => true,
            Err(reply) => {
                responder.reply(reply);
                false
            }
        }
    }

    /// Takes requests to the Contacts the relay registers at an upstream server
    /// (`sip:{escaped email}@{relay}`) as requests for those users.
    pub fn with_upstream(mut self) -> Self {
        self.upstream = true;
        self
    }

    /// A new request as the handlers see it: one for a Contact registered upstream gets the
    /// user's `sip:{email}` as its Request-URI.
    pub fn inbound(&self, req: &mut SipMessage) {
        if !self.upstream {
            return;
        }
        if let StartLine::Request { uri, .. } = &mut req.start {
            if let Some(user) = super::upstream::inbound(uri) {
                *uri = user;
            }
        }
    }

    /// Proxies INVITE and MESSAGE for users whose logins are all phones, and requests routed
    /// through the relay (RFC 3261 §16).
    pub fn with_proxy(mut self, proxy: super::proxy::Proxy) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// The proxy's bindings for the request's Request-URI user (empty: not proxied).
    async fn proxy_targets(&self, req: &SipMessage) -> Vec<crate::store::ContactRecord> {
        let (Some(_), Some(StartLine::Request { uri, .. })) = (&self.proxy, Some(&req.start))
        else {
            return Vec::new();
        };
        match (&self.proxy, uri.sip().and_then(|u| u.address())) {
            (Some(proxy), Some(email)) => proxy.targets(&email).await,
            _ => Vec::new(),
        }
    }

    /// Answers a MESSAGE: proxied to the user's phones when the user has only phones, or to
    /// the upstream server for a non-account, else a SEND to the user.
    pub async fn message(&self, responder: restsip_sip::endpoint::Responder) {
        let targets = self.proxy_targets(responder.request()).await;
        if let (Some(proxy), false) = (&self.proxy, targets.is_empty()) {
            proxy.fork(responder, targets).await;
            return;
        }
        let Some(responder) = self.via_upstream(responder).await else {
            return;
        };
        let reply = match &self.inbox {
            Some(inbox) => super::im::inbound::incoming(inbox, responder.request()).await,
            None => not_implemented(),
        };
        responder.reply(reply);
    }

    /// Proxies the request to the upstream server, or refuses it with 404 (not a SEND or a
    /// subscription here either: that would go upstream with the relay's credentials), when the
    /// proxy says so; the responder back when the relay answers the request itself.
    async fn via_upstream(
        &self,
        responder: restsip_sip::endpoint::Responder,
    ) -> Option<restsip_sip::endpoint::Responder> {
        let Some(proxy) = &self.proxy else {
            return Some(responder);
        };
        match proxy
            .to_upstream(responder.request(), responder.peer())
            .await
        {
            super::proxy::ToUpstream::Proxy => proxy.upstream(responder).await,
            super::proxy::ToUpstream::Refuse => {
                responder.reply(Reply::new(404, "Not Found"));
            }
            super::proxy::ToUpstream::No => return Some(responder),
        }
        None
    }

    /// Answers a SUBSCRIBE when there is an upstream server: one for a non-account From a
    /// relay account is proxied there (with the relay's Record-Route, so the NOTIFYs come back
    /// through the relay), one From a non-account is 404, the rest are presence subscriptions
    /// to the relay's users.
    pub async fn subscribe(&self, responder: restsip_sip::endpoint::Responder) {
        let Some(responder) = self.via_upstream(responder).await else {
            return;
        };
        let Some(presence) = &self.presence else {
            responder.reply(not_implemented());
            return;
        };
        let req = responder.request().clone();
        let reply = presence.subscribe(&req, responder.peer()).await;
        let code = reply.code;
        responder.reply(reply);
        presence.after(&req, code);
    }

    /// Answers a SERVICE: one for a user whose logins are all phones is proxied to them like
    /// any other request (the phone is the service); otherwise the SOAP body names the service,
    /// whatever the Request-URI's user (a page of that user, an HTTP endpoint, a built-in).
    pub async fn service(&self, responder: restsip_sip::endpoint::Responder) {
        let targets = self.proxy_targets(responder.request()).await;
        if let (Some(proxy), false) = (&self.proxy, targets.is_empty()) {
            proxy.fork(responder, targets).await;
            return;
        }
        let reply =
            super::service::inbound::answer(self.services.as_ref(), responder.request(), &ALLOW)
                .await;
        responder.reply(reply);
    }

    /// Passes on a request whose top Route names the relay.
    pub async fn route(&self, responder: restsip_sip::endpoint::Responder) {
        match &self.proxy {
            Some(proxy) => proxy.route(responder).await,
            None => {
                responder.reply(not_implemented());
            }
        }
    }

    /// A response that matches no client transaction (a retransmitted 2xx of a proxied
    /// INVITE goes on).
    pub fn stray_response(&self, resp: SipMessage, endpoint: &restsip_sip::endpoint::Endpoint) {
        if let Some(proxy) = &self.proxy {
            proxy.stray_response(resp, endpoint);
        }
    }

    /// Answers INVITE, CANCEL, BYE and the ACK of a 2xx with `invites`.
    pub fn with_invites(mut self, invites: super::invite::inbound::Invites) -> Self {
        self.invites = Some(invites);
        self
    }

    /// Answers an INVITE (after its 100 Trying): proxied to the user's phones when the user
    /// has only phones, or to the upstream server for a non-account, else a call to the web
    /// user.
    pub async fn invite(&self, responder: restsip_sip::endpoint::Responder) {
        if let Some(invites) = &self.invites {
            let call_id = responder.request().call_id().unwrap_or_default();
            if invites.owns(call_id) {
                // A re-INVITE in a call between a phone and a web user.
                if let Some(reply) = invites.reinvite(&responder).await {
                    responder.reply(reply);
                }
                return;
            }
        }
        let targets = self.proxy_targets(responder.request()).await;
        if let (Some(proxy), false) = (&self.proxy, targets.is_empty()) {
            proxy.fork(responder, targets).await;
            return;
        }
        if let Some(proxy) = &self.proxy {
            let to = proxy
                .to_upstream(responder.request(), responder.peer())
                .await;
            if to == super::proxy::ToUpstream::Proxy {
                proxy.upstream(responder).await;
                return;
            }
        }
        match &self.invites {
            Some(invites) => invites.invite(responder).await,
            None => {
                responder.reply(not_implemented());
            }
        }
    }

    /// A TCP connection closed: the calls whose phone was reached over it end.
    pub fn closed(&self, peer: Peer) {
        if let Some(invites) = &self.invites {
            invites.closed(peer);
        }
    }

    /// Takes the ACK of a 2xx (it matches no transaction); one routed through the relay
    /// goes on.
    pub fn ack(&self, req: &SipMessage, from: Peer) {
        if let Some(proxy) = self.proxy.as_ref().filter(|p| p.routed_here(req)) {
            proxy.route_ack(req, from);
            return;
        }
        if let Some(invites) = &self.invites {
            invites.acked(req);
        }
    }

    /// Takes the NOTIFYs of the subscriptions of `watches`.
    pub fn with_watches(mut self, watches: super::watch::Watches) -> Self {
        self.watches = Some(watches);
        self
    }

    /// Answers SUBSCRIBE (Event: presence) with `presence`.
    pub fn with_presence(mut self, presence: super::presence::Presence) -> Self {
        self.presence = Some(presence);
        self
    }

    /// What follows the response to a request handled by `task` (the NOTIFY after a 2xx to
    /// SUBSCRIBE).
    pub fn after(&self, task: Task, req: &SipMessage, code: u16) {
        if let (Task::Subscribe, Some(presence)) = (task, &self.presence) {
            presence.after(req, code);
        }
    }

    /// Delivers MESSAGE requests to users through `inbox`.
    pub fn with_inbox(mut self, inbox: Inbox) -> Self {
        self.inbox = Some(inbox);
        self
    }

    /// Answers SERVICE requests with `services`.
    pub fn with_services(mut self, services: crate::soap::Services) -> Self {
        self.services = Some(services);
        self
    }

    /// Decides what to do with a new request (ACKs never get here with a transaction).
    pub fn step(&self, req: &SipMessage) -> Step {
        let StartLine::Request { method, uri } = &req.start else {
            return Step::Reply(Reply::bad_request("not a request"));
        };
        if *method == Method::CANCEL {
            if let Some(reply) = self.proxy.as_ref().and_then(|p| p.cancel(req)) {
                return Step::Reply(reply);
            }
            return Step::Reply(match &self.invites {
                Some(invites) => invites.cancel(req),
                None => Reply::new(481, "Call/Transaction Does Not Exist"),
            });
        }
        let implemented = *method == Method::REGISTER || *method == Method::OPTIONS;
        if !implemented && !method.is_standard() {
            // An unknown method is refused before anything else (RFC 4475 §3.1.2.18).
            return Step::Reply(not_implemented());
        }
        match req.cseq() {
            Ok(cseq) if cseq.method == *method => {}
            Ok(_) => {
                return Step::Reply(Reply::bad_request("CSeq method differs from the request's"))
            }
            Err(why) => return Step::Reply(Reply::bad_request(why)),
        }
        let unsupported: Vec<&str> = req
            .headers_named("Require")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|tag| {
                !tag.is_empty() && !SUPPORTED.split(", ").any(|s| s.eq_ignore_ascii_case(tag))
            })
            .collect();
        if !unsupported.is_empty() {
            return Step::Reply(
                Reply::new(420, "Bad Extension").with("Unsupported", unsupported.join(", ")),
            );
        }
        if uri.sip().is_none() {
            return Step::Reply(Reply::new(416, "Unsupported URI Scheme"));
        }
        if *method == Method::REGISTER {
            return Step::Async(Task::Register);
        }
        if *method == Method::NOTIFY && self.watches.as_ref().is_some_and(|w| w.owns(req)) {
            return Step::Async(Task::Notify);
        }
        if self.proxy.as_ref().is_some_and(|p| p.routed_here(req)) {
            if req.max_forwards().ok().flatten() == Some(0) {
                return Step::Reply(Reply::new(483, "Too Many Hops"));
            }
            return Step::Route;
        }
        if *method == Method::SERVICE {
            if req.max_forwards().ok().flatten() == Some(0) {
                return Step::Reply(Reply::new(483, "Too Many Hops"));
            }
            return Step::Service;
        }
        if *method == Method::MESSAGE && self.inbox.is_some() {
            if req.max_forwards().ok().flatten() == Some(0) {
                return Step::Reply(Reply::new(483, "Too Many Hops"));
            }
            return Step::Message;
        }
        if (*method == Method::INVITE || *method == Method::BYE) && self.invites.is_some() {
            if req.max_forwards().ok().flatten() == Some(0) {
                return Step::Reply(Reply::new(483, "Too Many Hops"));
            }
            if *method == Method::BYE {
                return Step::Async(Task::Bye);
            }
            return Step::Invite;
        }
        if *method == Method::UPDATE && self.invites.is_some() {
            return Step::Async(Task::Update);
        }
        if *method == Method::INFO && self.invites.is_some() {
            return Step::Async(Task::Info);
        }
        if *method == Method::SUBSCRIBE && self.presence.is_some() {
            if self.upstream && self.proxy.is_some() {
                if req.max_forwards().ok().flatten() == Some(0) {
                    return Step::Reply(Reply::new(483, "Too Many Hops"));
                }
                return Step::Subscribe;
            }
            return Step::Async(Task::Subscribe);
        }
        // The same answer whoever the Request-URI's user is, an account or not (issue 18):
        // OPTIONS is answered by the relay, for any address it is asked about.
        Step::Reply(self.answer(method))
    }

    /// Does the asynchronous part of a request.
    pub async fn run(&self, task: Task, req: &SipMessage, from: Peer) -> Reply {
        match task {
            Task::Register => self.registrar.register(req, from).await,
            Task::Subscribe => match &self.presence {
                Some(presence) => presence.subscribe(req, from).await,
                None => not_implemented(),
            },
            Task::Notify => match &self.watches {
                Some(watches) => watches.notify(req),
                None => Reply::new(481, "Subscription Does Not Exist"),
            },
            Task::Bye => match &self.invites {
                Some(invites) => invites.bye(req).await,
                None => not_implemented(),
            },
            Task::Update => match &self.invites {
                Some(invites) => invites.update_request(req, from),
                None => not_implemented(),
            },
            Task::Info => match &self.invites {
                Some(invites) => invites.info(req).await,
                None => not_implemented(),
            },
        }
    }

    fn answer(&self, method: &Method) -> Reply {
        if *method == Method::OPTIONS {
            options()
        } else {
            not_implemented()
        }
    }
}

impl Handler for Core {
    fn request(&self, mut responder: Responder) {
        self.inbound(responder.request_mut());
        match self.step(responder.request()) {
            Step::Reply(reply) => {
                responder.reply(reply);
            }
            step @ (Step::Invite
            | Step::Message
            | Step::Service
            | Step::Route
            | Step::Subscribe) => {
                let invite = responder.request().method() == Some(&Method::INVITE);
                if matches!(step, Step::Invite) || (matches!(step, Step::Route) && invite) {
                    responder.reply(Reply::new(100, "Trying"));
                }
                let core = self.clone();
                tokio::spawn(async move {
                    // A routed request goes on along its Route set, to no user here.
                    let routed = matches!(step, Step::Route);
                    if !routed && !core.sender_checked(&mut responder).await {
                        return;
                    }
                    match step {
                        Step::Invite => core.invite(responder).await,
                        Step::Message => core.message(responder).await,
                        Step::Service => core.service(responder).await,
                        Step::Subscribe => core.subscribe(responder).await,
                        _ => core.route(responder).await,
                    }
                });
            }
            Step::Async(task) => {
                let core = self.clone();
                tokio::spawn(async move {
                    if task == Task::Subscribe && !core.sender_checked(&mut responder).await {
                        return;
                    }
                    let req = responder.request();
                    let reply = core.run(task, req, responder.source()).await;
                    let code = reply.code;
                    responder.reply(reply);
                    core.after(task, responder.request(), code);
                });
            }
        }
    }

    fn stateless_now(&self, req: &SipMessage, from: Peer) -> Option<Reply> {
        self.registrar.register_now(req, from)
    }

    fn stateless<'a>(&'a self, req: &'a SipMessage, from: Peer) -> Pending<'a, Reply> {
        Box::pin(self.registrar.register(req, from))
    }

    fn ack(&self, req: &SipMessage, from: Peer) {
        Core::ack(self, req, from);
    }

    fn stray_response(&self, resp: SipMessage, endpoint: &Endpoint) {
        Core::stray_response(self, resp, endpoint);
    }

    fn closed(&self, peer: Peer) {
        Core::closed(self, peer);
    }

    fn allow(&self) -> &str {
        &ALLOW
    }
}
