//! The SIP endpoint: parses what the transports receive, fills in `received` and `rport`
//! (RFC 3581), routes responses back per RFC 3261 §18.2.2, runs requests through the
//! transaction layer and hands new ones to the application's [`Handler`].

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use bytes::Bytes;

use super::headers::Via;
use super::message::{Method, SipMessage, StartLine};
use super::outgoing::Listening;
use super::parse::{parse_datagram, parse_head, Rejected};
use super::pike::{Pike, Verdict};
use super::response::{build, new_tag, Reply};
use super::stats::Direction;
use super::transaction::server::Received;
use super::transaction::ClientTransactions;
use super::transaction::ServerTransactions;
use super::transaction::TxKey;
use super::transport::{Inbound, Peer, Transport, Wire};

// What the endpoint hands to the application above it: the stack owns this trait, the
// application implements it, so the transaction layer never names an application type.

/// A future the handler returns for work that waits (the store, a person, another server).
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The application's side of the endpoint.
pub trait Handler: Send + Sync + 'static {
    /// A new request in its server transaction; `responder` sends its responses, at once or
    /// later (the handler spawns what waits).
    fn request(&self, responder: Responder);

    /// The answer to a request run without a server transaction (a REGISTER that keeps its
    /// bindings: processing it again changes nothing), when it can be given from memory.
    fn stateless_now(&self, req: &SipMessage, from: Peer) -> Option<Reply>;

    /// The answer to such a request when it needs the store.
    fn stateless<'a>(&'a self, req: &'a SipMessage, from: Peer) -> Pending<'a, Reply>;

    /// The ACK of a 2xx: it matches no transaction.
    fn ack(&self, req: &SipMessage, from: Peer);

    /// A response that matches no client transaction (a retransmitted 2xx of a forwarded
    /// INVITE, for one).
    fn stray_response(&self, resp: SipMessage, endpoint: &Endpoint);

    /// A connection closed (over TCP: the dialogs reached over it are gone).
    fn closed(&self, peer: Peer);

    /// The methods the application handles, as an Allow header lists them.
    fn allow(&self) -> &str;
}

/// The SIP endpoint; cheap to clone.
#[derive(Clone)]
pub struct Endpoint {
    /// Shared state.
    inner: Arc<Inner>,
}

/// A handle that does not keep the endpoint alive (for what the endpoint owns: the
/// application's features and the transports).
#[derive(Clone)]
pub struct WeakEndpoint {
    /// The endpoint.
    inner: Weak<Inner>,
    /// Its listening addresses.
    listen: Listening,
}

impl WeakEndpoint {
    /// The endpoint, if it still exists.
    pub fn upgrade(&self) -> Option<Endpoint> {
        self.inner.upgrade().map(|inner| Endpoint { inner })
    }

    /// The addresses the endpoint listens on (UDP and TCP; TLS when on).
    pub fn listen(&self) -> Listening {
        self.listen
    }
}

struct Inner {
    /// Itself, for handing out handles from `&self`.
    me: Weak<Inner>,
    /// Server transactions.
    server: ServerTransactions,
    /// Client transactions (requests the relay sends).
    client: ClientTransactions,
    /// Where stateless responses go.
    wire: Arc<dyn Wire>,
    /// What answers requests.
    handler: Box<dyn Handler>,
    /// Largest message accepted.
    max_message: usize,
    /// The listening addresses.
    listen: Listening,
    /// The REGISTERs waiting for the store, by transaction.
    registering: Mutex<HashSet<TxKey>>,
    /// The per-source request rate limit, once set (none: unlimited).
    pike: OnceLock<Pike>,
}

/// Most REGISTERs waiting for the store at once; past it the relay is overloaded and answers
/// 503 with Retry-After (RFC 3261 §21.5.4) rather than queue without end.
pub const MAX_REGISTERS_WAITING: usize = 2048;

/// Seconds an overloaded registrar asks a client to wait before it tries again.
const OVERLOAD_RETRY_AFTER: &str = "2";

