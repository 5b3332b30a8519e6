//! Opus ⇄ G.711 transcoding: a browser that offers Opus only calls a phone that has PCMU only.
//! The "browser" is a second real rtpengine in front of a plain socket: it turns the socket's
//! Opus RTP/AVP offer into a real WebRTC one (ICE, DTLS-SRTP, rtcp-mux) and does ICE and DTLS
//! with the relay's rtpengine, so the call's media path is the one a browser's would be. The
//! relay's offer flags must add PCMU for the phone, the relay's rtpengine must report the call
//! as transcoding (Opus on the browser's leg, PCMU on the phone's), and RTP must arrive at both
//! ends in each end's own codec.

use std::collections::BTreeMap;
use std::time::Duration;

use restsip_e2e::rtpengine::Rtpengine;
use restsip_e2e::{Relay, WAIT};
use serde_json::{json, Value};
use tokio::net::UdpSocket;

use super::*;
use crate::phones::{call_setup, send_invite};

/// Opus's payload type in the browser's offer.
const OPUS: u8 = 111;
/// PCMU's static payload type.
const PCMU: u8 = 0;
/// An Opus packet of one 20 ms CELT frame of silence (RFC 6716 code 0, TOC 0xF8).
const OPUS_SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];

/// A plain Opus-only session on `port` (the browser's socket, behind its rtpengine).
fn opus_sdp(port: u16) -> String {
    format!(
        "v=0\r\no=browser 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {OPUS}\r\na=rtpmap:{OPUS} opus/48000/2\r\n\
         a=fmtp:{OPUS} minptime=10;useinbandfec=1\r\na=sendrecv\r\n"
    )
}

/// A PCMU-only session on `port` (the phone, no PCMA, no telephone-event).
fn pcmu_sdp(port: u16) -> String {
    format!(
        "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {PCMU}\r\na=rtpmap:{PCMU} PCMU/8000\r\na=sendrecv\r\n"
    )
}

/// The `sdp` of a successful ng reply.
fn ng_sdp(reply: &Value) -> String {
    assert_eq!(reply["result"], "ok", "{reply}");
    reply["sdp"].as_str().unwrap().to_owned()
}

/// One RTP packet: payload type `pt`, sequence `seq`, `payload`.
fn rtp(pt: u8, seq: u16, step: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x80, pt];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&(u32::from(seq) * step).to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

/// Packets read from `socket` so far, counted by payload type (RTCP skipped).
fn drain(socket: &UdpSocket, seen: &mut BTreeMap<u8, u64>) {
    let mut buf = [0u8; 2048];
    while let Ok(n) = socket.try_recv(&mut buf) {
        // RTCP's packet types 200–204 would read as payload types 72–76.
        if n >= 12 && !(72..=76).contains(&(buf[1] & 0x7f)) {
            *seen.entry(buf[1] & 0x7f).or_default() += 1;
        }
    }
}

/// The codec and flags rtpengine reports for each tag of call `call_id`.
fn legs(query: &Value) -> BTreeMap<String, (String, Vec<String>)> {
    let mut legs = BTreeMap::new();
    for (tag, leg) in query["tags"].as_object().into_iter().flatten() {
        let media = &leg["medias"][0];
        let flags = media["flags"].as_array().into_iter().flatten();
        let flags = flags
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect();
        let codec = media["codec"].as_str().unwrap_or_default().to_owned();
        legs.insert(tag.clone(), (codec, flags));
    }
    legs
}

