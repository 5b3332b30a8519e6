//! `JsonBody<T>`: a JSON request body with errors that say what is wrong: 415 for another media
//! type, 413 past the size limit, 400 for broken JSON, 422 for JSON of the wrong shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use restsip_protocol::ProblemKind;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A request body parsed from JSON.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

/// True for `application/json`, `application/*+json` and a missing `Content-Type`.
fn is_json(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return true };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses `bytes` as JSON into `T`.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("a JSON request body is required"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        if e.classify() == serde_json::error::Category::Data {
            ApiError::new(
                ProblemKind::Unprocessable,
                format!("invalid request body: {e}"),
            )
        } else {
            ApiError::bad_request(format!("malformed JSON: {e}"))
        }
    })
}

/// Reads the whole body, mapping an overrun of the size limit to 413.
pub(crate) async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if !is_json(content_type.as_deref()) {
        return Err(ApiError::new(
            ProblemKind::UnsupportedMediaType,
            format!(
                "request bodies are JSON: send Content-Type: application/json (got {})",
                content_type.unwrap_or_default()
            ),
        ));
    }
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ProblemKind::PayloadTooLarge,
                "the request body is larger than this relay accepts",
            )
        } else {
            ApiError::bad_request(format!("could not read the request body: {rejection}"))
        }
    })
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        assert!(is_json(None));
        assert!(is_json(Some("application/json; charset=utf-8")));
        assert!(is_json(Some("application/merge-patch+json")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(Some("application/x-www-form-urlencoded")));
    }
}
