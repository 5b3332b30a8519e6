//! Keyed hashes: stable within the process, so a retransmission hashes alike, and unguessable
//! from outside it, so nobody forges a value for another message (one random key per process).

use std::collections::hash_map::{DefaultHasher, RandomState};
use std::hash::{BuildHasher, Hash};
use std::sync::OnceLock;

/// A hasher under the process's key.
pub fn hasher() -> DefaultHasher {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    KEY.get_or_init(RandomState::new).build_hasher()
}

/// The keyed hash of one value.
pub fn hash_one(value: impl Hash) -> u64 {
    use std::hash::Hasher;
    let mut h = hasher();
    value.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_value_hashes_alike_and_another_does_not() {
        assert_eq!(hash_one("a"), hash_one("a"));
        assert_ne!(hash_one("a"), hash_one("b"));
    }
}
