//! One queue of deadlines for all transactions of a kind, served by one task, instead of a task
//! per transaction: at thousands of transactions a second, most of them just wait for Timer J.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Deadlines, earliest first, with a counter that keeps equal ones in insertion order.
type Heap<K> = (BinaryHeap<Reverse<(Instant, u64, K)>>, u64);

/// Deadlines with what to do at each.
#[derive(Debug)]
pub(crate) struct TimerQueue<K: Ord> {
    /// Earliest deadline first; the counter keeps equal deadlines in insertion order.
    heap: Mutex<Heap<K>>,
    /// Wakes the serving task when a deadline is added.
    added: Notify,
}

impl<K: Ord> TimerQueue<K> {
    /// An empty queue.
    pub(crate) fn new() -> Self {
        Self {
            heap: Mutex::new((BinaryHeap::new(), 0)),
            added: Notify::new(),
        }
    }

    /// Adds a deadline.
    pub(crate) fn schedule(&self, at: Instant, what: K) {
        let mut guard = self.heap.lock().unwrap_or_else(|p| p.into_inner());
        let (heap, counter) = &mut *guard;
        *counter += 1;
        // The serving task sleeps until the earliest deadline: it needs waking only when this
        // one comes first (most are Timer J, 32 s from now, behind all others).
        let first = heap.peek().is_none_or(|Reverse((head, _, _))| at < *head);
        heap.push(Reverse((at, *counter, what)));
        drop(guard);
        if first {
            self.added.notify_one();
        }
    }

    /// Waits for the earliest deadline to pass and returns what is due.
    pub(crate) async fn next_due(&self) -> K {
        loop {
            let earliest = {
                let mut guard = self.heap.lock().unwrap_or_else(|p| p.into_inner());
                let heap = &mut guard.0;
                match heap.peek() {
                    Some(Reverse((at, _, _))) if *at <= Instant::now() => {
                        if let Some(Reverse((_, _, what))) = heap.pop() {
                            return what;
                        }
                        None
                    }
                    Some(Reverse((at, _, _))) => Some(*at),
                    None => None,
                }
            };
            match earliest {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = self.added.notified() => {}
                    }
                }
                None => self.added.notified().await,
            }
        }
    }
}

/// A transaction layer whose deadlines one task serves.
pub(crate) trait Deadlines: Send + Sync + 'static {
    /// What is due at a deadline.
    type Due: Ord + Send;
    /// The layer's queue.
    fn queue(&self) -> &TimerQueue<Self::Due>;
    /// Acts on a deadline that passed.
    fn fire(&self, due: Self::Due);
}

/// Serves `layer`'s deadlines until the last handle to it is dropped (checked at least every
/// second, so an idle layer's task ends too).
pub(crate) fn serve<L: Deadlines>(layer: Weak<L>) {
    tokio::spawn(async move {
        loop {
            let Some(layer) = layer.upgrade() else { return };
            let due = tokio::select! {
                due = layer.queue().next_due() => due,
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
            };
            layer.fire(due);
        }
    });
}
