//! Who may watch a user's presence: the user's rule, set over REST (`PUT
//! /user/{email}/presence-rule`) and applied to every presence read (SIP SUBSCRIBE, SERVICE
//! GetPresence, `GET /login/{email}`). By default only signed-in users (authenticated local
//! users) may watch; the owner always may.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use restsip_protocol::normalize_email;
use serde::{Deserialize, Serialize};

use super::Location;
use crate::error::{Error, Result};

/// Most addresses a `listed` rule names.
const MAX_LISTED: usize = 1000;
/// Longest address in a list.
const MAX_ADDRESS_LEN: usize = 320;
/// How long a user's existence and rule are used from memory: a change made through another
/// relay sharing the store is seen within this time (through this one, at once).
const KNOWN_TTL: Duration = Duration::from_secs(10);
/// Users kept in memory at most; past this the copy starts over.
const KNOWN_MAX: usize = 100_000;

/// The users known to exist, with their presence rules, read from the store at most once per
/// [`KNOWN_TTL`]: every `GET /login/{email}` needs both, and a store read each is most of its
/// cost. Users not found are not kept (a sign-up is seen at once).
#[derive(Debug, Default)]
pub(super) struct KnownUsers {
    /// email → (its rule, when read).
    users: Mutex<HashMap<String, (Arc<PresenceRule>, Instant)>>,
}

impl KnownUsers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Arc<PresenceRule>, Instant)>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, email: &str) -> Option<Arc<PresenceRule>> {
        self.lock()
            .get(email)
            .filter(|(_, at)| at.elapsed() < KNOWN_TTL)
            .map(|(rule, _)| rule.clone())
    }

    fn keep(&self, email: &str, rule: Arc<PresenceRule>) {
        let mut users = self.lock();
        if users.len() >= KNOWN_MAX {
            users.retain(|_, (_, at)| at.elapsed() < KNOWN_TTL);
            if users.len() >= KNOWN_MAX {
                users.clear();
            }
        }
        users.insert(email.to_owned(), (rule, Instant::now()));
    }

    pub(super) fn forget(&self, email: &str) {
        self.lock().remove(email);
    }
}

/// Who may watch.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Allow {
    /// Authenticated users of the relay (the default).
    #[default]
    SignedIn,
    /// Anyone, anonymous SIP watchers included.
    Everyone,
    /// The users listed in `emails` only.
    Listed,
}

/// A user's presence rule, as stored and as `GET/PUT /user/{email}/presence-rule` carry it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PresenceRule {
    /// Who may watch.
    pub allow: Allow,
    /// The watchers a `listed` rule allows.
    #[serde(default)]
    pub emails: Vec<String>,
}

impl PresenceRule {
    /// Whether `watcher` (None: anonymous, an unauthenticated SIP sender) may see the
    /// presence of `owner`.
    pub fn permits(&self, owner: &str, watcher: Option<&str>) -> bool {
        let Some(watcher) = watcher.map(normalize_email) else {
            return self.allow == Allow::Everyone;
        };
        watcher == owner
            || match self.allow {
                Allow::Everyone | Allow::SignedIn => true,
                Allow::Listed => self.emails.contains(&watcher),
            }
    }

    /// The rule checked, its addresses normalized.
    fn checked(mut self) -> Result<Self> {
        if self.emails.len() > MAX_LISTED {
            return Err(Error::Invalid(format!(
                "a presence rule lists at most {MAX_LISTED} addresses"
            )));
        }
        for email in &mut self.emails {
            if email.len() > MAX_ADDRESS_LEN || !email.contains('@') {
                return Err(Error::Invalid(format!(
                    "{email:?} is not an address like alice@example.net"
                )));
            }
            *email = normalize_email(email);
        }
        self.emails.sort();
        self.emails.dedup();
        Ok(self)
    }
}

impl Location {
    /// The presence rule of `email` (the default when none is set); NotFound for no user.
    pub async fn presence_rule(&self, email: &str) -> Result<PresenceRule> {
        Ok(self.known_rule(email).await?.as_ref().clone())
    }

    /// The presence rule of `email` through the copy in memory; NotFound for no user (so this
    /// is also the check that a user exists).
    pub(super) async fn known_rule(&self, email: &str) -> Result<Arc<PresenceRule>> {
        if let Some(rule) = self.known.get(email) {
            return Ok(rule);
        }
        if self.store.user(email).await?.is_none() {
            return Err(Error::NotFound(format!("no user {email}")));
        }
        let rule = Arc::new(match self.store.presence_rule(email).await? {
            Some(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                tracing::warn!(error = %e, email, "stored presence rule unreadable; default");
                PresenceRule::default()
            }),
            None => PresenceRule::default(),
        });
        self.known.keep(email, rule.clone());
        Ok(rule)
    }

    /// Forgets what is known of `email` in memory (the account was deleted).
    pub fn forget_user(&self, email: &str) {
        self.known.forget(email);
    }

    /// Sets the presence rule of `email`; the rule as stored.
    pub async fn set_presence_rule(&self, email: &str, rule: PresenceRule) -> Result<PresenceRule> {
        let rule = rule.checked()?;
        let text = serde_json::to_string(&rule)
            .map_err(|e| Error::Invalid(format!("presence rule: {e}")))?;
        let stored = self.store.set_presence_rule(email, &text).await?;
        self.known.forget(email);
        if !stored {
            return Err(Error::NotFound(format!("no user {email}")));
        }
        Ok(rule)
    }

    /// Whether `watcher` (None: anonymous) may see the presence of `owner`. An address that is
    /// no account here (another domain's, watched through the upstream server) has no rule
    /// here: its own server decides.
    pub async fn may_watch(&self, owner: &str, watcher: Option<&str>) -> Result<bool> {
        match self.known_rule(owner).await {
            Ok(rule) => Ok(rule.permits(owner, watcher)),
            Err(Error::NotFound(_)) => Ok(true),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_permit_as_named() {
        let owner = "o@x";
        let default = PresenceRule::default();
        assert!(default.permits(owner, Some("a@x")));
        assert!(!default.permits(owner, None));
        let everyone = PresenceRule {
            allow: Allow::Everyone,
            emails: vec![],
        };
        assert!(everyone.permits(owner, None));
        let listed = PresenceRule {
            allow: Allow::Listed,
            emails: vec!["a@x".into()],
        };
        assert!(listed.permits(owner, Some("A@X")));
        assert!(!listed.permits(owner, Some("b@x")));
        assert!(listed.permits(owner, Some(owner)));
        assert!(!listed.permits(owner, None));
    }

    #[test]
    fn bodies_read_as_documented() {
        let rule: PresenceRule =
            serde_json::from_str(r#"{"allow":"listed","emails":["A@x"]}"#).expect("rule");
        assert_eq!(rule.checked().expect("checked").emails, vec!["a@x"]);
        assert!(serde_json::from_str::<PresenceRule>(r#"{"allow":"nobody"}"#).is_err());
    }
}
