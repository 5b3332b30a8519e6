//! Harness for restsip's end-to-end tests: starts the real `relay-server` binary on a free
//! 127.0.0.1 port with its own SQLite file, and talks to it with real HTTP, SSE, NDJSON and
//! WebSocket clients.
#![allow(clippy::unwrap_used)]

pub mod baresip;
pub mod cluster;
pub mod metrics;
pub mod receiver;
pub mod rtpengine;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use restsip_protocol::{Event, ServerFrame};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a test waits for an event before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The relay binary built next to the test executable (`cargo build -p relay-server`), or
/// `RESTSIP_RELAY_BIN`.
pub fn relay_binary() -> PathBuf {
    if let Ok(path) = std::env::var("RESTSIP_RELAY_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/relay-server
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = dir.join("relay-server");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p relay-server` first (the test script does)",
        bin.display()
    );
    bin
}

/// A running relay process with its own database.
pub struct Relay {
    /// The process.
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The SIP address (UDP and TCP), `127.0.0.1:PORT`, unless started with `--sip off`.
    pub sip: Option<std::net::SocketAddr>,
    /// Holds the database file.
    dir: tempfile::TempDir,
    /// Extra flags it was started with.
    args: Vec<String>,
    /// What it logs (stderr), when started with [`Relay::start_logging`].
    log: Option<Log>,
    /// The lines it printed on stdout that start with `restsip relay `.
    lines: Announced,
    /// What its clients trust, when it speaks TLS ([`Relay::trust`]).
    trust: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// The `restsip relay ...` lines a relay printed, shared with the task that reads them.
type Announced = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Lines that come after the first two only with some flag: the harness waits for each one
/// whose flag was given before it hands the relay over.
const FLAGGED_LINES: &[(&str, &str)] =
    &[("--sip-tls", "sip on tls "), ("--metrics", "metrics on ")];

/// A relay's log as it comes, shared with the task that reads it.
type Log = std::sync::Arc<std::sync::Mutex<String>>;

impl Relay {
    /// Starts a relay with the given extra flags.
    pub async fn start(args: &[&str]) -> Result<Self> {
        Self::launch(args, None).await
    }

    /// Starts a relay with the given extra flags and `RUST_LOG` filter, keeping what it logs
    /// for [`Relay::log`].
    pub async fn start_logging(args: &[&str], filter: &str) -> Result<Self> {
        Self::launch(args, Some(filter)).await
    }

    async fn launch(args: &[&str], filter: Option<&str>) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let log = filter.map(|_| Log::default());
        let logging = filter.zip(log.as_ref());
        let (child, base, sip, lines) = spawn(dir.path(), None, &args, logging).await?;
        Ok(Self {
            child,
            base,
            sip,
            dir,
            args,
            log,
            lines,
            trust: None,
        })
    }

    /// What the relay logged so far (empty unless started with [`Relay::start_logging`]).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .map(|l| l.lock().unwrap().clone())
            .unwrap_or_default()
    }

    /// What follows `restsip relay {prefix}` on the stdout line that starts so (e.g.
    /// `announced("sip on tls ")` → `127.0.0.1:PORT`): lines after the first two are
    /// optional and found by their prefix, not their position.
    pub fn announced(&self, prefix: &str) -> Option<String> {
        let wanted = format!("restsip relay {prefix}");
        self.lines
            .lock()
            .unwrap()
            .iter()
            .find_map(|l| l.strip_prefix(&wanted).map(str::to_owned))
    }

    /// The process id (for signals), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Its clients (HTTPS and WSS) trust what `config` trusts from now on.
    pub fn trust(&mut self, config: std::sync::Arc<rustls::ClientConfig>) {
        self.trust = Some(config);
    }

    /// Starts a relay with default settings.
    pub async fn default() -> Result<Self> {
        Self::start(&[]).await
    }

    /// Stops the process gracefully (SIGTERM) and waits until it has exited.
    pub async fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let pid = self
            .child
            .id()
            .ok_or_else(|| anyhow!("the relay has exited"))?;
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        Ok(tokio::time::timeout(WAIT, self.child.wait()).await??)
    }

    /// Kills the process at once (SIGKILL, as `kill -9`: no shutdown, nothing flushed) and
    /// waits until it is gone.
    pub async fn kill(&mut self) -> Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// Kills the process at once (SIGKILL: no shutdown, nothing flushed) and starts it again on
    /// the same port and database.
    pub async fn kill_and_restart(&mut self) -> Result<()> {
        self.kill().await?;
        self.start_again().await
    }

    /// Stops the process gracefully (SIGTERM) and starts it again on the same port and database.
    pub async fn restart(&mut self) -> Result<()> {
        self.terminate().await?;
        self.start_again().await
    }

    /// Stops the process gracefully and starts it again on the same port and database with
    /// other extra flags.
    pub async fn restart_with(&mut self, args: &[&str]) -> Result<()> {
        self.args = args.iter().map(|s| s.to_string()).collect();
        self.restart().await
    }

    async fn start_again(&mut self) -> Result<()> {
        let port: u16 = self.base.rsplit(':').next().unwrap_or("0").parse()?;
        let (child, base, sip, lines) =
            spawn(self.dir.path(), Some(port), &self.args, None).await?;
        self.child = child;
        self.base = base;
        self.sip = sip;
        self.lines = lines;
        Ok(())
    }

    /// URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `ws://` (or `wss://`) URL of a path.
    pub fn ws_url(&self, path: &str) -> String {
        format!("{}{path}", self.base.replacen("http", "ws", 1))
    }

    /// A client without credentials.
    pub fn anonymous(&self) -> Client {
        Client {
            http: http_client(self.trust.as_deref()),
            base: self.base.clone(),
            auth: None,
            tls: self.trust.clone(),
        }
    }

    /// Signs up `email` (password `pw-<email>`) and returns its client.
    pub async fn user(&self, email: &str) -> Result<Client> {
        let password = format!("pw-{email}");
        let res = self
            .anonymous()
            .request(
                "POST",
                "/user",
                Some(json!({"email": email, "password": password})),
            )
            .await?;
        if res.status != 201 {
            bail!("signup of {email} failed: {} {}", res.status, res.body);
        }
        Ok(self.client(email, &password))
    }

    /// A client with Basic credentials.
    pub fn client(&self, email: &str, password: &str) -> Client {
        Client {
            http: http_client(self.trust.as_deref()),
            base: self.base.clone(),
            auth: Some((email.to_owned(), password.to_owned())),
            tls: self.trust.clone(),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn http_client(trust: Option<&rustls::ClientConfig>) -> reqwest::Client {
    let builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
    match trust {
        Some(config) => builder.use_preconfigured_tls(config.clone()),
        None => builder,
    }
    .build()
    .expect("http client")
}

/// The process, its HTTP base URL, its SIP address and its `restsip relay ` lines.
type Spawned = (Child, String, Option<std::net::SocketAddr>, Announced);

async fn spawn(
    dir: &Path,
    port: Option<u16>,
    extra: &[String],
    logging: Option<(&str, &Log)>,
) -> Result<Spawned> {
    let db = format!("sqlite:{}", dir.join("relay.db").display());
    // A test that names its database (`--database postgres://…`) gets it instead of the file.
    let db_flag: &[&str] = if extra.iter().any(|a| a == "--database") {
        &[]
    } else {
        &["--database", &db]
    };
    let http = format!("127.0.0.1:{}", port.unwrap_or(0));
    // SIP on a free port unless the test chose (`--sip ADDR` or `--sip off`), so relays of
    // tests running side by side never share 5060.
    let sip_flag = extra.iter().position(|a| a == "--sip");
    let sip_off = sip_flag
        .and_then(|i| extra.get(i + 1))
        .is_some_and(|a| a == "off");
    let default_sip: &[&str] = if sip_flag.is_some() {
        &[]
    } else {
        &["--sip", "127.0.0.1:0"]
    };
    // Tests' webhook receivers and SIP peers are on 127.0.0.1: private targets are allowed
    // unless the test says (`--allow-private-targets=false`: the egress guard's tests).
    let private_targets: &[&str] = if extra
        .iter()
        .any(|a| a.starts_with("--allow-private-targets"))
    {
        &[]
    } else {
        &["--allow-private-targets"]
    };
    let mut last_error = None;
    // A restart on the same port may find it in TIME_WAIT for a moment: retry briefly.
    for _ in 0..50 {
        let mut child = Command::new(relay_binary())
            .args([
                "--http",
                &http,
                "--www",
                &dir.join("www").display().to_string(),
            ])
            .args(db_flag)
            .args(default_sip)
            .args(private_targets)
            .args(extra)
            .env("RUST_LOG", logging.map_or("warn", |(filter, _)| filter))
            .stdout(Stdio::piped())
            .stderr(if logging.is_some() {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .kill_on_drop(true)
            .spawn()
            .context("starting relay-server")?;
        if let (Some(stderr), Some((_, log))) = (child.stderr.take(), logging) {
            let log = log.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        match tokio::time::timeout(WAIT, lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                let announced = Announced::default();
                announced.lock().unwrap().push(line.clone());
                let base = line
                    .split_whitespace()
                    .last()
                    .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
                    .ok_or_else(|| anyhow!("unexpected first line: {line}"))?
                    .to_owned();
                let sip = if sip_off {
                    None
                } else {
                    let line = tokio::time::timeout(WAIT, lines.next_line())
                        .await??
                        .ok_or_else(|| anyhow!("no SIP address line"))?;
                    let addr = line
                        .strip_prefix("restsip relay sip on udp+tcp ")
                        .ok_or_else(|| anyhow!("unexpected second line: {line}"))?;
                    announced.lock().unwrap().push(line.clone());
                    Some(addr.parse()?)
                };
                // The optional lines its flags call for.
                let mut due: Vec<String> = FLAGGED_LINES
                    .iter()
                    .filter(|(flag, _)| extra.iter().any(|a| a == flag))
                    .map(|(_, prefix)| format!("restsip relay {prefix}"))
                    .collect();
                while !due.is_empty() {
                    let line = tokio::time::timeout(WAIT, lines.next_line())
                        .await??
                        .ok_or_else(|| anyhow!("stdout ended before {due:?}"))?;
                    due.retain(|prefix| !line.starts_with(prefix.as_str()));
                    if line.starts_with("restsip relay ") {
                        announced.lock().unwrap().push(line);
                    }
                }
                // Keep draining stdout so the relay never blocks on a full pipe; later
                // `restsip relay ` lines are kept too.
                let later = announced.clone();
                tokio::spawn(async move {
                    while let Ok(Some(line)) = lines.next_line().await {
                        if line.starts_with("restsip relay ") {
                            later.lock().unwrap().push(line);
                        }
                    }
                });
                return Ok((child, base, sip, announced));
            }
            other => {
                let status = child.wait().await.ok();
                last_error = Some(anyhow!("relay did not start: {other:?}, exit {status:?}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow!("relay did not start")))
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body as JSON (Null when empty, a string when not JSON).
    pub body: Value,
}

impl Reply {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json error with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "body: {}",
            self.body
        );
        assert_eq!(self.body["status"], status, "body: {}", self.body);
        assert_eq!(self.body["code"], code, "body: {}", self.body);
        assert!(
            self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "problem without detail: {}",
            self.body
        );
    }
}

/// An HTTP client of the relay, with or without credentials.
#[derive(Clone)]
pub struct Client {
    /// The connection pool.
    pub http: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Basic credentials.
    pub auth: Option<(String, String)>,
    /// What `wss://` trusts, when the relay speaks TLS.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Client {
    /// The email this client logs in as.
    pub fn email(&self) -> &str {
        self.auth.as_ref().map(|(e, _)| e.as_str()).unwrap_or("")
    }

    /// A request builder with credentials.
    pub fn builder(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some((email, password)) = &self.auth {
            req = req.basic_auth(email, Some(password));
        }
        req
    }

    /// Sends a request with an optional JSON body and reads the reply.
    pub async fn request(&self, method: &str, path: &str, body: Option<Value>) -> Result<Reply> {
        let mut req = self.builder(method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        read(req.send().await?).await
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Result<Reply> {
        self.request("GET", path, None).await
    }

    /// Logs in (POST /login/{me}) and returns the contact id.
    pub async fn login(&self, body: Value) -> Result<i64> {
        let res = self
            .request("POST", &format!("/login/{}", self.email()), Some(body))
            .await?;
        if res.status != 201 {
            bail!("login failed: {} {}", res.status, res.body);
        }
        res.body["id"]
            .as_i64()
            .ok_or_else(|| anyhow!("no id in {}", res.body))
    }

    /// A bearer token from POST /token.
    pub async fn token(&self) -> Result<String> {
        let res = self.request("POST", "/token", None).await?;
        res.body["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no token: {}", res.body))
    }

    /// Opens an SSE stream of `path`, optionally resuming.
    pub async fn sse(&self, path: &str, last_event_id: Option<u64>) -> Result<EventStream> {
        let mut req = self
            .builder("GET", path)
            .header("accept", "text/event-stream")
            .timeout(Duration::from_secs(3600));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let res = req.send().await?;
        if res.status() != 200 {
            bail!(
                "SSE open failed: {} {}",
                res.status(),
                res.text().await.unwrap_or_default()
            );
        }
        assert!(res.headers()["content-type"]
            .to_str()?
            .starts_with("text/event-stream"));
        Ok(EventStream {
            body: Box::pin(res.bytes_stream()),
            buffer: Vec::new(),
            sse: true,
        })
    }

    /// Opens a streaming NDJSON GET of `path` (`extra` is appended to the query).
    pub async fn ndjson(&self, path: &str) -> Result<EventStream> {
        let res = self
            .builder("GET", path)
            .header("accept", "application/x-ndjson")
            .timeout(Duration::from_secs(3600))
            .send()
            .await?;
        if res.status() != 200 {
            bail!(
                "NDJSON open failed: {} {}",
                res.status(),
                res.text().await.unwrap_or_default()
            );
        }
        Ok(EventStream {
            body: Box::pin(res.bytes_stream()),
            buffer: Vec::new(),
            sse: false,
        })
    }

    /// Opens the multiplexed WebSocket with Basic credentials.
    pub async fn ws(&self) -> Result<Ws> {
        Ok(Ws {
            socket: self.ws_socket().await?,
        })
    }

    /// Opens the multiplexed WebSocket with Basic credentials, as tungstenite's stream (for a
    /// test of the WebSocket protocol itself: pings, pongs, the closing handshake).
    pub async fn ws_socket(&self) -> Result<WsSocket> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("{}/ws", self.base.replacen("http", "ws", 1));
        let mut req = url.into_client_request()?;
        if let Some((email, password)) = &self.auth {
            let value =
                base64::engine::general_purpose::STANDARD.encode(format!("{email}:{password}"));
            req.headers_mut()
                .insert("authorization", format!("Basic {value}").parse()?);
        }
        let connector = self.tls.clone().map(tokio_tungstenite::Connector::Rustls);
        let (socket, _) =
            tokio_tungstenite::connect_async_tls_with_config(req, None, false, connector).await?;
        Ok(socket)
    }
}

/// Reads a response whole.
pub async fn read(res: reqwest::Response) -> Result<Reply> {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await?;
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// The events of an SSE or NDJSON response.
pub struct EventStream {
    /// The body.
    body: ByteStream,
    /// Bytes not yet parsed.
    buffer: Vec<u8>,
    /// SSE framing (else one JSON per line).
    sse: bool,
}

impl EventStream {
    /// The next event; fails after [`WAIT`] or when the stream ends.
    pub async fn next(&mut self) -> Result<Event> {
        tokio::time::timeout(WAIT, self.next_inner())
            .await
            .map_err(|_| anyhow!("no event within {WAIT:?}"))?
    }

    /// The next event if one comes within `wait`; None on silence.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Option<Event>> {
        match tokio::time::timeout(wait, self.next_inner()).await {
            Ok(event) => event.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Panics if an event arrives within 300 ms: what a test checks after the last event it
    /// expects, so a duplicate or stray event fails it.
    pub async fn assert_quiet(&mut self) {
        let stray = self
            .next_within(Duration::from_millis(300))
            .await
            .expect("the stream broke");
        assert!(stray.is_none(), "unexpected event {stray:?}");
    }

    /// True when the server ends the stream within [`WAIT`] without another event.
    pub async fn ends(&mut self) -> Result<bool> {
        match tokio::time::timeout(WAIT, self.next_inner()).await {
            Ok(Err(_)) => Ok(true),
            Ok(Ok(event)) => bail!("expected the end, got {event:?}"),
            Err(_) => Ok(false),
        }
    }

    async fn next_inner(&mut self) -> Result<Event> {
        loop {
            let separator: &[u8] = if self.sse { b"\n\n" } else { b"\n" };
            if let Some(pos) = self
                .buffer
                .windows(separator.len())
                .position(|w| w == separator)
            {
                let chunk: Vec<u8> = self.buffer.drain(..pos + separator.len()).collect();
                let text = String::from_utf8(chunk)?;
                let data = if self.sse {
                    text.lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .map(str::trim_start)
                        .collect::<Vec<_>>()
                        .join("\n")
                } else {
                    text.trim().to_owned()
                };
                if data.is_empty() {
                    continue; // keep-alive
                }
                return Ok(serde_json::from_str(&data)?);
            }
            match self.body.next().await {
                Some(chunk) => self.buffer.extend_from_slice(&chunk?),
                None => bail!("stream ended"),
            }
        }
    }
}

/// A WebSocket to the relay, as tungstenite gives it.
pub type WsSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The multiplexed WebSocket.
pub struct Ws {
    /// The socket.
    socket: WsSocket,
}

impl Ws {
    /// Sends a JSON frame.
    pub async fn send(&mut self, frame: Value) -> Result<()> {
        use tokio_tungstenite::tungstenite::Message;
        self.socket
            .send(Message::Text(frame.to_string().into()))
            .await?;
        Ok(())
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) -> Result<()> {
        use tokio_tungstenite::tungstenite::Message;
        self.socket
            .send(Message::Text(text.to_owned().into()))
            .await?;
        Ok(())
    }

    /// The next relay frame within [`WAIT`].
    pub async fn next(&mut self) -> Result<ServerFrame> {
        use tokio_tungstenite::tungstenite::Message;
        tokio::time::timeout(WAIT, async {
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text)?),
                    Some(Ok(Message::Close(_))) | None => bail!("websocket closed"),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.into()),
                }
            }
        })
        .await
        .map_err(|_| anyhow!("no frame within {WAIT:?}"))?
    }

    /// The next event frame (skipping nothing: any other frame is an error).
    pub async fn next_event(&mut self) -> Result<Event> {
        match self.next().await? {
            ServerFrame::Event { event } => Ok(event),
            other => bail!("expected an event, got {other:?}"),
        }
    }
}

/// A TCP connection to `to` from the loopback address `from` (127.0.0.2 and up play other
/// hosts: the relay sees them as other addresses).
pub async fn connect_from(
    from: &str,
    to: std::net::SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{from}:0").parse().map_err(std::io::Error::other)?)?;
    socket.connect(to).await
}

/// Whether the peer closes `stream` (end of stream or reset) within `within`, while `drip` is
/// written every 500 ms.
pub async fn closed_within(
    stream: &mut tokio::net::TcpStream,
    within: Duration,
    drip: &[u8],
) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 1024];
    while tokio::time::Instant::now() < deadline {
        if stream.write_all(drip).await.is_err() {
            return true;
        }
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    false
}
