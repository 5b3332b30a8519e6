//! `Shared`: the state of one client, shared by the `Client` a page holds, its login session
//! (`session.rs`) and its streams. (Invitation objects hold only its REST access, `Http`.)

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use wasm_bindgen::prelude::*;

use crate::error::Result;
use crate::events::Emitter;
use crate::http::Http;
use crate::invite::{IncomingInvite, InviteState};
use crate::js;
use crate::media::Calls;
use crate::socket::Connection;
use crate::task::spawn;

/// State shared by the client, its session and its streams.
pub(crate) struct Shared {
    /// REST access.
    pub(crate) http: Rc<Http>,
    /// Page event handlers.
    pub(crate) emitter: Rc<Emitter>,
    /// The WebSocket.
    pub(crate) conn: Rc<Connection>,
    /// Logged-in user.
    email: Cell<Option<String>>,
    /// Login body (contact, presence, expires) used for creating and refreshing.
    pub(crate) options: Cell<JsValue>,
    /// Whether tabs share the login.
    pub(crate) shared_tabs: Cell<bool>,
    /// Whether this tab owns the shared login.
    pub(crate) leader: Cell<bool>,
    /// Bumped when a refresh loop must stop.
    pub(crate) generation: Cell<u32>,
    /// Bumped on logout, so late lock grants are ignored.
    pub(crate) session_generation: Cell<u32>,
    /// The watch id of the inbox, and its handler.
    pub(crate) inbox_watch: Cell<u32>,
    pub(crate) inbox_handler: Cell<Option<js::Handler>>,
    /// The BroadcastChannel to the other tabs, with its handler.
    pub(crate) channel: RefCell<Option<(JsValue, js::Handler)>>,
    /// Releases the Web Lock this tab holds.
    pub(crate) release: Cell<JsValue>,
    /// Invitations sent.
    pub(crate) outgoing: RefCell<Vec<Rc<InviteState>>>,
    /// Invitations received.
    incoming: RefCell<Vec<Rc<InviteState>>>,
    /// Media calls, dialled or answered (until they end).
    pub(crate) calls: Calls,
}

impl Shared {
    /// The state of a new client of the relay at `base` (empty: the page's own origin).
    pub(crate) fn new(base: &str) -> Rc<Self> {
        let http = Rc::new(Http::new(base));
        let emitter = Rc::new(Emitter::new());
        let conn = Connection::new(http.clone(), emitter.clone());
        Rc::new(Shared {
            http,
            emitter,
            conn,
            email: Cell::new(None),
            options: Cell::new(js::object(&[])),
            shared_tabs: Cell::new(true),
            leader: Cell::new(false),
            generation: Cell::new(0),
            session_generation: Cell::new(0),
            inbox_watch: Cell::new(0),
            inbox_handler: Cell::new(None),
            channel: RefCell::new(None),
            release: Cell::new(JsValue::UNDEFINED),
            outgoing: RefCell::new(Vec::new()),
            incoming: RefCell::new(Vec::new()),
            calls: Calls::default(),
        })
    }

    pub(crate) fn email(&self) -> Option<String> {
        let email = self.email.take();
        self.email.set(email.clone());
        email
    }

    pub(crate) fn set_email(&self, email: Option<String>) {
        self.email.set(email);
    }

    pub(crate) fn bump_generation(&self) -> u32 {
        let next = self.generation.get() + 1;
        self.generation.set(next);
        next
    }

    pub(crate) fn emit_login(&self, state: &str) {
        let event = js::object(&[("state", state.into())]);
        if let Some(url) = self.http.login_url() {
            js::set(&event, "url", &url.into());
        }
        self.emitter.emit("login", &event);
    }

    pub(crate) fn emit_login_error(&self, state: &str, error: JsValue) {
        let event = js::object(&[("state", state.into()), ("error", error)]);
        self.emitter.emit("login", &event);
    }

    /// The end of `logIn`: `{email, url, id, expires, owner}`, or, when no login could be made,
    /// the error (and nothing left of the attempt).
    pub(crate) fn logged_in(&self, started: Result<JsValue>) -> Result<JsValue> {
        match started {
            Ok(login) => {
                let result = js::copy(&login);
                js::set(&result, "email", &self.email().into());
                let owner = self.leader.get() || !self.shared_tabs.get();
                js::set(&result, "owner", &JsValue::from_bool(owner));
                Ok(result)
            }
            Err(e) => {
                self.end_session();
                for revoked in self.conn.stop() {
                    spawn(Box::pin(async move {
                        let _ = revoked.await;
                    }));
                }
                self.email.set(None);
                self.http.clear_credentials();
                Err(e)
            }
        }
    }

    /// A SEND reached this user: tell the page, and move invitations and media calls along.
    pub(crate) fn dispatch_inbox(self: &Rc<Self>, message: &JsValue) {
        self.emitter.emit("message", message);
        let body = js::get(message, "body");
        let (Some(command), Some(from), Some(id)) = (
            js::get_str(&body, "command"),
            js::get_str(message, "from"),
            js::get_f64(&body, "id"),
        ) else {
            return;
        };
        // A media call is named by its peer and id (a phone's messages carry no call URL;
        // the relay spells addresses in lower case).
        let call = {
            let mut calls = self.calls.borrow_mut();
            calls.retain(|c| c.state() != "ended");
            calls
                .iter()
                .find(|c| c.leg.id == id && c.leg.peer.eq_ignore_ascii_case(&from))
                .cloned()
        };
        if let Some(call) = call {
            call.receive(&command, &body);
        }
        let Some(call) = js::get_str(&body, "url") else {
            return;
        };
        match command.as_str() {
            "invite" => {
                let offer = js::get(&body, "sdp");
                let http = self.http.clone();
                let state = InviteState::incoming(id, &from, &call, http, offer, &self.calls);
                self.incoming.borrow_mut().push(state.clone());
                let invite = IncomingInvite::new(state);
                self.emitter.emit("invite", &JsValue::from(invite));
            }
            "cancel" => {
                if let Some(state) = find(&self.incoming, &from, &call, id) {
                    state.set("cancelled");
                }
            }
            "accept" | "reject" => {
                if let Some(state) = find(&self.outgoing, &from, &call, id) {
                    state.reason.set(js::get(&body, "reason"));
                    state.set(if command == "accept" {
                        "accepted"
                    } else {
                        "rejected"
                    });
                }
            }
            _ => {}
        }
    }
}

/// The invitation (peer, call, id) in a list of them.
fn find(
    list: &RefCell<Vec<Rc<InviteState>>>,
    peer: &str,
    call: &str,
    id: f64,
) -> Option<Rc<InviteState>> {
    list.borrow()
        .iter()
        .find(|s| s.peer == peer && s.call == call && s.id == id)
        .cloned()
}
