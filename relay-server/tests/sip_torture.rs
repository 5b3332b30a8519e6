//! The SIP torture messages of RFC 4475 §3.1 (restated in tests/sip/torture/*.sip from the
//! RFC's text, LF line ends turned into CRLF here) against an in-process endpoint: the valid
//! ones are parsed and answered as this relay should, the invalid ones get 400 (505 for the
//! unknown version, 501 for the unknown method) or are dropped (responses), and after each
//! one the endpoint still answers an OPTIONS.
#![allow(clippy::unwrap_used)]

mod harness;

use harness::{harness, options, Harness};
use restsip_sip::message::{Method, SipMessage};
use restsip_sip::parse::parse_datagram;
use restsip_sip::transport::{Peer, Transport};

/// What the relay does with a message: answer with a status, or drop it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Status(u16),
    Dropped,
}
use Expect::{Dropped, Status};

/// Each message, what it gets over UDP, and over TCP where that differs.
const CASES: &[(&str, Expect, Option<&[u16]>)] = &[
    // §3.1.1 valid messages. Accounts user@example.com and j.user@example.com exist.
    ("wsinv", Status(501), None), // INVITE for an unknown user: as for a known one
    ("intmeth", Status(501), None), // an unknown extension method
    ("esc01", Status(501), None), // escaped user part: "sips:user@example.com"
    ("escnull", Status(401), None), // REGISTER of an AOR with an escaped NUL: no account, challenged like one
    ("esc02", Status(501), None),   // RE%47IST%45R is a method of its own, not REGISTER
    ("lwsdisp", Status(200), None), // OPTIONS for user@example.com
    ("longreq", Status(501), None), // INVITE for a known user: not implemented yet
    // UDP: the INVITE after the body is discarded. TCP: it is the next message on the stream,
    // answered under its own Call-ID (not counted here).
    ("dblreq", Status(401), None),
    ("semiuri", Status(200), None), // OPTIONS, user part "user;par=u@example.net"
    ("transports", Status(200), None), // OPTIONS with Vias of unknown transports
    ("mpart01", Status(501), None), // MESSAGE with a multipart body, unknown user
    ("unreason", Dropped, None),    // a response matching no transaction
    ("noreason", Dropped, None),    // the same, with an empty reason phrase
    // §3.1.2 invalid messages.
    ("badinv01", Status(400), None),
    ("clerr", Status(400), Some(&[])), // TCP: waits for the missing body
    ("ncl", Status(400), None),
    ("scalar02", Status(400), None),
    ("scalarlg", Dropped, None),
    ("quotbal", Status(400), None),
    ("ltgtruri", Status(400), None),
    ("lwsruri", Status(400), None),
    ("lwsstart", Status(400), None),
    ("trws", Status(400), None),
    ("escruri", Status(400), None),
    ("baddate", Status(400), None),
    ("regbadct", Status(400), None),
    ("badaspec", Status(400), None),
    ("baddn", Status(400), None),
    ("badvers", Status(505), None),
    ("mismatch01", Status(400), None),
    ("mismatch02", Status(501), None),
    ("bigcode", Dropped, None),
];

