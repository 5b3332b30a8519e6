//! Counts every HTTP request by method, route and status, with its latency to the response
//! head. The route is the matched template (`/login/{email}`), never the path: the labels stay
//! few whatever clients ask for; what matches no route is `fallback` (static files, 404s).
//!
//! The recorder's handles for each method, route and status are looked up once and kept
//! ([`Handles`]): a request then costs a lookup by route in a small map instead of building
//! the labels (a copy of the route, the status as text) and hashing them in the recorder twice.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram};

use crate::observe::{HTTP_DURATION, HTTP_REQUESTS};

/// What matches no route.
const FALLBACK: &str = "fallback";

/// The handles of one method on one route.
#[derive(Default)]
struct Handles {
    /// Its latency histogram, once made.
    duration: Option<Histogram>,
    /// Its counters, by status.
    requests: Vec<(u16, Counter)>,
}

/// Per route, per method: the handles made so far. Routes and methods are few (the router's
/// templates, [`method_label`]'s names), so this stays small.
type Routes = HashMap<String, Vec<(&'static str, Handles)>>;

fn routes() -> std::sync::MutexGuard<'static, Routes> {
    static ROUTES: OnceLock<Mutex<Routes>> = OnceLock::new();
    ROUTES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` on the handles of `method` on `route`, made if new.
fn with_handles<T>(method: &'static str, route: &str, f: impl FnOnce(&mut Handles) -> T) -> T {
    let mut routes = routes();
    if !routes.contains_key(route) {
        routes.insert(route.to_owned(), Vec::new());
    }
    let Some(methods) = routes.get_mut(route) else {
        return f(&mut Handles::default());
    };
    let at = match methods.iter().position(|(m, _)| *m == method) {
        Some(at) => at,
        None => {
            methods.push((method, Handles::default()));
            methods.len() - 1
        }
    };
    f(&mut methods[at].1)
}

/// The middleware: runs the request, then counts it.
pub(super) async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = next.run(req).await;
    let elapsed = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    let route = route.as_ref().map_or(FALLBACK, MatchedPath::as_str);
    let (duration, requests) = with_handles(method, route, |h| {
        let duration = h
            .duration
            .get_or_insert_with(|| {
                metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route.to_owned())
            })
            .clone();
        let requests = match h.requests.iter().find(|(s, _)| *s == status) {
            Some((_, counter)) => counter.clone(),
            None => {
                let counter = metrics::counter!(HTTP_REQUESTS, "method" => method,
                    "route" => route.to_owned(), "status" => status.to_string());
                h.requests.push((status, counter.clone()));
                counter
            }
        };
        (duration, requests)
    });
    duration.record(elapsed);
    requests.increment(1);
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
