//! A SIP user agent on a raw UDP socket or TCP connection, for the spoofing, disclosure and
//! enumeration tests: it sends requests as whoever it claims to be, reads what the relay
//! answers, and answers digest challenges (401 and 407) with MD5 credentials.

use std::net::SocketAddr;
use std::time::Duration;

use md5::{Digest, Md5};
use restsip_e2e::Relay;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Mutex;

use crate::phones::{header_lines, next_starting};

/// UDP or TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Udp,
    Tcp,
}

/// The socket and what it has read but not handed out yet (TCP).
enum Link {
    Udp(UdpSocket),
    Tcp(Mutex<(TcpStream, Vec<u8>)>),
}

/// One agent: one socket (one flow) to the relay.
pub(crate) struct Agent {
    link: Link,
    relay: SocketAddr,
    port: u16,
    /// The port its Contact names (its own port unless told otherwise).
    contact_port: u16,
    transport: Transport,
}

fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

/// A request to send: method, Request-URI, From and To addresses, and extras.
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    /// The Request-URI's address (`user@host`).
    pub(crate) to: &'a str,
    pub(crate) from: &'a str,
    /// Extra header lines, each ending in CRLF.
    pub(crate) extra: &'a str,
    pub(crate) content_type: &'a str,
    pub(crate) body: &'a str,
}

impl Request<'_> {
    /// A request with no extra headers and no body.
    pub(crate) fn new<'a>(method: &'a str, from: &'a str, to: &'a str) -> Request<'a> {
        Request {
            method,
            to,
            from,
            extra: "",
            content_type: "",
            body: "",
        }
    }
}

impl Agent {
    /// An agent over `transport` to the relay.
    pub(crate) async fn new(relay: &Relay, transport: Transport) -> Self {
        let relay = relay.sip.unwrap();
        let (link, port) = match transport {
            Transport::Udp => {
                let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let port = socket.local_addr().unwrap().port();
                (Link::Udp(socket), port)
            }
            Transport::Tcp => {
                let stream = TcpStream::connect(relay).await.unwrap();
                let port = stream.local_addr().unwrap().port();
                (Link::Tcp(Mutex::new((stream, Vec::new()))), port)
            }
        };
        Self {
            link,
            relay,
            port,
            contact_port: port,
            transport,
        }
    }

    /// The agent with a Contact naming `port` on its host rather than its own port (as a phone
    /// behind NAT, or a TCP phone naming its listening port while it connects from another):
    /// only its flow reaches it.
    pub(crate) fn advertising(mut self, port: u16) -> Self {
        self.contact_port = port;
        self
    }

    /// Sends from now on to `relay` (UDP: the same socket and Contact, another relay; what a
    /// phone does when its next REGISTER goes to another target of the SRV records).
    pub(crate) fn towards(&mut self, relay: &Relay) {
        assert_eq!(
            self.transport,
            Transport::Udp,
            "a TCP flow stays with its relay"
        );
        self.relay = relay.sip.unwrap();
    }

