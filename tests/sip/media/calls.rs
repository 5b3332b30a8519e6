//! Calls through rtpengine, each way: the SDP each side sees, RTP counted by rtpengine, the
//! session deleted when the call ends (a web user's bye, a phone's BYE).

use std::time::Duration;

use restsip_e2e::metrics::Scrape;
use restsip_e2e::rtpengine::Rtpengine;
use restsip_e2e::{Relay, WAIT};
use serde_json::json;

use super::answered::{phone_calls_as, Answered};
use super::*;
use crate::phones::{call_setup, inbox, send_invite, Phone};

/// Waits until rtpengine counted at least `count` packets on `port` of `call_id`.
async fn assert_counted(engine: &Rtpengine, call_id: &str, port: u16, count: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen = engine.packets_on(call_id, port).await.unwrap();
        if seen >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rtpengine counted {seen} of {count} packets on {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_browser_calls_a_phone_as_plain_rtp_and_the_session_ends_with_its_bye() {
    let BrowserCall {
        engine,
        relay,
        phone,
        alice,
        mut inbox,
        receipt,
        invite,
    } = browser_calls_phone(json!({"url": "/call/m1", "id": "m1"})).await;
    let offer = sdp_of(&invite);
    let port = assert_plain(offer, &engine);
    assert!(offer.contains("a=rtpmap:0 PCMU/8000"), "{offer}");
    let call_id = header(&invite, "Call-ID");
    phone.answer(&invite, "180 Ringing", "", "").await;
    let receipt = tokio::time::timeout(WAIT, receipt).await.unwrap().unwrap();
    assert_eq!(receipt["deliveries"][0]["status"], "delivered", "{receipt}");

    // The phone answers PCMU on a socket of its own; the web user gets WebRTC back.
    let (rtp, _) = phone_answers(&phone, &invite).await;
    phone.next("ACK ").await;
    assert_eq!(next_body(&mut inbox).await["command"], "ringing");
    webrtc_message(&mut inbox, "accept", &json!("m1"), "a=setup:").await;

    // Real RTP from the phone reaches rtpengine's port for it.
    send_rtp(&rtp, port, 20).await;
    assert_counted(&engine, &call_id, port, 20).await;
    let sessions = "restsip_media_sessions_active";
    let m = Scrape::get(&relay.url("/metrics")).await.unwrap();
    assert_eq!(m.sum(sessions, &[]), 1.0, "{}", m.text);

    // The web user hangs up: BYE to the phone, and rtpengine forgets the call.
    let bye = json!({"command": "bye", "id": "m1"});
    page_sends(&alice, bye).await;
    let bye = phone.next("BYE ").await;
    phone.answer(&bye, "200 OK", "", "").await;
    assert_deleted(&engine, &call_id).await;
    let m = Scrape::get(&relay.url("/metrics")).await.unwrap();
    assert_eq!(m.sum(sessions, &[]), 0.0, "{}", m.text);
}

#[tokio::test]
async fn a_phone_calls_a_browser_which_gets_webrtc_and_holds_it() {
    let (engine, relay) = with_rtpengine(&[]).await;
    let alice = relay.user(ALICE).await.unwrap();
    let inbox = inbox(&alice, ALICE).await;
    let call = phone_calls_as(&relay, &engine, "", &alice, inbox).await;
    let Answered {
        phone,
        mut inbox,
        dialog,
        invite,
        offer,
        rtp,
        port,
        ..
    } = call;
    let sdp = offer["sdp"].as_str().unwrap();
    assert_webrtc(sdp);
    assert!(sdp.contains("a=mid:"), "no mid in {sdp}");
    let call_id = dialog.call_id.clone();
    let rtp_port = media_port(sdp_of(&invite));
    send_rtp(&rtp, port, 10).await;
    assert_counted(&engine, &call_id, port, 10).await;

    // The web user holds: a re-INVITE to the phone with a plain sendonly offer.
    let call = MediaCall {
        alice: &alice,
        phone: &phone,
        engine: &engine,
        call_id: &call_id,
        rtp_port,
    };
    call.web_user_holds(&mut inbox, &offer["id"]).await;

    // The phone hangs up: the web user gets bye, rtpengine forgets the call.
    phone_hangs_up(&phone, 2, &dialog, &mut inbox).await;
    assert_deleted(&engine, &call_id).await;
}

/// The CANCEL of `invite` (same Request-URI, Via, From, To, Call-ID; RFC 3261 §9.1).
fn cancel_of(invite: &str) -> String {
    let uri = invite.lines().next().unwrap().split(' ').nth(1).unwrap();
    let mut cancel = format!("CANCEL {uri} SIP/2.0\r\n");
    for name in ["Via", "Max-Forwards", "From", "To", "Call-ID"] {
        cancel.push_str(&format!("{name}: {}\r\n", header(invite, name)));
    }
    cancel.push_str("CSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n");
    cancel
}

#[tokio::test]
async fn a_rejected_or_cancelled_call_leaves_no_rtpengine_session() {
    // The phone refuses the browser's call.
    let BrowserCall {
        engine,
        relay,
        phone,
        mut inbox,
        receipt,
        invite,
        ..
    } = browser_calls_phone(json!({"id": "r1"})).await;
    let call_id = header(&invite, "Call-ID");
    assert_eq!(engine.query(&call_id).await.unwrap()["result"], "ok");
    phone.answer(&invite, "486 Busy Here", "", "").await;
    let receipt = tokio::time::timeout(WAIT, receipt).await.unwrap().unwrap();
    assert_eq!(receipt["deliveries"][0]["sip"]["code"], 486, "{receipt}");
    assert_eq!(next_body(&mut inbox).await["command"], "reject");
    assert_deleted(&engine, &call_id).await;

    // A phone's call to the browser, cancelled while it rings.
    let caller = Phone::new(&relay).await;
    // Carol calls from a phone registered as her (or she would be challenged, 407).
    let status = caller
        .register_as(CAROL, CAROL, &format!("pw-{CAROL}"))
        .await;
    assert!(status.starts_with("SIP/2.0 200"), "{status}");
    let call_id = format!("cancelled-{}", caller.port);
    let invite = phone_invite(&caller, ALICE, &call_id, &phone_sdp(4000, "sendrecv"));
    caller.send(&invite).await;
    assert_eq!(next_body(&mut inbox).await["command"], "invite");
    assert_eq!(engine.query(&call_id).await.unwrap()["result"], "ok");
    caller.send(&cancel_of(&invite)).await;
    let terminated = response_to(&caller, "INVITE").await;
    assert!(terminated.starts_with("SIP/2.0 487"), "{terminated}");
    assert_eq!(next_body(&mut inbox).await["command"], "cancel");
    assert_deleted(&engine, &call_id).await;
}

#[tokio::test]
async fn a_phone_that_forgot_the_call_frees_its_rtpengine_session() {
    let engine = Rtpengine::start().await.unwrap();
    let args = ["--rtpengine", &engine.addr(), "--sip-call-keepalive", "1"];
    let relay = Relay::start(&args).await.unwrap();
    let (phone, alice, mut inbox) = call_setup(&relay).await;
    let _receipt = send_invite(
        &alice,
        json!({"command": "invite", "sdp": CHROME_OFFER, "id": "v1"}),
    );
    let invite = phone.next("INVITE ").await;
    let call_id = header(&invite, "Call-ID");
    let headers = answer_headers(&phone, "");
    phone
        .answer(&invite, "200 OK", &headers, &phone_sdp(4000, "sendrecv"))
        .await;
    phone.next("ACK ").await;
    assert_eq!(next_body(&mut inbox).await["command"], "accept");
    // The phone restarted: it answers the keep-alive 481.
    let probe = phone.next("OPTIONS ").await;
    phone
        .answer(&probe, "481 Call/Transaction Does Not Exist", "", "")
        .await;
    let bye = next_body(&mut inbox).await;
    assert_eq!(bye["command"], "bye", "{bye}");
    assert_deleted(&engine, &call_id).await;
}
