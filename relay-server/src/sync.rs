//! Locks that survive a panic: a panic while one was held leaves plain data (maps, counters)
//! that stays usable, so the relay goes on instead of failing every later request.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking it over from a holder that panicked.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
