//! Media between browsers and SIP phones through a real rtpengine (Debian's
//! `rtpengine-daemon`, started per test by [`restsip_e2e::rtpengine::Rtpengine`]): a web
//! user's WebRTC offer reaches a socket phone as plain RTP/AVP and the phone's answer comes
//! back as WebRTC, RTP from the phone is counted by rtpengine, and the rtpengine session ends
//! with the call (`calls`); a phone's plain offer reaches the web user as WebRTC (`calls`);
//! hold and resume both ways (`hold`); a phone's key presses, SIP INFO or RFC 4733 through
//! rtpengine's DTMF log, reach the web user (`dtmf`); without rtpengine, or with one that does
//! not answer, such calls are refused clearly and nothing hangs (`refusals`); session timers,
//! rtpengine's media timeout and an offerless INVITE (`timers`); glare (`glare`); an Opus-only
//! browser and a PCMU-only phone hear each other through rtpengine's transcoding (`transcode`).

mod answered;
mod calls;
mod dtmf;
mod glare;
mod hold;
mod refusals;
mod timers;
mod transcode;

use std::time::Duration;

use restsip_e2e::rtpengine::Rtpengine;
use restsip_e2e::{Client, EventStream, Relay, WAIT};
use restsip_protocol::EventKind;
use serde_json::Value;
use tokio::net::UdpSocket;

use crate::phones::{body_of, call_setup, header_lines, send_invite, Phone};

/// The web user.
pub(crate) const ALICE: &str = "alice@example.net";
/// The user of the phone.
pub(crate) const CAROL: &str = "carol@example.net";

/// A Chromium offer (audio: Opus and PCMU; ICE, DTLS fingerprint, rtcp-mux, BUNDLE).
pub(crate) const CHROME_OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS stream\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 126\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=candidate:1467250027 1 udp 2122260223 127.0.0.1 46243 typ host generation 0 network-id 1\r\n\
a=ice-ufrag:EsAw\r\n\
a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=sendrecv\r\n\
a=msid:stream track\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
a=ssrc:1001 cname:abcd\r\n";

/// A Chromium answer to an offer whose audio has `mid`, taking PCMU, in `direction`.
pub(crate) fn chrome_answer(mid: &str, direction: &str) -> String {
    format!(
        "v=0\r\n\
o=- 5000000000000000001 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE {mid}\r\n\
a=msid-semantic: WMS\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 0 101\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=candidate:2999745851 1 udp 2122260223 127.0.0.1 50000 typ host generation 0 network-id 1\r\n\
a=ice-ufrag:Wb0F\r\n\
a=ice-pwd:Yx0yq2bKXTC5B1dB0vQpPeUb\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 6B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n\
a=setup:active\r\n\
a=mid:{mid}\r\n\
a={direction}\r\n\
a=msid:- track\r\n\
a=rtcp-mux\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=ssrc:2002 cname:efgh\r\n"
    )
}

/// A phone's plain session: PCMU (and PCMA, telephone-event) on `port`, in `direction`.
pub(crate) fn phone_sdp(port: u16, direction: &str) -> String {
    format!(
        "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
    )
}

/// Asserts `sdp` is a phone's: RTP/AVP, no ICE, no DTLS, on 127.0.0.1 at a port of
/// `engine`'s; that port.
pub(crate) fn assert_plain(sdp: &str, engine: &Rtpengine) -> u16 {
    assert!(sdp.contains(" RTP/AVP "), "{sdp}");
    assert!(!sdp.contains("SAVP"), "{sdp}");
    assert!(!sdp.contains("a=ice-"), "{sdp}");
    assert!(!sdp.contains("a=candidate"), "{sdp}");
    assert!(!sdp.contains("a=fingerprint"), "{sdp}");
    assert!(sdp.contains("c=IN IP4 127.0.0.1"), "{sdp}");
    let port = media_port(sdp);
    assert!(
        engine.owns_port(port),
        "port {port} is not rtpengine's: {sdp}"
    );
    port
}

/// Asserts `sdp` is a browser's: UDP/TLS/RTP/SAVPF with a fingerprint, ICE credentials and a
/// candidate, rtcp-mux.
pub(crate) fn assert_webrtc(sdp: &str) {
    for part in [
        "UDP/TLS/RTP/SAVPF",
        "a=fingerprint:",
        "a=ice-ufrag:",
        "a=ice-pwd:",
        "a=candidate:",
        "a=rtcp-mux",
    ] {
        assert!(sdp.contains(part), "no {part} in {sdp}");
    }
}

/// The port of the first `m=` line.
pub(crate) fn media_port(sdp: &str) -> u16 {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio in {sdp}"))
}

/// The value of the first `name` header of a message.
pub(crate) fn header(msg: &str, name: &str) -> String {
    let line = header_lines(msg, name)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no {name} in {msg}"));
    line.split_once(':').unwrap().1.trim().to_owned()
}

/// The next message body on a web user's stream, skipping other events.
pub(crate) async fn next_body(inbox: &mut EventStream) -> Value {
    loop {
        let e = inbox.next().await.unwrap();
        if e.kind == EventKind::Message {
            return e.data["body"].clone();
        }
    }
}

