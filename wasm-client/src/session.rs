//! Being logged in: the login (contact) itself, kept alive by refreshing before it expires,
//! recreated when the relay lost it, and the inbox stream that brings SENDs. Tabs of one origin
//! share a login: a Web Lock elects one tab to own it, and a BroadcastChannel carries the
//! inbox and the login to the others, so two tabs never fight over one registration.

use std::rc::Rc;

use wasm_bindgen::prelude::*;

use crate::error::{ClientError, Result};
use crate::js;
use crate::shared::Shared;
use crate::task::spawn;

/// Refresh when this share of the lifetime has passed.
const REFRESH_AT: f64 = 0.75;

fn storage_key(email: &str) -> String {
    js::cat(&["restsip:login:", email])
}

fn stored_login(email: &str) -> Option<f64> {
    js::stored(&storage_key(email))
}

fn store_login(email: &str, id: Option<f64>) {
    js::store(
        &storage_key(email),
        &id.map_or(JsValue::UNDEFINED, JsValue::from_f64),
    );
}

impl Shared {
    /// Creates the login (or takes over `reuse` when it is still alive), watches its inbox and
    /// keeps it refreshed.
    pub(crate) async fn own_login(self: &Rc<Self>, reuse: Option<f64>) -> Result<JsValue> {
        let Some(email) = self.email() else {
            return Err(ClientError::not_logged_in());
        };
        let options = js::peek(&self.options);
        if let Some(id) = reuse {
            let path = js::cat(&["/login/", &email, "/", &js::digits(id as u64)]);
            if let Ok(answer) = self.http.request("PUT", &path, Some(&options)).await {
                return Ok(self.adopt_login(&email, answer));
            }
        }
        let path = js::cat(&["/login/", &email]);
        let answer = self.http.request("POST", &path, Some(&options)).await?;
        Ok(self.adopt_login(&email, answer))
    }

    /// This tab owns `login` (the relay's answer) from now on: its inbox is watched, it is kept
    /// refreshed, and the other tabs learn it.
    fn adopt_login(self: &Rc<Self>, email: &str, login: JsValue) -> JsValue {
        if self.shared_tabs.get() {
            store_login(email, js::get_f64(&login, "id"));
        }
        self.http.set_login(login.clone());
        let url = self.http.login_url().unwrap_or_default();
        self.watch_inbox(&url);
        self.keep_alive(url, js::get_f64(&login, "expires").unwrap_or(60.0));
        self.broadcast_login();
        self.emit_login("active");
        login
    }

    fn watch_inbox(self: &Rc<Self>, url: &str) {
        let weak = Rc::downgrade(self);
        let path = url.to_owned();
        let listener = js::handler(Box::new(move |event: JsValue| {
            let Some(this) = weak.upgrade() else { return };
            match js::get_str(&event, "kind").as_deref() {
                Some("message") => {
                    let message = js::get(&event, "data");
                    this.post(&js::object(&[
                        ("type", "message".into()),
                        ("message", message.clone()),
                    ]));
                    this.dispatch_inbox(&message);
                }
                // The relay no longer has this login (expired while offline, removed
                // elsewhere): log in again rather than go deaf.
                Some("gone") | Some("error") if this.http.login_url().as_ref() == Some(&path) => {
                    this.emit_login("lost");
                    this.recover_login(&path);
                }
                _ => {}
            }
        }));
        let id = self
            .conn
            .watch(url, "diff", listener.as_ref().unchecked_ref());
        self.inbox_watch.set(id);
        self.inbox_handler.set(Some(listener));
    }

    /// Makes a new login after `lost` went away, once: the inbox's `gone` and a refresh's 404
    /// both report the same loss, and only the first may log in again.
    fn recover_login(self: &Rc<Self>, lost: &str) {
        if self.http.login_url().as_deref() != Some(lost) {
            return;
        }
        self.conn.unwatch(lost, self.inbox_watch.get());
        self.http.set_login(JsValue::UNDEFINED);
        self.bump_generation();
        let this = self.clone();
        spawn(Box::pin(async move {
            if let Err(e) = this.own_login(None).await {
                this.emit_login_error("lost", e);
            }
        }));
    }

    /// Refreshes the login at 75% of its lifetime until logout or a newer login replaces it.
    fn keep_alive(self: &Rc<Self>, url: String, expires: f64) {
        let this = self.clone();
        let generation = self.bump_generation();
        spawn(Box::pin(async move {
            let mut wait = expires * REFRESH_AT;
            let mut failures = 0u32;
            loop {
                let _ = js::sleep((wait * 1000.0) as u32).await;
                if this.generation.get() != generation {
                    return;
                }
                if this.email().is_none() {
                    return;
                }
                let options = js::peek(&this.options);
                match this.http.request("PUT", &url, Some(&options)).await {
                    Ok(answer) => {
                        failures = 0;
                        wait = js::get_f64(&answer, "expires").unwrap_or(expires) * REFRESH_AT;
                    }
                    Err(e) if ClientError::status(&e) == 404.0 => {
                        if this.generation.get() != generation {
                            return;
                        }
                        this.emit_login_error("lost", e);
                        this.recover_login(&url);
                        return;
                    }
                    Err(e) => {
                        // Network trouble: retry soon, well before the login would expire.
                        failures += 1;
                        this.emit_login_error("refresh-failed", e);
                        wait = f64::from(1u32 << failures.min(5))
                            .min(expires * (1.0 - REFRESH_AT) / 2.0);
                    }
                }
            }
        }));
    }

