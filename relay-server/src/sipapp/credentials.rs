//! Digest credentials of SIP requests over the REST accounts, one check for every request
//! that names a local user: REGISTER at the registrar (401, `WWW-Authenticate`,
//! `Authorization`) and requests whose From is a local user (407, `Proxy-Authenticate`,
//! `Proxy-Authorization`, RFC 3261 §22.3). An address that is no account is answered exactly
//! as an account: the same challenge, then the same 403 after the same work, so nobody lists
//! the accounts by asking.

use std::sync::Arc;

use restsip_protocol::normalize_email;

use crate::auth::{Admission, Auth, Guesses};
use crate::clock::now_ms;
use crate::store::{DigestAlias, DigestRecord, Store};
use restsip_sip::digest::{Algorithm, Credentials, DigestAuth, Verdict};
use restsip_sip::message::{SipMessage, StartLine};
use restsip_sip::response::Reply;
use restsip_sip::transport::Peer;
use restsip_sip::uri::Uri;

/// Who asks for the credentials: the registrar, or the relay as a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker {
    /// REGISTER (RFC 3261 §22.2): 401, `WWW-Authenticate`, `Authorization`.
    Registrar,
    /// Any other request (RFC 3261 §22.3): 407, `Proxy-Authenticate`, `Proxy-Authorization`.
    Proxy,
}

impl Asker {
    fn code(self) -> u16 {
        match self {
            Asker::Registrar => 401,
            Asker::Proxy => 407,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Asker::Registrar => "Unauthorized",
            Asker::Proxy => "Proxy Authentication Required",
        }
    }

    fn challenge_header(self) -> &'static str {
        match self {
            Asker::Registrar => "WWW-Authenticate",
            Asker::Proxy => "Proxy-Authenticate",
        }
    }

    fn credentials_header(self) -> &'static str {
        match self {
            Asker::Registrar => "Authorization",
            Asker::Proxy => "Proxy-Authorization",
        }
    }
}

/// Checks digest credentials against the accounts' secrets; cheap to clone.
#[derive(Clone)]
pub struct Checker {
    /// The accounts' digest secrets (cached) and the failure counts.
    auth: Auth,
    /// Accounts.
    store: Arc<dyn Store>,
    /// Nonces and verification, or None when authentication is off (`--sip-auth off`).
    digest: Option<Arc<DigestAuth>>,
}

fn internal(e: impl std::fmt::Display) -> Reply {
    tracing::warn!(error = %e, "credential lookup failed");
    Reply::new(500, "Server Internal Error")
}

impl Checker {
    /// A checker; `digest` None when authentication is off.
    pub fn new(auth: Auth, store: Arc<dyn Store>, digest: Option<Arc<DigestAuth>>) -> Self {
        Self {
            auth,
            store,
            digest,
        }
    }

    /// The realm, when credentials are checked.
    pub fn realm(&self) -> Option<&str> {
        self.digest.as_deref().map(DigestAuth::realm)
    }

    /// Whether credentials are checked at all.
    pub fn on(&self) -> bool {
        self.digest.is_some()
    }

    /// The digest secrets of `aor` if they are in memory.
    pub fn cached(&self, aor: &str) -> Option<DigestRecord> {
        self.auth.cached_digest(aor)
    }

    /// The secrets to check a request for `aor` against: the account's (None: an account
    /// without any), or for an address that is no account, random ones no password matches
    /// (with authentication off, Err 404 for it).
    pub async fn secrets(&self, aor: &str) -> Result<Option<DigestRecord>, Reply> {
        let digest = self.auth.digest(aor).await.map_err(internal)?;
        if digest.is_some() || self.store.user(aor).await.map_err(internal)?.is_some() {
            return Ok(digest);
        }
        match &self.digest {
            Some(auth) => Ok(Some(unknown_user(auth.realm(), aor))),
            None => Err(Reply::new(404, "Not Found")),
        }
    }

    /// Checks the credentials `asker` asked of `req` for `aor`, whose secrets are `digest`;
    /// Err is the challenge or refusal to answer. Always Ok with authentication off.
    pub fn verify(
        &self,
        asker: Asker,
        req: &SipMessage,
        aor: &str,
        digest: Option<&DigestRecord>,
        from: Peer,
    ) -> Result<(), Reply> {
        let Some(auth) = &self.digest else {
            return Ok(());
        };
        let guesses = self.auth.guesses();
        let ip = from.addr.ip();
        let checked = check(auth, asker, guesses, req, aor, digest, ip);
        if let Err(reply) = &checked {
            let throttled = reply.headers.iter().any(|(n, _)| n == "Retry-After");
            if reply.code == 403 && !throttled {
                guesses.failed(aor, ip);
            }
        }
        checked
    }
}

/// The other usernames phones are configured with for the account `email`: its local part
/// alone (user `jan` on domain `example.net`) and the email with '@' escaped.
pub fn usernames(email: &str) -> Vec<String> {
    match email.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() => {
            vec![local.to_owned(), format!("{local}%40{domain}")]
        }
        _ => Vec::new(),
    }
}

