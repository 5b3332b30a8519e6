//! What client and server transactions share: a table of live transactions by key, one queue
//! of their deadlines served by one task, and the wire they send on. Each kind says what its
//! transactions hold and what its timers do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::timers::{Deadlines, TimerQueue};
use super::TxKey;
use crate::transport::Wire;

/// One kind of transaction (client or server): the state of one transaction.
pub trait Kind: Sized + Send + Sync + 'static {
    /// Its timers.
    type Timer: Ord + Send;
    /// Its name in statistics (`server` or `client`).
    const NAME: &'static str;
    /// Acts on `timer` of the live transaction `tx` (`key`), which passed, with the table
    /// locked; true when the transaction is over and is forgotten.
    fn fire(&mut self, layer: &Layer<Self>, key: &TxKey, timer: Self::Timer) -> bool;
}

/// The transactions of one kind (`K`, the state of one) of an endpoint; cheap to clone.
pub struct Transactions<K: Kind> {
    /// Shared state.
    pub(crate) inner: Arc<Layer<K>>,
}

impl<K: Kind> Clone for Transactions<K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K: Kind> Transactions<K> {
    /// The layer, with its timer task running until the last handle is dropped.
    pub fn new(wire: Arc<dyn Wire>) -> Self {
        Self {
            inner: Layer::start(wire),
        }
    }
}

/// The table, deadlines and wire of one kind of transaction.
pub struct Layer<K: Kind> {
    /// Live transactions.
    table: Mutex<HashMap<TxKey, K>>,
    /// Their deadlines.
    pub(crate) timers: TimerQueue<(TxKey, K::Timer)>,
    /// Where messages are sent.
    pub(crate) wire: Arc<dyn Wire>,
}

impl<K: Kind> Layer<K> {
    /// The layer, with its timer task running until the last handle is dropped.
    pub(crate) fn start(wire: Arc<dyn Wire>) -> Arc<Self> {
        let layer = Arc::new(Self {
            table: Mutex::new(HashMap::new()),
            timers: TimerQueue::new(),
            wire,
        });
        super::timers::serve(Arc::downgrade(&layer));
        layer
    }

    /// The live transactions (a panic elsewhere while holding them loses nothing here).
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<TxKey, K>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<K: Kind> Deadlines for Layer<K> {
    type Due = (TxKey, K::Timer);

    fn queue(&self) -> &TimerQueue<Self::Due> {
        &self.timers
    }

    fn fire(&self, (key, timer): Self::Due) {
        let mut table = self.lock();
        let Some(tx) = table.get_mut(&key) else {
            return; // over before its timer
        };
        if tx.fire(self, &key, timer) {
            table.remove(&key);
            crate::stats::transactions_alive(K::NAME, table.len());
        }
    }
}
