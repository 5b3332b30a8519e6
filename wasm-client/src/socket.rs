//! The one WebSocket a client keeps to the relay (`/ws`), multiplexing every watched resource.
//! It authenticates with a short-lived token, reconnects after a drop with exponential backoff,
//! and resubscribes each resource from the last event id it delivered, so a page loses no event
//! across a network drop.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use wasm_bindgen::prelude::*;

use crate::events::Emitter;
use crate::http::Http;
use crate::js;
use crate::task::spawn;

/// A watched resource.
struct Subscription {
    /// `diff` or `full`.
    updates: String,
    /// The last event id delivered, to resume from.
    last_id: Option<f64>,
    /// Listeners, named by watch id.
    listeners: Emitter,
}

/// The connection and its subscriptions.
pub(crate) struct Connection {
    /// REST access (for the token).
    http: Rc<Http>,
    /// Where `connection` state events go.
    emitter: Rc<Emitter>,
    /// The current WebSocket, with its handler (kept alive while it lives).
    socket: Cell<JsValue>,
    /// Its handler, kept alive while it lives.
    handler: Cell<Option<js::Handler>>,
    /// Watched resources by path (a page watches few: a list beats a map in code size).
    subs: RefCell<Vec<(String, Subscription)>>,
    /// SOAP namespaces this page serves, with their handlers.
    services: RefCell<Vec<(String, js_sys::Function)>>,
    /// What the `close()` of watches and served namespaces calls (made once, at the first).
    closer: RefCell<Option<js::Handler>>,
    /// Whether the socket is open.
    open: Cell<bool>,
    /// Set by `stop`: no more reconnects.
    stopped: Cell<bool>,
    /// Failed attempts in a row, for the backoff.
    attempts: Cell<u32>,
    /// Next watch id.
    next_watch: Cell<u32>,
    /// Bumped on every connect, so handlers of an old socket stay quiet.
    generation: Cell<u32>,
    /// The bearer tokens fetched for the socket (one per connect), revoked when it stops.
    tokens: RefCell<Vec<String>>,
}

impl Connection {
    pub(crate) fn new(http: Rc<Http>, emitter: Rc<Emitter>) -> Rc<Self> {
        Rc::new(Self {
            http,
            emitter,
            socket: Cell::new(JsValue::UNDEFINED),
            handler: Cell::new(None),
            closer: RefCell::new(None),
            subs: RefCell::new(Vec::new()),
            services: RefCell::new(Vec::new()),
            open: Cell::new(false),
            stopped: Cell::new(true),
            attempts: Cell::new(0),
            next_watch: Cell::new(1),
            generation: Cell::new(0),
            tokens: RefCell::new(Vec::new()),
        })
    }

    /// Starts (or keeps) the connection.
    pub(crate) fn start(self: &Rc<Self>) {
        if !self.stopped.replace(false) {
            return;
        }
        self.connect();
    }

    /// Closes the socket for good and revokes the tokens it was opened with; the answers of
    /// the revocations, which are on their way when this returns.
    pub(crate) fn stop(&self) -> Vec<crate::http::Pending> {
        self.stopped.set(true);
        self.generation.set(self.generation.get() + 1);
        self.close_socket();
        self.subs.borrow_mut().clear();
        self.services.borrow_mut().clear();
        let tokens = std::mem::take(&mut *self.tokens.borrow_mut());
        tokens.iter().map(|t| self.http.revoke(t)).collect()
    }

    /// Closes the socket as a network drop would (tests use it): the client reconnects.
    pub(crate) fn drop_socket(&self) {
        let socket = js::peek(&self.socket);
        if !socket.is_undefined() {
            js::shut(&socket, true);
        }
    }

    fn close_socket(&self) {
        self.open.set(false);
        let socket = self.socket.take();
        if !socket.is_undefined() {
            js::shut(&socket, false);
        }
        self.handler.set(None);
    }

    /// Watches `path`; returns the watch id for [`Connection::unwatch`].
    pub(crate) fn watch(&self, path: &str, updates: &str, listener: &js_sys::Function) -> u32 {
        let id = self.next_watch.get();
        self.next_watch.set(id + 1);
        let mut subs = self.subs.borrow_mut();
        if !subs.iter().any(|(p, _)| p == path) {
            let sub = Subscription {
                updates: updates.into(),
                last_id: None,
                listeners: Emitter::new(),
            };
            if self.open.get() {
                self.send_subscribe(path, &sub);
            }
            subs.push((path.into(), sub));
        }
        if let Some((_, sub)) = subs.iter().find(|(p, _)| p == path) {
            sub.listeners.on(&js::digits(id.into()), listener);
        }
        id
    }

