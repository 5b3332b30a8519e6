//! restsip in the browser: SIP calls, presence and messaging from page JavaScript, without SIP.
//!
//! ```js
//! import init, { Client } from "restsip";
//! await init();
//! const client = new Client("https://relay.example");
//! await client.logIn("alice@example.net", "secret");
//! client.on("message", (m) => console.log(m.from, m.body));
//! await client.send("bob@example.net", { command: "im", text: "hi" });
//! ```
#![warn(missing_docs)]

mod client;
mod error;
mod events;
mod http;
mod invite;
mod js;
mod media;
mod place;
mod rtc;
mod sdp;
mod session;
mod shared;
mod socket;
mod task;

pub use client::{Client, Watch};
pub use invite::{IncomingInvite, Invitation};

use wasm_bindgen::prelude::*;

/// A free-list allocator a few hundred bytes large, instead of the default dlmalloc.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());

/// Reports a Rust panic on the console instead of only an opaque `unreachable` trap. (The
/// message is not formatted: that would pull the formatting machinery into every page.)
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|_| {
        web_sys::console::error_1(&JsValue::from_str(
            "restsip: internal error (a Rust panic); please report it",
        ))
    }));
}

#[wasm_bindgen(typescript_custom_section)]
const TS_ERRORS: &'static str = r#"
/** Any JSON value: application bodies, presence, session descriptions. */
export type Value = any;

/** Every rejected promise of the client is a RestsipError. */
export interface RestsipError extends Error {
  name: "RestsipError";
  /** Stable code: "unauthorized" | "forbidden" | "not-found" | "conflict" | "network" |
   *  "bad-request" | "unprocessable" | "payload-too-large" | "too-many-requests" |
   *  "mailbox-full" (an offline message past the mailbox's caps) | "not-logged-in" | "invalid-argument" | "unavailable" | "internal" |
   *  "media-denied" (getUserMedia refused) | "media-unavailable" (no such device) | ... */
  code: string;
  /** HTTP status of the relay's answer; 0 when there was none. */
  status: number;
}
"#;
