use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /user/{id}/message`: leave an offline message (voice/video mail): a media URL, a small
/// body, or both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(deny_unknown_fields)]
pub struct NewMailMessage {
    /// Where the recording is, e.g. `rtsp://...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A small inline body (text or any JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// A subject line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// An offline message as its owner reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct MailMessage {
    /// The message id.
    pub id: i64,
    /// `/user/{id}/message/{mid}`: DELETE it there.
    pub link: String,
    /// Who left it (email), from the credential.
    pub from: String,
    /// The media URL, if any (the article's `{"url": "rtsp://..."}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The inline body, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// The subject, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// When it was left, milliseconds since the Unix epoch.
    pub created: i64,
}
