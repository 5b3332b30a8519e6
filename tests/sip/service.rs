//! SERVICE and SOAP (draft-deason-sip-soap) against the real relay: the draft's three flows
//! (success after an OPTIONS probe, 501 for an unknown service, 500 with a Fault) with sipp over
//! UDP and TCP; malformed XML, a wrong body type and an oversize body over a raw socket; an
//! offline message left by SOAP; and a SOAP-over-HTTP endpoint (a small axum server in the test
//! process) that the relay forwards to.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use restsip_e2e::{Relay, WAIT};
use serde_json::{json, Value};
use tokio::net::UdpSocket;

use crate::sipp::{free_port, Run, TCP, UDP};

const ENVELOPE: &str = "http://schemas.xmlsoap.org/soap/envelope/";

fn call(namespace: &str, method: &str, params: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><SOAP-ENV:Envelope xmlns:SOAP-ENV=\"{ENVELOPE}\"><SOAP-ENV:Body>\
         <m:{method} xmlns:m=\"{namespace}\">{params}</m:{method}></SOAP-ENV:Body></SOAP-ENV:Envelope>"
    )
}

/// Sends a SERVICE for `sip:127.0.0.1` from bob over UDP and returns the final response's text.
async fn service(relay: &Relay, content_type: Option<&str>, body: &str, extra: &str) -> String {
    let ct = content_type.map_or(String::new(), |c| format!("Content-Type: {c}\r\n"));
    exchange(
        relay.sip.unwrap(),
        "127.0.0.1",
        "bob@example.net",
        &format!("{ct}{extra}"),
        body,
    )
    .await
}

/// Sends a SOAP SERVICE from carol over UDP to `sip:{user}` and returns the final response's
/// text.
async fn service_to_user(sip: SocketAddr, user: &str, body: &str) -> String {
    exchange(
        sip,
        user,
        "carol@example.net",
        "Content-Type: text/xml\r\n",
        body,
    )
    .await
}

/// Sends `SERVICE sip:{target}` from `from` with the `headers` given (each ending in CRLF) and
/// `body` over UDP, and returns the final response's text.
async fn exchange(sip: SocketAddr, target: &str, from: &str, headers: &str, body: &str) -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(sip).await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let id = format!("svc-{:x}", rand_id());
    let msg = format!(
        "SERVICE sip:{target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{id};rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:{target}>\r\nFrom: <sip:{from}>;tag=t\r\n\
         Call-ID: {id}\r\nCSeq: 7 SERVICE\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    final_response(&socket, &msg, &id).await
}

