//! Forwarding a SOAP request to a SOAP-over-HTTP endpoint (SOAP 1.1 §6): POST with
//! `Content-Type: text/xml` and `SOAPAction`, and the endpoint's answer relayed back: a 200 with
//! a response envelope, a 500 with a Fault. Anything else becomes a Server Fault of the relay.

use super::envelope::{Envelope, Fault, FaultCode};
use super::{Endpoint, Outcome};

/// POSTs `xml` to `endpoint` and reads its answer (at most `max` bytes).
pub async fn forward(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    xml: &str,
    action: &str,
    max: usize,
) -> Outcome {
    let sent = client
        .post(&endpoint.url)
        .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=utf-8")
        .header("SOAPAction", format!("\"{}\"", action.replace('"', "")))
        .body(xml.to_owned())
        .send()
        .await;
    let mut res = match sent {
        Ok(res) => res,
        Err(e) => {
            let why = if e.is_timeout() {
                "did not answer in time"
            } else {
                "could not be reached"
            };
            tracing::warn!(url = %endpoint.url, error = %e, "SOAP endpoint failed");
            return failed(format!("the service endpoint {why}"));
        }
    };
    let status = res.status();
    let mut body = Vec::new();
    loop {
        match res.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max {
                    return failed(format!("the service's answer is larger than {max} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(url = %endpoint.url, error = %e, "SOAP endpoint answer broke off");
                return failed("the service endpoint's answer broke off".to_owned());
            }
        }
    }
    let Ok(text) = String::from_utf8(body) else {
        return failed("the service's answer is not UTF-8".to_owned());
    };
    match (status.as_u16(), Envelope::parse(&text)) {
        (200, Ok(env)) if env.fault().is_none() => Outcome::Response(text),
        (200 | 500, Ok(env)) if env.fault().is_some() => Outcome::Fault(text),
        (_, Ok(_)) => failed(format!("the service endpoint answered HTTP {status}")),
        (_, Err(e)) => failed(format!(
            "the service endpoint answered HTTP {status} without a SOAP envelope ({e})"
        )),
    }
}

fn failed(why: String) -> Outcome {
    Outcome::fault(&Fault::new(FaultCode::Server, why))
}
