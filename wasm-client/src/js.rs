//! The few browser bindings web-sys does not give in every context: global `fetch` and
//! `setTimeout` (a page or a worker), Web Locks (unstable in web-sys), and a UTF-8 safe base64.

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(inline_js = "
export function locks_supported() {
  return typeof BroadcastChannel !== 'undefined' && !!(globalThis.navigator && navigator.locks);
}
export function lock_request(name, if_available, callback) {
  return navigator.locks.request(name, { ifAvailable: if_available }, callback);
}
")]
extern "C" {
    /// Whether tabs can share a login (BroadcastChannel and Web Locks exist).
    pub(crate) fn locks_supported() -> bool;
    /// `navigator.locks.request(name, {ifAvailable}, callback)`.
    pub(crate) fn lock_request(name: &str, if_available: bool, callback: &Function) -> Promise;
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = fetch)]
    fn fetch_request(request: &web_sys::Request) -> Promise;
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(callback: &Function, ms: i32) -> JsValue;
}

/// A Rust closure installed as a DOM event handler.
pub(crate) type Handler = Closure<dyn FnMut(JsValue)>;

/// `fetch(request)` in a page or a worker.
pub(crate) async fn fetch(request: &web_sys::Request) -> Result<web_sys::Response, JsValue> {
    JsFuture::from(fetch_request(request))
        .await
        .map(JsCast::unchecked_into)
}

/// Resolves after `ms` milliseconds.
pub(crate) async fn sleep(ms: u32) {
    let promise = Promise::new(&mut |resolve, _| {
        set_timeout(&resolve, i32::try_from(ms).unwrap_or(i32::MAX));
    });
    let _ = JsFuture::from(promise).await;
}

/// Standard base64 of the UTF-8 bytes of `text` (for HTTP Basic).
pub(crate) fn base64(text: &str) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
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

/// A new plain object with the given string/JS fields.
pub(crate) fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let o: JsValue = js_sys::Object::new().into();
    for (key, value) in fields {
        set(&o, key, value);
    }
    o
}

/// Calls a JS callback, reporting (not propagating) what it throws: one page handler's bug
/// must not break the client.
pub(crate) fn call(callback: &Function, arg: &JsValue) {
    if let Err(e) = callback.call1(&JsValue::NULL, arg) {
        web_sys::console::error_2(&JsValue::from_str("restsip: an event handler threw"), &e);
    }
}

#[cfg(test)]
mod tests {
    use super::base64;

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
}
