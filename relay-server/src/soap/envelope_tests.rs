#![allow(clippy::unwrap_used)]

use super::*;

const STOCK: &str = r#"<?xml version="1.0"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"
    SOAP-ENV:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">
  <SOAP-ENV:Header>
    <t:Transaction xmlns:t="urn:example:tx" SOAP-ENV:mustUnderstand="1">5</t:Transaction>
    <t:Hint xmlns:t="urn:example:tx">skip me</t:Hint>
  </SOAP-ENV:Header>
  <SOAP-ENV:Body>
    <m:GetLastTradePrice xmlns:m="Some-URI">
      <symbol>DIS</symbol>
      <note xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:nil="true"/>
    </m:GetLastTradePrice>
  </SOAP-ENV:Body>
</SOAP-ENV:Envelope>"#;

#[test]
fn an_rpc_request_gives_its_method_parameters_and_headers() {
    let env = Envelope::parse(STOCK).unwrap();
    let call = env.call().unwrap();
    assert_eq!(call.namespace.as_deref(), Some("Some-URI"));
    assert_eq!(call.name, "GetLastTradePrice");
    assert_eq!(call.param("symbol"), Some("DIS"));
    assert_eq!(call.param("note"), None, "nil is no value");
    assert_eq!(call.encoding_style.as_deref(), Some(ENCODING_NS));
    assert_eq!(env.headers.len(), 2);
    assert!(env.headers[0].must_understand);
    assert_eq!(env.headers[0].text, "5");
    assert!(!env.headers[1].must_understand);
}

#[test]
fn a_mandatory_header_not_understood_is_a_must_understand_fault() {
    let env = Envelope::parse(STOCK).unwrap();
    let fault = env.check_must_understand(|_, _| false).unwrap_err();
    assert_eq!(fault.code, FaultCode::MustUnderstand);
    assert!(fault.string.contains("urn:example:tx"), "{}", fault.string);
    assert!(env
        .check_must_understand(|ns, name| ns == Some("urn:example:tx") && name == "Transaction")
        .is_ok());
    // An entry for another actor is not this node's business.
    let other = STOCK.replace(
        "SOAP-ENV:mustUnderstand=\"1\"",
        "SOAP-ENV:mustUnderstand=\"1\" SOAP-ENV:actor=\"urn:someone-else\"",
    );
    assert!(Envelope::parse(&other)
        .unwrap()
        .check_must_understand(|_, _| false)
        .is_ok());
}

#[test]
fn broken_xml_is_refused_with_the_parsers_words() {
    for bad in [
        "",
        "not xml at all",
        "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\">",
        "<a><b></a></b>",
        "<x:Envelope><x:Body/></x:Envelope>",
    ] {
        match Envelope::parse(bad) {
            Err(EnvelopeError::Xml(_)) => {}
            other => panic!("{bad:?} gave {other:?}"),
        }
    }
}

#[test]
fn a_dtd_and_entity_expansion_are_refused() {
    let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">
<SOAP-ENV:Body><m:X xmlns:m="urn:x">&lol2;</m:X></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;
    assert!(matches!(Envelope::parse(bomb), Err(EnvelopeError::Xml(_))));
}

#[test]
fn too_many_nodes_are_refused() {
    let many = format!(
        "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"{ENVELOPE_NS}\"><SOAP-ENV:Body><m:X xmlns:m=\"urn:x\">{}</m:X></SOAP-ENV:Body></SOAP-ENV:Envelope>",
        "<p/>".repeat(20_000)
    );
    assert!(matches!(Envelope::parse(&many), Err(EnvelopeError::Xml(_))));
}

#[test]
fn a_wrong_namespace_is_a_version_mismatch() {
    let soap12 = STOCK.replace(ENVELOPE_NS, "http://www.w3.org/2003/05/soap-envelope");
    let err = Envelope::parse(&soap12).unwrap_err();
    assert!(matches!(err, EnvelopeError::VersionMismatch(_)), "{err:?}");
    assert_eq!(err.fault().code, FaultCode::VersionMismatch);
    let bare = "<Envelope><Body><X/></Body></Envelope>";
    assert!(matches!(
        Envelope::parse(bare),
        Err(EnvelopeError::VersionMismatch(_))
    ));
}

