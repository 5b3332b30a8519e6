//! Errors as JavaScript sees them: `Error` objects named `RestsipError` with a stable `code` to
//! branch on (`unauthorized`, `forbidden`, `not-found`, `conflict`, `network`, ...), the HTTP
//! `status` (0 when there was no answer) and the relay's `detail`. An error is made as that JS
//! object at once and travels as a `JsValue`: nothing needs converting (or dropping) on its way
//! to the page.

use wasm_bindgen::prelude::*;

use crate::js;

/// The makers of the client's errors.
pub(crate) struct ClientError;

impl ClientError {
    /// A `RestsipError`.
    pub(crate) fn coded(code: &str, status: u16, message: &str) -> JsValue {
        js::error(code, status, message)
    }

    /// The relay could not be reached (offline, refused, CORS).
    pub(crate) fn network(cause: &JsValue) -> JsValue {
        let detail = js::get_str(cause, "message");
        Self::coded(
            "network",
            0,
            &js::cat(&[
                "the relay could not be reached: ",
                detail.as_deref().unwrap_or("fetch failed"),
            ]),
        )
    }

    /// The client is not logged in.
    pub(crate) fn not_logged_in() -> JsValue {
        Self::coded("not-logged-in", 0, "log in first (client.logIn)")
    }

    /// A bad argument from the page.
    pub(crate) fn invalid(message: &str) -> JsValue {
        Self::coded("invalid-argument", 0, message)
    }

    /// The error for an HTTP answer with a problem body (or none).
    pub(crate) fn from_problem(status: u16, problem: &JsValue) -> JsValue {
        let code = js::get_str(problem, "code");
        let message = js::get_str(problem, "detail")
            .unwrap_or_else(|| js::cat(&["the relay answered ", &js::digits(status.into())]));
        Self::coded(
            code.as_deref().unwrap_or_else(|| fallback_code(status)),
            status,
            &message,
        )
    }

    /// The HTTP status of an error (0 when there was no answer).
    pub(crate) fn status(error: &JsValue) -> f64 {
        js::get_f64(error, "status").unwrap_or(0.0)
    }
}

/// The code of a status when the relay's answer had no problem body (a proxy's error page).
fn fallback_code(status: u16) -> &'static str {
    restsip_protocol::ProblemKind::from_status(status).map_or("internal", |k| k.code())
}

/// Result of a client operation: the error is the `RestsipError` itself.
pub(crate) type Result<T> = std::result::Result<T, JsValue>;