    /// Logs in, sharing one login among the tabs of this origin when the browser allows it.
    pub(crate) async fn start_session(self: &Rc<Self>) -> Result<JsValue> {
        let email = self.email().ok_or_else(ClientError::not_logged_in)?;
        if !(self.shared_tabs.get() && js::locks_supported()) {
            self.shared_tabs.set(false);
            return self.own_login(None).await;
        }
        self.open_channel(&email);
        // Try to become the owner at once; otherwise follow the owner and queue to take over.
        let release = js::wait(js::lock(&storage_key(&email), true))
            .await
            .unwrap_or(JsValue::NULL);
        if release.is_function() {
            self.lead(release);
            return self.own_login(stored_login(&email)).await;
        }
        self.queue_for_lead(&email);
        self.post(&js::object(&[("type", "hello".into())]));
        for _ in 0..40 {
            if self.http.login_url().is_some() {
                self.emit_login("active");
                return Ok(self.http.login());
            }
            let _ = js::sleep(50).await;
        }
        Err(ClientError::coded(
            "unavailable",
            0,
            "another tab holds the login but does not answer",
        ))
    }

    /// Owns the login while this tab holds the lock (`release` lets it go).
    fn lead(&self, release: JsValue) {
        self.release.set(release);
        self.leader.set(true);
    }

    /// Queues for the lock; when the owning tab goes, this one takes the login over.
    fn queue_for_lead(self: &Rc<Self>, email: &str) {
        let weak = Rc::downgrade(self);
        let email = email.to_owned();
        let session = self.session_generation.get();
        let granted = js::lock(&storage_key(&email), false);
        spawn(Box::pin(async move {
            let Ok(release) = js::wait(granted).await else {
                return;
            };
            // Only if this client is still in the same session (no logout since).
            let Some(this) = weak
                .upgrade()
                .filter(|t| t.session_generation.get() == session)
            else {
                js::call(release.unchecked_ref(), &JsValue::UNDEFINED);
                return;
            };
            let reuse = js::get_f64(&this.http.login(), "id").or_else(|| stored_login(&email));
            this.lead(release);
            if let Err(e) = this.own_login(reuse).await {
                this.emit_login_error("lost", e);
            }
        }));
    }

    fn open_channel(self: &Rc<Self>, email: &str) {
        let weak = Rc::downgrade(self);
        let on_message = js::handler(Box::new(move |data: JsValue| {
            let Some(this) = weak.upgrade() else { return };
            match js::get_str(&data, "type").as_deref() {
                Some("message") if !this.leader.get() => {
                    this.dispatch_inbox(&js::get(&data, "message"))
                }
                Some("login") if !this.leader.get() => {
                    this.http.set_login(js::get(&data, "login"));
                }
                Some("hello") if this.leader.get() => this.broadcast_login(),
                _ => {}
            }
        }));
        let channel = js::channel_open(
            &js::cat(&["restsip:", email]),
            on_message.as_ref().unchecked_ref(),
        );
        *self.channel.borrow_mut() = Some((channel, on_message));
    }

    /// Posts to the other tabs (no-op without tab sharing).
    fn post(&self, message: &JsValue) {
        if let Some((channel, _)) = self.channel.borrow().as_ref() {
            js::post(channel, message);
        }
    }

    fn broadcast_login(&self) {
        if self.http.login_url().is_some() {
            self.post(&js::object(&[
                ("type", "login".into()),
                ("login", self.http.login()),
            ]));
        }
    }

    /// Ends the session: releases the lock and the channel (the login itself is removed by the
    /// caller when this tab owned it).
    pub(crate) fn end_session(&self) {
        self.bump_generation();
        self.session_generation
            .set(self.session_generation.get() + 1);
        self.leader.set(false);
        let release = self.release.take();
        if release.is_function() {
            js::call(release.unchecked_ref(), &JsValue::UNDEFINED);
        }
        if let Some((channel, _)) = self.channel.borrow_mut().take() {
            js::shut(&channel, false);
        }
        self.http.set_login(JsValue::UNDEFINED);
    }

    /// Forgets the stored login id of this user (after a logout by the owner).
    pub(crate) fn forget_stored_login(&self, email: &str) {
        store_login(email, None);
    }
}
