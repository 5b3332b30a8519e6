//! Hold and resume in a browser's call to a phone through rtpengine, both ways: the web
//! user's `update` is a re-INVITE the phone answers (`updated` back), the phone's re-INVITE is
//! an `update` the web user answers with `updated` (the 200).

use restsip_e2e::WAIT;
use serde_json::json;
use tokio::net::UdpSocket;

use super::*;
use crate::phones::{call_setup, send_invite};

#[tokio::test]
async fn hold_and_resume_go_both_ways_as_re_invites_and_updates() {
    let (engine, relay) = with_rtpengine(&[]).await;
    let (phone, alice, mut inbox) = call_setup(&relay).await;
    let receipt = send_invite(
        &alice,
        json!({"command": "invite", "sdp": CHROME_OFFER, "url": "/call/h1", "id": "h1"}),
    );
    let invite = phone.next("INVITE ").await;
    let call_id = header(&invite, "Call-ID");
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rtp_port = rtp.local_addr().unwrap().port();
    let headers = answer_headers(&phone, "");
    phone
        .answer(
            &invite,
            "200 OK",
            &headers,
            &phone_sdp(rtp_port, "sendrecv"),
        )
        .await;
    let ack = phone.next("ACK ").await;
    tokio::time::timeout(WAIT, receipt).await.unwrap().unwrap();
    assert_eq!(next_body(&mut inbox).await["command"], "accept");

    // The web user holds.
    let held = CHROME_OFFER.replace("a=sendrecv", "a=sendonly");
    let update = json!({"command": "update", "id": "h1", "sdp": held});
    page_sends(&alice, update).await;
    let reinvite = phone.next("INVITE ").await;
    assert_eq!(header(&reinvite, "Call-ID"), call_id);
    assert!(header(&reinvite, "To").contains(";tag="), "{reinvite}");
    assert!(header(&reinvite, "CSeq").starts_with("2 "), "{reinvite}");
    let reoffer = sdp_of(&reinvite);
    assert_plain(reoffer, &engine);
    assert!(reoffer.contains("a=sendonly"), "{reoffer}");
    let recvonly = phone_sdp(rtp_port, "recvonly");
    phone.answer(&reinvite, "200 OK", &headers, &recvonly).await;
    phone.next("ACK ").await;
    let updated = next_body(&mut inbox).await;
    assert_eq!(updated["command"], "updated", "{updated}");
    assert_eq!(updated["id"], "h1", "{updated}");
    assert_webrtc(updated["sdp"].as_str().unwrap());
    assert!(
        updated["sdp"].as_str().unwrap().contains("a=recvonly"),
        "{updated}"
    );

    // The phone holds in turn: its re-INVITE reaches the web user as an update.
    let dialog = Dialog::answered(&invite, &ack);
    let sendonly = phone_sdp(rtp_port, "sendonly");
    phone
        .send(&in_dialog(&phone, "INVITE", 7, &dialog, &sendonly))
        .await;
    let update = next_body(&mut inbox).await;
    assert_eq!(update["command"], "update", "{update}");
    assert_eq!(update["id"], "h1", "{update}");
    let sdp = update["sdp"].as_str().unwrap();
    assert_webrtc(sdp);
    assert!(sdp.contains("a=sendonly"), "{sdp}");
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
    phone.send(&in_dialog(&phone, "BYE", 8, &dialog, "")).await;
    let ok = response_to(&phone, "BYE").await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert_eq!(next_body(&mut inbox).await["command"], "bye");
    assert_deleted(&engine, &call_id).await;
}