    /// The page's handle of a watch (`id`: its watch id) or of a served namespace (`id`
    /// undefined): `close()` ends it.
    pub(crate) fn handle(self: &Rc<Self>, key: &str, id: JsValue) -> JsValue {
        let mut closer = self.closer.borrow_mut();
        let closer = closer.get_or_insert_with(|| {
            let weak = Rc::downgrade(self);
            js::handler(Box::new(move |closed: JsValue| {
                let Some(this) = weak.upgrade() else { return };
                let key = js::get_str(&closed, "0").unwrap_or_default();
                match js::get_f64(&closed, "1") {
                    Some(id) => this.unwatch(&key, id as u32),
                    None => this.unserve(&key),
                }
            }))
        });
        js::handle(key, id, closer.as_ref().unchecked_ref())
    }

    /// Ends one watch; the subscription goes when its last watch does.
    pub(crate) fn unwatch(&self, path: &str, id: u32) {
        let mut subs = self.subs.borrow_mut();
        let empty = match subs.iter_mut().find(|(p, _)| p == path) {
            Some((_, sub)) => sub.listeners.off_all(&js::digits(id.into())),
            None => false,
        };
        if empty {
            subs.retain(|(p, _)| p != path);
            drop(subs);
            self.send(&js::object(&[
                ("op", "unsubscribe".into()),
                ("path", path.into()),
            ]));
        }
    }

    /// Serves the SOAP `namespace` with `handler` (replacing an earlier handler of it).
    pub(crate) fn serve(&self, namespace: &str, handler: js_sys::Function) {
        let mut services = self.services.borrow_mut();
        services.retain(|(n, _)| n != namespace);
        services.push((namespace.to_owned(), handler));
        drop(services);
        self.send_serve(namespace);
    }

    /// Stops serving `namespace`.
    pub(crate) fn unserve(&self, namespace: &str) {
        self.services.borrow_mut().retain(|(n, _)| n != namespace);
        self.send(&js::object(&[
            ("op", "unserve".into()),
            ("namespace", namespace.into()),
        ]));
    }

    fn send_serve(&self, namespace: &str) {
        self.send(&js::object(&[
            ("op", "serve".into()),
            ("ref", js::cat(&["serve ", namespace]).into()),
            ("namespace", namespace.into()),
        ]));
    }

    /// Runs the page's handler for a `service` frame and sends its answer: the value it returns
    /// (or its promise resolves to) is the result; what it throws is a fault.
    fn answer_service(self: &Rc<Self>, frame: &JsValue) {
        let (Some(id), Some(namespace)) =
            (js::get_str(frame, "id"), js::get_str(frame, "namespace"))
        else {
            return;
        };
        let handler = self
            .services
            .borrow()
            .iter()
            .find(|(n, _)| *n == namespace)
            .map(|(_, h)| h.clone());
        let Some(handler) = handler else { return };
        let request = js::object(&[
            ("namespace", namespace.into()),
            ("method", js::get(frame, "method")),
            ("params", js::get(frame, "params")),
            ("from", js::get(frame, "from")),
            ("body", js::get(frame, "body")),
        ]);
        let this = self.clone();
        spawn(Box::pin(async move {
            let outcome = js::wait(js::settle(&handler, &request)).await;
            let reply = js::object(&[("op", "service-reply".into()), ("id", id.into())]);
            match outcome {
                Ok(result) => js::set(&reply, "result", &result),
                Err(error) => {
                    let string = js::get_str(&error, "message")
                        .or_else(|| error.as_string())
                        .unwrap_or_else(|| "the service failed".into());
                    let code = js::get_str(&error, "code")
                        .filter(|c| c.as_bytes().windows(6).any(|w| w == b"Client"))
                        .unwrap_or_else(|| "Server".into());
                    let fault = js::object(&[("code", code.into()), ("string", string.into())]);
                    if let Some(detail) = js::get_str(&error, "detail") {
                        js::set(&fault, "detail", &detail.into());
                    }
                    js::set(&reply, "fault", &fault);
                }
            }
            this.send(&reply);
        }));
    }

