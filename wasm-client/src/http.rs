//! Requests to the relay's REST API with `fetch`: JSON in, JSON out, credentials attached, and
//! problem+json answers turned into [`ClientError`]s.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::error::{ClientError, Result};
use crate::js;

/// The relay's address, and who the requests are made as: the credentials and the login.
pub(crate) struct Http {
    /// `https://relay.example` without a trailing slash; empty for the page's own origin.
    pub(crate) base: String,
    /// `Basic ...` once logged in (undefined before).
    authorization: Cell<JsValue>,
    /// The login, once made (or learnt from the owning tab).
    /// (The relay's answer: `{id, url: "/login/{email}/{id}", expires}`; undefined before.)
    /// Kept with the credentials because requests made as this login need it (joining a call),
    /// including those of the invitation objects, which hold only this.
    login: Cell<JsValue>,
}

impl Http {
    pub(crate) fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').into(),
            authorization: Cell::new(JsValue::UNDEFINED),
            login: Cell::new(JsValue::UNDEFINED),
        }
    }

    pub(crate) fn login(&self) -> JsValue {
        js::peek(&self.login)
    }

    /// The login resource, `/login/{email}/{id}`.
    pub(crate) fn login_url(&self) -> Option<String> {
        js::get_str(&self.login(), "url")
    }

    pub(crate) fn set_login(&self, login: JsValue) {
        self.login.set(login);
    }

    /// Uses HTTP Basic with these credentials from now on.
    pub(crate) fn set_credentials(&self, email: &str, password: &str) {
        let value = js::cat(&["Basic ", &js::base64(&js::cat(&[email, ":", password]))]);
        self.authorization.set(value.into());
    }

    /// Forgets the credentials.
    pub(crate) fn clear_credentials(&self) {
        self.authorization.set(JsValue::UNDEFINED);
    }

    /// Revokes a bearer token the relay gave (`DELETE /token` carrying it), so that it stops
    /// working before it expires: a page that logs out leaves no live token behind.
    pub(crate) fn revoke(&self, token: &str) -> Pending {
        let url = js::cat(&[&self.base, "/token"]);
        let auth: JsValue = js::cat(&["Bearer ", token]).into();
        Pending(Ok(js::fetch(&url, "DELETE", &auth, &JsValue::UNDEFINED)))
    }

    /// Opens a WebSocket to a path of the relay (see [`js::ws_open`]).
    pub(crate) fn ws_open(&self, path: &str, handler: &js_sys::Function) -> JsValue {
        js::ws_open(&self.base, path, handler)
    }

    /// Sends `method path` with an optional JSON body; the parsed JSON answer (undefined for
    /// 204), or the relay's problem as an error. No cookies are sent; and without credentials
    /// mode a browser never pops up its own password dialog on a 401 (the page shows the error
    /// instead).
    ///
    /// Every REST call of the client goes through here, and the request is on its way when
    /// this returns: the [`Pending`] answer is one small future shared by all callers.
    pub(crate) fn request(&self, method: &str, path: &str, body: Option<&JsValue>) -> Pending {
        let none = JsValue::UNDEFINED;
        Pending(Ok(js::wait(self.fetch(
            method,
            path,
            body.unwrap_or(&none),
        ))))
    }

    /// The request itself: a promise of `[status, parsed body?]` (see [`js::http`]).
    pub(crate) fn fetch(&self, method: &str, path: &str, body: &JsValue) -> js_sys::Promise {
        let url = js::cat(&[&self.base, &encode_path(path)]);
        js::http(&url, method, &js::peek(&self.authorization), body)
    }

    /// SENDs `body` to a user or one login.
    pub(crate) fn send_to(&self, to: &str, body: &JsValue) -> Pending {
        self.request("SEND", &target(to), Some(body))
    }

    /// Joins `call` with this login and `session`.
    pub(crate) fn join(&self, call: &str, session: &JsValue) -> Pending {
        let Some(url) = self.login_url() else {
            return Pending::failed(ClientError::not_logged_in());
        };
        let body = js::object(&[("url", url.into())]);
        if !session.is_undefined() {
            js::set(&body, "session", session);
        }
        self.request("POST", call, Some(&body))
    }
}

