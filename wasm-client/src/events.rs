//! A small event emitter: page callbacks by event name, kept in a JS array of `[name, fn]`
//! (so the bookkeeping is a few lines of the JS shims, not generic Rust collections). Handlers
//! are copied out before they run, so a handler may call back into the client (or add and
//! remove handlers) safely; what a handler throws is reported, never propagated.

use js_sys::{Array, Function};
use wasm_bindgen::{JsCast, JsValue};

use crate::js;

/// Callbacks by event name.
#[derive(Clone)]
pub(crate) struct Emitter(Array);

impl Emitter {
    pub(crate) fn new() -> Self {
        Self(Array::new())
    }

    pub(crate) fn on(&self, name: &str, callback: &Function) {
        js::listen(&self.0, name, callback);
    }

    pub(crate) fn off(&self, name: &str, callback: &Function) {
        js::unlisten(&self.0, name, callback);
    }

    /// Removes every handler of `name`; whether none is left at all.
    pub(crate) fn off_all(&self, name: &str) -> bool {
        js::unlisten(&self.0, name, JsValue::UNDEFINED.unchecked_ref()) == 0
    }

    /// The list itself (for handlers a JS object adds).
    pub(crate) fn list(&self) -> &Array {
        &self.0
    }

    /// Calls the handlers of `name` (every handler when `name` is empty).
    pub(crate) fn emit(&self, name: &str, value: &JsValue) {
        js::emit(&self.0, name, value);
    }
}