impl Endpoint {
    /// An endpoint on `listen`, built at once with what it owns: the wire its transports make
    /// from the receiving side they are given (`wire`), and the application that answers
    /// requests (`handler`, also given what else it builds, `T`), both handed a weak handle.
    pub fn build<T>(
        listen: Listening,
        max_message: usize,
        wire: impl FnOnce(Weak<dyn Inbound>) -> Arc<dyn Wire>,
        handler: impl FnOnce(&WeakEndpoint) -> (Box<dyn Handler>, T),
    ) -> (Self, T) {
        let mut extra = None;
        let inner = Arc::new_cyclic(|me: &Weak<Inner>| {
            let inbound: Weak<dyn Inbound> = me.clone();
            let wire = wire(inbound);
            let (handler, t) = handler(&WeakEndpoint {
                inner: me.clone(),
                listen,
            });
            extra = Some(t);
            Inner {
                me: me.clone(),
                server: ServerTransactions::new(wire.clone()),
                client: ClientTransactions::new(wire.clone()),
                wire,
                handler,
                max_message,
                listen,
                registering: Mutex::new(HashSet::new()),
                pike: OnceLock::new(),
            }
        });
        let Some(extra) = extra else {
            unreachable!("new_cyclic runs its closure once")
        };
        (Self { inner }, extra)
    }

    /// A handle that does not keep the endpoint alive.
    pub fn downgrade(&self) -> WeakEndpoint {
        WeakEndpoint {
            inner: Arc::downgrade(&self.inner),
            listen: self.inner.listen,
        }
    }

    /// The addresses the endpoint listens on.
    pub fn listen(&self) -> Listening {
        self.inner.listen
    }

    /// The methods the application handles, for Allow headers.
    pub fn allow(&self) -> &str {
        self.inner.handler.allow()
    }

    /// Limits the requests each source may send (set once, before receiving starts; until
    /// then, and without it, nothing is limited).
    pub fn limit_rate(&self, pike: Pike) {
        let _ = self.inner.pike.set(pike);
    }

    /// Whether the request `req` from `from` may be handled under the rate limit; past it
    /// the source is answered 503 with Retry-After once in a window, then not at all. ACKs
    /// are never limited (nor responses, which do not come here).
    fn admitted(&self, req: &SipMessage, from: Peer) -> bool {
        let Some(pike) = self.inner.pike.get() else {
            return true;
        };
        if req.method().is_none_or(|m| *m == Method::ACK) {
            return true;
        }
        match pike.check(from.addr.ip()) {
            Verdict::Pass => true,
            Verdict::Refuse(retry_after) => {
                tracing::warn!(
                    peer = %from.addr,
                    transport = %from.transport,
                    retry_after,
                    "SIP requests over the rate limit: answered 503, then dropped for {retry_after} s"
                );
                let reply = Reply::new(503, "Service Unavailable (rate limit)")
                    .with("Retry-After", retry_after.to_string());
                self.stateless(req, from, reply);
                false
            }
            Verdict::Drop => false,
        }
    }

    /// The endpoint as the transports see it.
    pub fn inbound(&self) -> Arc<dyn Inbound> {
        self.inner.clone()
    }

    /// Answers a double-CRLF keep-alive ping with a CRLF pong (RFC 5626 §4.4.1).
    fn pong(&self, to: Peer) {
        self.inner.wire.send(to, Bytes::from_static(b"\r\n"));
    }

    /// A TCP connection closed (the transport says so once it is gone): calls over it end.
    fn connection_closed(&self, peer: Peer) {
        self.inner.client.connection_closed(peer);
        self.inner.handler.closed(peer);
    }

    /// Answers 400 to a message whose length cannot be framed (the stream is closed then).
    fn bad_framing(&self, partial: Option<Box<SipMessage>>, from: Peer) {
        if let Some(msg) = partial {
            self.stateless(&msg, from, Reply::bad_request("bad Content-Length"));
        }
    }

    /// The client transactions, for requests the relay originates.
    pub fn client(&self) -> &ClientTransactions {
        &self.inner.client
    }

    /// Sends bytes to `to` outside any transaction (a 2xx retransmitted until its ACK).
    pub fn send_to(&self, to: Peer, data: Bytes) {
        self.inner.wire.send(to, data);
    }

    /// The name the TLS certificate of the peer at `addr` must carry when the relay connects to
    /// it (a host name it resolved to reach it); without one, its IP address.
    pub fn expect_tls_name(&self, addr: SocketAddr, name: &str) {
        self.inner.wire.expect_name(addr, name);
    }

