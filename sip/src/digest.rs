//! HTTP digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760): MD5 and SHA-256,
//! `qop=auth` only. A nonce is a signed timestamp, so any relay holding the secret can check it
//! without state; replays are refused by remembering the highest nonce count used with each
//! nonce until it expires. An expired nonce with a right response gets `stale=true`.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest as _, Sha256};

use super::headers::split_list;
use super::scan::Scanner;

type HmacSha256 = Hmac<Sha256>;

/// A nonce's highest count, its expiry (s) and the fingerprint of the request that used it.
type NonceUse = (u32, u64, Option<u64>);

/// Nonce counts remembered at most; past this, expired entries are dropped first.
const MAX_TRACKED_NONCES: usize = 200_000;

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// MD5 (RFC 2617), still what most phones use.
    Md5,
    /// SHA-256 (RFC 7616, RFC 8760), offered first.
    Sha256,
}

impl Algorithm {
    /// The algorithm of a name (`MD5`, `SHA-256`, any case).
    pub fn parse(name: &str) -> Option<Algorithm> {
        if name.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if name.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// The name in challenges.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Hex digest of `data`.
    pub fn hash(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(data)),
            Algorithm::Sha256 => hex::encode(Sha256::digest(data)),
        }
    }
}

/// `H(username:realm:password)`: what the store keeps instead of the password.
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.hash(format!("{username}:{realm}:{password}").as_bytes())
}

/// The parameters of an `Authorization: Digest ...` header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// username.
    pub username: String,
    /// realm.
    pub realm: String,
    /// nonce.
    pub nonce: String,
    /// digest-uri.
    pub uri: String,
    /// response (hex).
    pub response: String,
    /// algorithm (MD5 when absent).
    pub algorithm: Option<String>,
    /// cnonce.
    pub cnonce: Option<String>,
    /// nonce count (hex).
    pub nc: Option<String>,
    /// qop.
    pub qop: Option<String>,
}

impl Credentials {
    /// Parses the value of an Authorization header; None when it is not a digest.
    pub fn parse(value: &str) -> Option<Credentials> {
        let (scheme, rest) = value.trim().split_once([' ', '\t'])?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let mut c = Credentials::default();
        for item in split_list(rest) {
            let (name, raw) = item.split_once('=')?;
            let raw = raw.trim();
            let value = if raw.starts_with('"') {
                Scanner::new(raw).quoted().ok()?
            } else {
                raw.to_owned()
            };
            match name.trim().to_ascii_lowercase().as_str() {
                "username" => c.username = value,
                "realm" => c.realm = value,
                "nonce" => c.nonce = value,
                "uri" => c.uri = value,
                "response" => c.response = value.to_ascii_lowercase(),
                "algorithm" => c.algorithm = Some(value),
                "cnonce" => c.cnonce = Some(value),
                "nc" => c.nc = Some(value),
                "qop" => c.qop = Some(value),
                _ => {}
            }
        }
        Some(c)
    }

    /// The algorithm named, if the relay supports it.
    pub fn algorithm(&self) -> Option<Algorithm> {
        self.algorithm
            .as_deref()
            .map_or(Some(Algorithm::Md5), Algorithm::parse)
    }

    /// The response a client knowing `ha1` computes for `method` (qop=auth).
    pub fn expected(&self, algorithm: Algorithm, ha1: &str, method: &str) -> String {
        let ha2 = algorithm.hash(format!("{method}:{}", self.uri).as_bytes());
        let data = format!(
            "{ha1}:{}:{}:{}:{}:{ha2}",
            self.nonce,
            self.nc.as_deref().unwrap_or_default(),
            self.cnonce.as_deref().unwrap_or_default(),
            self.qop.as_deref().unwrap_or_default()
        );
        algorithm.hash(data.as_bytes())
    }
}

/// The outcome of checking credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The caller knows the password.
    Valid,
    /// The response is right but the nonce expired: challenge again with `stale=true`.
    Stale,
    /// Wrong, replayed or unusable credentials, with why.
    Invalid(&'static str),
}

/// Issues and checks nonces for one realm.
#[derive(Debug)]
pub struct DigestAuth {
    /// The realm in challenges; part of every stored HA1.
    realm: String,
    /// Key of the nonce signatures.
    key: Vec<u8>,
    /// Seconds a nonce stays fresh.
    ttl: u64,
    /// The algorithms offered, most preferred first.
    algorithms: Vec<Algorithm>,
    /// Highest nonce count used per nonce, with the nonce's expiry (s) and the fingerprint of
    /// the request that used it (its retransmission may use the count again).
    counts: Mutex<HashMap<String, NonceUse>>,
}

