//! What the page asks of a call (`hold()`, `resume()`, `sendDtmf()`, `hangUp()`), and
//! every step of a call that waits: for the browser (a session description made or applied,
//! DTMF played) or for the relay (the receipt of a SEND). Each wait is one small future, `Step`,
//! which then goes on synchronously in a plain function: one future type for all of them keeps
//! the module small, as `invite::Step` does for invitations.
//!
//! Hold and resume (RFC 3264 §8.4, as a re-INVITE): this side re-offers with its streams
//! `sendonly` (or `sendrecv` again) in `{"command": "update", "sdp"}`; the other side applies
//! it, answers with `{"command": "updated", "sdp"}` and follows the direction; the page's promise
//! resolves once the answer is applied here.

use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::CallState;
use crate::error::{ClientError, Result};
use crate::http;
use crate::js;
use crate::rtc;
use crate::sdp;
use crate::task::spawn;

/// How long a hold or resume waits for the other side's `updated`.
const UPDATE_MS: u32 = 10_000;

/// What comes after a step: the call, the outcome of the wait, and the step's `args` (the
/// page's request `[op, argument, resolve, reject]`, or a session description).
pub(super) type Next = fn(&Rc<CallState>, Result<JsValue>, &JsValue);

/// A call waiting for a promise, then going on with `next`.
struct Step {
    wait: JsFuture,
    /// Whether `wait` is a request to the relay, whose `[status, body]` becomes the body or
    /// the error as for every request of the client.
    http: bool,
    call: Rc<CallState>,
    next: Next,
    args: JsValue,
}

impl Future for Step {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Poll::Ready(outcome) = Pin::new(&mut this.wait).poll(cx) else {
            return Poll::Pending;
        };
        let outcome = if this.http {
            http::outcome(outcome)
        } else {
            outcome
        };
        (this.next)(&this.call, outcome, &this.args);
        Poll::Ready(())
    }
}

/// Runs `next` once `promise` settles.
pub(super) fn then(call: &Rc<CallState>, promise: Promise, http: bool, next: Next, args: &JsValue) {
    spawn(Box::pin(Step {
        wait: JsFuture::from(promise),
        http,
        call: call.clone(),
        next,
        args: args.clone(),
    }));
}

/// Settles the page's promise of a request `[op, argument, resolve, reject]`.
fn settle(request: &JsValue, outcome: Result<JsValue>) {
    let (settle, value) = match outcome {
        Ok(value) => ("2", value),
        Err(error) => ("3", error),
    };
    js::call(js::get(request, settle).unchecked_ref(), &value);
}

fn done() -> Result<JsValue> {
    Ok(JsValue::UNDEFINED)
}

/// What the page's `MediaCall` object asks (`[op, argument, resolve, reject]`), or its peer
/// connection tells (`["connection", state]`).
pub(super) fn act(call: &Weak<CallState>, request: &JsValue) {
    let op = js::get_str(request, "0").unwrap_or_default();
    let arg = js::get(request, "1");
    let Some(call) = call.upgrade().filter(|c| c.state() != "ended") else {
        // Hanging up an ended call is done; nothing else can be.
        match op.as_str() {
            "hangUp" => settle(request, done()),
            "connection" => {}
            _ => settle(request, Err(not_up())),
        }
        return;
    };
    match op.as_str() {
        "connection" => {
            if arg.as_string().as_deref() == Some("failed") && call.is_up() {
                call.hang_up("media-failed");
            }
        }
        "dtmf" => {
            let playing = rtc::dtmf(&call.pc, &arg.as_string().unwrap_or_default());
            call.then(playing, false, played, request);
        }
        "hangUp" => {
            // `bye` to the other side (`cancel` while it rings); resolves with the receipt.
            let told = call.tell(&call.command(if call.is_up() { "bye" } else { "cancel" }));
            call.end("hangup");
            call.then(told, true, hung_up, request);
        }
        // hold, resume
        _ => {
            if !call.is_up() || !js::peek(&call.updated).is_undefined() {
                return settle(request, Err(not_up()));
            }
            call.updated.set(request.clone());
            let offering = rtc::pc_local(&call.pc, &JsValue::TRUE, op == "hold", rtc::GATHERING_MS);
            call.then(offering, false, offered, request);
        }
    }
}

