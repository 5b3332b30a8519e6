//! SENDs announced in the order of their sequence numbers. SENDs to one contact are committed
//! in groups and their handlers wake in any order; a stream must still get them in sequence
//! order, because a stream that resumes after an event id gets again only the SENDs above it.
//! A SEND takes its numbers here ([`SendOrder::take`]) and, once committed, hands its events
//! to [`Ticket::announce`]: they are published when every SEND numbered before is announced
//! or given up (its ticket dropped: the commit failed, or the request went away).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use crate::bus::{Bus, BusEvent, Topic};

/// The SENDs numbered and not yet announced; cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct SendOrder(Arc<Mutex<Waiting>>);

/// What waits.
#[derive(Default)]
struct Waiting {
    /// Numbers taken by SENDs not yet announced nor given up.
    taken: BTreeSet<u64>,
    /// Events of SENDs committed while one numbered before was not, by their first number.
    ready: BTreeMap<u64, Vec<(Topic, BusEvent)>>,
}

impl SendOrder {
    /// Takes `n` numbers from `bus` for one SEND, in order.
    pub(crate) fn take(&self, bus: &Bus, n: usize) -> Ticket {
        let mut waiting = self.lock();
        // Under the lock: no SEND can be announced between taking a number and noting it.
        let seqs: Vec<u64> = (0..n).map(|_| bus.next_id()).collect();
        waiting.taken.extend(&seqs);
        Ticket {
            order: self.clone(),
            bus: bus.clone(),
            seqs,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One SEND's numbers, until it is announced or given up.
pub(crate) struct Ticket {
    /// Where they were taken.
    order: SendOrder,
    /// Where the events go.
    bus: Bus,
    /// The numbers; empty once released.
    seqs: Vec<u64>,
}

impl Ticket {
    /// The SEND's sequence numbers.
    pub(crate) fn seqs(&self) -> &[u64] {
        &self.seqs
    }

    /// Publishes the SEND's events (each with its own number) once every SEND numbered
    /// before is announced or given up, with those of later SENDs that waited for it.
    pub(crate) fn announce(mut self, events: Vec<(Topic, BusEvent)>) {
        self.release(events);
    }

    fn release(&mut self, events: Vec<(Topic, BusEvent)>) {
        let mut waiting = self.order.lock();
        for seq in &self.seqs {
            waiting.taken.remove(seq);
        }
        if let (Some(&first), false) = (self.seqs.first(), events.is_empty()) {
            waiting.ready.insert(first, events);
        }
        self.seqs.clear();
        // Under the lock, so two SENDs released at once publish in order.
        let bound = waiting.taken.first().copied().unwrap_or(u64::MAX);
        while let Some(entry) = waiting.ready.first_entry() {
            if *entry.key() >= bound {
                break;
            }
            for (topic, event) in entry.remove() {
                self.bus.publish_with_id(&topic, event);
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.seqs.is_empty() {
            self.release(Vec::new());
        }
    }
}

#[cfg(test)]
mod tests {
    use restsip_protocol::EventKind;

    use super::*;

    fn message(id: u64) -> BusEvent {
        BusEvent {
            id,
            kind: EventKind::Message,
            data: serde_json::json!({ "n": id }),
            state: None,
        }
    }

    #[tokio::test]
    async fn sends_committed_out_of_order_are_published_in_order_and_a_dropped_one_holds_none() {
        let bus = Bus::new(0, 16, 16);
        let topic = Topic::Inbox("a@x".into(), 1);
        let mut rx = bus.subscribe(&topic, None).receiver;
        let order = SendOrder::default();
        let (a, b, c) = (
            order.take(&bus, 1),
            order.take(&bus, 1),
            order.take(&bus, 1),
        );
        let ids: Vec<u64> = [&a, &b, &c].iter().map(|t| t.seqs()[0]).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        // The third commits first, then the second: both wait for the first.
        c.announce(vec![(topic.clone(), message(ids[2]))]);
        b.announce(vec![(topic.clone(), message(ids[1]))]);
        assert!(rx.try_recv().is_err(), "nothing before the first SEND");
        // The first is given up (its commit failed): the others go, in order.
        drop(a);
        let got: Vec<u64> = (0..2).map(|_| rx.try_recv().expect("event").id).collect();
        assert_eq!(got, vec![ids[1], ids[2]]);
        // Alone, a SEND goes at once.
        let d = order.take(&bus, 1);
        let id = d.seqs()[0];
        d.announce(vec![(topic.clone(), message(id))]);
        assert_eq!(rx.try_recv().expect("event").id, id);
    }
}
