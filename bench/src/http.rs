//! HTTP/1.1 clients: [`Conn`], one keep-alive connection driven by a load loop, and [`Api`], a
//! pooled client for the setup calls.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpStream;

/// Longest wait for one answer; loops stay bounded even if a server stalls.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An answer: status and whole body.
pub(crate) struct Answer {
    /// The status code.
    pub(crate) status: StatusCode,
    /// The body, read to the end.
    pub(crate) body: Bytes,
}

impl Answer {
    /// The answer itself if it is a success, else an error quoting the body.
    pub(crate) fn success(self) -> Result<Self> {
        if !self.status.is_success() {
            let text = String::from_utf8_lossy(&self.body);
            bail!(
                "status {}: {}",
                self.status,
                text.chars().take(300).collect::<String>()
            );
        }
        Ok(self)
    }
}

/// `Authorization: Basic …` for `email` and `password`.
pub(crate) fn basic(email: &str, password: &str) -> Result<hyper::header::HeaderValue> {
    let token = STANDARD.encode(format!("{email}:{password}"));
    Ok(format!("Basic {token}").parse()?)
}

/// One keep-alive HTTP/1.1 connection; reopened if the server closes it.
pub(crate) struct Conn {
    /// Where it goes.
    addr: SocketAddr,
    /// hyper's handle to send requests on it.
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Connects to `addr` (with `TCP_NODELAY`, as browsers and HTTP clients do).
    pub(crate) async fn open(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self { addr, sender })
    }

    /// Sends `request` and reads the whole answer, within [`REQUEST_TIMEOUT`].
    pub(crate) async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Answer> {
        if self.sender.is_closed() {
            *self = Self::open(self.addr).await?;
        }
        let exchange = async {
            self.sender.ready().await?;
            let response = self.sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok(Answer { status, body })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .context("no answer within 10 s")?
    }
}

/// The fixed part of the requests a load loop repeats.
#[derive(Clone)]
pub(crate) struct RequestTemplate {
    /// GET, POST or SEND.
    pub(crate) method: Method,
    /// Path and query.
    pub(crate) path: String,
    /// Host, Authorization and, with a body, Content-Type.
    pub(crate) headers: HeaderMap,
}

impl RequestTemplate {
    /// A template for `method path` on `addr`, with `auth` if any.
    pub(crate) fn new(
        method: Method,
        addr: SocketAddr,
        path: String,
        auth: Option<&hyper::header::HeaderValue>,
    ) -> Result<Self> {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, addr.to_string().parse()?);
        if let Some(auth) = auth {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        Ok(Self {
            method,
            path,
            headers,
        })
    }

    /// The request, with `body` as JSON if given.
    pub(crate) fn build(&self, body: Option<&Value>) -> Result<Request<Full<Bytes>>> {
        let mut builder = Request::builder()
            .method(self.method.clone())
            .uri(self.path.as_str());
        if let Some(headers) = builder.headers_mut() {
            headers.extend(self.headers.clone());
        }
        let body = match body {
            Some(value) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(value)?)
            }
            None => Bytes::new(),
        };
        Ok(builder.body(Full::new(body))?)
    }
}

/// A pooled client for the one-off setup calls.
pub(crate) struct Api {
    /// hyper-util's client.
    client: Client<HttpConnector, Full<Bytes>>,
    /// Where the server listens.
    addr: SocketAddr,
}

impl Api {
    /// A client of the server at `addr`.
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            // Idle connections are dropped before the relay's `--header-timeout` (10 s) closes
            // them, so a request never races the server's close of a pooled connection.
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(5))
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .build_http(),
            addr,
        }
    }

    /// `method path` with a JSON body; the JSON answer of a success, else an error.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Option<&hyper::header::HeaderValue>,
        body: Option<&Value>,
    ) -> Result<Value> {
        let template = RequestTemplate::new(method.clone(), self.addr, path.to_owned(), auth)?;
        let mut request = template.build(body)?;
        *request.uri_mut() = format!("http://{}{path}", self.addr).parse()?;
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok(Answer { status, body })
        };
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .context("no answer within 10 s")?
            .and_then(Answer::success)
            .with_context(|| format!("{method} {path}"))?;
        if answer.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&answer.body)
            .with_context(|| format!("{method} {path}: the answer is not JSON"))
    }
}
