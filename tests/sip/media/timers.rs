//! Calls that must end, or go on, without anyone hanging up, with a socket phone and a real
//! rtpengine: RFC 4028 session timers (422 with Min-SE, a session nobody refreshes ends both
//! sides and frees rtpengine, the relay's own refreshes, the phone's refreshes by re-INVITE
//! with its session unchanged and by UPDATE answered without the page), a call whose media
//! rtpengine dropped (its `--timeout`) ended by `--rtpengine-check`, and an offerless INVITE
//! refused clearly.

use restsip_e2e::rtpengine::Rtpengine;
use restsip_e2e::{Client, EventStream, Relay};
use serde_json::json;

use super::answered::{phone_calls, phone_calls_as, Answered};
use super::*;
use crate::phones::{call_setup, inbox, send_invite, Phone};

/// Asserts the page's next message ends the call with `reason`.
async fn assert_ended(inbox: &mut EventStream, reason: &str) {
    let bye = next_body(inbox).await;
    assert_eq!(bye["command"], "bye", "{bye}");
    assert_eq!(bye["reason"], reason, "{bye}");
}

/// A relay with a fresh rtpengine whose calls last `expires` seconds unrefreshed
/// (Min-SE 2).
async fn timed_relay(expires: &str) -> (Rtpengine, Relay) {
    with_rtpengine(&["--sip-session-expires", expires, "--sip-min-se", "2"]).await
}

/// Alice calls the phone with the Chromium offer (`id`): the phone, Alice, her stream and
/// the INVITE the phone received.
async fn web_user_calls(relay: &Relay, id: &str) -> (Phone, Client, EventStream, String) {
    let (phone, alice, inbox) = call_setup(relay).await;
    let _receipt = send_invite(
        &alice,
        json!({"command": "invite", "sdp": CHROME_OFFER, "id": id}),
    );
    let invite = phone.next("INVITE ").await;
    (phone, alice, inbox, invite)
}

/// The phone hangs up `call` with CSeq `seq`: the page hears a plain `bye` (no reason) and
/// rtpengine forgets the call.
async fn phone_ends(engine: &Rtpengine, call: &mut Answered, seq: u32) {
    let bye = phone_hangs_up(&call.phone, seq, &call.dialog, &mut call.inbox).await;
    assert!(bye.get("reason").is_none(), "{bye}");
    assert_deleted(engine, &call.dialog.call_id).await;
}

#[tokio::test]
async fn a_too_small_session_interval_gets_422_and_the_2xx_names_the_refresher() {
    let (engine, relay) = with_rtpengine(&["--sip-min-se", "120"]).await;
    let phone = Phone::new(&relay).await;
    let invite = phone_invite(&phone, ALICE, "small-se", &phone_sdp(4000, "sendrecv")).replace(
        "Content-Type:",
        "Supported: timer\r\nSession-Expires: 90\r\nContent-Type:",
    );
    phone.send(&invite).await;
    let refused = response_to(&phone, "INVITE").await;
    assert!(refused.starts_with("SIP/2.0 422"), "{refused}");
    assert_eq!(header(&refused, "Min-SE"), "120", "{refused}");
    assert_deleted(&engine, "small-se").await;

    // Asking for the Min-SE or more: the 2xx names it, the phone refreshes (it supports
    // timers), and the phone must understand timers in the dialog.
    let call = phone_calls(
        &relay,
        &engine,
        "Supported: timer\r\nSession-Expires: 150\r\nMin-SE: 120\r\n",
    )
    .await;
    assert_eq!(
        header(&call.ok, "Session-Expires"),
        "150;refresher=uac",
        "{}",
        call.ok
    );
    assert_eq!(header(&call.ok, "Require"), "timer", "{}", call.ok);
    // A phone that does not speak of timers: the relay refreshes, and requires nothing.
    let alice = relay.client(ALICE, &format!("pw-{ALICE}"));
    let plain = phone_calls_as(&relay, &engine, "", &alice, call.inbox).await;
    assert_eq!(
        header(&plain.ok, "Session-Expires"),
        "1800;refresher=uas",
        "{}",
        plain.ok
    );
    assert!(
        header_lines(&plain.ok, "Require").is_empty(),
        "{}",
        plain.ok
    );
    assert_eq!(plain.offer["command"], "invite");
}