    /// Whether a connection to `to` is open (always true for UDP).
    pub fn is_open(&self, to: Peer) -> bool {
        self.inner.wire.is_open(to)
    }

    /// The server transactions (for tests and statistics).
    pub fn server(&self) -> &ServerTransactions {
        &self.inner.server
    }

    /// Largest message accepted.
    pub fn max_message(&self) -> usize {
        self.inner.max_message
    }

    /// Handles one UDP datagram.
    fn on_datagram(&self, data: &[u8], from: Peer) {
        if data.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            return; // a keep-alive
        }
        if data.len() > self.inner.max_message {
            let head = super::parse::head_end(data).map_or(data, |(end, _)| &data[..end]);
            self.too_large(parse_head(head).ok().map(Box::new), from);
            return;
        }
        self.on_parsed(parse_datagram(data), from);
    }

    /// Handles a message a stream framer found (or refused).
    fn on_parsed(&self, parsed: Result<SipMessage, Rejected>, from: Peer) {
        match parsed {
            Ok(msg) => match &msg.start {
                StartLine::Request { method, .. } => {
                    crate::stats::request(Direction::In, method);
                    self.on_request(msg, from)
                }
                StartLine::Response { code, .. } => {
                    crate::stats::response(Direction::In, *code);
                    // Responses that match no client transaction go on when the relay
                    // forwarded their request (a retransmitted 2xx), else are dropped.
                    if let Some(stray) = self.inner.client.on_response_or_back(msg) {
                        self.inner.handler.stray_response(stray, self);
                    }
                }
            },
            Err(rejected) => {
                tracing::debug!(%from.addr, reason = %rejected.reason, "malformed SIP message");
                if let Some(partial) = rejected.partial.filter(|p| self.admitted(p, from)) {
                    let reply = if rejected.status == 505 {
                        Reply::new(505, "Version Not Supported")
                    } else {
                        Reply::bad_request(&rejected.reason)
                    };
                    self.stateless(&partial, from, reply);
                }
            }
        }
    }

    /// Answers 513 to a request too large to handle, if enough of it could be read.
    fn too_large(&self, partial: Option<Box<SipMessage>>, from: Peer) {
        if let Some(msg) = partial.filter(|m| self.admitted(m, from)) {
            self.stateless(&msg, from, Reply::new(513, "Message Too Large"));
        }
    }

    /// A response outside any transaction (to requests that could not be parsed in full).
    fn stateless(&self, req: &SipMessage, from: Peer, reply: Reply) {
        if req.method().is_none_or(|m| *m == Method::ACK) {
            return; // never answer an ACK or a response
        }
        let top = req.header("Via").unwrap_or_default();
        let (mut via, whole) = match req.top_via() {
            Ok(via) => (via, true),
            Err(_) => match Via::parse_sent_by(top) {
                Ok(via) => (via, false),
                Err(_) => return, // nowhere to send an answer
            },
        };
        let to = stamp_via(&mut via, from);
        let response = if whole {
            build(req, Some(&via.to_string()), &reply, &new_tag())
        } else {
            // Answer with the readable part of the top Via only, not the malformed rest.
            let mut req = req.clone();
            req.remove("Via");
            req.headers.insert(
                0,
                super::message::Header {
                    name: "Via".into(),
                    value: via.to_string(),
                },
            );
            build(&req, None, &reply, &new_tag())
        };
        crate::stats::response(Direction::Out, reply.code);
        self.inner.wire.send(to, Bytes::from(response.to_bytes()));
    }

    fn on_request(&self, req: SipMessage, from: Peer) {
        if !self.admitted(&req, from) {
            return;
        }
        let Ok(mut via) = req.top_via() else { return };
        let Some(key) = TxKey::of(&req, &via) else {
            return;
        };
        let to = stamp_via(&mut via, from);
        let is_ack = req.method() == Some(&Method::ACK);
        if stateless(&req) {
            // No server transaction: a retransmission is processed again, which changes
            // nothing (same Call-ID and CSeq, RFC 3261 §10.3) and is answered alike.
            let top = via.to_string();
            let tag = stable_tag(&req, &key);
            let tagged = |reply: Reply| Reply {
                to_tag: reply.to_tag.clone().or(Some(tag)),
                ..reply
            };
            // A refresh is answered here, in the receiving task; the rest needs the store.
            if let Some(reply) = self.inner.handler.stateless_now(&req, from) {
                self.respond(&req, &top, &key, to, tagged(reply));
                return;
            }
            let Some(waiting) = self.wait_for_store(&key) else {
                return; // a retransmission of one in progress: its answer comes
            };
            let Ok(waiting) = waiting else {
                let busy = Reply::new(503, "Service Unavailable (overloaded)")
                    .with("Retry-After", OVERLOAD_RETRY_AFTER);
                self.respond(&req, &top, &key, to, tagged(busy));
                return;
            };
            tokio::spawn(async move {
                let endpoint = &waiting.endpoint;
                let reply = endpoint.inner.handler.stateless(&req, from).await;
                endpoint.respond(&req, &top, &waiting.key, to, tagged(reply));
            });
            return;
        }
        match self.inner.server.receive(&key, is_ack, to) {
            Received::New => {}
            Received::AckUnmatched => {
                // The ACK of a 2xx: the end of a dialog's 2xx retransmissions, or one to pass
                // on when its Route names the relay.
                self.inner.handler.ack(&req, from);
                return;
            }
            Received::Retransmission | Received::AckAbsorbed => return,
        }
        self.inner.handler.request(Responder {
            endpoint: self.clone(),
            top: via.to_string(),
            req,
            key,
            to,
            from,
        });
    }

    /// Notes a stateless REGISTER as waiting for the store until the guard drops. None: one
    /// of the same transaction waits already (a retransmission, absorbed as a server
    /// transaction would); Err: too many wait (overload).
    fn wait_for_store(&self, key: &TxKey) -> Option<Result<Waiting, ()>> {
        let mut registering = self
            .inner
            .registering
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if registering.contains(key) {
            return None;
        }
        if registering.len() >= MAX_REGISTERS_WAITING {
            return Some(Err(()));
        }
        registering.insert(key.clone());
        Some(Ok(Waiting {
            endpoint: self.clone(),
            key: key.clone(),
        }))
    }

    fn respond(&self, req: &SipMessage, top: &str, key: &TxKey, to: Peer, reply: Reply) -> Bytes {
        let tag = reply.to_tag.clone().unwrap_or_else(new_tag);
        let response = build(req, Some(top), &reply, &tag);
        let data = Bytes::from(response.to_bytes());
        crate::stats::response(Direction::Out, reply.code);
        self.inner.server.respond(key, reply.code, data.clone(), to);
        data
    }
}

