//! The registrar (RFC 3261 §10.3): REGISTER authenticated by digest against the REST accounts
//! (username = email, AOR = `sip:` + email), bindings with expiry, `*` removal, several
//! contacts per user, kept in the location service that REST logins share.

use std::sync::Arc;

use serde_json::json;

use super::credentials::{Asker, Checker};
use crate::clock::{now_ms, seconds_until};
use crate::error::Error;
use crate::limits::Limits;
use crate::location::{Binding, BindingChange, Location};
use crate::store::{DigestAlias, DigestRecord};
use restsip_sip::digest::{ha1, Algorithm};
use restsip_sip::message::{parse_u32, SipMessage};
use restsip_sip::response::Reply;
use restsip_sip::transport::Peer;

/// The SIP digest secrets of a password: HA1 for MD5 and SHA-256 in one realm.
pub struct Ha1 {
    /// The realm.
    realm: String,
}

impl Ha1 {
    /// Secrets for `realm`.
    pub fn new(realm: &str) -> Self {
        Self {
            realm: realm.to_owned(),
        }
    }
}

impl crate::auth::DigestSecrets for Ha1 {
    fn realm(&self) -> &str {
        &self.realm
    }

    fn derive(&self, email: &str, password: &str) -> DigestRecord {
        let secrets = |username: &str| {
            (
                ha1(Algorithm::Md5, username, &self.realm, password),
                ha1(Algorithm::Sha256, username, &self.realm, password),
            )
        };
        let (md5, sha256) = secrets(email);
        let aliases = super::credentials::usernames(email)
            .into_iter()
            .map(|username| {
                let (md5, sha256) = secrets(&username);
                DigestAlias {
                    username,
                    md5,
                    sha256,
                }
            })
            .collect();
        DigestRecord {
            realm: self.realm.clone(),
            md5,
            sha256,
            aliases,
        }
    }
}

/// The methods this feature answers (gathered into the Allow header by the core).
pub const METHODS: &[&str] = &["REGISTER"];

/// Most Contact values one REGISTER may carry.
const MAX_CONTACTS_PER_REQUEST: usize = 16;

/// Handles REGISTER requests; cheap to clone.
#[derive(Clone)]
pub struct Registrar {
    /// Where bindings live.
    location: Location,
    /// The credentials check, shared with requests from local users.
    credentials: Checker,
    /// Expiry limits, shared with REST logins.
    limits: Arc<Limits>,
    /// Where the SIP listeners are bound: each binding names this relay as the holder of its
    /// flow, for the other relays sharing the store (none: not named).
    listen: Option<restsip_sip::outgoing::Listening>,
    /// This relay's node name in a cluster, kept in each binding with the owner (`node`): the
    /// other relays refuse at once to route to a binding whose node is gone.
    node: Option<String>,
}

fn internal(e: impl std::fmt::Display) -> Reply {
    tracing::warn!(error = %e, "REGISTER failed");
    Reply::new(500, "Server Internal Error")
}

impl Registrar {
    /// A registrar over `location`; `digest` None accepts every REGISTER unauthenticated.
    pub fn new(location: Location, credentials: Checker, limits: Arc<Limits>) -> Self {
        Self {
            location,
            credentials,
            limits,
            listen: None,
            node: None,
        }
    }

    /// Names this relay, whose SIP listeners are bound to `listen`, in each binding it stores
    /// as the holder of the phone's flow (`owner`): other relays sharing the store route
    /// requests for the phone through it; in a cluster, with its node name `node`.
    pub fn owned_at(
        mut self,
        listen: restsip_sip::outgoing::Listening,
        node: Option<&str>,
    ) -> Self {
        self.listen = Some(listen);
        self.node = node.map(str::to_owned);
        self
    }

    /// The credentials check.
    pub fn credentials(&self) -> &Checker {
        &self.credentials
    }

    /// Answers a REGISTER that arrived from `from`.
    pub async fn register(&self, req: &SipMessage, from: Peer) -> Reply {
        match self.try_register(req, from).await {
            Ok(reply) | Err(reply) => reply,
        }
    }

    async fn try_register(&self, req: &SipMessage, from: Peer) -> Result<Reply, Reply> {
        let aor = address_of_record(req)?;
        // With authentication on, an unknown user is answered exactly as a known one (the
        // same challenge, then 403 for any password): nobody lists the accounts.
        let digest = self.credentials.secrets(&aor).await?;
        let ask = self.read(req, from, &aor, digest.as_ref())?;
        let bindings = match ask.what {
            What::RemoveAll => {
                self.location
                    .unregister_sip_all(&aor)
                    .await
                    .map_err(location_error)?;
                Vec::new()
            }
            What::Query => self
                .location
                .sip_bindings(&aor)
                .await
                .map_err(location_error)?,
            What::Change(changes) => self
                .location
                .register_sip(&aor, ask.call_id, ask.cseq, changes)
                .await
                .map_err(location_error)?,
        };
        Ok(answer(req, &Binding::list(&bindings)))
    }

    /// Answers a REGISTER at once when it can be done from memory: a refresh of bindings the
    /// relay holds, by a user whose digest secrets are in memory (see
    /// [`Location::refresh_sip`]); also a challenge or refusal of its credentials. None when it
    /// needs the store ([`Registrar::register`] then).
    pub fn register_now(&self, req: &SipMessage, from: Peer) -> Option<Reply> {
        let aor = address_of_record(req).ok()?;
        let digest = self.credentials.cached(&aor)?;
        let ask = match self.read(req, from, &aor, Some(&digest)) {
            Ok(ask) => ask,
            // Refused credentials are answered alike either way; other errors on the way.
            Err(reply) if matches!(reply.code, 401 | 403) => return Some(reply),
            Err(_) => return None,
        };
        let What::Change(changes) = ask.what else {
            return None;
        };
        let bindings = self
            .location
            .refresh_sip(&aor, ask.call_id, ask.cseq, changes)?;
        Some(answer(req, &bindings))
    }

