//! Tests of the TCP transport's outbox, writer and reader.

use super::*;

/// A connected pair on loopback: the relay's side split, and the peer's stream.
async fn pair() -> (
    tokio::net::tcp::OwnedReadHalf,
    tokio::net::tcp::OwnedWriteHalf,
    SocketAddr,
    TcpStream,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let peer = TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (ours, addr) = listener.accept().await.expect("accept");
    let (reader, writer) = ours.into_split();
    (reader, writer, addr, peer)
}

#[tokio::test]
async fn everything_queued_before_the_writer_runs_arrives_in_order() {
    let (_reader, writer, addr, mut peer) = pair().await;
    let outbox = Arc::new(Outbox::default());
    // This runtime has one thread: all of these are queued before the writer first runs.
    let messages: Vec<String> = (0..10_000).map(|n| format!("message {n}\r\n")).collect();
    for m in &messages {
        assert!(outbox.push(m.as_bytes()));
    }
    let writing = tokio::spawn(write(writer, addr, outbox.clone()));
    outbox.close();
    assert!(!outbox.push(b"late"), "nothing is queued once closed");
    let mut got = String::new();
    peer.read_to_string(&mut got).await.expect("read");
    assert_eq!(got, messages.concat());
    writing.await.expect("writer");
    assert!(!outbox.is_open());
}

#[tokio::test]
async fn the_reader_waits_while_too_much_waits_for_the_peer() {
    let (_reader, writer, addr, mut peer) = pair().await;
    let outbox = Arc::new(Outbox::default());
    assert!(room(&outbox).await, "nothing waits");
    let chunk = vec![b'x'; 64 * 1024];
    let mut queued = 0;
    while queued <= PAUSE_AT {
        assert!(outbox.push(&chunk));
        queued += chunk.len();
    }
    let waiting = tokio::time::timeout(Duration::from_millis(100), room(&outbox)).await;
    assert!(waiting.is_err(), "no room before the writer takes it");
    tokio::spawn(write(writer, addr, outbox.clone()));
    let resumed = tokio::time::timeout(Duration::from_secs(5), room(&outbox)).await;
    assert_eq!(resumed.ok(), Some(true));
    outbox.close();
    let mut got = Vec::new();
    peer.read_to_end(&mut got).await.expect("read");
    assert_eq!(got.len(), queued, "all of it arrives");
}

#[tokio::test]
async fn a_peer_that_stops_reading_loses_the_connection_not_messages_silently() {
    let (reader, writer, addr, mut peer) = pair().await;
    let outbox = Arc::new(Outbox::default());
    let chunk = vec![b'x'; 64 * 1024];
    let mut queued = 0;
    while outbox.push(&chunk) {
        queued += chunk.len();
    }
    assert!(queued <= MAX_PENDING && queued + chunk.len() > MAX_PENDING);
    assert!(!outbox.is_open());
    tokio::spawn(write(writer, addr, outbox.clone()));
    // The reader of the connection stops too, and the peer sees the connection end.
    tokio::time::timeout(Duration::from_secs(5), writer_gone(&outbox))
        .await
        .expect("the writer gives up");
    drop(reader);
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), peer.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the peer sees the connection end");
}
