//! Requests to the relay's REST API with `fetch`: JSON in, JSON out, credentials attached, and
//! problem+json answers turned into [`ClientError`]s.

use std::cell::RefCell;

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestInit, Response};

use crate::error::{ClientError, Result};
use crate::js;

/// The relay's address and the credentials to use.
#[derive(Debug)]
pub(crate) struct Http {
    /// `https://relay.example` without a trailing slash; empty for the page's own origin.
    pub(crate) base: String,
    /// `Basic ...` once logged in.
    authorization: RefCell<Option<String>>,
}

impl Http {
    pub(crate) fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            authorization: RefCell::new(None),
        }
    }

    /// Uses HTTP Basic with these credentials from now on.
    pub(crate) fn set_credentials(&self, email: &str, password: &str) {
        let value = ["Basic ", &js::base64(&[email, ":", password].concat())].concat();
        *self.authorization.borrow_mut() = Some(value);
    }

    /// Forgets the credentials.
    pub(crate) fn clear_credentials(&self) {
        *self.authorization.borrow_mut() = None;
    }

    /// The `ws://` or `wss://` URL of a path (relative bases use the page's origin).
    pub(crate) fn ws_url(&self, path: &str) -> String {
        let base = if self.base.is_empty() {
            js::get_str(&js::get(&js_sys::global(), "location"), "origin").unwrap_or_default()
        } else {
            self.base.clone()
        };
        let base = base
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        format!("{base}{path}")
    }

    /// Sends `method path` with an optional JSON body; the parsed JSON answer (undefined for
    /// 204), or the relay's problem as an error.
    pub(crate) async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&JsValue>,
    ) -> Result<JsValue> {
        let init = RequestInit::new();
        init.set_method(method);
        // No cookies are needed; and without credentials mode a browser never pops up its own
        // password dialog on a 401 (the page shows the error instead).
        init.set_credentials(web_sys::RequestCredentials::Omit);
        let headers = web_sys::Headers::new().map_err(|e| ClientError::network(&e))?;
        let _ = headers.set("accept", "application/json");
        if let Some(auth) = self.authorization.borrow().as_ref() {
            let _ = headers.set("authorization", auth);
        }
        if let Some(body) = body {
            let text = js_sys::JSON::stringify(body)
                .map_err(|_| ClientError::invalid("the body cannot be sent as JSON"))?;
            let _ = headers.set("content-type", "application/json");
            init.set_body(&text.into());
        }
        init.set_headers(&headers);
        let url = [self.base.as_str(), &encode_path(path)].concat();
        let request =
            Request::new_with_str_and_init(&url, &init).map_err(|e| ClientError::network(&e))?;
        let response: Response = js::fetch(&request)
            .await
            .map_err(|e| ClientError::network(&e))?;
        let status = response.status();
        let parsed = if status == 204 {
            JsValue::UNDEFINED
        } else {
            match response.json() {
                Ok(promise) => JsFuture::from(promise).await.unwrap_or(JsValue::UNDEFINED),
                Err(_) => JsValue::UNDEFINED,
            }
        };
        if response.ok() {
            Ok(parsed)
        } else {
            Err(ClientError::from_problem(status, &parsed))
        }
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
    use super::encode_path;

    #[test]
    fn paths_keep_their_structure_and_escape_the_rest() {
        assert_eq!(encode_path("/login/a+b@x.net/1"), "/login/a%2Bb@x.net/1");
        assert_eq!(encode_path("/user/a b@x"), "/user/a%20b@x");
        assert_eq!(encode_path("/login/a@x?since=5"), "/login/a@x?since=5");
    }
}
