//! `/login/{email}` and `/login/{email}/{id}`: log in (register a contact), refresh, log out,
//! list and watch contacts; `SEND` and `CANCEL` on both.

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use restsip_protocol::{CancelRequest, ContactSource, CreateLogin, LoginCreated, RefreshLogin};
use serde::Deserialize;

use super::auth::Caller;
use super::body::{parse_json, read_body, JsonBody};
use super::error::ApiError;
use super::stream::{watch, Watch};
use super::AppState;
use crate::bus::Topic;
use crate::clock::now_ms;
use crate::location::contact_view;

/// The methods of `/login/{email}`.
pub(crate) const LOGIN_METHODS: &[&str] = &["GET", "POST", "SEND", "CANCEL", "OPTIONS"];
/// The methods of `/login/{email}/{id}`.
pub(crate) const CONTACT_METHODS: &[&str] = &["GET", "PUT", "DELETE", "SEND", "CANCEL", "OPTIONS"];

/// `POST /login/{email}`: register a contact for the caller.
pub(crate) async fn login_create(
    State(state): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
    JsonBody(req): JsonBody<CreateLogin>,
) -> Result<impl IntoResponse, ApiError> {
    caller.must_be(&email, "log in as")?;
    let record = state
        .location
        .register(&email, req, ContactSource::Web)
        .await?;
    let view = contact_view(&record, now_ms());
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, view.url.clone())],
        Json(LoginCreated {
            url: view.url,
            id: view.id,
            expires: view.expires,
        }),
    ))
}

/// `GET /login/{email}`: the user's contacts with presence; any signed-in user may look (unless
/// the user's presence rule lists who may), and
/// with a streaming `Accept` the request stays open for every change. With an upstream server,
/// an address of a domain it serves that is no account here is watched through it.
pub(crate) async fn login_list(
    State(state): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
    watch_req: Watch,
) -> Result<Response, ApiError> {
    // An account's contacts are serialized as they are; another domain's state (what its
    // upstream server said) is JSON already.
    let list = match state.location.views(&email).await {
        Ok(views) => Json(views).into_response(),
        // An address of another domain: watched through the upstream server (SUBSCRIBE).
        Err(crate::error::Error::NotFound(_))
            if watch_req.is_stream() && state.location.foreign_watchable(&email).await? =>
        {
            return watch(&state, &caller, Topic::Login(email), watch_req);
        }
        Err(crate::error::Error::NotFound(_)) => {
            Json(state.location.state(&email).await?).into_response()
        }
        Err(e) => return Err(e.into()),
    };
    // The user's presence rule (owner, signed-in users, or those listed).
    if !state.location.may_watch(&email, Some(&caller.0)).await? {
        return Err(ApiError::forbidden(format!(
            "{email}'s presence rule does not let {} watch",
            caller.0
        )));
    }
    if watch_req.is_stream() {
        return watch(&state, &caller, Topic::Login(email), watch_req);
    }
    Ok(list)
}

/// `GET /login/{email}/{id}`: the caller's own contact; streaming, what is SENT to it.
pub(crate) async fn contact_get(
    State(state): State<AppState>,
    caller: Caller,
    Path((email, id)): Path<(String, i64)>,
    watch_req: Watch,
) -> Result<Response, ApiError> {
    caller.must_be(&email, "read the logins")?;
    let record = state.location.live_contact(&email, id).await?;
    if watch_req.is_stream() {
        return watch(&state, &caller, Topic::Inbox(email, id), watch_req);
    }
    Ok(Json(contact_view(&record, now_ms())).into_response())
}

/// `PUT /login/{email}/{id}`: refresh (body: the contact as a bare JSON string, or fields).
pub(crate) async fn contact_refresh(
    State(state): State<AppState>,
    caller: Caller,
    Path((email, id)): Path<(String, i64)>,
    JsonBody(req): JsonBody<RefreshLogin>,
) -> Result<Json<LoginCreated>, ApiError> {
    caller.must_be(&email, "refresh the logins")?;
    let record = state.location.refresh(&email, id, req).await?;
    let view = contact_view(&record, now_ms());
    Ok(Json(LoginCreated {
        url: view.url,
        id: view.id,
        expires: view.expires,
    }))
}

/// `DELETE /login/{email}/{id}`: log out.
pub(crate) async fn contact_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((email, id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    caller.must_be(&email, "log out the logins")?;
    state.location.unregister(&email, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of CANCEL: the message id may be given here instead of in a body.
#[derive(Debug, Deserialize)]
pub(crate) struct CancelQuery {
    /// The message id.
    id: Option<String>,
}

/// The methods `MethodRouter` cannot name, on `/login/{email}`: SEND and CANCEL.
pub(crate) async fn login_extension(
    State(state): State<AppState>,
    Path(email): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    extension(state, email, None, req, LOGIN_METHODS).await
}

/// SEND and CANCEL on `/login/{email}/{id}`.
pub(crate) async fn contact_extension(
    State(state): State<AppState>,
    Path((email, id)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let id = id
        .parse::<i64>()
        .map_err(|_| ApiError::bad_request(format!("login id {id:?} is not a number")))?;
    extension(state, email, Some(id), req, CONTACT_METHODS).await
}

async fn extension(
    state: AppState,
    email: String,
    contact: Option<i64>,
    req: Request,
    allow: &[&str],
) -> Result<Response, ApiError> {
    let method = req.method().clone();
    if method != "SEND" && method != "CANCEL" {
        return Err(ApiError::method_not_allowed(method.as_str(), allow));
    }
    let (mut parts, body) = req.into_parts();
    let caller = <Caller as axum::extract::FromRequestParts<AppState>>::from_request_parts(
        &mut parts, &state,
    )
    .await?;
    let query: Query<CancelQuery> = Query::try_from_uri(&parts.uri)
        .map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?;
    let bytes = read_body(Request::from_parts(parts, body), &state).await?;
    if method.as_str() == "SEND" {
        let body = parse_json(&bytes)?;
        let receipt = state.inbox.send(&caller.0, &email, contact, body).await?;
        Ok((StatusCode::OK, Json(receipt)).into_response())
    } else {
        let id = match query.0.id {
            Some(id) => id,
            None => parse_json::<CancelRequest>(&bytes)?.id,
        };
        let outcome = state.inbox.cancel(&caller.0, &email, contact, &id).await?;
        Ok(Json(outcome).into_response())
    }
}