    fn send(&self, frame: &JsValue) {
        if !self.open.get() {
            return;
        }
        js::post(&js::peek(&self.socket), frame);
    }

    /// Subscribes `path`, from the last event delivered if any (the relay replays the rest).
    fn send_subscribe(&self, path: &str, sub: &Subscription) {
        let frame = js::object(&[
            ("op", "subscribe".into()),
            ("path", path.into()),
            ("updates", sub.updates.as_str().into()),
        ]);
        if let Some(id) = sub.last_id {
            js::set(&frame, "since", &JsValue::from_f64(id));
        }
        self.send(&frame);
    }

    fn connect(self: &Rc<Self>) {
        let this = self.clone();
        spawn(Box::pin(async move {
            match this.http.request("POST", "/token", None).await {
                Ok(answer) => {
                    let token = js::get_str(&answer, "token").unwrap_or_default();
                    this.tokens.borrow_mut().push(token.clone());
                    this.attach(&js::cat(&["/ws?access_token=", &token]));
                }
                Err(e) => {
                    this.emit_state("reconnecting", Some(&e));
                    this.schedule_reconnect();
                }
            }
        }));
    }

    fn attach(self: &Rc<Self>, path: &str) {
        self.close_socket();
        let generation = self.generation.get() + 1;
        self.generation.set(generation);
        let weak = Rc::downgrade(self);
        let handler = js::handler(Box::new(move |event: JsValue| {
            let Some(this) = weak.upgrade().filter(|t| t.generation.get() == generation) else {
                return;
            };
            match event.as_bool() {
                Some(true) => this.opened(),
                Some(false) => {
                    this.open.set(false);
                    if !this.stopped.get() {
                        this.schedule_reconnect();
                    }
                }
                None => this.receive(&event),
            }
        }));
        let socket = self.http.ws_open(path, handler.as_ref().unchecked_ref());
        if socket.is_undefined() {
            self.schedule_reconnect();
        } else {
            self.socket.set(socket);
            self.handler.set(Some(handler));
        }
    }

    /// The socket is open: subscribe every watched resource again (from its last event id) and
    /// serve every namespace again.
    fn opened(&self) {
        self.open.set(true);
        self.attempts.set(0);
        for (path, sub) in self.subs.borrow().iter() {
            self.send_subscribe(path, sub);
        }
        for (namespace, _) in self.services.borrow().iter() {
            self.send_serve(namespace);
        }
        self.emit_state("open", None);
    }

    fn schedule_reconnect(self: &Rc<Self>) {
        if self.stopped.get() {
            return;
        }
        let attempt = self.attempts.get();
        self.attempts.set(attempt + 1);
        let delay = 250u32.saturating_mul(1 << attempt.min(7)).min(30_000);
        let jitter = (js_sys::Math::random() * 250.0) as u32;
        self.emit_state("reconnecting", None);
        let this = self.clone();
        let generation = self.generation.get();
        spawn(Box::pin(async move {
            let _ = js::sleep(delay + jitter).await;
            if !this.stopped.get() && this.generation.get() == generation {
                this.connect();
            }
        }));
    }

    fn emit_state(&self, state: &str, error: Option<&JsValue>) {
        let event = js::object(&[("state", state.into())]);
        if let Some(error) = error {
            js::set(&event, "error", error);
        }
        self.emitter.emit("connection", &event);
    }

    fn receive(self: &Rc<Self>, frame: &JsValue) {
        let (path, event) = match js::get_str(frame, "op").as_deref() {
            Some("service") => {
                self.answer_service(frame);
                return;
            }
            Some("event") => {
                let event = js::get(frame, "event");
                (js::get_str(&event, "resource"), event)
            }
            Some("error") => {
                let path = js::get_str(frame, "path");
                let event = js::object(&[
                    ("kind", "error".into()),
                    ("resource", path.as_deref().unwrap_or("").into()),
                    ("data", js::get(frame, "problem")),
                ]);
                (path, event)
            }
            _ => (None, JsValue::UNDEFINED),
        };
        let Some(path) = path else { return };
        let listeners = {
            let mut subs = self.subs.borrow_mut();
            let Some((_, sub)) = subs.iter_mut().find(|(p, _)| *p == path) else {
                return;
            };
            if let Some(id) = js::get_f64(&event, "id") {
                sub.last_id = Some(id);
            }
            sub.listeners.clone()
        };
        listeners.emit("", &event);
    }
}
