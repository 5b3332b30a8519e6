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
use crate::store::{DigestRecord, Store};

pub mod guesses;
use crate::sync::lock;
pub use guesses::{Admission, Guesses};

type HmacSha256 = Hmac<Sha256>;

/// How long a verified password is trusted without running argon2 again.
const CACHE_TTL: Duration = Duration::from_secs(300);
/// Entries kept in the credential cache at most.
const CACHE_MAX: usize = 100_000;
/// How long an account's credential stamp is used from memory: a token made before a password
/// change, deletion or re-creation stops working within this time on every relay (at once on
/// the relay that made the change).
const STAMP_TTL: Duration = Duration::from_secs(10);

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
    /// HMAC keyed with `secret`, cloned for each use: the key's two hash blocks are made
    /// once, not on every request.
    keyed: HmacSha256,
    /// Token lifetime.
    token_ttl: Duration,
    /// Derives the SIP digest secrets stored with a password.
    secrets: Arc<dyn DigestSecrets>,
    /// Failed checks, to throttle guessing.
    guesses: Guesses,
    /// email → (keyed hash of a password verified for it, when).
    verified: Mutex<HashMap<String, ([u8; 32], Instant)>>,
    /// email → (its digest secrets, when read): every SIP REGISTER needs them.
    digests: Mutex<HashMap<String, (DigestRecord, Instant)>>,
    /// email → (its credential stamp, when read), for checking bearer tokens.
    stamps: Mutex<HashMap<String, (Stamp, Instant)>>,
    /// Ids of tokens withdrawn before their expiry → that expiry (s).
    revoked: Mutex<HashMap<String, u64>>,
}

/// What identifies one generation of an account's credentials: a keyed hash of its password
/// hash, which changes with every password change and every re-creation (a new salt).
type Stamp = [u8; 8];

/// What a valid bearer token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// The account it speaks for.
    pub email: String,
    /// When it expires (s since the epoch).
    pub expires: u64,
    /// Its id, by which it can be revoked.
    pub id: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

/// An argon2 hash of a random password, made once: what an unknown user's password is checked
/// against, at the cost of a real check.
fn unknown_user_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        let password = rand::random::<[u8; 16]>();
        Argon2::default()
            .hash_password(&password, &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// How the secrets SIP phones authenticate with (digest HA1 values) are derived from a
/// password: the SIP application provides it; the domain stores what it derives whenever it
/// holds a verified password.
pub trait DigestSecrets: Send + Sync + 'static {
    /// The realm the secrets are for.
    fn realm(&self) -> &str;
    /// The secrets of `email` with `password`.
    fn derive(&self, email: &str, password: &str) -> DigestRecord;
}

