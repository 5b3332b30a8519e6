//! Connections counted per IP address, so that one address cannot take every slot of a
//! listener (HTTP and SIP over TCP both use it).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections by IP address, each address allowed at most `max`; cheap to clone.
#[derive(Debug, Clone)]
pub struct PerIp {
    /// Most connections from one address.
    max: usize,
    /// Connections open by address (addresses with none are removed).
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place in its address's count; given back when dropped.
#[derive(Debug)]
pub struct IpSlot {
    /// The counts it is in.
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    /// Its address.
    ip: IpAddr,
}

impl PerIp {
    /// Counts allowing `max` connections per address.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            counts: Arc::default(),
        }
    }

    /// A place for one more connection from `ip`; None when it already has `max`.
    pub fn take(&self, ip: IpAddr) -> Option<IpSlot> {
        let mut counts = lock(&self.counts);
        let n = counts.entry(ip).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            counts: self.counts.clone(),
            ip,
        })
    }

    /// Connections open from `ip`.
    pub fn count(&self, ip: IpAddr) -> usize {
        lock(&self.counts).get(&ip).copied().unwrap_or(0)
    }
}

impl Default for PerIp {
    fn default() -> Self {
        Self::new(usize::MAX)
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(n) = counts.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

fn lock(
    counts: &Mutex<HashMap<IpAddr, usize>>,
) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
    counts.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_at_most_its_share_and_gets_it_back() {
        let per_ip = PerIp::new(2);
        let a: IpAddr = "127.0.0.2".parse().expect("ip");
        let b: IpAddr = "127.0.0.3".parse().expect("ip");
        let first = per_ip.take(a).expect("first");
        let _second = per_ip.take(a).expect("second");
        assert!(per_ip.take(a).is_none(), "a third from the same address");
        assert!(per_ip.take(b).is_some(), "another address is not affected");
        drop(first);
        assert_eq!(per_ip.count(a), 1);
        assert!(per_ip.take(a).is_some(), "a place given back is free again");
    }
}