impl Inner {
    /// The endpoint, while it exists (it does while anything calls into it).
    fn endpoint(&self) -> Option<Endpoint> {
        self.me.upgrade().map(|inner| Endpoint { inner })
    }
}

impl Inbound for Inner {
    fn max_message(&self) -> usize {
        self.max_message
    }

    fn datagram(&self, data: &[u8], from: Peer) {
        crate::trace::received(from.addr, from.transport.name(), data);
        if let Some(endpoint) = self.endpoint() {
            endpoint.on_datagram(data, from);
        }
    }

    fn message(&self, parsed: Result<SipMessage, Rejected>, from: Peer) {
        if crate::trace::enabled() {
            match &parsed {
                Ok(msg) => {
                    crate::trace::received(from.addr, from.transport.name(), &msg.to_bytes())
                }
                Err(rejected) => tracing::trace!(
                    peer = %from.addr,
                    transport = %from.transport,
                    reason = %rejected.reason,
                    "received a message that could not be parsed"
                ),
            }
        }
        if let Some(endpoint) = self.endpoint() {
            endpoint.on_parsed(parsed, from);
        }
    }

    fn ping(&self, from: Peer) {
        if let Some(endpoint) = self.endpoint() {
            endpoint.pong(from);
        }
    }

    fn too_large(&self, partial: Option<Box<SipMessage>>, from: Peer) {
        if let Some(endpoint) = self.endpoint() {
            endpoint.too_large(partial, from);
        }
    }

    fn bad_framing(&self, partial: Option<Box<SipMessage>>, from: Peer) {
        if let Some(endpoint) = self.endpoint() {
            endpoint.bad_framing(partial, from);
        }
    }

    fn closed(&self, peer: Peer) {
        if let Some(endpoint) = self.endpoint() {
            endpoint.connection_closed(peer);
        }
    }
}

