//! `/healthz` and `/readyz`, each a few lines of JSON. Health is the process serving HTTP;
//! readiness is every backend the relay needs answering now: the store takes a write, the SIP
//! sockets are bound, rtpengine answers a ping, the SIP upstream server an OPTIONS and the SOAP
//! services an HTTP request (each when configured; see [`super::backends`]). Not ready is 503
//! naming the failing checks.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::{Observer, CHECK_TIMEOUT};

/// `GET /healthz`: the process is up and serves requests.
pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// `GET /readyz`: 200 when every check passes, else 503 with what fails.
pub(super) async fn readyz(State(observer): State<Observer>) -> Response {
    let store = async {
        match tokio::time::timeout(CHECK_TIMEOUT, observer.store.writable()).await {
            Ok(Ok(())) => Ok("writable".to_owned()),
            Ok(Err(e)) => Err(format!("not writable: {e}")),
            Err(_) => Err(format!("no write lock within {CHECK_TIMEOUT:?}")),
        }
    };
    let rtpengine = async {
        if !observer.media.enabled() {
            return None;
        }
        Some(
            match tokio::time::timeout(CHECK_TIMEOUT, observer.media.ready()).await {
                Ok(Ok(())) => Ok("answering".to_owned()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer to a ping within {CHECK_TIMEOUT:?}")),
            },
        )
    };
    let (store, rtpengine, [upstream, soap]) =
        tokio::join!(store, rtpengine, observer.backends.check());
    // The SIP sockets are bound before the relay serves, and the relay stops if one stops
    // receiving: while it answers, they are there.
    let sip = observer.sip.map(|addr| Ok(format!("bound on {addr}")));
    let checks = [
        ("store", Some(store)),
        ("sip", sip),
        ("rtpengine", rtpengine),
        upstream,
        soap,
    ];
    let (body, ready) = report(&checks);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// The JSON of `checks` (None: not configured) and whether all passed.
fn report(checks: &[(&str, Option<Result<String, String>>)]) -> (Value, bool) {
    let mut listed = Map::new();
    let mut failing = Vec::new();
    for (name, outcome) in checks {
        let entry = match outcome {
            None => json!({ "status": "off" }),
            Some(Ok(detail)) => json!({ "status": "ok", "detail": detail }),
            Some(Err(detail)) => {
                failing.push(Value::from(*name));
                json!({ "status": "failing", "detail": detail })
            }
        };
        listed.insert((*name).to_owned(), entry);
    }
    let ready = failing.is_empty();
    let mut body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": listed,
    });
    if !ready {
        body["failing"] = Value::Array(failing);
    }
    (body, ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_check_is_named_and_unconfigured_ones_are_off() {
        let (body, ready) = report(&[
            ("store", Some(Ok("writable".into()))),
            ("sip", None),
            ("rtpengine", Some(Err("no answer".into()))),
        ]);
        assert!(!ready);
        assert_eq!(body["status"], "not ready");
        assert_eq!(body["failing"], json!(["rtpengine"]));
        assert_eq!(body["checks"]["sip"]["status"], "off");
        assert_eq!(body["checks"]["rtpengine"]["detail"], "no answer");
        let (body, ready) = report(&[("store", Some(Ok("writable".into())))]);
        assert!(ready);
        assert_eq!(body["status"], "ready");
        assert!(body.get("failing").is_none());
    }
}
