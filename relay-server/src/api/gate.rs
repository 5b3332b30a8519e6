//! What every request of the API goes through, in one tower layer of its own: a page of a
//! foreign origin is refused ([`origins::refusal`]); an error response without a problem body
//! gets one ([`problem_bodies`]); and a change (any method but GET, HEAD, OPTIONS) is answered
//! only once the events it made have left for the other relays of a cluster, so that an
//! acknowledged change survives this relay's death right after, and what the client does next
//! at another relay comes after it there.
//!
//! One layer rather than three `axum::middleware` functions, each of which boxed the inner
//! service and a future for every request (README, "Benchmarks"): a successful read goes
//! through here without an allocation; only a change or an error response takes a boxed
//! future, for what it must await.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use restsip_protocol::{Problem, ProblemKind, PROBLEM_JSON};
use tower::{Layer, Service};

use super::{origins, AppState};
use crate::bus::Bus;

/// The layer.
#[derive(Clone)]
pub(super) struct Gate {
    /// Allowed origins and the bus.
    state: AppState,
}

impl Gate {
    pub(super) fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for Gate {
    type Service = Gated<S>;

    fn layer(&self, inner: S) -> Gated<S> {
        Gated {
            inner,
            state: self.state.clone(),
        }
    }
}

/// A service behind the gate.
#[derive(Clone)]
pub(super) struct Gated<S> {
    inner: S,
    state: AppState,
}

impl<S> Service<Request> for Gated<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Passing<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if let Some(refused) = origins::refusal(&self.state, &req) {
            return Passing::Refused {
                answer: Some(refused),
            };
        }
        let change = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        Passing::Inner {
            inner: self.inner.call(req),
            flush: change.then(|| self.state.bus.clone()),
        }
    }
}

/// What is left once the inner service answered: a problem body to make, a flush to wait.
type After = Pin<Box<dyn Future<Output = Response> + Send>>;

pin_project_lite::pin_project! {
    /// A request on its way through the gate.
    #[project = PassingProj]
    pub(super) enum Passing<F> {
        /// Refused at the gate.
        Refused { answer: Option<Response> },
        /// With the inner service; the bus to flush afterwards, for a change.
        Inner { #[pin] inner: F, flush: Option<Bus> },
        /// Answered, finishing.
        After { after: After },
    }
}

impl<F> Future for Passing<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let after = match self.as_mut().project() {
                PassingProj::Refused { answer } => {
                    return Poll::Ready(Ok(answer.take().unwrap_or_default()));
                }
                PassingProj::Inner { inner, flush } => {
                    let Ok(response) = std::task::ready!(inner.poll(cx));
                    let flush = flush.take();
                    if flush.is_none() && !needs_problem_body(&response) {
                        return Poll::Ready(Ok(response));
                    }
                    let after: After = Box::pin(async move {
                        let response = problem_bodies(response).await;
                        if let Some(bus) = flush {
                            bus.flushed().await;
                        }
                        response
                    });
                    after
                }
                PassingProj::After { after } => return after.as_mut().poll(cx).map(Ok),
            };
            self.set(Passing::After { after });
        }
    }
}

/// Whether `response` is an error without a problem body.
fn needs_problem_body(response: &Response) -> bool {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    (status.is_client_error() || status.is_server_error()) && !is_problem
}

/// Gives every error response without a problem body one, keeping its status and headers.
async fn problem_bodies(response: Response) -> Response {
    if !needs_problem_body(&response) {
        return response;
    }
    let status = response.status();
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let kind = ProblemKind::from_status(status.as_u16()).unwrap_or(if status.is_client_error() {
        ProblemKind::BadRequest
    } else {
        ProblemKind::Internal
    });
    let detail = match (kind, text.is_empty()) {
        (ProblemKind::NotFound, true) => "no such resource".to_owned(),
        (ProblemKind::MethodNotAllowed, _) => {
            "this resource does not answer that method; see the Allow header".to_owned()
        }
        (_, true) => status.canonical_reason().unwrap_or("error").to_owned(),
        (_, false) => text,
    };
    let mut problem = Problem::new(kind, detail);
    problem.status = status.as_u16();
    let mut fixed = Response::from_parts(
        parts,
        Body::from(serde_json::to_vec(&problem).unwrap_or_default()),
    );
    fixed
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    fixed.headers_mut().remove(header::CONTENT_LENGTH);
    fixed.into_response()
}
