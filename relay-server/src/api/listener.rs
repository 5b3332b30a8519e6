//! The HTTP listener and its connections: at most `max` connections open (the next accept
//! waits for a slot, so a flood queues in the kernel instead of exhausting file descriptors),
//! at most `max_per_ip` of them from one address (more are closed at once), and a deadline for
//! each request's header block (hyper's header read timeout, which axum::serve does not set),
//! so slow or silent clients cannot hold the slots of everyone else. With a certificate every
//! connection starts with a TLS handshake, which has the same deadline; a client that fails it
//! (plain HTTP, garbage) loses its connection, nothing else. A connection whose first request
//! asks for a stream is served by [`super::lean`] instead of hyper (hyper keeps 16 KiB of
//! buffers per connection for its whole life); everything else by hyper.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use restsip_sip::per_ip::{IpSlot, PerIp};

use super::lean::{self, First, Rewind};

/// The HTTP listening socket, its accept backlog sized from `max_connections` (the kernel caps
/// it at `net.core.somaxconn`, 4096 on current Linux). Tokio's default of 1024 (and the 128 it
/// once was) makes a reconnect storm after a restart wait for SYN retries (1 s, 3 s) while the
/// accept loop catches up; a backlog as deep as the connections the relay takes lets every
/// client in at once.
pub(crate) fn bind(addr: SocketAddr, max_connections: usize) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    // As tokio's TcpListener::bind does: a restart may find the port in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(max_connections.clamp(1024, 65_535)).unwrap_or(65_535))?;
    TcpListener::from_std(socket.into())
}

/// The bounded listener.
#[derive(Debug)]
pub(crate) struct LimitedListener {
    /// The socket.
    inner: TcpListener,
    /// One permit per open connection.
    slots: Arc<Semaphore>,
    /// Open connections per address.
    per_ip: PerIp,
}

impl LimitedListener {
    pub(crate) fn new(inner: TcpListener, max: usize, max_per_ip: usize) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(max)),
            per_ip: PerIp::new(max_per_ip),
        }
    }

    /// The next connection within the limits.
    async fn accept(&mut self) -> (LimitedStream, SocketAddr) {
        loop {
            let Ok(slot) = self.slots.clone().acquire_owned().await else {
                // The semaphore is never closed; wait and try again if it were.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let Some(ip_slot) = self.per_ip.take(addr.ip()) else {
                        tracing::debug!(%addr, "too many HTTP connections from one address; closing a new one");
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    return (
                        LimitedStream {
                            inner: stream,
                            _slot: slot,
                            _ip_slot: ip_slot,
                        },
                        addr,
                    );
                }
                Err(e) => {
                    // Out of descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Serves `service` on `listener` (over TLS when `tls` is given) until `shutdown` completes;
/// then accepts no more, lets each connection finish its request in flight and waits for them
/// all. Requests carry the peer's address as `ConnectInfo<SocketAddr>`.
pub(crate) async fn serve<S>(
    mut listener: LimitedListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    service: S,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    // Every connection holds a receiver of `open`; its sender sees them all gone.
    let (open_tx, open_rx) = watch::channel(());
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let service = service.clone();
        let stop = stop_rx.clone();
        let open = open_rx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(stream, addr, service, header_timeout, stop).await,
                // Boxed: a task's future is as large as its largest branch for as long as it
                // runs, and the TLS handshake and the plain-HTTP answer (an 8 KiB buffer) would
                // make every plain connection's task carry their size too.
                Some(tls) => {
                    Box::pin(tls_connection(
                        stream,
                        addr,
                        tls,
                        service,
                        header_timeout,
                        stop,
                    ))
                    .await
                }
            }
            drop(open);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(open_rx);
    open_tx.closed().await;
}

/// Serves one connection to the TLS port: a plain HTTP request gets a 400 problem, anything
/// else a TLS handshake within the header deadline, then HTTP.
async fn tls_connection<S>(
    stream: LimitedStream,
    addr: SocketAddr,
    tls: tokio_rustls::TlsAcceptor,
    service: S,
    header_timeout: Duration,
    stop: watch::Receiver<bool>,
) where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    if plain_http(&stream, header_timeout).await {
        https_required(stream).await;
        return;
    }
    match tokio::time::timeout(header_timeout, tls.accept(stream)).await {
        Ok(Ok(stream)) => connection(stream, addr, service, header_timeout, stop).await,
        Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%addr, "TLS handshake not done in time"),
    }
}

/// Whether a connection to the TLS port starts like a plain HTTP request (a method's letter,
/// where a TLS handshake starts with byte 22).
async fn plain_http(stream: &LimitedStream, due: Duration) -> bool {
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(due, stream.inner.peek(&mut first)).await,
        Ok(Ok(1)) if first[0].is_ascii_uppercase()
    )
}

/// Answers a plain HTTP request on the TLS port with a 400 problem saying so (as nginx does),
/// then closes.
async fn https_required(mut stream: LimitedStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let problem = restsip_protocol::Problem::new(
        restsip_protocol::ProblemKind::BadRequest,
        "this port speaks HTTPS only: use https:// (and wss://)",
    );
    let body = serde_json::to_string(&problem).unwrap_or_default();
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        // The request is read first: closing with it unread would reset the connection.
        let mut request = [0u8; 8192];
        let _ = stream.read(&mut request).await;
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Serves one connection until it ends, or gracefully once `stop` turns true: a first request
/// asking for a stream on the lean path ([`lean`]), anything else with hyper.
async fn connection<S, IO>(
    mut stream: IO,
    addr: SocketAddr,
    service: S,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let first = tokio::select! {
        first = lean::first(&mut stream, addr, header_timeout) => first,
        // Like hyper's graceful shutdown of a connection with no request yet: close it.
        _ = stop.wait_for(|stop| *stop) => return,
    };
    match first {
        First::Closed => {}
        // A stream ends itself when the relay stops (`AppState::shutdown`), as under hyper's
        // graceful shutdown, which lets the response in flight finish.
        First::Lean(request) => lean::serve(stream, *request, service, addr).await,
        // Boxed: a lean connection's task would carry hyper's connection state otherwise.
        First::Hyper(read) => {
            Box::pin(hyper_connection(
                Rewind::new(read, stream),
                addr,
                service,
                header_timeout,
                stop,
            ))
            .await
        }
    }
}

/// Serves a connection with hyper until it ends, or gracefully once `stop` turns true.
async fn hyper_connection<S, IO>(
    stream: IO,
    addr: SocketAddr,
    service: S,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let hyper_service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(addr));
        service.clone().oneshot(req.map(axum::body::Body::new))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), hyper_service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%addr, error = %e, "HTTP connection ended");
            }
        }
        () = async { let _ = stop.wait_for(|stop| *stop).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// A connection holding its slots until dropped.
#[derive(Debug)]
pub(crate) struct LimitedStream {
    /// The connection.
    inner: TcpStream,
    /// Released when the connection closes.
    _slot: OwnedSemaphorePermit,
    /// Its place in its address's count.
    _ip_slot: IpSlot,
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

super::write_through::write_through!([] LimitedStream, inner);