    /// The local port of its socket (its Contact's).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    fn via_transport(&self) -> &'static str {
        match self.transport {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// Sends raw text.
    pub(crate) async fn send(&self, text: &str) {
        match &self.link {
            Link::Udp(socket) => {
                socket.send_to(text.as_bytes(), self.relay).await.unwrap();
            }
            Link::Tcp(stream) => {
                stream
                    .lock()
                    .await
                    .0
                    .write_all(text.as_bytes())
                    .await
                    .unwrap();
            }
        }
    }

    /// The next message from the relay within `wait`.
    pub(crate) async fn next_within(&self, wait: Duration) -> Option<String> {
        match &self.link {
            Link::Udp(socket) => {
                let mut buf = vec![0u8; 65_536];
                let (n, _) = tokio::time::timeout(wait, socket.recv_from(&mut buf))
                    .await
                    .ok()?
                    .unwrap();
                Some(String::from_utf8_lossy(&buf[..n]).into_owned())
            }
            Link::Tcp(stream) => {
                let mut guard = stream.lock().await;
                let (stream, pending) = &mut *guard;
                let deadline = tokio::time::Instant::now() + wait;
                loop {
                    if let Some(msg) = frame(pending) {
                        return Some(msg);
                    }
                    let mut buf = vec![0u8; 65_536];
                    let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
                        .await
                        .ok()?
                        .unwrap();
                    if n == 0 {
                        return None;
                    }
                    pending.extend_from_slice(&buf[..n]);
                }
            }
        }
    }

    /// The next message whose start line begins with `start`; requests the relay sends
    /// meanwhile (a NOTIFY) are answered 200.
    pub(crate) async fn next(&self, start: &str) -> String {
        let answer = async |msg: &str| {
            if !msg.starts_with("SIP/2.0 ") {
                self.ok(msg).await;
            }
        };
        next_starting(start, async |wait| self.next_within(wait).await, answer).await
    }

    /// Answers a request from the relay with 200.
    pub(crate) async fn ok(&self, req: &str) {
        self.answer(req, "200 OK", None, "", "").await;
    }

    /// Answers a request from the relay with `status` (`180 Ringing`, say): its Via, From,
    /// Call-ID, CSeq and Record-Route, its To with the tag `tag` when given, then `extra`
    /// header lines (each ending in CRLF) and `body` (an `application/sdp` one, if any).
    pub(crate) async fn answer(
        &self,
        req: &str,
        status: &str,
        tag: Option<&str>,
        extra: &str,
        body: &str,
    ) {
        let mut head = format!("SIP/2.0 {status}\r\n");
        for name in ["Via", "Record-Route", "From", "To", "Call-ID", "CSeq"] {
            for line in header_lines(req, name) {
                head.push_str(&line);
                if let Some(tag) = tag.filter(|_| name == "To" && !line.contains(";tag=")) {
                    head.push_str(&format!(";tag={tag}"));
                }
                head.push_str("\r\n");
            }
        }
        if !body.is_empty() {
            head.push_str("Content-Type: application/sdp\r\n");
        }
        head.push_str(&format!(
            "{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ));
        self.send(&head).await;
    }

    /// This agent's Contact: its address, with its transport.
    pub(crate) fn contact(&self) -> String {
        format!(
            "<sip:agent@127.0.0.1:{};transport={}>",
            self.contact_port,
            self.via_transport().to_ascii_lowercase()
        )
    }

    /// A request `method` (CSeq `cseq`) in the dialog of `invite`, which this agent answered
    /// with the To tag `tag`: to the caller's Contact, along the INVITE's Record-Route in
    /// order (RFC 3261 §12.1.2), From and To swapped.
    pub(crate) fn in_dialog(&self, invite: &str, tag: &str, method: &str, cseq: u32) -> String {
        let value = |name: &str| {
            header_lines(invite, name)
                .first()
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_else(|| panic!("no {name} in {invite}"))
        };
        let contact = value("Contact");
        let target = contact
            .split_once('<')
            .and_then(|(_, rest)| rest.split_once('>'))
            .map_or(contact.as_str(), |(uri, _)| uri);
        let routes: String = header_lines(invite, "Record-Route")
            .iter()
            .filter_map(|l| l.split_once(':'))
            .map(|(_, v)| format!("Route: {}\r\n", v.trim()))
            .collect();
        let (port, transport) = (self.port, self.via_transport());
        format!(
            "{method} {target} SIP/2.0\r\n\
             Via: SIP/2.0/{transport} 127.0.0.1:{port};branch=z9hG4bK-{method}-{tag}-{cseq};rport\r\n\
             Max-Forwards: 70\r\n{routes}From: {to};tag={tag}\r\nTo: {from}\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            to = value("To"),
            from = value("From"),
            call_id = value("Call-ID"),
        )
    }

    /// The ACK of `resp`, a 2xx to this agent's INVITE: to the callee's Contact, along the
    /// 2xx's Record-Route reversed (RFC 3261 §12.1.2, §13.2.2.4), a branch of its own.
    pub(crate) fn ack_of(&self, resp: &str) -> String {
        self.after(resp, "ACK", None)
    }

    /// A request `method` of the caller in the dialog `resp` (a 2xx to this agent's INVITE)
    /// made, as [`Agent::ack_of`] but with CSeq `cseq` (the INVITE's when None).
    pub(crate) fn after(&self, resp: &str, method: &str, cseq: Option<u32>) -> String {
        let value = |name: &str| {
            header_lines(resp, name)
                .first()
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_else(|| panic!("no {name} in {resp}"))
        };
        let contact = value("Contact");
        let target = contact
            .split_once('<')
            .and_then(|(_, rest)| rest.split_once('>'))
            .map_or(contact.as_str(), |(uri, _)| uri);
        let mut routes: Vec<String> = header_lines(resp, "Record-Route")
            .iter()
            .filter_map(|l| l.split_once(':'))
            .flat_map(|(_, v)| v.split(',').map(|r| r.trim().to_owned()))
            .collect();
        routes.reverse();
        let routes: String = routes.iter().map(|r| format!("Route: {r}\r\n")).collect();
        let invite_cseq = value("CSeq");
        let number = cseq.map_or_else(
            || {
                invite_cseq
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            },
            |n| n.to_string(),
        );
        let (port, transport) = (self.port, self.via_transport());
        format!(
            "{method} {target} SIP/2.0\r\n\
             Via: SIP/2.0/{transport} 127.0.0.1:{port};branch=z9hG4bK-{method}-{number}-{port};rport\r\n\
             Max-Forwards: 70\r\n{routes}From: {from}\r\nTo: {to}\r\n\
             Call-ID: {call_id}\r\nCSeq: {number} {method}\r\nContent-Length: 0\r\n\r\n",
            from = value("From"),
            to = value("To"),
            call_id = value("Call-ID"),
        )
    }

    /// The final response to this agent's request of `cseq` (such as `1 BYE`).
    pub(crate) async fn final_to(&self, cseq: &str) -> String {
        loop {
            let msg = self.next("SIP/2.0 ").await;
            if msg.contains(&format!("CSeq: {cseq}\r\n")) && !msg.starts_with("SIP/2.0 1") {
                return msg;
            }
        }
    }

    /// The text of `req` with CSeq `cseq` on call `call_id` and the extra header lines
    /// `auth`.
    pub(crate) fn text(&self, req: &Request<'_>, call_id: &str, cseq: u32, auth: &str) -> String {
        let (port, transport) = (self.port, self.via_transport());
        let method = req.method;
        let contact = self.contact();
        let ctype = if req.content_type.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {}\r\n", req.content_type)
        };
        format!(
            "{method} sip:{to} SIP/2.0\r\n\
             Via: SIP/2.0/{transport} 127.0.0.1:{port};branch=z9hG4bK-{call_id}-{cseq};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{from}>;tag=f{port}\r\nTo: <sip:{to}>\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: {contact}\r\n\
             {extra}{auth}{ctype}Content-Length: {len}\r\n\r\n{body}",
            to = req.to,
            from = req.from,
            extra = req.extra,
            len = req.body.len(),
            body = req.body,
        )
    }

    /// Sends `req` once (CSeq 1) and returns the final response (after any 1xx); an INVITE's
    /// non-2xx final response is acknowledged (a 2xx is left to the caller).
    pub(crate) async fn final_response(&self, req: &Request<'_>, call_id: &str) -> String {
        self.send(&self.text(req, call_id, 1, "")).await;
        self.final_of(req, call_id, 1).await
    }

    async fn final_of(&self, req: &Request<'_>, call_id: &str, cseq: u32) -> String {
        loop {
            let msg = self.next("SIP/2.0 ").await;
            let ours = msg.contains(&format!("Call-ID: {call_id}\r\n"))
                && msg.contains(&format!("CSeq: {cseq} {}", req.method));
            if !ours || msg.starts_with("SIP/2.0 1") {
                continue;
            }
            // A 2xx is acknowledged by the caller, in its dialog ([`Agent::ack_of`]).
            if req.method == "INVITE" && !msg.starts_with("SIP/2.0 2") {
                self.ack(&msg, call_id, cseq).await;
            }
            return msg;
        }
    }

    /// The ACK of an INVITE's non-2xx final response (same branch, RFC 3261 §17.1.1.3).
    async fn ack(&self, resp: &str, call_id: &str, cseq: u32) {
        let via = header_lines(resp, "Via").remove(0);
        let from = header_lines(resp, "From").remove(0);
        let to = header_lines(resp, "To").remove(0);
        let uri = resp_request_uri(resp);
        self.send(&format!(
            "ACK {uri} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n{from}\r\n{to}\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n"
        ))
        .await;
    }

    /// Sends `req`, answers the challenge (401 or 407) with `username` and `password`, and
    /// returns the final response to the second try.
    pub(crate) async fn authenticated(
        &self,
        req: &Request<'_>,
        call_id: &str,
        username: &str,
        password: &str,
    ) -> String {
        let first = self.final_response(req, call_id).await;
        let (challenge_header, credentials_header) = if first.starts_with("SIP/2.0 407") {
            ("Proxy-Authenticate", "Proxy-Authorization")
        } else if first.starts_with("SIP/2.0 401") {
            ("WWW-Authenticate", "Authorization")
        } else {
            panic!("not challenged: {first}");
        };
        let line = header_lines(&first, challenge_header)
            .into_iter()
            .find(|l| l.contains("algorithm=MD5"))
            .unwrap_or_else(|| panic!("no MD5 challenge in {first}"));
        let (realm, nonce) = (param(&line, "realm"), param(&line, "nonce"));
        let uri = format!("sip:{}", req.to);
        let ha1 = md5_hex(&format!("{username}:{realm}:{password}"));
        let ha2 = md5_hex(&format!("{}:{uri}", req.method));
        let response = md5_hex(&format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}"));
        let auth = format!(
            "{credentials_header}: Digest username=\"{username}\", realm=\"{realm}\", \
             nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, \
             qop=auth, nc=00000001, cnonce=\"c0ffee\"\r\n"
        );
        self.send(&self.text(req, call_id, 2, &auth)).await;
        self.final_of(req, call_id, 2).await
    }

    /// Registers `aor` over this flow (digest with the harness's password `pw-{aor}`); the
    /// final status line.
    pub(crate) async fn register(&self, aor: &str) -> String {
        self.register_in(aor, &format!("reg-{}", self.port)).await
    }

    /// [`Agent::register`] with Call-ID `call_id` (a phone registering at another registrar).
    pub(crate) async fn register_in(&self, aor: &str, call_id: &str) -> String {
        let req = Request {
            extra: "Expires: 300\r\n",
            ..Request::new("REGISTER", aor, aor)
        };
        let answer = self
            .authenticated(&req, call_id, aor, &format!("pw-{aor}"))
            .await;
        status(&answer)
    }

    /// Removes this flow's binding of `aor` (`Expires: 0`, authenticated as
    /// [`Agent::register`] is); the final status line.
    pub(crate) async fn unregister(&self, aor: &str) -> String {
        let req = Request {
            extra: "Expires: 0\r\n",
            ..Request::new("REGISTER", aor, aor)
        };
        let call_id = format!("unreg-{}", self.port);
        let answer = self
            .authenticated(&req, &call_id, aor, &format!("pw-{aor}"))
            .await;
        status(&answer)
    }
}

/// The Request-URI an ACK for `resp` goes to: the To URI.
fn resp_request_uri(resp: &str) -> String {
    let to = header_lines(resp, "To").remove(0);
    let start = to.find('<').map_or(0, |i| i + 1);
    let end = to[start..].find('>').map_or(to.len(), |i| start + i);
    to[start..end].to_owned()
}

/// One whole message off the front of `pending`, if it holds one (SIP over TCP framing by
/// Content-Length; keep-alive CRLFs skipped).
pub(crate) fn frame(pending: &mut Vec<u8>) -> Option<String> {
    while pending.starts_with(b"\r\n") {
        pending.drain(..2);
    }
    let end = pending.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&pending[..end]).into_owned();
    let len = header_lines(&head, "Content-Length")
        .first()
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if pending.len() < end + len {
        return None;
    }
    let msg: Vec<u8> = pending.drain(..end + len).collect();
    Some(String::from_utf8_lossy(&msg).into_owned())
}

/// A quoted parameter of a challenge line.
pub(crate) fn param(line: &str, name: &str) -> String {
    let start = line.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    line[start..][..line[start..].find('"').unwrap()].to_owned()
}

/// The status line of a response.
pub(crate) fn status(msg: &str) -> String {
    msg.lines().next().unwrap_or_default().to_owned()
}
