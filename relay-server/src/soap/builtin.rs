//! The built-in SOAP services, in the namespace [`NAMESPACE`] (RPC style, SOAP encoding,
//! unqualified parameters). In WSDL terms:
//!
//! ```text
//! service  UserService            namespace urn:restsip:user
//!   GetPresence(user: string)
//!     → GetPresenceResponse(user: string, online: boolean,
//!                           contacts: { contact: { uri?, expires: int, source: "rest"|"sip",
//!                                                   presence? }* })
//!     Fault Client "no user ..." when the user does not exist.
//!   LeaveMessage(user: string, url?: string, subject?: string, body?: string)
//!     → LeaveMessageResponse(id: int, url: string)       (at least one of url and body)
//!     Fault Client when the user does not exist or neither url nor body is given, and
//!     Fault Client with detail "mailbox-full" when the user's mailbox is past a cap.
//! ```
//!
//! `user` is an account's email (`alice@example.net`, or `sip:alice@example.net`).
//! LeaveMessage leaves an offline message in the user's mailbox (`/user/{id}/message`), from
//! the SIP From address as the request claims it.

use std::sync::Arc;

use super::envelope::{response, Call, Fault, FaultCode, Value};
use super::{Caller, Outcome};
use crate::clock::now_ms;
use crate::limits::Limits;
use crate::location::Location;
use crate::store::{MailRecord, Store};

/// The namespace of the built-in services.
pub const NAMESPACE: &str = "urn:restsip:user";
/// The methods served.
pub const METHODS: [&str; 2] = ["GetPresence", "LeaveMessage"];
/// Longest text accepted in one parameter.
const MAX_PARAM: usize = 8192;

/// True when the built-ins serve `method` of `namespace`.
pub fn serves(namespace: &str, method: &str) -> bool {
    namespace == NAMESPACE && METHODS.contains(&method)
}

/// The built-in services over the location service and the store; cheap to clone.
#[derive(Clone)]
pub struct Builtin {
    /// Logins and registrations.
    location: Location,
    /// Accounts and mailboxes.
    store: Arc<dyn Store>,
    /// The mailbox caps.
    limits: Arc<Limits>,
}

impl Builtin {
    /// The services.
    pub fn new(location: Location, store: Arc<dyn Store>, limits: Arc<Limits>) -> Self {
        Self {
            location,
            store,
            limits,
        }
    }

    /// Runs `call` (whose namespace and name [`serves`] accepted).
    pub async fn call(&self, call: &Call, caller: &Caller) -> Outcome {
        if let Some(style) = &call.encoding_style {
            let first = style.split_whitespace().next().unwrap_or_default();
            if !first.is_empty() && first != super::envelope::ENCODING_NS {
                return client_fault(format!("encodingStyle {first} is not supported"));
            }
        }
        if let Some(p) = call.params.iter().find(|p| p.text.len() > MAX_PARAM) {
            return client_fault(format!(
                "parameter {} is longer than {MAX_PARAM} bytes",
                p.name
            ));
        }
        let result = match call.name.as_str() {
            "GetPresence" => self.presence(call, caller).await,
            "LeaveMessage" => self.leave_message(call, caller).await,
            _ => {
                return Outcome::Unknown {
                    namespace: NAMESPACE.to_owned(),
                    method: call.name.clone(),
                }
            }
        };
        match result {
            Ok(values) => Outcome::Response(response(NAMESPACE, &call.name, &values)),
            Err(fault) => Outcome::fault(&fault),
        }
    }

