//! The relays of a cluster as this one knows them: its own node name, and the nodes that are
//! gone (stopped renewing their id slot: killed, crashed, cut off). A phone's binding names
//! the node holding its flow; a request for a phone whose node is gone is refused at once
//! (480) instead of being sent to a relay that will never answer.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use tokio::sync::broadcast;

use crate::store::Lease;

/// Cheap-clone handle; alone (no cluster) it has no node and nothing is ever gone.
#[derive(Debug, Clone)]
pub struct Members {
    /// This relay's node name, in a cluster.
    node: Option<Arc<str>>,
    /// The nodes seen gone and not back since.
    gone: Arc<RwLock<HashSet<String>>>,
    /// Tells each node newly gone.
    told: broadcast::Sender<String>,
}

impl Default for Members {
    fn default() -> Self {
        Self {
            node: None,
            gone: Arc::default(),
            told: broadcast::channel(64).0,
        }
    }
}

impl Members {
    /// This relay in a cluster, as node `node`.
    pub fn clustered(node: &str) -> Self {
        Self {
            node: Some(node.into()),
            ..Self::default()
        }
    }

    /// The nodes found gone from now on, each once (what ends the calls they held).
    pub fn gone_from_now(&self) -> broadcast::Receiver<String> {
        self.told.subscribe()
    }

    /// This relay's node name, in a cluster.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// Whether node `node` is known to be gone.
    pub fn is_gone(&self, node: &str) -> bool {
        self.gone
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(node)
    }

    /// Takes in the id-slot leases read at `now` (ms): a holder none of whose leases was
    /// renewed within `alive_within` of `now` (each lease lasting `ttl`) is gone; one renewed
    /// since is back. A gone node stays gone after its slot is taken by another relay.
    /// Returns the nodes newly gone.
    pub fn update(&self, leases: &[Lease], now: i64, ttl: i64, alive_within: i64) -> Vec<String> {
        let fresh = |l: &Lease| l.until - ttl >= now - alive_within;
        let alive: HashSet<&str> = leases
            .iter()
            .filter(|l| fresh(l))
            .map(|l| l.holder.as_str())
            .collect();
        let mut gone = self.gone.write().unwrap_or_else(|p| p.into_inner());
        gone.retain(|n| !alive.contains(n.as_str()));
        let mut newly = Vec::new();
        for lease in leases.iter().filter(|l| !fresh(l)) {
            if !alive.contains(lease.holder.as_str())
                && Some(lease.holder.as_str()) != self.node()
                && gone.insert(lease.holder.clone())
            {
                newly.push(lease.holder.clone());
            }
        }
        drop(gone);
        for node in &newly {
            // Nobody listening (SIP off) is fine.
            let _ = self.told.send(node.clone());
        }
        newly
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(name: &str, holder: &str, until: i64) -> Lease {
        Lease {
            name: name.into(),
            holder: holder.into(),
            until,
        }
    }

    #[test]
    fn a_node_is_gone_when_its_slot_is_not_renewed_and_back_when_it_is() {
        let m = Members::clustered("b");
        let (ttl, within) = (60_000, 5_000);
        // a renewed at 100_000, b at 104_000; at 104_500 both run.
        let at = |t: i64| t + ttl;
        let leases = [
            lease("slot/0", "a", at(100_000)),
            lease("slot/1", "b", at(104_000)),
        ];
        let mut told = m.gone_from_now();
        assert!(m.update(&leases, 104_500, ttl, within).is_empty());
        assert!(!m.is_gone("a"));
        // At 105_001 a has not renewed for over 5 s.
        assert_eq!(
            m.update(&leases, 105_001, ttl, within),
            vec!["a".to_owned()]
        );
        assert!(m.is_gone("a") && !m.is_gone("b"));
        assert_eq!(told.try_recv().ok().as_deref(), Some("a"));
        // Said once; still gone after another relay took its slot.
        let taken = [
            lease("slot/0", "c", at(170_000)),
            lease("slot/1", "b", at(170_000)),
        ];
        assert!(m.update(&taken, 170_001, ttl, within).is_empty());
        assert!(m.is_gone("a"));
        assert!(told.try_recv().is_err(), "told once");
        // a restarted (another slot): back.
        let back = [lease("slot/2", "a", at(171_000))];
        m.update(&back, 171_001, ttl, within);
        assert!(!m.is_gone("a"));
        // This relay never calls itself gone.
        let own = [lease("slot/1", "b", at(0))];
        assert!(m.update(&own, 200_000, ttl, within).is_empty());
        assert!(!m.is_gone("b"));
        // Alone: nothing is gone.
        assert!(!Members::default().is_gone("a"));
    }
}
