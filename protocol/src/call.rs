use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /call`: create a call (conference) context. Other fields are kept as call data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct CreateCall {
    /// What the call is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Any other fields: application call data.
    #[serde(flatten)]
    pub data: Map<String, Value>,
}

/// Answer to `POST /call`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct CallCreated {
    /// The call id.
    pub id: String,
    /// `/call/{id}`.
    pub url: String,
}

/// `POST /call/{id}`: join a call with one of your logins and a session description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct JoinCall {
    /// The login that joins: `/login/{email}` or `/login/{email}/{id}`; it must be the caller's
    /// and logged in. When it goes away the participant leaves the call.
    pub url: String,
    /// The session description: an RTSP/RTMP URL, SDP, or any JSON the application uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Value>,
    /// Any other fields: application participant data.
    #[serde(flatten)]
    pub data: Map<String, Value>,
}

/// `PUT /call/{id}/{pid}`: replace a participant's session description and data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct UpdateParticipant {
    /// The new session description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Value>,
    /// Any other fields: application participant data.
    #[serde(flatten)]
    pub data: Map<String, Value>,
}

/// Answer to `POST /call/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct ParticipantCreated {
    /// The participant id within the call.
    pub id: i64,
    /// `/call/{id}/{pid}`.
    pub url: String,
}

/// One participant of a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct Participant {
    /// The participant id within the call.
    pub id: i64,
    /// `/call/{id}/{pid}`.
    pub url: String,
    /// The login it joined with.
    pub login: String,
    /// The user (email).
    pub user: String,
    /// Its session description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Value>,
    /// Application participant data.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub data: Map<String, Value>,
}

/// `GET /call/{id}`: the call and its participants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct Call {
    /// The call id.
    pub id: String,
    /// `/call/{id}`.
    pub url: String,
    /// What the call is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Who created it (email); only they may DELETE it.
    pub owner: String,
    /// Application call data.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub data: Map<String, Value>,
    /// The participants.
    pub children: Vec<Participant>,
}
