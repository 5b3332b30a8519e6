//! What an outgoing SERVICE's answer means for `POST /service`: the SOAP response, a Fault,
//! "not implemented" (405, 501, or an OPTIONS probe without SERVICE in its Allow) or a failure.

use restsip_protocol::{ServiceOutcome, ServiceResult, SoapFault};
use restsip_sip::message::{SipMessage, StartLine};

use crate::soap::Envelope;

fn code_of(msg: &SipMessage) -> u16 {
    msg.code().unwrap_or(0)
}

/// The result to give instead of sending the SERVICE, when the probe's answer says the far end
/// does not take it (None: go ahead). A failed probe is reported as it is.
pub(super) fn probe_refusal(answer: Option<&SipMessage>) -> Option<ServiceResult> {
    let Some(resp) = answer else {
        return Some(result(None));
    };
    let status = code_of(resp);
    if !(200..300).contains(&status) {
        return Some(result(Some(resp)));
    }
    let allow = resp.header("Allow").map(str::to_owned);
    let offers_service = allow.as_deref().is_some_and(|a| {
        a.split(',')
            .any(|m| m.trim().eq_ignore_ascii_case("SERVICE"))
    });
    if offers_service {
        return None;
    }
    Some(ServiceResult {
        outcome: ServiceOutcome::NotImplemented,
        status,
        reason: "OPTIONS: SERVICE is not in the far end's Allow".into(),
        content_type: None,
        body: None,
        fault: None,
        allow,
    })
}

/// The value of the final response (None: no answer in time).
pub(super) fn result(response: Option<&SipMessage>) -> ServiceResult {
    let Some(resp) = response else {
        return ServiceResult {
            outcome: ServiceOutcome::Failed,
            status: 408,
            reason: "Request Timeout (no answer)".into(),
            content_type: None,
            body: None,
            fault: None,
            allow: None,
        };
    };
    let (status, reason) = match &resp.start {
        StartLine::Response { code, reason } => (*code, reason.clone()),
        StartLine::Request { .. } => (500, String::new()),
    };
    let body = (!resp.body.is_empty()).then(|| String::from_utf8_lossy(&resp.body).into_owned());
    let fault = body
        .as_deref()
        .and_then(|b| Envelope::parse(b).ok())
        .and_then(|e| e.fault().cloned())
        .map(|f| SoapFault {
            code: f.code.qname(),
            string: f.string,
            actor: f.actor,
            detail: f.detail,
        });
    let allow = resp.header("Allow").map(str::to_owned);
    let outcome = match status {
        200..=299 => ServiceOutcome::Response,
        405 | 501 => ServiceOutcome::NotImplemented,
        _ if fault.is_some() => ServiceOutcome::Fault,
        _ => ServiceOutcome::Failed,
    };
    ServiceResult {
        outcome,
        status,
        reason,
        content_type: body
            .as_ref()
            .and(resp.header("Content-Type").map(str::to_owned)),
        body,
        fault,
        allow: matches!(status, 405 | 501).then_some(allow).flatten(),
    }
}
