use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /user`: sign up. Fields other than these are kept as the profile's application data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct CreateUser {
    /// The account's email address; it is also the user's id and SIP address of record.
    pub email: String,
    /// The password, checked with HTTP Basic and SIP digest authentication.
    pub password: String,
    /// A display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Any other fields of the request: application profile data.
    #[serde(flatten)]
    pub data: Map<String, Value>,
}

/// Answer to `POST /user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct UserCreated {
    /// The user id (the email address).
    pub id: String,
    /// The profile resource, `/user/{id}`.
    pub url: String,
}

/// `PUT` or `PATCH /user/{id}`: change a profile. `PUT` replaces `name` and `data` (omitted means
/// cleared); `PATCH` changes only what is given. The password changes only when given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// A new display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A new password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// New application profile data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Map<String, Value>>,
}

/// The links of a profile: where to find the user's logins and offline messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct UserLinks {
    /// `/login/{email}`: the user's contacts; GET to list or watch, SEND to reach them.
    pub login: String,
    /// `/user/{id}/message`: offline messages (voice/video mail).
    pub message: String,
}

/// `GET /user/{id}`: a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct User {
    /// The user id (the email address).
    pub id: String,
    /// The email address.
    pub email: String,
    /// This resource, `/user/{id}`.
    pub url: String,
    /// The display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Application profile data given at sign-up or update.
    #[serde(default)]
    pub data: Map<String, Value>,
    /// Related resources.
    pub links: UserLinks,
    /// Sign-up time, milliseconds since the Unix epoch.
    pub created: i64,
}

/// `POST /token`: a short-lived bearer token, for the places a browser cannot set an
/// `Authorization` header (EventSource, WebSocket): pass it as `?access_token=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct Token {
    /// The token.
    pub token: String,
    /// Seconds until it is no longer accepted.
    pub expires: u64,
}
