//! Stateful proxying between two sipp phones registered at the relay as two users (RFC 3261
//! §16): a MESSAGE from alice's phone reaches bob's phone with alice's From and the relay's
//! Via on top; an INVITE rings, is answered and ACKed, and is hung up with a BYE routed through
//! the relay (Record-Route); bob's 486 comes back to alice; alice's CANCEL reaches bob and his
//! 487 comes back; a SERVICE to bob reaches his phone and its SOAP response comes back;
//! Max-Forwards 0 gets 483. Each over UDP, TCP, and with one phone on each (the relay's
//! Record-Route names the transport of the hop it faces).

use std::net::SocketAddr;

use restsip_e2e::Relay;

use crate::sipp::{free_port, Mode, Run, TCP, UDP};

const ALICE: &str = "alice@example.net";
const BOB: &str = "bob@example.net";

/// Alice's and bob's transports: the same, or one phone on each.
const PAIRS: [(Mode, Mode); 4] = [(UDP, UDP), (TCP, TCP), (UDP, TCP), (TCP, UDP)];

/// The relay with alice's phone registered over `alice` and bob's over `bob`; their ports.
async fn two_phones(alice: Mode, bob: Mode) -> (Relay, SocketAddr, u16, u16) {
    let relay = Relay::default().await.unwrap();
    let sip = relay.sip.unwrap();
    let mut ports = Vec::new();
    for (user, mode) in [(ALICE, alice), (BOB, bob)] {
        relay.user(user).await.unwrap();
        let port = free_port();
        crate::sipp::register_phone(sip, mode, user, port).await;
        ports.push(port);
    }
    (relay, sip, ports[0], ports[1])
}

/// For each pair of transports, runs `callee` on bob's phone and, once it listens, `caller`
/// on alice's; both must pass.
async fn call(caller: &'static str, callee: &'static str, keys: &'static [(&str, &str)]) {
    for (a, b) in PAIRS {
        let (_relay, sip, alice, bob) = two_phones(a, b).await;
        let uas = crate::sipp::spawn_uas(sip, b, bob, callee).await;
        let uac = Run {
            relay: sip,
            scenario: caller,
            mode: a,
            port: alice,
            keys,
            auth: None,
        }
        .pass()
        .await;
        let uas = uas.await.unwrap();
        if let Err(e) = uas {
            panic!("{callee} over {b} (caller over {a}): {e:#}\n\n{caller}: {uac:?}");
        }
        if let Err(e) = uac {
            panic!("{caller} over {a} (callee over {b}): {e:#}");
        }
    }
}

#[tokio::test]
async fn a_message_between_two_phones_is_proxied() {
    call(
        "message",
        "proxy-message-uas",
        &[("from", ALICE), ("to", BOB), ("text", "hello proxy")],
    )
    .await;
}

#[tokio::test]
async fn a_call_between_two_phones_is_proxied_and_hung_up_through_the_relay() {
    call(
        "proxy-invite-uac",
        "proxy-invite-uas",
        &[("from", ALICE), ("to", BOB)],
    )
    .await;
}

#[tokio::test]
async fn a_busy_phone_s_486_is_relayed_to_the_caller() {
    call(
        "invite-busy",
        "invite-uas-busy",
        &[("from", ALICE), ("to", BOB)],
    )
    .await;
}

#[tokio::test]
async fn a_cancel_reaches_the_ringing_phone_and_its_487_the_caller() {
    call(
        "invite-cancel",
        "invite-uas-cancel",
        &[("from", ALICE), ("to", BOB)],
    )
    .await;
}

#[tokio::test]
async fn a_service_to_a_phone_is_proxied_like_any_other_request() {
    call(
        "proxy-service-uac",
        "service-uas",
        &[("from", ALICE), ("to", BOB)],
    )
    .await;
}

#[tokio::test]
async fn max_forwards_zero_gets_483() {
    for mode in [UDP, TCP] {
        let (_relay, sip, alice, _bob) = two_phones(mode, mode).await;
        Run {
            relay: sip,
            scenario: "message-mf0",
            mode,
            port: alice,
            keys: &[("from", ALICE), ("to", BOB), ("text", "hello")],
            auth: None,
        }
        .pass()
        .await
        .unwrap();
    }
}
