//! Transactions (RFC 3261 §17): server transactions absorb retransmitted requests and
//! retransmit final responses over UDP; client transactions retransmit requests and time out.

pub mod client;
pub mod consts;
pub mod layer;
pub mod server;
mod timers;

use super::headers::Via;

/// The client transactions of an endpoint (requests the relay sends); cheap to clone.
pub type ClientTransactions = layer::Transactions<client::ClientTx>;
/// The server transactions of an endpoint (requests the relay answers); cheap to clone.
pub type ServerTransactions = layer::Transactions<server::ServerTx>;
use super::message::{Method, SipMessage};

/// What identifies a transaction (RFC 3261 §17.2.3): the branch, the sent-by and the method
/// (ACK matches its INVITE). Requests from RFC 2543 peers, without the magic cookie, are keyed
/// by Call-ID, CSeq, From tag and the whole top Via instead.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxKey {
    /// Branch, or the RFC 2543 fields joined.
    pub branch: String,
    /// sent-by (host:port) of the top Via.
    pub sent_by: String,
    /// The method, INVITE for an ACK.
    pub method: String,
}

/// The magic cookie that starts RFC 3261 branches.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

impl TxKey {
    /// The key of the INVITE a CANCEL cancels (RFC 3261 §9.2: the same branch and sent-by,
    /// the method INVITE); None when the request has no usable top Via.
    pub fn cancelled(cancel: &SipMessage) -> Option<TxKey> {
        let via = cancel.top_via().ok()?;
        let key = TxKey::of(cancel, &via)?;
        Some(TxKey {
            method: Method::INVITE.as_str().to_owned(),
            ..key
        })
    }

    /// The key of a request (or of a response, which carries the same top Via and CSeq).
    pub fn of(msg: &SipMessage, via: &Via) -> Option<TxKey> {
        let cseq = msg.cseq().ok()?;
        let method = match msg.method() {
            Some(m) if *m == Method::ACK => Method::INVITE,
            Some(m) => m.clone(),
            None => cseq.method.clone(),
        };
        let sent_by = match via.port {
            Some(p) => format!("{}:{p}", via.host.to_ascii_lowercase()),
            None => via.host.to_ascii_lowercase(),
        };
        let branch = match via.branch() {
            Some(b) if b.starts_with(MAGIC_COOKIE) => b.to_owned(),
            _ => format!(
                "{}|{}|{}|{via}",
                msg.call_id().unwrap_or_default(),
                cseq.seq,
                msg.from().ok()?.tag().unwrap_or_default()
            ),
        };
        Some(TxKey {
            branch,
            sent_by,
            method: method.as_str().to_owned(),
        })
    }
}