#[tokio::test]
async fn a_session_nobody_refreshes_ends_both_sides_and_frees_rtpengine() {
    let (engine, relay) = timed_relay("3").await;
    // The phone is the refresher and never refreshes.
    let mut call = phone_calls(
        &relay,
        &engine,
        "Supported: timer\r\nSession-Expires: 3;refresher=uac\r\n",
    )
    .await;
    assert_eq!(header(&call.ok, "Session-Expires"), "3;refresher=uac");
    assert_ended(&mut call.inbox, "session expired").await;
    phone_gets_bye(&call.phone, &call.dialog.call_id).await;
    assert_deleted(&engine, &call.dialog.call_id).await;
}

#[tokio::test]
async fn a_web_users_call_offers_timers_and_ends_when_the_phone_stops_refreshing() {
    let (engine, relay) = timed_relay("3").await;
    let (phone, _alice, mut inbox, invite) = web_user_calls(&relay, "t1").await;
    assert!(
        header_lines(&invite, "Supported")
            .iter()
            .any(|l| l.contains("timer")),
        "{invite}"
    );
    assert_eq!(header(&invite, "Session-Expires"), "3", "{invite}");
    assert_eq!(header(&invite, "Min-SE"), "2", "{invite}");
    let call_id = header(&invite, "Call-ID");
    // The phone (UAS) takes the refresher's part, and then never refreshes.
    let headers = answer_headers(
        &phone,
        "Require: timer\r\nSession-Expires: 3;refresher=uas\r\n",
    );
    phone
        .answer(&invite, "200 OK", &headers, &phone_sdp(4000, "sendrecv"))
        .await;
    phone.next("ACK ").await;
    assert_eq!(next_body(&mut inbox).await["command"], "accept");
    assert_ended(&mut inbox, "session expired").await;
    phone_gets_bye(&phone, &call_id).await;
    assert_deleted(&engine, &call_id).await;
}

#[tokio::test]
async fn the_relay_refreshes_a_phone_that_does_not_speak_of_timers() {
    let (engine, relay) = timed_relay("4").await;
    let mut call = phone_calls(&relay, &engine, "").await;
    assert_eq!(header(&call.ok, "Session-Expires"), "4;refresher=uas");
    let answer = sdp_of(&call.ok).to_owned();
    let phone_session = sdp_of(&call.invite).to_owned();
    let headers = answer_headers(&call.phone, "");
    // Two refreshes, each a re-INVITE with the session the phone has, every half interval.
    let mut cseqs = Vec::new();
    for _ in 0..2 {
        let refresh = call.phone.next("INVITE ").await;
        assert_eq!(header(&refresh, "Call-ID"), call.dialog.call_id);
        assert_eq!(sdp_of(&refresh), answer, "the refresh changed the session");
        assert!(
            header(&refresh, "Session-Expires").starts_with("4;refresher=uac"),
            "{refresh}"
        );
        cseqs.push(header(&refresh, "CSeq"));
        call.phone
            .answer(&refresh, "200 OK", &headers, &phone_session)
            .await;
        call.phone.next("ACK ").await;
    }
    assert_ne!(cseqs[0], cseqs[1]);
    // The page heard nothing of them: its next message is the phone's hang-up.
    phone_ends(&engine, &mut call, 2).await;
}

#[tokio::test]
async fn a_phones_refreshes_are_answered_by_the_relay_alone() {
    let (engine, relay) = timed_relay("3").await;
    let refresher = "Supported: timer\r\nSession-Expires: 3;refresher=uac\r\n";
    let mut call = phone_calls(&relay, &engine, refresher).await;
    let answer = sdp_of(&call.ok).to_owned();
    let session = sdp_of(&call.invite).to_owned();
    let with = |method: &str, seq: u32, sdp: &str| {
        in_dialog(&call.phone, method, seq, &call.dialog, sdp)
            .replace("Content-Length:", &format!("{refresher}Content-Length:"))
    };
    // Each refresh comes within the interval; together they outlast it three times.
    for seq in 2..=5u32 {
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        let (method, body) = match seq {
            2 | 4 => ("INVITE", session.as_str()),
            3 => ("UPDATE", ""),
            _ => ("UPDATE", session.as_str()),
        };
        call.phone.send(&with(method, seq, body)).await;
        let ok = response_to(&call.phone, method).await;
        assert!(ok.starts_with("SIP/2.0 200"), "{method}: {ok}");
        assert_eq!(header(&ok, "Session-Expires"), "3;refresher=uac", "{ok}");
        if !body.is_empty() {
            assert_eq!(sdp_of(&ok), answer, "{method} with the same session: {ok}");
        }
        if method == "INVITE" {
            call.phone.send(&with("ACK", seq, "")).await;
        }
    }
    // An UPDATE with a new session is refused: new offers go in a re-INVITE.
    let changed = session.replace("o=phone 1 1", "o=phone 1 2");
    call.phone.send(&with("UPDATE", 6, &changed)).await;
    let refused = response_to(&call.phone, "UPDATE").await;
    assert!(refused.starts_with("SIP/2.0 488"), "{refused}");
    // The page heard of none of it, and rtpengine still has the call.
    assert_eq!(
        engine.query(&call.dialog.call_id).await.unwrap()["result"],
        "ok"
    );
    phone_ends(&engine, &mut call, 7).await;
}

