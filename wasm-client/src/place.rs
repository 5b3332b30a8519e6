//! How a media call starts, on either side. Dialling (`client.dial`): the microphone, a call
//! context joined with the local offer as this participant's session, and the invitation SENT
//! with the offer, as `client.invite` sends one. Answering (`invite.answer`): the microphone,
//! the answer to the invitation's offer, the call context joined with it, and `accept` SENT back
//! with it, as `invite.accept` does. What happens next is `media.rs`.

use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::prelude::*;

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::http::{self, Http};
use crate::invite::{self, IncomingInvite, InviteState};
use crate::js;
use crate::media::{CallState, Calls, Leg};
use crate::rtc;
use crate::task::promise;

#[wasm_bindgen]
impl Client {
    /// Calls `to` with sound (and pictures): an email (every live login of that user rings;
    /// the first to answer wins, the others are told `cancel`), a login
    /// (`/login/{email}/{id}`) or a `sip:` URI. Resolves once the call is placed (`calling`,
    /// or `ringing` when a live page or a phone has it); its state then follows the answer.
    /// Rejects with `media-denied` / `media-unavailable` when there is no microphone for it.
    #[wasm_bindgen(skip_typescript)]
    pub fn dial(&self, to: String, options: JsValue) -> Promise {
        let inner = &self.inner;
        let to = http::address(&to);
        let leg = Leg {
            id: invite::new_id(),
            peer: http::peer_of(to).to_owned(),
            to: to.to_owned(),
            call: String::new(),
            outgoing: true,
        };
        let http = inner.http.clone();
        promise(Box::pin(start(
            http,
            inner.calls.clone(),
            options,
            leg,
            None,
        )))
    }
}

#[wasm_bindgen]
impl IncomingInvite {
    /// Whether the invitation is a call with media (it carries an offer): `answer` it.
    #[wasm_bindgen(getter)]
    pub fn media(&self) -> bool {
        self.inner.offer.is_string()
    }

    /// Answers a call with media: the microphone (and camera) per `options`, the answer to the
    /// caller's offer, `accept` back. Resolves to the `MediaCall`, `active`.
    #[wasm_bindgen(skip_typescript)]
    pub fn answer(&self, options: JsValue) -> Promise {
        let invite = &self.inner;
        let leg = Leg {
            id: invite.id,
            peer: invite.peer.clone(),
            to: invite.peer.clone(),
            call: invite.call.clone(),
            outgoing: false,
        };
        let calls = invite.calls.clone().unwrap_or_default();
        let http = invite.http.clone();
        promise(Box::pin(start(
            http,
            calls,
            options,
            leg,
            Some(invite.clone()),
        )))
    }
}

/// Dials (`invite` None) or answers `invite`: the microphone and the peer connection with its
/// offer or answer, the call context (made when dialling) joined with it as this participant's
/// session, and the invitation or the `accept` SENT with it.
async fn start(
    http: Rc<Http>,
    calls: Calls,
    options: JsValue,
    mut leg: Leg,
    invite: Option<Rc<InviteState>>,
) -> Result<JsValue> {
    let offer = match &invite {
        Some(invite) if !invite.offer.is_string() => {
            return Err(ClientError::invalid(
                "this invitation carries no session offer: accept it instead",
            ))
        }
        Some(invite) => invite.offer.clone(),
        None if http.login_url().is_none() => return Err(ClientError::not_logged_in()),
        None => JsValue::TRUE,
    };
    // The relay's ICE servers: none when it has none to give (host candidates suffice on a
    // LAN).
    let ice = http.fetch("GET", "/ice-servers", &JsValue::UNDEFINED);
    let audio = js::get(&options, "audio").as_bool() != Some(false);
    let video = js::get(&options, "video").as_bool() == Some(true);
    let opened = rtc::open_media(audio, video, &ice, &offer)
        .await
        .map_err(rtc::open_error)?;
    let sdp = js::get(&opened, "3");
    if invite.is_none() {
        let created = http.request("POST", "/call", Some(&js::object(&[]))).await;
        match created.map(|c| js::get_str(&c, "url")) {
            Ok(Some(url)) => leg.call = url,
            failed => {
                rtc::pc_close(&js::get(&opened, "0"), &js::get(&opened, "1"));
                return Err(failed.err().unwrap_or_default());
            }
        }
    }
    let call = CallState::new(leg, http, &opened);
    // Join the call context with the session description, then SEND the invitation, or the
    // `accept` of `invite`.
    let joined = call
        .http
        .join(&call.leg.call, &js::object(&[("sdp", sdp.clone())]))
        .await;
    let body = call.command(if invite.is_some() { "accept" } else { "invite" });
    js::set(&body, "sdp", &sdp);
    let ready = match (joined, &invite) {
        (Err(e), _) => Err(e),
        (Ok(joined), invite) => {
            call.participant.set(js::get(&joined, "url"));
            match invite {
                Some(invite) if invite.state.get() != "ringing" => Err(ClientError::coded(
                    "conflict",
                    0,
                    "the caller cancelled this invitation",
                )),
                Some(invite) => {
                    // Answered from here on: a `cancel` for the other pages that rang no
                    // longer applies.
                    invite.set("accepted");
                    call.set("active");
                    // The login answering, so that the caller talks to this page only.
                    js::set(&body, "login", &call.http.login_url().into());
                    Ok(())
                }
                None => Ok(()),
            }
        }
    };
    let sent = match ready {
        Ok(()) => {
            // Known before the message leaves: the answer (or the caller's next message) may
            // come before the receipt.
            calls.borrow_mut().push(call.clone());
            call.http.send_to(&call.target(), &body).await
        }
        Err(e) => Err(e),
    };
    match sent {
        Ok(receipt) => {
            if rtc::delivered(&receipt) && call.state() == "calling" {
                call.set("ringing");
            }
            Ok(call.object.clone())
        }
        Err(e) => {
            call.end("failed");
            Err(e)
        }
    }
}

// `dial` and `answer` take their options optionally; their typings, merged into the classes.
#[wasm_bindgen(typescript_custom_section)]
const TS_PLACE: &'static str = r#"
export interface Client {
  /** Calls `to` with sound (and pictures): an email (every live login of that user rings; the
   *  first to answer wins, the others are told `cancel`), a login (`/login/{email}/{id}`) or a
   *  `sip:` URI. Resolves once the call is placed (`calling`, or `ringing` when a live page or
   *  a phone has it); its state then follows the answer. Rejects with `media-denied` /
   *  `media-unavailable` when there is no microphone for it. */
  dial(to: string, options?: MediaOptions): Promise<MediaCall>;
}

export interface IncomingInvite {
  /** Answers a call with media (`media` true): the microphone (and camera) per `options`, the
   *  answer to the caller's offer, `accept` back. Resolves to the `MediaCall`, `active`. */
  answer(options?: MediaOptions): Promise<MediaCall>;
}
"#;
