//! `Client`: the API a page uses. Every method returns a Promise; failures reject with a
//! `RestsipError` carrying a stable `code`.

use std::rc::Rc;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;

use crate::error::ClientError;
use crate::http::{self, Pending};
use crate::invite::{new_id, Invitation, InviteState, Step};
use crate::js;
use crate::shared::Shared;
use crate::task::promise;

/// A restsip client: one per page (tabs of an origin share their login).
#[wasm_bindgen]
pub struct Client {
    pub(crate) inner: Rc<Shared>,
}

// `Watch` and `Served` are plain JS objects (`{path, close}`, `{namespace, close}`) whose
// `close` calls back into the connection (see `Connection::handle`): two small objects a page
// holds, not two more exported classes with their glue.
#[wasm_bindgen]
extern "C" {
    /// A watch on an active resource; `close()` ends it.
    #[wasm_bindgen(typescript_type = "Watch")]
    pub type Watch;
    /// The watched resource.
    #[wasm_bindgen(method, getter)]
    pub fn path(this: &Watch) -> String;
    /// Stops the callbacks of this watch.
    #[wasm_bindgen(method)]
    pub fn close(this: &Watch);
}

#[wasm_bindgen]
extern "C" {

    /// The service of a SOAP namespace by this page; `close()` ends it.
    #[wasm_bindgen(typescript_type = "Served")]
    pub type Served;
    /// The namespace served.
    #[wasm_bindgen(method, getter)]
    pub fn namespace(this: &Served) -> String;
    /// Stops serving it.
    #[wasm_bindgen(method)]
    pub fn close(this: &Served);
}

#[wasm_bindgen(typescript_custom_section)]
const TS_HANDLES: &'static str = r#"
/** A watch on an active resource; `close()` ends it. */
export interface Watch {
  /** The watched resource. */
  readonly path: string;
  /** Stops the callbacks of this watch. */
  close(): void;
}

/** The service of a SOAP namespace by this page; `close()` ends it. */
export interface Served {
  /** The namespace served. */
  readonly namespace: string;
  /** Stops serving it. */
  close(): void;
}
"#;

/// A promise already rejected with `error`.
fn rejected(error: JsValue) -> Promise {
    promise(Box::pin(Pending::failed(error)))
}

impl Client {
    /// One REST call as a promise: every simple method shares this one future type, which keeps
    /// the module small.
    fn rest(&self, method: &str, path: String, body: Option<JsValue>) -> Promise {
        promise(Box::pin(self.inner.http.request(
            method,
            &path,
            body.as_ref(),
        )))
    }
}

#[wasm_bindgen]
impl Client {
    /// A client of the relay at `url` (e.g. `"https://relay.example"`); without one, the
    /// page's own origin.
    #[wasm_bindgen(constructor)]
    pub fn new(url: Option<String>) -> Client {
        Client {
            inner: Shared::new(url.as_deref().unwrap_or("")),
        }
    }

    /// The logged-in user's email, if any.
    #[wasm_bindgen(getter)]
    pub fn email(&self) -> Option<String> {
        self.inner.email()
    }

    /// This client's login resource (`/login/{email}/{id}`), once logged in.
    #[wasm_bindgen(getter, js_name = loginUrl)]
    pub fn login_url(&self) -> Option<String> {
        self.inner.http.login_url()
    }

    /// Listens to `message` (a SEND to me: `InboxMessage`), `invite` (an `IncomingInvite`),
    /// `login` (`{state: "active" | "refresh-failed" | "lost", error?}`) and `connection`
    /// (`{state: "open" | "reconnecting"}`).
    pub fn on(&self, event: &str, callback: Function) {
        self.inner.emitter.on(event, &callback);
    }

    /// Removes a listener added with `on`.
    pub fn off(&self, event: &str, callback: &Function) {
        self.inner.emitter.off(event, callback);
    }

    /// Signs up: `profile` may carry `name` and any application fields.
    #[wasm_bindgen(js_name = signUp, unchecked_return_type = "Promise<UserCreated>")]
    pub fn sign_up(&self, email: String, password: String, profile: JsValue) -> Promise {
        let body = js::copy(&profile);
        js::set(&body, "email", &email.into());
        js::set(&body, "password", &password.into());
        self.rest("POST", "/user".into(), Some(body))
    }

