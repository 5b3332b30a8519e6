//! Outgoing SERVICE (draft-deason-sip-soap) for `POST /service`: a SOAP envelope sent to any
//! SIP URI in a client transaction, a digest challenge (401/407) answered once when credentials
//! are given, and the final response read back as a SOAP response, a Fault, "not implemented"
//! (405, or 501) or a failure. Destinations are users' choices: the egress guard checks the
//! address the request is then sent to, and every failure to get an answer looks the same and
//! takes the same time, so that SERVICE cannot be used to scan ports.

use std::time::Duration;

use restsip_protocol::{ServiceRequest, ServiceResult};

use super::outcome::{probe_refusal, result};

use crate::egress::{Egress, Refused};
use crate::soap::Envelope;
use restsip_sip::digest::{ha1, Algorithm, Credentials};
use restsip_sip::endpoint::WeakEndpoint;
use restsip_sip::headers::split_list;
use restsip_sip::message::{Method, SipMessage};
use restsip_sip::outgoing;
use restsip_sip::transaction::client::Outcome;
use restsip_sip::transport::{Peer, Transport};
use restsip_sip::uri::Uri;

/// Why a SERVICE could not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The request is unusable (URI, transport, body), with why.
    Invalid(String),
    /// SIP is off or stopping.
    Unavailable(&'static str),
    /// The destination is one the relay may not reach for users (see [`crate::egress`]).
    Forbidden(String),
}

/// How long a SERVICE that gets no answer takes to fail, whatever the reason (no route,
/// connection refused or dropped, nothing listening, a silent peer): the client transaction's
/// own limit (Timer F, 64·T1), so a closed port is not told from a filtered one by the time.
const NO_ANSWER: Duration = Duration::from_secs(32);

/// Sends SERVICE requests through the SIP endpoint; cheap to clone.
#[derive(Clone)]
pub struct ServiceSender {
    /// The endpoint.
    endpoint: WeakEndpoint,
    /// Where destinations may be.
    egress: Egress,
}

impl ServiceSender {
    /// Sends through `endpoint`, to destinations `egress` allows.
    pub fn new(endpoint: WeakEndpoint, egress: Egress) -> Self {
        Self { endpoint, egress }
    }

