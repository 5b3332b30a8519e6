//! The branches of a forwarded request: their client transactions, relaying their answers
//! (§16.7: provisional and 2xx at once, else the best final response), cancelling them (a
//! CANCEL, §16.10; a 2xx or 6xx on another branch; Timer C), and 2xx retransmissions that
//! match no transaction any more.

use std::collections::HashMap;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{strip_top_via, via_peer, Branch, Proxy, BRANCH_PREFIX};
use crate::sync::lock;
use restsip_sip::endpoint::{Endpoint, Responder};
use restsip_sip::message::{Method, SipMessage, StartLine};
use restsip_sip::outgoing;
use restsip_sip::response::Reply;
use restsip_sip::transaction::client::Outcome;
use restsip_sip::transaction::TxKey;
use restsip_sip::transport::Peer;
use restsip_sip::uri::Uri;

impl Proxy {
    /// Sends each branch in a client transaction and relays the answers to `responder`.
    pub(super) async fn run_branches(
        &self,
        endpoint: &Endpoint,
        responder: Responder,
        branches: Vec<(SipMessage, Peer)>,
        invite: bool,
    ) {
        let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Outcome)>();
        let mut open = 0usize;
        let mut table = HashMap::new();
        for (i, (request, peer)) in branches.into_iter().enumerate() {
            let Some(mut out) = endpoint.client().send(&request, peer) else {
                continue;
            };
            open += 1;
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(outcome) = out.recv().await {
                    if tx.send((i, outcome)).is_err() {
                        return;
                    }
                }
            });
            table.insert(i, Branch { request, peer });
        }
        drop(tx);
        if open == 0 {
            responder.reply(Reply::new(500, "Server Internal Error (cannot forward)"));
            return;
        }
        let key = responder.key().clone();
        if invite {
            lock(&self.inner.pending).insert(key.clone(), table);
        }
        let mut best: Option<SipMessage> = None;
        let mut answered = false;
        // Branches that answered with a provisional response (CANCEL needs one, §9.1).
        let mut ringing = std::collections::HashSet::new();
        while open > 0 {
            let Some((i, outcome)) = rx.recv().await else {
                break;
            };
            let resp = match outcome {
                Outcome::Response(resp) => *resp,
                Outcome::Timeout => {
                    open -= 1;
                    let branch = self.forget_branch(&key, i);
                    // Timer C (§16.8): a branch that rang too long is cancelled.
                    if let Some(b) = branch.filter(|_| ringing.contains(&i)) {
                        drop(endpoint.client().send(&cancel_for(&b.request), b.peer));
                    }
                    continue;
                }
            };
            let Some(code) = resp.code() else { continue };
            tracing::debug!(branch = i, code, "proxied branch answered");
            if code < 200 {
                ringing.insert(i);
            }
            if code == 100 {
                continue;
            }
            let mut out = resp;
            if !strip_top_via(&mut out) {
                continue;
            }
            if code < 200 {
                if !answered {
                    responder.forward(&out, code);
                }
                continue;
            }
            open -= 1;
            let branch = self.forget_branch(&key, i);
            if code < 300 {
                // Every 2xx goes back (§16.7 step 5); the other branches are cancelled.
                responder.forward(&out, code);
                // An answered call (not a re-INVITE) is kept for the other relays.
                let initial = !responder.request().to().is_ok_and(|to| to.tag().is_some());
                if let Some(b) = branch.filter(|_| invite && !answered && initial) {
                    self.inner
                        .kept
                        .proxied(responder.request(), responder.peer(), &out, b.peer);
                }
                if !answered && invite {
                    self.cancel_rest(&key, endpoint);
                }
                answered = true;
                continue;
            }
            if answered {
                continue;
            }
            if code >= 600 && invite {
                self.cancel_rest(&key, endpoint);
            }
            let better = match &best {
                None => true,
                Some(b) => better_final(code, b.code().unwrap_or(500)),
            };
            if better {
                best = Some(out);
            }
        }
        lock(&self.inner.pending).remove(&key);
        if answered {
            return;
        }
        match best {
            Some(resp) => {
                let code = resp.code().unwrap_or(500);
                responder.forward(&resp, code);
            }
            None => {
                responder.reply(Reply::new(408, "Request Timeout"));
            }
        }
    }

    /// Forgets a branch that ended; the branch, if it was still pending.
    fn forget_branch(&self, key: &TxKey, i: usize) -> Option<Branch> {
        lock(&self.inner.pending).get_mut(key)?.remove(&i)
    }

    /// Cancels the branches of `key` still pending.
    fn cancel_rest(&self, key: &TxKey, endpoint: &Endpoint) {
        let branches: Vec<(SipMessage, Peer)> = lock(&self.inner.pending)
            .get_mut(key)
            .map(|b| {
                b.drain()
                    .map(|(_, b)| (cancel_for(&b.request), b.peer))
                    .collect()
            })
            .unwrap_or_default();
        for (cancel, peer) in branches {
            drop(endpoint.client().send(&cancel, peer));
        }
    }

    /// A CANCEL for a proxied INVITE: 200, and a CANCEL to each pending branch (§16.10).
    /// None when it matches no proxied INVITE.
    pub fn cancel(&self, req: &SipMessage) -> Option<Reply> {
        let key = TxKey::cancelled(req)?;
        let branches: Vec<(SipMessage, Peer)> = {
            let pending = lock(&self.inner.pending);
            let found = pending.get(&key)?;
            found
                .values()
                .map(|b| (cancel_for(&b.request), b.peer))
                .collect()
        };
        if let Some(endpoint) = self.inner.endpoint.upgrade() {
            for (cancel, peer) in branches {
                // The branch's 487 ends it; the CANCEL's own answer is not needed.
                drop(endpoint.client().send(&cancel, peer));
            }
        }
        Some(Reply::new(200, "OK"))
    }

    /// A response that matches no client transaction: when its top Via is one the relay put
    /// on a forwarded request (a retransmitted 2xx to an INVITE), it goes on statelessly.
    pub fn stray_response(&self, mut resp: SipMessage, endpoint: &Endpoint) {
        let Ok(top) = resp.top_via() else { return };
        if !top.branch().is_some_and(|b| b.starts_with(BRANCH_PREFIX)) {
            return;
        }
        if !strip_top_via(&mut resp) {
            return;
        }
        let Ok(next) = resp.top_via() else { return };
        if let Some(peer) = via_peer(&next) {
            endpoint.send_to(peer, Bytes::from(resp.to_bytes()));
        }
    }
}

