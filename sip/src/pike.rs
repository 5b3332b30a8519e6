//! A pike-like flood guard (after Kamailio's pike module): requests are counted per source
//! address with governor's keyed GCRA limiter (a rate and a burst); past the limit a source's
//! request is answered 503 with `Retry-After` once per window, and its later requests in that
//! window are dropped unanswered, so a flood costs a lookup each and no answer traffic.
//! Responses, ACKs and keep-alives are never counted (the endpoint asks for requests only).
//! Sources in an exempt list (an upstream proxy, a trusted network) are never limited.
//!
//! Memory stays bounded: keys whose bucket is full again are swept (`retain_recent`) every
//! few seconds, so the table holds only the sources seen in the last `burst / rate` seconds.
//! IPv6 sources are counted per /64, the block one host usually holds.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
pub use ipnet::IpNet;

/// Seconds between sweeps of forgotten sources.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Sources tracked past which a sweep runs at once (at most once a second).
const SWEEP_AT: usize = 100_000;
/// Longest `Retry-After` given, in seconds.
const MAX_RETRY_AFTER: u64 = 60;

/// The rate limit's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateConfig {
    /// Requests per second one source may send, sustained.
    pub per_second: NonZeroU32,
    /// Requests one source may send at once above the rate.
    pub burst: NonZeroU32,
    /// Sources never limited.
    pub exempt: Vec<IpNet>,
}

impl Default for RateConfig {
    fn default() -> Self {
        Self {
            per_second: NonZeroU32::new(100).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::new(500).unwrap_or(NonZeroU32::MIN),
            exempt: Vec::new(),
        }
    }
}

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it.
    Pass,
    /// Answer 503 with `Retry-After` this many seconds, and handle nothing else.
    Refuse(u64),
    /// Drop it unanswered (the source was told already in this window).
    Drop,
}

/// The per-source limiter.
pub struct Pike {
    /// Requests per source.
    requests: DefaultKeyedRateLimiter<IpAddr>,
    /// One refusal per source and window.
    refusals: DefaultKeyedRateLimiter<IpAddr>,
    /// Never limited.
    exempt: Vec<IpNet>,
    /// The `Retry-After` of a refusal (s), also the window of one refusal.
    retry_after: u64,
    /// When it was made, the origin of `last_sweep`.
    start: Instant,
    /// The last sweep, in ms since `start`.
    last_sweep: AtomicU64,
}

impl Pike {
    /// A limiter with these settings. The window (and `Retry-After`) is the time a source's
    /// whole burst takes to refill, from 1 to 60 s.
    pub fn new(config: &RateConfig) -> Self {
        let refill = config.burst.get().div_ceil(config.per_second.get());
        let retry_after = u64::from(refill).clamp(1, MAX_RETRY_AFTER);
        let window = Quota::with_period(Duration::from_secs(retry_after))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN));
        Self {
            requests: RateLimiter::keyed(
                Quota::per_second(config.per_second).allow_burst(config.burst),
            ),
            refusals: RateLimiter::keyed(window),
            exempt: config.exempt.clone(),
            retry_after,
            start: Instant::now(),
            last_sweep: AtomicU64::new(0),
        }
    }

    /// Counts a request from `ip` and says what to do with it.
    pub fn check(&self, ip: IpAddr) -> Verdict {
        let ip = ip.to_canonical();
        if self.exempt.iter().any(|net| net.contains(&ip)) {
            return Verdict::Pass;
        }
        let key = source_key(ip);
        self.sweep();
        if self.requests.check_key(&key).is_ok() {
            Verdict::Pass
        } else if self.refusals.check_key(&key).is_ok() {
            Verdict::Refuse(self.retry_after)
        } else {
            Verdict::Drop
        }
    }

    /// Sources tracked now (those seen recently).
    pub fn tracked(&self) -> usize {
        self.requests.len()
    }

    /// Forgets the sources whose bucket is full again, every [`SWEEP_EVERY`], or every second
    /// while more than [`SWEEP_AT`] are tracked; one caller at a time does it.
    fn sweep(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_sweep.load(Ordering::Relaxed);
        let due = now.saturating_sub(last);
        let every = u64::try_from(SWEEP_EVERY.as_millis()).unwrap_or(u64::MAX);
        if due < every && (due < 1000 || self.requests.len() < SWEEP_AT) {
            return;
        }
        if self
            .last_sweep
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return; // another receiver sweeps
        }
        self.requests.retain_recent();
        self.requests.shrink_to_fit();
        self.refusals.retain_recent();
        self.refusals.shrink_to_fit();
    }
}

/// The key a source is counted under: its address, or for IPv6 its /64.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

/// Parses an exempt source: a CIDR block (`192.0.2.0/24`, `2001:db8::/32`) or one address.
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{text:?} is neither an address nor a CIDR block like 192.0.2.0/24"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rate: u32, burst: u32, exempt: &[&str]) -> RateConfig {
        RateConfig {
            per_second: NonZeroU32::new(rate).expect("rate"),
            burst: NonZeroU32::new(burst).expect("burst"),
            exempt: exempt.iter().map(|e| parse_net(e).expect("net")).collect(),
        }
    }

    #[test]
    fn past_the_burst_a_source_is_refused_once_then_dropped_and_others_pass() {
        let pike = Pike::new(&config(1, 5, &[]));
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        for _ in 0..5 {
            assert_eq!(pike.check(a), Verdict::Pass);
        }
        assert_eq!(pike.check(a), Verdict::Refuse(5), "burst 5 at 1/s: 5 s");
        for _ in 0..100 {
            assert_eq!(pike.check(a), Verdict::Drop);
        }
        assert_eq!(pike.check(b), Verdict::Pass, "another source is served");
        assert_eq!(pike.tracked(), 2);
    }

    #[test]
    fn exempt_blocks_are_never_limited() {
        let pike = Pike::new(&config(1, 1, &["10.0.0.0/8", "2001:db8::1"]));
        for _ in 0..10 {
            assert_eq!(pike.check("10.1.2.3".parse().expect("ip")), Verdict::Pass);
            assert_eq!(
                pike.check("2001:db8::1".parse().expect("ip")),
                Verdict::Pass
            );
        }
        let other: IpAddr = "11.0.0.1".parse().expect("ip");
        assert_eq!(pike.check(other), Verdict::Pass);
        assert_eq!(pike.check(other), Verdict::Refuse(1));
    }

    #[test]
    fn an_ipv6_host_is_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let pike = Pike::new(&config(1, 1, &[]));
        assert_eq!(
            pike.check("2001:db8::1".parse().expect("ip")),
            Verdict::Pass
        );
        assert_ne!(
            pike.check("2001:db8::2".parse().expect("ip")),
            Verdict::Pass,
            "the same /64"
        );
        assert_eq!(
            pike.check("2001:db8:0:1::1".parse().expect("ip")),
            Verdict::Pass
        );
        assert_eq!(pike.check("192.0.2.9".parse().expect("ip")), Verdict::Pass);
        assert_ne!(
            pike.check("::ffff:192.0.2.9".parse().expect("ip")),
            Verdict::Pass
        );
    }

    #[test]
    fn exempt_entries_parse_or_say_why_not() {
        assert_eq!(
            parse_net("192.0.2.7/24").expect("net").to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(parse_net(" ::1 ").expect("net").to_string(), "::1/128");
        assert!(parse_net("example.net").is_err());
        assert!(parse_net("10.0.0.0/33").is_err());
    }
}
