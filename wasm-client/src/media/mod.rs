//! `MediaCall`: a call with sound (and pictures) between this page and another page or a phone.
//! The session descriptions travel in the article's invitation messages, SENT through the relay
//! (`invite` with the offer, `ringing`, `accept` with the answer, `reject`, `cancel`, `bye`;
//! `update` / `updated` re-offer for hold and resume); the media flows between the two peer
//! connections. The page never touches SDP. How a call starts (dialling, answering) is in
//! `place.rs`; what the page asks of a call, and every step that waits for the browser or the
//! relay, in `steps.rs`.

mod steps;

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use wasm_bindgen::prelude::*;

use crate::events::Emitter;
use crate::http::Http;
use crate::js;
use crate::rtc;
use steps::Next;

/// The media calls of a client, found by the messages about them.
pub(crate) type Calls = Rc<RefCell<Vec<Rc<CallState>>>>;

/// Who a call is with and where its messages go.
pub(crate) struct Leg {
    /// The id of the invitation, in every message about the call.
    pub(crate) id: f64,
    /// The other party: an email, or a phone's address.
    pub(crate) peer: String,
    /// Where the messages about the call are SENT (an email, an address or a login).
    pub(crate) to: String,
    /// The call context.
    pub(crate) call: String,
    /// Whether this side dialled (and made the call context).
    pub(crate) outgoing: bool,
}

/// The state of one media call.
pub(crate) struct CallState {
    pub(crate) leg: Leg,
    /// Where the messages go now: `leg.to`, narrowed to the login that answered.
    target: Cell<String>,
    /// This side's participant of the call context, once joined.
    pub(crate) participant: Cell<JsValue>,
    /// `calling`, `ringing`, `active`, `held`, `ended`.
    state: Cell<&'static str>,
    /// The `onState` callbacks.
    listeners: Emitter,
    /// The page's `MediaCall` object (see `rtc::media_call`).
    pub(crate) object: JsValue,
    pub(crate) pc: JsValue,
    local: JsValue,
    pub(crate) http: Rc<Http>,
    local_hold: Cell<bool>,
    remote_hold: Cell<bool>,
    /// The page's request (`[op, argument, resolve, reject]`) of a hold or resume on its way,
    /// until the other side's `updated` comes.
    updated: Cell<JsValue>,
}

impl CallState {
    /// A call over the peer connection `opened` by `rtc::open_media`.
    pub(crate) fn new(leg: Leg, http: Rc<Http>, opened: &JsValue) -> Rc<Self> {
        let pc = js::get(opened, "0");
        let local = js::get(opened, "1");
        Rc::new_cyclic(|weak: &Weak<Self>| {
            let weak = weak.clone();
            // What the page's object and the peer connection ask of the call. The object owns
            // it (the garbage collector frees it with the object); it holds the call weakly,
            // as the call holds the object.
            let act = js::handler(Box::new(move |args: JsValue| steps::act(&weak, &args)));
            let listeners = Emitter::new();
            let object = rtc::media_call(
                &leg.peer,
                &leg.call,
                &pc,
                &local,
                &js::get(opened, "2"),
                listeners.list(),
                &act.into_js_value(),
            );
            Self {
                target: Cell::new(leg.to.clone()),
                leg,
                participant: Cell::new(JsValue::UNDEFINED),
                state: Cell::new("calling"),
                listeners,
                object,
                pc,
                local,
                http,
                local_hold: Cell::new(false),
                remote_hold: Cell::new(false),
                updated: Cell::new(JsValue::UNDEFINED),
            }
        })
    }

