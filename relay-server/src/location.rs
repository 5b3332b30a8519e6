//! The location service: who is logged in where. REST logins (and, with the SIP side, SIP
//! registrations) are contacts of a user; every change, expiry included, is an event on
//! `/login/{email}`, and a contact that goes away ends its inbox stream and leaves its calls.

mod cache;
mod rule;
mod sip;

use std::sync::Arc;

use restsip_protocol::{Contact, ContactSource, CreateLogin, EventKind, RefreshLogin};
use serde_json::json;

use crate::bus::{Bus, Topic};
use crate::calls::Calls;
use crate::clock::{now_ms, seconds_until};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::store::{ContactRecord, Store};

pub use rule::{Allow, PresenceRule};
pub use sip::{Binding, BindingChange, MAX_BINDINGS};

/// Longest contact address accepted.
const MAX_CONTACT_LEN: usize = 1024;

/// Cheap-clone handle to the location service.
#[derive(Clone)]
pub struct Location {
    /// Durable contacts.
    store: Arc<dyn Store>,
    /// Where changes are announced.
    bus: Bus,
    /// Calls to leave when a login goes away.
    calls: Calls,
    /// Expiry limits.
    limits: Arc<Limits>,
    /// The contacts of active users, beside the store.
    cache: Arc<cache::ContactCache>,
    /// The users known to exist and their presence rules, beside the store.
    known: Arc<rule::KnownUsers>,
    /// Told the email of each user whose logins changed (the upstream registrations).
    observer: Arc<std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<String>>>,
    /// Addresses of other domains watched through an upstream server (none without SIP).
    foreign: Option<Arc<dyn Foreign>>,
}

/// Presence of addresses of other domains, which the SIP application watches through an
/// upstream server: the location service reads and watches them through this port.
pub trait Foreign: Send + Sync + 'static {
    /// Whether `address` (no account here) may be watched: its domain is served upstream.
    fn watchable(&self, address: &str) -> bool;
    /// Watches `address` for `watcher` while the returned guard lives; None when it cannot.
    fn watch(&self, address: &str, watcher: &str) -> Option<Box<dyn Send + Sync>>;
    /// The address's presence as a login resource's state, once a notification gave it.
    fn state(&self, address: &str) -> Option<serde_json::Value>;
}

/// The API view of a contact.
pub fn contact_view(c: &ContactRecord, now: i64) -> Contact {
    Contact {
        id: c.id,
        url: Topic::Inbox(c.email.clone(), c.id).resource(),
        contact: c.contact.clone(),
        expires: seconds_until(c.expires_at, now),
        presence: c.presence.clone(),
        source: c.source,
    }
}

impl Location {
    /// The location service over `store`, announcing on `bus`; addresses of other domains
    /// are watched through `foreign`, when there is one.
    pub fn new(
        store: Arc<dyn Store>,
        bus: Bus,
        calls: Calls,
        limits: Arc<Limits>,
        foreign: Option<Arc<dyn Foreign>>,
    ) -> Self {
        Self {
            store,
            bus,
            calls,
            limits,
            cache: Arc::default(),
            known: Arc::default(),
            observer: Arc::default(),
            foreign,
        }
    }

    /// The emails of users whose logins change (added, refreshed, removed, expired) from now
    /// on; None when someone observes already.
    pub fn observe(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<String>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.observer.set(tx).ok().map(|()| rx)
    }

    /// Another relay sharing the store changed the logins of `email` (its `/login/{email}`
    /// event came over the cluster): the memory copy of its contacts is dropped, so the next
    /// read (a SEND, a NOTIFY, a `GET`) is the store's.
    pub fn forget_contacts(&self, email: &str) {
        self.cache.forget(email);
    }

    fn changed(&self, email: &str) {
        if let Some(tx) = self.observer.get() {
            let _ = tx.send(email.to_owned());
        }
    }

    /// Whether `/login/{address}` may be watched through the upstream server: no account here,
    /// and the upstream serves its domain.
    pub async fn foreign_watchable(&self, address: &str) -> Result<bool> {
        let watchable = self.foreign.as_ref().is_some_and(|f| f.watchable(address));
        Ok(watchable && self.store.user(address).await?.is_none())
    }

    /// `watcher` watches `address` through the upstream server while it holds the guard; None
    /// when `address` is an account here or not watchable.
    pub async fn watch_foreign(
        &self,
        address: &str,
        watcher: &str,
    ) -> Result<Option<Box<dyn Send + Sync>>> {
        match &self.foreign {
            Some(foreign) if self.foreign_watchable(address).await? => {
                Ok(foreign.watch(address, watcher))
            }
            _ => Ok(None),
        }
    }

    /// The lifetime granted for a requested one.
    pub fn grant(&self, requested: Option<u32>) -> u32 {
        requested
            .unwrap_or(self.limits.default_expires)
            .clamp(self.limits.min_expires, self.limits.max_expires)
    }

    /// Adds a contact for `email`.
    pub async fn register(
        &self,
        email: &str,
        req: CreateLogin,
        source: ContactSource,
    ) -> Result<ContactRecord> {
        check_contact(req.contact.as_deref())?;
        let expires = self.grant(req.expires);
        let record = ContactRecord {
            email: email.to_owned(),
            id: 0,
            contact: req.contact,
            expires_at: now_ms() + i64::from(expires) * 1000,
            presence: req.presence,
            source,
            sip: None,
        };
        let record = self
            .store
            .add_contact(&record)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no user {email}")))?;
        self.cache.upsert(&record);
        self.announce(email, EventKind::Added, &record).await?;
        Ok(record)
    }

