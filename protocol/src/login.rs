use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /login/{email}`: register a contact (the REST form of a SIP REGISTER).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(deny_unknown_fields)]
pub struct CreateLogin {
    /// Where the user can be reached, e.g. `sip:kundan@192.1.2.3:5062`; a web client may leave it
    /// out and is reached through its stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// Requested lifetime in seconds; the relay clamps it to its limits and answers the real one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u32>,
    /// Presence published with the registration (any JSON, e.g. `{"status": "away"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<Value>,
}

/// `PUT /login/{email}/{id}`: refresh a contact. The article's bare JSON string (the contact) is
/// accepted as well as the object form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(untagged)]
pub enum RefreshLogin {
    /// `"sip:kundan@192.1.2.3:5062"`: refresh, keeping or replacing the contact address.
    Contact(String),
    /// The same fields as a new login; omitted fields keep their value.
    Fields(CreateLogin),
}

/// Answer to `POST /login/{email}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct LoginCreated {
    /// The new contact's resource, `/login/{email}/{id}`: PUT to refresh, DELETE to log out,
    /// GET to receive what is SENT to it.
    pub url: String,
    /// The contact id within the user's logins.
    pub id: i64,
    /// Seconds until it expires unless refreshed.
    pub expires: u32,
}

/// Where a contact came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "lowercase")]
pub enum ContactSource {
    /// A login made through the REST API.
    Web,
    /// A SIP REGISTER.
    Sip,
}

/// One contact location of a logged-in user, as `GET /login/{email}` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct Contact {
    /// The contact id.
    pub id: i64,
    /// `/login/{email}/{id}`.
    pub url: String,
    /// The contact address, if one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// Seconds left until it expires.
    pub expires: u32,
    /// Presence published with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<Value>,
    /// REST login or SIP registration.
    pub source: ContactSource,
}