    /// GetPresence: the user's contacts; an anonymous caller (or one the user's presence rule
    /// leaves out) never sees where they are (their URIs, IP addresses) nor when their
    /// registrations end.
    async fn presence(
        &self,
        call: &Call,
        caller: &Caller,
    ) -> Result<Vec<(&'static str, Value)>, Fault> {
        let user = user_param(call)?;
        let contacts = self.location.contacts(&user).await.map_err(|e| match e {
            crate::error::Error::NotFound(_) => {
                // Worded as the fault of the SERVICE draft's third example.
                Fault::new(FaultCode::Client, format!("404 Unknown User - sip:{user}"))
            }
            other => server_fault(&other),
        })?;
        // Where the user is (contact URIs: IP addresses) and for how long only for an
        // authenticated caller the user's presence rule lets watch.
        let located = caller.authenticated
            && self
                .location
                .may_watch(&user, caller.from.as_deref())
                .await
                .map_err(|e| server_fault(&e))?;
        let now = now_ms();
        let list = contacts
            .iter()
            .map(|c| {
                let view = crate::location::contact_view(c, now);
                let mut fields = Vec::new();
                if located {
                    if let Some(uri) = view.contact {
                        fields.push(("uri", Value::Text(uri)));
                    }
                    fields.push(("expires", Value::Text(view.expires.to_string())));
                }
                let source = serde_json::to_value(view.source)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                fields.push(("source", Value::Text(source)));
                if let Some(presence) = view.presence {
                    let text = match presence {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    fields.push(("presence", Value::Text(text)));
                }
                ("contact", Value::Elements(fields))
            })
            .collect();
        Ok(vec![
            ("user", Value::Text(user)),
            ("online", Value::from(bool_text(!contacts.is_empty()))),
            ("contacts", Value::Elements(list)),
        ])
    }

    async fn leave_message(
        &self,
        call: &Call,
        caller: &Caller,
    ) -> Result<Vec<(&'static str, Value)>, Fault> {
        let user = user_param(call)?;
        let url = call.param("url").filter(|s| !s.is_empty());
        let body = call.param("body").filter(|s| !s.is_empty());
        if url.is_none() && body.is_none() {
            return Err(Fault::new(
                FaultCode::Client,
                "an offline message needs a url or a body",
            ));
        }
        match self.store.user(&user).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(Fault::new(FaultCode::Client, format!("no user {user}"))),
            Err(e) => return Err(server_fault(&e)),
        }
        let record = MailRecord {
            id: 0,
            owner: user.clone(),
            sender: caller
                .from
                .clone()
                .unwrap_or_else(|| "anonymous".to_owned()),
            url: url.map(str::to_owned),
            body: body.map(|b| serde_json::Value::String(b.to_owned())),
            subject: call
                .param("subject")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            created: now_ms(),
        };
        let stored = crate::mailbox::leave(self.store.as_ref(), &self.limits, &record)
            .await
            .map_err(|e| match e {
                crate::error::Error::MailboxFull(why) => {
                    Fault::new(FaultCode::Client, why).with_detail("mailbox-full")
                }
                other => server_fault(&other),
            })?;
        Ok(vec![
            ("id", Value::Text(stored.id.to_string())),
            (
                "url",
                Value::Text(format!("/user/{}/message/{}", stored.owner, stored.id)),
            ),
        ])
    }
}

fn bool_text(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// The `user` parameter as an account email (a `sip:` prefix is dropped).
fn user_param(call: &Call) -> Result<String, Fault> {
    let raw = call
        .param("user")
        .ok_or_else(|| Fault::new(FaultCode::Client, "the user parameter is missing"))?;
    let user = raw
        .strip_prefix("sip:")
        .or_else(|| raw.strip_prefix("sips:"))
        .unwrap_or(raw)
        .trim();
    if user.is_empty() || !user.contains('@') {
        return Err(Fault::new(
            FaultCode::Client,
            format!("user {raw:?} is not an address like alice@example.net"),
        ));
    }
    Ok(user.to_owned())
}

fn client_fault(why: String) -> Outcome {
    Outcome::fault(&Fault::new(FaultCode::Client, why))
}

fn server_fault(e: &dyn std::fmt::Display) -> Fault {
    tracing::warn!(error = %e, "built-in SOAP service failed");
    Fault::new(FaultCode::Server, "the service failed; try again later")
}
