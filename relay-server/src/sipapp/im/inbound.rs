//! MESSAGE from a phone (SIP → REST): a SEND of an `im` to the user of the Request-URI;
//! the answer says whether a live stream had it, it was queued, or it failed.

use super::*;

fn unsupported(why: &str) -> Reply {
    Reply::new(415, format!("Unsupported Media Type ({why})")).with("Accept", ACCEPT)
}

/// The SEND body for a MESSAGE, or the refusal.
fn send_body(req: &SipMessage) -> Result<Value, Reply> {
    let content_type = req.header("Content-Type").unwrap_or("text/plain");
    let (media, utf8) = media_type(content_type);
    if media != "text/plain" && media != "application/json" {
        return Err(unsupported(&format!("{media} is not accepted")));
    }
    if !utf8 {
        return Err(unsupported("only UTF-8 text is accepted"));
    }
    let text =
        std::str::from_utf8(&req.body).map_err(|_| Reply::bad_request("the body is not UTF-8"))?;
    if media == "application/json" && serde_json::from_str::<Value>(text).is_err() {
        return Err(Reply::bad_request("the body is not JSON"));
    }
    Ok(json!({
        "command": "im",
        "text": text,
        "contentType": content_type.trim(),
        "sip": { "callId": req.call_id().unwrap_or_default() },
    }))
}

/// Handles a MESSAGE from a SIP UA (RFC 3428 §7) by a SEND to the user of the Request-URI.
pub async fn incoming(inbox: &Inbox, req: &SipMessage) -> Reply {
    let StartLine::Request { uri, .. } = &req.start else {
        return Reply::bad_request("not a request");
    };
    let Some(email) = uri.sip().and_then(|u| u.address()) else {
        return Reply::new(404, "Not Found");
    };
    let from = match req.from() {
        Ok(from) => from,
        Err(why) => return Reply::bad_request(why),
    };
    // The identity the relay checked, else the From as it came (another domain's sender).
    let asserted = crate::sipapp::sender::asserted(req);
    let authenticated = asserted.is_some();
    let sender = asserted.unwrap_or_else(|| {
        from.uri
            .sip()
            .and_then(|u| u.address())
            .unwrap_or_else(|| from.uri.to_string())
    });
    let mut body = match send_body(req) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    body["sip"]["authenticated"] = json!(authenticated);
    match inbox.send(&sender, &email, None, body).await {
        Ok(receipt) => {
            let has = |s: DeliveryStatus| receipt.deliveries.iter().any(|d| d.status == s);
            if has(DeliveryStatus::Delivered) {
                Reply::new(200, "OK")
            } else if has(DeliveryStatus::Queued) {
                Reply::new(202, "Accepted")
            } else {
                best_failure(receipt.deliveries.iter().filter_map(|d| d.sip.as_ref()))
            }
        }
        Err(Error::NotFound(_)) => Reply::new(404, "Not Found"),
        Err(Error::Conflict(_)) => Reply::new(480, "Temporarily Unavailable (not logged in)"),
        Err(Error::Limit(why)) => Reply::new(486, format!("Busy Here ({why})")),
        Err(Error::Invalid(why)) => Reply::bad_request(&why),
        Err(e) => {
            tracing::warn!(error = %e, "MESSAGE delivery failed");
            Reply::new(500, "Server Internal Error")
        }
    }
}

/// The response for a MESSAGE every SIP contact refused (RFC 3261 §16.7: a 6xx wins, else the
/// lowest code; a timeout is 480).
fn best_failure<'a>(statuses: impl Iterator<Item = &'a SipStatus>) -> Reply {
    let mut best: Option<&SipStatus> = None;
    for s in statuses {
        best = match best {
            None => Some(s),
            Some(b) if (s.code >= 600) != (b.code >= 600) => {
                Some(if s.code >= 600 { s } else { b })
            }
            Some(b) => Some(if s.code < b.code { s } else { b }),
        };
    }
    match best {
        Some(s) if s.code != 408 && (300..700).contains(&s.code) => {
            Reply::new(s.code, s.reason.clone())
        }
        _ => Reply::new(480, "Temporarily Unavailable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(
            media_type("Text/Plain; charset=\"UTF-8\""),
            ("text/plain".into(), true)
        );
        assert!(!media_type("text/plain;charset=iso-8859-1").1);
    }

    #[test]
    fn a_6xx_wins_over_lower_codes() {
        let s = |code| SipStatus {
            code,
            reason: "x".into(),
        };
        assert_eq!(best_failure([s(486), s(603)].iter()).code, 603);
        assert_eq!(best_failure([s(486), s(404)].iter()).code, 404);
        assert_eq!(best_failure([s(408)].iter()).code, 480);
    }
}
