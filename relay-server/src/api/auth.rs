//! `Caller`: the authenticated user of a request. HTTP Basic (email and password) works on every
//! request; `Authorization: Bearer` or `?access_token=` take a short-lived token from `POST
//! /token`, for EventSource and WebSocket, which cannot set headers.

use axum::extract::{FromRequestParts, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use restsip_protocol::Token;

use super::error::ApiError;
use super::AppState;

/// The email of the authenticated user.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) String);

impl Caller {
    /// Refuses unless the caller is `owner`.
    pub(crate) fn must_be(&self, owner: &str, what: &str) -> Result<(), ApiError> {
        if self.0 == owner {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{} may not {what} of {owner}",
                self.0
            )))
        }
    }
}

fn query_token(parts: &Parts) -> Option<String> {
    parts.uri.query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == "access_token").then(|| value.to_owned())
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or(""));
        match header.map(|h| h.split_once(' ').unwrap_or((h, ""))) {
            Some((scheme, value)) if scheme.eq_ignore_ascii_case("basic") => {
                let decoded = STANDARD
                    .decode(value.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| ApiError::unauthorized("malformed Basic credentials"))?;
                let (email, password) = decoded
                    .split_once(':')
                    .ok_or_else(|| ApiError::unauthorized("malformed Basic credentials"))?;
                if state.auth.check_password(email, password).await? {
                    Ok(Caller(email.to_owned()))
                } else {
                    Err(ApiError::unauthorized("wrong email or password"))
                }
            }
            Some((scheme, value)) if scheme.eq_ignore_ascii_case("bearer") => state
                .auth
                .check_token(value.trim())
                .map(Caller)
                .ok_or_else(|| {
                    ApiError::unauthorized(
                        "the bearer token is invalid or expired; get a new one from POST /token",
                    )
                }),
            Some((scheme, _)) => Err(ApiError::unauthorized(format!(
                "unsupported authorization scheme {scheme}"
            ))),
            None => match query_token(parts) {
                Some(token) => state.auth.check_token(&token).map(Caller).ok_or_else(|| {
                    ApiError::unauthorized(
                        "access_token is invalid or expired; get a new one from POST /token",
                    )
                }),
                None => Err(ApiError::unauthorized(
                    "credentials required: HTTP Basic, a bearer token or ?access_token=",
                )),
            },
        }
    }
}

/// `POST /token`: a short-lived bearer token for the caller.
pub(crate) async fn token_create(State(state): State<AppState>, caller: Caller) -> Json<Token> {
    let (token, expires) = state.auth.issue_token(&caller.0);
    Json(Token { token, expires })
}
