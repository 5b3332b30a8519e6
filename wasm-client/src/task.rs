//! Running the client's futures: as the promise a page awaits, or in the background.

use js_sys::Promise;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::future_to_promise;

use crate::error::Result;
use crate::js;

/// A boxed operation of the client.
pub(crate) type Op = js::Task<Result<JsValue>>;

/// Runs an operation as a promise. Boxing makes every method share one instance of the
/// promise glue instead of one per method, which keeps the module small.
pub(crate) fn promise(op: Op) -> Promise {
    future_to_promise(op)
}

/// Runs a background task (a refresh loop, a reconnect), through the same boxed glue.
pub(crate) fn spawn(task: js::Task<()>) {
    wasm_bindgen_futures::spawn_local(task);
}
