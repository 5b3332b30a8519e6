//! The lean path for streaming GETs: a connection whose first request asks for an SSE or
//! NDJSON stream is served here instead of by hyper, answers that one request and closes.
//!
//! Why: hyper 1.x keeps, for every HTTP/1 connection for as long as it is open, an 8 KiB read
//! buffer, an 8 KiB write buffer and the last response's header map, with no setting for any
//! of them; a stream's connection stays open for hours with nothing to read and one small
//! frame at a time to write, so at 10,000 watchers this was most of the relay's memory per
//! SSE watcher (README, "Fan-out", has the measurement). Here the request head is read into a
//! small buffer freed before the answer, the answer's head is written and freed, each body
//! frame goes straight to the socket as one chunk, and the socket is read into 16 bytes only
//! to see it close.
//!
//! The request still goes through the same router (auth, CORS, limits, metrics), with the
//! `ConnectInfo` hyper's path gives it. Anything else — another method, a body, an upgrade,
//! HTTP/1.0 or HTTP/2, pipelined bytes, a head too large or not parsable — goes to hyper
//! unchanged, the bytes already read given back first ([`Rewind`]).

use std::convert::Infallible;
use std::io;
use std::io::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::body::{Body, HttpBody as _};
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tower::ServiceExt;

use super::stream::Format;

/// The request head buffer's first size: a stream's GET (token, origin, user agent) fits.
const HEAD_START: usize = 1024;
/// Past this many bytes without a complete head, hyper reads the rest (and judges its size).
const HEAD_MAX: usize = 8192;
/// Headers a lean request may have; more go to hyper (which allows 100).
const MAX_HEADERS: usize = 48;

/// How a connection's first request is to be served.
pub(super) enum First {
    /// A streaming GET, served by [`serve`].
    Lean(Box<Request>),
    /// Anything else: hyper serves the connection, after these bytes.
    Hyper(Bytes),
    /// The client closed, failed or missed the header deadline before a whole head.
    Closed,
}

/// Reads the first request head of a connection, within `due`.
pub(super) async fn first<IO: AsyncRead + Unpin>(
    io: &mut IO,
    addr: SocketAddr,
    due: Duration,
) -> First {
    let read = async {
        let mut buf = BytesMut::with_capacity(HEAD_START);
        loop {
            if buf.len() >= HEAD_MAX {
                return First::Hyper(buf.freeze());
            }
            if buf.len() == buf.capacity() {
                buf.reserve(buf.len().min(HEAD_MAX - buf.len()));
            }
            let (start, room) = (buf.len(), HEAD_MAX - buf.len());
            match io.read_buf(&mut (&mut buf).limit(room)).await {
                Ok(0) | Err(_) => return First::Closed,
                Ok(_) => {}
            }
            // A head ends with a line feed: a client dripping bytes is not parsed again from
            // the start for each of them.
            if !buf[start..].contains(&b'\n') {
                continue;
            }
            match parse(&buf, addr) {
                Parsed::Partial => {}
                Parsed::Lean(request) => return First::Lean(request),
                Parsed::Other => return First::Hyper(buf.freeze()),
            }
        }
    };
    match tokio::time::timeout(due, read).await {
        Ok(first) => first,
        Err(_) => {
            tracing::debug!(%addr, "HTTP request header not done in time");
            First::Closed
        }
    }
}

/// What the bytes read so far are.
enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// A whole streaming GET and nothing after it.
    Lean(Box<Request>),
    /// Something hyper serves (including what it must refuse).
    Other,
}

/// Parses `buf` as a request head (synchronous: the header array stays off the task's future).
fn parse(buf: &[u8], addr: SocketAddr) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    match head.parse(buf) {
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Ok(httparse::Status::Complete(len)) if len == buf.len() => {
            match lean_request(&head, addr) {
                Some(request) => Parsed::Lean(Box::new(request)),
                None => Parsed::Other,
            }
        }
        // Pipelined bytes after the head, or not a head hyper would take either.
        Ok(httparse::Status::Complete(_)) | Err(_) => Parsed::Other,
    }
}