impl Auth {
    /// An authenticator over the users in `store`; SIP digest secrets come from `secrets`.
    pub async fn new(
        store: Arc<dyn Store>,
        token_ttl: Duration,
        secrets: Arc<dyn DigestSecrets>,
    ) -> Result<Self> {
        // The unknown user's hash is made now, so that no request waits for it.
        tokio::task::spawn_blocking(unknown_user_hash);
        let secret = store.secret().await?;
        let revoked = store
            .revoked_tokens(unix_secs())
            .await?
            .into_iter()
            .collect();
        // HMAC accepts keys of any length.
        let keyed =
            HmacSha256::new_from_slice(&secret).unwrap_or_else(|_| unreachable!("any key length"));
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                secret,
                keyed,
                token_ttl,
                secrets,
                guesses: Guesses::default(),
                verified: Mutex::new(HashMap::new()),
                digests: Mutex::new(HashMap::new()),
                stamps: Mutex::new(HashMap::new()),
                revoked: Mutex::new(revoked),
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
        // An unknown user costs an argon2 check too (against a hash no password matches), so
        // that the time of the answer does not tell which accounts exist.
        let user = self.inner.store.user(email).await?;
        let known = user.is_some();
        let stored = user.map_or_else(|| unknown_user_hash().to_owned(), |u| u.password_hash);
        let password = password.to_owned();
        let checked = password.clone();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&stored)
                .map(|hash| {
                    Argon2::default()
                        .verify_password(checked.as_bytes(), &hash)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .map_err(|e| Error::Internal(format!("password check task: {e}")))?;
        let ok = ok && known;
        if ok {
            self.refresh_digest(email, &password).await?;
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

    /// Stores the digest secrets of `email` again when those stored were not computed from
    /// this (just verified) password, this address and this realm: after addresses were put in
    /// canonical form (`B@X` became `b@x`), or the realm changed, a user's next password login
    /// makes SIP registration work again without a password change.
    async fn refresh_digest(&self, email: &str, password: &str) -> Result<()> {
        let fresh = self.digest_record(email, password);
        let stored = self.inner.store.digest(email).await?;
        if stored.as_ref() != Some(&fresh) {
            self.inner.store.set_digest(email, &fresh).await?;
            lock(&self.inner.digests).remove(email);
        }
        Ok(())
    }

    /// The failed checks of credentials (HTTP Basic and SIP digest), to throttle guessing.
    pub fn guesses(&self) -> &Guesses {
        &self.inner.guesses
    }

    /// The SIP digest realm.
    pub fn realm(&self) -> &str {
        self.inner.secrets.realm()
    }

    /// The digest secrets (HA1 for MD5 and SHA-256) of `email` with `password`, for SIP.
    pub fn digest_record(&self, email: &str, password: &str) -> DigestRecord {
        self.inner.secrets.derive(email, password)
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
        lock(&self.inner.stamps).remove(email);
        self.inner
            .digests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(email);
    }

    /// The credential stamp of `email` now; None when there is no such account.
    async fn stamp(&self, email: &str) -> Result<Option<Stamp>> {
        if let Some((stamp, at)) = lock(&self.inner.stamps).get(email) {
            if at.elapsed() < STAMP_TTL {
                return Ok(Some(*stamp));
            }
        }
        let Some(user) = self.inner.store.user(email).await? else {
            lock(&self.inner.stamps).remove(email);
            return Ok(None);
        };
        let mut mac = self.mac();
        mac.update(b"credential stamp\0");
        mac.update(user.password_hash.as_bytes());
        let mut stamp = Stamp::default();
        stamp.copy_from_slice(&mac.finalize().into_bytes()[..8]);
        let mut stamps = lock(&self.inner.stamps);
        if stamps.len() >= CACHE_MAX {
            stamps.clear();
        }
        stamps.insert(email.to_owned(), (stamp, Instant::now()));
        Ok(Some(stamp))
    }

    /// A bearer token for `email`, bound to its credentials as they are now, valid for the
    /// token lifetime but never past `not_after` (a token made with a token lives no longer
    /// than that one): `base64(email).expiry.stamp.id.signature`. None when the account is
    /// gone. Returns the token and its lifetime in seconds.
    pub async fn issue_token(
        &self,
        email: &str,
        not_after: Option<u64>,
    ) -> Result<Option<(String, u64)>> {
        let Some(stamp) = self.stamp(email).await? else {
            return Ok(None);
        };
        let now = unix_secs();
        let expiry = not_after.map_or(now + self.inner.token_ttl.as_secs(), |n| {
            n.min(now + self.inner.token_ttl.as_secs())
        });
        let id = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>());
        let payload = format!(
            "{}.{expiry}.{}.{id}",
            URL_SAFE_NO_PAD.encode(email),
            hex::encode(stamp)
        );
        let signature = URL_SAFE_NO_PAD.encode(self.sign(payload.as_bytes()));
        Ok(Some((
            format!("{payload}.{signature}"),
            expiry.saturating_sub(now),
        )))
    }

    /// What a token says, if it is genuine, unexpired, not revoked, and its account's
    /// credentials are still those it was made for (no password change, deletion or
    /// re-creation since).
    pub async fn check_token(&self, token: &str) -> Result<Option<TokenClaims>> {
        let Some(claims) = self.signed_claims(token) else {
            return Ok(None);
        };
        if claims.0.expires < unix_secs()
            || lock(&self.inner.revoked).contains_key(&claims.0.id)
            || self.stamp(&claims.0.email).await? != Some(claims.1)
        {
            return Ok(None);
        }
        Ok(Some(claims.0))
    }

    /// The claims and stamp of a token whose signature is right.
    fn signed_claims(&self, token: &str) -> Option<(TokenClaims, Stamp)> {
        let (payload, signature) = token.rsplit_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature).ok()?;
        let mut parts = payload.split('.');
        let (email, expires, stamp, id) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let mut decoded = Stamp::default();
        hex::decode_to_slice(stamp, &mut decoded).ok()?;
        let claims = TokenClaims {
            email: String::from_utf8(URL_SAFE_NO_PAD.decode(email).ok()?).ok()?,
            expires: expires.parse().ok()?,
            id: id.to_owned(),
        };
        Some((claims, decoded))
    }

    /// Withdraws a token before its expiry, on every relay sharing the store.
    pub async fn revoke_token(&self, claims: &TokenClaims) -> Result<()> {
        self.inner
            .store
            .revoke_token(&claims.id, claims.expires)
            .await?;
        let now = unix_secs();
        let mut revoked = lock(&self.inner.revoked);
        revoked.retain(|_, expires| *expires >= now);
        revoked.insert(claims.id.clone(), claims.expires);
        Ok(())
    }

    fn mac(&self) -> HmacSha256 {
        self.inner.keyed.clone()
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
        Auth::new(
            store,
            Duration::from_secs(60),
            Arc::new(crate::sipapp::registrar::Ha1::new("restsip")),
        )
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
        let (token, ttl) = auth
            .issue_token("a@x", None)
            .await
            .expect("issue")
            .expect("user");
        assert_eq!(ttl, 60);
        let claims = auth
            .check_token(&token)
            .await
            .expect("check")
            .expect("valid");
        assert_eq!(claims.email, "a@x");
        let forged = token.replacen(
            &URL_SAFE_NO_PAD.encode("a@x"),
            &URL_SAFE_NO_PAD.encode("b@x"),
            1,
        );
        assert_eq!(auth.check_token(&forged).await.expect("check"), None);
        assert_eq!(auth.check_token("garbage").await.expect("check"), None);
        assert_eq!(auth.check_token("a.b.c.d.e").await.expect("check"), None);
    }

    #[tokio::test]
    async fn a_token_dies_with_its_credentials_and_when_revoked() {
        let auth = auth_with_user("pw").await;
        let (first, _) = auth
            .issue_token("a@x", None)
            .await
            .expect("issue")
            .expect("user");
        let (second, _) = auth
            .issue_token("a@x", None)
            .await
            .expect("issue")
            .expect("user");
        // Revoking one leaves the other.
        let claims = auth
            .check_token(&first)
            .await
            .expect("check")
            .expect("valid");
        auth.revoke_token(&claims).await.expect("revoke");
        assert_eq!(auth.check_token(&first).await.expect("check"), None);
        assert!(auth.check_token(&second).await.expect("check").is_some());
        // A new password hash (password change or re-creation) ends every earlier token.
        let mut user = auth
            .inner
            .store
            .user("a@x")
            .await
            .expect("read")
            .expect("user");
        user.password_hash = Auth::hash_password("pw").await.expect("hash");
        assert!(auth.inner.store.update_user(&user).await.expect("update"));
        auth.forget("a@x");
        assert_eq!(auth.check_token(&second).await.expect("check"), None);
        // Revocations survive a restart.
        let again = Auth::new(
            auth.inner.store.clone(),
            Duration::from_secs(60),
            Arc::new(crate::sipapp::registrar::Ha1::new("restsip")),
        )
        .await
        .expect("auth");
        assert!(lock(&again.inner.revoked).contains_key(&claims.id));
    }

    #[tokio::test]
    async fn a_token_made_with_a_token_lives_no_longer() {
        let auth = auth_with_user("pw").await;
        let soon = unix_secs() + 5;
        let (token, ttl) = auth
            .issue_token("a@x", Some(soon))
            .await
            .expect("issue")
            .expect("user");
        assert!(ttl <= 5);
        let claims = auth
            .check_token(&token)
            .await
            .expect("check")
            .expect("valid");
        assert_eq!(claims.expires, soon);
        assert_eq!(
            auth.issue_token("nobody@x", None).await.expect("issue"),
            None
        );
    }
}
