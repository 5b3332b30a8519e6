//! The SIP `SERVICE` method (draft-deason-sip-soap): a request whose body is a SOAP 1.1
//! envelope (`text/xml` or `application/soap+xml`), answered with 200 and the SOAP response,
//! 500 with a SOAP Fault when the service fails, 501 when no service serves the method, 415
//! for a body that is not XML and 400 for a malformed envelope. Every SERVICE is a transaction
//! of its own: a Call-ID may be reused with any CSeq, in any order.

use crate::soap::{Caller, Fault, FaultCode, Outcome, Services};
use restsip_sip::message::SipMessage;
use restsip_sip::response::Reply;

/// The body types a SERVICE may carry.
pub const ACCEPT: &str = "text/xml, application/soap+xml";
/// The Content-Type of SOAP bodies the relay sends.
pub const CONTENT_TYPE: &str = "text/xml";

/// Answers one SERVICE request.
pub async fn answer(services: Option<&Services>, req: &SipMessage, allow: &str) -> Reply {
    let media = req.header("Content-Type").map(|v| {
        v.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    });
    if req.body.is_empty() {
        return Reply::bad_request("SERVICE needs a SOAP envelope in its body");
    }
    match media.as_deref() {
        Some("text/xml" | "application/soap+xml" | "application/xml") => {}
        _ => {
            return Reply::new(415, "Unsupported Media Type")
                .with("Accept", ACCEPT)
                .with("Accept-Encoding", "identity")
        }
    }
    if req
        .header("Content-Encoding")
        .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"))
    {
        return Reply::new(415, "Unsupported Media Type")
            .with("Accept", ACCEPT)
            .with("Accept-Encoding", "identity");
    }
    let Ok(xml) = std::str::from_utf8(&req.body) else {
        let fault = Fault::new(FaultCode::Client, "the envelope is not UTF-8");
        return Reply::bad_request("the envelope is not UTF-8")
            .with_body(CONTENT_TYPE, fault.to_xml());
    };
    let asserted = crate::sipapp::sender::asserted(req);
    let caller = Caller {
        authenticated: asserted.is_some(),
        from: asserted.or_else(|| {
            req.from()
                .ok()
                .and_then(|f| f.uri.sip().and_then(|u| u.address()))
        }),
        to: match &req.start {
            restsip_sip::message::StartLine::Request { uri, .. } => {
                uri.sip().and_then(|u| u.address())
            }
            restsip_sip::message::StartLine::Response { .. } => None,
        },
        soap_action: req
            .header("SOAPAction")
            .map(|a| a.trim().trim_matches('"').to_owned())
            .filter(|a| !a.is_empty()),
    };
    let outcome = match services {
        Some(services) => services.dispatch(xml, &caller).await,
        None => match crate::soap::Envelope::parse(xml) {
            Err(e) => Outcome::Malformed(e),
            Ok(env) => {
                let call = env.call();
                Outcome::Unknown {
                    namespace: call.and_then(|c| c.namespace.clone()).unwrap_or_default(),
                    method: call.map(|c| c.name.clone()).unwrap_or_default(),
                }
            }
        },
    };
    reply(outcome, allow)
}

/// The SIP answer to an outcome.
pub fn reply(outcome: Outcome, allow: &str) -> Reply {
    match outcome {
        Outcome::Response(xml) => Reply::new(200, "OK").with_body(CONTENT_TYPE, xml),
        Outcome::Fault(xml) => {
            Reply::new(500, "Server Internal Error").with_body(CONTENT_TYPE, xml)
        }
        Outcome::Unknown { namespace, method } => {
            let fault = Fault::new(
                FaultCode::Client,
                format!("no service here serves {method} of {namespace:?}"),
            );
            Reply::new(501, "Not Implemented")
                .with("Allow", allow)
                .with_body(CONTENT_TYPE, fault.to_xml())
        }
        Outcome::Malformed(e) => {
            Reply::bad_request(&e.to_string()).with_body(CONTENT_TYPE, e.fault().to_xml())
        }
        Outcome::Busy => Reply::new(503, "Service Unavailable").with("Retry-After", "5"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use restsip_sip::parse::parse_datagram;

    fn service(content_type: Option<&str>, body: &str) -> SipMessage {
        let ct = content_type.map_or(String::new(), |c| format!("Content-Type: {c}\r\n"));
        let text = format!(
            "SERVICE sip:relay.example.net SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             From: <sip:bob@example.net>;tag=1\r\nTo: <sip:relay.example.net>\r\nCall-ID: c1\r\n\
             CSeq: 1 SERVICE\r\n{ct}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        parse_datagram(text.as_bytes()).expect("a valid SERVICE")
    }

    const CALL: &str = "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\">\
        <s:Body><m:Quote xmlns:m=\"urn:nobody\"/></s:Body></s:Envelope>";

    #[tokio::test]
    async fn the_body_type_is_checked_before_the_xml() {
        let reply = answer(None, &service(Some("application/json"), "{}"), "SERVICE").await;
        assert_eq!(reply.code, 415);
        assert!(reply
            .headers
            .iter()
            .any(|(n, v)| n == "Accept" && v == ACCEPT));
        let reply = answer(None, &service(None, CALL), "SERVICE").await;
        assert_eq!(reply.code, 415);
        let reply = answer(None, &service(Some("text/xml"), ""), "SERVICE").await;
        assert_eq!(reply.code, 400);
        let reply = answer(
            None,
            &service(Some("text/xml; charset=utf-8"), "<broken"),
            "SERVICE",
        )
        .await;
        assert_eq!(reply.code, 400);
        assert!(String::from_utf8_lossy(&reply.body).contains("SOAP-ENV:Client"));
    }

    #[tokio::test]
    async fn without_services_every_method_is_unknown() {
        let reply = answer(
            None,
            &service(Some("application/soap+xml"), CALL),
            "SERVICE",
        )
        .await;
        assert_eq!(reply.code, 501);
        assert!(reply
            .headers
            .iter()
            .any(|(n, v)| n == "Allow" && v.contains("SERVICE")));
    }
}
