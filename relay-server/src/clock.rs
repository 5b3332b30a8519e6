//! Wall-clock time as the store keeps it.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Whole seconds from `now` until `at` (both ms), rounded up, never negative.
pub fn seconds_until(at: i64, now: i64) -> u32 {
    u32::try_from(((at - now).max(0) + 999) / 1000).unwrap_or(u32::MAX)
}
