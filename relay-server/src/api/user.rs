//! `/user`: sign up, profiles, and `/user/{id}/message`: offline messages.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use restsip_protocol::{
    CreateUser, MailMessage, NewMailMessage, UpdateUser, User, UserCreated, UserLinks,
};

use super::auth::Caller;
use super::body::JsonBody;
use super::error::ApiError;
use super::AppState;
use crate::auth::Auth;
use crate::clock::now_ms;
use crate::store::{MailRecord, StoreError, UserRecord};

/// Longest password accepted (argon2 takes any length; this bounds the work).
const MAX_PASSWORD: usize = 1024;

fn user_url(email: &str) -> String {
    format!("/user/{email}")
}

fn user_view(u: UserRecord) -> User {
    User {
        id: u.email.clone(),
        url: user_url(&u.email),
        links: UserLinks {
            login: format!("/login/{}", u.email),
            message: format!("{}/message", user_url(&u.email)),
        },
        email: u.email,
        name: u.name,
        data: u.data,
        created: u.created,
    }
}

/// An address that may name a new account (see `restsip_protocol::address`).
fn check_email(email: &str) -> Result<(), ApiError> {
    restsip_protocol::check_email(email).map_err(|why| {
        ApiError::new(
            restsip_protocol::ProblemKind::Unprocessable,
            format!("email {email:?}: {why}"),
        )
    })
}

fn check_password(password: &str) -> Result<(), ApiError> {
    if password.is_empty() || password.len() > MAX_PASSWORD {
        return Err(ApiError::new(
            restsip_protocol::ProblemKind::Unprocessable,
            format!("password must be 1 to {MAX_PASSWORD} bytes"),
        ));
    }
    Ok(())
}

/// `POST /user`: sign up.
pub(crate) async fn user_create(
    State(state): State<AppState>,
    JsonBody(mut req): JsonBody<CreateUser>,
) -> Result<impl IntoResponse, ApiError> {
    // One address, one account: `B@EXAMPLE.NET` signs up (and later logs in) as b@example.net.
    req.email = restsip_protocol::normalize_email(&req.email);
    check_email(&req.email)?;
    check_password(&req.password)?;
    let record = UserRecord {
        email: req.email.clone(),
        password_hash: Auth::hash_password(&req.password).await?,
        name: req.name,
        data: req.data,
        created: now_ms(),
    };
    match state.store.create_user(&record).await {
        Ok(()) => {
            let digest = state.auth.digest_record(&record.email, &req.password);
            state.store.set_digest(&record.email, &digest).await?;
        }
        Err(StoreError::Conflict) => {
            return Err(ApiError::new(
                restsip_protocol::ProblemKind::Conflict,
                format!("{} is already signed up", req.email),
            ))
        }
        Err(e) => return Err(crate::error::Error::from(e).into()),
    }
    let url = user_url(&record.email);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, url.clone())],
        Json(UserCreated {
            id: record.email,
            url,
        }),
    ))
}

async fn load_user(state: &AppState, id: &str) -> Result<UserRecord, ApiError> {
    state
        .store
        .user(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user {id}")))
}

/// `GET /user/{id}`: a profile, readable by any signed-in user.
pub(crate) async fn user_get(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(user_view(load_user(&state, &id).await?)))
}

async fn user_update(
    state: AppState,
    caller: Caller,
    id: String,
    req: UpdateUser,
    replace: bool,
) -> Result<Json<User>, ApiError> {
    caller.must_be(&id, "change the profile")?;
    let mut record = load_user(&state, &id).await?;
    if replace {
        record.name = req.name;
        record.data = req.data.unwrap_or_default();
    } else {
        if req.name.is_some() {
            record.name = req.name;
        }
        if let Some(data) = req.data {
            record.data.extend(data);
        }
    }
    let new_password = req.password;
    if let Some(password) = &new_password {
        check_password(password)?;
        record.password_hash = Auth::hash_password(password).await?;
    }
    if !state.store.update_user(&record).await? {
        return Err(ApiError::not_found(format!("no user {id}")));
    }
    if let Some(password) = &new_password {
        let digest = state.auth.digest_record(&id, password);
        state.store.set_digest(&id, &digest).await?;
    }
    state.auth.forget(&id);
    Ok(Json(user_view(record)))
}