    /// Checks the credentials of a REGISTER for `aor` (whose digest secrets are `digest`) and
    /// reads what it asks; Err is the response refusing it.
    fn read<'a>(
        &self,
        req: &'a SipMessage,
        from: Peer,
        aor: &str,
        digest: Option<&DigestRecord>,
    ) -> Result<Ask<'a>, Reply> {
        self.credentials
            .verify(Asker::Registrar, req, aor, digest, from)?;
        let call_id = req.call_id().unwrap_or_default();
        let cseq = req.cseq().map_err(Reply::bad_request)?.seq;
        let expires_header = req.expires().map_err(Reply::bad_request)?;
        let what = match req.contacts().map_err(Reply::bad_request)? {
            None => {
                if expires_header != Some(0) || req.headers_named("Contact").count() != 1 {
                    return Err(Reply::bad_request(
                        "Contact: * needs Expires: 0 and no other Contact",
                    ));
                }
                What::RemoveAll
            }
            Some(list) if list.is_empty() => What::Query,
            Some(list) => {
                if list.len() > MAX_CONTACTS_PER_REQUEST {
                    return Err(Reply::bad_request("too many Contact values"));
                }
                let mut route = json!({
                    "transport": from.transport.name(),
                    "source": from.addr.to_string(),
                    "path": req.headers_named("Path").collect::<Vec<_>>(),
                });
                if let Some(listen) = self.listen {
                    route["owner"] = json!(super::contact::owner_route(listen, from));
                    if let Some(node) = &self.node {
                        route[super::contact::OWNER_NODE] = json!(node);
                    }
                }
                let mut changes = Vec::with_capacity(list.len());
                for contact in list {
                    let requested = match contact.param("expires") {
                        Some(v) => Some(v.and_then(parse_u32).ok_or_else(|| {
                            Reply::bad_request("Contact expires is not a number")
                        })?),
                        None => expires_header,
                    };
                    let uri = contact.uri.to_string();
                    changes.push(match requested.unwrap_or(self.limits.default_expires) {
                        0 => BindingChange::Unbind { uri },
                        n if n < self.limits.min_expires => {
                            return Err(Reply::new(423, "Interval Too Brief")
                                .with("Min-Expires", self.limits.min_expires.to_string()));
                        }
                        n => BindingChange::Bind {
                            uri,
                            expires: n.min(self.limits.max_expires),
                            route: serde_json::Value::Null,
                        },
                    });
                }
                // Each binding keeps the route; the last one takes it without a copy.
                let mut left = changes
                    .iter()
                    .filter(|c| matches!(c, BindingChange::Bind { .. }))
                    .count();
                for change in &mut changes {
                    if let BindingChange::Bind { route: r, .. } = change {
                        left -= 1;
                        *r = if left == 0 {
                            std::mem::take(&mut route)
                        } else {
                            route.clone()
                        };
                    }
                }
                What::Change(changes)
            }
        };
        Ok(Ask {
            call_id,
            cseq,
            what,
        })
    }
}

/// What a REGISTER asks, read from its headers.
struct Ask<'a> {
    /// Its Call-ID.
    call_id: &'a str,
    /// Its CSeq number.
    cseq: u32,
    /// The change.
    what: What,
}

/// The change a REGISTER asks for.
enum What {
    /// `Contact: *`: remove every binding.
    RemoveAll,
    /// No Contact: list the bindings.
    Query,
    /// Add, refresh or remove these.
    Change(Vec<BindingChange>),
}

/// The user a REGISTER is for: its To address; Err is the 400 or 404 to answer.
fn address_of_record(req: &SipMessage) -> Result<String, Reply> {
    let to = req.to().map_err(Reply::bad_request)?;
    to.uri
        .sip()
        .and_then(|u| u.address())
        .ok_or_else(|| Reply::new(404, "Not Found (To is not a user's SIP address)"))
}

/// The 200 listing the user's bindings `bindings` with their lifetimes left.
fn answer(req: &SipMessage, bindings: &[Binding]) -> Reply {
    let now = now_ms();
    let mut reply = Reply::new(200, "OK");
    for b in bindings {
        let expires = seconds_until(b.expires_at, now);
        reply = reply.with("Contact", format!("<{}>;expires={expires}", b.uri));
    }
    for path in req.headers_named("Path") {
        reply = reply.with("Path", path.to_owned());
    }
    reply.with("Date", http_date())
}

fn location_error(e: Error) -> Reply {
    match e {
        Error::NotFound(_) => Reply::new(404, "Not Found"),
        Error::Conflict(why) | Error::Invalid(why) => Reply::bad_request(&why),
        Error::Limit(why) => Reply::new(403, format!("Forbidden ({why})")),
        other => internal(other),
    }
}

/// The current time as an RFC 1123 date in GMT (the Date header of RFC 3261 §20.17), made
/// once a second.
fn http_date() -> String {
    static LAST: std::sync::Mutex<(i64, String)> = std::sync::Mutex::new((i64::MIN, String::new()));
    let secs = now_ms() / 1000;
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if last.0 != secs {
        *last = (secs, format_date(secs));
    }
    last.1.clone()
}

fn format_date(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        months[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_rfc1123_in_gmt() {
        let d = super::http_date();
        assert!(d.ends_with(" GMT") && d.len() == 29, "{d}");
    }
}
