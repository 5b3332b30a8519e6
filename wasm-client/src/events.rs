//! A small event emitter: page callbacks by event name. Handlers are cloned out before they
//! run, so a handler may call back into the client (or add and remove handlers) safely.

use std::cell::RefCell;

use js_sys::Function;
use wasm_bindgen::JsValue;

use crate::js;

/// Callbacks by event name.
#[derive(Debug, Default)]
pub(crate) struct Emitter {
    /// (event name, callback) in registration order.
    handlers: RefCell<Vec<(String, Function)>>,
}

impl Emitter {
    pub(crate) fn on(&self, name: &str, callback: Function) {
        self.handlers.borrow_mut().push((name.to_owned(), callback));
    }

    pub(crate) fn off(&self, name: &str, callback: &Function) {
        self.handlers
            .borrow_mut()
            .retain(|(n, f)| !(n == name && JsValue::from(f) == JsValue::from(callback)));
    }

    pub(crate) fn emit(&self, name: &str, value: &JsValue) {
        let matching: Vec<Function> = self
            .handlers
            .borrow()
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, f)| f.clone())
            .collect();
        for callback in matching {
            js::call(&callback, value);
        }
    }
}
