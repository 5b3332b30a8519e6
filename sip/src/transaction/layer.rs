//! What client and server transactions share: a table of live transactions by key, one queue
//! of their deadlines served by one task, and the wire they send on. Each kind says what its
//! transactions hold and what its timers do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::timers::{Deadlines, TimerQueue};
use super::TxKey;
use crate::transport::Wire;

/// One kind of transaction (client or server).
pub(crate) trait Kind: Sized + Send + Sync + 'static {
    /// A transaction's state.
    type Tx: Send;
    /// Its timers.
    type Timer: Ord + Send;
    /// Acts on `timer` of the transaction `key`, which passed.
    fn fire(layer: &Layer<Self>, key: TxKey, timer: Self::Timer);
}

/// The transactions of one kind.
pub(crate) struct Layer<K: Kind> {
    /// Live transactions.
    table: Mutex<HashMap<TxKey, K::Tx>>,
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
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<TxKey, K::Tx>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<K: Kind> Deadlines for Layer<K> {
    type Due = (TxKey, K::Timer);

    fn queue(&self) -> &TimerQueue<Self::Due> {
        &self.timers
    }

    fn fire(&self, (key, timer): Self::Due) {
        K::fire(self, key, timer);
    }
}
