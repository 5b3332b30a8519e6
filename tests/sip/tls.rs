//! SIP over TLS (RFC 3261 §26, RFC 5630) with `openssl s_client` as the phone's TLS stack: it
//! verifies the relay's certificate against the test CA, then OPTIONS and a REGISTER with its
//! digest challenge go over that connection, the answers come back on it (Via `SIP/2.0/TLS`),
//! and a web user's MESSAGE to the login registered over TLS arrives over the same connection.
//! Malformed SIP over TLS gets 400 and the connection stays; garbage in place of a handshake
//! costs its connection only. Outgoing TLS verifies the far end's certificate: trusted with
//! `--tls-ca`, refused without.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use restsip_e2e::tls::{OpensslPeer, Pki};
use restsip_e2e::{Client, Relay, Reply, WAIT};
use restsip_protocol::EventKind;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::phones::{header_lines, md5_hex, param};

const ALICE: &str = "alice@example.net";
const BOB: &str = "bob@example.net";

/// The flags of a relay with SIP over TLS on a free port, its certificate issued by `pki` for
/// `hosts`.
fn tls_flags(pki: &Pki, hosts: &[&str]) -> Vec<String> {
    let issued = pki.issue("relay", hosts).unwrap();
    vec![
        "--tls-cert".to_owned(),
        issued.cert.display().to_string(),
        "--tls-key".to_owned(),
        issued.key.display().to_string(),
        "--sip-tls".to_owned(),
        "127.0.0.1:0".to_owned(),
    ]
}

/// A relay with SIP over TLS on a free port, its certificate issued by `pki` for 127.0.0.1;
/// and that TLS address.
pub(crate) async fn relay_with_tls(pki: &Pki, extra: &[&str]) -> (Relay, SocketAddr) {
    let flags = tls_flags(pki, &["127.0.0.1", "localhost"]);
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    let mut relay = Relay::start(&args).await.unwrap();
    relay.trust(pki.client_config());
    let tls: SocketAddr = relay
        .announced("sip on tls ")
        .expect("the third startup line")
        .parse()
        .unwrap();
    assert_ne!(Some(tls), relay.sip, "TLS has a port of its own");
    (relay, tls)
}