    /// Refreshes a contact: a new lifetime, and a new address or presence if given.
    pub async fn refresh(&self, email: &str, id: i64, req: RefreshLogin) -> Result<ContactRecord> {
        let mut record = self.live_contact(email, id).await?;
        let (contact, expires, presence) = match req {
            RefreshLogin::Contact(contact) => (Some(contact), None, None),
            RefreshLogin::Fields(f) => (f.contact, f.expires, f.presence),
        };
        check_contact(contact.as_deref())?;
        if contact.is_some() {
            record.contact = contact;
        }
        if presence.is_some() {
            record.presence = presence;
        }
        record.expires_at = now_ms() + i64::from(self.grant(expires)) * 1000;
        if !self.store.update_contact(&record).await? {
            return Err(Error::NotFound(format!(
                "no login {}",
                Topic::Inbox(email.into(), id).resource()
            )));
        }
        self.cache.upsert(&record);
        self.announce(email, EventKind::Updated, &record).await?;
        Ok(record)
    }

    /// Removes a contact (log out).
    pub async fn unregister(&self, email: &str, id: i64) -> Result<ContactRecord> {
        let record = self.store.remove_contact(email, id).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "no login {}",
                Topic::Inbox(email.into(), id).resource()
            ))
        })?;
        self.cache.remove(email, id);
        self.gone(&record, "logout").await?;
        Ok(record)
    }

    /// A contact that exists and has not expired.
    pub async fn live_contact(&self, email: &str, id: i64) -> Result<ContactRecord> {
        let now = now_ms();
        // Through the memory copy when it holds the user's list (it has every live contact).
        let found = match self.cache.get(email, now) {
            Some(list) => list.into_iter().find(|c| c.id == id),
            None => self.store.contact(email, id).await?,
        };
        match found {
            Some(c) if c.expires_at > now => Ok(c),
            _ => Err(Error::NotFound(format!(
                "no login {}",
                Topic::Inbox(email.into(), id).resource()
            ))),
        }
    }

    /// The live contacts of a user; an unknown user is an error, a logged-out one an empty list.
    pub async fn contacts(&self, email: &str) -> Result<Vec<ContactRecord>> {
        self.known_rule(email).await?;
        // Through the memory copy: a refresh written behind is seen at once.
        self.live(email, now_ms()).await
    }

    /// The state of `/login/{email}` as a stream's `state` event carries it.
    /// For an address of another domain watched through the upstream server: its presence.
    pub async fn state(&self, email: &str) -> Result<serde_json::Value> {
        match self.views(email).await {
            Err(Error::NotFound(why)) => {
                let foreign = self.foreign.as_ref().and_then(|f| f.state(email));
                foreign.ok_or(Error::NotFound(why))
            }
            r => Ok(json!(r?)),
        }
    }

    /// The live contacts of `email`, an account here, as the API shows them.
    pub async fn views(&self, email: &str) -> Result<Vec<Contact>> {
        let now = now_ms();
        let contacts = self.contacts(email).await?;
        Ok(contacts.iter().map(|c| contact_view(c, now)).collect())
    }

    /// Removes every expired contact, announcing each as removed with reason `expired`.
    pub async fn expire_due(&self) -> Result<usize> {
        let expired = self.store.take_expired_contacts(now_ms()).await?;
        for record in &expired {
            self.cache.remove(&record.email, record.id);
            self.gone(record, "expired").await?;
        }
        Ok(expired.len())
    }

    async fn gone(&self, record: &ContactRecord, reason: &str) -> Result<()> {
        let email = &record.email;
        self.changed(email);
        let mut item = serde_json::to_value(contact_view(record, now_ms())).unwrap_or_default();
        item["reason"] = json!(reason);
        let state = self.state(email).await.ok();
        self.bus.publish(
            &Topic::Login(email.clone()),
            EventKind::Removed,
            item.clone(),
            state.clone(),
        );
        let inbox = Topic::Inbox(email.clone(), record.id);
        self.bus.publish(&inbox, EventKind::Gone, item, None);
        let mut logins = vec![inbox.resource()];
        if state
            .as_ref()
            .and_then(|s| s.as_array())
            .is_none_or(|a| a.is_empty())
        {
            logins.push(Topic::Login(email.clone()).resource());
        }
        self.calls.leave_logins(&logins, reason).await
    }

    async fn announce(&self, email: &str, kind: EventKind, record: &ContactRecord) -> Result<()> {
        self.changed(email);
        let item = serde_json::to_value(contact_view(record, now_ms())).unwrap_or_default();
        let state = self.state(email).await?;
        self.bus
            .publish(&Topic::Login(email.to_owned()), kind, item, Some(state));
        Ok(())
    }
}

fn check_contact(contact: Option<&str>) -> Result<()> {
    match contact {
        Some(c) if c.len() > MAX_CONTACT_LEN => Err(Error::Invalid(format!(
            "contact is longer than {MAX_CONTACT_LEN} bytes"
        ))),
        Some(c) if c.trim().is_empty() => Err(Error::Invalid("contact is empty".into())),
        _ => Ok(()),
    }
}
