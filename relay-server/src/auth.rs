//! Who is asking: passwords (argon2), a cache of verified credentials so HTTP Basic on every
//! request stays cheap, and short-lived signed bearer tokens for EventSource and WebSocket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::sip::digest::{ha1, Algorithm};
use crate::store::{DigestRecord, Store};

type HmacSha256 = Hmac<Sha256>;

/// How long a verified password is trusted without running argon2 again.
const CACHE_TTL: Duration = Duration::from_secs(300);
/// Entries kept in the credential cache at most.
const CACHE_MAX: usize = 100_000;

/// Cheap-clone handle to the authenticator.
#[derive(Clone)]
pub struct Auth {
    /// Shared state.
    inner: Arc<Inner>,
}

struct Inner {
    /// Where the password hashes are.
    store: Arc<dyn Store>,
    /// Key for token signatures and cache keys; kept in the store so it survives restarts.
    secret: Vec<u8>,
    /// Token lifetime.
    token_ttl: Duration,
    /// The SIP digest realm the stored HA1 values are computed for.
    realm: String,
    /// email → (keyed hash of a password verified for it, when).
    verified: Mutex<HashMap<String, ([u8; 32], Instant)>>,
    /// email → (its digest secrets, when read): every SIP REGISTER needs them.
    digests: Mutex<HashMap<String, (DigestRecord, Instant)>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

impl Auth {
    /// An authenticator over the users in `store`; SIP digest secrets are for `realm`.
    pub async fn new(store: Arc<dyn Store>, token_ttl: Duration, realm: &str) -> Result<Self> {
        let secret = store.secret().await?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                secret,
                token_ttl,
                realm: realm.to_owned(),
                verified: Mutex::new(HashMap::new()),
                digests: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Hashes a new password (argon2id, random salt), off the async threads.
    pub async fn hash_password(password: &str) -> Result<String> {
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| Error::Internal(format!("password hashing: {e}")))
        })
        .await
        .map_err(|e| Error::Internal(format!("password hashing task: {e}")))?
    }

    /// True if `password` is the password of `email` (false for unknown users too).
    pub async fn check_password(&self, email: &str, password: &str) -> Result<bool> {
        let key = self.keyed_hash(password.as_bytes());
        if self
            .lock()
            .get(email)
            .is_some_and(|(k, at)| *k == key && at.elapsed() < CACHE_TTL)
        {
            return Ok(true);
        }
        let Some(user) = self.inner.store.user(email).await? else {
            return Ok(false);
        };
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&user.password_hash)
                .map(|hash| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &hash)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .map_err(|e| Error::Internal(format!("password check task: {e}")))?;
        if ok {
            let mut cache = self.lock();
            if cache.len() >= CACHE_MAX {
                cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
                if cache.len() >= CACHE_MAX {
                    cache.clear();
                }
            }
            cache.insert(email.to_owned(), (key, Instant::now()));
        }
        Ok(ok)
    }

    /// The SIP digest realm.
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// The digest secrets (HA1 for MD5 and SHA-256) of `email` with `password`, for SIP.
    pub fn digest_record(&self, email: &str, password: &str) -> DigestRecord {
        let realm = &self.inner.realm;
        DigestRecord {
            realm: realm.clone(),
            md5: ha1(Algorithm::Md5, email, realm, password),
            sha256: ha1(Algorithm::Sha256, email, realm, password),
        }
    }

    /// The digest secrets of `email` if they are in memory (None: not known here, ask
    /// [`Auth::digest`]).
    pub fn cached_digest(&self, email: &str) -> Option<DigestRecord> {
        let digests = self.inner.digests.lock().unwrap_or_else(|p| p.into_inner());
        digests
            .get(email)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(record, _)| record.clone())
    }

    /// The digest secrets of `email` (None for an unknown user or one without them), read
    /// through a cache that [`Auth::forget`] clears.
    pub async fn digest(&self, email: &str) -> Result<Option<DigestRecord>> {
        let digests = || self.inner.digests.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((record, at)) = digests().get(email) {
            if at.elapsed() < CACHE_TTL {
                return Ok(Some(record.clone()));
            }
        }
        let record = self.inner.store.digest(email).await?;
        if let Some(record) = &record {
            let mut cache = digests();
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(email.to_owned(), (record.clone(), Instant::now()));
        }
        Ok(record)
    }

    /// The secret shared by token signatures and SIP nonces.
    pub(crate) fn secret(&self) -> &[u8] {
        &self.inner.secret
    }

    /// Forgets cached credentials of `email` (password changed, user deleted).
    pub fn forget(&self, email: &str) {
        self.lock().remove(email);
        self.inner
            .digests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(email);
    }

    /// A bearer token for `email`: `base64(email).expiry.signature`.
    pub fn issue_token(&self, email: &str) -> (String, u64) {
        let ttl = self.inner.token_ttl.as_secs();
        let expiry = unix_secs() + ttl;
        let payload = format!("{}.{expiry}", URL_SAFE_NO_PAD.encode(email));
        let signature = URL_SAFE_NO_PAD.encode(self.sign(payload.as_bytes()));
        (format!("{payload}.{signature}"), ttl)
    }

    /// The email a valid, unexpired token was issued to.
    pub fn check_token(&self, token: &str) -> Option<String> {
        let (payload, signature) = token.rsplit_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature).ok()?;
        let (email, expiry) = payload.split_once('.')?;
        if expiry.parse::<u64>().ok()? < unix_secs() {
            return None;
        }
        String::from_utf8(URL_SAFE_NO_PAD.decode(email).ok()?).ok()
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length.
        HmacSha256::new_from_slice(&self.inner.secret)
            .unwrap_or_else(|_| unreachable!("any key length"))
    }

    fn sign(&self, data: &[u8]) -> [u8; 32] {
        let mut mac = self.mac();
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    fn keyed_hash(&self, password: &[u8]) -> [u8; 32] {
        self.sign(password)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ([u8; 32], Instant)>> {
        self.inner
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SqliteStore, UserRecord};

    async fn auth_with_user(password: &str) -> Auth {
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open("sqlite::memory:").await.expect("store"));
        let hash = Auth::hash_password(password).await.expect("hash");
        store
            .create_user(&UserRecord {
                email: "a@x".into(),
                password_hash: hash,
                name: None,
                data: Default::default(),
                created: 0,
            })
            .await
            .expect("user");
        Auth::new(store, Duration::from_secs(60), "restsip")
            .await
            .expect("auth")
    }

    #[tokio::test]
    async fn passwords_are_checked_and_cached_only_when_right() {
        let auth = auth_with_user("s3cret").await;
        assert!(!auth.check_password("a@x", "wrong").await.expect("check"));
        assert!(auth.check_password("a@x", "s3cret").await.expect("check"));
        assert!(auth.check_password("a@x", "s3cret").await.expect("cached"));
        assert!(!auth.check_password("a@x", "wrong").await.expect("check"));
        assert!(!auth
            .check_password("nobody@x", "s3cret")
            .await
            .expect("check"));
    }

    #[tokio::test]
    async fn tokens_verify_and_tampering_fails() {
        let auth = auth_with_user("pw").await;
        let (token, ttl) = auth.issue_token("a@x");
        assert_eq!(ttl, 60);
        assert_eq!(auth.check_token(&token).as_deref(), Some("a@x"));
        let forged = token.replacen(
            &URL_SAFE_NO_PAD.encode("a@x"),
            &URL_SAFE_NO_PAD.encode("b@x"),
            1,
        );
        assert_eq!(auth.check_token(&forged), None);
        assert_eq!(auth.check_token("garbage"), None);
    }
}
