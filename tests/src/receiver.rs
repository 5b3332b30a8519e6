//! A webhook receiver: a real HTTP server on 127.0.0.1 in the test process that records every
//! delivery the relay POSTs and answers with the status the test chooses.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use restsip_protocol::Event;
use sha2::Sha256;
use tokio::sync::mpsc;

/// How long a webhook test waits for a delivery (retries with backoff included).
pub const DELIVERY_WAIT: Duration = Duration::from_secs(30);

/// One POST the relay made.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Its headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: String,
    /// The event the body holds.
    pub event: Event,
    /// What the receiver answered.
    pub status: u16,
}

impl Delivery {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether `X-Restsip-Signature` is the HMAC-SHA256, keyed with `secret`, of
    /// `X-Restsip-Timestamp`, a `.` and the body (computed here, independently of the relay).
    pub fn signed_with(&self, secret: &str) -> bool {
        let (Some(timestamp), Some(signature)) = (
            self.header("x-restsip-timestamp"),
            self.header("x-restsip-signature"),
        ) else {
            return false;
        };
        let Some(Ok(signature)) = signature.strip_prefix("sha256=").map(hex::decode) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            return false;
        };
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(self.body.as_bytes());
        mac.verify_slice(&signature).is_ok()
    }

    /// Whether the receiver acknowledged it (2xx).
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// What the receiver answers.
#[derive(Debug, Default)]
struct Answers {
    /// Statuses for the next requests, in order.
    next: VecDeque<u16>,
    /// The status after those (200 unless set).
    default: Option<u16>,
}

/// The receiver's shared state.
#[derive(Clone)]
struct Shared {
    /// What to answer.
    answers: Arc<Mutex<Answers>>,
    /// Where deliveries go.
    tx: mpsc::UnboundedSender<Delivery>,
}

/// A running receiver.
pub struct Receiver {
    /// Where the relay should POST: `http://127.0.0.1:PORT/hook`.
    pub url: String,
    /// What to answer.
    answers: Arc<Mutex<Answers>>,
    /// Deliveries as they come.
    rx: mpsc::UnboundedReceiver<Delivery>,
}

async fn hook(State(shared): State<Shared>, headers: HeaderMap, body: String) -> StatusCode {
    let status = {
        let mut answers = shared.answers.lock().unwrap_or_else(|p| p.into_inner());
        let default = answers.default.unwrap_or(200);
        answers.next.pop_front().unwrap_or(default)
    };
    match serde_json::from_str::<Event>(&body) {
        Ok(event) => {
            let _ = shared.tx.send(Delivery {
                headers,
                body,
                event,
                status,
            });
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        }
        // Not an event: the test fails on the missing delivery; tell the relay too.
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

impl Receiver {
    /// Starts a receiver that answers 200.
    pub async fn start() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let answers = Arc::new(Mutex::new(Answers::default()));
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Shared {
            answers: answers.clone(),
            tx,
        };
        let app = Router::new().route("/hook", post(hook)).with_state(shared);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, answers, rx })
    }

    fn answers(&self) -> std::sync::MutexGuard<'_, Answers> {
        self.answers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers `status` to every request from now on (after any set with [`Receiver::then`]).
    pub fn answer(&self, status: u16) {
        self.answers().default = Some(status);
    }

    /// Answers `status` to the next `n` requests.
    pub fn then(&self, n: usize, status: u16) {
        self.answers().next.extend(std::iter::repeat_n(status, n));
    }

    /// The next request, acknowledged or not, within [`DELIVERY_WAIT`].
    pub async fn next(&mut self) -> Result<Delivery> {
        tokio::time::timeout(DELIVERY_WAIT, self.rx.recv())
            .await
            .map_err(|_| anyhow!("no delivery within {DELIVERY_WAIT:?}"))?
            .ok_or_else(|| anyhow!("receiver stopped"))
    }

    /// The next acknowledged delivery, skipping refused attempts.
    pub async fn next_accepted(&mut self) -> Result<Delivery> {
        loop {
            let delivery = self.next().await?;
            if delivery.accepted() {
                return Ok(delivery);
            }
        }
    }

    /// A delivery within `wait`, if any.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Delivery> {
        tokio::time::timeout(wait, self.rx.recv())
            .await
            .ok()
            .flatten()
    }
}
