//! The live contacts of recently active users, kept in process beside the store: a SIP
//! refresh then costs one store write instead of a read and a write (each store call is a
//! round trip to SQLite's thread, which is what bounds REGISTERs per second).
//!
//! Every write of contacts goes through [`super::Location`], which applies it here after the
//! store; a list is loaded from the store on first use. With several relays sharing one
//! database, a change another relay made is told through [`super::Location::forget_contacts`]
//! (the cluster wiring calls it for each `/login/{email}` event from another relay): the list
//! is dropped and the next read is the store's. A refresh is written behind (the store's
//! group commit gathers refreshes for 50 ms) while its event goes out at once, so for
//! [`SETTLE`] after such a change the lists read from the store are used but not kept: the
//! copy kept after that has the refresh.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::ContactRecord;

/// Users whose contacts are kept at most; past this the copy starts over.
const MAX_USERS: usize = 100_000;

/// How long after a change elsewhere a list read from the store is not kept: longer than the
/// write-behind of refreshes takes to reach the store (a 50 ms gathering, then a commit).
pub(super) const SETTLE: Duration = Duration::from_millis(500);

/// Contacts by user.
#[derive(Debug, Default)]
pub(super) struct ContactCache {
    /// The lists and who is busy.
    inner: Mutex<Inner>,
    /// Counts writes, so a list read from the store while a write went on is not kept.
    epoch: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    /// email → contacts (possibly expired; readers filter).
    users: HashMap<String, Vec<ContactRecord>>,
    /// Users with a change through the store in progress, and how many.
    busy: HashMap<String, u32>,
    /// Users changed elsewhere, and until when their lists read from the store are not kept.
    unsettled: HashMap<String, Instant>,
}

/// A change through the store in progress for one user; over once dropped.
pub(super) struct Busy<'a> {
    cache: &'a ContactCache,
    email: String,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut inner = self.cache.lock();
        if let Some(n) = inner.busy.get_mut(&self.email) {
            *n -= 1;
            if *n == 0 {
                inner.busy.remove(&self.email);
            }
        }
    }
}

