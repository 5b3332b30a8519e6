//! SIP registrations in the location service (RFC 3261 §10.3): a binding is a contact with
//! `ContactSource::Sip`, so a phone's REGISTER shows in `GET /login/{email}` and its streams
//! like a REST login, and expires the same way.

use restsip_protocol::{Contact, ContactSource, EventKind};
use serde_json::{json, Value};

use super::{contact_view, Location, MAX_CONTACT_LEN};
use crate::bus::Topic;
use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::store::ContactRecord;

/// A binding refreshed from memory has at least this long left (ms): its new lifetime is
/// written behind within milliseconds, long before the expiry sweep could see the old one end.
const REFRESH_MARGIN_MS: i64 = 10_000;

fn sip_only(live: Vec<ContactRecord>) -> Vec<ContactRecord> {
    live.into_iter()
        .filter(|c| c.source == ContactSource::Sip)
        .collect()
}

/// A SIP binding as the 200 to a REGISTER lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI.
    pub uri: String,
    /// When it expires (ms).
    pub expires_at: i64,
}

impl Binding {
    /// The SIP bindings among `contacts`.
    pub fn list<'a>(contacts: impl IntoIterator<Item = &'a ContactRecord>) -> Vec<Binding> {
        contacts
            .into_iter()
            .filter(|c| c.source == ContactSource::Sip)
            .filter_map(|c| {
                Some(Binding {
                    uri: c.contact.clone()?,
                    expires_at: c.expires_at,
                })
            })
            .collect()
    }
}

/// Most SIP bindings one user may hold.
pub const MAX_BINDINGS: usize = 32;

/// One change a REGISTER asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum BindingChange {
    /// Add or refresh the binding of this Contact URI.
    Bind {
        /// The Contact URI.
        uri: String,
        /// Granted lifetime (s), above 0.
        expires: u32,
        /// How the phone is reached (transport, source, Path), kept with the binding.
        route: Value,
    },
    /// Remove the binding of this Contact URI (`expires=0`).
    Unbind {
        /// The Contact URI.
        uri: String,
    },
}

impl BindingChange {
    fn uri(&self) -> &str {
        match self {
            BindingChange::Bind { uri, .. } | BindingChange::Unbind { uri } => uri,
        }
    }
}

/// Locks that make the REGISTERs of one user take effect one after the other (RFC 3261 §10.3
/// asks for each to be processed atomically): two REGISTERs of a new Contact in flight at once
/// would otherwise both add it. Users share them by hash, so memory stays fixed.
static USER_LOCKS: [tokio::sync::Mutex<()>; 256] =
    [const { tokio::sync::Mutex::const_new(()) }; 256];

fn user_lock(email: &str) -> &'static tokio::sync::Mutex<()> {
    // FNV-1a: spreads emails over the locks; nothing secret depends on it.
    let hash = email.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    &USER_LOCKS[(hash % USER_LOCKS.len() as u64) as usize]
}

fn position(live: &[ContactRecord], uri: &str) -> Option<usize> {
    live.iter()
        .position(|c| c.source == ContactSource::Sip && c.contact.as_deref() == Some(uri))
}

fn stored_order(c: &ContactRecord) -> Option<(&str, u64)> {
    let sip = c.sip.as_ref()?;
    Some((sip.get("call_id")?.as_str()?, sip.get("cseq")?.as_u64()?))
}