    /// Sends `req` from the account `sender`; `max` bounds the SOAP body.
    pub async fn send(
        &self,
        sender: &str,
        req: &ServiceRequest,
        max: usize,
    ) -> Result<ServiceResult, SendError> {
        let weak = &self.endpoint;
        let listen = &weak.listen();
        if req.body.len() > max {
            return Err(SendError::Invalid(format!(
                "the SOAP body is larger than {max} bytes"
            )));
        }
        let envelope =
            Envelope::parse(&req.body).map_err(|e| SendError::Invalid(format!("body: {e}")))?;
        if envelope.call().is_none() {
            return Err(SendError::Invalid(
                "body: a request's Body holds a method, not a Fault".into(),
            ));
        }
        let uri =
            Uri::parse(req.uri.trim()).map_err(|e| SendError::Invalid(format!("uri: {e}")))?;
        uri.sip().ok_or_else(|| {
            SendError::Invalid("uri: only sip: and sips: URIs can be reached".into())
        })?;
        // Where the request goes: the proxy if given, else the URI itself.
        let next_hop = match req.proxy.as_deref().map(str::trim) {
            Some(proxy) => {
                Uri::parse(proxy).map_err(|e| SendError::Invalid(format!("proxy: {e}")))?
            }
            None => uri.clone(),
        };
        let sip = next_hop.sip().ok_or_else(|| {
            SendError::Invalid("proxy: only sip: and sips: URIs can be reached".into())
        })?;
        if [&uri, &next_hop]
            .iter()
            .any(|u| u.sip().is_some_and(|s| s.password.is_some()))
        {
            return Err(SendError::Forbidden(
                "uri: a password in the URI (user:password@) would be sent on; use auth".into(),
            ));
        }
        let transport = match req.transport.as_deref() {
            None => Transport::of_uri(sip),
            Some(t) if t.eq_ignore_ascii_case("udp") => Transport::Udp,
            Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
            Some(t) if t.eq_ignore_ascii_case("tls") => Transport::Tls,
            Some(t) => {
                return Err(SendError::Invalid(format!(
                    "transport {t:?} is not udp, tcp or tls"
                )))
            }
        };
        if sip.secure && transport != Transport::Tls {
            return Err(SendError::Invalid(format!(
                "a sips: URI is reached over tls only, not {}",
                transport.name().to_ascii_lowercase()
            )));
        }
        let action = req.soap_action.as_deref().map(str::trim);
        if action.is_some_and(|a| a.contains(['\r', '\n'])) {
            return Err(SendError::Invalid("soap_action holds a line break".into()));
        }
        let host = sip.host.trim_start_matches('[').trim_end_matches(']');
        let port = sip.port.unwrap_or(transport.default_port());
        // Resolved once and checked: the request goes to this very address (no second lookup
        // that could answer differently).
        let addr = match self.egress.resolve(host, port).await {
            Ok(addrs) => addrs[0],
            Err(Refused::Unresolvable) => {
                return Err(SendError::Invalid(format!(
                    "uri: cannot resolve {}",
                    sip.host
                )))
            }
            Err(refused) => return Err(SendError::Forbidden(format!("uri: {refused}"))),
        };
        let started = tokio::time::Instant::now();
        let settle = |answer: Option<&SipMessage>| {
            let unanswered = answer.is_none();
            async move {
                if unanswered {
                    tokio::time::sleep_until(started + NO_ANSWER).await;
                }
            }
        };
        if transport == Transport::Tls {
            if let Some(endpoint) = weak.upgrade() {
                endpoint.expect_tls_name(addr, host);
            }
        }
        let peer = Peer { transport, addr };
        let local = outgoing::local_addr(*listen, peer);
        let call_id = format!("{}@{}", outgoing::token(), outgoing::host_port(local));
        let from = format!("<sip:{sender}>;tag={}", outgoing::token());
        let build = |cseq: u32, authorization: Option<(&'static str, String)>| {
            let mut msg = outgoing::request(Method::SERVICE, uri.clone(), local, transport);
            msg.push("From", from.clone());
            msg.push("To", format!("<{uri}>"));
            msg.push("Call-ID", call_id.clone());
            msg.push("CSeq", format!("{cseq} SERVICE"));
            // The relay authenticated the sender over REST: when the request comes back to
            // this relay, the seal says so.
            msg.push(
                crate::sipapp::seal::SEAL,
                crate::sipapp::seal::seal(&call_id, &from),
            );
            if let Some((name, value)) = authorization {
                msg.push(name, value);
            }
            if let Some(action) = action {
                msg.push("SOAPAction", format!("\"{}\"", action.trim_matches('"')));
            }
            msg.push("Content-Type", "text/xml");
            msg.body = req.body.as_bytes().to_vec();
            msg
        };
        let mut cseq = 1;
        if req.probe {
            let mut options = outgoing::request(Method::OPTIONS, uri.clone(), local, transport);
            options.push("From", from.clone());
            options.push("To", format!("<{uri}>"));
            options.push("Call-ID", call_id.clone());
            options.push("CSeq", "1 OPTIONS");
            options.push("Accept", "application/sdp, text/xml");
            let answer = transact(weak, &options, peer).await?;
            if let Some(refused) = probe_refusal(answer.as_ref()) {
                settle(answer.as_ref()).await;
                return Ok(refused);
            }
            cseq = 2;
        }
        let first = build(cseq, None);
        let mut response = transact(weak, &first, peer).await?;
        if let (Some(code @ (401 | 407)), Some(auth)) = (response.as_ref().map(code_of), &req.auth)
        {
            let (challenge, answer) = if code == 401 {
                ("WWW-Authenticate", "Authorization")
            } else {
                ("Proxy-Authenticate", "Proxy-Authorization")
            };
            let authorization = response
                .as_ref()
                .and_then(|r| {
                    r.headers_named(challenge)
                        .find_map(|c| respond(c, &auth.username, &auth.password, &uri))
                })
                .map(|value| (answer, value));
            if authorization.is_some() {
                response = transact(weak, &build(cseq + 1, authorization), peer).await?;
            }
        }
        settle(response.as_ref()).await;
        Ok(result(response.as_ref()))
    }
}

fn code_of(msg: &SipMessage) -> u16 {
    msg.code().unwrap_or(0)
}

