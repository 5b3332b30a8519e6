//! `/webhook`: subscribe a URL to an active resource (its events arrive by signed HTTP POST),
//! list your webhooks; `/webhook/{id}`: one of them, or delete it. Only the owner sees or deletes
//! a webhook; creating one follows the rules of watching the resource.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use restsip_protocol::{CreateWebhook, Webhook, WebhookCreated};

use super::auth::Caller;
use super::body::JsonBody;
use super::error::ApiError;
use super::AppState;
use crate::webhooks::webhook_view;

/// `POST /webhook`: create a webhook; the answer holds its signing secret, shown only here.
pub(crate) async fn webhook_create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<CreateWebhook>,
) -> Result<impl IntoResponse, ApiError> {
    let hook = state.webhooks.create(&caller.0, req).await?;
    let url = webhook_view(&hook).url;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, url.clone())],
        Json(WebhookCreated {
            id: hook.id,
            url,
            secret: hook.secret,
        }),
    ))
}

/// `GET /webhook`: the caller's webhooks, oldest first.
pub(crate) async fn webhook_list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Webhook>>, ApiError> {
    let hooks = state.webhooks.list(&caller.0).await?;
    Ok(Json(hooks.iter().map(webhook_view).collect()))
}

/// `GET /webhook/{id}`: one of the caller's webhooks.
pub(crate) async fn webhook_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Webhook>, ApiError> {
    let hook = state.webhooks.get(&caller.0, &id).await?;
    Ok(Json(webhook_view(&hook)))
}

/// `DELETE /webhook/{id}`: stop and remove one of the caller's webhooks.
pub(crate) async fn webhook_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.webhooks.delete(&caller.0, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