#[tokio::test]
async fn a_call_whose_media_stopped_ends_when_rtpengine_drops_it() {
    let engine = Rtpengine::start_with(&["--timeout=2"]).await.unwrap();
    let args = ["--rtpengine", &engine.addr(), "--rtpengine-check", "1"];
    let relay = Relay::start(&args).await.unwrap();
    let mut call = phone_calls(&relay, &engine, "").await;
    // The phone sends a little audio, then vanishes (UDP: no connection closes).
    send_rtp(&call.rtp, call.port, 10).await;
    assert_ended(&mut call.inbox, "media timeout").await;
    phone_gets_bye(&call.phone, &call.dialog.call_id).await;
    assert_deleted(&engine, &call.dialog.call_id).await;
}

#[tokio::test]
async fn a_phones_invite_without_an_offer_is_refused_with_a_warning() {
    let (_engine, relay) = with_rtpengine(&[]).await;
    let alice = relay.user(ALICE).await.unwrap();
    let _inbox = inbox(&alice, ALICE).await;
    let phone = Phone::new(&relay).await;
    let invite = phone_invite(&phone, ALICE, "offerless", "")
        .replace("Content-Type: application/sdp\r\n", "");
    phone.send(&invite).await;
    let refused = response_to(&phone, "INVITE").await;
    assert!(refused.starts_with("SIP/2.0 488"), "{refused}");
    let warning = header(&refused, "Warning");
    assert!(warning.starts_with("399 "), "{warning}");
    assert!(warning.contains("offer"), "{warning}");
}

#[tokio::test]
async fn a_web_users_call_asks_again_after_422_and_the_relay_refreshes_it() {
    let (engine, relay) = timed_relay("3").await;
    let (phone, alice, mut inbox, first) = web_user_calls(&relay, "t2").await;
    assert_eq!(header(&first, "Session-Expires"), "3", "{first}");
    phone
        .answer(
            &first,
            "422 Session Interval Too Small",
            "Min-SE: 4\r\n",
            "",
        )
        .await;
    // The same INVITE again (a new CSeq), asking for the phone's Min-SE.
    let invite = phone.next("INVITE ").await;
    assert_eq!(header(&invite, "Call-ID"), header(&first, "Call-ID"));
    assert_eq!(header(&invite, "CSeq"), "2 INVITE", "{invite}");
    assert_eq!(header(&invite, "Session-Expires"), "4", "{invite}");
    assert_eq!(header(&invite, "Min-SE"), "4", "{invite}");
    assert_eq!(sdp_of(&invite), sdp_of(&first));
    let session = phone_sdp(4000, "sendrecv");
    let headers = answer_headers(
        &phone,
        "Require: timer\r\nSession-Expires: 4;refresher=uac\r\n",
    );
    phone.answer(&invite, "200 OK", &headers, &session).await;
    phone.next("ACK ").await;
    assert_eq!(next_body(&mut inbox).await["command"], "accept");
    // The relay is the refresher: a re-INVITE with its offer unchanged, every half interval.
    let refresh = phone.next("INVITE ").await;
    assert_eq!(sdp_of(&refresh), sdp_of(&invite), "{refresh}");
    assert!(
        header(&refresh, "Session-Expires").starts_with("4;refresher=uac"),
        "{refresh}"
    );
    phone.answer(&refresh, "200 OK", &headers, &session).await;
    phone.next("ACK ").await;
    // The page hangs up: the phone gets the BYE, rtpengine forgets the call.
    page_sends(&alice, json!({"command": "bye", "id": "t2"})).await;
    phone_gets_bye(&phone, &header(&invite, "Call-ID")).await;
    assert_deleted(&engine, &header(&invite, "Call-ID")).await;
}
