//! The WebRTC glue: getUserMedia, the `RTCPeerConnection` with its offers and answers, DTMF and
//! muting, as a few JS shims (one import each; the typed web-sys bindings of the same APIs cost
//! more, see README, "Size"). As in `js.rs`, nothing is decided here: when to offer, what a
//! session description means for the call, which error code a failure is, all stay in Rust
//! (`media.rs`, `place.rs`, `sdp.rs`).

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::error::ClientError;
use crate::js;

#[wasm_bindgen(inline_js = r#"
export async function open(audio, video, ice, offer, ms) {
  const devices = globalThis.navigator && navigator.mediaDevices;
  let local;
  try {
    local = await devices.getUserMedia({ audio, video });
  } catch (e) {
    throw { media: devices ? e.name : "NotSupportedError", message: devices ? e.message : "getUserMedia needs https or localhost" };
  }
  const [, servers] = await ice.catch(() => []);
  const pc = new RTCPeerConnection({ iceServers: Array.isArray(servers) ? servers : [] });
  const remote = new MediaStream();
  for (const t of local.getTracks()) pc.addTrack(t, local);
  pc.ontrack = (e) => remote.addTrack(e.track);
  try {
    return [pc, local, remote, await pc_local(pc, offer, false, ms)];
  } catch (e) {
    pc_close(pc, local);
    throw e;
  }
}
export function media_call(peer, call, pc, local, remote, listeners, act) {
  const ask = (op, arg) => new Promise((resolve, reject) => act([op, arg, resolve, reject]));
  pc.onconnectionstatechange = () => act(["connection", pc.connectionState]);
  return {
    state: "calling", peer, call, peerConnection: pc, localStream: local, remoteStream: remote,
    onState: (f) => { listeners.push(["state", f]); },
    onDtmf: (f) => { listeners.push(["dtmf", f]); },
    mute: (on) => { for (const t of local.getAudioTracks()) t.enabled = !on; },
    hold: () => ask("hold"),
    resume: () => ask("resume"),
    sendDtmf: (digits) => ask("dtmf", digits),
    hangUp: () => ask("hangUp"),
  };
}
export async function pc_local(pc, offer, hold, ms) {
  if (offer !== true) await pc.setRemoteDescription({ type: "offer", sdp: offer });
  else for (const t of pc.getTransceivers()) {
    const sends = t.direction.startsWith("send");
    t.direction = hold ? (sends ? "sendonly" : "inactive") : (sends ? "sendrecv" : "recvonly");
  }
  await pc.setLocalDescription();
  return new Promise((done) => {
    const end = () => done(pc.localDescription.sdp);
    pc.onicegatheringstatechange = () => pc.iceGatheringState == "complete" && end();
    pc.iceGatheringState == "complete" ? end() : setTimeout(end, ms);
  });
}
export function pc_set(pc, local, type, sdp) {
  return local ? pc.setLocalDescription({ type }) : pc.setRemoteDescription({ type, sdp });
}
export function pc_close(pc, stream) {
  for (const t of stream.getTracks()) t.stop();
  pc.close();
}
export function dtmf(pc, tones) {
  return new Promise((done) => {
    const sender = pc.getSenders().find((s) => s.track && s.track.kind == "audio");
    const dtmf = sender && sender.dtmf;
    if (!dtmf) throw { message: "no audio to carry DTMF" };
    const f = (e) => e.tone || (dtmf.removeEventListener("tonechange", f), done());
    dtmf.addEventListener("tonechange", f);
    dtmf.insertDTMF(tones);
  });
}
export function delivered(receipt) {
  return ((receipt && receipt.deliveries) || []).some((d) => d.status == "delivered");
}
"#)]
extern "C" {
    /// The microphone (and camera) with `getUserMedia`, a peer connection sending them with the
    /// ICE servers of `ice` (the relay's answer to `GET /ice-servers`: none unless an array),
    /// and its first local description (see `pc_local`): `[pc, local MediaStream, remote
    /// MediaStream, SDP]`. A refused getUserMedia rejects with `{media: error name, message}`.
    fn open(audio: bool, video: bool, ice: &Promise, offer: &JsValue, ms: u32) -> Promise;
    /// The page's `MediaCall` object: its `state` and `endReason` are kept by the client, its
    /// callbacks go in `listeners` (an `Emitter`'s list), its methods but `mute` (which only
    /// disables the microphone's tracks) call `act([op, argument, resolve, reject])`, and the
    /// connection state changes of `pc` call `act(["connection", state])`.
    pub(crate) fn media_call(
        peer: &str,
        call: &str,
        pc: &JsValue,
        local: &JsValue,
        remote: &JsValue,
        listeners: &js_sys::Array,
        act: &JsValue,
    ) -> JsValue;
    /// Makes a local description and resolves to its SDP once ICE gathering is complete (or
    /// after `ms`): an offer when `offer` is true (every transceiver on hold or not), an answer
    /// to the offer when `offer` is the offer's SDP.
    pub(crate) fn pc_local(pc: &JsValue, offer: &JsValue, hold: bool, ms: u32) -> Promise;
    /// Sets a remote description (`type`, `sdp`), or rolls back a local one (`local`).
    pub(crate) fn pc_set(pc: &JsValue, local: bool, kind: &str, sdp: &JsValue) -> Promise;
    /// Stops the local tracks and closes the connection.
    pub(crate) fn pc_close(pc: &JsValue, stream: &JsValue);
    /// Plays DTMF tones on the audio sender: resolves once they were sent.
    pub(crate) fn dtmf(pc: &JsValue, tones: &str) -> Promise;
    /// Whether a SEND receipt has a delivery a live stream had.
    pub(crate) fn delivered(receipt: &JsValue) -> bool;
}

/// How long to wait for ICE candidates before offering or answering with those gathered: host
/// candidates come within milliseconds; a STUN server that does not answer must not hold a call.
pub(crate) const GATHERING_MS: u32 = 3000;

/// The local microphone (and camera), a peer connection sending them, and its offer (`offer`
/// true) or its answer to `offer`: `[pc, local stream, remote stream, SDP]`.
pub(crate) fn open_media(audio: bool, video: bool, ice: &Promise, offer: &JsValue) -> JsFuture {
    JsFuture::from(open(audio, video, ice, offer, GATHERING_MS))
}

/// Why `open_media` failed, in the client's codes: `media-denied` when the user or the
/// browser's policy refused the microphone, `media-unavailable` when there is no such device
/// (or no getUserMedia at all, off a secure context), else the peer connection's refusal.
pub(crate) fn open_error(error: JsValue) -> JsValue {
    let Some(name) = js::get_str(&error, "media") else {
        return media_error(&error);
    };
    let code = match name.as_str() {
        "NotAllowedError" | "SecurityError" => "media-denied",
        _ => "media-unavailable",
    };
    let message = js::get_str(&error, "message").unwrap_or_default();
    ClientError::coded(code, 0, &js::cat(&["getUserMedia: ", &name, " ", &message]))
}

/// A failure of the peer connection (a session description it refuses).
pub(crate) fn media_error(cause: &JsValue) -> JsValue {
    let message = js::get_str(cause, "message").unwrap_or_default();
    ClientError::coded("unprocessable", 0, &js::cat(&["WebRTC: ", &message]))
}