impl ContactCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks `email` busy until the guard drops: [`ContactCache::update`] leaves the user's
    /// list alone meanwhile (its change is read from the store and written back after).
    pub(super) fn busy(&self, email: &str) -> Busy<'_> {
        *self.lock().busy.entry(email.to_owned()).or_default() += 1;
        Busy {
            cache: self,
            email: email.to_owned(),
        }
    }

    /// The contacts of `email` alive at `now`, if known.
    pub(super) fn get(&self, email: &str, now: i64) -> Option<Vec<ContactRecord>> {
        self.lock().users.get(email).map(|list| {
            list.iter()
                .filter(|c| c.expires_at > now)
                .cloned()
                .collect()
        })
    }

    /// The write count, to take before reading a list from the store.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Keeps a list read from the store, unless a write happened since `epoch`.
    /// Nor while the user is unsettled (changed elsewhere within [`SETTLE`]).
    pub(super) fn fill(&self, email: &str, list: &[ContactRecord], epoch: u64) {
        let inner = &mut *self.lock();
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return;
        }
        if let Some(until) = inner.unsettled.get(email) {
            if Instant::now() < *until {
                return;
            }
            inner.unsettled.remove(email);
        }
        if inner.users.len() >= MAX_USERS {
            inner.users.clear();
        }
        inner.users.insert(email.to_owned(), list.to_vec());
    }

    /// A contact was added or changed in the store.
    pub(super) fn upsert(&self, record: &ContactRecord) {
        let users = &mut self.lock().users;
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(list) = users.get_mut(&record.email) {
            match list.iter_mut().find(|c| c.id == record.id) {
                Some(c) => *c = record.clone(),
                None => list.push(record.clone()),
            }
        }
    }

    /// Runs `change` on the contacts of `email` (expired ones included), if known and not
    /// [`ContactCache::busy`], under the lock; its Some counts as a write. It must change
    /// nothing when it returns None.
    pub(super) fn update<R>(
        &self,
        email: &str,
        change: impl FnOnce(&mut Vec<ContactRecord>) -> Option<R>,
    ) -> Option<R> {
        let mut inner = self.lock();
        if inner.busy.contains_key(email) {
            return None;
        }
        let out = change(inner.users.get_mut(email)?)?;
        self.epoch.fetch_add(1, Ordering::SeqCst);
        Some(out)
    }

    /// Drops the list of `email`: it changed elsewhere (another relay), so the next read is
    /// the store's. Counts as a write, so a list read from the store before it is not kept.
    /// Lists read from the store within [`SETTLE`] are not kept (a refresh written behind
    /// may not be there yet).
    pub(super) fn forget(&self, email: &str) {
        let inner = &mut *self.lock();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        inner.users.remove(email);
        let now = Instant::now();
        if inner.unsettled.len() >= MAX_USERS {
            inner.unsettled.retain(|_, until| *until > now);
        }
        inner.unsettled.insert(email.to_owned(), now + SETTLE);
    }

    /// A contact was removed from the store.
    pub(super) fn remove(&self, email: &str, id: i64) {
        let users = &mut self.lock().users;
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(list) = users.get_mut(email) {
            list.retain(|c| c.id != id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use restsip_protocol::ContactSource;

    fn contact(id: i64, expires_at: i64) -> ContactRecord {
        ContactRecord {
            email: "a@x".into(),
            id,
            contact: None,
            expires_at,
            presence: None,
            source: ContactSource::Sip,
            sip: None,
        }
    }

    #[test]
    fn writes_apply_to_known_users_and_expired_contacts_are_hidden() {
        let cache = ContactCache::default();
        cache.upsert(&contact(1, 100));
        assert!(
            cache.get("a@x", 0).is_none(),
            "unknown users are not made up"
        );
        cache.fill("a@x", &[contact(1, 100)], cache.epoch());
        cache.upsert(&contact(2, 50));
        cache.upsert(&contact(1, 200));
        let ids = |now| {
            cache
                .get("a@x", now)
                .map(|l| l.iter().map(|c| c.id).collect::<Vec<_>>())
        };
        assert_eq!(ids(0), Some(vec![1, 2]));
        assert_eq!(ids(60), Some(vec![1]));
        cache.remove("a@x", 1);
        assert_eq!(ids(0), Some(vec![2]));
    }

    #[test]
    fn a_busy_user_is_left_alone_until_the_change_is_over() {
        let cache = ContactCache::default();
        cache.fill("a@x", &[contact(1, 100)], cache.epoch());
        let set = |expires_at| {
            cache.update("a@x", |list| {
                list[0].expires_at = expires_at;
                Some(())
            })
        };
        {
            let _first = cache.busy("a@x");
            let second = cache.busy("a@x");
            assert!(set(200).is_none());
            drop(second);
            assert!(set(200).is_none(), "one change still in progress");
        }
        assert!(set(300).is_some());
        assert_eq!(cache.get("a@x", 0).expect("known")[0].expires_at, 300);
        assert!(cache.update("b@x", |_| Some(())).is_none(), "unknown users");
    }

    #[test]
    fn a_forgotten_list_is_read_again_and_a_read_from_before_is_not_kept() {
        let cache = ContactCache::default();
        cache.fill("a@x", &[contact(1, 100)], cache.epoch());
        let before = cache.epoch();
        cache.forget("a@x");
        assert!(cache.get("a@x", 0).is_none(), "dropped");
        cache.fill("a@x", &[contact(1, 100)], before);
        assert!(
            cache.get("a@x", 0).is_none(),
            "read before the change elsewhere"
        );
        cache.fill("a@x", &[], cache.epoch());
        assert!(
            cache.get("a@x", 0).is_none(),
            "read while a refresh may be on its way"
        );
        std::thread::sleep(SETTLE);
        cache.fill("a@x", &[], cache.epoch());
        assert_eq!(cache.get("a@x", 0).map(|l| l.len()), Some(0));
    }

    #[test]
    fn a_fill_that_raced_with_a_write_is_not_kept() {
        let cache = ContactCache::default();
        let epoch = cache.epoch();
        cache.upsert(&contact(1, 100));
        cache.fill("a@x", &[], epoch);
        assert!(cache.get("a@x", 0).is_none());
    }
}
