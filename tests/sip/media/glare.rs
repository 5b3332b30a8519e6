//! Glare (RFC 3261 §14.1): re-INVITEs crossing in an answered call between a page and a phone
//! through rtpengine. The phone's re-INVITE while the relay's is pending gets 491; the relay's
//! re-INVITE the phone answers 491 is sent again after a random delay, with a new CSeq, and
//! its answer reaches the page.

use serde_json::json;

use super::answered::phone_calls;
use super::*;

/// The number of a CSeq value (`7 INVITE`).
fn seq_of(cseq: &str) -> u32 {
    cseq.split(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn crossing_re_invites_get_491_and_the_relays_is_sent_again() {
    let (engine, relay) = with_rtpengine(&[]).await;
    let mut call = phone_calls(&relay, &engine, "").await;
    let alice = relay.client(ALICE, &format!("pw-{ALICE}"));
    let held = CHROME_OFFER.replace("a=sendrecv", "a=sendonly");
    let update = json!({"command": "update", "id": call.offer["id"], "sdp": held});
    page_sends(&alice, update).await;
    let first = call.phone.next("INVITE ").await;
    assert_eq!(header(&first, "Call-ID"), call.dialog.call_id);

    // The phone's own re-INVITE crosses the relay's: 491.
    let rtp_port = media_port(sdp_of(&call.invite));
    let mine = phone_sdp(rtp_port, "sendonly").replace("o=phone 1 1", "o=phone 1 2");
    call.phone
        .send(&in_dialog(&call.phone, "INVITE", 2, &call.dialog, &mine))
        .await;
    let pending = response_to(&call.phone, "INVITE").await;
    assert!(pending.starts_with("SIP/2.0 491"), "{pending}");

    // The phone answers the relay's re-INVITE 491 too: it comes again, a new transaction.
    call.phone
        .answer(&first, "491 Request Pending", "", "")
        .await;
    let again = call.phone.next("INVITE ").await;
    assert_eq!(header(&again, "Call-ID"), call.dialog.call_id);
    assert!(
        seq_of(&header(&again, "CSeq")) > seq_of(&header(&first, "CSeq")),
        "{first}\n{again}"
    );
    assert_eq!(sdp_of(&again), sdp_of(&first), "the same offer");
    assert!(sdp_of(&again).contains("a=sendonly"), "{again}");
    let headers = answer_headers(&call.phone, "");
    call.phone
        .answer(&again, "200 OK", &headers, &phone_sdp(rtp_port, "recvonly"))
        .await;
    call.phone.next("ACK ").await;
    let updated = next_body(&mut call.inbox).await;
    assert_eq!(updated["command"], "updated", "{updated}");
    let answer = updated["sdp"].as_str().unwrap();
    assert_webrtc(answer);
    assert!(answer.contains("a=recvonly"), "{answer}");
}