fn options(tls: SocketAddr, n: u32) -> String {
    format!(
        "OPTIONS sip:{tls} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-tls-opt-{n};rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:{tls}>\r\nFrom: <sip:probe@example.net>;tag=o{n}\r\n\
         Call-ID: tls-options-{n}\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

fn register(tls: SocketAddr, aor: &str, cseq: u32, authorization: Option<&str>) -> String {
    let authorization = authorization.map_or(String::new(), |a| format!("{a}\r\n"));
    format!(
        "REGISTER sip:{tls} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-tls-reg-{cseq};rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:{aor}>\r\nFrom: <sip:{aor}>;tag=tlsreg\r\n\
         Call-ID: tls-register\r\nCSeq: {cseq} REGISTER\r\n\
         Contact: <sip:phone@127.0.0.1:5999;transport=tls>\r\nExpires: 300\r\n{authorization}\
         Content-Length: 0\r\n\r\n"
    )
}

/// Registers `aor` over `peer` with its password's MD5 digest; the final response.
pub(crate) async fn register_over(peer: &mut OpensslPeer, tls: SocketAddr, aor: &str) -> String {
    peer.send(register(tls, aor, 1, None).as_bytes())
        .await
        .unwrap();
    let challenge = peer.next_message().await.unwrap();
    assert!(challenge.starts_with("SIP/2.0 401 "), "{challenge}");
    let line = header_lines(&challenge, "WWW-Authenticate").remove(0);
    let (realm, nonce) = (param(&line, "realm"), param(&line, "nonce"));
    let uri = format!("sip:{tls}");
    let ha1 = md5_hex(&format!("{aor}:{realm}:pw-{aor}"));
    let ha2 = md5_hex(&format!("REGISTER:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}"));
    let authorization = format!(
        "Authorization: Digest username=\"{aor}\", realm=\"{realm}\", nonce=\"{nonce}\", \
         uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, \
         cnonce=\"c0ffee\""
    );
    peer.send(register(tls, aor, 2, Some(&authorization)).as_bytes())
        .await
        .unwrap();
    peer.next_message().await.unwrap()
}

#[tokio::test]
async fn options_and_a_register_with_digest_over_tls_are_answered_on_the_connection() {
    let pki = Pki::new().unwrap();
    let (relay, tls) = relay_with_tls(&pki, &[]).await;
    let alice = relay.user(ALICE).await.unwrap();
    let mut logins = alice.sse(&format!("/login/{ALICE}"), None).await.unwrap();
    assert_eq!(logins.next().await.unwrap().kind, EventKind::State);

    let mut phone = OpensslPeer::connect(tls, &pki.ca_file()).await.unwrap();
    phone.send(options(tls, 1).as_bytes()).await.unwrap();
    let ok = phone.next_message().await.unwrap();
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    let via = header_lines(&ok, "Via").remove(0);
    assert!(via.contains("SIP/2.0/TLS 127.0.0.1:5999"), "{ok}");
    assert!(via.contains("received=127.0.0.1"), "{ok}");

    let registered = register_over(&mut phone, tls, ALICE).await;
    assert!(registered.starts_with("SIP/2.0 200 "), "{registered}");
    assert!(
        header_lines(&registered, "Contact")
            .iter()
            .any(|c| c.contains("transport=tls")),
        "{registered}"
    );
    let added = logins.next().await.unwrap();
    assert_eq!(added.kind, EventKind::Added);
    assert_eq!(added.data["source"], "sip", "{}", added.data);
}

/// Alice's phone registered over TLS at a [`relay_with_tls`]; bob a web user there.
pub(crate) struct TlsPhone {
    /// The test CA (its files live as long as it).
    _pki: Pki,
    /// The relay (running as long as it is kept).
    _relay: Relay,
    /// The relay's TLS address.
    pub(crate) tls: SocketAddr,
    pub(crate) bob: Client,
    /// Alice's phone, on the connection it registered over.
    pub(crate) phone: OpensslPeer,
}

/// [`TlsPhone`], the relay started with `extra` flags too.
pub(crate) async fn alice_registered_over_tls(extra: &[&str]) -> TlsPhone {
    let pki = Pki::new().unwrap();
    let (relay, tls) = relay_with_tls(&pki, extra).await;
    relay.user(ALICE).await.unwrap();
    let bob = relay.user(BOB).await.unwrap();
    let mut phone = OpensslPeer::connect(tls, &pki.ca_file()).await.unwrap();
    let registered = register_over(&mut phone, tls, ALICE).await;
    assert!(registered.starts_with("SIP/2.0 200 "), "{registered}");
    TlsPhone {
        _pki: pki,
        _relay: relay,
        tls,
        bob,
        phone,
    }
}

/// Bob's SEND of `body` to alice, its reply when it comes.
pub(crate) fn bob_sends(bob: &Client, body: Value) -> tokio::task::JoinHandle<Reply> {
    let bob = bob.clone();
    tokio::spawn(async move {
        bob.request("SEND", &format!("/login/{ALICE}"), Some(body))
            .await
            .unwrap()
    })
}

/// The phone's response to `req` with `status` (a To tag added when it has none).
pub(crate) fn phone_response(req: &str, status: &str) -> String {
    let mut answer = format!("SIP/2.0 {status}\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        for line in header_lines(req, name) {
            answer.push_str(&line);
            if name == "To" && !line.contains("tag=") {
                answer.push_str(";tag=tlsphone");
            }
            answer.push_str("\r\n");
        }
    }
    answer.push_str("Content-Length: 0\r\n\r\n");
    answer
}

#[tokio::test]
async fn a_message_to_a_login_registered_over_tls_arrives_over_that_connection() {
    let mut alice = alice_registered_over_tls(&[]).await;
    let (bob, phone) = (&alice.bob, &mut alice.phone);
    let send = bob_sends(bob, json!({"command": "im", "text": "hello over tls"}));
    let message = phone.next_message().await.unwrap();
    assert!(
        message.starts_with("MESSAGE sip:phone@127.0.0.1:5999"),
        "{message}"
    );
    assert!(message.ends_with("hello over tls"), "{message}");
    let via = header_lines(&message, "Via").remove(0);
    assert!(
        via.contains("SIP/2.0/TLS "),
        "the relay's Via names TLS: {message}"
    );
    // The phone's 200, back over the same connection.
    phone
        .send(phone_response(&message, "200 OK").as_bytes())
        .await
        .unwrap();
    let receipt = tokio::time::timeout(WAIT, send).await.unwrap().unwrap();
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    let delivery = &receipt.body["deliveries"][0];
    assert_eq!(delivery["status"], "delivered", "{}", receipt.body);
    assert_eq!(delivery["sip"]["code"], 200, "{}", receipt.body);
}

#[tokio::test]
async fn malformed_sip_over_tls_gets_400_and_neither_connection_nor_listener_stops() {
    let pki = Pki::new().unwrap();
    let (_relay, tls) = relay_with_tls(&pki, &[]).await;
    let mut phone = OpensslPeer::connect(tls, &pki.ca_file()).await.unwrap();
    // A framed request with no Call-ID, CSeq or From.
    phone
        .send(
            b"OPTIONS sip:relay SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-bad\r\n\
              To: <sip:relay>\r\nContent-Length: 0\r\n\r\n",
        )
        .await
        .unwrap();
    let bad = phone.next_message().await.unwrap();
    assert!(bad.starts_with("SIP/2.0 400 "), "{bad}");
    phone.send(options(tls, 2).as_bytes()).await.unwrap();
    let ok = phone.next_message().await.unwrap();
    assert!(
        ok.starts_with("SIP/2.0 200 "),
        "the connection still serves: {ok}"
    );
    assert!(phone.running());

    // Not a handshake at all, a handshake cut short, plain SIP: each loses its connection.
    for junk in [
        &b"OPTIONS sip:relay SIP/2.0\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00][..],
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0xde, 0xad, 0xbe, 0xef][..],
    ] {
        let mut raw = tokio::net::TcpStream::connect(tls).await.unwrap();
        raw.write_all(junk).await.unwrap();
        let _ = raw.shutdown().await;
        let mut rest = Vec::new();
        let read = tokio::time::timeout(WAIT, raw.read_to_end(&mut rest)).await;
        assert!(
            read.is_ok(),
            "the relay closes a connection that is not TLS"
        );
        assert!(
            !String::from_utf8_lossy(&rest).contains("SIP/2.0"),
            "no SIP in the clear"
        );
    }
    // The listener and the open connection go on.
    let mut other = OpensslPeer::connect(tls, &pki.ca_file()).await.unwrap();
    other.send(options(tls, 3).as_bytes()).await.unwrap();
    assert!(other
        .next_message()
        .await
        .unwrap()
        .starts_with("SIP/2.0 200 "));
    phone.send(options(tls, 4).as_bytes()).await.unwrap();
    assert!(phone
        .next_message()
        .await
        .unwrap()
        .starts_with("SIP/2.0 200 "));
}

