//! Throttles password guessing over HTTP Basic and SIP digest alike: failed checks are counted
//! per account and source address, and per source address (governor's keyed GCRA limiters);
//! past either quota that source may not try that account (or any, for the address quota)
//! until the wait the limiter names has passed, and no password is checked meanwhile (argon2
//! costs ~15 ms of CPU). Counting per account *and address* means an attacker elsewhere never
//! locks a user out of their own address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::sync::lock;

/// Failed checks one address may make for one account: a burst, then one a minute.
const PER_ACCOUNT: u32 = 10;
/// Failed checks one address may make over all accounts (password spraying).
const PER_ADDRESS: u32 = 100;
/// Most blocked keys remembered (expired ones are dropped first).
const MAX_BLOCKED: usize = 100_000;

/// What a check may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Check the credentials.
    Check,
    /// Do not: too many failures; try again after this long.
    Wait(Duration),
}

/// The failure counts and the keys they blocked.
pub struct Guesses {
    /// Failures per (account, address).
    pairs: DefaultKeyedRateLimiter<(String, IpAddr)>,
    /// Failures per address.
    addresses: DefaultKeyedRateLimiter<IpAddr>,
    /// Until when a key is blocked: None as the account is the whole address.
    blocked: Mutex<HashMap<(Option<String>, IpAddr), Instant>>,
}

impl Default for Guesses {
    fn default() -> Self {
        Self::new(PER_ACCOUNT, PER_ADDRESS)
    }
}

fn per_minute(n: u32) -> Quota {
    let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(NonZeroU32::MIN).allow_burst(n)
}

impl Guesses {
    /// `per_account` failures per account and address, `per_address` per address, each a
    /// burst refilled at one a minute.
    pub fn new(per_account: u32, per_address: u32) -> Self {
        Self {
            pairs: RateLimiter::keyed(per_minute(per_account)),
            addresses: RateLimiter::keyed(per_minute(per_address)),
            blocked: Mutex::default(),
        }
    }

    /// Whether `ip` may have a credential of `account` checked now.
    pub fn admit(&self, account: &str, ip: IpAddr) -> Admission {
        let now = Instant::now();
        let blocked = lock(&self.blocked);
        // The usual case, on every request: nobody is blocked (no key to make and look up).
        if blocked.is_empty() {
            return Admission::Check;
        }
        let until = [
            blocked.get(&(Some(account.to_owned()), ip)),
            blocked.get(&(None, ip)),
        ]
        .into_iter()
        .flatten()
        .filter(|until| **until > now)
        .max()
        .copied();
        match until {
            Some(until) => Admission::Wait(until - now),
            None => Admission::Check,
        }
    }

    /// A credential of `account` from `ip` was wrong.
    pub fn failed(&self, account: &str, ip: IpAddr) {
        let clock = DefaultClock::default();
        let pair = self
            .pairs
            .check_key(&(account.to_owned(), ip))
            .err()
            .map(|n| n.wait_time_from(clock.now()));
        let address = self
            .addresses
            .check_key(&ip)
            .err()
            .map(|n| n.wait_time_from(clock.now()));
        if pair.is_none() && address.is_none() {
            return;
        }
        let now = Instant::now();
        let mut blocked = lock(&self.blocked);
        if blocked.len() >= MAX_BLOCKED {
            blocked.retain(|_, until| *until > now);
            if blocked.len() >= MAX_BLOCKED {
                return; // a flood of addresses: the limiters still slow each one
            }
        }
        if let Some(wait) = pair {
            blocked.insert((Some(account.to_owned()), ip), now + wait);
        }
        if let Some(wait) = address {
            blocked.insert((None, ip), now + wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_burst_a_pair_waits_and_other_pairs_do_not() {
        let g = Guesses::new(3, 100);
        let (a, b): (IpAddr, IpAddr) = (
            "192.0.2.1".parse().expect("ip"),
            "192.0.2.2".parse().expect("ip"),
        );
        for _ in 0..3 {
            assert_eq!(g.admit("u@x", a), Admission::Check);
            g.failed("u@x", a);
        }
        g.failed("u@x", a);
        assert!(matches!(g.admit("u@x", a), Admission::Wait(w) if w > Duration::from_secs(1)));
        assert_eq!(
            g.admit("u@x", b),
            Admission::Check,
            "another address is not locked out"
        );
        assert_eq!(
            g.admit("v@x", a),
            Admission::Check,
            "another account is not either"
        );
    }

    #[test]
    fn an_address_guessing_many_accounts_waits_for_all() {
        let g = Guesses::new(100, 5);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        for n in 0..6 {
            g.failed(&format!("u{n}@x"), a);
        }
        assert!(matches!(g.admit("fresh@x", a), Admission::Wait(_)));
    }
}