/// Sends `msg` on `socket` and returns the text of the final response with Call-ID `id`.
async fn final_response(socket: &UdpSocket, msg: &str, id: &str) -> String {
    socket.send(msg.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 65_536];
    loop {
        let n = tokio::time::timeout(WAIT, socket.recv(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no answer to SERVICE {id}"))
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.contains(&format!("Call-ID: {id}\r\n")) && !text.starts_with("SIP/2.0 1") {
            return text;
        }
    }
}

fn rand_id() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ (n << 48)
}

fn body_of(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[tokio::test]
async fn the_drafts_three_flows_over_udp_and_tcp() {
    let relay = Relay::default().await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let login = alice
        .request(
            "POST",
            "/login/alice@example.net",
            Some(json!({"contact": "sip:alice@192.0.2.7:5062"})),
        )
        .await
        .unwrap();
    assert_eq!(login.status, 201, "{}", login.body);
    for mode in [UDP, TCP] {
        let port = free_port();
        let user = [("user", "alice@example.net")];
        let nobody = [("user", "nobody@example.net")];
        for (scenario, keys) in [
            ("service-presence", &user[..]),
            ("service-unknown", &[][..]),
            ("service-fault", &nobody[..]),
        ] {
            Run {
                relay: relay.sip.unwrap(),
                scenario,
                mode,
                port,
                keys,
                auth: None,
            }
            .pass()
            .await
            .unwrap();
        }
    }
}

/// The draft's section 6 examples with their headers as written: RFC 2543 style (no branch, no
/// Max-Forwards, bare To/From, `Call-ID:` without a space, a host with underscores). Only `;rport`
/// is added to the Via so that the answer reaches this test's port, and the third request takes
/// CSeq 2 because it reuses the first one's Call-ID ("SERVICE request with the same Call-ID MUST
/// have increasing CSeq header values"). The bodies call the relay's built-in service.
#[tokio::test]
async fn the_drafts_example_messages_as_written() {
    let relay = Relay::default().await.unwrap();
    relay.user("jo@ubiquity.net").await.unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(relay.sip.unwrap()).await.unwrap();
    let draft = |host: &str, from: &str, call_id: &str, cseq: u32, body: &str| {
        format!(
            "SERVICE sip:{host} SIP/2.0\r\nTo: sip:{host}\r\nFrom: sip:{from}\r\n\
             Call-ID:{call_id}\r\nCSeq: {cseq} SERVICE\r\nVia: SIP/2.0/UDP {from};rport\r\n\
             Content-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let presence = |user: &str| {
        call(
            "urn:restsip:user",
            "GetPresence",
            &format!("<user>{user}</user>"),
        )
    };
    let broker = "application_service_broker.ubiquity.net";

    // Success: 200 with the SOAP response.
    let ok = draft(
        broker,
        "proxy.ubiquity.net",
        "648324@193.195.52.30",
        1,
        &presence("sip:jo@ubiquity.net"),
    );
    let res = final_response(&socket, &ok, "648324@193.195.52.30").await;
    assert!(res.starts_with("SIP/2.0 200 OK\r\n"), "{res}");
    assert!(
        res.contains("\r\nTo: sip:application_service_broker.ubiquity.net;tag="),
        "{res}"
    );
    assert!(res.contains("\r\nCSeq: 1 SERVICE\r\n"), "{res}");
    assert!(res.contains("\r\nContent-Type: text/xml\r\n"), "{res}");
    assert!(
        body_of(&res).contains("<user>jo@ubiquity.net</user>"),
        "{res}"
    );

    // A service the server does not offer: 501 Not Implemented.
    let credit = call(
        "Some-URI",
        "GetCreditLimit",
        "<user>sip:jo@ubiquity.net</user>",
    );
    let unknown = draft(
        "application_service_broker.there.com",
        "proxy.here.com",
        "648324@112.33.58.22",
        1,
        &credit,
    );
    let res = final_response(&socket, &unknown, "648324@112.33.58.22").await;
    assert!(res.starts_with("SIP/2.0 501 Not Implemented\r\n"), "{res}");

    // The service fails: 500 with a SOAP Fault naming the unknown user.
    let fails = draft(
        broker,
        "proxy.ubiquity.net",
        "648324@193.195.52.30",
        2,
        &presence("sip:jo@gods.org"),
    );
    let res = final_response(&socket, &fails, "648324@193.195.52.30").await;
    assert!(
        res.starts_with("SIP/2.0 500 Server Internal Error\r\n"),
        "{res}"
    );
    assert!(res.contains("\r\nCSeq: 2 SERVICE\r\n"), "{res}");
    assert!(
        body_of(&res).contains("<faultstring>404 Unknown User - sip:jo@gods.org</faultstring>"),
        "{res}"
    );
}

#[tokio::test]
async fn bad_bodies_get_400_415_and_513_and_the_relay_goes_on() {
    // A small message limit, so that an oversize SERVICE still fits in one UDP datagram.
    let relay = Relay::start(&["--sip-max-message-bytes", "8192"])
        .await
        .unwrap();
    let get = call(
        "urn:restsip:user",
        "GetPresence",
        "<user>x@example.net</user>",
    );

    let res = service(&relay, Some("text/xml"), "<SOAP-ENV:Envelope", "").await;
    assert!(res.starts_with("SIP/2.0 400 "), "{res}");
    assert!(body_of(&res).contains("SOAP-ENV:Client"), "{res}");

    let soap12 = get.replace(ENVELOPE, "http://www.w3.org/2003/05/soap-envelope");
    let res = service(&relay, Some("text/xml"), &soap12, "").await;
    assert!(res.starts_with("SIP/2.0 400 "), "{res}");
    assert!(body_of(&res).contains("SOAP-ENV:VersionMismatch"), "{res}");

    let no_body = format!("<e:Envelope xmlns:e=\"{ENVELOPE}\"><e:Header/></e:Envelope>");
    let res = service(&relay, Some("text/xml"), &no_body, "").await;
    assert!(res.starts_with("SIP/2.0 400 "), "{res}");

    let res = service(&relay, Some("application/json"), "{\"a\": 1}", "").await;
    assert!(res.starts_with("SIP/2.0 415 "), "{res}");
    assert!(
        res.contains("Accept: text/xml, application/soap+xml\r\n"),
        "{res}"
    );

    let res = service(&relay, Some("text/xml"), &get, "Content-Encoding: gzip\r\n").await;
    assert!(res.starts_with("SIP/2.0 415 "), "{res}");

    // A mandatory header the built-in services do not understand.
    let must = get.replace(
        "<SOAP-ENV:Body>",
        "<SOAP-ENV:Header><t:Tx xmlns:t=\"urn:tx\" SOAP-ENV:mustUnderstand=\"1\">1</t:Tx>\
         </SOAP-ENV:Header><SOAP-ENV:Body>",
    );
    let res = service(&relay, Some("text/xml"), &must, "").await;
    assert!(res.starts_with("SIP/2.0 500 "), "{res}");
    assert!(body_of(&res).contains("SOAP-ENV:MustUnderstand"), "{res}");

    // Larger than the limit: 513, read from the head alone.
    let huge = call(
        "urn:restsip:user",
        "GetPresence",
        &format!("<user>{}</user>", "a".repeat(10_000)),
    );
    let res = service(&relay, Some("text/xml"), &huge, "").await;
    assert!(res.starts_with("SIP/2.0 513 "), "{res}");

    // An XML bomb is refused, not expanded.
    let bomb = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]>{get}"
    );
    let res = service(&relay, Some("text/xml"), &bomb, "").await;
    assert!(res.starts_with("SIP/2.0 400 "), "{res}");

    let res = service(&relay, Some("text/xml"), &get, "").await;
    assert!(
        res.starts_with("SIP/2.0 500 "),
        "the relay still answers: {res}"
    );
}

#[tokio::test]
async fn leave_message_puts_an_offline_message_in_the_mailbox() {
    let relay = Relay::default().await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let leave = call(
        "urn:restsip:user",
        "LeaveMessage",
        "<user>alice@example.net</user><url>rtsp://mail.example.net/7</url>\
         <subject>call me &amp; soon</subject>",
    );
    let res = service(&relay, Some("text/xml"), &leave, "").await;
    assert!(res.starts_with("SIP/2.0 200 "), "{res}");
    assert!(body_of(&res).contains("<m:LeaveMessageResponse"), "{res}");
    let mail = alice
        .get("/user/alice@example.net/message")
        .await
        .unwrap()
        .body;
    let mail = mail.as_array().unwrap();
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(mail[0]["url"], "rtsp://mail.example.net/7");
    assert_eq!(mail[0]["subject"], "call me & soon");
    assert_eq!(mail[0]["from"], "bob@example.net");

    let empty = call(
        "urn:restsip:user",
        "LeaveMessage",
        "<user>alice@example.net</user>",
    );
    let res = service(&relay, Some("text/xml"), &empty, "").await;
    assert!(res.starts_with("SIP/2.0 500 "), "{res}");
    assert!(body_of(&res).contains("SOAP-ENV:Client"), "{res}");

    let unknown = call("urn:restsip:user", "DeleteEverything", "");
    let res = service(&relay, Some("text/xml"), &unknown, "").await;
    assert!(res.starts_with("SIP/2.0 501 "), "{res}");
}

/// What the SOAP endpoint saw: SOAPAction and body of each request.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

async fn soap_endpoint() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/soap",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let log = log.clone();
            async move {
                let action = headers
                    .get("soapaction")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                log.lock().unwrap().push((action, body.clone()));
                let xml = [("content-type", "text/xml; charset=utf-8")];
                if !content_type.starts_with("text/xml") {
                    return (StatusCode::UNSUPPORTED_MEDIA_TYPE, xml, String::new());
                }
                if body.contains("GetLastTradePrice") {
                    let ok = format!(
                        "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"{ENVELOPE}\"><SOAP-ENV:Body>\
                         <m:GetLastTradePriceResponse xmlns:m=\"Some-URI\"><Price>34.5</Price>\
                         </m:GetLastTradePriceResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>"
                    );
                    (StatusCode::OK, xml, ok)
                } else if body.contains("NotJson") {
                    (StatusCode::OK, xml, "{\"not\": \"xml\"}".to_owned())
                } else {
                    let fault = format!(
                        "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"{ENVELOPE}\"><SOAP-ENV:Body><SOAP-ENV:Fault>\
                         <faultcode>SOAP-ENV:Server</faultcode><faultstring>Server Error</faultstring>\
                         <detail><e:myfaultdetails xmlns:e=\"Some-URI\"><message>My application \
                         didn't work</message><errorcode>1001</errorcode></e:myfaultdetails></detail>\
                         </SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>"
                    );
                    (StatusCode::INTERNAL_SERVER_ERROR, xml, fault)
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

#[tokio::test]
async fn a_configured_http_endpoint_serves_its_namespace() {
    let (addr, seen) = soap_endpoint().await;
    // A port nothing listens on, for an endpoint that is down.
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_port = down.local_addr().unwrap().port();
    drop(down);
    let relay = Relay::start(&[
        "--soap-service",
        &format!("Some-URI=http://{addr}/soap"),
        "--soap-service",
        &format!("urn:example:down=http://127.0.0.1:{down_port}/soap"),
        "--soap-timeout",
        "3",
    ])
    .await
    .unwrap();

    let quote = call("Some-URI", "GetLastTradePrice", "<symbol>DIS</symbol>");
    let res = service(&relay, Some("text/xml"), &quote, "").await;
    assert!(res.starts_with("SIP/2.0 200 "), "{res}");
    assert!(res.contains("Content-Type: text/xml\r\n"), "{res}");
    assert!(body_of(&res).contains("<Price>34.5</Price>"), "{res}");
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].0, "\"Some-URI#GetLastTradePrice\"");
        assert_eq!(seen[0].1, quote, "the envelope is forwarded as it came");
    }

    // The SIP request's SOAPAction is passed on; the endpoint's Fault comes back with 500.
    let fail = call("Some-URI", "Explode", "");
    let res = service(
        &relay,
        Some("text/xml"),
        &fail,
        "SOAPAction: \"urn:act\"\r\n",
    )
    .await;
    assert!(res.starts_with("SIP/2.0 500 "), "{res}");
    assert!(
        body_of(&res).contains("<errorcode>1001</errorcode>"),
        "{res}"
    );
    assert_eq!(seen.lock().unwrap()[1].0, "\"urn:act\"");

    // An answer that is not SOAP, and an endpoint that is down: a Server Fault of the relay.
    let res = service(
        &relay,
        Some("text/xml"),
        &call("Some-URI", "NotJson", ""),
        "",
    )
    .await;
    assert!(res.starts_with("SIP/2.0 500 "), "{res}");
    assert!(body_of(&res).contains("SOAP-ENV:Server"), "{res}");
    let res = service(
        &relay,
        Some("text/xml"),
        &call("urn:example:down", "X", ""),
        "",
    )
    .await;
    assert!(res.starts_with("SIP/2.0 500 "), "{res}");
    assert!(body_of(&res).contains("could not be reached"), "{res}");

    // Another namespace is still unknown; the built-ins still answer.
    let res = service(&relay, Some("text/xml"), &call("urn:other", "X", ""), "").await;
    assert!(res.starts_with("SIP/2.0 501 "), "{res}");
}

