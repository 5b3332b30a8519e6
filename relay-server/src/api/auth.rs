//! `Caller`: the authenticated user of a request. HTTP Basic (email and password) works on every
//! request; `Authorization: Bearer` or `?access_token=` take a short-lived token from `POST
//! /token`, for EventSource and WebSocket, which cannot set headers.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use restsip_protocol::{ProblemKind, Token};

use super::error::ApiError;
use super::AppState;
use crate::auth::{Admission, TokenClaims};

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

/// The authenticated user and, when a bearer token was used, what it says.
#[derive(Debug, Clone)]
pub(crate) struct Credential {
    /// Who is asking.
    pub(crate) caller: Caller,
    /// The bearer token used, if one was.
    pub(crate) token: Option<TokenClaims>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Credential::from_request_parts(parts, state)
            .await
            .map(|c| c.caller)
    }
}

/// 429 for a source that guessed too often, with when to try again.
fn too_many_guesses(wait: std::time::Duration) -> ApiError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let value =
        HeaderValue::from_str(&secs.to_string()).unwrap_or_else(|_| HeaderValue::from_static("60"));
    ApiError::new(
        ProblemKind::TooManyRequests,
        format!("too many wrong passwords from this address; try again in {secs} s"),
    )
    .with_header(header::RETRY_AFTER, value)
}

async fn bearer(state: &AppState, token: &str, source: &str) -> Result<Credential, ApiError> {
    match state.auth.check_token(token.trim()).await? {
        Some(claims) => Ok(Credential {
            caller: Caller(claims.email.clone()),
            token: Some(claims),
        }),
        None => Err(ApiError::unauthorized(format!(
            "{source} is invalid, expired or revoked, or the account's password changed; \
             get a new one from POST /token"
        ))),
    }
}

impl FromRequestParts<AppState> for Credential {
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
                let email = restsip_protocol::normalize_email(email);
                let ip = parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip());
                let guesses = state.auth.guesses();
                if let Some(Admission::Wait(wait)) = ip.map(|ip| guesses.admit(&email, ip)) {
                    return Err(too_many_guesses(wait));
                }
                if state.auth.check_password(&email, password).await? {
                    Ok(Credential {
                        caller: Caller(email),
                        token: None,
                    })
                } else {
                    if let Some(ip) = ip {
                        guesses.failed(&email, ip);
                    }
                    Err(ApiError::unauthorized("wrong email or password"))
                }
            }
            Some((scheme, value)) if scheme.eq_ignore_ascii_case("bearer") => {
                bearer(state, value, "the bearer token").await
            }
            Some((scheme, _)) => Err(ApiError::unauthorized(format!(
                "unsupported authorization scheme {scheme}"
            ))),
            None => match query_token(parts) {
                Some(token) => bearer(state, &token, "access_token").await,
                None => Err(ApiError::unauthorized(
                    "credentials required: HTTP Basic, a bearer token or ?access_token=",
                )),
            },
        }
    }
}

/// `POST /token`: a short-lived bearer token for the caller, bound to the account's current
/// credentials; made with a token, it expires no later than that one.
pub(crate) async fn token_create(
    State(state): State<AppState>,
    credential: Credential,
) -> Result<Json<Token>, ApiError> {
    let not_after = credential.token.as_ref().map(|t| t.expires);
    let email = &credential.caller.0;
    let (token, expires) = state
        .auth
        .issue_token(email, not_after)
        .await?
        .ok_or_else(|| ApiError::unauthorized(format!("{email} no longer exists")))?;
    Ok(Json(Token { token, expires }))
}

/// `DELETE /token`: revokes the bearer token the request carries (a page logging out).
pub(crate) async fn token_delete(
    State(state): State<AppState>,
    credential: Credential,
) -> Result<StatusCode, ApiError> {
    let Some(claims) = credential.token else {
        return Err(ApiError::new(
            restsip_protocol::ProblemKind::BadRequest,
            "send the token to revoke as Authorization: Bearer (or ?access_token=)",
        ));
    };
    state.auth.revoke_token(&claims).await?;
    Ok(StatusCode::NO_CONTENT)
}
