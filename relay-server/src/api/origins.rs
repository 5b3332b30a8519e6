//! Which web pages may use the API from a browser (`--allowed-origin`): the relay's own origin
//! (the one the request names in its `Host`), the listed origins, and, when none is listed, the
//! loopback origins of development servers (`http(s)://localhost:*`, `127.0.0.1:*`,
//! `[::1]:*`). CORS answers only those; any request a browser sends from another origin (its
//! `Origin` header names it) is refused with 403 before it is routed, WebSocket upgrades and
//! streams included. Requests without `Origin` (non-browser clients) are not concerned.

use axum::extract::Request;
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use reqwest::Url;
use restsip_protocol::ProblemKind;

use super::error::ApiError;
use super::AppState;

/// The allowed origins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origins {
    /// `*` was listed: every origin.
    any: bool,
    /// Listed origins, serialized (`scheme://host[:port]`, default ports left out).
    listed: Vec<String>,
    /// Loopback origins are allowed (no origin was listed).
    loopback: bool,
}

impl Default for Origins {
    fn default() -> Self {
        Self {
            any: false,
            listed: Vec::new(),
            loopback: true,
        }
    }
}

impl Origins {
    /// The origins of `--allowed-origin`: each `scheme://host[:port]`, or `*` for any. None
    /// listed: the relay's own and loopback ones.
    pub fn parse(list: &[String]) -> Result<Self, String> {
        let mut origins = Self {
            loopback: list.is_empty(),
            ..Self::default()
        };
        for item in list.iter().map(|s| s.trim()) {
            if item == "*" {
                origins.any = true;
                continue;
            }
            let url = Url::parse(item)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .filter(|u| u.path() == "/" && u.query().is_none() && u.username().is_empty())
                .ok_or_else(|| {
                    format!("allowed-origin {item:?} is not an origin like https://app.example:8443 (or *)")
                })?;
            origins.listed.push(url.origin().ascii_serialization());
        }
        Ok(origins)
    }

    /// Whether a page of `origin` may use the API; `host` is the authority the request was
    /// sent to (the relay's own origin, as the page reached it).
    pub fn allows(&self, origin: &HeaderValue, host: Option<&str>) -> bool {
        if self.any {
            return true;
        }
        let Some(url) = origin.to_str().ok().and_then(|o| Url::parse(o).ok()) else {
            return false; // "null" (sandboxed, file:) and garbage
        };
        let serialized = url.origin().ascii_serialization();
        if !matches!(url.scheme(), "http" | "https") {
            return false;
        }
        if self.listed.contains(&serialized) {
            return true;
        }
        if self.loopback && matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")) {
            return true;
        }
        host.and_then(|h| Url::parse(&format!("{}://{h}", url.scheme())).ok())
            .is_some_and(|own| own.origin() == url.origin())
    }
}

/// The authority a request was sent to: its `Host`, or the URI's (HTTP/2).
pub(crate) fn host_of<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<&'a str> {
    headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
}

/// The answer (403) to a request from a page of an origin that is not allowed; None for
/// every other request (no `Origin`, or an allowed one).
pub(crate) fn refusal(state: &AppState, req: &Request) -> Option<Response> {
    let origin = req.headers().get(ORIGIN)?;
    if state
        .origins
        .allows(origin, host_of(req.headers(), req.uri()))
    {
        return None;
    }
    let shown = String::from_utf8_lossy(origin.as_bytes()).into_owned();
    Some(
        ApiError::new(
            ProblemKind::Forbidden,
            format!(
                "pages of origin {shown:?} may not use this relay; its operator allows \
                 origins with --allowed-origin"
            ),
        )
        .into_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(o: &Origins, origin: &str, host: &str) -> bool {
        o.allows(
            &HeaderValue::from_str(origin).expect("a header"),
            Some(host),
        )
    }

    #[test]
    fn own_listed_and_loopback_origins_are_allowed() {
        let default = Origins::default();
        assert!(allows(
            &default,
            "http://relay.example:8080",
            "relay.example:8080"
        ));
        assert!(allows(&default, "https://relay.example", "relay.example"));
        assert!(allows(
            &default,
            "https://relay.example:443",
            "relay.example"
        ));
        assert!(allows(&default, "http://localhost:5173", "relay.example"));
        assert!(allows(&default, "http://127.0.0.1:9", "relay.example"));
        assert!(allows(&default, "https://[::1]:8443", "relay.example"));
        assert!(!allows(
            &default,
            "http://evil.example",
            "relay.example:8080"
        ));
        assert!(!allows(
            &default,
            "http://relay.example:8081",
            "relay.example:8080"
        ));
        assert!(!allows(&default, "null", "relay.example"));
        assert!(!allows(&default, "file://", "relay.example"));
        assert!(!allows(&default, "http://localhost.evil.example", "x"));

        let listed = Origins::parse(&["https://app.example:8443".into()]).expect("parsed");
        assert!(allows(&listed, "https://app.example:8443", "relay.example"));
        assert!(!allows(&listed, "http://app.example:8443", "relay.example"));
        assert!(!allows(&listed, "http://localhost:5173", "relay.example"));
        assert!(allows(&listed, "http://relay.example", "relay.example"));

        let any = Origins::parse(&["*".into()]).expect("parsed");
        assert!(allows(&any, "http://evil.example", "relay.example"));
        for bad in [
            "app.example",
            "ftp://app.example",
            "https://app.example/x",
            "https://u@a.example",
        ] {
            assert!(Origins::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
