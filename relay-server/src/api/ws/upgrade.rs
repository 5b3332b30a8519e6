//! The WebSocket opening handshake of `/ws` (RFC 6455, section 4.2), done here rather than by
//! axum's `WebSocketUpgrade` because that one hands over only a tungstenite stream, and the
//! writer writes its frames to the socket itself (see [`super::writer`]). The checks are those
//! of axum's extractor for HTTP/1.1, the only version the relay serves; the accept key is
//! tungstenite's.

use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::api::error::ApiError;

/// Checks the handshake request and takes its upgrade: the 101 answer to send and the
/// connection once hyper has switched it.
pub(super) fn accept(parts: &mut Parts) -> Result<(Response, OnUpgrade), ApiError> {
    if parts.method != Method::GET {
        return Err(ApiError::method_not_allowed(
            parts.method.as_str(),
            &["GET"],
        ));
    }
    let headers = &parts.headers;
    if !has_token(headers, &header::CONNECTION, "upgrade") {
        return Err(refused("Connection: upgrade"));
    }
    if !is(headers, &header::UPGRADE, "websocket") {
        return Err(refused("Upgrade: websocket"));
    }
    if !is(headers, &header::SEC_WEBSOCKET_VERSION, "13") {
        return Err(refused("Sec-WebSocket-Version: 13"));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or_else(|| refused("a Sec-WebSocket-Key"))?;
    let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
        .map_err(|_| refused("a Sec-WebSocket-Key"))?;
    let on_upgrade = parts
        .extensions
        .remove::<OnUpgrade>()
        .ok_or_else(|| ApiError::bad_request("this connection cannot be upgraded"))?;
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let out = response.headers_mut();
    out.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    out.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    out.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    Ok((response, on_upgrade))
}

fn refused(wanted: &str) -> ApiError {
    ApiError::bad_request(format!("a WebSocket handshake needs {wanted}"))
}

/// Whether the header's value is `value`, ignoring ASCII case.
fn is(headers: &HeaderMap, name: &HeaderName, value: &str) -> bool {
    headers
        .get(name)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

/// Whether the header's comma-separated list has `token`, ignoring ASCII case.
fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut request = Request::get("/ws");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).expect("request").into_parts().0
    }

    const GOOD: [(&str, &str); 4] = [
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "WebSocket"),
        ("sec-websocket-version", "13"),
        // RFC 6455's example key.
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn a_handshake_is_checked_header_by_header() {
        for missing in 0..GOOD.len() {
            let headers: Vec<_> = GOOD
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != missing)
                .map(|(_, h)| *h)
                .collect();
            let err = accept(&mut parts(&headers)).expect_err("refused");
            let detail = format!("{err:?}");
            assert!(detail.contains("WebSocket handshake needs"), "{detail}");
        }
        let mut wrong_version = parts(&GOOD);
        wrong_version
            .headers
            .insert("sec-websocket-version", HeaderValue::from_static("8"));
        assert!(accept(&mut wrong_version).is_err());
        let mut post = parts(&GOOD);
        post.method = Method::POST;
        assert!(format!("{:?}", accept(&mut post).expect_err("refused")).contains("POST"));
    }

    #[test]
    fn a_good_handshake_still_needs_hyper_s_upgrade() {
        // A request built here has no connection behind it to switch.
        let err = accept(&mut parts(&GOOD)).expect_err("refused");
        assert!(format!("{err:?}").contains("cannot be upgraded"), "{err:?}");
    }
}