/// The request, if `head` is an HTTP/1.1 GET with no body and no upgrade that asks for a
/// stream.
fn lean_request(head: &httparse::Request<'_, '_>, addr: SocketAddr) -> Option<Request> {
    if head.method != Some("GET") || head.version != Some(1) {
        return None;
    }
    let uri = Uri::try_from(head.path?).ok()?;
    // Origin-form only, as a browser or client sends it.
    if uri.scheme().is_some() || !uri.path().starts_with('/') {
        return None;
    }
    let mut headers = HeaderMap::with_capacity(head.headers.len());
    for h in head.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(h.value).ok()?;
        headers.append(name, value);
    }
    let bodiless = headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .all(|v| v.as_bytes().trim_ascii() == b"0");
    if !bodiless
        || headers.contains_key(header::TRANSFER_ENCODING)
        || headers.contains_key(header::UPGRADE)
        || headers.contains_key(header::EXPECT)
    {
        return None;
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !Format::may_stream(accept, uri.query().unwrap_or("")) {
        return None;
    }
    let mut request = Request::new(Body::empty());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    request.extensions_mut().insert(ConnectInfo(addr));
    Some(request)
}

/// Answers `request` on `io` through `service` and closes the connection: the answer's head,
/// then its body frame by frame (chunked unless its length is known) until it ends or the
/// client goes away.
pub(super) async fn serve<IO, S>(mut io: IO, request: Request, service: S, addr: SocketAddr)
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    // Boxed: the router's future is only needed until the answer is there, and the
    // connection's task lives as long as the stream.
    let Ok(response) = Box::pin(service.oneshot(request)).await;
    let (parts, body) = response.into_parts();
    let framing = framing(parts.status, &parts.headers, body.size_hint().exact());
    let head = response_head(parts.status, &parts.headers, framing);
    drop(parts);
    if let Err(e) = write(&mut io, &head).await {
        tracing::debug!(%addr, error = %e, "stream's client gone before the answer");
        return;
    }
    drop(head);
    let mut frames = body.into_data_stream();
    let mut probe = [0u8; 16];
    let ended = loop {
        let frame = tokio::select! {
            frame = frames.next() => frame,
            // Nothing is expected from the client: its end (or anything it sends) ends this.
            _ = io.read(&mut probe) => break false,
        };
        let result = match frame {
            None => break true,
            Some(Err(e)) => {
                tracing::debug!(%addr, error = %e, "stream's body failed");
                break false;
            }
            Some(Ok(data)) if data.is_empty() => continue,
            Some(Ok(data)) if framing == Framing::Chunked => {
                let mut chunk = Vec::with_capacity(data.len() + 12);
                let _ = write!(chunk, "{:x}\r\n", data.len());
                chunk.extend_from_slice(&data);
                chunk.extend_from_slice(b"\r\n");
                write(&mut io, &chunk).await
            }
            Some(Ok(data)) if matches!(framing, Framing::Length(_)) => write(&mut io, &data).await,
            // A body where none may be: hyper drops it too.
            Some(Ok(_)) => continue,
        };
        if result.is_err() {
            break false;
        }
    };
    // The streams' sources go with their body, giving back their slot.
    drop(frames);
    if ended {
        if framing == Framing::Chunked {
            let _ = write(&mut io, b"0\r\n\r\n").await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), io.shutdown()).await;
    }
}

/// Writes all of `bytes` and flushes (a TLS stream holds them until then).
pub(super) async fn write<IO: AsyncWrite + Unpin>(io: &mut IO, bytes: &[u8]) -> io::Result<()> {
    io.write_all(bytes).await?;
    io.flush().await
}

/// How an answer's body is delimited (the connection closes after it either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (1xx, 204, 304).
    None,
    /// `Content-Length`: the body's known size, or None when the handler's header gives it.
    Length(Option<u64>),
    /// Chunked: a stream.
    Chunked,
}

/// The framing of an answer with this status, headers and known body length.
fn framing(status: StatusCode, headers: &HeaderMap, exact: Option<u64>) -> Framing {
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::None
    } else if headers.contains_key(header::CONTENT_LENGTH) {
        Framing::Length(None)
    } else if let Some(exact) = exact {
        Framing::Length(Some(exact))
    } else {
        Framing::Chunked
    }
}

