//! `/call`: create a call context; `/call/{id}`: join, watch, delete; `/call/{id}/{pid}`: one
//! participant.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use restsip_protocol::{
    CallCreated, CreateCall, JoinCall, Participant, ParticipantCreated, UpdateParticipant,
};

use super::auth::Caller;
use super::body::JsonBody;
use super::error::ApiError;
use super::stream::{watch, Watch};
use super::AppState;
use crate::bus::Topic;
use crate::calls::participant_view;

/// `POST /call`: create a call context owned by the caller.
pub(crate) async fn call_create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<CreateCall>,
) -> Result<impl IntoResponse, ApiError> {
    let call = state.calls.create(&caller.0, req).await?;
    let url = Topic::Call(call.id.clone()).resource();
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, url.clone())],
        Json(CallCreated { id: call.id, url }),
    ))
}

/// `GET /call/{id}`: subject and participants; streaming, every change of membership.
pub(crate) async fn call_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    watch_req: Watch,
) -> Result<Response, ApiError> {
    if watch_req.is_stream() {
        // A call whose state the bus keeps exists (its deletion would have dropped it): the
        // watchers arriving together do not each read it from the store to know.
        let topic = Topic::Call(id.clone());
        if state.bus.kept_state(&topic).1.is_none() {
            state.calls.view(&id).await?;
        }
        return watch(&state, &caller, topic, watch_req);
    }
    Ok(Json(state.calls.view(&id).await?).into_response())
}

/// Parses a login URL into (email, contact id).
fn parse_login(url: &str) -> Option<(String, Option<i64>)> {
    match crate::events::parse_topic(url)? {
        Topic::Login(email) => Some((email, None)),
        Topic::Inbox(email, id) => Some((email, Some(id))),
        Topic::Call(_) => None,
    }
}

/// `POST /call/{id}`: join with one of the caller's live logins.
pub(crate) async fn call_join(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<JoinCall>,
) -> Result<impl IntoResponse, ApiError> {
    let (email, contact) = parse_login(&req.url).ok_or_else(|| {
        ApiError::new(
            restsip_protocol::ProblemKind::Unprocessable,
            format!(
                "url {:?} is not a login: use /login/{{email}} or /login/{{email}}/{{id}}",
                req.url
            ),
        )
    })?;
    caller.must_be(&email, "join a call with the login")?;
    match contact {
        Some(cid) => {
            state.location.live_contact(&email, cid).await?;
        }
        None => {
            if state.location.contacts(&email).await?.is_empty() {
                return Err(ApiError::new(
                    restsip_protocol::ProblemKind::Conflict,
                    format!("{email} is not logged in: POST /login/{email} first"),
                ));
            }
        }
    }
    let p = state.calls.join(&id, &caller.0, req).await?;
    let url = participant_view(&p).url;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, url.clone())],
        Json(ParticipantCreated { id: p.id, url }),
    ))
}

/// `DELETE /call/{id}`: end the call; only its owner may.
pub(crate) async fn call_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.calls.delete(&id, &caller.0).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /call/{id}/{pid}`: one participant and its session description.
pub(crate) async fn participant_get(
    State(state): State<AppState>,
    _caller: Caller,
    Path((id, pid)): Path<(String, i64)>,
) -> Result<Json<Participant>, ApiError> {
    Ok(Json(participant_view(
        &state.calls.participant(&id, pid).await?,
    )))
}

/// `PUT /call/{id}/{pid}`: update one's own session description.
pub(crate) async fn participant_update(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, pid)): Path<(String, i64)>,
    JsonBody(req): JsonBody<UpdateParticipant>,
) -> Result<Json<Participant>, ApiError> {
    Ok(Json(participant_view(
        &state.calls.update(&id, pid, &caller.0, req).await?,
    )))
}

/// `DELETE /call/{id}/{pid}`: leave (or, for the call's owner, remove someone).
pub(crate) async fn participant_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, pid)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    state.calls.leave(&id, pid, &caller.0).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_urls() {
        assert_eq!(parse_login("/login/a@x"), Some(("a@x".into(), None)));
        assert_eq!(parse_login("/login/a@x/3"), Some(("a@x".into(), Some(3))));
        assert_eq!(parse_login("/login/A@X./3"), Some(("a@x".into(), Some(3))));
        assert_eq!(parse_login("/login/"), None);
        assert_eq!(parse_login("/login/a@x/z"), None);
        assert_eq!(parse_login("/user/a@x"), None);
    }
}
