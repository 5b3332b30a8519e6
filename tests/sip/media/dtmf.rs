//! Key presses from a phone in a call with a web user reach the web user as `dtmf` SENDs: a
//! SIP INFO (`application/dtmf-relay`, `application/dtmf`) in either direction of call, with
//! the errors of every other INFO; and RFC 4733 telephone-events through a real rtpengine
//! that logs them to the relay (`--rtpengine-dtmf`).

use restsip_e2e::rtpengine::Rtpengine;
use restsip_e2e::{Relay, WAIT};
use serde_json::json;
use tokio::net::UdpSocket;

use super::answered::{phone_calls, Answered};
use super::*;
use crate::phones::{call_setup, inbox, send_invite};

/// An INFO of the phone in `dialog` with `headers` (each ending in CRLF) and `body`.
fn info(phone: &Phone, seq: u32, dialog: &Dialog, headers: &str, body: &str) -> String {
    let port = phone.port;
    format!(
        "INFO {} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-info-{seq}-{port};rport\r\n\
         Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {seq} INFO\r\n\
         {headers}Content-Length: {}\r\n\r\n{body}",
        dialog.target,
        dialog.phone,
        dialog.relay,
        dialog.call_id,
        body.len()
    )
}

/// Sends `request` from `phone`: the status line of its final response.
async fn ask(phone: &Phone, request: &str) -> String {
    phone.send(request).await;
    let resp = response_to(phone, "INFO").await;
    resp.lines().next().unwrap_or_default().to_owned()
}

/// The next `dtmf` message on the web user's stream (other messages skipped).
async fn next_dtmf(inbox: &mut EventStream) -> Value {
    loop {
        let body = next_body(inbox).await;
        if body["command"] == "dtmf" {
            return body;
        }
    }
}

const RELAY_TYPE: &str = "Content-Type: application/dtmf-relay\r\n";

#[tokio::test]
async fn a_phone_s_info_in_a_call_it_placed_reaches_the_web_user_and_bad_ones_are_refused() {
    // No rtpengine: the phone's plain offer reaches the web user as it is.
    let relay = Relay::start(&["--sip-sdp-passthrough", "on"])
        .await
        .unwrap();
    let alice = relay.user(ALICE).await.unwrap();
    let mut inbox = inbox(&alice, ALICE).await;
    let phone = Phone::new(&relay).await;
    let call_id = format!("dtmf-in-{}", phone.port);
    let invite = phone_invite(&phone, ALICE, &call_id, &phone_sdp(4000, "sendrecv"));
    phone.send(&invite).await;
    let offer = next_body(&mut inbox).await;
    assert_eq!(offer["command"], "invite", "{offer}");
    let accept =
        json!({"command": "accept", "sdp": phone_sdp(4002, "sendrecv"), "id": offer["id"]});
    page_sends(&alice, accept).await;
    let ok = response_to(&phone, "INVITE").await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert!(header(&ok, "Allow").contains("INFO"), "{ok}");
    let dialog = Dialog::placed(&invite, &ok);
    phone.send(&in_dialog(&phone, "ACK", 1, &dialog, "")).await;

    // Cisco's dtmf-relay: the key and its duration.
    let press = info(
        &phone,
        2,
        &dialog,
        RELAY_TYPE,
        "Signal=5\r\nDuration=160\r\n",
    );
    assert_eq!(ask(&phone, &press).await, "SIP/2.0 200 OK");
    let dtmf = next_dtmf(&mut inbox).await;
    assert_eq!(dtmf["digits"], "5", "{dtmf}");
    assert_eq!(dtmf["duration"], 160, "{dtmf}");
    assert_eq!(dtmf["id"], offer["id"], "{dtmf}");
    assert_eq!(dtmf["sip"]["callId"], call_id.as_str(), "{dtmf}");

    // application/dtmf: the key alone.
    let press = info(
        &phone,
        3,
        &dialog,
        "Content-Type: application/dtmf\r\n",
        "#",
    );
    assert_eq!(ask(&phone, &press).await, "SIP/2.0 200 OK");
    assert_eq!(next_dtmf(&mut inbox).await["digits"], "#");

    // Another body type: 415 naming the types taken.
    let text = info(&phone, 4, &dialog, "Content-Type: text/plain\r\n", "5");
    phone.send(&text).await;
    let refused = response_to(&phone, "INFO").await;
    assert!(refused.starts_with("SIP/2.0 415"), "{refused}");
    assert!(
        header(&refused, "Accept").contains("application/dtmf-relay"),
        "{refused}"
    );

    // Not a key press: 400.
    let bad = info(
        &phone,
        5,
        &dialog,
        RELAY_TYPE,
        "Signal=X\r\nDuration=160\r\n",
    );
    assert!(ask(&phone, &bad).await.starts_with("SIP/2.0 400"));
    let bad = info(&phone, 6, &dialog, RELAY_TYPE, "Duration=160\r\n");
    assert!(ask(&phone, &bad).await.starts_with("SIP/2.0 400"));

    // An Info-Package (RFC 6086): the relay supports none.
    let package = format!("Info-Package: foo\r\n{RELAY_TYPE}");
    let pkg = info(&phone, 7, &dialog, &package, "Signal=1\r\n");
    assert!(ask(&phone, &pkg).await.starts_with("SIP/2.0 469"));

    // Outside the dialog: another Call-ID, or the right one with a tag that is not its.
    let stranger = Dialog {
        call_id: "no-such-call".into(),
        ..dialog.clone()
    };
    let lost = info(&phone, 8, &stranger, RELAY_TYPE, "Signal=1\r\n");
    assert!(ask(&phone, &lost).await.starts_with("SIP/2.0 481"));
    let forged = Dialog {
        phone: format!("<sip:{CAROL}>;tag=someone-else"),
        ..dialog.clone()
    };
    let lost = info(&phone, 9, &forged, RELAY_TYPE, "Signal=1\r\n");
    assert!(ask(&phone, &lost).await.starts_with("SIP/2.0 481"));

    // The refused ones told the web user nothing: the next dtmf is the next good one.
    let press = info(&phone, 10, &dialog, RELAY_TYPE, "Signal=11\r\n");
    assert_eq!(ask(&phone, &press).await, "SIP/2.0 200 OK");
    let dtmf = next_dtmf(&mut inbox).await;
    assert_eq!(dtmf["digits"], "#", "{dtmf}");
    assert!(dtmf.get("duration").is_none(), "{dtmf}");

    // After the call, the dialog is gone.
    phone.send(&in_dialog(&phone, "BYE", 11, &dialog, "")).await;
    assert!(response_to(&phone, "BYE").await.starts_with("SIP/2.0 200"));
    let late = info(&phone, 12, &dialog, RELAY_TYPE, "Signal=1\r\n");
    assert!(ask(&phone, &late).await.starts_with("SIP/2.0 481"));
}

