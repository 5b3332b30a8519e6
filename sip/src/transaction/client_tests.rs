//! Client transactions under paused time: retransmission schedules, timeouts, ACK of non-2xx.

use std::net::SocketAddr;

use super::*;
use crate::parse::parse_datagram;
use crate::transaction::server::tests::Capture;
use crate::transport::Transport;
use std::sync::Arc;

fn request(method: &str) -> SipMessage {
    let text = format!(
        "{method} sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKc1\r\n\
         Max-Forwards: 70\r\nTo: <sip:bob@example.net>\r\nFrom: <sip:relay@example.net>;tag=r1\r\n\
         Call-ID: client-1\r\nCSeq: 4 {method}\r\nContent-Length: 0\r\n\r\n"
    );
    parse_datagram(text.as_bytes()).expect("request")
}

fn response(method: &str, code: u16) -> SipMessage {
    let text = format!(
        "SIP/2.0 {code} Whatever\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKc1\r\n\
         To: <sip:bob@example.net>;tag=b7\r\nFrom: <sip:relay@example.net>;tag=r1\r\n\
         Call-ID: client-1\r\nCSeq: 4 {method}\r\nContent-Length: 0\r\n\r\n"
    );
    parse_datagram(text.as_bytes()).expect("response")
}

fn udp() -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(([127, 0, 0, 1], 5070)),
    }
}

#[tokio::test(start_paused = true)]
async fn non_invite_is_retransmitted_with_timer_e_and_times_out_with_timer_f() {
    let wire = Arc::new(Capture::default());
    let layer = ClientTransactions::new(wire.clone());
    let start = Instant::now();
    let mut rx = layer.send(&request("OPTIONS"), udp()).expect("sent");
    assert_eq!(rx.recv().await, Some(Outcome::Timeout));
    assert_eq!((Instant::now() - start).as_millis(), 32_000);
    assert_eq!(
        wire.times_since(start),
        [0, 500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
    );
}

#[tokio::test(start_paused = true)]
async fn a_provisional_response_slows_non_invite_retransmissions_to_t2() {
    let wire = Arc::new(Capture::default());
    let layer = ClientTransactions::new(wire.clone());
    let start = Instant::now();
    let mut rx = layer.send(&request("MESSAGE"), udp()).expect("sent");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(layer.on_response(response("MESSAGE", 100)));
    assert!(matches!(rx.recv().await, Some(Outcome::Response(r)) if r.code() == Some(100)));
    tokio::time::sleep(Duration::from_millis(6000)).await;
    assert!(layer.on_response(response("MESSAGE", 200)));
    assert!(matches!(rx.recv().await, Some(Outcome::Response(r)) if r.code() == Some(200)));
    // 0, 0.5 (E), then at 1.5 the interval is T2 after the 100: 1.5, 5.5.
    assert_eq!(wire.times_since(start), [0, 500, 1500, 5500]);
    // Completed: a retransmitted 200 is absorbed, and Timer K ends the transaction.
    assert!(layer.on_response(response("MESSAGE", 200)));
    tokio::time::sleep(T4 + Duration::from_millis(1)).await;
    assert!(!layer.on_response(response("MESSAGE", 200)));
}

#[tokio::test(start_paused = true)]
async fn invite_doubles_timer_a_and_acknowledges_a_failure_itself() {
    let wire = Arc::new(Capture::default());
    let layer = ClientTransactions::new(wire.clone());
    let start = Instant::now();
    let mut rx = layer.send(&request("INVITE"), udp()).expect("sent");
    tokio::time::sleep(Duration::from_millis(4000)).await;
    assert_eq!(wire.times_since(start), [0, 500, 1500, 3500]);
    assert!(layer.on_response(response("INVITE", 486)));
    assert!(matches!(rx.recv().await, Some(Outcome::Response(r)) if r.code() == Some(486)));
    assert!(layer.on_response(response("INVITE", 486)));
    let sent = wire.0.lock().expect("lock").clone();
    let acks: Vec<SipMessage> = sent[4..]
        .iter()
        .map(|(_, _, d)| parse_datagram(d).expect("ack"))
        .collect();
    assert_eq!(acks.len(), 2, "one ACK per final response received");
    assert_eq!(acks[0].method(), Some(&Method::ACK));
    assert_eq!(acks[0].cseq().expect("cseq").to_string(), "4 ACK");
    assert_eq!(acks[0].to().expect("to").tag(), Some("b7"));
    assert_eq!(acks[0].top_via().expect("via").branch(), Some("z9hG4bKc1"));
}

#[tokio::test(start_paused = true)]
async fn invite_times_out_with_timer_b_and_tcp_is_never_retransmitted() {
    let wire = Arc::new(Capture::default());
    let layer = ClientTransactions::new(wire.clone());
    let start = Instant::now();
    let tcp = Peer {
        transport: Transport::Tcp,
        ..udp()
    };
    let mut rx = layer.send(&request("INVITE"), tcp).expect("sent");
    assert_eq!(rx.recv().await, Some(Outcome::Timeout));
    assert_eq!(wire.times_since(start), [0]);
}

#[tokio::test(start_paused = true)]
async fn a_ringing_invite_outlives_timer_b_until_the_backstop() {
    let wire = Arc::new(Capture::default());
    let layer = ClientTransactions::new(wire.clone());
    let start = Instant::now();
    let mut rx = layer.send(&request("INVITE"), udp()).expect("sent");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(layer.on_response(response("INVITE", 180)));
    assert!(matches!(rx.recv().await, Some(Outcome::Response(r)) if r.code() == Some(180)));
    assert_eq!(rx.recv().await, Some(Outcome::Timeout));
    assert_eq!(Instant::now() - start, TIMEOUT + TIMER_C);
    // Proceeding stops Timer A: only the request itself went out.
    assert_eq!(wire.times_since(start), [0]);
}
