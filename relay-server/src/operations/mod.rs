//! What operators and their tools ask the relay: `/metrics` in the Prometheus text format (the
//! `metrics` facade, rendered by `metrics-exporter-prometheus`'s recorder; served here, by
//! axum), `/healthz` (the process serves) and `/readyz` (its backends answer), and the layer
//! that counts HTTP requests by route. `/metrics` goes on its own listener with `--metrics
//! ADDR`; without it, on the HTTP listener to loopback clients only.

mod backends;
mod health;
mod http;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use restsip_protocol::{Problem, ProblemKind, PROBLEM_JSON};
use tokio::task::JoinHandle;

use crate::config::OperationsConfig;
use crate::observe;
use crate::sipapp::media::Media;
use crate::store::Store;

/// Longest a scrape waits for the store's counts, or a readiness check for its backend.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Histogram buckets (seconds) of HTTP latency and store commits: 100 µs to 10 s.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0,
];

/// What `/metrics`, `/healthz` and `/readyz` read; cheap to clone.
#[derive(Clone)]
pub(crate) struct Observer {
    /// Renders the recorded metrics.
    handle: PrometheusHandle,
    /// The store (readiness, counts sampled when scraped).
    store: Arc<dyn Store>,
    /// rtpengine, when configured.
    media: Media,
    /// The SIP address, unless SIP is off.
    sip: Option<SocketAddr>,
    /// The other configured backends (upstream SIP server, SOAP services).
    backends: backends::Backends,
}

/// The operations side of a relay, bound, ready to serve.
pub struct Operations {
    /// What the endpoints read.
    observer: Observer,
    /// `/metrics`'s own listener (`--metrics`).
    listener: Option<tokio::net::TcpListener>,
}

/// The process's recorder, installed on first use (one per process: the `metrics` facade
/// has one global recorder). The relay calls this before anything is counted
/// ([`crate::observe`] keeps some handles after their first lookup).
pub(crate) fn recorder() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)?
        .install_recorder()?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

impl Operations {
    /// Installs the recorder and binds `--metrics`'s listener, if given.
    pub(crate) async fn prepare(
        config: &OperationsConfig,
        store: Arc<dyn Store>,
        media: Media,
        sip: Option<SocketAddr>,
    ) -> anyhow::Result<Self> {
        let handle = recorder()?;
        let listener = match config.metrics {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("metrics: cannot listen on {addr}: {e}"))?,
            ),
            None => None,
        };
        Ok(Self {
            observer: Observer {
                handle,
                store,
                media,
                sip,
                backends: backends::Backends::default(),
            },
            listener,
        })
    }

    /// `/readyz` checks `upstream` (the SIP upstream server, when configured) and the SOAP
    /// services at `soap` (their URLs) too.
    pub(crate) fn with_backends(
        mut self,
        upstream: Option<Arc<crate::sipapp::upstream::UpstreamSender>>,
        soap: Vec<String>,
    ) -> Self {
        self.observer.backends = backends::Backends::new(upstream, soap);
        self
    }

    /// The address `/metrics` has a listener of its own on (`--metrics`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// `api` with `/healthz`, `/readyz` (and `/metrics` for loopback clients, without a
    /// listener of its own) and HTTP requests counted; the task serving `--metrics`, if any.
    pub(crate) fn serve(self, api: Router) -> (Router, Option<JoinHandle<()>>) {
        let mut routes = Router::new()
            .route("/healthz", get(health::healthz))
            .route("/readyz", get(health::readyz));
        let task = match self.listener {
            Some(listener) => {
                let own = routes
                    .clone()
                    .route("/metrics", get(render_metrics))
                    .with_state(self.observer.clone());
                Some(tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, own).await {
                        tracing::error!(error = %e, "the metrics listener stopped");
                    }
                }))
            }
            None => {
                routes = routes.route("/metrics", get(loopback_metrics));
                None
            }
        };
        let router = api
            .merge(routes.with_state(self.observer))
            .layer(http::Track);
        (router, task)
    }
}

/// `GET /metrics` on the main listener: for loopback peers only.
async fn loopback_metrics(
    State(observer): State<Observer>,
    request: axum::http::request::Parts,
) -> Response {
    let peer = request.extensions.get::<ConnectInfo<SocketAddr>>();
    if !peer.is_some_and(|ConnectInfo(addr)| is_loopback(*addr)) {
        let problem = Problem::new(
            ProblemKind::Forbidden,
            "/metrics is served to loopback clients only; start the relay with --metrics ADDR \
             to serve it elsewhere",
        );
        return problem_response(StatusCode::FORBIDDEN, &problem);
    }
    render_metrics(State(observer)).await
}

/// Whether `addr` is this host's own (127.0.0.0/8, ::1, or 127.x mapped into IPv6).
pub(crate) fn is_loopback(addr: SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

/// `GET /metrics`: every metric in the Prometheus text format, the store's counts sampled now.
async fn render_metrics(State(observer): State<Observer>) -> Response {
    let now = crate::clock::now_ms();
    match tokio::time::timeout(CHECK_TIMEOUT, observer.store.gauges(now)).await {
        Ok(Ok(gauges)) => {
            for source in ["web", "sip"] {
                let n = gauges.logins.get(source).copied().unwrap_or(0);
                metrics::gauge!(observe::LOGINS_ACTIVE, "source" => source).set(n as f64);
            }
            metrics::gauge!(observe::CALLS_ACTIVE).set(gauges.calls as f64);
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics: the store's counts failed"),
        Err(_) => tracing::warn!("metrics: the store's counts timed out"),
    }
    observer.handle.run_upkeep();
    let mut response = observer.handle.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// A problem+json response.
fn problem_response(status: StatusCode, problem: &Problem) -> Response {
    let mut response = (status, serde_json::to_vec(problem).unwrap_or_default()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_peers_are_loopback() {
        let addr = |s: &str| s.parse::<SocketAddr>().expect("an address");
        assert!(is_loopback(addr("127.0.0.1:5000")));
        assert!(is_loopback(addr("127.0.0.2:5000")));
        assert!(is_loopback(addr("[::1]:5000")));
        assert!(is_loopback(addr("[::ffff:127.0.0.1]:5000")));
        assert!(!is_loopback(addr("192.0.2.7:5000")));
        assert!(!is_loopback(addr("[::ffff:192.0.2.7]:5000")));
        assert!(!is_loopback(addr("[2001:db8::1]:5000")));
        assert!(!is_loopback(addr("0.0.0.0:5000")));
    }
}