impl Location {
    /// Applies the changes of one REGISTER (Call-ID `call_id`, CSeq `cseq`) for `email` and
    /// returns the user's SIP bindings after it. A REGISTER older than a binding it touches
    /// (same Call-ID, CSeq lower) changes nothing and is an [`Error::Conflict`]; the one that
    /// made a binding (same Call-ID and CSeq: a retransmission) changes nothing either and gets
    /// the bindings as they are.
    pub async fn register_sip(
        &self,
        email: &str,
        call_id: &str,
        cseq: u32,
        changes: Vec<BindingChange>,
    ) -> Result<Vec<ContactRecord>> {
        let _one_at_a_time = user_lock(email).lock().await;
        let _busy = self.cache.busy(email);
        let now = now_ms();
        let mut live = self.live(email, now).await?;
        let mut retransmission = false;
        for change in &changes {
            if change.uri().len() > MAX_CONTACT_LEN {
                return Err(Error::Invalid(format!(
                    "contact is longer than {MAX_CONTACT_LEN} bytes"
                )));
            }
            let existing = position(&live, change.uri()).and_then(|i| stored_order(&live[i]));
            match existing {
                // The same REGISTER again (a UDP retransmission: REGISTER has no server
                // transaction): it already took effect, so it changes nothing and is answered
                // with the bindings as they are.
                Some((id, seq)) if id == call_id && u64::from(cseq) == seq => {
                    retransmission = true;
                }
                Some((id, seq)) if id == call_id && u64::from(cseq) < seq => {
                    return Err(Error::Conflict(
                        "CSeq is not above the one that made the binding".into(),
                    ));
                }
                _ => {}
            }
        }
        if retransmission {
            return Ok(sip_only(live));
        }
        for change in changes {
            match change {
                BindingChange::Bind {
                    uri,
                    expires,
                    mut route,
                } => {
                    route["call_id"] = json!(call_id);
                    route["cseq"] = json!(cseq);
                    let expires_at = now + i64::from(expires) * 1000;
                    self.bind(email, &mut live, uri, expires_at, route).await?;
                }
                BindingChange::Unbind { uri } => {
                    if let Some(i) = position(&live, &uri) {
                        let record = live.remove(i);
                        let removed = self.store.remove_contact(email, record.id).await?;
                        self.cache.remove(email, record.id);
                        if let Some(gone) = removed {
                            self.gone(&gone, "unregistered").await?;
                        }
                    }
                }
            }
        }
        Ok(sip_only(live))
    }

