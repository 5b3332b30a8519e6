//! The configured backends `/readyz` checks besides the store, SIP and rtpengine: the SIP
//! upstream server (`--sip-upstream`, an OPTIONS answered) and the SOAP services
//! (`--soap-service`, an HTTP answer to a HEAD). Each outcome is kept for [`FRESH`], and probes
//! of one backend never overlap, so a load balancer probing often does not flood them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::CHECK_TIMEOUT;
use crate::sipapp::upstream::UpstreamSender;

/// How long a probe's outcome answers `/readyz` before the backend is probed again.
const FRESH: Duration = Duration::from_secs(1);

/// A check's outcome: what answered, or why not.
pub(super) type Outcome = Result<String, String>;

/// What is probed.
enum Probe {
    /// The upstream SIP server.
    Upstream(Arc<UpstreamSender>),
    /// The SOAP services' URLs.
    Soap {
        client: reqwest::Client,
        urls: Vec<String>,
    },
}

/// A probe and its last outcome.
struct Cached {
    probe: Probe,
    /// When the last probe ended, and its outcome; locked while a probe runs.
    last: Mutex<Option<(Instant, Outcome)>>,
}

impl Cached {
    fn new(probe: Probe) -> Self {
        Self {
            probe,
            last: Mutex::new(None),
        }
    }

    /// The outcome of a probe ended less than [`FRESH`] ago, else of a new one (waited for by
    /// every caller at once).
    async fn outcome(&self) -> Outcome {
        let mut last = self.last.lock().await;
        if let Some((at, outcome)) = last.as_ref() {
            if at.elapsed() < FRESH {
                return outcome.clone();
            }
        }
        let outcome = match tokio::time::timeout(CHECK_TIMEOUT, self.probe.run()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
        };
        *last = Some((Instant::now(), outcome.clone()));
        outcome
    }
}

impl Probe {
    async fn run(&self) -> Outcome {
        match self {
            Probe::Upstream(sender) => sender.ping().await,
            Probe::Soap { client, urls } => {
                let checks = urls.iter().map(|url| async move {
                    match client.head(url).send().await {
                        Ok(response) => Ok(response.status()),
                        Err(e) => Err(format!("{url}: {}", reason(&e))),
                    }
                });
                let failures: Vec<String> = futures_util::future::join_all(checks)
                    .await
                    .into_iter()
                    .filter_map(Result::err)
                    .collect();
                if failures.is_empty() {
                    Ok(format!("{} answering HTTP", urls.len()))
                } else {
                    Err(failures.join("; "))
                }
            }
        }
    }
}

/// Why an HTTP probe failed, in a few words.
fn reason(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "no answer in time"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "no HTTP answer"
    }
}

/// The configured backends; cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Backends {
    upstream: Option<Arc<Cached>>,
    soap: Option<Arc<Cached>>,
}

impl Backends {
    /// The checks of `upstream` (when SIP and `--sip-upstream` are on) and of the SOAP
    /// services at `soap` (their URLs; none: off).
    pub(crate) fn new(upstream: Option<Arc<UpstreamSender>>, soap: Vec<String>) -> Self {
        let soap = (!soap.is_empty()).then(|| {
            let client = reqwest::Client::builder()
                .timeout(CHECK_TIMEOUT)
                .connect_timeout(CHECK_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default();
            Arc::new(Cached::new(Probe::Soap { client, urls: soap }))
        });
        Self {
            upstream: upstream.map(|u| Arc::new(Cached::new(Probe::Upstream(u)))),
            soap,
        }
    }

    /// Each backend's name and outcome (None: not configured), probed at once.
    pub(super) async fn check(&self) -> [(&'static str, Option<Outcome>); 2] {
        let check = |cached: &Option<Arc<Cached>>| {
            let cached = cached.clone();
            async move {
                match cached {
                    Some(c) => Some(c.outcome().await),
                    None => None,
                }
            }
        };
        let (upstream, soap) = tokio::join!(check(&self.upstream), check(&self.soap));
        [("upstream", upstream), ("soap", soap)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unconfigured_backends_are_off_and_a_closed_port_fails() {
        let none = Backends::new(None, Vec::new());
        let checks = none.check().await;
        assert!(checks.iter().all(|(_, outcome)| outcome.is_none()));

        // A port that was just free: connecting is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let soap = Backends::new(None, vec![format!("http://127.0.0.1:{port}/soap")]);
        let [_, (name, outcome)] = soap.check().await;
        assert_eq!(name, "soap");
        let detail = outcome.expect("configured").expect_err("nothing listens");
        assert!(detail.contains("cannot connect"), "{detail}");
    }
}