impl DigestAuth {
    /// Digest authentication in `realm` offering `algorithms` (most preferred first), nonces
    /// signed with `secret`, fresh for `ttl` seconds.
    pub fn new(realm: &str, algorithms: &[Algorithm], secret: &[u8], ttl: u64) -> Self {
        let mut mac = Self::mac_with(secret);
        mac.update(b"restsip sip digest nonce");
        Self {
            realm: realm.to_owned(),
            key: mac.finalize().into_bytes().to_vec(),
            ttl,
            algorithms: algorithms.to_vec(),
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn mac_with(key: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length.
        HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("any key length"))
    }

    /// A fresh nonce issued at `now` (s): timestamp, random bytes and a signature over both.
    pub fn nonce(&self, now: u64) -> String {
        let mut raw = [0u8; 32];
        raw[..8].copy_from_slice(&now.to_be_bytes());
        raw[8..16].copy_from_slice(&rand::random::<[u8; 8]>());
        let mut mac = Self::mac_with(&self.key);
        mac.update(&raw[..16]);
        raw[16..].copy_from_slice(&mac.finalize().into_bytes()[..16]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// When a nonce this relay signed was issued; None if it is not one.
    fn issued(&self, nonce: &str) -> Option<u64> {
        let raw = URL_SAFE_NO_PAD.decode(nonce).ok()?;
        let raw: [u8; 32] = raw.try_into().ok()?;
        let mut mac = Self::mac_with(&self.key);
        mac.update(&raw[..16]);
        mac.verify_truncated_left(&raw[16..]).ok()?;
        Some(u64::from_be_bytes(raw[..8].try_into().ok()?))
    }

    /// `WWW-Authenticate` values, most preferred first (RFC 8760 §2.4).
    pub fn challenges(&self, now: u64, stale: bool) -> Vec<String> {
        let nonce = self.nonce(now);
        self.algorithms
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{}",
                    self.realm,
                    a.name(),
                    if stale { ", stale=true" } else { "" }
                )
            })
            .collect()
    }

    /// Checks `creds` for `method` against the stored HA1 of the right algorithm (`ha1_of`).
    pub fn verify(
        &self,
        creds: &Credentials,
        method: &str,
        ha1_of: impl Fn(Algorithm) -> Option<String>,
        now: u64,
    ) -> Verdict {
        self.verify_request(creds, method, ha1_of, now, None)
    }

    /// [`Self::verify`] for a request answered without a server transaction (REGISTER):
    /// `request` is a fingerprint of the whole request, and the same request again (a UDP
    /// retransmission, byte for byte) may reuse its nonce count; any other reuse is a replay.
    pub fn verify_request(
        &self,
        creds: &Credentials,
        method: &str,
        ha1_of: impl Fn(Algorithm) -> Option<String>,
        now: u64,
        request: Option<u64>,
    ) -> Verdict {
        let Some(algorithm) = creds.algorithm().filter(|a| self.algorithms.contains(a)) else {
            return Verdict::Invalid("unsupported digest algorithm");
        };
        if creds.realm != self.realm {
            return Verdict::Invalid("wrong realm");
        }
        if !creds
            .qop
            .as_deref()
            .is_some_and(|q| q.eq_ignore_ascii_case("auth"))
        {
            return Verdict::Invalid("qop=auth is required");
        }
        let Some(nc) = creds
            .nc
            .as_deref()
            .filter(|n| n.len() == 8)
            .and_then(|n| u32::from_str_radix(n, 16).ok())
        else {
            return Verdict::Invalid("bad nonce count");
        };
        if creds.cnonce.as_deref().is_none_or(str::is_empty) {
            return Verdict::Invalid("missing cnonce");
        }
        let Some(issued) = self.issued(&creds.nonce) else {
            return Verdict::Invalid("unknown nonce");
        };
        let Some(ha1) = ha1_of(algorithm) else {
            return Verdict::Invalid("no digest password stored for this user");
        };
        let expected = creds.expected(algorithm, &ha1, method);
        if !constant_time_eq(expected.as_bytes(), creds.response.as_bytes()) {
            return Verdict::Invalid("wrong password");
        }
        let expiry = issued.saturating_add(self.ttl);
        if now > expiry || issued > now.saturating_add(60) {
            return Verdict::Stale;
        }
        if !self.count(&creds.nonce, nc, expiry, now, request) {
            return Verdict::Invalid("nonce count replayed");
        }
        Verdict::Valid
    }

    /// Records `nc` for `nonce`; false if it is not above every count used before (or the
    /// last count again, by the same request `request`).
    fn count(&self, nonce: &str, nc: u32, expiry: u64, now: u64, request: Option<u64>) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.len() >= MAX_TRACKED_NONCES && !counts.contains_key(nonce) {
            counts.retain(|_, (_, exp, _)| *exp >= now);
            if counts.len() >= MAX_TRACKED_NONCES {
                // Refusing is safe: the client gets a new nonce and tries again.
                return false;
            }
        }
        match counts.get_mut(nonce) {
            Some((last, _, seen)) if nc == *last && request.is_some() && *seen == request => true,
            Some((last, _, _)) if nc <= *last => false,
            Some((last, _, seen)) => {
                *last = nc;
                *seen = request;
                true
            }
            None => {
                counts.insert(nonce.to_owned(), (nc, expiry, request));
                true
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[path = "digest_tests.rs"]
mod tests;
