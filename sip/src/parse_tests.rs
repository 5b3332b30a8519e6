//! Parse and print round trips, folded and compact headers, unknown headers and methods.

use super::*;

fn parse(text: &str) -> SipMessage {
    parse_datagram(text.as_bytes()).unwrap_or_else(|e| panic!("{}: {text}", e.reason))
}

fn rejected(text: &str) -> Rejected {
    match parse_datagram(text.as_bytes()) {
        Ok(m) => panic!("accepted: {m}"),
        Err(e) => e,
    }
}

const REGISTER: &str = "REGISTER sip:example.net SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bK776;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:alice@example.net>\r\n\
From: \"Alice\" <sip:alice@example.net>;tag=456248\r\n\
Call-ID: 843817637684230@998sdasdh09\r\n\
CSeq: 1826 REGISTER\r\n\
Contact: <sip:alice@192.0.2.1:5062>;expires=600, <sip:alice@[2001:db8::1]>;q=0.5\r\n\
Content-Length: 0\r\n\r\n";

#[test]
fn a_register_parses_into_typed_headers() {
    let m = parse(REGISTER);
    assert_eq!(m.method(), Some(&Method::REGISTER));
    let via = m.top_via().expect("via");
    assert_eq!(via.transport, "UDP");
    assert_eq!((via.host.as_str(), via.port), ("192.0.2.1", Some(5062)));
    assert_eq!(via.branch(), Some("z9hG4bK776"));
    assert_eq!(via.param("rport"), Some(None));
    let cseq = m.cseq().expect("cseq");
    assert_eq!((cseq.seq, cseq.method), (1826, Method::REGISTER));
    assert_eq!(m.from().expect("from").tag(), Some("456248"));
    assert_eq!(m.from().expect("from").display.as_deref(), Some("Alice"));
    assert_eq!(m.to().expect("to").tag(), None);
    let contacts = m.contacts().expect("contacts").expect("not *");
    assert_eq!(contacts.len(), 2);
    assert_eq!(contacts[0].param("expires"), Some(Some("600")));
    assert_eq!(contacts[1].uri.to_string(), "sip:alice@[2001:db8::1]");
    assert_eq!(m.max_forwards().expect("mf"), Some(70));
    assert_eq!(m.call_id(), Some("843817637684230@998sdasdh09"));
}

