//! Load loops: N keep-alive connections, each repeating one [`Operation`] back to back for a
//! warm-up and then a measured window, bounded in time and in count.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::http::{Conn, RequestTemplate, REQUEST_TIMEOUT};
use crate::inbox::Arrivals;

/// The shape of one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Concurrent connections, each with one request in flight at a time.
    pub(crate) connections: usize,
    /// Unmeasured time first, to open connections, fill caches and let threads settle.
    pub(crate) warmup: Duration,
    /// The measured window.
    pub(crate) measure: Duration,
    /// Most requests measured; the run ends early when reached.
    pub(crate) max_requests: u64,
}

/// One kind of request, repeated by every connection of a run.
pub(crate) trait Operation: Send + Sync + 'static {
    /// Does one request on `conn`: its latency, or why it failed.
    fn run(&self, conn: &mut Conn) -> impl Future<Output = Result<Duration>> + Send;
}

/// A request whose latency is until its answer is read: `GET /login/{email}`.
pub(crate) struct Fetch {
    /// The request.
    pub(crate) template: RequestTemplate,
}

impl Operation for Fetch {
    async fn run(&self, conn: &mut Conn) -> Result<Duration> {
        let request = self.template.build(None)?;
        let started = Instant::now();
        conn.send(request).await?.success()?;
        Ok(started.elapsed())
    }
}

/// A request on a connection of its own, opened for it and closed by the server after the
/// answer (`Connection: close`): its latency is from the TCP connect to the whole answer. How
/// clients without keep-alive see a server (and what a connection's own costs add up to).
pub(crate) struct FetchFresh {
    /// The request.
    pub(crate) template: RequestTemplate,
    /// Where each connection goes.
    pub(crate) addr: SocketAddr,
}

impl Operation for FetchFresh {
    async fn run(&self, _keep_alive: &mut Conn) -> Result<Duration> {
        let mut request = self.template.build(None)?;
        request.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
        let started = Instant::now();
        let mut conn = Conn::open(self.addr).await?;
        conn.send(request).await?.success()?;
        Ok(started.elapsed())
    }
}

/// A request whose latency is until a WebSocket receives what it sent: `SEND` to the relay or
/// `POST` to the reference, with body `{"command":"im","text":"hello","seq":N}`.
pub(crate) struct Deliver {
    /// The request, without its body.
    pub(crate) template: RequestTemplate,
    /// The WebSocket receiving the messages.
    pub(crate) arrivals: Arc<Arrivals>,
    /// Next `seq`, unique within the run.
    pub(crate) next_seq: AtomicU64,
}

impl Deliver {
    /// A SEND-like operation with `template`, received through `arrivals`.
    pub(crate) fn new(template: RequestTemplate, arrivals: Arc<Arrivals>) -> Self {
        Self {
            template,
            arrivals,
            next_seq: AtomicU64::new(1),
        }
    }
}

impl Operation for Deliver {
    async fn run(&self, conn: &mut Conn) -> Result<Duration> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let body = json!({ "command": "im", "text": "hello", "seq": seq });
        let request = self.template.build(Some(&body))?;
        let arrived = self.arrivals.expect(seq);
        let started = Instant::now();
        if let Err(e) = conn.send(request).await.and_then(|a| a.success()) {
            self.arrivals.forget(seq);
            return Err(e);
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, arrived).await {
            Ok(Ok(at)) => Ok(at.saturating_duration_since(started)),
            Ok(Err(_)) => bail!("the WebSocket closed before message {seq} arrived"),
            Err(_) => {
                self.arrivals.forget(seq);
                bail!("message {seq} did not arrive on the WebSocket within 10 s")
            }
        }
    }
}

/// What a run measured.
#[derive(Debug, Default)]
pub(crate) struct Measured {
    /// Latencies of the successful measured requests, sorted.
    pub(crate) latencies: Vec<Duration>,
    /// Measured requests that failed.
    pub(crate) failures: u64,
    /// Why the first of them failed.
    pub(crate) first_failure: Option<String>,
    /// From the start of the measured window until the last request ended.
    pub(crate) elapsed: Duration,
}

impl Measured {
    /// Successful requests per second of the measured window.
    pub(crate) fn per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.latencies.len() as f64 / secs
        } else {
            0.0
        }
    }

    /// The `p`-quantile (0 < p ≤ 1) of the latencies, nearest rank; None without any.
    pub(crate) fn percentile(&self, p: f64) -> Option<Duration> {
        let n = self.latencies.len();
        if n == 0 {
            return None;
        }
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
        self.latencies.get(rank - 1).copied()
    }

    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.failures += other.failures;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }
}

/// What one connection measured.
#[derive(Default)]
struct Tally {
    /// Latencies of its measured requests.
    latencies: Vec<Duration>,
    /// Its failed measured requests.
    failures: u64,
    /// Why the first failed.
    first_failure: Option<String>,
}

/// When measuring starts and when requests stop being sent.
#[derive(Clone, Copy)]
struct Window {
    /// Requests started from here on are measured.
    start: Instant,
    /// No request is started from here on.
    end: Instant,
}

/// Runs `op` on `plan.connections` connections to `addr`.
pub(crate) async fn run<O: Operation>(
    addr: SocketAddr,
    op: Arc<O>,
    plan: Plan,
) -> Result<Measured> {
    let start = Instant::now() + plan.warmup;
    let window = Window {
        start,
        end: start + plan.measure,
    };
    let counted = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..plan.connections.max(1))
        .map(|_| {
            let op = op.clone();
            let counted = counted.clone();
            tokio::spawn(
                async move { connection(addr, op, window, counted, plan.max_requests).await },
            )
        })
        .collect();
    let mut measured = Measured::default();
    for worker in workers {
        measured.merge(worker.await.context("load task")??);
    }
    measured.elapsed = window.start.elapsed();
    measured.latencies.sort_unstable();
    Ok(measured)
}

/// One connection's loop: requests back to back until the window ends or the count is reached.
async fn connection<O: Operation>(
    addr: SocketAddr,
    op: Arc<O>,
    window: Window,
    counted: Arc<AtomicU64>,
    max_requests: u64,
) -> Result<Tally> {
    let mut conn = Conn::open(addr).await?;
    let mut tally = Tally::default();
    loop {
        let now = Instant::now();
        if now >= window.end {
            break;
        }
        let measure = now >= window.start;
        if measure && counted.fetch_add(1, Ordering::Relaxed) >= max_requests {
            break;
        }
        let outcome = op.run(&mut conn).await;
        if !measure {
            continue;
        }
        match outcome {
            Ok(latency) => tally.latencies.push(latency),
            Err(e) => {
                tally.failures += 1;
                tally.first_failure.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let measured = Measured {
            latencies: (1..=100).map(Duration::from_millis).collect(),
            elapsed: Duration::from_secs(2),
            ..Measured::default()
        };
        assert_eq!(measured.percentile(0.5), Some(Duration::from_millis(50)));
        assert_eq!(measured.percentile(0.99), Some(Duration::from_millis(99)));
        assert_eq!(measured.percentile(1.0), Some(Duration::from_millis(100)));
        assert_eq!(Measured::default().percentile(0.5), None);
        assert!((measured.per_second() - 50.0).abs() < 1e-9);
    }
}