/// The next message body on the web user's stream: a `command` of call `id` whose SDP is
/// WebRTC ([`assert_webrtc`]) and contains `part`. The body.
pub(crate) async fn webrtc_message(
    inbox: &mut EventStream,
    command: &str,
    id: &Value,
    part: &str,
) -> Value {
    let body = next_body(inbox).await;
    assert_eq!(body["command"], command, "{body}");
    assert_eq!(body["id"], *id, "{body}");
    let sdp = body["sdp"].as_str().unwrap();
    assert_webrtc(sdp);
    assert!(sdp.contains(part), "{sdp}");
    body
}

/// Sends `count` PCMU packets (20 ms of silence each) from `from` to rtpengine's `port`.
pub(crate) async fn send_rtp(from: &UdpSocket, port: u16, count: u16) {
    for seq in 0..count {
        let mut packet = vec![0x80, 0x00];
        packet.extend_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        packet.extend_from_slice(&0x5eed_u32.to_be_bytes());
        packet.extend_from_slice(&[0xff; 160]);
        from.send_to(&packet, ("127.0.0.1", port)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until rtpengine no longer knows call `call_id` (its session was deleted).
pub(crate) async fn assert_deleted(engine: &Rtpengine, call_id: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let q = engine.query(call_id).await.unwrap();
        if q["result"] == "error" {
            assert_eq!(q["error-reason"], "Unknown call-id", "{q}");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rtpengine still has call {call_id}: {q}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A phone's INVITE to `to` from `phone` (Call-ID `call_id`) with `sdp`.
pub(crate) fn phone_invite(phone: &Phone, to: &str, call_id: &str, sdp: &str) -> String {
    let port = phone.port;
    format!(
        "INVITE sip:{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id};rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:{to}>\r\nFrom: <sip:{CAROL}>;tag=c{port}\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:carol@127.0.0.1:{port}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// A request of the phone in the dialog of `call_id`: From (the phone's side, with its tag),
/// To (the relay's, with its tag), the Request-URI the relay's Contact; `sdp` as body.
pub(crate) fn in_dialog(
    phone: &Phone,
    method: &str,
    seq: u32,
    dialog: &Dialog,
    sdp: &str,
) -> String {
    let port = phone.port;
    let kind = if sdp.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_owned()
    };
    format!(
        "{method} {} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{method}-{seq}-{port};rport\r\n\
         Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {seq} {method}\r\n\
         Contact: <sip:carol@127.0.0.1:{port}>\r\n{kind}Content-Length: {}\r\n\r\n{sdp}",
        dialog.target,
        dialog.phone,
        dialog.relay,
        dialog.call_id,
        sdp.len()
    )
}

/// A dialog between the phone and the relay, as the phone's requests need it.
#[derive(Clone)]
pub(crate) struct Dialog {
    /// The relay's Contact URI.
    pub(crate) target: String,
    /// The phone's side (From of its requests) with its tag.
    pub(crate) phone: String,
    /// The relay's side (To of its requests) with its tag.
    pub(crate) relay: String,
    /// Call-ID.
    pub(crate) call_id: String,
}

/// The body of a SIP message.
pub(crate) fn sdp_of(msg: &str) -> &str {
    body_of(msg)
}

/// The next response of `phone` to a `method` request (others are skipped).
pub(crate) async fn response_to(phone: &Phone, method: &str) -> String {
    loop {
        let msg = phone.next("SIP/2.0 ").await;
        if header(&msg, "CSeq").ends_with(method) && !msg.starts_with("SIP/2.0 1") {
            return msg;
        }
    }
}

impl Dialog {
    /// The dialog of a call the phone placed with `invite`, answered by the relay's `ok`.
    pub(crate) fn placed(invite: &str, ok: &str) -> Dialog {
        Dialog {
            target: header(ok, "Contact").trim_matches(['<', '>']).to_owned(),
            phone: header(invite, "From"),
            relay: header(ok, "To"),
            call_id: header(invite, "Call-ID"),
        }
    }

    /// The dialog of a call the phone answered: its `invite` and its `ack` from the relay
    /// (the phone's requests go From its side, the ACK's To, to the relay's).
    pub(crate) fn answered(invite: &str, ack: &str) -> Dialog {
        Dialog {
            target: header(invite, "Contact")
                .trim_matches(['<', '>'])
                .to_owned(),
            phone: header(ack, "To"),
            relay: header(ack, "From"),
            call_id: header(invite, "Call-ID"),
        }
    }
}

/// A relay driving a fresh rtpengine, started with `extra` flags besides `--rtpengine`.
pub(crate) async fn with_rtpengine(extra: &[&str]) -> (Rtpengine, Relay) {
    let engine = Rtpengine::start().await.unwrap();
    let mut args = vec!["--rtpengine".to_owned(), engine.addr()];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let relay = Relay::start(&args).await.unwrap();
    (engine, relay)
}

/// A web user's call to a phone through a fresh rtpengine, as far as the phone's INVITE.
pub(crate) struct BrowserCall {
    pub(crate) engine: Rtpengine,
    pub(crate) relay: Relay,
    /// Carol's phone, registered.
    pub(crate) phone: Phone,
    pub(crate) alice: Client,
    /// Alice's stream.
    pub(crate) inbox: EventStream,
    /// Alice's SEND of the invite, answered when its receipt comes.
    pub(crate) receipt: tokio::task::JoinHandle<Value>,
    /// The INVITE the phone got.
    pub(crate) invite: String,
}

/// [`with_rtpengine`] (no extra flags) and [`call_setup`]: Alice invites Carol with Chromium's
/// offer, `call` giving the rest of the message (`id`, `url`).
pub(crate) async fn browser_calls_phone(call: Value) -> BrowserCall {
    let (engine, relay) = with_rtpengine(&[]).await;
    let (phone, alice, inbox) = call_setup(&relay).await;
    let mut body = serde_json::json!({"command": "invite", "sdp": CHROME_OFFER});
    body.as_object_mut()
        .unwrap()
        .extend(call.as_object().unwrap().clone());
    let receipt = send_invite(&alice, body);
    let invite = phone.next("INVITE ").await;
    BrowserCall {
        engine,
        relay,
        phone,
        alice,
        inbox,
        receipt,
        invite,
    }
}

/// The web user SENDs `body` to Carol; the relay takes it (200).
pub(crate) async fn page_sends(alice: &Client, body: Value) {
    let r = alice
        .request("SEND", &format!("/login/{CAROL}"), Some(body))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
}

/// The headers of the phone's 200 with a session: its Contact, `extra` lines, Content-Type.
pub(crate) fn answer_headers(phone: &Phone, extra: &str) -> String {
    format!(
        "Contact: <sip:carol@127.0.0.1:{}>\r\n{extra}Content-Type: application/sdp\r\n",
        phone.port
    )
}

/// The phone answers `invite` 200 with its plain session (sendrecv) on an RTP socket of its
/// own: that socket and its port.
pub(crate) async fn phone_answers(phone: &Phone, invite: &str) -> (UdpSocket, u16) {
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rtp_port = rtp.local_addr().unwrap().port();
    let headers = answer_headers(phone, "");
    phone
        .answer(invite, "200 OK", &headers, &phone_sdp(rtp_port, "sendrecv"))
        .await;
    (rtp, rtp_port)
}

/// An answered call between the web user and the phone (its RTP on `rtp_port`) through
/// `engine`.
pub(crate) struct MediaCall<'a> {
    pub(crate) alice: &'a Client,
    pub(crate) phone: &'a Phone,
    pub(crate) engine: &'a Rtpengine,
    pub(crate) call_id: &'a str,
    pub(crate) rtp_port: u16,
}

impl MediaCall<'_> {
    /// The web user holds call `id` (a sendonly `update`): the phone gets a re-INVITE in the
    /// call with a plain sendonly offer, answers recvonly, and the web user gets `updated`
    /// with a WebRTC recvonly answer. The re-INVITE.
    pub(crate) async fn web_user_holds(&self, inbox: &mut EventStream, id: &Value) -> String {
        let phone = self.phone;
        let held = CHROME_OFFER.replace("a=sendrecv", "a=sendonly");
        let update = serde_json::json!({"command": "update", "id": id, "sdp": held});
        page_sends(self.alice, update).await;
        let reinvite = phone.next("INVITE ").await;
        assert_eq!(header(&reinvite, "Call-ID"), self.call_id);
        let reoffer = sdp_of(&reinvite);
        assert_plain(reoffer, self.engine);
        assert!(reoffer.contains("a=sendonly"), "{reoffer}");
        let headers = answer_headers(phone, "");
        let recvonly = phone_sdp(self.rtp_port, "recvonly");
        phone.answer(&reinvite, "200 OK", &headers, &recvonly).await;
        phone.next("ACK ").await;
        webrtc_message(inbox, "updated", id, "a=recvonly").await;
        reinvite
    }
}

/// The `a=mid` of the audio in a WebRTC `sdp` ("0" without one).
pub(crate) fn mid_of(sdp: &str) -> String {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=mid:"))
        .unwrap_or("0")
        .trim()
        .to_owned()
}

/// The phone receives the relay's BYE in its dialog `call_id` and answers it.
pub(crate) async fn phone_gets_bye(phone: &Phone, call_id: &str) {
    let bye = phone.next("BYE ").await;
    assert_eq!(header(&bye, "Call-ID"), call_id, "{bye}");
    phone.answer(&bye, "200 OK", "", "").await;
}

/// The phone hangs up `dialog` with CSeq `seq` (the relay answers 200): the web user's
/// next message, a `bye`.
pub(crate) async fn phone_hangs_up(
    phone: &Phone,
    seq: u32,
    dialog: &Dialog,
    inbox: &mut EventStream,
) -> Value {
    phone.send(&in_dialog(phone, "BYE", seq, dialog, "")).await;
    let ok = response_to(phone, "BYE").await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let bye = next_body(inbox).await;
    assert_eq!(bye["command"], "bye", "{bye}");
    bye
}
