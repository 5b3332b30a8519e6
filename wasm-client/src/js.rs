//! The browser glue, kept small: one tiny JS module of shims (fetch with JSON, timers, the
//! WebSocket and BroadcastChannel event handlers, Web Locks, localStorage, `Error` objects) so
//! that each browser API costs one import instead of web-sys's several typed bindings and
//! wasm-bindgen closures of each kind. No decision is taken here: what to send, when to retry,
//! which error code, who owns the login — all of that stays in the Rust modules.
//!
//! Also the few string helpers the client needs, written so that no `core::fmt` formatting
//! (`format!`, `to_string`, `concat`) is linked into the module.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;

use js_sys::{Array, Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(inline_js = r#"
export function locks_supported() {
  return typeof BroadcastChannel != "undefined" && !!(globalThis.navigator && navigator.locks);
}
export function lock(name, ifAvailable) {
  return new Promise((granted) => navigator.locks.request(name, { ifAvailable }, (lock) =>
    lock ? new Promise(granted) : granted(null)));
}
export function http(url, method, auth, body) {
  const headers = { accept: "application/json" };
  if (auth) headers.authorization = auth;
  try { body = JSON.stringify(body); } catch (_) { return Promise.resolve([-1]); }
  if (body !== undefined) headers["content-type"] = "application/json";
  return fetch(url, { method, headers, body, credentials: "omit" }).then((r) =>
    r.status == 204 ? [204] : r.json().then((j) => [r.status, j], () => [r.status]));
}
export function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
export function ws_open(base, path, handler) {
  try {
    const url = new URL(base + path, globalThis.location && location.href);
    url.protocol = url.protocol == "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url);
    ws.onopen = () => handler(true);
    ws.onclose = () => handler(false);
    ws.onmessage = (e) => { try { handler(JSON.parse(e.data)); } catch (_) {} };
    return ws;
  } catch (_) {}
}
export function channel_open(name, handler) {
  const channel = new BroadcastChannel(name);
  channel.onmessage = (e) => handler(e.data);
  return channel;
}
export function post(target, message) {
  try {
    target instanceof WebSocket ? target.send(JSON.stringify(message)) : target.postMessage(message);
  } catch (_) {}
}
export function shut(target, keepHandlers) {
  if (!keepHandlers) target.onopen = target.onclose = target.onmessage = null;
  target.close();
}
export function stored(key) {
  try { const v = localStorage.getItem(key); return v == null ? undefined : +v; } catch (_) {}
}
export function store(key, value) {
  try { value == null ? localStorage.removeItem(key) : localStorage.setItem(key, value); } catch (_) {}
}
export function listen(list, name, f) {
  list.push([name, f]);
}
export function unlisten(list, name, f) {
  const keep = list.filter(([n, g]) => n != name || (f !== undefined && g != f));
  list.length = 0;
  list.push(...keep);
  return list.length;
}
export function emit(list, name, value) {
  for (const [n, f] of list.slice()) if (!name || n == name) call(f, value);
}
export function settle(f, value) {
  return new Promise((resolve) => resolve(f(value)));
}
export function call(f, value) {
  try { f(value); } catch (e) { console.error("restsip: an event handler threw", e); }
}
export function handle(key, id, closer) {
  return id === undefined
    ? { namespace: key, close: () => closer([key]) }
    : { path: key, close: () => closer([key, id]) };
}
export function copy(value) {
  return { ...value };
}
export function error(code, status, message) {
  const e = new Error(message);
  e.name = "RestsipError";
  e.code = code;
  e.status = status;
  return e;
}
"#)]
extern "C" {
    /// Whether tabs can share a login (BroadcastChannel and Web Locks exist).
    pub(crate) fn locks_supported() -> bool;
    /// Requests the Web Lock `name`: resolves, once granted, to the function that releases it
    /// (or to null when `if_available` and another tab holds it).
    pub(crate) fn lock(name: &str, if_available: bool) -> Promise;
    /// `fetch` with JSON: resolves to `[status, parsed body?]` (`[-1]` when the body cannot be
    /// JSON), rejects on network failure.
    pub(crate) fn http(url: &str, method: &str, auth: &JsValue, body: &JsValue) -> Promise;
    /// Resolves after `ms` milliseconds.
    pub(crate) fn delay(ms: u32) -> Promise;
    /// Opens a WebSocket to `base + path` (`ws:` or `wss:` as the base is `http:` or `https:`;
    /// an empty base is the page's origin): `handler(true)` when open, `handler(false)` when
    /// closed, `handler(frame)` for every JSON frame. Undefined if the URL is refused.
    pub(crate) fn ws_open(base: &str, path: &str, handler: &Function) -> JsValue;
    /// Opens a BroadcastChannel: `handler(data)` for every message.
    pub(crate) fn channel_open(name: &str, handler: &Function) -> JsValue;
    /// Sends on a WebSocket (as JSON) or posts on a BroadcastChannel.
    pub(crate) fn post(target: &JsValue, message: &JsValue);
    /// Closes a WebSocket or BroadcastChannel, silencing it unless `keep_handlers`.
    pub(crate) fn shut(target: &JsValue, keep_handlers: bool);
    /// A number kept in localStorage.
    pub(crate) fn stored(key: &str) -> Option<f64>;
    /// Keeps (or, with undefined, removes) a number in localStorage.
    pub(crate) fn store(key: &str, value: &JsValue);
    /// Adds `[name, f]` to a list of event handlers.
    pub(crate) fn listen(list: &Array, name: &str, f: &Function);
    /// Removes `[name, f]` from a list of event handlers (every `name` handler when `f` is
    /// undefined); the number of handlers left.
    pub(crate) fn unlisten(list: &Array, name: &str, f: &Function) -> u32;
    /// A promise of what `f(value)` returns (or its promise resolves to), rejected with what it
    /// throws.
    pub(crate) fn settle(f: &Function, value: &JsValue) -> Promise;
    /// Calls the handlers of `name` in a list with `value` (all of them when `name` is empty).
    pub(crate) fn emit(list: &Array, name: &str, value: &JsValue);
    /// Calls a page callback, reporting (not propagating) what it throws: one page handler's
    /// bug must not break the client.
    pub(crate) fn call(f: &Function, value: &JsValue);
    /// `{path: key, close}` (a watch, with its id) or `{namespace: key, close}` (a served
    /// namespace, id undefined), where `close()` calls `closer([key, id?])`.
    pub(crate) fn handle(key: &str, id: JsValue, closer: &Function) -> JsValue;
    /// A shallow copy of `value` when it is an object, else an empty object.
    pub(crate) fn copy(value: &JsValue) -> JsValue;
    /// A `RestsipError`.
    pub(crate) fn error(code: &str, status: u16, message: &str) -> JsValue;
}

/// The value in a cell (JS values are cheap to clone; a `Cell` needs no borrow checks).
pub(crate) fn peek(cell: &Cell<JsValue>) -> JsValue {
    let value = cell.take();
    cell.set(value.clone());
    value
}

/// A JS callback into Rust (one closure type for every handler, so its glue exists once).
pub(crate) type Handler = Closure<dyn FnMut(JsValue)>;

/// Wraps a Rust closure as a JS function.
pub(crate) fn handler(f: Box<dyn FnMut(JsValue)>) -> Handler {
    Closure::wrap(f)
}

/// A boxed task of the client.
pub(crate) type Task<T> = Pin<Box<dyn Future<Output = T>>>;

/// A JS promise as a future.
pub(crate) fn wait(promise: Promise) -> JsFuture {
    JsFuture::from(promise)
}

/// `fetch` with JSON in and out: resolves to `[status, parsed body?]`.
pub(crate) fn fetch(url: &str, method: &str, auth: &JsValue, body: &JsValue) -> JsFuture {
    wait(http(url, method, auth, body))
}

/// Resolves after `ms` milliseconds.
pub(crate) fn sleep(ms: u32) -> JsFuture {
    wait(delay(ms))
}

/// The strings joined (like `concat`, without the formatting machinery).
pub(crate) fn cat(parts: &[&str]) -> String {
    let mut out = String::new();
    for part in parts {
        out.push_str(part);
    }
    out
}

/// The decimal digits of `n`.
pub(crate) fn digits(n: u64) -> String {
    let mut out = String::new();
    let mut div = 1u64;
    while n / div >= 10 {
        div *= 10;
    }
    loop {
        out.push(char::from(b'0' + (n / div % 10) as u8));
        if div == 1 {
            return out;
        }
        div /= 10;
    }
}

/// Standard base64 of the UTF-8 bytes of `text` (for HTTP Basic).
pub(crate) fn base64(text: &str) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize])
            } else {
                '='
            });
        }
    }
    out
}

/// `object[key]`, or undefined.
pub(crate) fn get(object: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(object, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// `object[key]` as a string.
pub(crate) fn get_str(object: &JsValue, key: &str) -> Option<String> {
    get(object, key).as_string()
}

/// `object[key]` as a number.
pub(crate) fn get_f64(object: &JsValue, key: &str) -> Option<f64> {
    get(object, key).as_f64()
}

/// `object[key] = value`.
pub(crate) fn set(object: &JsValue, key: &str, value: &JsValue) {
    let _ = js_sys::Reflect::set(object, &JsValue::from_str(key), value);
}

/// A new plain object with the given fields.
pub(crate) fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let o: JsValue = js_sys::Object::new().into();
    for (key, value) in fields {
        set(&o, key, value);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::{base64, cat, digits};

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain), encoded);
        }
        assert_eq!(base64("é:ü"), "w6k6w7w=");
    }

    #[test]
    fn numbers_and_joins_without_fmt() {
        assert_eq!(digits(0), "0");
        assert_eq!(digits(7), "7");
        assert_eq!(digits(1234567890123), "1234567890123");
        assert_eq!(cat(&["/login/", "a@b", "/", "3"]), "/login/a@b/3");
    }
}
