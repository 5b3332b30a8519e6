//! An in-process SIP endpoint over an in-memory store, with a wire that records what would
//! be sent, so tests see every response and where it goes without sockets.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use restsip_relay::auth::Auth;
use restsip_relay::bus::Bus;
use restsip_relay::calls::Calls;
use restsip_relay::config::Limits;
use restsip_relay::location::Location;
use restsip_relay::sipapp::core::Core;
use restsip_relay::sipapp::registrar::Registrar;
use restsip_relay::store::{DigestRecord, SqliteStore, Store, UserRecord};
use restsip_sip::digest::{ha1, Algorithm, DigestAuth};
use restsip_sip::endpoint::Endpoint;
use restsip_sip::framing::{Frame, FramingError, StreamFramer};
use restsip_sip::message::SipMessage;
use restsip_sip::parse::{head_end, parse_head};
use restsip_sip::transport::{Peer, Transport, Wire};

/// Where test requests come from.
pub const CLIENT: ([u8; 4], u16) = ([192, 0, 2, 99], 40_000);

/// Records what the endpoint sends.
#[derive(Default)]
pub struct Capture(pub Mutex<Vec<(Peer, Bytes)>>);

impl Wire for Capture {
    fn send(&self, to: Peer, data: Bytes) {
        self.0.lock().unwrap().push((to, data));
    }
}

/// The endpoint with its store, bus and wire.
pub struct Harness {
    /// The endpoint under test.
    pub endpoint: Endpoint,
    /// What it sent.
    pub wire: Arc<Capture>,
    /// Its accounts.
    pub store: Arc<dyn Store>,
    /// Its event bus.
    pub bus: Bus,
    /// The location service.
    pub location: Location,
}

/// A harness with digest auth on (MD5 and SHA-256) and `limits`.
pub async fn harness_with(limits: Limits, auth: bool) -> Harness {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap());
    let bus = Bus::new(0, 64, 64);
    let limits = Arc::new(limits);
    let calls = Calls::new(store.clone(), bus.clone());
    let location = Location::new(store.clone(), bus.clone(), calls, limits.clone(), None);
    let digest = auth.then(|| {
        Arc::new(DigestAuth::new(
            "restsip",
            &[Algorithm::Md5, Algorithm::Sha256],
            b"test key",
            300,
        ))
    });
    let auth = Auth::new(
        store.clone(),
        Duration::from_secs(60),
        Arc::new(restsip_relay::sipapp::registrar::Ha1::new("restsip")),
    )
    .await
    .unwrap();
    let credentials = restsip_relay::sipapp::credentials::Checker::new(auth, store.clone(), digest);
    let registrar = Registrar::new(location.clone(), credentials, limits);
    let core = Core::new(registrar);
    let wire = Arc::new(Capture::default());
    let sent_to = wire.clone();
    let (endpoint, ()) = Endpoint::build(
        restsip_sip::outgoing::Listening::plain(SocketAddr::from(([192, 0, 2, 1], 5060))),
        65_535,
        |_| sent_to,
        |_| (Box::new(core), ()),
    );
    Harness {
        endpoint,
        wire,
        store,
        bus,
        location,
    }
}

/// A harness with default limits and digest auth.
pub async fn harness() -> Harness {
    harness_with(Limits::default(), true).await
}

impl Harness {
    /// Signs up `email` with `password` (and its digest secrets).
    pub async fn user(&self, email: &str, password: &str) {
        self.store
            .create_user(&UserRecord {
                email: email.into(),
                password_hash: "unused".into(),
                name: None,
                data: Default::default(),
                created: 0,
            })
            .await
            .unwrap();
        let digest = DigestRecord {
            realm: "restsip".into(),
            md5: ha1(Algorithm::Md5, email, "restsip", password),
            sha256: ha1(Algorithm::Sha256, email, "restsip", password),
            aliases: Vec::new(),
        };
        self.store.set_digest(email, &digest).await.unwrap();
    }

    /// How many messages were sent so far.
    pub fn sent(&self) -> usize {
        self.wire.0.lock().unwrap().len()
    }

    /// Feeds bytes as one UDP datagram or as a TCP stream, and returns the responses with the
    /// same Call-ID (other transactions may be retransmitting meanwhile), waiting for `expect`
    /// of them (a response that needs the store comes from a task).
    pub async fn exchange(
        &self,
        data: &[u8],
        transport: Transport,
        expect: usize,
    ) -> Vec<(Peer, SipMessage)> {
        let before = self.sent();
        let call_id = call_id_of(data);
        let from = Peer {
            transport,
            addr: SocketAddr::from(CLIENT),
        };
        match transport {
            Transport::Udp => self.endpoint.inbound().datagram(data, from),
            Transport::Tcp | Transport::Tls => {
                let mut framer = StreamFramer::new(65_535);
                framer.extend(data);
                loop {
                    match framer.next_frame() {
                        Ok(Some(Frame::Message(m))) => self.endpoint.inbound().message(*m, from),
                        Ok(Some(Frame::Ping)) => self.endpoint.inbound().ping(from),
                        Ok(None) => break,
                        Err(FramingError::TooLarge(p)) => {
                            self.endpoint.inbound().too_large(p, from);
                            break;
                        }
                        Err(FramingError::BadLength(p)) => {
                            self.endpoint.inbound().bad_framing(p, from);
                            break;
                        }
                    }
                }
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got: Vec<(Peer, SipMessage)> = self.wire.0.lock().unwrap()[before..]
                .iter()
                .map(|(to, data)| (*to, read_response(data)))
                .filter(|(_, m)| call_id.is_none() || m.call_id() == call_id.as_deref())
                .collect();
            if got.len() >= expect || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Sends one request over UDP and returns the single response.
    pub async fn request(&self, text: &str) -> SipMessage {
        let mut got = self.exchange(text.as_bytes(), Transport::Udp, 1).await;
        assert_eq!(got.len(), 1, "expected one response to {text}");
        got.remove(0).1
    }
}

/// The Call-ID of a message, however malformed the rest.
fn call_id_of(data: &[u8]) -> Option<String> {
    let end = head_end(data).map_or(data.len(), |(end, _)| end);
    let msg = match parse_head(&data[..end]) {
        Ok(m) => m,
        Err(r) => *r.partial?,
    };
    msg.call_id().map(str::to_owned)
}

/// Reads a response without judging it: answers to malformed requests echo their faults.
pub fn read_response(data: &[u8]) -> SipMessage {
    let end = head_end(data).map_or(data.len(), |(end, _)| end);
    parse_head(&data[..end]).unwrap()
}

/// An OPTIONS to the relay itself, with a unique branch.
pub fn options(branch: &str) -> String {
    format!(
        "OPTIONS sip:relay.example.net SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.99:40000;branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:relay.example.net>\r\nFrom: <sip:probe@example.net>;tag=p\r\n\
         Call-ID: {branch}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}