#[test]
fn a_missing_or_empty_body_and_a_wrong_root_are_refused() {
    let no_body = format!("<e:Envelope xmlns:e=\"{ENVELOPE_NS}\"><e:Header/></e:Envelope>");
    assert_eq!(Envelope::parse(&no_body), Err(EnvelopeError::NoBody));
    let empty = format!("<e:Envelope xmlns:e=\"{ENVELOPE_NS}\"><e:Body> </e:Body></e:Envelope>");
    assert_eq!(Envelope::parse(&empty), Err(EnvelopeError::EmptyBody));
    let late_header = format!(
        "<e:Envelope xmlns:e=\"{ENVELOPE_NS}\"><e:Body><X/></e:Body><e:Header/></e:Envelope>"
    );
    assert!(matches!(
        Envelope::parse(&late_header),
        Err(EnvelopeError::Structure(_))
    ));
    let two = format!(
        "<e:Envelope xmlns:e=\"{ENVELOPE_NS}\"><e:Body><X/></e:Body><e:Body><Y/></e:Body></e:Envelope>"
    );
    assert!(matches!(
        Envelope::parse(&two),
        Err(EnvelopeError::Structure(_))
    ));
    assert!(matches!(
        Envelope::parse("<html><body/></html>"),
        Err(EnvelopeError::NotEnvelope(_))
    ));
}

#[test]
fn responses_and_faults_round_trip() {
    let xml = response(
        "urn:x",
        "Get",
        &[
            ("name", "a < b & \"c\"".into()),
            (
                "list",
                Value::Elements(vec![("item", "1".into()), ("item", "2".into())]),
            ),
        ],
    );
    let env = Envelope::parse(&xml).unwrap();
    let call = env.call().unwrap();
    assert_eq!(call.name, "GetResponse");
    assert_eq!(call.namespace.as_deref(), Some("urn:x"));
    assert_eq!(call.param("name"), Some("a < b & \"c\""));
    assert_eq!(call.param("list"), Some("12"));

    let fault = Fault::new(FaultCode::Server, "it broke <badly>").with_detail("disk & full");
    let env = Envelope::parse(&fault.to_xml()).unwrap();
    let read = env.fault().unwrap();
    assert_eq!(read.code, FaultCode::Server);
    assert_eq!(read.string, "it broke <badly>");
    assert_eq!(read.detail.as_deref(), Some("disk & full"));
}

#[test]
fn fault_codes_are_read_by_namespace_not_prefix() {
    let xml = format!(
        "<s:Envelope xmlns:s=\"{ENVELOPE_NS}\"><s:Body><s:Fault><faultcode>s:Client</faultcode>\
         <faultstring>no</faultstring></s:Fault></s:Body></s:Envelope>"
    );
    let env = Envelope::parse(&xml).unwrap();
    assert_eq!(env.fault().unwrap().code, FaultCode::Client);
    let custom = xml.replace("s:Client", "x:Nope");
    let env = Envelope::parse(&custom).unwrap();
    assert_eq!(env.fault().unwrap().code, FaultCode::Other("x:Nope".into()));
}

#[test]
fn control_characters_are_dropped_when_escaping() {
    let mut out = String::new();
    escape_into(&mut out, "a\u{1}b\tc");
    assert_eq!(out, "ab\tc");
}

#[test]
fn json_results_become_elements() {
    let result = serde_json::json!({"price": 34.5, "ok": true, "tags": ["a", "b<"], "who": {"name": "x"}, "none": null});
    let xml = response_json("urn:x", "Quote", result.as_object().unwrap()).unwrap();
    let env = Envelope::parse(&xml).unwrap();
    let call = env.call().unwrap();
    assert_eq!(call.name, "QuoteResponse");
    assert_eq!(call.param("price"), Some("34.5"));
    assert_eq!(call.param("tags"), Some("ab<"));
    assert!(xml.contains("<who><name>x</name></who>"), "{xml}");
    for bad in ["1a", "a b", "x:y", "xmlfoo", ""] {
        let mut map = serde_json::Map::new();
        map.insert(bad.to_owned(), serde_json::Value::Null);
        assert!(response_json("urn:x", "Q", &map).is_err(), "{bad}");
    }
}
