//! `/user/{email}/presence-rule`: who may watch the user's presence (owner only; see
//! [`crate::location::PresenceRule`]).

use axum::extract::{Path, State};
use axum::Json;

use super::auth::Caller;
use super::body::JsonBody;
use super::error::ApiError;
use super::AppState;
use crate::location::PresenceRule;

/// `GET /user/{email}/presence-rule`: your presence rule.
pub(crate) async fn rule_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
) -> Result<Json<PresenceRule>, ApiError> {
    caller.must_be(&email, "read the presence rule")?;
    Ok(Json(state.location.presence_rule(&email).await?))
}

/// `PUT /user/{email}/presence-rule`: replace your presence rule.
pub(crate) async fn rule_put(
    State(state): State<AppState>,
    caller: Caller,
    Path(email): Path<String>,
    JsonBody(rule): JsonBody<PresenceRule>,
) -> Result<Json<PresenceRule>, ApiError> {
    caller.must_be(&email, "change the presence rule")?;
    Ok(Json(state.location.set_presence_rule(&email, rule).await?))
}
