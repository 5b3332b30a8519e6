//! Leadership that ends on this relay's own clock. In a cluster one relay at a time leads (a
//! lease in the shared store, renewed every second); a leader frozen past its lease (a long
//! GC-free pause is still possible: SIGSTOP, a VM migration, swapping) must not wake up and act
//! as if it still led while another relay has taken over. So the leader holds leadership
//! until a deadline on the monotonic clock — the moment it *asked* for the lease, plus the
//! lease's length, less a margin for the clocks of the relays disagreeing — and every side
//! effect that must happen once for the cluster (a webhook POST, an expiry sweep) checks that
//! deadline just before it acts. The monotonic clock keeps running while the process is
//! stopped, so a relay that wakes after its lease ran out sees at once that it no longer leads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::time::Instant;

/// Whether (and until when) this relay leads; cheap to clone, shared by whatever acts once.
#[derive(Clone, Debug)]
pub struct Leadership {
    inner: Arc<Deadline>,
}

#[derive(Debug)]
struct Deadline {
    /// The clock's origin for `until`.
    base: Instant,
    /// Leads while the monotonic clock is below this many µs after `base`; 0: not leading;
    /// `u64::MAX`: always (a relay alone).
    until: AtomicU64,
}

impl Leadership {
    /// A relay alone: it always leads.
    pub fn always() -> Self {
        Self::with(u64::MAX)
    }

    /// Not leading (yet): a relay of a cluster before it holds the lease.
    pub fn none() -> Self {
        Self::with(0)
    }

    fn with(until: u64) -> Self {
        Self {
            inner: Arc::new(Deadline {
                base: Instant::now(),
                until: AtomicU64::new(until),
            }),
        }
    }

    /// Leads until `deadline` (a renewed lease); a deadline already past means not leading.
    pub fn hold_until(&self, deadline: Instant) {
        let micros = deadline
            .checked_duration_since(self.inner.base)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX - 1));
        self.inner.until.store(micros, Ordering::SeqCst);
    }

    /// No longer leads (the lease went to another relay, or could not be renewed).
    pub fn lose(&self) {
        self.inner.until.store(0, Ordering::SeqCst);
    }

    /// Whether this relay leads now: check just before each act that must happen once.
    pub fn holds(&self) -> bool {
        let until = self.inner.until.load(Ordering::SeqCst);
        if until == u64::MAX {
            return true;
        }
        let now = u64::try_from(self.inner.base.elapsed().as_micros()).unwrap_or(u64::MAX);
        now < until
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn alone_it_always_leads_and_in_a_cluster_not_before_the_lease() {
        assert!(Leadership::always().holds());
        assert!(!Leadership::none().holds());
    }

    #[tokio::test(start_paused = true)]
    async fn leadership_ends_at_its_deadline_even_without_a_renewal_telling_it() {
        let leader = Leadership::none();
        let shared = leader.clone();
        leader.hold_until(Instant::now() + Duration::from_secs(2));
        assert!(shared.holds());
        // A pause longer than the lease: nobody told the relay, its clock did.
        tokio::time::advance(Duration::from_millis(2001)).await;
        assert!(!shared.holds());
        leader.hold_until(Instant::now() + Duration::from_secs(2));
        assert!(shared.holds());
        leader.lose();
        assert!(!shared.holds());
        leader.hold_until(Instant::now() - Duration::from_millis(1));
        assert!(!shared.holds());
    }
}