/// A REGISTER waiting for the store; no longer counted once dropped (answered or aborted).
struct Waiting {
    endpoint: Endpoint,
    key: TxKey,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut registering = self
            .endpoint
            .inner
            .registering
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        registering.remove(&self.key);
    }
}

/// Answers one request in its server transaction, at once or over time (provisional
/// responses, then a final one); what the endpoint hands the [`Handler`].
pub struct Responder {
    /// The endpoint the responses go through.
    endpoint: Endpoint,
    /// The INVITE.
    req: SipMessage,
    /// Its top Via with `received` and `rport`.
    top: String,
    /// Its server transaction.
    key: TxKey,
    /// Where responses go.
    to: Peer,
    /// Where the request came from (for UDP without `rport`, not where responses go).
    from: Peer,
}

impl Responder {
    /// The request being answered.
    pub fn request(&self) -> &SipMessage {
        &self.req
    }

    /// The request's server transaction.
    pub fn key(&self) -> &TxKey {
        &self.key
    }

    /// The request, to rewrite before it is handled (its responses are built from it).
    pub fn request_mut(&mut self) -> &mut SipMessage {
        &mut self.req
    }

    /// Where the request's responses go.
    pub fn peer(&self) -> Peer {
        self.to
    }

    /// Where the request came from: its source address and transport.
    pub fn source(&self) -> Peer {
        self.from
    }

    /// The endpoint, for requests in the dialog the INVITE makes.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sends a response in the transaction; the bytes sent, for retransmitting a 2xx.
    pub fn reply(&self, reply: Reply) -> Bytes {
        self.endpoint
            .respond(&self.req, &self.top, &self.key, self.to, reply)
    }

    /// The request's top Via as received, with `received` and `rport` filled in.
    pub fn top(&self) -> &str {
        &self.top
    }

    /// Sends a response made elsewhere (one a proxied branch returned, its Via already
    /// stripped) in the transaction.
    pub fn forward(&self, response: &SipMessage, code: u16) {
        let data = Bytes::from(response.to_bytes());
        crate::stats::response(Direction::Out, code);
        self.endpoint
            .inner
            .server
            .respond(&self.key, code, data, self.to);
    }
}

/// Whether a request is answered without a server transaction: a REGISTER that passes the
/// core's checks and does not remove every binding (`Contact: *`). Processing one again is
/// harmless (the registrar ignores the binding's own Call-ID and CSeq), so, as in Kamailio's
/// stateless registrar, retransmissions need no 32-second transaction to absorb them.
fn stateless(req: &SipMessage) -> bool {
    let StartLine::Request { method, uri } = &req.start else {
        return false;
    };
    *method == Method::REGISTER
        && uri.sip().is_some()
        && req.cseq().is_ok_and(|c| c.method == Method::REGISTER)
        && req.header("Require").is_none()
        && req.headers_named("Contact").all(|c| c.trim() != "*")
}

/// The To tag of a stateless response: the same for a request and its retransmissions (the
/// same branch, sent-by, Call-ID and From), unguessable without the process's random key.
fn stable_tag(req: &SipMessage, key: &TxKey) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = crate::keyed::hasher();
    key.hash(&mut h);
    req.header("Call-ID").hash(&mut h);
    req.header("From").hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Fills in `received` and `rport` (RFC 3261 §18.2.1, RFC 3581 §4) and returns where responses
/// go (§18.2.2): the connection for TCP and TLS; for UDP the source address, at the source port when the
/// client asked for `rport`, else at the sent-by port.
pub fn stamp_via(via: &mut Via, from: Peer) -> Peer {
    let ip = from.addr.ip();
    let literal = via.host.trim_start_matches('[').trim_end_matches(']');
    if literal.parse::<std::net::IpAddr>().ok() != Some(ip) {
        via.set_param("received", Some(ip.to_string()));
    }
    let rport = via.param("rport").is_some();
    if rport {
        via.set_param("rport", Some(from.addr.port().to_string()));
        via.set_param("received", Some(ip.to_string()));
    }
    match from.transport {
        Transport::Tcp | Transport::Tls => from,
        Transport::Udp => {
            let port = if rport {
                from.addr.port()
            } else {
                via.port.unwrap_or(5060)
            };
            Peer {
                transport: Transport::Udp,
                addr: SocketAddr::new(ip, port),
            }
        }
    }
}