/// Runs the sipp UAS `scenario` on a free port and POSTs `/service` to it with `extra` fields;
/// returns the HTTP status and body.
async fn service_to_sipp(
    relay: &Relay,
    client: &restsip_e2e::Client,
    mode: crate::sipp::Mode,
    scenario: &'static str,
    extra: serde_json::Value,
) -> (u16, serde_json::Value) {
    let port = free_port();
    let sip = relay.sip.unwrap();
    let uas = crate::sipp::spawn_uas(sip, mode, port, scenario).await;
    let mut body = json!({
        "uri": format!("sip:quotes@127.0.0.1:{port}"),
        "body": call("Some-URI", "GetLastTradePrice", "<symbol>DIS</symbol>"),
        "transport": if mode == TCP { "tcp" } else { "udp" },
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let res = client
        .request("POST", "/service", Some(body))
        .await
        .unwrap();
    uas.await.unwrap().unwrap();
    (res.status, res.body)
}

#[tokio::test]
async fn post_service_reaches_a_sip_soap_service_over_udp_and_tcp() {
    let relay = Relay::default().await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    for mode in [UDP, TCP] {
        let (status, res) = service_to_sipp(&relay, &bob, mode, "service-uas", json!({})).await;
        assert_eq!(status, 200, "{res}");
        assert_priced(&res, "34.5");
        assert_eq!(res["content_type"], "text/xml", "{res}");

        let (status, res) =
            service_to_sipp(&relay, &bob, mode, "service-uas-fault", json!({})).await;
        assert_eq!(status, 200, "{res}");
        assert_eq!(res["outcome"], "fault", "{res}");
        assert_eq!(res["status"], 500, "{res}");
        assert_eq!(res["fault"]["code"], "SOAP-ENV:Server", "{res}");
        assert_eq!(res["fault"]["string"], "Server Error", "{res}");
        assert!(
            res["fault"]["detail"].as_str().unwrap().contains("1001"),
            "{res}"
        );

        let (status, res) = service_to_sipp(&relay, &bob, mode, "service-uas-501", json!({})).await;
        assert_eq!(status, 200, "{res}");
        assert_not_implemented(&res, 501);
    }
}

#[tokio::test]
async fn post_service_probes_with_options_first_when_asked() {
    let relay = Relay::default().await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    for mode in [UDP, TCP] {
        let probe = json!({"probe": true});
        let (status, res) =
            service_to_sipp(&relay, &bob, mode, "service-uas-probe", probe.clone()).await;
        assert_eq!(status, 200, "{res}");
        assert_priced(&res, "34.5");

        let (status, res) =
            service_to_sipp(&relay, &bob, mode, "service-uas-probe-no", probe).await;
        assert_eq!(status, 200, "{res}");
        assert_not_implemented(&res, 200);
    }
}

#[tokio::test]
async fn post_service_answers_a_digest_challenge() {
    let relay = Relay::default().await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    let auth = json!({"auth": {"username": "svc", "password": "s3cret"}});
    let (status, res) = service_to_sipp(&relay, &bob, UDP, "service-uas-auth", auth).await;
    assert_eq!(status, 200, "{res}");
    assert_priced(&res, "35.0");
    let wrong = json!({"auth": {"username": "svc", "password": "nope"}});
    let (_, res) = service_to_sipp(&relay, &bob, UDP, "service-uas-auth", wrong).await;
    assert_eq!(res["outcome"], "failed", "{res}");
    assert_eq!(res["status"], 403, "{res}");
}

#[tokio::test]
async fn post_service_refuses_what_it_cannot_send() {
    let relay = Relay::default().await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    let good = call("Some-URI", "GetLastTradePrice", "<symbol>DIS</symbol>");
    for body in [
        json!({"uri": "sip:127.0.0.1:9", "body": "<not-closed"}),
        json!({"uri": "sip:127.0.0.1:9", "body": "<html/>"}),
        json!({"uri": "mailto:a@example.net", "body": good}),
        json!({"uri": "sip:127.0.0.1:9", "body": good, "transport": "sctp"}),
        json!({"uri": "sip:127.0.0.1:9", "body": good, "soap_action": "a\r\nX: y"}),
    ] {
        let res = bob.request("POST", "/service", Some(body)).await.unwrap();
        assert_eq!(res.status, 422, "{}", res.body);
        assert_eq!(res.body["code"], "unprocessable", "{}", res.body);
    }
    let res = relay
        .anonymous()
        .request(
            "POST",
            "/service",
            Some(json!({"uri": "sip:127.0.0.1:9", "body": good})),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 401);
    // The relay itself serves SERVICE: its built-ins answer through the same path.
    let sip = relay.sip.unwrap();
    let presence = call(
        "urn:restsip:user",
        "GetPresence",
        "<user>bob@example.net</user>",
    );
    let res = bob
        .request(
            "POST",
            "/service",
            Some(json!({"uri": format!("sip:{sip}"), "body": presence})),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["outcome"], "response", "{}", res.body);
    assert!(
        res.body["body"]
            .as_str()
            .unwrap()
            .contains("<online>false</online>"),
        "{}",
        res.body
    );
    // Through an outbound proxy: the Request-URI names the user, the relay is the next hop.
    let res = bob
        .request(
            "POST",
            "/service",
            Some(json!({"uri": "sip:bob@example.net", "proxy": format!("sip:{sip};transport=tcp"), "transport": "tcp", "body": presence})),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["outcome"], "response", "{}", res.body);
    let res = bob
        .request(
            "POST",
            "/service",
            Some(json!({"uri": "sip:bob@example.net", "proxy": "mailto:x@y", "body": presence})),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 422, "{}", res.body);
}

#[tokio::test]
async fn a_web_client_serves_a_namespace_over_its_websocket() {
    use restsip_protocol::ServerFrame;
    let relay = Relay::start(&["--soap-timeout", "2"]).await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let mut ws = alice.ws().await.unwrap();
    ws.send(json!({"op": "serve", "ref": "s1", "namespace": "urn:example:calc"}))
        .await
        .unwrap();
    match ws.next().await.unwrap() {
        ServerFrame::Reply {
            reference, status, ..
        } => assert_eq!((reference.as_str(), status), ("s1", 200)),
        other => panic!("{other:?}"),
    }
    let add = call("urn:example:calc", "Add", "<a>2</a><b>40</b>");
    let addr = relay.sip.unwrap();
    let sip = tokio::spawn({
        let add = add.clone();
        async move { service_to_user(addr, "alice@example.net", &add).await }
    });
    let (id, params, from, body) = match ws.next().await.unwrap() {
        ServerFrame::Service {
            id,
            namespace,
            method,
            from,
            params,
            body,
        } => {
            assert_eq!(
                (namespace.as_str(), method.as_str()),
                ("urn:example:calc", "Add")
            );
            (id, params, from, body)
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(params, json!({"a": "2", "b": "40"}));
    assert_eq!(from.as_deref(), Some("carol@example.net"));
    assert_eq!(body, add);
    ws.send(json!({"op": "service-reply", "id": id, "result": {"sum": 42, "steps": ["a", "b"]}}))
        .await
        .unwrap();
    let res = sip.await.unwrap();
    assert!(res.starts_with("SIP/2.0 200 "), "{res}");
    assert!(
        body_of(&res).contains("<m:AddResponse xmlns:m=\"urn:example:calc\"><steps><item>a</item><item>b</item></steps><sum>42</sum></m:AddResponse>"),
        "{res}"
    );

    // A fault from the page, a page that does not answer, and one that left.
    let sip = tokio::spawn({
        let add = add.clone();
        async move { service_to_user(addr, "alice@example.net", &add).await }
    });
    let ServerFrame::Service { id, .. } = ws.next().await.unwrap() else {
        panic!("expected a service frame")
    };
    ws.send(json!({"op": "service-reply", "id": id, "fault": {"code": "Client", "string": "b must be odd"}}))
        .await
        .unwrap();
    let res = sip.await.unwrap();
    assert!(res.starts_with("SIP/2.0 500 "), "{res}");
    assert!(
        body_of(&res).contains(
            "<faultcode>SOAP-ENV:Client</faultcode><faultstring>b must be odd</faultstring>"
        ),
        "{res}"
    );

    let res = service_to_user(relay.sip.unwrap(), "alice@example.net", &add).await;
    assert!(res.starts_with("SIP/2.0 500 "), "{res}");
    assert!(body_of(&res).contains("did not answer in time"), "{res}");
    // The late answer finds nothing waiting.
    let ServerFrame::Service { id, .. } = ws.next().await.unwrap() else {
        panic!("expected a service frame")
    };
    ws.send(json!({"op": "service-reply", "id": id, "result": {}}))
        .await
        .unwrap();
    assert!(matches!(
        ws.next().await.unwrap(),
        ServerFrame::Error { .. }
    ));

    // Another user's address, or another namespace, is not served by alice's page.
    let res = service_to_user(relay.sip.unwrap(), "bob@example.net", &add).await;
    assert!(res.starts_with("SIP/2.0 501 "), "{res}");
    drop(ws);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let res = service_to_user(relay.sip.unwrap(), "alice@example.net", &add).await;
    assert!(
        res.starts_with("SIP/2.0 501 "),
        "after the page left: {res}"
    );
}

/// `res` (a POST /service result) is the stock quote's response with `price`.
fn assert_priced(res: &Value, price: &str) {
    assert_eq!(res["outcome"], "response", "{res}");
    assert_eq!(res["status"], 200, "{res}");
    let body = res["body"].as_str().unwrap_or_default();
    assert!(body.contains(&format!("<Price>{price}</Price>")), "{res}");
}

/// `res` says the peer does not implement SERVICE: it answered `status` with the Allow of the
/// sipp scenarios.
fn assert_not_implemented(res: &Value, status: u16) {
    assert_eq!(res["outcome"], "not-implemented", "{res}");
    assert_eq!(res["status"], status, "{res}");
    assert_eq!(res["allow"], "INVITE, ACK, CANCEL, BYE, OPTIONS", "{res}");
}
