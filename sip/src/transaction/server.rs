//! Server transactions (RFC 3261 §17.2): a retransmitted request gets the last response again,
//! final responses to INVITE are retransmitted over UDP until the ACK (Timers G, H, I), and a
//! completed transaction lingers to absorb retransmissions (Timer J) before it is forgotten.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::consts::{backoff, T1, T4, TIMEOUT};
use super::layer::{Kind, Layer};
use super::ServerTransactions;
use super::TxKey;
use crate::transport::Peer;

/// Transaction states (§17.2.1, §17.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Non-INVITE, no response sent yet.
    Trying,
    /// A provisional response was sent.
    Proceeding,
    /// A final response was sent.
    Completed,
    /// INVITE: the ACK came.
    Confirmed,
}

/// What the layer did with an incoming request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A new transaction: the core must handle the request and respond.
    New,
    /// A retransmission, answered from the transaction (or still being handled).
    Retransmission,
    /// The ACK of a non-2xx final response to an INVITE: absorbed.
    AckAbsorbed,
    /// An ACK that matches no transaction (the ACK of a 2xx): the core's business.
    AckUnmatched,
}

#[derive(Debug)]
/// One server transaction.
pub struct ServerTx {
    /// INVITE transaction.
    invite: bool,
    /// State.
    state: State,
    /// Where responses go.
    peer: Peer,
    /// The last response sent, for retransmissions.
    last: Option<Bytes>,
    /// The next Timer G interval.
    interval: Duration,
}

/// Timers of server transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// Retransmit the final response to an INVITE.
    G,
    /// Give up waiting for the ACK.
    H,
    /// Stop absorbing ACK retransmissions.
    I,
    /// Stop absorbing request retransmissions.
    J,
}

type Inner = Layer<ServerTx>;

impl Kind for ServerTx {
    type Timer = Timer;
    const NAME: &'static str = "server";

    fn fire(&mut self, layer: &Inner, key: &TxKey, timer: Timer) -> bool {
        match timer {
            Timer::G if self.state == State::Completed => {
                self.interval = backoff(self.interval);
                if let Some(last) = &self.last {
                    layer.wire.send(self.peer, last.clone());
                }
                let next = Instant::now() + self.interval;
                layer.timers.schedule(next, (key.clone(), Timer::G));
                false
            }
            Timer::H if self.state == State::Completed => {
                tracing::debug!(branch = %key.branch, "no ACK for a final response (Timer H)");
                true
            }
            Timer::I | Timer::J => true,
            _ => false,
        }
    }
}

impl ServerTransactions {
    /// Routes an incoming request to its transaction, or opens one.
    pub fn receive(&self, key: &TxKey, is_ack: bool, peer: Peer) -> Received {
        let mut table = self.inner.lock();
        match table.get_mut(key) {
            Some(tx) if is_ack => {
                if tx.invite && tx.state == State::Completed {
                    tx.state = State::Confirmed;
                    let wait = if peer.transport.reliable() {
                        Duration::ZERO
                    } else {
                        T4
                    };
                    drop(table);
                    self.inner
                        .timers
                        .schedule(Instant::now() + wait, (key.clone(), Timer::I));
                }
                Received::AckAbsorbed
            }
            Some(tx) => {
                if let Some(last) = &tx.last {
                    self.inner.wire.send(tx.peer, last.clone());
                }
                Received::Retransmission
            }
            None if is_ack => Received::AckUnmatched,
            None => {
                table.insert(
                    key.clone(),
                    ServerTx {
                        invite: key.method == "INVITE",
                        state: if key.method == "INVITE" {
                            State::Proceeding
                        } else {
                            State::Trying
                        },
                        peer,
                        last: None,
                        interval: T1,
                    },
                );
                crate::stats::transaction_opened(ServerTx::NAME, table.len());
                Received::New
            }
        }
    }

    /// Sends a response in the transaction `key` (status `code`) and moves its state on.
    /// Without a transaction (it timed out), the response is sent anyway.
    pub fn respond(&self, key: &TxKey, code: u16, data: Bytes, fallback: Peer) {
        let mut table = self.inner.lock();
        let Some(tx) = table.get_mut(key) else {
            drop(table);
            self.inner.wire.send(fallback, data);
            return;
        };
        let peer = tx.peer;
        let reliable = peer.transport.reliable();
        let mut timers = Vec::new();
        if code < 200 {
            tx.state = State::Proceeding;
            tx.last = Some(data.clone());
        } else if tx.invite && code < 300 {
            // The core retransmits 2xx itself (§13.3.1.4); the transaction ends here.
            table.remove(key);
        } else if tx.invite {
            tx.state = State::Completed;
            tx.last = Some(data.clone());
            if !reliable {
                timers.push((T1, Timer::G));
            }
            timers.push((TIMEOUT, Timer::H));
        } else {
            tx.state = State::Completed;
            if reliable {
                table.remove(key);
            } else {
                tx.last = Some(data.clone());
                timers.push((TIMEOUT, Timer::J));
            }
        }
        crate::stats::transactions_alive(ServerTx::NAME, table.len());
        drop(table);
        self.inner.wire.send(peer, data);
        let now = Instant::now();
        for (after, timer) in timers {
            self.inner
                .timers
                .schedule(now + after, (key.clone(), timer));
        }
    }

    /// The state of a transaction, if it exists.
    pub fn state(&self, key: &TxKey) -> Option<State> {
        self.inner.lock().get(key).map(|tx| tx.state)
    }

    /// How many transactions are alive.
    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    /// True when no transaction is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
pub(crate) mod tests;