/// Runs one client transaction to its final response (None on a timeout).
pub(crate) async fn transact(
    weak: &WeakEndpoint,
    req: &SipMessage,
    peer: Peer,
) -> Result<Option<SipMessage>, SendError> {
    let endpoint = weak
        .upgrade()
        .ok_or(SendError::Unavailable("SIP is stopping"))?;
    let rx = endpoint.client().send(req, peer);
    drop(endpoint);
    let mut rx = rx.ok_or(SendError::Unavailable("the request could not be sent"))?;
    while let Some(outcome) = rx.recv().await {
        match outcome {
            Outcome::Response(resp) if resp.code().is_some_and(|c| c >= 200) => {
                return Ok(Some(*resp))
            }
            Outcome::Response(_) => {}
            Outcome::Timeout => return Ok(None),
        }
    }
    Ok(None)
}

/// The Authorization value answering one `Digest` challenge to a SERVICE, if it is one the
/// relay can answer (MD5 or SHA-256, `qop=auth` or none).
pub(crate) fn respond(
    challenge: &str,
    username: &str,
    password: &str,
    uri: &Uri,
) -> Option<String> {
    respond_to(challenge, username, password, uri, &Method::SERVICE)
}

/// The Authorization value answering one `Digest` challenge to a `method` request for `uri`.
pub(crate) fn respond_to(
    challenge: &str,
    username: &str,
    password: &str,
    uri: &Uri,
    method: &Method,
) -> Option<String> {
    let (scheme, rest) = challenge.trim().split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let mut realm = None;
    let mut nonce = None;
    let mut opaque = None;
    let mut algorithm = Algorithm::Md5;
    let mut qop_auth = false;
    let mut qop_offered = false;
    for item in split_list(rest) {
        let Some((name, raw)) = item.split_once('=') else {
            continue;
        };
        let value = raw.trim().trim_matches('"').to_owned();
        match name.trim().to_ascii_lowercase().as_str() {
            "realm" => realm = Some(value),
            "nonce" => nonce = Some(value),
            "opaque" => opaque = Some(value),
            "algorithm" => algorithm = Algorithm::parse(&value)?,
            "qop" => {
                qop_offered = true;
                qop_auth = value
                    .split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth"));
            }
            _ => {}
        }
    }
    if qop_offered && !qop_auth {
        return None; // auth-int only
    }
    let (realm, nonce) = (realm?, nonce?);
    let digest_uri = uri.to_string();
    let key = ha1(algorithm, username, &realm, password);
    let mut creds = Credentials {
        username: username.to_owned(),
        realm: realm.clone(),
        nonce: nonce.clone(),
        uri: digest_uri.clone(),
        ..Credentials::default()
    };
    let response = if qop_auth {
        creds.cnonce = Some(outgoing::token());
        creds.nc = Some("00000001".into());
        creds.qop = Some("auth".into());
        creds.expected(algorithm, &key, method.as_str())
    } else {
        // RFC 2069 style, without qop.
        let ha2 = algorithm.hash(format!("{}:{digest_uri}", method.as_str()).as_bytes());
        algorithm.hash(format!("{key}:{nonce}:{ha2}").as_bytes())
    };
    let quote = |s: &str| s.replace(['"', '\\'], "");
    let mut value = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\", algorithm={}",
        quote(username),
        quote(&realm),
        quote(&nonce),
        quote(&digest_uri),
        algorithm.name()
    );
    if qop_auth {
        value.push_str(&format!(
            ", qop=auth, nc=00000001, cnonce=\"{}\"",
            creds.cnonce.unwrap_or_default()
        ));
    }
    if let Some(opaque) = opaque {
        value.push_str(&format!(", opaque=\"{}\"", quote(&opaque)));
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_is_answered_with_the_digest_the_registrar_expects() {
        let uri = Uri::parse("sip:127.0.0.1:5070").expect("uri");
        let value = respond(
            "Digest realm=\"x\", nonce=\"n1\", qop=\"auth\", algorithm=SHA-256, opaque=\"o\"",
            "bob",
            "pw",
            &uri,
        )
        .expect("answered");
        let creds = Credentials::parse(&value).expect("a digest");
        let key = ha1(Algorithm::Sha256, "bob", "x", "pw");
        assert_eq!(
            creds.response,
            creds.expected(Algorithm::Sha256, &key, "SERVICE")
        );
        assert!(value.contains("opaque=\"o\""));
        assert!(respond("Basic realm=\"x\"", "bob", "pw", &uri).is_none());
        assert!(respond(
            "Digest realm=\"x\", nonce=\"n\", qop=\"auth-int\"",
            "b",
            "p",
            &uri
        )
        .is_none());
    }
}
