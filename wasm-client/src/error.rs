//! Errors as JavaScript sees them: `Error` objects named `RestsipError` with a stable `code` to
//! branch on (`unauthorized`, `forbidden`, `not-found`, `conflict`, `network`, ...), the HTTP
//! `status` (0 when there was no answer) and the relay's `detail`.

use wasm_bindgen::prelude::*;

use crate::js;

/// A failed client operation.
pub(crate) struct ClientError {
    /// Stable code.
    pub(crate) code: String,
    /// HTTP status, 0 if none.
    pub(crate) status: u16,
    /// What went wrong.
    pub(crate) message: String,
}

impl ClientError {
    pub(crate) fn new(code: &str, status: u16, message: &str) -> Self {
        Self {
            code: code.into(),
            status,
            message: message.into(),
        }
    }

    /// The relay could not be reached (offline, refused, CORS).
    pub(crate) fn network(cause: &JsValue) -> Self {
        let detail = js::get_str(cause, "message");
        Self::new(
            "network",
            0,
            &js::cat(&[
                "the relay could not be reached: ",
                detail.as_deref().unwrap_or("fetch failed"),
            ]),
        )
    }

    /// An answer polled again after it was taken (never, with `.await`).
    pub(crate) fn gone() -> Self {
        Self::new("internal", 0, "the answer was already taken")
    }

    /// The client is not logged in.
    pub(crate) fn not_logged_in() -> Self {
        Self::new("not-logged-in", 0, "log in first (client.logIn)")
    }

    /// A bad argument from the page.
    pub(crate) fn invalid(message: &str) -> Self {
        Self::new("invalid-argument", 0, message)
    }

    /// The error for an HTTP answer with a problem body (or none).
    pub(crate) fn from_problem(status: u16, problem: &JsValue) -> Self {
        let code = js::get_str(problem, "code");
        let message = js::get_str(problem, "detail")
            .unwrap_or_else(|| js::cat(&["the relay answered ", &js::digits(status.into())]));
        Self::new(
            code.as_deref().unwrap_or_else(|| fallback_code(status)),
            status,
            &message,
        )
    }
}

/// The code of a status when the relay's answer had no problem body (a proxy's error page).
fn fallback_code(status: u16) -> &'static str {
    restsip_protocol::ProblemKind::from_status(status).map_or("internal", |k| k.code())
}

impl From<ClientError> for JsValue {
    fn from(e: ClientError) -> Self {
        js::error(&e.code, e.status, &e.message)
    }
}

/// Result of a client operation.
pub(crate) type Result<T> = std::result::Result<T, ClientError>;