    async fn bind(
        &self,
        email: &str,
        live: &mut Vec<ContactRecord>,
        uri: String,
        expires_at: i64,
        route: Value,
    ) -> Result<()> {
        let mut route = Some(route);
        let mut refreshed = None;
        if let Some(i) = position(live, &uri) {
            let record = &mut live[i];
            // A binding far from its end is refreshed behind, as from memory: REGISTERs that
            // queued behind another of the user's take no commit each.
            let far = record.expires_at - now_ms() >= REFRESH_MARGIN_MS;
            record.expires_at = expires_at;
            record.sip = route.take();
            let behind = far && self.store.update_contact_later(record.clone());
            if behind || self.store.update_contact(record).await? {
                self.cache.upsert(record);
                refreshed = Some(i);
            } else {
                // It expired and was swept meanwhile: bind it afresh.
                self.cache.remove(email, record.id);
                route = live.remove(i).sip;
            }
        }
        let (kind, at) = match refreshed {
            Some(i) => (EventKind::Updated, i),
            None => {
                let bindings = live
                    .iter()
                    .filter(|c| c.source == ContactSource::Sip)
                    .count();
                if bindings >= MAX_BINDINGS {
                    return Err(Error::Limit(format!(
                        "at most {MAX_BINDINGS} SIP registrations per user"
                    )));
                }
                let record = ContactRecord {
                    email: email.to_owned(),
                    id: 0,
                    contact: Some(uri),
                    expires_at,
                    presence: None,
                    source: ContactSource::Sip,
                    sip: route,
                };
                let record = self
                    .store
                    .add_contact(&record)
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("no user {email}")))?;
                self.cache.upsert(&record);
                live.push(record);
                (EventKind::Added, live.len() - 1)
            }
        };
        self.announce_binding(email, live, at, kind);
        Ok(())
    }

    /// Tells the watchers of `email`'s logins that `live[at]` changed. The state is what `live`
    /// holds now: no second read of the store. Built only when someone watches the user's
    /// logins (most phones' refreshes have no audience).
    fn announce_binding(&self, email: &str, live: &[ContactRecord], at: usize, kind: EventKind) {
        self.bus
            .publish_lazy(&Topic::Login(email.to_owned()), kind, || {
                let now = now_ms();
                let state: Vec<Contact> = live.iter().map(|c| contact_view(c, now)).collect();
                let item = serde_json::to_value(contact_view(&live[at], now)).unwrap_or_default();
                (item, Some(json!(state)))
            });
    }

    /// Applies a REGISTER that only refreshes bindings the relay holds in memory, without
    /// waiting for the store: the new lifetimes are written behind (Kamailio's usrloc
    /// write-back does the same). Returns the user's SIP bindings after it, or None when the
    /// REGISTER needs [`Location::register_sip`]: a new or removed binding, a binding near its
    /// end (so the expiry sweep, which reads the store, cannot take it before its refresh is
    /// written), an out-of-order CSeq, a user not in memory, a store that cannot write behind,
    /// or a change of the user's bindings through the store in progress.
    pub fn refresh_sip(
        &self,
        email: &str,
        call_id: &str,
        cseq: u32,
        changes: Vec<BindingChange>,
    ) -> Option<Vec<Binding>> {
        // Refreshes from memory take turns under the copy's lock, and keep out of a change
        // through the store in progress (register_sip and unregister_sip_all mark it).
        let now = now_ms();
        let mut refreshed = Vec::with_capacity(changes.len());
        // In place, under the copy's lock: no list is copied for a refresh.
        let bindings = self.cache.update(email, |list| {
            let alive = |c: &ContactRecord| c.expires_at > now;
            let mut found = Vec::with_capacity(changes.len());
            for change in &changes {
                let BindingChange::Bind { uri, .. } = change else {
                    return None;
                };
                let i = list.iter().position(|c| {
                    alive(c) && c.source == ContactSource::Sip && c.contact.as_deref() == Some(uri)
                })?;
                if list[i].expires_at - now < REFRESH_MARGIN_MS {
                    return None;
                }
                match stored_order(&list[i]) {
                    // A retransmission: it took effect already.
                    Some((id, seq)) if id == call_id && u64::from(cseq) == seq => {
                        return Some(Binding::list(list.iter().filter(|c| alive(c))));
                    }
                    Some((id, seq)) if id == call_id && u64::from(cseq) < seq => return None,
                    _ => {}
                }
                found.push(i);
            }
            let mut updates = Vec::with_capacity(found.len());
            for (change, &i) in changes.into_iter().zip(&found) {
                let BindingChange::Bind {
                    expires, mut route, ..
                } = change
                else {
                    continue;
                };
                route["call_id"] = json!(call_id);
                route["cseq"] = json!(cseq);
                let old = &list[i];
                let record = ContactRecord {
                    email: old.email.clone(),
                    id: old.id,
                    contact: old.contact.clone(),
                    expires_at: now + i64::from(expires) * 1000,
                    presence: old.presence.clone(),
                    source: old.source,
                    sip: Some(route),
                };
                // Queued for the store before the copy changes: if the store refuses, the
                // REGISTER goes through it as a whole.
                if !self.store.update_contact_later(record.clone()) {
                    return None;
                }
                updates.push((i, record));
            }
            for (i, record) in updates {
                refreshed.push(record.id);
                list[i] = record;
            }
            Some(Binding::list(list.iter().filter(|c| alive(c))))
        })?;
        for id in refreshed {
            self.announce_refresh(email, id);
        }
        Some(bindings)
    }

    /// Tells the watchers of `email`'s logins that the binding `id` was refreshed, the state
    /// from the copy in memory (built only when someone watches).
    fn announce_refresh(&self, email: &str, id: i64) {
        self.bus
            .publish_lazy(&Topic::Login(email.to_owned()), EventKind::Updated, || {
                let now = now_ms();
                let live = self.cache.get(email, now).unwrap_or_default();
                let state: Vec<Contact> = live.iter().map(|c| contact_view(c, now)).collect();
                let item = live
                    .iter()
                    .find(|c| c.id == id)
                    .map(|c| serde_json::to_value(contact_view(c, now)).unwrap_or_default())
                    .unwrap_or_default();
                (item, Some(json!(state)))
            });
    }

    /// Removes every SIP binding of `email` (`Contact: *`); REST logins stay.
    pub async fn unregister_sip_all(&self, email: &str) -> Result<()> {
        let _one_at_a_time = user_lock(email).lock().await;
        let _busy = self.cache.busy(email);
        for record in self.live(email, now_ms()).await? {
            if record.source != ContactSource::Sip {
                continue;
            }
            let removed = self.store.remove_contact(email, record.id).await?;
            self.cache.remove(email, record.id);
            if let Some(gone) = removed {
                self.gone(&gone, "unregistered").await?;
            }
        }
        Ok(())
    }

    /// The live contacts of `email` (all sources): from the cache, else from the store.
    pub(super) async fn live(&self, email: &str, now: i64) -> Result<Vec<ContactRecord>> {
        if let Some(list) = self.cache.get(email, now) {
            return Ok(list);
        }
        let epoch = self.cache.epoch();
        let list = self.store.contacts(email, now).await?;
        self.cache.fill(email, &list, epoch);
        Ok(list)
    }

    /// The live SIP bindings of `email`.
    pub async fn sip_bindings(&self, email: &str) -> Result<Vec<ContactRecord>> {
        Ok(self
            .live(email, now_ms())
            .await?
            .into_iter()
            .filter(|c| c.source == ContactSource::Sip)
            .collect())
    }
}