/// The answer's status line and headers, as hyper writes them, with `Connection: close`.
fn response_head(status: StatusCode, headers: &HeaderMap, framing: Framing) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in headers {
        if name == header::CONNECTION
            || name == header::TRANSFER_ENCODING
            || name == "keep-alive"
            || (name == header::CONTENT_LENGTH && !matches!(framing, Framing::Length(None)))
        {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !headers.contains_key(header::DATE) {
        let _ = write!(
            head,
            "date: {}\r\n",
            httpdate::fmt_http_date(SystemTime::now())
        );
    }
    head.extend_from_slice(b"connection: close\r\n");
    match framing {
        Framing::Chunked => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Length(Some(length)) => {
            let _ = write!(head, "content-length: {length}\r\n");
        }
        Framing::Length(None) | Framing::None => {}
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// A connection whose first bytes were read already: reads give them back first.
pub(super) struct Rewind<IO> {
    /// Bytes read before hyper took the connection (emptied, and freed, once given back).
    read: Bytes,
    /// The connection.
    inner: IO,
}

impl<IO> Rewind<IO> {
    pub(super) fn new(read: Bytes, inner: IO) -> Self {
        Self { read, inner }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.read.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.read.len().min(buf.remaining());
        buf.put_slice(&self.read.split_to(n));
        if self.read.is_empty() {
            // An empty slice of the buffer would keep it allocated.
            self.read = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

super::write_through::write_through!([IO: AsyncWrite + Unpin] Rewind<IO>, inner);

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(head: &str) -> &'static str {
        match parse(head.as_bytes(), SocketAddr::from(([127, 0, 0, 1], 9))) {
            Parsed::Partial => "partial",
            Parsed::Lean(_) => "lean",
            Parsed::Other => "other",
        }
    }

    #[test]
    fn only_a_whole_bodiless_streaming_get_takes_the_lean_path() {
        let sse = "GET /call/1 HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n";
        assert_eq!(kind(sse), "lean");
        assert_eq!(kind(&sse[..20]), "partial");
        assert_eq!(kind(&format!("{sse}GET")), "other", "pipelined bytes");
        assert_eq!(kind("GET /call/1?stream=ndjson HTTP/1.1\r\n\r\n"), "lean");
        assert_eq!(
            kind(
                "GET /call/1 HTTP/1.1\r\nAccept: application/x-ndjson\r\nContent-Length: 0\r\n\r\n"
            ),
            "lean"
        );
        for other in [
            "GET /call/1 HTTP/1.1\r\n\r\n",
            "GET /call/1?streaming=sse HTTP/1.1\r\n\r\n",
            "GET /call/1 HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n",
            "POST /call/1 HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n",
            "GET /call/1 HTTP/1.1\r\nAccept: text/event-stream\r\nContent-Length: 3\r\n\r\n",
            "GET /call/1 HTTP/1.1\r\nAccept: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /ws HTTP/1.1\r\nAccept: text/event-stream\r\nUpgrade: websocket\r\n\r\n",
            "GET http://x/call/1 HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET /call/1 HTTP/1.1\r\nBad Header\r\n\r\n",
            "\u{0}\u{1}garbage\r\n\r\n",
        ] {
            assert_eq!(kind(other), "other", "{other:?}");
        }
    }

    #[test]
    fn the_request_carries_what_hyper_would_give_it() {
        let head = "GET /login/a%40x?since=4 HTTP/1.1\r\nAccept: text/event-stream\r\nX-A: 1\r\nX-A: 2\r\n\r\n";
        let Parsed::Lean(request) = parse(head.as_bytes(), SocketAddr::from(([10, 0, 0, 1], 7)))
        else {
            panic!("not lean");
        };
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri().path(), "/login/a%40x");
        assert_eq!(request.uri().query(), Some("since=4"));
        assert_eq!(request.headers().get_all("x-a").iter().count(), 2);
        let ConnectInfo(addr) = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .expect("valid");
        assert_eq!(addr.port(), 7);
    }

    #[test]
    fn the_answer_head_closes_and_frames_by_status_and_length() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        let stream = framing(StatusCode::OK, &headers, None);
        assert_eq!(stream, Framing::Chunked);
        let head =
            String::from_utf8(response_head(StatusCode::OK, &headers, stream)).expect("valid");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
        assert!(head.contains("connection: close\r\n"), "{head}");
        assert!(!head.contains("keep-alive"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "{head}");
        let problem = framing(StatusCode::UNAUTHORIZED, &HeaderMap::new(), Some(42));
        assert_eq!(problem, Framing::Length(Some(42)));
        let head = String::from_utf8(response_head(
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            problem,
        ))
        .expect("valid");
        assert!(head.contains("content-length: 42\r\n"), "{head}");
        assert_eq!(
            framing(StatusCode::NO_CONTENT, &HeaderMap::new(), None),
            Framing::None
        );
    }
}