/// A SIP over TLS server in the test: presents `cert` (issued by the test CA for
/// 127.0.0.1), counts the connections it accepts and hands over the first request it reads
/// on the first connection that completes a handshake.
async fn tls_sip_server(
    cert: &restsip_e2e::tls::Issued,
) -> (
    SocketAddr,
    Arc<AtomicUsize>,
    tokio::task::JoinHandle<Option<String>>,
) {
    use rustls::pki_types::pem::PemObject;
    let chain = rustls::pki_types::CertificateDer::pem_file_iter(&cert.cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&cert.key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = attempts.clone();
    let task = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.ok()?;
            counted.fetch_add(1, Ordering::SeqCst);
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue; // the relay refused our certificate
            };
            let mut buf = vec![0u8; 65_536];
            let n = tls.read(&mut buf).await.ok()?;
            return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    (addr, attempts, task)
}

#[tokio::test]
async fn outgoing_tls_verifies_the_far_end_against_tls_ca_and_mozilla_roots() {
    let pki = Pki::new().unwrap();
    let far = pki.issue("far-end", &["127.0.0.1"]).unwrap();
    let envelope = r#"<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><m:Ping xmlns:m="urn:test"/></soap:Body></soap:Envelope>"#;

    // Trusted through --tls-ca: the SERVICE arrives over TLS.
    let ca = pki.ca_file().display().to_string();
    let (relay, _) = relay_with_tls(&pki, &["--tls-ca", &ca]).await;
    let alice = relay.user(ALICE).await.unwrap();
    let (addr, _, server) = tls_sip_server(&far).await;
    let uri = format!("sips:{addr}");
    let sending = {
        let alice = alice.clone();
        let body = json!({"uri": uri, "body": envelope});
        tokio::spawn(async move { alice.request("POST", "/service", Some(body)).await })
    };
    let got = tokio::time::timeout(WAIT, server).await.unwrap().unwrap();
    let got = got.expect("a request over TLS");
    assert!(
        got.starts_with(&format!("SERVICE sips:{addr} SIP/2.0")),
        "{got}"
    );
    assert!(got.contains("Via: SIP/2.0/TLS "), "{got}");
    sending.abort();

    // Not trusted (Mozilla's roots only): the relay connects, refuses the certificate and
    // sends nothing.
    let pki_other = Pki::new().unwrap();
    let flags = tls_flags(&pki_other, &["127.0.0.1"]);
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut relay = Relay::start_logging(&args, "warn").await.unwrap();
    relay.trust(pki_other.client_config());
    let alice = relay.user(ALICE).await.unwrap();
    let (addr, attempts, server) = tls_sip_server(&far).await;
    let body = json!({"uri": format!("sip:{addr};transport=tls"), "body": envelope});
    let sending = tokio::spawn(async move { alice.request("POST", "/service", Some(body)).await });
    let deadline = tokio::time::Instant::now() + WAIT;
    while !relay.log().contains("SIP TLS connection refused") {
        assert!(tokio::time::Instant::now() < deadline, "{}", relay.log());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        attempts.load(Ordering::SeqCst) >= 1,
        "the relay did connect"
    );
    assert!(
        !server.is_finished(),
        "no request reached the untrusted far end"
    );
    sending.abort();
    server.abort();
}