/// Whether final response `code` beats `best` (§16.7 step 6: a 6xx wins, else the lowest).
fn better_final(code: u16, best: u16) -> bool {
    if (code >= 600) != (best >= 600) {
        return code >= 600;
    }
    code < best
}

/// The CANCEL of a forwarded INVITE (§9.1): same Request-URI, top Via, Call-ID, From, To,
/// CSeq number and Route.
fn cancel_for(invite: &SipMessage) -> SipMessage {
    let uri = match &invite.start {
        StartLine::Request { uri, .. } => uri.clone(),
        StartLine::Response { .. } => Uri::Other(String::new()),
    };
    let mut cancel = SipMessage {
        start: StartLine::Request {
            method: Method::CANCEL,
            uri,
        },
        headers: Vec::new(),
        body: Vec::new(),
    };
    if let Ok(via) = invite.top_via() {
        cancel.push("Via", via.to_string());
    }
    cancel.push("Max-Forwards", outgoing::MAX_FORWARDS.to_string());
    for name in ["From", "To", "Call-ID"] {
        if let Some(v) = invite.header(name) {
            cancel.push(name, v.to_owned());
        }
    }
    if let Ok(cseq) = invite.cseq() {
        cancel.push("CSeq", format!("{} CANCEL", cseq.seq));
    }
    for route in invite.headers_named("Route") {
        cancel.push("Route", route.to_owned());
    }
    cancel
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_6xx_beats_lower_codes_else_the_lowest_wins() {
        assert!(better_final(603, 404));
        assert!(!better_final(486, 600));
        assert!(better_final(404, 486));
    }
}
