//! Being logged in: the login (contact) itself, kept alive by refreshing before it expires,
//! recreated when the relay lost it, and the inbox stream that brings SENDs. Tabs of one origin
//! share a login: a Web Lock elects one tab to own it, and a BroadcastChannel carries the
//! inbox and the login to the others, so two tabs never fight over one registration.

use std::rc::Rc;

use js_sys::Function;
use wasm_bindgen::prelude::*;
use web_sys::{BroadcastChannel, MessageEvent};

use crate::client::{Login, Shared};
use crate::error::{ClientError, Result};
use crate::js;

/// Refresh when this share of the lifetime has passed.
const REFRESH_AT: f64 = 0.75;

fn storage_key(email: &str) -> String {
    ["restsip:login:", email].concat()
}

fn stored_login(email: &str) -> Option<i64> {
    let storage = web_sys::window()?.local_storage().ok()??;
    storage.get_item(&storage_key(email)).ok()??.parse().ok()
}

fn store_login(email: &str, id: Option<i64>) {
    if let Some(Ok(Some(storage))) = web_sys::window().map(|w| w.local_storage()) {
        let _ = match id {
            Some(id) => storage.set_item(&storage_key(email), &id.to_string()),
            None => storage.remove_item(&storage_key(email)),
        };
    }
}

impl Shared {
    /// Creates the login (or takes over `reuse` when it is still alive), watches its inbox and
    /// keeps it refreshed.
    pub(crate) async fn own_login(self: &Rc<Self>, reuse: Option<i64>) -> Result<Login> {
        let email = self.email().ok_or_else(ClientError::not_logged_in)?;
        let options = self.options.borrow().clone();
        let refreshed = match reuse {
            Some(id) => self
                .http
                .request(
                    "PUT",
                    &["/login/", &email, "/", &id.to_string()].concat(),
                    Some(&options),
                )
                .await
                .ok(),
            None => None,
        };
        let answer = match refreshed {
            Some(answer) => answer,
            None => {
                self.http
                    .request("POST", &["/login/", &email].concat(), Some(&options))
                    .await?
            }
        };
        let login = Login {
            id: js::get_f64(&answer, "id").unwrap_or(0.0) as i64,
            url: js::get_str(&answer, "url").unwrap_or_default(),
            expires: js::get_f64(&answer, "expires").unwrap_or(60.0),
        };
        if self.shared_tabs.get() {
            store_login(&email, Some(login.id));
        }
        self.set_login(Some(login.clone()));
        self.watch_inbox(&login.url);
        self.keep_alive(login.clone());
        self.broadcast_login();
        self.emit_login("active");
        Ok(login)
    }

    fn watch_inbox(self: &Rc<Self>, url: &str) {
        let weak = Rc::downgrade(self);
        let path = url.to_owned();
        let listener = Rc::new(move |event: &JsValue| {
            let Some(this) = weak.upgrade() else { return };
            match js::get_str(event, "kind").as_deref() {
                Some("message") => {
                    let message = js::get(event, "data");
                    this.post(&js::object(&[
                        ("type", "message".into()),
                        ("message", message.clone()),
                    ]));
                    this.dispatch_inbox(&message);
                }
                // The relay no longer has this login (expired while offline, removed
                // elsewhere): log in again rather than go deaf.
                Some("gone") | Some("error") if this.login().is_some_and(|l| l.url == path) => {
                    this.emit_login("lost");
                    this.recover_login(&path);
                }
                _ => {}
            }
        });
        let id = self.conn.watch(url, "diff", listener);
        self.inbox_watch.set(id);
    }