fn not_up() -> JsValue {
    ClientError::coded(
        "conflict",
        0,
        "the call is not up, or a hold or resume is on its way",
    )
}

fn played(_: &Rc<CallState>, outcome: Result<JsValue>, request: &JsValue) {
    settle(
        request,
        outcome.map_err(|e| ClientError::invalid(&js::cat(&["DTMF: ", &message(&e)]))),
    );
}

fn hung_up(_: &Rc<CallState>, outcome: Result<JsValue>, request: &JsValue) {
    settle(request, outcome.and_then(|_| done()));
}

/// The re-offer is made: SEND it as `update`.
fn offered(call: &Rc<CallState>, outcome: Result<JsValue>, request: &JsValue) {
    match outcome {
        Ok(offer) => {
            let update = call.command("update");
            js::set(&update, "sdp", &offer);
            call.then(call.tell(&update), true, update_sent, request);
        }
        Err(e) => fail_update(call, request, rtc::media_error(&e)),
    }
}

/// The relay took the `update`: wait for `updated`, but not for ever.
fn update_sent(call: &Rc<CallState>, outcome: Result<JsValue>, request: &JsValue) {
    match outcome {
        Ok(_) => call.then(js::delay(UPDATE_MS), false, update_timed_out, request),
        Err(e) => fail_update(call, request, e),
    }
}

fn update_timed_out(call: &Rc<CallState>, _: Result<JsValue>, request: &JsValue) {
    if js::peek(&call.updated) == *request {
        fail_update(call, request, refused());
    }
}

fn refused() -> JsValue {
    ClientError::coded(
        "unavailable",
        0,
        "the other side did not take the hold or resume",
    )
}

/// The hold or resume did not happen: the re-offer is withdrawn.
fn fail_update(call: &Rc<CallState>, request: &JsValue, error: JsValue) {
    call.updated.take();
    let rollback = rtc::pc_set(&call.pc, true, "rollback", &JsValue::UNDEFINED);
    call.then(rollback, false, nothing, request);
    settle(request, Err(error));
}

/// A hold or resume on its way ends with the call.
pub(super) fn abandon_update(call: &CallState) {
    let request = call.updated.take();
    if !request.is_undefined() {
        settle(&request, Err(not_up()));
    }
}

/// The other side's `updated`: apply its answer.
pub(super) fn updated(call: &Rc<CallState>, answer: &JsValue) {
    let request = call.updated.take();
    if !request.is_undefined() {
        let applying = rtc::pc_set(&call.pc, false, "answer", answer);
        call.then(applying, false, update_applied, &request);
    }
}

fn update_applied(call: &Rc<CallState>, outcome: Result<JsValue>, request: &JsValue) {
    if outcome.is_err() {
        return fail_update(call, request, refused());
    }
    call.local_hold
        .set(js::get_str(request, "0").as_deref() == Some("hold"));
    call.settle();
    settle(request, done());
}

/// This side answered the other side's re-offer (`offer`): SEND the answer as `updated`, and
/// follow the direction (held while the other side sends only, or nothing).
pub(super) fn reanswered(call: &Rc<CallState>, outcome: Result<JsValue>, offer: &JsValue) {
    let reply = call.command("updated");
    match outcome {
        Ok(answer) => {
            js::set(&reply, "sdp", &answer);
            call.remote_hold
                .set(sdp::holds(&offer.as_string().unwrap_or_default()));
            call.settle();
        }
        Err(e) => js::set(&reply, "reason", &message(&e).into()),
    }
    drop(call.tell(&reply));
}

/// The callee's answer is applied: the call is up (or failed, and over).
pub(super) fn accepted(call: &Rc<CallState>, outcome: Result<JsValue>, _: &JsValue) {
    match outcome {
        Ok(_) => call.set("active"),
        Err(_) => call.hang_up("failed"),
    }
}

pub(super) fn nothing(_: &Rc<CallState>, _: Result<JsValue>, _: &JsValue) {}

/// The message of an error.
fn message(error: &JsValue) -> String {
    js::get_str(error, "message").unwrap_or_default()
}