#[tokio::test]
async fn an_opus_only_browser_and_a_pcmu_only_phone_hear_each_other_through_transcoding() {
    let engine = Rtpengine::start().await.unwrap();
    let browser_engine = Rtpengine::start().await.unwrap();
    let relay = Relay::start(&["--rtpengine", &engine.addr()])
        .await
        .unwrap();
    let (phone, alice, mut inbox) = call_setup(&relay).await;

    // The browser's WebRTC offer: Opus only.
    let browser = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let browser_call = format!("browser-{}", phone.port);
    let reply = browser_engine
        .request(json!({
            "command": "offer", "call-id": browser_call, "from-tag": "page",
            "sdp": opus_sdp(browser.local_addr().unwrap().port()),
            "transport-protocol": "UDP/TLS/RTP/SAVPF", "ICE": "force", "DTLS": "passive",
            "rtcp-mux": ["offer"], "SDES": ["off"], "flags": ["generate mid"],
            "replace": ["origin", "session-connection"],
        }))
        .await
        .unwrap();
    let webrtc_offer = ng_sdp(&reply);
    assert_webrtc(&webrtc_offer);
    assert!(!webrtc_offer.contains("PCMU"), "{webrtc_offer}");

    let receipt = send_invite(
        &alice,
        json!({"command": "invite", "sdp": webrtc_offer, "url": "/call/t1", "id": "t1"}),
    );
    let invite = phone.next("INVITE ").await;
    let offer = sdp_of(&invite);
    let phone_port = assert_plain(offer, &engine);
    // The relay asked rtpengine to add G.711 for a phone without Opus.
    assert!(offer.contains("a=rtpmap:0 PCMU/8000"), "{offer}");
    let call_id = header(&invite, "Call-ID");

    // The phone answers PCMU only.
    let phone_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let headers = answer_headers(&phone, "");
    let answer = pcmu_sdp(phone_rtp.local_addr().unwrap().port());
    phone.answer(&invite, "200 OK", &headers, &answer).await;
    phone.next("ACK ").await;
    let receipt = tokio::time::timeout(WAIT, receipt).await.unwrap().unwrap();
    assert_eq!(receipt["deliveries"][0]["status"], "delivered", "{receipt}");
    let accept = loop {
        let body = next_body(&mut inbox).await;
        if body["command"] == "accept" {
            break body;
        }
    };
    let webrtc_answer = accept["sdp"].as_str().unwrap();
    assert_webrtc(webrtc_answer);
    // The browser is answered in its own codec, not the phone's.
    assert!(webrtc_answer.contains("opus/48000"), "{webrtc_answer}");
    assert!(!webrtc_answer.contains("PCMU"), "{webrtc_answer}");

    // The browser's rtpengine takes the answer: ICE and DTLS run between the two rtpengines.
    let reply = browser_engine
        .request(json!({
            "command": "answer", "call-id": browser_call, "from-tag": "page",
            "to-tag": "relay", "sdp": webrtc_answer,
            "replace": ["origin", "session-connection"],
        }))
        .await
        .unwrap();
    let browser_port = media_port(&ng_sdp(&reply));

    // 20 ms packets both ways for up to 5 s, until each end got 25 in its own codec.
    let (mut at_browser, mut at_phone) = (BTreeMap::new(), BTreeMap::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut seq = 0u16;
    while at_browser.get(&OPUS).copied().unwrap_or(0) < 25
        || at_phone.get(&PCMU).copied().unwrap_or(0) < 25
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "after {seq} packets each way the browser got {at_browser:?} and the phone \
             {at_phone:?} (payload type: packets); rtpengine: {}",
            engine.query(&call_id).await.unwrap()
        );
        let opus = rtp(OPUS, seq, 960, 0xb0b, &OPUS_SILENCE);
        browser
            .send_to(&opus, ("127.0.0.1", browser_port))
            .await
            .unwrap();
        let pcmu = rtp(PCMU, seq, 160, 0xca201, &[0xff; 160]);
        phone_rtp
            .send_to(&pcmu, ("127.0.0.1", phone_port))
            .await
            .unwrap();
        seq += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
        drain(&browser, &mut at_browser);
        drain(&phone_rtp, &mut at_phone);
    }
    // Nothing else reached either end: each hears only its own codec.
    assert_eq!(
        at_browser.keys().collect::<Vec<_>>(),
        [&OPUS],
        "{at_browser:?}"
    );
    assert_eq!(at_phone.keys().collect::<Vec<_>>(), [&PCMU], "{at_phone:?}");

    // The relay's rtpengine: Opus over DTLS-SRTP on the browser's leg, PCMU on the phone's,
    // both transcoding.
    let query = engine.query(&call_id).await.unwrap();
    let legs = legs(&query);
    assert_eq!(legs.len(), 2, "{query}");
    let codecs: Vec<&str> = legs.values().map(|(c, _)| c.as_str()).collect();
    assert!(codecs.contains(&"opus/48000/2"), "{query}");
    assert!(codecs.contains(&"PCMU/8000"), "{query}");
    for (tag, (codec, flags)) in &legs {
        assert!(
            flags.iter().any(|f| f == "transcoding"),
            "leg {tag} ({codec}) is not transcoding: {query}"
        );
        if codec.starts_with("opus") {
            assert!(flags.iter().any(|f| f == "DTLS-SRTP"), "{query}");
        }
    }

    // The web user hangs up: BYE to the phone, and rtpengine forgets the call.
    let bye = json!({"command": "bye", "id": "t1"});
    page_sends(&alice, bye).await;
    let bye = phone.next("BYE ").await;
    phone.answer(&bye, "200 OK", "", "").await;
    assert_deleted(&engine, &call_id).await;
}