#[test]
fn printing_and_parsing_again_gives_the_same_message() {
    let m = parse(REGISTER);
    let again = parse(&m.to_string());
    assert_eq!(m, again);
    let with_body = parse(
        "MESSAGE sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\
         To: <sip:bob@example.net>\r\nFrom: <sip:a@example.net>;tag=1\r\nCall-ID: c\r\n\
         CSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(with_body.body, b"hello");
    assert_eq!(parse(&with_body.to_string()), with_body);
}

#[test]
fn folded_lines_are_joined_and_compact_names_expanded() {
    let m = parse(
        "OPTIONS sip:example.net SIP/2.0\r\nv: SIP/2.0/UDP h;\r\n  branch=z9hG4bKx\r\n\
         t: <sip:a@example.net>\r\nf: <sip:b@example.net>\r\n ;tag=9\r\ni: abc\r\n\
         CSeq: 7\r\n\tOPTIONS\r\nk: path\r\nl: 0\r\nX-Unknown: some\r\n  folded value\r\n\r\n",
    );
    assert_eq!(m.top_via().expect("via").branch(), Some("z9hG4bKx"));
    assert_eq!(m.from().expect("from").tag(), Some("9"));
    assert_eq!(m.call_id(), Some("abc"));
    assert_eq!(m.cseq().expect("cseq").seq, 7);
    assert_eq!(m.header("supported"), Some("path"));
    assert_eq!(m.header("X-UNKNOWN"), Some("some folded value"));
    assert!(m.headers.iter().any(|h| h.name == "Via"));
}

#[test]
fn any_method_token_is_a_method() {
    let m = parse(
        "SERVICE sip:soap@example.net SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK2\r\n\
         To: <sip:soap@example.net>\r\nFrom: <sip:a@example.net>;tag=1\r\nCall-ID: s\r\n\
         CSeq: 1 SERVICE\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(m.method(), Some(&Method::SERVICE));
    let m = parse(
        "FOO.BAR-baz! sip:x@example.net SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK3\r\n\
         To: <sip:x@example.net>\r\nFrom: <sip:a@example.net>;tag=1\r\nCall-ID: s\r\n\
         CSeq: 1 FOO.BAR-baz!\r\n\r\n",
    );
    assert_eq!(m.method().map(Method::as_str), Some("FOO.BAR-baz!"));
    assert_eq!(m.cseq().expect("cseq").method.as_str(), "FOO.BAR-baz!");
}

#[test]
fn extra_octets_after_the_body_are_discarded_and_a_short_body_is_refused() {
    let m = parse(&format!("{REGISTER}INVITE sip:x SIP/2.0\r\n\r\n"));
    assert!(m.body.is_empty());
    let short = REGISTER.replace("Content-Length: 0", "Content-Length: 10");
    let e = rejected(&short);
    assert_eq!(e.status, 400);
    assert!(e.partial.is_some());
}

#[test]
fn malformed_requests_are_rejected_with_what_can_be_answered() {
    for (bad, from, to) in [
        (
            "REGISTER  sip:example.net SIP/2.0",
            "REGISTER sip:example.net SIP/2.0",
            400,
        ),
        (
            "REGISTER sip:example.net SIP/2.0 ",
            "REGISTER sip:example.net SIP/2.0",
            400,
        ),
        (
            "REGISTER <sip:example.net> SIP/2.0",
            "REGISTER sip:example.net SIP/2.0",
            400,
        ),
        (
            "REGISTER sip:example.net SIP/7.0",
            "REGISTER sip:example.net SIP/2.0",
            505,
        ),
        ("CSeq: 99999999999 REGISTER", "CSeq: 1826 REGISTER", 400),
        ("Max-Forwards: 256", "Max-Forwards: 70", 400),
        ("Content-Length: -1", "Content-Length: 0", 400),
        (
            "To: \"Bob <sip:bob@example.net>",
            "To: <sip:alice@example.net>",
            400,
        ),
        (
            "To: < sip:alice@example.net >",
            "To: <sip:alice@example.net>",
            400,
        ),
    ] {
        let e = rejected(&REGISTER.replace(from, bad));
        assert_eq!(e.status, to, "{bad}: {}", e.reason);
        assert!(e.partial.is_some(), "{bad}");
    }
}

#[test]
fn garbage_is_rejected_without_anything_to_answer() {
    for junk in [
        "",
        "\r\n\r\n",
        "hello world",
        "\u{0}\u{1}\u{2}\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
    ] {
        let e = rejected(junk);
        assert!(e.partial.is_none() || junk.starts_with("GET"), "{junk:?}");
    }
}

#[test]
fn a_character_of_several_bytes_anywhere_is_refused_never_a_panic() {
    // The datagram: a two-byte character right after "SIP" in the version.
    let e = parse_datagram(b"OPTIONS sip:x SIP\xc3\xa9\r\n\r\n").expect_err("refused");
    assert_eq!(e.status, 400, "{}", e.reason);
    // Every split of a multi-byte character at every place of a request is refused or parsed.
    let request = REGISTER.as_bytes();
    for at in 0..request.len() {
        for insert in [
            &b"\xc3\xa9"[..],
            b"\xe2\x82\xac",
            b"\xf0\x9f\x98\x80",
            b"\xc3",
            b"\xff",
        ] {
            let mut bytes = request[..at].to_vec();
            bytes.extend_from_slice(insert);
            bytes.extend_from_slice(&request[at..]);
            let _ = parse_datagram(&bytes);
            let _ = parse_datagram(&bytes[..at + 1]);
        }
    }
}