    /// Makes a new login after `lost` went away, once: the inbox's `gone` and a refresh's 404
    /// both report the same loss, and only the first may log in again.
    fn recover_login(self: &Rc<Self>, lost: &str) {
        if self.login().is_none_or(|l| l.url != lost) {
            return;
        }
        self.conn.unwatch(lost, self.inbox_watch.get());
        self.set_login(None);
        self.bump_generation();
        let this = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = this.own_login(None).await {
                this.emit_login_error("lost", e);
            }
        });
    }

    /// Refreshes the login at 75% of its lifetime until logout or a newer login replaces it.
    fn keep_alive(self: &Rc<Self>, login: Login) {
        let this = self.clone();
        let generation = self.bump_generation();
        wasm_bindgen_futures::spawn_local(async move {
            let mut wait = login.expires * REFRESH_AT;
            let mut failures = 0u32;
            loop {
                js::sleep((wait * 1000.0) as u32).await;
                if this.generation.get() != generation {
                    return;
                }
                if this.email().is_none() {
                    return;
                }
                let options = this.options.borrow().clone();
                match this.http.request("PUT", &login.url, Some(&options)).await {
                    Ok(answer) => {
                        failures = 0;
                        wait =
                            js::get_f64(&answer, "expires").unwrap_or(login.expires) * REFRESH_AT;
                    }
                    Err(e) if e.status == 404 => {
                        if this.generation.get() != generation {
                            return;
                        }
                        this.emit_login_error("lost", e);
                        this.recover_login(&login.url);
                        return;
                    }
                    Err(e) => {
                        // Network trouble: retry soon, well before the login would expire.
                        failures += 1;
                        this.emit_login_error("refresh-failed", e);
                        wait = (2f64.powi(failures.min(5) as i32))
                            .min(login.expires * (1.0 - REFRESH_AT) / 2.0);
                    }
                }
            }
        });
    }

    /// Logs in, sharing one login among the tabs of this origin when the browser allows it.
    pub(crate) async fn start_session(self: &Rc<Self>) -> Result<Login> {
        let email = self.email().ok_or_else(ClientError::not_logged_in)?;
        if !(self.shared_tabs.get() && js::locks_supported()) {
            self.shared_tabs.set(false);
            return self.own_login(None).await;
        }
        self.open_channel(&email)?;
        // Try to become the owner at once; otherwise follow the owner and queue to take over.
        let (sender, granted) = oneshot();
        let weak = Rc::downgrade(self);
        let try_now = Closure::once_into_js(move |lock: JsValue| -> JsValue {
            let held = !lock.is_null();
            sender(JsValue::from_bool(held));
            match (held, weak.upgrade()) {
                (true, Some(this)) => this.hold_lock(),
                _ => JsValue::UNDEFINED,
            }
        });
        let _ = js::lock_request(&storage_key(&email), true, try_now.unchecked_ref());
        let leader = wasm_bindgen_futures::JsFuture::from(granted)
            .await
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        if leader {
            return self.lead(&email).await;
        }
        self.queue_for_lead(&email);
        self.post(&js::object(&[("type", "hello".into())]));
        for _ in 0..40 {
            if let Some(login) = self.login() {
                self.emit_login("active");
                return Ok(login);
            }
            js::sleep(50).await;
        }
        Err(ClientError::new(
            "unavailable",
            0,
            "another tab holds the login but does not answer",
        ))
    }

    async fn lead(self: &Rc<Self>, email: &str) -> Result<Login> {
        self.leader.set(true);
        self.own_login(stored_login(email)).await
    }

    /// Queues for the lock; when the owning tab goes, this one takes the login over.
    fn queue_for_lead(self: &Rc<Self>, email: &str) {
        let weak = Rc::downgrade(self);
        let email = email.to_owned();
        let session = self.session_generation.get();
        let on_grant = Closure::once_into_js(move |_lock: JsValue| -> JsValue {
            // Only if this client is still in the same session (no logout since).
            let Some(this) = weak
                .upgrade()
                .filter(|t| t.session_generation.get() == session)
            else {
                return JsValue::UNDEFINED;
            };
            let held = this.hold_lock();
            let reuse = this.login().map(|l| l.id).or_else(|| stored_login(&email));
            wasm_bindgen_futures::spawn_local(async move {
                this.leader.set(true);
                if let Err(e) = this.own_login(reuse).await {
                    this.emit_login_error("lost", e);
                }
            });
            held
        });
        let _ = js::lock_request(
            &storage_key(&self.email().unwrap_or_default()),
            false,
            on_grant.unchecked_ref(),
        );
    }

    /// A promise that keeps the Web Lock held until the session ends.
    fn hold_lock(&self) -> JsValue {
        let mut release = None;
        let promise = js_sys::Promise::new(&mut |resolve, _| release = Some(resolve));
        *self.release.borrow_mut() = release;
        promise.into()
    }

    fn open_channel(self: &Rc<Self>, email: &str) -> Result<()> {
        let channel = BroadcastChannel::new(&["restsip:", email].concat())
            .map_err(|_| ClientError::invalid("BroadcastChannel is not available"))?;
        let weak = Rc::downgrade(self);
        let on_message = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let Some(this) = weak.upgrade() else { return };
            let data = event.unchecked_into::<MessageEvent>().data();
            match js::get_str(&data, "type").as_deref() {
                Some("message") if !this.leader.get() => {
                    this.dispatch_inbox(&js::get(&data, "message"))
                }
                Some("login") if !this.leader.get() => {
                    let login = js::get(&data, "login");
                    this.set_login(js::get_str(&login, "url").map(|url| Login {
                        id: js::get_f64(&login, "id").unwrap_or(0.0) as i64,
                        url,
                        expires: js::get_f64(&login, "expires").unwrap_or(0.0),
                    }));
                }
                Some("hello") if this.leader.get() => this.broadcast_login(),
                _ => {}
            }
        });
        channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        *self.channel.borrow_mut() = Some((channel, on_message));
        Ok(())
    }

    /// Posts to the other tabs (no-op without tab sharing).
    fn post(&self, message: &JsValue) {
        if let Some((channel, _)) = self.channel.borrow().as_ref() {
            let _ = channel.post_message(message);
        }
    }

    fn broadcast_login(&self) {
        if let Some(login) = self.login() {
            let value = js::object(&[
                ("id", JsValue::from_f64(login.id as f64)),
                ("url", login.url.as_str().into()),
                ("expires", JsValue::from_f64(login.expires)),
            ]);
            self.post(&js::object(&[("type", "login".into()), ("login", value)]));
        }
    }

    /// Ends the session: releases the lock and the channel (the login itself is removed by the
    /// caller when this tab owned it).
    pub(crate) fn end_session(&self) {
        self.bump_generation();
        self.session_generation
            .set(self.session_generation.get() + 1);
        self.leader.set(false);
        if let Some(release) = self.release.borrow_mut().take() {
            let _ = release.call0(&JsValue::NULL);
        }
        if let Some((channel, _)) = self.channel.borrow_mut().take() {
            channel.set_onmessage(None);
            channel.close();
        }
        self.set_login(None);
    }

    /// Forgets the stored login id of this user (after a logout by the owner).
    pub(crate) fn forget_stored_login(&self, email: &str) {
        store_login(email, None);
    }
}

/// A one-shot: calling the returned function resolves the promise.
fn oneshot() -> (impl FnOnce(JsValue), js_sys::Promise) {
    let mut resolve_fn: Option<Function> = None;
    let promise = js_sys::Promise::new(&mut |resolve, _| resolve_fn = Some(resolve));
    let sender = move |value: JsValue| {
        if let Some(resolve) = resolve_fn {
            let _ = resolve.call1(&JsValue::NULL, &value);
        }
    };
    (sender, promise)
}
