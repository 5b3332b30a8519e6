//! The timer values of RFC 3261 §17 (Table 4), in one place.

use std::time::Duration;

/// T1: round-trip time estimate.
pub const T1: Duration = Duration::from_millis(500);
/// T2: the longest interval between retransmissions of non-INVITE requests and INVITE responses.
pub const T2: Duration = Duration::from_secs(4);
/// T4: how long a message may stay in the network.
pub const T4: Duration = Duration::from_secs(5);
/// Timers B, F, H and J: 64*T1.
pub const TIMEOUT: Duration = Duration::from_secs(32);
/// How long an INVITE may stay provisional (a phone ringing) before the transaction gives
/// up, as a proxy's Timer C (RFC 3261 §16.8: more than 3 minutes), counted after Timer B.
pub const TIMER_C: Duration = Duration::from_secs(181);
/// Timer D over unreliable transports (at least 32 s).
pub const TIMER_D: Duration = Duration::from_secs(32);

/// Timer A (INVITE request retransmission) and E (non-INVITE): first interval.
pub const fn first_interval() -> Duration {
    T1
}

/// The next retransmission interval after `current`: doubled, capped at T2 (Timers E and G).
pub fn backoff(current: Duration) -> Duration {
    (current * 2).min(T2)
}
