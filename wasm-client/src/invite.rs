//! The article's invitation flow on top of SEND: `{"command": "invite", "url": CALL, "id": N}`
//! to the callee, answered by `accept` or `reject`, withdrawn by `cancel`. The page sees each
//! side as an object whose `state` changes, with `onState` callbacks.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;

use crate::error::{ClientError, Result};
use crate::events::Emitter;
use crate::http::{Http, Pending};
use crate::js;
use crate::media::Calls;
use crate::task::promise;

/// Shared state of one invitation (either side).
pub(crate) struct InviteState {
    /// The application invite id.
    pub(crate) id: f64,
    /// The other party's email.
    pub(crate) peer: String,
    /// The call URL.
    pub(crate) call: String,
    /// `sending`, `ringing`, `accepted`, `rejected`, `cancelled`, `failed`.
    pub(crate) state: Cell<&'static str>,
    /// The reason given with a reject.
    pub(crate) reason: Cell<JsValue>,
    /// `onState` callbacks.
    pub(crate) listeners: Emitter,
    /// The client's REST access, which SENDs the commands about this invitation and joins its
    /// call (with the client's login as it is then).
    pub(crate) http: Rc<Http>,
    /// The caller's session offer (SDP text) of a call with media; undefined otherwise.
    pub(crate) offer: JsValue,
    /// The client's media calls, which an answered invitation joins (received ones only).
    pub(crate) calls: Option<Calls>,
}

/// A new invitation id, unique enough among one caller's invitations: a random integer of 12
/// digits.
pub(crate) fn new_id() -> f64 {
    (js_sys::Math::random() * 1e12).floor()
}

impl InviteState {
    pub(crate) fn new(
        id: f64,
        peer: &str,
        call: &str,
        state: &'static str,
        http: Rc<Http>,
    ) -> Rc<Self> {
        Rc::new(Self {
            id,
            peer: peer.to_owned(),
            call: call.to_owned(),
            state: Cell::new(state),
            reason: Cell::new(JsValue::UNDEFINED),
            listeners: Emitter::new(),
            http,
            offer: JsValue::UNDEFINED,
            calls: None,
        })
    }

    /// An invitation received: `offer` is its session offer (or undefined), `calls` where the
    /// call goes once answered with media.
    pub(crate) fn incoming(
        id: f64,
        peer: &str,
        call: &str,
        http: Rc<Http>,
        offer: JsValue,
        calls: &Calls,
    ) -> Rc<Self> {
        let mut state = Self::new(id, peer, call, "ringing", http);
        if let Some(state) = Rc::get_mut(&mut state) {
            state.offer = offer;
            state.calls = Some(calls.clone());
        }
        state
    }

    /// Moves to `state` (unless already final) and tells the listeners.
    pub(crate) fn set(&self, state: &'static str) {
        if matches!(
            self.state.get(),
            "accepted" | "rejected" | "cancelled" | "failed"
        ) {
            return;
        }
        self.state.set(state);
        self.listeners.emit("state", &JsValue::from_str(state));
    }

    /// The SEND body of a command about this invitation.
    pub(crate) fn command(&self, command: &str) -> JsValue {
        js::object(&[
            ("command", command.into()),
            ("url", self.call.as_str().into()),
            ("id", JsValue::from_f64(self.id)),
        ])
    }
}

/// A SEND about an invitation on its way, and what its answer does to the invitation: one
/// small future for inviting, cancelling, accepting and rejecting.
pub(crate) struct Step {
    pending: Pending,
    state: Rc<InviteState>,
    /// The state once the answer came.
    ok: &'static str,
    /// The state if the request failed ("": unchanged).
    failed: &'static str,
    /// What the promise resolves to (undefined: the answer itself).
    value: JsValue,
    /// Accepting: once joined, tell the caller `accept` (and resolve to the participant).
    then_accept: bool,
}

impl Step {
    pub(crate) fn new(
        pending: Pending,
        state: &Rc<InviteState>,
        ok: &'static str,
        failed: &'static str,
        value: JsValue,
    ) -> Self {
        Self {
            pending,
            state: state.clone(),
            ok,
            failed,
            value,
            then_accept: false,
        }
    }

    pub(crate) fn promise(self) -> Promise {
        promise(Box::pin(self))
    }
}

