//! Hostile SIP peers over real sockets: datagrams that once stopped SIP (a character of
//! several bytes where the parser sliced text by byte index) are refused while SIP goes on,
//! and over TCP one address cannot take every connection, nor hold one without sending a
//! whole message in time, while honest phones are served throughout.

use std::net::SocketAddr;
use std::time::Duration;

use restsip_e2e::{closed_within, Relay, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

fn options(port: u16, transport: &str, call_id: &str) -> String {
    format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:{port};branch=z9hG4bK{call_id};rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:127.0.0.1>\r\nFrom: <sip:probe@127.0.0.1>;tag=t\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The answer to an OPTIONS over UDP.
async fn udp_ok(relay: SocketAddr, call_id: &str) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(relay).await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let mut buf = vec![0u8; 65_536];
    // UDP: ask a few times.
    for _ in 0..5 {
        socket
            .send(options(port, "UDP", call_id).as_bytes())
            .await
            .unwrap();
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await
        {
            return buf[..n].starts_with(b"SIP/2.0 200 ");
        }
    }
    false
}

/// Sends an OPTIONS on `stream` and reads its answer.
async fn tcp_ok(stream: &mut TcpStream, call_id: &str) -> bool {
    let port = stream.local_addr().unwrap().port();
    if stream
        .write_all(options(port, "TCP", call_id).as_bytes())
        .await
        .is_err()
    {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
        match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    }
    got.starts_with(b"SIP/2.0 200 ")
}

async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    restsip_e2e::connect_from(from, to).await.unwrap()
}

#[tokio::test]
async fn characters_of_several_bytes_never_stop_sip() {
    let relay = Relay::default().await.unwrap();
    let sip = relay.sip.unwrap();
    let poison: [&[u8]; 4] = [
        b"OPTIONS sip:x SIP\xc3\xa9\r\n\r\n",
        b"OPTIONS sip:x SIP/\xe2\x82\xac\r\n\r\n",
        b"OPTIONS sip:x \xf0\x9f\x98\x80IP/2.0\r\nVia: \xc3\r\n\r\n",
        b"SIP/\xc3\xa9 200 OK\r\n\r\n",
    ];
    // More datagrams than the relay has receive loops, several times over.
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(sip).await.unwrap();
    for _ in 0..8 {
        for datagram in poison {
            socket.send(datagram).await.unwrap();
        }
    }
    for (n, message) in poison.iter().enumerate() {
        let mut stream = TcpStream::connect(sip).await.unwrap();
        let _ = stream.write_all(message).await;
        // The connection goes on after the refusal (or is closed), never the listener.
        let _ = tcp_ok(&mut stream, &format!("after-poison-{n}")).await;
    }
    assert!(udp_ok(sip, "udp-after-poison").await, "UDP still answers");
    let mut fresh = TcpStream::connect(sip).await.unwrap();
    assert!(
        tcp_ok(&mut fresh, "tcp-after-poison").await,
        "TCP still answers"
    );
    // HTTP was never the only thing alive.
    assert_eq!(
        relay.anonymous().get("/openapi.json").await.unwrap().status,
        200
    );
}

#[tokio::test]
async fn greedy_and_slow_tcp_peers_lose_their_connections_not_everyone_else() {
    let relay = Relay::start(&[
        "--sip-max-connections-per-ip",
        "5",
        "--sip-message-timeout",
        "2",
    ])
    .await
    .unwrap();
    let sip = relay.sip.unwrap();
    // 10 connections from 127.0.0.2: past 5 they are closed at once.
    let mut greedy = Vec::new();
    for _ in 0..10 {
        greedy.push(connect_from("127.0.0.2", sip).await);
    }
    let mut cut = 0;
    for stream in &mut greedy[5..] {
        if closed_within(stream, Duration::from_millis(600), b"").await {
            cut += 1;
        }
    }
    assert_eq!(cut, 5, "connections past the per-address limit are closed");
    // An honest phone from another address is served meanwhile, and keeps its connection
    // while idle past the message timeout.
    let mut phone = connect_from("127.0.0.1", sip).await;
    assert!(tcp_ok(&mut phone, "honest-1").await);
    // The five held: two silent, two dripping a message byte by byte, one sending a whole
    // message first (it then idles like the phone). All but the last end at the deadline.
    let mut held: Vec<TcpStream> = greedy.drain(..5).collect();
    assert!(tcp_ok(&mut held[4], "greedy-but-honest").await);
    let ends = held[..4].iter_mut().enumerate().map(|(i, s)| {
        let drip: &'static [u8] = if i < 2 { b"" } else { b"O" };
        closed_within(s, Duration::from_secs(8), drip)
    });
    let ended = futures_util::future::join_all(ends).await;
    assert_eq!(
        ended, [true; 4],
        "silent and dripping connections are cut off"
    );
    assert!(
        tcp_ok(&mut held[4], "still-open").await,
        "a connection that sent a message stays"
    );
    assert!(
        tcp_ok(&mut phone, "honest-2").await,
        "the phone's connection stays"
    );
    // The address has its slots back.
    let mut again = connect_from("127.0.0.2", sip).await;
    assert!(tcp_ok(&mut again, "after-the-cut").await);
}
