//! Server transactions under paused time: absorption, retransmission schedule, timeouts.

use std::net::SocketAddr;

use super::*;
use crate::transport::Transport;
use crate::transport::Wire;
use std::sync::Arc;
use std::sync::Mutex;

/// A wire that records what would be sent, and when.
#[derive(Default)]
pub(crate) struct Capture(pub(crate) Mutex<Vec<(Instant, Peer, Bytes)>>);

impl Wire for Capture {
    fn send(&self, to: Peer, data: Bytes) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((Instant::now(), to, data));
    }
}

impl Capture {
    pub(crate) fn times_since(&self, start: Instant) -> Vec<u128> {
        let sent = self.0.lock().unwrap_or_else(|p| p.into_inner());
        sent.iter()
            .map(|(at, _, _)| (*at - start).as_millis())
            .collect()
    }
}

fn key(method: &str) -> TxKey {
    TxKey {
        branch: "z9hG4bK-1".into(),
        sent_by: "192.0.2.1:5060".into(),
        method: method.into(),
    }
}

fn peer(transport: Transport) -> Peer {
    Peer {
        transport,
        addr: SocketAddr::from(([192, 0, 2, 1], 5060)),
    }
}

#[tokio::test(start_paused = true)]
async fn non_invite_over_udp_absorbs_retransmissions_until_timer_j() {
    let wire = Arc::new(Capture::default());
    let layer = ServerTransactions::new(wire.clone());
    let start = Instant::now();
    let k = key("REGISTER");
    assert_eq!(
        layer.receive(&k, false, peer(Transport::Udp)),
        Received::New
    );
    // A retransmission before the response is absorbed silently.
    assert_eq!(
        layer.receive(&k, false, peer(Transport::Udp)),
        Received::Retransmission
    );
    assert!(wire.times_since(start).is_empty());
    layer.respond(&k, 200, Bytes::from_static(b"200"), peer(Transport::Udp));
    assert_eq!(layer.state(&k), Some(State::Completed));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        layer.receive(&k, false, peer(Transport::Udp)),
        Received::Retransmission
    );
    assert_eq!(wire.times_since(start), [0, 10_000]);
    tokio::time::sleep(TIMEOUT).await;
    assert_eq!(layer.state(&k), None);
    assert_eq!(
        layer.receive(&k, false, peer(Transport::Udp)),
        Received::New
    );
}

#[tokio::test(start_paused = true)]
async fn non_invite_over_tcp_ends_at_the_final_response() {
    let wire = Arc::new(Capture::default());
    let layer = ServerTransactions::new(wire.clone());
    let k = key("OPTIONS");
    assert_eq!(
        layer.receive(&k, false, peer(Transport::Tcp)),
        Received::New
    );
    layer.respond(&k, 100, Bytes::from_static(b"100"), peer(Transport::Tcp));
    assert_eq!(layer.state(&k), Some(State::Proceeding));
    layer.respond(&k, 200, Bytes::from_static(b"200"), peer(Transport::Tcp));
    assert!(layer.is_empty());
}

#[tokio::test(start_paused = true)]
async fn invite_final_response_is_retransmitted_with_timer_g_until_timer_h() {
    let wire = Arc::new(Capture::default());
    let layer = ServerTransactions::new(wire.clone());
    let start = Instant::now();
    let k = key("INVITE");
    assert_eq!(
        layer.receive(&k, false, peer(Transport::Udp)),
        Received::New
    );
    layer.respond(&k, 486, Bytes::from_static(b"486"), peer(Transport::Udp));
    tokio::time::sleep(TIMEOUT + Duration::from_secs(1)).await;
    // Sent at 0, then after 0.5, 1, 2, 4, 4, 4... seconds (doubling, capped at T2), until H.
    let times = wire.times_since(start);
    assert_eq!(&times[..6], [0, 500, 1500, 3500, 7500, 11_500]);
    assert!(times.iter().all(|t| *t < 32_000));
    assert_eq!(layer.state(&k), None);
}

#[tokio::test(start_paused = true)]
async fn the_ack_stops_retransmissions_and_is_absorbed_until_timer_i() {
    let wire = Arc::new(Capture::default());
    let layer = ServerTransactions::new(wire.clone());
    let start = Instant::now();
    let k = key("INVITE");
    layer.receive(&k, false, peer(Transport::Udp));
    layer.respond(&k, 404, Bytes::from_static(b"404"), peer(Transport::Udp));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        layer.receive(&k, true, peer(Transport::Udp)),
        Received::AckAbsorbed
    );
    assert_eq!(layer.state(&k), Some(State::Confirmed));
    assert_eq!(
        layer.receive(&k, true, peer(Transport::Udp)),
        Received::AckAbsorbed
    );
    tokio::time::sleep(T4 + Duration::from_millis(1)).await;
    assert_eq!(wire.times_since(start), [0, 500]);
    assert_eq!(layer.state(&k), None);
    assert_eq!(
        layer.receive(&k, true, peer(Transport::Udp)),
        Received::AckUnmatched
    );
}

#[tokio::test(start_paused = true)]
async fn a_2xx_to_invite_ends_the_transaction() {
    let wire = Arc::new(Capture::default());
    let layer = ServerTransactions::new(wire.clone());
    let k = key("INVITE");
    layer.receive(&k, false, peer(Transport::Udp));
    layer.respond(&k, 180, Bytes::from_static(b"180"), peer(Transport::Udp));
    assert_eq!(
        layer.receive(&k, false, peer(Transport::Udp)),
        Received::Retransmission
    );
    layer.respond(&k, 200, Bytes::from_static(b"200"), peer(Transport::Udp));
    assert!(layer.is_empty());
    assert_eq!(wire.0.lock().expect("lock").len(), 3);
}
