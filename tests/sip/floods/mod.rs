//! Floods (issue 18) against the real relay over real sockets: 1,000 unauthenticated MESSAGEs
//! from one sender fill only that sender's share of a user's queue (486 past it) and another
//! user's REST SENDs still get through; a flood of SERVICE LeaveMessage stops at the mailbox's
//! caps with a SOAP Fault saying so while other senders still leave messages; and a flood from
//! one source address gets one 503 with Retry-After, then silence, while another source is
//! served; each over UDP and TCP.

mod mailbox;
mod queue;
mod rate;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

pub(super) const BOB: &str = "bob@example.net";
pub(super) const ALICE: &str = "alice@example.net";
pub(super) const MALLORY: &str = "mallory@attacker.example";

/// A request from `from` to `sip:{to}` sent by `via` (`UDP 127.0.0.1:PORT`), with Call-ID
/// `id`, and `extra` header lines (each ending in CRLF) before the body.
pub(super) fn request(
    method: &str,
    to: &str,
    from: &str,
    via: &str,
    id: &str,
    extra: &str,
    body: &str,
) -> String {
    format!(
        "{method} sip:{to} SIP/2.0\r\nVia: SIP/2.0/{via};branch=z9hG4bK-{id};rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:{to}>\r\nFrom: <sip:{from}>;tag=f-{id}\r\nCall-ID: {id}\r\n\
         CSeq: 1 {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

pub(super) fn message(to: &str, from: &str, via: &str, id: &str) -> String {
    request(
        "MESSAGE",
        to,
        from,
        via,
        id,
        "Content-Type: text/plain\r\n",
        "buy now",
    )
}

/// A response read: its status, Call-ID and whole text.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) call_id: String,
    pub(super) text: String,
}

fn answer(text: &str) -> Option<Answer> {
    let status = text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()?;
    let call_id = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("Call-ID: ")
                .or_else(|| l.strip_prefix("i: "))
        })?
        .trim()
        .to_owned();
    Some(Answer {
        status,
        call_id,
        text: text.to_owned(),
    })
}

/// Either transport's socket to the relay.
pub(super) enum Socket {
    Udp(UdpSocket),
    Tcp(TcpStream, Vec<u8>),
}

impl Socket {
    pub(super) async fn open(relay: SocketAddr, transport: &str, ip: &str) -> Self {
        if transport == "UDP" {
            let socket = UdpSocket::bind((ip, 0)).await.unwrap();
            socket.connect(relay).await.unwrap();
            Socket::Udp(socket)
        } else {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
            Socket::Tcp(socket.connect(relay).await.unwrap(), Vec::new())
        }
    }

    /// The Via sent-by of its requests: `UDP 127.0.0.1:PORT`.
    pub(super) fn via(&self) -> String {
        match self {
            Socket::Udp(s) => format!("UDP {}", s.local_addr().unwrap()),
            Socket::Tcp(s, _) => format!("TCP {}", s.local_addr().unwrap()),
        }
    }

    pub(super) async fn send(&mut self, text: &str) {
        match self {
            Socket::Udp(s) => {
                s.send(text.as_bytes()).await.unwrap();
            }
            Socket::Tcp(s, _) => s.write_all(text.as_bytes()).await.unwrap(),
        }
    }

    /// The next response within `wait`, if any (final or not).
    pub(super) async fn next(&mut self, wait: Duration) -> Option<Answer> {
        match self {
            Socket::Udp(s) => {
                let mut buf = vec![0u8; 65_536];
                let n = tokio::time::timeout(wait, s.recv(&mut buf))
                    .await
                    .ok()?
                    .unwrap();
                answer(&String::from_utf8_lossy(&buf[..n]))
            }
            Socket::Tcp(s, pending) => loop {
                if let Some(text) = crate::agent::frame(pending) {
                    return answer(&text);
                }
                let mut buf = [0u8; 16_384];
                let n = tokio::time::timeout(wait, s.read(&mut buf))
                    .await
                    .ok()?
                    .unwrap();
                if n == 0 {
                    return None;
                }
                pending.extend_from_slice(&buf[..n]);
            },
        }
    }
}

/// Reads final answers until every one of `ids` has one, or nothing comes for `quiet`: the
/// final answer by Call-ID.
pub(super) async fn finals(
    socket: &mut Socket,
    ids: &[String],
    quiet: Duration,
) -> HashMap<String, Answer> {
    let mut got = HashMap::new();
    while got.len() < ids.len() {
        let Some(a) = socket.next(quiet).await else {
            break;
        };
        if a.status >= 200 {
            got.insert(a.call_id.clone(), a);
        }
    }
    got
}