    /// Logs in: checks the credentials, registers a login (shared by this origin's tabs unless
    /// `options.shared` is false), keeps it refreshed and receives what is SENT to it.
    /// `options`: `{contact?, presence?, expires?, shared?}`. Resolves to `{email, url, id, expires}`.
    #[wasm_bindgen(
        js_name = logIn,
        unchecked_return_type = "Promise<{email: string, url: string, id: number, expires: number, owner: boolean}>"
    )]
    pub fn log_in(&self, email: String, password: String, options: JsValue) -> Promise {
        let inner = self.inner.clone();
        if inner.email().is_some() {
            return rejected(ClientError::coded(
                "conflict",
                0,
                "already logged in; log out first",
            ));
        }
        // The credentials are checked with a token request first.
        inner.http.set_credentials(&email, &password);
        let checked = inner.http.request("POST", "/token", None);
        let body = js::object(&[]);
        for key in ["contact", "presence", "expires"] {
            let value = js::get(&options, key);
            if !value.is_undefined() {
                js::set(&body, key, &value);
            }
        }
        inner.options.set(body);
        inner
            .shared_tabs
            .set(js::get(&options, "shared").as_bool() != Some(false));
        promise(Box::pin(async move {
            if let Err(e) = checked.await {
                inner.http.clear_credentials();
                return Err(e);
            }
            inner.set_email(Some(email));
            inner.conn.start();
            let started = inner.start_session().await;
            inner.logged_in(started)
        }))
    }

    /// Logs out: removes the login (when this tab owns it), closes the streams and revokes the
    /// bearer tokens they were opened with.
    #[wasm_bindgen(js_name = logOut)]
    pub fn log_out(&self) -> Promise {
        let inner = &self.inner;
        let Some(email) = inner.email() else {
            return Promise::resolve(&JsValue::UNDEFINED);
        };
        let owned = inner.leader.get() || !inner.shared_tabs.get();
        let url = inner.http.login_url();
        inner.end_session();
        // The socket's tokens are revoked: nothing the page held works after it logs out.
        let revoked = inner.conn.stop();
        // The DELETE leaves with the credentials before they are forgotten.
        let removed = match (owned, url) {
            (true, Some(url)) => {
                inner.forget_stored_login(&email);
                Some(inner.http.request("DELETE", &url, None))
            }
            _ => None,
        };
        inner.set_email(None);
        inner.http.clear_credentials();
        promise(Box::pin(async move {
            for revocation in revoked {
                // A token already expired or ended by a password change is fine.
                let _ = revocation.await;
            }
            match removed {
                Some(removed) => removed.await,
                None => Ok(JsValue::UNDEFINED),
            }
        }))
    }

    /// Publishes presence with the login (e.g. `{status: "away"}`).
    #[wasm_bindgen(js_name = setPresence, unchecked_return_type = "Promise<LoginCreated>")]
    pub fn set_presence(&self, presence: JsValue) -> Promise {
        let Some(url) = self.inner.http.login_url() else {
            return rejected(ClientError::not_logged_in());
        };
        js::set(&js::peek(&self.inner.options), "presence", &presence);
        self.rest("PUT", url, Some(js::object(&[("presence", presence)])))
    }

    /// A user's profile (default: mine).
    #[wasm_bindgen(unchecked_return_type = "Promise<User>")]
    pub fn profile(&self, email: Option<String>) -> Promise {
        match email.or_else(|| self.inner.email()) {
            Some(email) => self.rest("GET", js::cat(&["/user/", &email]), None),
            None => rejected(ClientError::not_logged_in()),
        }
    }

    /// The contacts (logins, with presence) of a user.
    #[wasm_bindgen(unchecked_return_type = "Promise<Contact[]>")]
    pub fn contacts(&self, email: String) -> Promise {
        self.rest("GET", js::cat(&["/login/", &email]), None)
    }

    /// Watches an active resource (`/login/{email}`, `/call/{id}`, or a path like `user:EMAIL`
    /// is not accepted: give the path): `callback(event)` gets a `state` event first, then
    /// every change (`added`, `updated`, `removed`, `gone`; `error` if it cannot be watched).
    /// `options.updates`: `"diff"` (default) or `"full"`. Survives reconnects without loss.
    pub fn watch(
        &self,
        path: String,
        callback: Function,
        options: JsValue,
    ) -> std::result::Result<Watch, JsValue> {
        if !path.starts_with('/') {
            return Err(ClientError::invalid(
                "watch a resource path such as /login/alice@example.net",
            ));
        }
        if self.inner.email().is_none() {
            return Err(ClientError::not_logged_in());
        }
        let updates = js::get_str(&options, "updates").unwrap_or_else(|| "diff".into());
        let id = self.inner.conn.watch(&path, &updates, &callback);
        Ok(self.inner.conn.handle(&path, id.into()).unchecked_into())
    }

    /// SENDs `body` to a user (`"alice@example.net"`: all of their logins) or to one login
    /// (`"/login/alice@example.net/2"`).
    #[wasm_bindgen(unchecked_return_type = "Promise<SendReceipt>")]
    pub fn send(&self, to: String, body: JsValue) -> Promise {
        self.rest("SEND", http::target(&to), Some(body))
    }

    /// Withdraws a SEND that has not been delivered yet (`messageId` from its receipt).
    #[wasm_bindgen(unchecked_return_type = "Promise<CancelOutcome>")]
    pub fn cancel(&self, to: String, message_id: String) -> Promise {
        self.rest(
            "CANCEL",
            http::target(&to),
            Some(js::object(&[("id", message_id.into())])),
        )
    }

    /// Invites a user to a call: resolves to an `Invitation` whose state follows the answer.
    #[wasm_bindgen(unchecked_return_type = "Promise<Invitation>")]
    pub fn invite(&self, to: String, call: String) -> Promise {
        let inner = &self.inner;
        let peer = http::peer_of(&to);
        let state = InviteState::new(new_id(), peer, &call, "sending", inner.http.clone());
        inner.outgoing.borrow_mut().push(state.clone());
        let pending = inner.http.send_to(&to, &state.command("invite"));
        let invitation = JsValue::from(Invitation::new(state.clone()));
        Step::new(pending, &state, "ringing", "failed", invitation).promise()
    }

    /// Creates a call: `info` is `{subject?, ...}`.
    #[wasm_bindgen(js_name = createCall, unchecked_return_type = "Promise<CallCreated>")]
    pub fn create_call(&self, info: JsValue) -> Promise {
        let body = if info.is_object() {
            info
        } else {
            js::object(&[])
        };
        self.rest("POST", "/call".into(), Some(body))
    }

    /// A call and its participants.
    #[wasm_bindgen(unchecked_return_type = "Promise<Call>")]
    pub fn call(&self, url: String) -> Promise {
        self.rest("GET", url, None)
    }

    /// Joins a call with this login and a session description (any JSON or string).
    #[wasm_bindgen(js_name = joinCall, unchecked_return_type = "Promise<ParticipantCreated>")]
    pub fn join_call(&self, url: String, session: JsValue) -> Promise {
        promise(Box::pin(self.inner.http.join(&url, &session)))
    }

    /// Replaces my session description in a call (`participant` is its URL).
    #[wasm_bindgen(js_name = updateSession, unchecked_return_type = "Promise<Participant>")]
    pub fn update_session(&self, participant: String, session: JsValue) -> Promise {
        self.rest(
            "PUT",
            participant,
            Some(js::object(&[("session", session)])),
        )
    }

    /// Leaves a call (`participant` is my participant URL).
    #[wasm_bindgen(js_name = leaveCall)]
    pub fn leave_call(&self, participant: String) -> Promise {
        self.rest("DELETE", participant, None)
    }

    /// Ends a call I created.
    #[wasm_bindgen(js_name = endCall)]
    pub fn end_call(&self, url: String) -> Promise {
        self.rest("DELETE", url, None)
    }

    /// Leaves an offline message for a user: `{url?, body?, subject?}`.
    #[wasm_bindgen(js_name = leaveMessage, unchecked_return_type = "Promise<MailMessage>")]
    pub fn leave_message(&self, email: String, message: JsValue) -> Promise {
        self.rest(
            "POST",
            js::cat(&["/user/", &email, "/message"]),
            Some(message),
        )
    }

    /// My offline messages.
    #[wasm_bindgen(unchecked_return_type = "Promise<MailMessage[]>")]
    pub fn messages(&self) -> Promise {
        match self.inner.email() {
            Some(email) => self.rest("GET", js::cat(&["/user/", &email, "/message"]), None),
            None => rejected(ClientError::not_logged_in()),
        }
    }

    /// Deletes one of my offline messages.
    #[wasm_bindgen(js_name = deleteMessage)]
    pub fn delete_message(&self, id: f64) -> Promise {
        match self.inner.email() {
            Some(email) => self.rest(
                "DELETE",
                js::cat(&["/user/", &email, "/message/", &js::digits(id as u64)]),
                None,
            ),
            None => rejected(ClientError::not_logged_in()),
        }
    }

    /// Sends a SIP `SERVICE` carrying the SOAP envelope `body` (XML text) to the SIP URI `uri`
    /// and resolves to the far end's answer: `{outcome: "response" | "fault" |
    /// "not-implemented" | "failed", status, reason, body?, fault?, allow?}`. `options`:
    /// `{transport?: "udp" | "tcp", soap_action?, auth?: {username, password}}`.
    #[wasm_bindgen(unchecked_return_type = "Promise<ServiceResult>")]
    pub fn service(&self, uri: String, body: String, options: JsValue) -> Promise {
        let request = js::copy(&options);
        js::set(&request, "uri", &uri.into());
        js::set(&request, "body", &body.into());
        self.rest("POST", "/service".into(), Some(request))
    }

    /// Serves the SOAP methods of `namespace` to SIP: a `SERVICE sip:{my email}` calling one
    /// reaches `handler({namespace, method, params, from, body})`, whose return value (or the
    /// value its promise resolves to), an object, becomes the SOAP response; what it throws
    /// (an `Error`, with `code: "Client"` when the request was wrong) becomes a SOAP Fault.
    /// Kept across reconnects until `close()`.
    pub fn serve(
        &self,
        namespace: String,
        handler: Function,
    ) -> std::result::Result<Served, JsValue> {
        if self.inner.email().is_none() {
            return Err(ClientError::not_logged_in());
        }
        self.inner.conn.start();
        self.inner.conn.serve(&namespace, handler);
        Ok(self
            .inner
            .conn
            .handle(&namespace, JsValue::UNDEFINED)
            .unchecked_into())
    }

    /// Drops the WebSocket as a network failure would (for tests of reconnection).
    #[wasm_bindgen(js_name = simulateNetworkDrop)]
    pub fn simulate_network_drop(&self) {
        self.inner.conn.drop_socket();
    }
}