/// `PUT /user/{id}`: replace the profile (name and data; the password if given).
pub(crate) async fn user_replace(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<UpdateUser>,
) -> Result<Json<User>, ApiError> {
    user_update(state, caller, id, req, true).await
}

/// `PATCH /user/{id}`: change the given fields; `data` is merged.
pub(crate) async fn user_patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<UpdateUser>,
) -> Result<Json<User>, ApiError> {
    user_update(state, caller, id, req, false).await
}

/// `DELETE /user/{id}`: close the account, with its logins, mail and queued messages.
pub(crate) async fn user_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.must_be(&id, "delete the account")?;
    let contacts = state.store.contacts(&id, 0).await?;
    for c in contacts {
        // Announce each logout so watchers and calls see the user go.
        let _ = state.location.unregister(&id, c.id).await;
    }
    if !state.store.delete_user(&id).await? {
        return Err(ApiError::not_found(format!("no user {id}")));
    }
    state.auth.forget(&id);
    state.location.forget_user(&id);
    // The store deleted the user's webhooks with the account; stop their tasks.
    state.webhooks.forget_owner(&id);
    Ok(StatusCode::NO_CONTENT)
}

fn mail_view(m: MailRecord) -> MailMessage {
    MailMessage {
        link: format!("/user/{}/message/{}", m.owner, m.id),
        id: m.id,
        from: m.sender,
        url: m.url,
        body: m.body,
        subject: m.subject,
        created: m.created,
    }
}

/// `POST /user/{id}/message`: leave an offline message; any signed-in user may.
pub(crate) async fn message_create(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<NewMailMessage>,
) -> Result<impl IntoResponse, ApiError> {
    if req.url.is_none() && req.body.is_none() {
        return Err(ApiError::new(
            restsip_protocol::ProblemKind::Unprocessable,
            "an offline message needs a media \"url\" or a \"body\"",
        ));
    }
    load_user(&state, &id).await?;
    let record = MailRecord {
        id: 0,
        owner: id,
        sender: caller.0,
        url: req.url,
        body: req.body,
        subject: req.subject,
        created: now_ms(),
    };
    let stored = crate::mailbox::leave(state.store.as_ref(), &state.limits, &record).await?;
    let view = mail_view(stored);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, view.link.clone())],
        Json(view),
    ))
}

/// `GET /user/{id}/message`: the owner's offline messages.
pub(crate) async fn message_list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<MailMessage>>, ApiError> {
    caller.must_be(&id, "read the messages")?;
    load_user(&state, &id).await?;
    let mail = state.store.mail(&id).await?;
    Ok(Json(mail.into_iter().map(mail_view).collect()))
}

/// `GET /user/{id}/message/{mid}`: one of the owner's messages.
pub(crate) async fn message_get(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, mid)): Path<(String, i64)>,
) -> Result<Json<MailMessage>, ApiError> {
    caller.must_be(&id, "read the messages")?;
    let mail = state.store.mail(&id).await?;
    mail.into_iter()
        .find(|m| m.id == mid)
        .map(|m| Json(mail_view(m)))
        .ok_or_else(|| ApiError::not_found(format!("no message /user/{id}/message/{mid}")))
}

/// `DELETE /user/{id}/message/{mid}`: the owner deletes a message.
pub(crate) async fn message_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, mid)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    caller.must_be(&id, "delete the messages")?;
    if state.store.delete_mail(&id, mid).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "no message /user/{id}/message/{mid}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_that_cannot_be_a_path_segment_are_refused() {
        assert!(check_email("kundan@example.net").is_ok());
        for bad in [
            "", "nobody", "@x", "a@", "a b@x", "a/b@x", "a@b@c", "a%40@x",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }
}
