use serde::{Deserialize, Serialize};

/// `POST /service`: send a SIP `SERVICE` request (draft-deason-sip-soap) carrying a SOAP 1.1
/// envelope to a SIP URI, and get its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(deny_unknown_fields)]
pub struct ServiceRequest {
    /// Where the SERVICE goes: a `sip:` or `sips:` URI (`sip:host[:port]`,
    /// `sip:user@host[:port]`; a host name is looked up in DNS, port 5060 by default, 5061 over
    /// TLS).
    pub uri: String,
    /// The SOAP 1.1 envelope, as XML text; it must be a well-formed SOAP request.
    pub body: String,
    /// An outbound proxy, `sip:host[:port]`: the request goes there (with `uri` as its
    /// Request-URI) instead of to the URI's host. E.g. `sip:alice@example.net` through the
    /// relay serving example.net.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// `udp`, `tcp` or `tls` [default: `tls` for a `sips:` URI, else the URI's `transport`
    /// parameter, else `udp`]; over `tls` the far end's certificate is verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// A `SOAPAction` header to add to the SIP request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soap_action: Option<String>,
    /// Digest credentials for the far end, used only if it challenges (401 or 407).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ServiceAuth>,
    /// Probe first, as the draft suggests: send OPTIONS (CSeq 1) and send the SERVICE (same
    /// Call-ID, CSeq 2) only if the answer's `Allow` lists SERVICE; otherwise the result is
    /// `not-implemented` with the OPTIONS answer's status and `allow`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub probe: bool,
}

/// Digest credentials for a SIP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(deny_unknown_fields)]
pub struct ServiceAuth {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// What the far end's answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "kebab-case")]
pub enum ServiceOutcome {
    /// A 2xx with the SOAP response in `body`.
    Response,
    /// The service failed: a SOAP Fault, in `fault` (and `body`).
    Fault,
    /// The far end does not offer this service (501) or does not know SERVICE at all (405 or
    /// 501 without SERVICE in its `allow`).
    NotImplemented,
    /// Any other final answer (a 4xx, 5xx or 6xx without a Fault, or 408 when none came).
    Failed,
}

/// A SOAP Fault, as read from the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct SoapFault {
    /// `faultcode`, e.g. `SOAP-ENV:Client` or `SOAP-ENV:Server`.
    pub code: String,
    /// `faultstring`.
    pub string: String,
    /// `faultactor`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The text of `detail`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Answer to `POST /service`: the far end's final SIP response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct ServiceResult {
    /// What it means.
    pub outcome: ServiceOutcome,
    /// The SIP status code (408 when no answer came in time).
    pub status: u16,
    /// The SIP reason phrase.
    pub reason: String,
    /// The answer's Content-Type, if it had a body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The answer's body (the SOAP envelope), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The SOAP Fault, when the body holds one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<SoapFault>,
    /// The far end's `Allow`, on a 405 or 501.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<String>,
}
