//! Hold and resume in a browser's call to a phone through rtpengine, both ways: the web
//! user's `update` is a re-INVITE the phone answers (`updated` back), the phone's re-INVITE is
//! an `update` the web user answers with `updated` (the 200).

use restsip_e2e::WAIT;
use serde_json::json;

use super::*;

#[tokio::test]
async fn hold_and_resume_go_both_ways_as_re_invites_and_updates() {
    let BrowserCall {
        engine,
        relay: _relay,
        phone,
        alice,
        mut inbox,
        receipt,
        invite,
    } = browser_calls_phone(json!({"url": "/call/h1", "id": "h1"})).await;
    let call_id = header(&invite, "Call-ID");
    let (_rtp, rtp_port) = phone_answers(&phone, &invite).await;
    let ack = phone.next("ACK ").await;
    tokio::time::timeout(WAIT, receipt).await.unwrap().unwrap();
    assert_eq!(next_body(&mut inbox).await["command"], "accept");

    // The web user holds.
    let call = MediaCall {
        alice: &alice,
        phone: &phone,
        engine: &engine,
        call_id: &call_id,
        rtp_port,
    };
    let reinvite = call.web_user_holds(&mut inbox, &json!("h1")).await;
    assert!(header(&reinvite, "To").contains(";tag="), "{reinvite}");
    assert!(header(&reinvite, "CSeq").starts_with("2 "), "{reinvite}");

    // The phone holds in turn: its re-INVITE reaches the web user as an update.
    let dialog = Dialog::answered(&invite, &ack);
    let sendonly = phone_sdp(rtp_port, "sendonly");
    phone
        .send(&in_dialog(&phone, "INVITE", 7, &dialog, &sendonly))
        .await;
    let update = webrtc_message(&mut inbox, "update", &json!("h1"), "a=sendonly").await;
    let sdp = update["sdp"].as_str().unwrap();
    let mid = mid_of(sdp);
    let updated = json!({"command": "updated", "id": "h1", "sdp": chrome_answer(&mid, "recvonly")});
    page_sends(&alice, updated).await;
    let ok = response_to(&phone, "INVITE").await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert!(header(&ok, "CSeq").starts_with("7 "), "{ok}");
    let answer = sdp_of(&ok);
    assert_plain(answer, &engine);
    assert!(answer.contains("a=recvonly"), "{answer}");
    phone.send(&in_dialog(&phone, "ACK", 7, &dialog, "")).await;

    // The phone hangs up; rtpengine forgets the call.
    phone_hangs_up(&phone, 8, &dialog, &mut inbox).await;
    assert_deleted(&engine, &call_id).await;
}
