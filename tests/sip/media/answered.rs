//! A phone's call to the web user through rtpengine, answered and ACKed: the set-up the
//! tests of timers, glare, DTMF and calls share.

use restsip_e2e::rtpengine::Rtpengine;
use restsip_e2e::{Client, EventStream, Relay};
use serde_json::{json, Value};
use tokio::net::UdpSocket;

use super::*;
use crate::phones::{inbox, Phone};

/// A phone's call to Alice through rtpengine, answered (in WebRTC, PCMU) and ACKed.
pub(crate) struct Answered {
    pub(crate) phone: Phone,
    pub(crate) inbox: EventStream,
    pub(crate) dialog: Dialog,
    /// The phone's INVITE.
    pub(crate) invite: String,
    /// The relay's 200 to it.
    pub(crate) ok: String,
    /// The page's `invite` message.
    pub(crate) offer: Value,
    /// The phone's RTP socket and rtpengine's port for it.
    pub(crate) rtp: UdpSocket,
    pub(crate) port: u16,
}

/// The phone calls Alice with `extra` header lines in its INVITE; Alice accepts.
pub(crate) async fn phone_calls(relay: &Relay, engine: &Rtpengine, extra: &str) -> Answered {
    let alice = relay.user(ALICE).await.unwrap();
    let inbox = inbox(&alice, ALICE).await;
    phone_calls_as(relay, engine, extra, &alice, inbox).await
}

/// The same as the signed-in Alice with her stream `inbox`.
pub(crate) async fn phone_calls_as(
    relay: &Relay,
    engine: &Rtpengine,
    extra: &str,
    alice: &Client,
    mut inbox: EventStream,
) -> Answered {
    let phone = Phone::new(relay).await;
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rtp_port = rtp.local_addr().unwrap().port();
    let call_id = format!("phone-{}", phone.port);
    let invite = phone_invite(&phone, ALICE, &call_id, &phone_sdp(rtp_port, "sendrecv"))
        .replace("Content-Type:", &format!("{extra}Content-Type:"));
    phone.send(&invite).await;
    let offer = next_body(&mut inbox).await;
    assert_eq!(offer["command"], "invite", "{offer}");
    let mid = mid_of(offer["sdp"].as_str().unwrap());
    let accept =
        json!({"command": "accept", "sdp": chrome_answer(&mid, "sendrecv"), "id": offer["id"]});
    page_sends(alice, accept).await;
    let ok = response_to(&phone, "INVITE").await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let port = assert_plain(sdp_of(&ok), engine);
    let dialog = Dialog::placed(&invite, &ok);
    phone.send(&in_dialog(&phone, "ACK", 1, &dialog, "")).await;
    Answered {
        phone,
        inbox,
        dialog,
        invite,
        ok,
        offer,
        rtp,
        port,
    }
}