/// Whom an invitation's `to` names: the email of a login (`/login/{email}/{id}`), else `to`.
pub(crate) fn peer_of(to: &str) -> &str {
    after(to, "/login/", b"/").unwrap_or(to)
}

/// The address a call is SENT to: a `sip:` URI's `user@host` (the relay reaches accounts and,
/// through its upstream, other addresses by it), else `to` as given.
pub(crate) fn address(to: &str) -> &str {
    after(to, "sip:", b";?").unwrap_or(to)
}

/// What follows `prefix` in `text` up to the first of the bytes `stop`; None without the
/// prefix. (Bytes, not a `char` pattern: no string searcher in the module.)
fn after<'a>(text: &'a str, prefix: &str, stop: &[u8]) -> Option<&'a str> {
    let bytes = text.as_bytes();
    if !bytes.starts_with(prefix.as_bytes()) {
        return None;
    }
    let mut end = prefix.len();
    while let Some(b) = bytes.get(end) {
        if stop.iter().any(|s| s == b) {
            break;
        }
        end += 1;
    }
    text.get(prefix.len()..end)
}

/// The resource a SEND goes to: an email means all of that user's contacts.
pub(crate) fn target(to: &str) -> String {
    if to.starts_with('/') {
        to.to_owned()
    } else {
        js::cat(&["/login/", to])
    }
}

/// The answer to a request: the parsed JSON body of a 2xx, or the error.
pub(crate) struct Pending(std::result::Result<JsFuture, JsValue>);

impl Pending {
    /// A request that failed before it was sent.
    pub(crate) fn failed(error: JsValue) -> Self {
        Self(Err(error))
    }
}

impl Future for Pending {
    type Output = Result<JsValue>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<JsValue>> {
        let answer = match &mut self.get_mut().0 {
            Ok(fetch) => match Pin::new(fetch).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(answer) => answer,
            },
            Err(error) => return Poll::Ready(Err(std::mem::take(error))),
        };
        Poll::Ready(outcome(answer))
    }
}

/// What a request's `[status, parsed body?]` (or its failure) means: the body of a 2xx, or the
/// error.
pub(crate) fn outcome(answer: std::result::Result<JsValue, JsValue>) -> Result<JsValue> {
    match answer {
        Ok(answer) => {
            let status = js::get_f64(&answer, "0").unwrap_or(0.0);
            if status < 0.0 {
                return Err(ClientError::invalid("the body cannot be sent as JSON"));
            }
            let status = status as u16;
            let parsed = js::get(&answer, "1");
            if (200..300).contains(&status) {
                Ok(parsed)
            } else {
                Err(ClientError::from_problem(status, &parsed))
            }
        }
        Err(cause) => Err(ClientError::network(&cause)),
    }
}

/// Percent-encodes what a path segment may not carry as is (an email's `+`, spaces), keeping
/// `/`, `?`, `=`, `&` and `@` so callers can pass resource paths with queries.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'/'
            | b'@'
            | b'?'
            | b'='
            | b'&'
            | b'!'
            | b'$'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b','
            | b';'
            | b':' => out.push(char::from(b)),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{address, encode_path, peer_of};

    #[test]
    fn whom_a_call_goes_to() {
        assert_eq!(
            address("sip:carol@pbx.example.org;transport=tcp"),
            "carol@pbx.example.org"
        );
        assert_eq!(address("sip:bob@example.net"), "bob@example.net");
        assert_eq!(address("bob@example.net"), "bob@example.net");
        assert_eq!(peer_of("/login/bob@example.net/3"), "bob@example.net");
        assert_eq!(peer_of("bob@example.net"), "bob@example.net");
    }

    #[test]
    fn paths_keep_their_structure_and_escape_the_rest() {
        assert_eq!(encode_path("/login/a+b@x.net/1"), "/login/a%2Bb@x.net/1");
        assert_eq!(encode_path("/user/a b@x"), "/user/a%20b@x");
        assert_eq!(encode_path("/login/a@x?since=5"), "/login/a@x?since=5");
    }
}
