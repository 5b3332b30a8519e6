//! `ApiError`: every failure of a request becomes a fitting status with an
//! `application/problem+json` body. Internal causes are logged, never shown.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use restsip_protocol::{Problem, ProblemKind, PROBLEM_JSON};

use crate::error::Error;

/// A request that failed.
#[derive(Debug)]
pub(crate) struct ApiError {
    /// What kind of failure (sets the status).
    kind: ProblemKind,
    /// What exactly was wrong.
    detail: String,
    /// Extra response headers (`Allow`, `WWW-Authenticate`).
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub(crate) fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            headers: Vec::new(),
        }
    }

    pub(crate) fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::BadRequest, detail)
    }

    pub(crate) fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::Forbidden, detail)
    }

    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::NotFound, detail)
    }

    /// 401 with the challenge that lets `curl -u` and browsers answer with Basic credentials.
    pub(crate) fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::Unauthorized, detail).with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"restsip\", charset=\"UTF-8\""),
        )
    }

    /// 405 naming the methods the resource answers.
    pub(crate) fn method_not_allowed(method: &str, allow: &[&str]) -> Self {
        let list = allow.join(", ");
        let value =
            HeaderValue::from_str(&list).unwrap_or_else(|_| HeaderValue::from_static("GET"));
        Self::new(
            ProblemKind::MethodNotAllowed,
            format!("{method} is not allowed here; allowed: {list}"),
        )
        .with_header(header::ALLOW, value)
    }

    /// The problem document of this error.
    pub(crate) fn problem(&self) -> Problem {
        Problem::new(self.kind, self.detail.clone())
    }

    pub(crate) fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        match err {
            Error::NotFound(d) => Self::new(ProblemKind::NotFound, d),
            Error::Forbidden(d) => Self::new(ProblemKind::Forbidden, d),
            Error::Conflict(d) => Self::new(ProblemKind::Conflict, d),
            Error::Invalid(d) => Self::new(ProblemKind::Unprocessable, d),
            Error::ForbiddenTarget(d) => Self::new(ProblemKind::ForbiddenTarget, d),
            Error::Limit(d) => Self::new(ProblemKind::TooManyRequests, d),
            Error::MailboxFull(d) => Self::new(ProblemKind::MailboxFull, d),
            Error::MediaRelay(d) => Self::new(ProblemKind::MediaRelayUnavailable, d),
            Error::Store(e) => {
                tracing::error!(error = %e, "store failure");
                Self::new(
                    ProblemKind::Unavailable,
                    "the relay's database is unavailable; try again",
                )
            }
            Error::Internal(d) => {
                tracing::error!(error = %d, "internal failure");
                Self::new(
                    ProblemKind::Internal,
                    "the relay failed to handle this request; see its log",
                )
            }
        }
    }
}

/// The problem+json response for `problem`, with extra headers.
pub(crate) fn problem_response(
    problem: &Problem,
    headers: &[(HeaderName, HeaderValue)],
) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut response = (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
        body,
    )
        .into_response();
    for (name, value) in headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        problem_response(&self.problem(), &self.headers)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        Error::from(err).into()
    }
}
