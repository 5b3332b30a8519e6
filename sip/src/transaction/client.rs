//! Client transactions (RFC 3261 §17.1): requests are retransmitted over UDP (Timer A for
//! INVITE, E for others), give up after 64*T1 (Timers B, F) with a synthetic 408, and a
//! completed transaction absorbs retransmitted responses (Timers D, K); a non-2xx final
//! response to an INVITE is acknowledged by the transaction itself. Timer B applies before
//! any response: an INVITE answered by a provisional one (a phone ringing) waits for its final
//! response until the transaction user cancels it, with a backstop of [`TIMER_C`].

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::consts::{backoff, T1, T2, T4, TIMEOUT, TIMER_C, TIMER_D};
use super::layer::{Kind, Layer};
use super::ClientTransactions;
use super::TxKey;
use crate::message::{Method, SipMessage, StartLine};
use crate::transport::Peer;

/// What the transaction user hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A response (provisional or final), in order.
    Response(Box<SipMessage>),
    /// No final response within 64*T1 (Timer B or F): act as on a 408.
    Timeout,
}

/// Client transaction states (§17.1.1, §17.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// INVITE sent, nothing heard.
    Calling,
    /// Non-INVITE sent, nothing heard.
    Trying,
    /// A provisional response came.
    Proceeding,
    /// A final response came; retransmissions of it are absorbed.
    Completed,
}

#[derive(Debug)]
/// One client transaction.
pub struct ClientTx {
    /// INVITE transaction.
    invite: bool,
    /// State.
    state: State,
    /// The request, for retransmissions.
    request: Bytes,
    /// The ACK sent for a non-2xx final response to an INVITE.
    ack: Option<Bytes>,
    /// Where the request goes.
    peer: Peer,
    /// The next retransmission interval.
    interval: Duration,
    /// The transaction user.
    user: mpsc::UnboundedSender<Outcome>,
    /// Timer B found the INVITE ringing and was moved on by [`TIMER_C`].
    ringing: bool,
}

/// Timers of client transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// Retransmit the request (A for INVITE, E otherwise).
    Retransmit,
    /// Give up (B for INVITE, F otherwise).
    Timeout,
    /// Forget a completed transaction (D for INVITE, K otherwise).
    Linger,
}

type Inner = Layer<ClientTx>;

impl Kind for ClientTx {
    type Timer = Timer;
    const NAME: &'static str = "client";

    fn fire(&mut self, layer: &Inner, key: &TxKey, timer: Timer) -> bool {
        match timer {
            Timer::Retransmit if matches!(self.state, State::Calling | State::Trying) => {
                let next = backoff_for(self);
                layer.retransmit(key, self, next);
                false
            }
            Timer::Retransmit if self.state == State::Proceeding && !self.invite => {
                layer.retransmit(key, self, T2);
                false
            }
            Timer::Timeout if self.invite && self.state == State::Proceeding && !self.ringing => {
                // Timer B stops at the first response (§17.1.1.2): a phone may ring for
                // minutes; the backstop ends one nobody cancelled (or whose 487 never came).
                self.ringing = true;
                let next = Instant::now() + TIMER_C;
                layer.timers.schedule(next, (key.clone(), Timer::Timeout));
                false
            }
            Timer::Timeout if self.state != State::Completed => {
                let _ = self.user.send(Outcome::Timeout);
                true
            }
            Timer::Linger => true,
            _ => false,
        }
    }
}

impl ClientTransactions {
    /// Sends `request` (whose top Via carries a fresh branch) to `peer`; responses and the
    /// timeout arrive on the returned receiver. None if the request has no usable Via or CSeq.
    pub fn send(
        &self,
        request: &SipMessage,
        peer: Peer,
    ) -> Option<mpsc::UnboundedReceiver<Outcome>> {
        let via = request.top_via().ok()?;
        let key = TxKey::of(request, &via)?;
        let invite = request.method() == Some(&Method::INVITE);
        let data = Bytes::from(request.to_bytes());
        let (user, rx) = mpsc::unbounded_channel();
        let mut table = self.inner.lock();
        table.insert(
            key.clone(),
            ClientTx {
                invite,
                state: if invite {
                    State::Calling
                } else {
                    State::Trying
                },
                request: data.clone(),
                ack: None,
                peer,
                interval: T1,
                user,
                ringing: false,
            },
        );
        crate::stats::transaction_opened(ClientTx::NAME, table.len());
        drop(table);
        if let Some(method) = request.method() {
            crate::stats::request(crate::stats::Direction::Out, method);
        }
        self.inner.wire.send(peer, data);
        let now = Instant::now();
        if !peer.transport.reliable() {
            self.inner
                .timers
                .schedule(now + T1, (key.clone(), Timer::Retransmit));
        }
        self.inner
            .timers
            .schedule(now + TIMEOUT, (key, Timer::Timeout));
        Some(rx)
    }