impl Future for Step {
    type Output = Result<JsValue>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<JsValue>> {
        let this = self.get_mut();
        loop {
            let answer = match Pin::new(&mut this.pending).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(answer) => answer,
            };
            match answer {
                Err(e) => {
                    if !this.failed.is_empty() {
                        this.state.set(this.failed);
                    }
                    return Poll::Ready(Err(e));
                }
                Ok(answer) => {
                    if std::mem::take(&mut this.then_accept) {
                        this.value = answer;
                        let state = &this.state;
                        this.pending = state.http.send_to(&state.peer, &state.command("accept"));
                        continue;
                    }
                    this.state.set(this.ok);
                    let value = std::mem::take(&mut this.value);
                    return Poll::Ready(Ok(if value.is_undefined() { answer } else { value }));
                }
            }
        }
    }
}

/// An invitation this client sent (`client.invite(...)`).
#[wasm_bindgen]
pub struct Invitation {
    inner: Rc<InviteState>,
}

impl Invitation {
    pub(crate) fn new(inner: Rc<InviteState>) -> Self {
        Self { inner }
    }
}

#[wasm_bindgen]
impl Invitation {
    /// The invite id carried in the SEND bodies.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> f64 {
        self.inner.id
    }

    /// The invited user's email.
    #[wasm_bindgen(getter, unchecked_return_type = "string")]
    pub fn to(&self) -> JsValue {
        self.inner.peer.as_str().into()
    }

    /// The call the invitation is for.
    #[wasm_bindgen(getter, unchecked_return_type = "string")]
    pub fn call(&self) -> JsValue {
        self.inner.call.as_str().into()
    }

    /// `ringing` (delivered or queued), `accepted`, `rejected`, `cancelled` or `failed`.
    #[wasm_bindgen(getter, unchecked_return_type = "string")]
    pub fn state(&self) -> JsValue {
        self.inner.state.get().into()
    }

    /// The reason the callee gave with a reject.
    #[wasm_bindgen(getter)]
    pub fn reason(&self) -> JsValue {
        js::peek(&self.inner.reason)
    }

    /// Calls `callback(state)` on every change of state.
    #[wasm_bindgen(js_name = onState)]
    pub fn on_state(&self, callback: Function) {
        self.inner.listeners.on("state", &callback);
    }

    /// Withdraws the invitation: the callee is told `cancel`.
    pub fn cancel(&self) -> Promise {
        let pending = self
            .inner
            .http
            .send_to(&self.inner.peer, &self.inner.command("cancel"));
        Step::new(pending, &self.inner, "cancelled", "", JsValue::UNDEFINED).promise()
    }
}

/// An invitation this client received (the `invite` event).
#[wasm_bindgen]
pub struct IncomingInvite {
    pub(crate) inner: Rc<InviteState>,
}

impl IncomingInvite {
    pub(crate) fn new(inner: Rc<InviteState>) -> Self {
        Self { inner }
    }
}

#[wasm_bindgen]
impl IncomingInvite {
    /// The invite id.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> f64 {
        self.inner.id
    }

    /// Who invites (email).
    #[wasm_bindgen(getter, unchecked_return_type = "string")]
    pub fn from(&self) -> JsValue {
        self.inner.peer.as_str().into()
    }

    /// The call to join.
    #[wasm_bindgen(getter, unchecked_return_type = "string")]
    pub fn call(&self) -> JsValue {
        self.inner.call.as_str().into()
    }

    /// `ringing`, `accepted`, `rejected` or `cancelled` (the caller withdrew).
    #[wasm_bindgen(getter, unchecked_return_type = "string")]
    pub fn state(&self) -> JsValue {
        self.inner.state.get().into()
    }

    /// Calls `callback(state)` on every change of state.
    #[wasm_bindgen(js_name = onState)]
    pub fn on_state(&self, callback: Function) {
        self.inner.listeners.on("state", &callback);
    }

    /// Joins the call with `session` and tells the caller `accept`. Resolves to the participant.
    #[wasm_bindgen(unchecked_return_type = "Promise<ParticipantCreated>")]
    pub fn accept(&self, session: JsValue) -> Promise {
        let joined = if self.inner.state.get() == "cancelled" {
            Pending::failed(ClientError::coded(
                "conflict",
                0,
                "the caller cancelled this invitation",
            ))
        } else {
            self.inner.http.join(&self.inner.call, &session)
        };
        let mut step = Step::new(joined, &self.inner, "accepted", "", JsValue::UNDEFINED);
        step.then_accept = true;
        step.promise()
    }

    /// Declines, telling the caller `reject` with an optional reason.
    pub fn reject(&self, reason: JsValue) -> Promise {
        let body = self.inner.command("reject");
        if !reason.is_undefined() {
            js::set(&body, "reason", &reason);
        }
        let pending = self.inner.http.send_to(&self.inner.peer, &body);
        Step::new(pending, &self.inner, "rejected", "", JsValue::UNDEFINED).promise()
    }
}
