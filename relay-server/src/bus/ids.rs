//! Which event ids a relay takes ([`IdSpace`]) and the wall clock they start above.

/// How a relay takes event ids: the ids that are `slot` modulo `stride`, each above the wall
/// clock in µs when `stride` > 1 (clustered). Alone: stride 1, plain `last + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdSpace {
    /// This relay's residue, below `stride`.
    pub slot: u64,
    /// How many relays can have distinct residues.
    pub stride: u64,
}

impl IdSpace {
    /// A relay alone.
    pub const ALONE: Self = Self { slot: 0, stride: 1 };

    /// The `n`th id of this space: a counter of its own that a relay draws through this
    /// (its phones' invite ids) never hands out an id another relay's can.
    pub fn nth(self, n: u64) -> u64 {
        let stride = self.stride.max(1);
        n.saturating_mul(stride).saturating_add(self.slot % stride)
    }

    /// The smallest id above `after` in this space.
    pub(super) fn above(self, after: u64) -> u64 {
        let stride = self.stride.max(1);
        let next = after.saturating_add(1);
        next.saturating_add((self.slot % stride + stride - next % stride) % stride)
    }
}

/// The wall clock in µs since the epoch.
pub(super) fn clock_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
        .unwrap_or(0)
}