    /// Hands a response to its transaction; false if none matches (the core may look at it).
    pub fn on_response(&self, response: SipMessage) -> bool {
        let Some(code) = response.code() else {
            return false;
        };
        let Some(key) = response
            .top_via()
            .ok()
            .and_then(|v| TxKey::of(&response, &v))
        else {
            return false;
        };
        let mut table = self.inner.lock();
        let Some(tx) = table.get_mut(&key) else {
            return false;
        };
        if tx.state == State::Completed {
            // A retransmitted final response: acknowledge it again (INVITE) and say nothing.
            if let Some(ack) = tx.ack.clone() {
                self.inner.wire.send(tx.peer, ack);
            }
            return true;
        }
        let reliable = tx.peer.transport.reliable();
        let mut linger = None;
        if code < 200 {
            tx.state = State::Proceeding;
            if !tx.invite {
                tx.interval = T2;
            }
        } else if tx.invite && code < 300 {
            // The 2xx is acknowledged end to end by the core; the transaction ends (§17.1.1.2).
            let _ = tx.user.send(Outcome::Response(Box::new(response)));
            table.remove(&key);
            crate::stats::transactions_alive(ClientTx::NAME, table.len());
            return true;
        } else {
            tx.state = State::Completed;
            if tx.invite {
                let ack = Bytes::from(ack_for(&tx.request, &response).to_bytes());
                self.inner.wire.send(tx.peer, ack.clone());
                tx.ack = Some(ack);
                linger = Some(if reliable { Duration::ZERO } else { TIMER_D });
            } else {
                linger = Some(if reliable { Duration::ZERO } else { T4 });
            }
        }
        let _ = tx.user.send(Outcome::Response(Box::new(response)));
        drop(table);
        if let Some(after) = linger {
            self.inner
                .timers
                .schedule(Instant::now() + after, (key, Timer::Linger));
        }
        true
    }

    /// The connection to `peer` closed (§18.4, a transport error): its transactions still
    /// waiting for a final response end as if timed out. Responses read from the connection
    /// before it closed have reached their users already, so they come first.
    pub fn connection_closed(&self, peer: Peer) {
        let mut table = self.inner.lock();
        table.retain(|_, tx| {
            if tx.peer != peer || tx.state == State::Completed {
                return true;
            }
            let _ = tx.user.send(Outcome::Timeout);
            false
        });
        crate::stats::transactions_alive(ClientTx::NAME, table.len());
    }

    /// Hands a response to its transaction; the response back when none matches.
    pub fn on_response_or_back(&self, response: SipMessage) -> Option<SipMessage> {
        let matches = response.code().is_some()
            && response
                .top_via()
                .ok()
                .and_then(|v| TxKey::of(&response, &v))
                .is_some_and(|key| self.inner.lock().contains_key(&key));
        if matches && self.on_response(response.clone()) {
            None
        } else {
            Some(response)
        }
    }

    /// The state of a transaction, if it exists.
    pub fn state(&self, key: &TxKey) -> Option<State> {
        self.inner.lock().get(key).map(|tx| tx.state)
    }
}

/// The ACK for a non-2xx final response (§17.1.1.3): the request's Request-URI, Call-ID,
/// From, top Via and Route, the response's To, and CSeq with ACK.
fn ack_for(request: &Bytes, response: &SipMessage) -> SipMessage {
    let mut ack = SipMessage {
        start: StartLine::Request {
            method: Method::ACK,
            uri: crate::uri::Uri::Other(String::new()),
        },
        headers: Vec::new(),
        body: Vec::new(),
    };
    if let Ok(req) = crate::parse::parse_datagram(request) {
        if let StartLine::Request { uri, .. } = &req.start {
            ack.start = StartLine::Request {
                method: Method::ACK,
                uri: uri.clone(),
            };
        }
        if let Ok(via) = req.top_via() {
            ack.push("Via", via.to_string());
        }
        for name in ["Max-Forwards", "From", "Call-ID"] {
            if let Some(v) = req.header(name) {
                ack.push(name, v.to_owned());
            }
        }
        if let Some(to) = response.header("To") {
            ack.push("To", to.to_owned());
        }
        if let Ok(cseq) = req.cseq() {
            ack.push("CSeq", format!("{} ACK", cseq.seq));
        }
        for route in req.headers_named("Route") {
            ack.push("Route", route.to_owned());
        }
    }
    ack
}

impl Inner {
    fn retransmit(&self, key: &TxKey, tx: &mut ClientTx, next: Duration) {
        self.wire.send(tx.peer, tx.request.clone());
        tx.interval = next;
        self.timers
            .schedule(Instant::now() + next, (key.clone(), Timer::Retransmit));
    }
}

/// Timer A doubles without a cap; Timer E doubles up to T2.
fn backoff_for(tx: &ClientTx) -> Duration {
    if tx.invite {
        tx.interval * 2
    } else {
        backoff(tx.interval)
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
