//! Counts every HTTP request by method, route and status, with its latency to the response
//! head. The route is the matched template (`/login/{email}`), never the path: the labels stay
//! few whatever clients ask for; what matches no route is `fallback` (static files, 404s).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::observe::{HTTP_DURATION, HTTP_REQUESTS};

/// The middleware: runs the request, then counts it.
pub(super) async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "fallback".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route, "status" => status)
        .increment(1);
    response
}

/// The method as a label: HTTP's, SEND and CANCEL; anything else is `other`.
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "SEND" => "SEND",
        "CANCEL" => "CANCEL",
        _ => "other",
    }
}