#[tokio::test]
async fn a_phone_s_info_in_a_call_a_web_user_placed_reaches_the_web_user() {
    let relay = Relay::start(&[]).await.unwrap();
    let (phone, alice, mut inbox) = call_setup(&relay).await;
    let plain = phone_sdp(4000, "sendrecv");
    let receipt = send_invite(
        &alice,
        json!({"command": "invite", "sdp": plain, "url": "/call/d1", "id": "d1"}),
    );
    let invite = phone.next("INVITE ").await;
    let headers = answer_headers(&phone, "");
    phone
        .answer(&invite, "200 OK", &headers, &phone_sdp(4002, "sendrecv"))
        .await;
    let ack = phone.next("ACK ").await;
    tokio::time::timeout(WAIT, receipt).await.unwrap().unwrap();
    assert_eq!(next_body(&mut inbox).await["command"], "accept");
    // The phone is the callee: its requests go From its side (the ACK's To) to the relay's.
    let dialog = Dialog::answered(&invite, &ack);
    let press = info(
        &phone,
        1,
        &dialog,
        RELAY_TYPE,
        "Signal=*\r\nDuration=250\r\n",
    );
    assert_eq!(ask(&phone, &press).await, "SIP/2.0 200 OK");
    let dtmf = next_dtmf(&mut inbox).await;
    assert_eq!(dtmf["digits"], "*", "{dtmf}");
    assert_eq!(dtmf["id"], "d1", "{dtmf}");
    assert_eq!(dtmf["duration"], 250, "{dtmf}");
}

/// An RFC 4733 telephone-event for `key` (its event number) from `from` to `port`: the
/// packets of one press, the last three marked as its end.
async fn send_event(from: &UdpSocket, port: u16, event: u8) {
    let ssrc = 0x5eed_u32.to_be_bytes();
    let timestamp = 8000_u32.to_be_bytes();
    for (n, duration) in [160u16, 320, 480, 640, 800, 800, 800]
        .into_iter()
        .enumerate()
    {
        let seq = 1000 + n as u16;
        let end = n >= 4;
        let mut packet = vec![0x80, if n == 0 { 0x80 | 101 } else { 101 }];
        packet.extend_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(&timestamp);
        packet.extend_from_slice(&ssrc);
        packet.extend_from_slice(&[event, if end { 0x80 | 10 } else { 10 }]);
        packet.extend_from_slice(&duration.to_be_bytes());
        from.send_to(&packet, ("127.0.0.1", port)).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_phone_s_rfc_4733_tones_reach_the_web_user_through_rtpengine_s_dtmf_log() {
    let dtmf_log = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dest = dtmf_log.local_addr().unwrap();
    drop(dtmf_log);
    let engine = Rtpengine::start_with(&[&format!("--dtmf-log-dest={dest}")])
        .await
        .unwrap();
    let args = [
        "--rtpengine",
        &engine.addr(),
        "--rtpengine-dtmf",
        &dest.to_string(),
    ];
    let relay = Relay::start(&args).await.unwrap();
    let Answered {
        mut inbox,
        offer,
        rtp,
        port,
        ..
    } = phone_calls(&relay, &engine, "").await;
    // Some audio first (rtpengine learns the phone's address), then the key 7.
    send_rtp(&rtp, port, 10).await;
    send_event(&rtp, port, 7).await;
    let dtmf = tokio::time::timeout(WAIT, next_dtmf(&mut inbox))
        .await
        .expect("no dtmf from rtpengine's event log");
    assert_eq!(dtmf["digits"], "7", "{dtmf}");
    assert_eq!(dtmf["id"], offer["id"], "{dtmf}");
}
