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

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::MatchedPath;
use axum::http::{Method, Request};
use axum::response::Response;
use metrics::{Counter, Histogram};
use tower::{Layer, Service};

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

/// The layer that counts every request of the service it wraps. A tower layer of its own
/// rather than `axum::middleware::from_fn`, which boxes a future and the inner service for
/// every request.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Track;

impl<S> Layer<S> for Track {
    type Service = Tracked<S>;

    fn layer(&self, inner: S) -> Tracked<S> {
        Tracked { inner }
    }
}

/// A service whose requests are counted.
#[derive(Debug, Clone)]
pub(super) struct Tracked<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for Tracked<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Counted<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        Counted {
            started: Instant::now(),
            method: method_label(req.method()),
            route: req.extensions().get::<MatchedPath>().cloned(),
            inner: self.inner.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's response on its way, counted once it is there.
    pub(super) struct Counted<F> {
        #[pin]
        inner: F,
        started: Instant,
        method: &'static str,
        route: Option<MatchedPath>,
    }
}

impl<F, E> Future for Counted<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let outcome = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &outcome {
            let route = this.route.as_ref().map_or(FALLBACK, MatchedPath::as_str);
            count(this.method, route, response.status().as_u16(), this.started);
        }
        Poll::Ready(outcome)
    }
}

/// Counts one request of `method` on `route` answered with `status`, started at `started`.
fn count(method: &'static str, route: &str, status: u16, started: &Instant) {
    let elapsed = started.elapsed().as_secs_f64();
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