fn load(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../tests/sip/torture/{name}.sip",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = Vec::with_capacity(text.len() + 64);
    for b in text {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

async fn torture_harness() -> Harness {
    let h = harness().await;
    h.user("user@example.com", "pw").await;
    h.user("j.user@example.com", "pw").await;
    h
}

/// The answers to one torture message.
async fn answers(
    h: &Harness,
    name: &str,
    transport: Transport,
    expect: usize,
) -> Vec<(Peer, SipMessage)> {
    h.exchange(&load(name), transport, expect).await
}

async fn still_answers(h: &Harness, after: &str) {
    let reply = h.request(&options(&format!("after-{after}"))).await;
    assert_eq!(reply.code(), Some(200), "OPTIONS after {after}");
}

#[tokio::test]
async fn every_torture_message_over_udp() {
    let h = torture_harness().await;
    for (name, expect, _) in CASES {
        let expected = usize::from(*expect != Dropped);
        let got = answers(&h, name, Transport::Udp, expected).await;
        let codes: Vec<u16> = got.iter().filter_map(|(_, m)| m.code()).collect();
        match expect {
            Status(code) => assert_eq!(codes, [*code], "{name}"),
            Dropped => assert!(codes.is_empty(), "{name}: {codes:?}"),
        }
        if let Some((_, response)) = got.first() {
            // Every answer names what it answers: the Call-ID and CSeq come back.
            let request = String::from_utf8_lossy(&load(name)).into_owned();
            let call_id = response.call_id().unwrap();
            assert!(request.contains(call_id), "{name}: Call-ID {call_id}");
            assert!(response.header("Via").is_some(), "{name}");
        }
        still_answers(&h, name).await;
    }
}

#[tokio::test]
async fn every_torture_message_over_tcp() {
    let h = torture_harness().await;
    for (name, expect, tcp) in CASES {
        let codes: Vec<u16> = match (tcp, expect) {
            (Some(codes), _) => codes.to_vec(),
            (None, Status(code)) => vec![*code],
            (None, Dropped) => vec![],
        };
        let got = answers(&h, name, Transport::Tcp, codes.len()).await;
        let mut got: Vec<u16> = got.iter().filter_map(|(_, m)| m.code()).collect();
        got.sort_unstable();
        assert_eq!(got, codes, "{name}");
        still_answers(&h, name).await;
    }
}

#[test]
fn wsinv_is_read_as_the_rfc_explains() {
    let m = parse_datagram(&load("wsinv")).unwrap();
    assert_eq!(m.method(), Some(&Method::INVITE));
    assert_eq!(m.to().unwrap().tag(), Some("1918181833n"));
    let from = m.from().unwrap();
    assert_eq!(from.display.as_deref(), Some("J Rosenberg \\\""));
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(m.max_forwards().unwrap(), Some(68));
    let cseq = m.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, Method::INVITE));
    let vias = m.vias().unwrap();
    let sent_by: Vec<&str> = vias.iter().map(|v| v.host.as_str()).collect();
    assert_eq!(
        sent_by,
        ["192.0.2.2", "spindle.example.com", "192.168.255.111"]
    );
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(
        m.header("NewFangledHeader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(m.header("UnknownHeaderWithUnusualValue"), Some(";;,,;;,;"));
    let contact = &m.contacts().unwrap().unwrap()[0];
    assert_eq!(contact.display.as_deref(), Some("Quoted string \"\""));
    assert_eq!(contact.param("q"), Some(Some("0.33")));
    assert_eq!(contact.param("secondparam"), Some(None));
    assert_eq!(Some(m.body.len()), m.content_length().unwrap());
}

#[test]
fn intmeth_and_esc02_keep_their_unusual_methods() {
    let m = parse_datagram(&load("intmeth")).unwrap();
    assert_eq!(
        m.method().map(Method::as_str),
        Some("!interesting-Method0123456789_*+`.%indeed'~")
    );
    let to = m.to().unwrap();
    assert_eq!(
        to.display.as_deref(),
        Some("BEL:\u{7} NUL:\u{0} DEL:\u{7f}")
    );
    let esc02 = parse_datagram(&load("esc02")).unwrap();
    assert_eq!(esc02.method().map(Method::as_str), Some("RE%47IST%45R"));
    assert_ne!(esc02.method(), Some(&Method::REGISTER));
    // C%6Fntact is a header of its own, not Contact.
    assert_eq!(esc02.contacts().unwrap().unwrap().len(), 2);
}

#[test]
fn dblreq_keeps_only_the_first_request_and_mpart01_its_whole_body() {
    let m = parse_datagram(&load("dblreq")).unwrap();
    assert_eq!(m.method(), Some(&Method::REGISTER));
    assert!(m.body.is_empty());
    let mpart = parse_datagram(&load("mpart01")).unwrap();
    assert!(mpart.body.ends_with(b"--7a9cbec02ceef655--\r\n"));
}
