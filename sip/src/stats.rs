//! Counts of what the stack sees and sends, through the `metrics` facade: the application
//! installs a recorder (the relay's Prometheus exporter) or none, and then these cost nothing.
//! Labels are bounded: a method nobody has defined counts as `other`, a status code is one of
//! 100–699.

use crate::message::Method;

/// SIP requests received or sent, by `direction` and `method`.
pub const REQUESTS: &str = "restsip_sip_requests_total";
/// SIP responses received or sent, by `direction` and `code`.
pub const RESPONSES: &str = "restsip_sip_responses_total";
/// Transactions opened, by `kind` (`server` or `client`).
pub const TRANSACTIONS: &str = "restsip_sip_transactions_total";
/// Transactions alive, by `kind`.
pub const TRANSACTIONS_ALIVE: &str = "restsip_sip_transactions_alive";

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received from a peer.
    In,
    /// Sent to a peer.
    Out,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// A request received or sent.
pub fn request(direction: Direction, method: &Method) {
    let method = method.static_name().unwrap_or("other");
    metrics::counter!(REQUESTS, "direction" => direction.label(), "method" => method).increment(1);
}

/// A response received or sent.
pub fn response(direction: Direction, code: u16) {
    metrics::counter!(RESPONSES, "direction" => direction.label(), "code" => code_label(code))
        .increment(1);
}

/// A transaction of `kind` opened; `alive` of that kind are alive now.
pub fn transaction_opened(kind: &'static str, alive: usize) {
    metrics::counter!(TRANSACTIONS, "kind" => kind).increment(1);
    transactions_alive(kind, alive);
}

/// `alive` transactions of `kind` are alive (set with the table locked, so in order).
pub fn transactions_alive(kind: &'static str, alive: usize) {
    metrics::gauge!(TRANSACTIONS_ALIVE, "kind" => kind).set(alive as f64);
}

/// The label of a status code: its three digits, or `other` outside 100–699.
fn code_label(code: u16) -> String {
    if (100..700).contains(&code) {
        code.to_string()
    } else {
        "other".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(code_label(486), "486");
        assert_eq!(code_label(99), "other");
        assert_eq!(code_label(7000), "other");
        let made_up = Method::new("FROBNICATE").expect("a token");
        assert_eq!(made_up.static_name(), None);
        assert_eq!(
            Method::new("OPTIONS").and_then(|m| m.static_name()),
            Some("OPTIONS")
        );
    }
}
