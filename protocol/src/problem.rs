use serde::{Deserialize, Serialize};

/// The stable error codes of the API: the last segment of a problem's `type`, and the `code` the
/// wasm client gives its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// 400: the request is malformed (bad JSON, bad field, bad path).
    BadRequest,
    /// 401: no or wrong credentials.
    Unauthorized,
    /// 403: the credential may not do this (someone else's resource).
    Forbidden,
    /// 404: no such resource.
    NotFound,
    /// 405: the resource does not answer this method (see `Allow`).
    MethodNotAllowed,
    /// 409: conflicts with the current state (email taken, message already delivered, user offline).
    Conflict,
    /// 413: the body is larger than the relay accepts.
    PayloadTooLarge,
    /// 415: the body is not JSON.
    UnsupportedMediaType,
    /// 422: well-formed JSON with a wrong value.
    Unprocessable,
    /// 422: a webhook or `POST /service` target the relay may not reach (a loopback, private,
    /// link-local or otherwise special-purpose address, one of the relay's own, or a URL
    /// with credentials), unless the relay runs with `--allow-private-targets`.
    ForbiddenTarget,
    /// 429: a limit was reached (streams per user, ...).
    TooManyRequests,
    /// 507: the user's mailbox is full (messages, bytes or messages from one sender).
    MailboxFull,
    /// 500: the relay failed; details are in its log.
    Internal,
    /// 503: the relay is shutting down or its store is unavailable.
    Unavailable,
    /// 503: a call between a browser and a SIP phone needs the media relay (rtpengine), and
    /// none is configured or it does not answer.
    MediaRelayUnavailable,
}

impl ProblemKind {
    /// The HTTP status of this kind of problem.
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::Unprocessable | Self::ForbiddenTarget => 422,
            Self::TooManyRequests => 429,
            Self::MailboxFull => 507,
            Self::Internal => 500,
            Self::Unavailable | Self::MediaRelayUnavailable => 503,
        }
    }

    /// The kebab-case code, e.g. `not-found`.
    pub fn code(self) -> &'static str {
        match self {
            Self::BadRequest => "bad-request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload-too-large",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::Unprocessable => "unprocessable",
            Self::ForbiddenTarget => "forbidden-target",
            Self::TooManyRequests => "too-many-requests",
            Self::MailboxFull => "mailbox-full",
            Self::Internal => "internal",
            Self::Unavailable => "unavailable",
            Self::MediaRelayUnavailable => "media-relay-unavailable",
        }
    }

    /// The kind for an HTTP status, if it is one the API uses.
    pub fn from_status(status: u16) -> Option<Self> {
        [
            Self::BadRequest,
            Self::Unauthorized,
            Self::Forbidden,
            Self::NotFound,
            Self::MethodNotAllowed,
            Self::Conflict,
            Self::PayloadTooLarge,
            Self::UnsupportedMediaType,
            Self::Unprocessable,
            Self::TooManyRequests,
            Self::MailboxFull,
            Self::Internal,
            Self::Unavailable,
        ]
        .into_iter()
        .find(|k| k.status() == status)
    }
}

/// An RFC 9457 problem document: the body of every error response
/// (`Content-Type: application/problem+json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct Problem {
    /// `urn:restsip:problem:{code}`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What exactly was wrong with this request.
    pub detail: String,
    /// The stable code (the last segment of `type`).
    pub code: ProblemKind,
}

impl Problem {
    /// A problem of `kind` with `detail`.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        let title = match kind {
            ProblemKind::BadRequest => "Bad request",
            ProblemKind::Unauthorized => "Unauthorized",
            ProblemKind::Forbidden => "Forbidden",
            ProblemKind::NotFound => "Not found",
            ProblemKind::MethodNotAllowed => "Method not allowed",
            ProblemKind::Conflict => "Conflict",
            ProblemKind::PayloadTooLarge => "Payload too large",
            ProblemKind::UnsupportedMediaType => "Unsupported media type",
            ProblemKind::Unprocessable => "Unprocessable content",
            ProblemKind::ForbiddenTarget => "Forbidden target",
            ProblemKind::TooManyRequests => "Too many requests",
            ProblemKind::MailboxFull => "Mailbox full",
            ProblemKind::Internal => "Internal error",
            ProblemKind::Unavailable => "Service unavailable",
            ProblemKind::MediaRelayUnavailable => "Media relay unavailable",
        };
        Self {
            kind: format!("urn:restsip:problem:{}", kind.code()),
            title: title.to_owned(),
            status: kind.status(),
            detail: detail.into(),
            code: kind,
        }
    }
}