    pub(crate) fn state(&self) -> &'static str {
        self.state.get()
    }

    pub(crate) fn is_up(&self) -> bool {
        matches!(self.state.get(), "active" | "held")
    }

    /// Moves to `state` (never out of `ended`) and tells the listeners.
    pub(crate) fn set(&self, state: &'static str) {
        if self.state.get() == "ended" || self.state.get() == state {
            return;
        }
        self.state.set(state);
        js::set(&self.object, "state", &state.into());
        self.listeners.emit("state", &state.into());
    }

    /// `held` while either side holds the call, else `active`.
    fn settle(&self) {
        if self.is_up() {
            let held = self.local_hold.get() || self.remote_hold.get();
            self.set(if held { "held" } else { "active" });
        }
    }

    /// Ends the call here: the tracks stop, the connection closes, this side leaves the call
    /// context (the dialler removes it). Telling the other side is the caller's part.
    pub(crate) fn end(&self, reason: &'static str) {
        if self.state.get() == "ended" {
            return;
        }
        js::set(&self.object, "endReason", &reason.into());
        rtc::pc_close(&self.pc, &self.local);
        steps::abandon_update(self);
        let mine = if self.leg.outgoing {
            self.leg.call.as_str().into()
        } else {
            js::peek(&self.participant)
        };
        if let Some(url) = mine.as_string() {
            drop(self.http.request("DELETE", &url, None));
        }
        self.set("ended");
    }

    /// The SEND body of a message about this call.
    pub(crate) fn command(&self, command: &str) -> JsValue {
        js::object(&[
            ("command", command.into()),
            ("id", JsValue::from_f64(self.leg.id)),
            ("url", self.leg.call.as_str().into()),
        ])
    }

    /// Where the messages about the call go now.
    pub(crate) fn target(&self) -> String {
        let target = self.target.take();
        self.target.set(target.clone());
        target
    }

    /// SENDs a message about the call to the other side: the relay's answer, on its way.
    fn tell(&self, body: &JsValue) -> js_sys::Promise {
        self.http
            .fetch("SEND", &crate::http::target(&self.target()), body)
    }

    /// Tells the other side `bye` and ends the call.
    fn hang_up(&self, reason: &'static str) {
        drop(self.tell(&self.command("bye")));
        self.end(reason);
    }

    /// Waits for `promise`, then goes on with `next` (see `steps::Step`).
    fn then(self: &Rc<Self>, promise: js_sys::Promise, http: bool, next: Next, args: &JsValue) {
        steps::then(self, promise, http, next, args);
    }

    /// A message about this call from the other side.
    pub(crate) fn receive(self: &Rc<Self>, command: &str, body: &JsValue) {
        let ringing = matches!(self.state.get(), "calling" | "ringing");
        let sdp = js::get(body, "sdp");
        match command {
            "ringing" if ringing => {
                self.set("ringing");
                // Early media (a phone's 183 with a session).
                if sdp.is_string() {
                    let applying = rtc::pc_set(&self.pc, false, "pranswer", &sdp);
                    self.then(applying, false, steps::nothing, &sdp);
                }
            }
            "accept" if self.leg.outgoing => {
                let login = js::get_str(body, "login").filter(|l| l.starts_with("/login/"));
                let to = self.leg.to.as_str();
                if !ringing {
                    // A second answer, or one after this side gave up.
                    let bye = self.command("bye");
                    if self.is_up() {
                        js::set(&bye, "reason", &"answered elsewhere".into());
                    }
                    self.target.set(login.unwrap_or_else(|| to.to_owned()));
                    drop(self.tell(&bye));
                    return;
                }
                // Every login (and phone) of the user rang: the others stop ringing. (The one
                // that answered is past ringing and ignores it.)
                if !to.starts_with('/') {
                    let cancel = self.command("cancel");
                    js::set(&cancel, "reason", &"answered elsewhere".into());
                    drop(self.tell(&cancel));
                }
                if let Some(login) = login {
                    self.target.set(login);
                }
                let applying = rtc::pc_set(&self.pc, false, "answer", &sdp);
                self.then(applying, false, steps::accepted, &sdp);
            }
            "update" if self.is_up() => {
                let answering = rtc::pc_local(&self.pc, &sdp, false, rtc::GATHERING_MS);
                self.then(answering, false, steps::reanswered, &sdp);
            }
            "updated" => steps::updated(self, &sdp),
            // A phone's key press (SIP INFO, or RFC 4733 seen by rtpengine), told by the relay.
            "dtmf" if self.is_up() => self.listeners.emit("dtmf", &js::get(body, "digits")),
            "reject" if ringing => self.end("rejected"),
            "cancel" if ringing => self.end("cancelled"),
            "bye" => self.end("remote-hangup"),
            _ => {}
        }
    }
}

#[wasm_bindgen(typescript_custom_section)]
const TS_MEDIA: &'static str = r#"
/** The states of a MediaCall. */
export type MediaCallState = "calling" | "ringing" | "active" | "held" | "ended";

/** A call with sound (and pictures), from `client.dial` or `invite.answer`. */
export interface MediaCall {
  /** `calling` → `ringing` → `active` ⇄ `held` → `ended`. */
  readonly state: MediaCallState;
  /** The other party: an email, or a phone's address. */
  readonly peer: string;
  /** The call context (`/call/{id}`): `client.watch` it to see the call's members live. */
  readonly call: string;
  /** The RTCPeerConnection (for `getStats()` and the tracks). */
  readonly peerConnection: RTCPeerConnection;
  /** The microphone (and camera) this side sends. */
  readonly localStream: MediaStream;
  /** What the other side sends: play it in an `<audio>` or `<video>` element. */
  readonly remoteStream: MediaStream;
  /** Why the call ended: "hangup" (this side), "remote-hangup", "rejected", "cancelled",
   *  "failed", "media-failed"; undefined before. */
  readonly endReason?: "hangup" | "remote-hangup" | "rejected" | "cancelled" | "failed" | "media-failed";
  /** Calls `callback(state)` on every change of state. */
  onState(callback: (state: MediaCallState) => void): void;
  /** Calls `callback(digits)` for each key the other side presses, e.g. "5": a phone's SIP
   *  INFO (`application/dtmf-relay`, `application/dtmf`), or its RFC 4733 tones when the relay
   *  takes rtpengine's DTMF events (`--rtpengine-dtmf`). */
  onDtmf(callback: (digits: string) => void): void;
  /** Mutes the microphone (`true`) or unmutes it: the call stays up, silence is sent. */
  mute(on: boolean): void;
  /** Puts the call on hold (this side sends only); resolves once the other side agreed. */
  hold(): Promise<void>;
  /** Takes the call off hold; resolves once the other side agreed. */
  resume(): Promise<void>;
  /** Sends DTMF tones (0-9, *, #, A-D; "," pauses) in the audio (RFC 4733); resolves once
   *  they were played. */
  sendDtmf(digits: string): Promise<void>;
  /** Hangs up: `bye` to the other side (`cancel` while it rings); the tracks stop. */
  hangUp(): Promise<void>;
}

/** What a call sends: the microphone (default) and the camera (default: no). */
export interface MediaOptions {
  audio?: boolean;
  video?: boolean;
}
"#;