/// Digest secrets no password matches, for an address that is no account (random each time:
/// they are never stored, and every answer is `403 wrong password`).
fn unknown_user(realm: &str, aor: &str) -> DigestRecord {
    let random = || hex::encode(rand::random::<[u8; 16]>());
    DigestRecord {
        realm: realm.to_owned(),
        md5: random(),
        sha256: random(),
        aliases: usernames(aor)
            .into_iter()
            .map(|username| DigestAlias {
                username,
                md5: random(),
                sha256: random(),
            })
            .collect(),
    }
}

/// [`Checker::verify`] without the counting of failures.
fn check(
    auth: &DigestAuth,
    asker: Asker,
    guesses: &Guesses,
    req: &SipMessage,
    aor: &str,
    digest: Option<&DigestRecord>,
    ip: std::net::IpAddr,
) -> Result<(), Reply> {
    let now = u64::try_from(now_ms() / 1000).unwrap_or(0);
    let challenge = |stale: bool, reason: String| {
        auth.challenges(now, stale)
            .into_iter()
            .fold(Reply::new(asker.code(), reason), |r, c| {
                r.with(asker.challenge_header(), c)
            })
    };
    let StartLine::Request { uri, method } = &req.start else {
        return Err(Reply::bad_request("not a request"));
    };
    let Some(creds) = req
        .headers_named(asker.credentials_header())
        .filter_map(Credentials::parse)
        .find(|c| c.realm == auth.realm())
    else {
        return Err(challenge(false, asker.reason().to_owned()));
    };
    // The response covers the digest `uri`: it must be this request's Request-URI, or a
    // response captured for another request could be replayed here (RFC 7616 §3.4.6).
    let same = Uri::parse(creds.uri.trim()).is_ok_and(|u| u.to_string() == uri.to_string());
    if !same {
        return Err(Reply::bad_request("the digest uri is not the Request-URI"));
    }
    if let Admission::Wait(wait) = guesses.admit(aor, ip) {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return Err(
            Reply::new(403, "Forbidden (too many wrong passwords; try later)")
                .with("Retry-After", secs.to_string()),
        );
    }
    // The secrets to check the response against: those of the username the phone sent, when
    // it names the address (the email itself, its local part, or the email escaped; for the
    // escaped form the phone may have hashed either spelling).
    let Some(usable) = digest.filter(|d| d.realm == auth.realm()) else {
        // Signed up before SIP (or under another realm): no digest secret to check against.
        return Err(Reply::new(
            403,
            "Forbidden (no SIP password stored: set the account's password again)",
        ));
    };
    let candidates = secrets_for(usable, &creds.username, aor)?;
    // A REGISTER has no server transaction: its UDP retransmission (the same bytes) is
    // processed again, and must not be refused as a replay of its nonce count.
    let mut verdict = Verdict::Invalid("wrong password");
    for (md5, sha256) in candidates {
        let secret = |algorithm: Algorithm| {
            Some(match algorithm {
                Algorithm::Md5 => md5.clone(),
                Algorithm::Sha256 => sha256.clone(),
            })
        };
        // A wrong response is refused before its nonce count is used: the next candidate
        // can still be tried with the same credentials.
        verdict = auth.verify_request(&creds, method.as_str(), secret, now, Some(fingerprint(req)));
        if verdict != Verdict::Invalid("wrong password") {
            break;
        }
    }
    match verdict {
        Verdict::Valid => Ok(()),
        Verdict::Stale => Err(challenge(true, format!("{} (stale nonce)", asker.reason()))),
        Verdict::Invalid("wrong password") => Err(Reply::new(403, "Forbidden (wrong password)")),
        Verdict::Invalid(why) => {
            tracing::debug!(aor, why, "digest refused; challenging again");
            Err(challenge(false, asker.reason().to_owned()))
        }
    }
}

/// The (MD5, SHA-256) secrets a response from `username` may have been computed with, for
/// the account `aor`; 403 when the username is none of the account's, or when its form has
/// no stored secret yet (an account made before such usernames were kept).
fn secrets_for(
    digest: &DigestRecord,
    username: &str,
    aor: &str,
) -> Result<Vec<(String, String)>, Reply> {
    let email = (digest.md5.clone(), digest.sha256.clone());
    if normalize_email(username) == aor {
        return Ok(vec![email]);
    }
    let alias = digest
        .aliases
        .iter()
        .find(|a| a.username == username)
        .map(|a| (a.md5.clone(), a.sha256.clone()));
    let escaped = percent_encoding::percent_decode_str(username)
        .decode_utf8()
        .is_ok_and(|u| u != username && normalize_email(&u) == aor);
    let local = aor
        .rsplit_once('@')
        .is_some_and(|(local, _)| local == username);
    match alias {
        Some(alias) if escaped => Ok(vec![alias, email]),
        Some(alias) if local => Ok(vec![alias]),
        // The escaped email hashed as the email itself, by a phone that escapes on the wire.
        None if escaped => Ok(vec![email]),
        None if local => Err(Reply::new(
            403,
            "Forbidden (no SIP password stored for this username: log in with the password \
             once, or use the full email as username)",
        )),
        _ => Err(Reply::new(
            403,
            "Forbidden (the credentials are not those of the To address)",
        )),
    }
}

/// A keyed hash of the whole request (start line, headers, body): the same request again
/// (a retransmission) has the same fingerprint, and without the process's random key one
/// cannot be forged for another request.
pub fn fingerprint(req: &SipMessage) -> u64 {
    restsip_sip::keyed::hash_one(req.to_bytes())
}
