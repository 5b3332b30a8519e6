//! The client in headless Chromium against a real relay (started by scripts/test-browser.sh,
//! whose address is compiled in as RELAY_URL): every API call, refresh, reconnect-and-resume,
//! tab sharing and errors.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Promise, Reflect};
use restsip_wasm::{Client, IncomingInvite};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const RELAY: &str = match option_env!("RELAY_URL") {
    Some(url) => url,
    None => "http://127.0.0.1:18080",
};

/// The relay's SIP address (UDP and TCP), for SERVICE requests routed through it.
const RELAY_SIP: &str = match option_env!("RELAY_SIP") {
    Some(addr) => addr,
    None => "127.0.0.1:5060",
};

fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &key.into()).unwrap()
}

fn obj(json: &str) -> JsValue {
    js_sys::JSON::parse(json).unwrap()
}

async fn sleep(ms: i32) {
    let p = Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .unwrap();
    });
    JsFuture::from(p).await.unwrap();
}

async fn ok(p: Promise) -> JsValue {
    match JsFuture::from(p).await {
        Ok(v) => v,
        Err(e) => panic!(
            "promise rejected: {:?} {:?}",
            get(&e, "code"),
            get(&e, "message")
        ),
    }
}

/// The `code` of the error a promise rejects with.
async fn code_of(p: Promise) -> String {
    match JsFuture::from(p).await {
        Ok(v) => panic!("expected a rejection, got {v:?}"),
        Err(e) => {
            assert!(e.is_instance_of::<js_sys::Error>(), "an Error object");
            assert_eq!(get(&e, "name"), "RestsipError");
            get(&e, "code").as_string().unwrap()
        }
    }
}

/// Records what a callback receives.
#[derive(Clone, Default)]
struct Recorder(Rc<RefCell<Vec<JsValue>>>);

impl Recorder {
    fn callback(&self) -> Function {
        let seen = self.0.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |v: JsValue| seen.borrow_mut().push(v))
            .into_js_value()
            .unchecked_into()
    }

    fn all(&self) -> Vec<JsValue> {
        self.0.borrow().clone()
    }

    /// Waits until `pred` holds for what was recorded (10 s at most).
    async fn until(&self, what: &str, pred: impl Fn(&[JsValue]) -> bool) {
        for _ in 0..200 {
            if pred(&self.0.borrow()) {
                return;
            }
            sleep(50).await;
        }
        panic!("timed out waiting for {what}; got {:?}", self.all());
    }
}

fn unique(name: &str) -> String {
    format!(
        "{name}-{}@example.net",
        (js_sys::Math::random() * 1e12) as u64
    )
}

/// A signed-up, logged-in client that does not share its login with other tabs.
async fn user(name: &str) -> (Client, String) {
    let email = unique(name);
    let client = Client::new(Some(RELAY.into()));
    ok(client.sign_up(email.clone(), "pw".into(), obj(r#"{"name": "Test"}"#))).await;
    ok(client.log_in(email.clone(), "pw".into(), obj(r#"{"shared": false}"#))).await;
    (client, email)
}

/// A plain REST call as `email` (password "pw"), for what the client API deliberately cannot do
/// (act behind its back). Returns the status.
async fn rest_as(email: &str, method: &str, path: &str, body: Option<&str>) -> u16 {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    let headers = web_sys::Headers::new().unwrap();
    let credentials = web_sys::window()
        .unwrap()
        .btoa(&format!("{email}:pw"))
        .unwrap();
    headers
        .set("authorization", &format!("Basic {credentials}"))
        .unwrap();
    if let Some(body) = body {
        headers.set("content-type", "application/json").unwrap();
        init.set_body(&body.into());
    }
    init.set_headers(&headers);
    let request =
        web_sys::Request::new_with_str_and_init(&format!("{RELAY}{path}"), &init).unwrap();
    let response = JsFuture::from(web_sys::window().unwrap().fetch_with_request(&request))
        .await
        .unwrap();
    response.unchecked_into::<web_sys::Response>().status()
}

/// The status of a GET of `path` with `?access_token=token` and no other credentials.
async fn status_with_token(path: &str, token: &str) -> u16 {
    let url = format!("{RELAY}{path}?access_token={token}");
    let response = JsFuture::from(web_sys::window().unwrap().fetch_with_str(&url))
        .await
        .unwrap();
    response.unchecked_into::<web_sys::Response>().status()
}

/// The `access_token`s of every WebSocket the page has opened since [`record_sockets`].
fn socket_tokens() -> Vec<String> {
    let urls = Reflect::get(&js_sys::global(), &"__restsipSocketUrls".into()).unwrap();
    js_sys::Array::from(&urls)
        .iter()
        .filter_map(|u| u.as_string())
        .filter_map(|u| u.split_once("access_token=").map(|(_, t)| t.to_owned()))
        .collect()
}

/// Records the URL of every WebSocket the page opens from now on (a test's view of what the
/// client does on the wire).
fn record_sockets() {
    Function::new_no_args(
        "if (!globalThis.__restsipSocketUrls) { \
           const W = globalThis.WebSocket; globalThis.__restsipSocketUrls = []; \
           globalThis.WebSocket = class extends W { \
             constructor(u, p) { super(u, p); globalThis.__restsipSocketUrls.push(String(u)); } }; }",
    )
    .call0(&JsValue::NULL)
    .unwrap();
}

async fn contacts(client: &Client, email: &str) -> u32 {
    js_sys::Array::from(&ok(client.contacts(email.into())).await).length()
}

#[wasm_bindgen_test]
async fn sign_up_log_in_and_out() {
    let email = unique("ann");
    let client = Client::new(Some(RELAY.into()));
    let created = ok(client.sign_up(email.clone(), "pw".into(), JsValue::UNDEFINED)).await;
    assert_eq!(get(&created, "id"), email.as_str());
    let login = ok(client.log_in(
        email.clone(),
        "pw".into(),
        obj(r#"{"shared": false, "presence": {"status": "here"}}"#),
    ))
    .await;
    assert!(get(&login, "url")
        .as_string()
        .unwrap()
        .starts_with(&format!("/login/{email}/")));
    assert_eq!(client.email().as_deref(), Some(email.as_str()));
    let list = ok(client.contacts(email.clone())).await;
    assert_eq!(
        get(
            &get(&js_sys::Array::from(&list).get(0), "presence"),
            "status"
        ),
        "here"
    );
    let profile = ok(client.profile(None)).await;
    assert_eq!(
        get(&get(&profile, "links"), "login"),
        format!("/login/{email}").as_str()
    );
    ok(client.log_out()).await;
    assert_eq!(client.email(), None);
    let other = user("observer").await.0;
    assert_eq!(
        contacts(&other, &email).await,
        0,
        "logging out removes the login"
    );
}

#[wasm_bindgen_test]
async fn errors_carry_stable_codes() {
    let client = Client::new(Some(RELAY.into()));
    let email = unique("err");
    ok(client.sign_up(email.clone(), "pw".into(), JsValue::UNDEFINED)).await;
    assert_eq!(
        code_of(client.sign_up(email.clone(), "pw".into(), JsValue::UNDEFINED)).await,
        "conflict"
    );
    assert_eq!(
        code_of(client.log_in(email.clone(), "wrong".into(), JsValue::UNDEFINED)).await,
        "unauthorized"
    );
    assert_eq!(code_of(client.messages()).await, "not-logged-in");
    let (me, _) = user("err2").await;
    assert_eq!(code_of(me.contacts(unique("ghost"))).await, "not-found");
    assert_eq!(
        code_of(me.send(email.clone(), obj("{}"))).await,
        "conflict",
        "not logged in"
    );
    assert_eq!(
        code_of(me.send(unique("ghost"), obj("{}"))).await,
        "not-found"
    );
    let nowhere = Client::new(Some("http://127.0.0.1:9".into()));
    assert_eq!(
        code_of(nowhere.sign_up(unique("x"), "pw".into(), JsValue::UNDEFINED)).await,
        "network"
    );
    assert!(me
        .watch(
            "login/x".into(),
            Function::new_no_args(""),
            JsValue::UNDEFINED
        )
        .is_err());
}

#[wasm_bindgen_test]
async fn messages_reach_the_recipient_with_the_sender_named() {
    let (alice, alice_email) = user("alice").await;
    let (bob, bob_email) = user("bob").await;
    let inbox = Recorder::default();
    bob.on("message", inbox.callback());
    let receipt = ok(alice.send(
        bob_email.clone(),
        obj(r#"{"command": "im", "text": "hello"}"#),
    ))
    .await;
    assert!(get(&receipt, "id").is_string());
    inbox.until("the message", |m| !m.is_empty()).await;
    let message = &inbox.all()[0];
    assert_eq!(get(message, "from"), alice_email.as_str());
    assert_eq!(get(&get(message, "body"), "text"), "hello");
}

#[wasm_bindgen_test]
async fn invite_accept_reject_and_cancel() {
    let (alice, alice_email) = user("host").await;
    let (bob, bob_email) = user("guest").await;
    let invites = Recorder::default();
    bob.on("invite", invites.callback());
    let call = ok(alice.create_call(obj(r#"{"subject": "standup"}"#))).await;
    let call_url = get(&call, "url").as_string().unwrap();
    ok(alice.join_call(call_url.clone(), "rtsp://alice".into())).await;

    // accept
    let invitation: restsip_wasm::Invitation = {
        let v = ok(alice.invite(bob_email.clone(), call_url.clone())).await;
        wasm_bindgen::convert::TryFromJsValue::try_from_js_value(v).unwrap()
    };
    assert_eq!(invitation.state(), "ringing");
    let states = Recorder::default();
    invitation.on_state(states.callback());
    invites.until("an invite", |i| i.len() == 1).await;
    let incoming: IncomingInvite =
        wasm_bindgen::convert::TryFromJsValue::try_from_js_value(invites.all()[0].clone()).unwrap();
    assert_eq!(incoming.from(), alice_email);
    assert_eq!(incoming.call(), call_url);
    ok(incoming.accept("rtsp://bob".into())).await;
    states
        .until("accepted", |s| s.iter().any(|v| v == "accepted"))
        .await;
    assert_eq!(invitation.state(), "accepted");
    let info = ok(alice.call(call_url.clone())).await;
    assert_eq!(js_sys::Array::from(&get(&info, "children")).length(), 2);

    // reject, with a reason
    let second: restsip_wasm::Invitation =
        wasm_bindgen::convert::TryFromJsValue::try_from_js_value(
            ok(alice.invite(bob_email.clone(), call_url.clone())).await,
        )
        .unwrap();
    invites.until("a second invite", |i| i.len() == 2).await;
    let incoming: IncomingInvite =
        wasm_bindgen::convert::TryFromJsValue::try_from_js_value(invites.all()[1].clone()).unwrap();
    ok(incoming.reject("busy".into())).await;
    for _ in 0..100 {
        if second.state() == "rejected" {
            break;
        }
        sleep(50).await;
    }
    assert_eq!(second.state(), "rejected");
    assert_eq!(second.reason(), "busy");

    // cancel
    let third: restsip_wasm::Invitation = wasm_bindgen::convert::TryFromJsValue::try_from_js_value(
        ok(alice.invite(bob_email.clone(), call_url.clone())).await,
    )
    .unwrap();
    invites.until("a third invite", |i| i.len() == 3).await;
    let incoming: IncomingInvite =
        wasm_bindgen::convert::TryFromJsValue::try_from_js_value(invites.all()[2].clone()).unwrap();
    ok(third.cancel()).await;
    for _ in 0..100 {
        if incoming.state() == "cancelled" {
            break;
        }
        sleep(50).await;
    }
    assert_eq!(incoming.state(), "cancelled");
    assert_eq!(
        code_of(incoming.accept(JsValue::UNDEFINED)).await,
        "conflict"
    );
}

/// Calls with media as far as they go without a microphone (the page tests in
/// tests/browser/media.test.mjs make real ones with fake devices): an invitation says whether
/// it carries an offer, only one that does can be answered, and dialling needs a login and a
/// microphone.
#[wasm_bindgen_test]
async fn media_invitations_and_dialling_without_a_microphone() {
    let (alice, _) = user("caller").await;
    let (bob, bob_email) = user("callee").await;
    let invites = Recorder::default();
    bob.on("invite", invites.callback());
    let call = ok(alice.create_call(obj("{}"))).await;
    let call_url = get(&call, "url").as_string().unwrap();

    // A signalling-only invitation: no media, so no answer.
    ok(alice.invite(bob_email.clone(), call_url.clone())).await;
    invites.until("an invite", |i| i.len() == 1).await;
    let plain: IncomingInvite =
        wasm_bindgen::convert::TryFromJsValue::try_from_js_value(invites.all()[0].clone()).unwrap();
    assert!(!plain.media());
    assert_eq!(
        code_of(plain.answer(JsValue::UNDEFINED)).await,
        "invalid-argument"
    );

    // An invitation with an offer (as a page's dial or a phone sends it) is a media call.
    let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
    let body = js_sys::Object::new();
    Reflect::set(&body, &"command".into(), &"invite".into()).unwrap();
    Reflect::set(&body, &"sdp".into(), &offer.into()).unwrap();
    Reflect::set(&body, &"url".into(), &call_url.clone().into()).unwrap();
    Reflect::set(&body, &"id".into(), &7.into()).unwrap();
    ok(alice.send(bob_email.clone(), body.into())).await;
    invites.until("a media invite", |i| i.len() == 2).await;
    let media: IncomingInvite =
        wasm_bindgen::convert::TryFromJsValue::try_from_js_value(invites.all()[1].clone()).unwrap();
    assert!(media.media());

    // Dialling needs a login, then a microphone (this browser has none to give).
    let nobody = Client::new(Some(RELAY.into()));
    assert_eq!(
        code_of(nobody.dial(bob_email.clone(), obj("{}"))).await,
        "not-logged-in"
    );
    let refused = code_of(alice.dial(bob_email, obj(r#"{"audio": true}"#))).await;
    assert!(refused.starts_with("media-"), "{refused}");
}

#[wasm_bindgen_test]
async fn watching_presence_and_call_members() {
    let (alice, _) = user("watcher").await;
    let bob_email = unique("watched");
    let bob = Client::new(Some(RELAY.into()));
    ok(bob.sign_up(bob_email.clone(), "pw".into(), JsValue::UNDEFINED)).await;
    let presence = Recorder::default();
    let watch = alice
        .watch(
            format!("/login/{bob_email}"),
            presence.callback(),
            JsValue::UNDEFINED,
        )
        .unwrap();
    presence.until("the initial state", |e| e.len() == 1).await;
    assert_eq!(get(&presence.all()[0], "kind"), "state");
    ok(bob.log_in(bob_email.clone(), "pw".into(), obj(r#"{"shared": false}"#))).await;
    presence
        .until("bob coming online", |e| {
            e.iter().any(|v| get(v, "kind") == "added")
        })
        .await;
    ok(bob.set_presence(obj(r#"{"status": "away"}"#))).await;
    presence
        .until("bob's presence", |e| {
            e.iter()
                .any(|v| get(&get(v, "data"), "presence").is_object())
        })
        .await;
    ok(bob.log_out()).await;
    presence
        .until("bob going offline", |e| {
            e.iter().any(|v| get(v, "kind") == "removed")
        })
        .await;
    watch.close();

    let call = ok(alice.create_call(JsValue::UNDEFINED)).await;
    let url = get(&call, "url").as_string().unwrap();
    let members = Recorder::default();
    let _w = alice
        .watch(
            url.clone(),
            members.callback(),
            obj(r#"{"updates": "full"}"#),
        )
        .unwrap();
    members.until("the call state", |e| !e.is_empty()).await;
    let joined = ok(alice.join_call(url.clone(), obj(r#"{"sdp": "v=0"}"#))).await;
    members
        .until("a member", |e| {
            e.iter()
                .any(|v| js_sys::Array::from(&get(&get(v, "data"), "children")).length() == 1)
        })
        .await;
    ok(alice.leave_call(get(&joined, "url").as_string().unwrap())).await;
    members
        .until("no members", |e| {
            e.len() >= 3
                && js_sys::Array::from(&get(&get(e.last().unwrap(), "data"), "children")).length()
                    == 0
        })
        .await;
}

#[wasm_bindgen_test]
async fn offline_messages_and_cancelling_a_queued_send() {
    let (alice, _) = user("mailer").await;
    let (bob, bob_email) = user("mailbox").await;
    ok(alice.leave_message(
        bob_email.clone(),
        obj(r#"{"url": "rtsp://vm/1", "subject": "missed"}"#),
    ))
    .await;
    let list = ok(bob.messages()).await;
    let first = js_sys::Array::from(&list).get(0);
    assert_eq!(get(&first, "url"), "rtsp://vm/1");
    ok(bob.delete_message(get(&first, "id").as_f64().unwrap())).await;
    assert_eq!(js_sys::Array::from(&ok(bob.messages()).await).length(), 0);

    // A SEND to a login that has no stream stays queued and can be withdrawn.
    let carol_email = unique("carol");
    let carol = Client::new(Some(RELAY.into()));
    ok(carol.sign_up(carol_email.clone(), "pw".into(), JsValue::UNDEFINED)).await;
    assert_eq!(
        rest_as(
            &carol_email,
            "POST",
            &format!("/login/{carol_email}"),
            Some("{}")
        )
        .await,
        201
    );
    let receipt = ok(alice.send(carol_email.clone(), obj(r#"{"command": "im"}"#))).await;
    assert_eq!(
        get(
            &js_sys::Array::from(&get(&receipt, "deliveries")).get(0),
            "status"
        ),
        "queued"
    );
    let outcome = ok(alice.cancel(
        carol_email.clone(),
        get(&receipt, "id").as_string().unwrap(),
    ))
    .await;
    assert_eq!(
        get(
            &js_sys::Array::from(&get(&outcome, "deliveries")).get(0),
            "status"
        ),
        "cancelled"
    );
}

#[wasm_bindgen_test]
async fn a_dropped_connection_reconnects_and_loses_no_message() {
    let (alice, _) = user("sender").await;
    let (bob, bob_email) = user("dropper").await;
    let inbox = Recorder::default();
    let connection = Recorder::default();
    bob.on("message", inbox.callback());
    bob.on("connection", connection.callback());
    ok(alice.send(bob_email.clone(), obj(r#"{"n": 0}"#))).await;
    inbox.until("the first message", |m| m.len() == 1).await;
    bob.simulate_network_drop();
    for n in 1..=3 {
        ok(alice.send(bob_email.clone(), obj(&format!(r#"{{"n": {n}}}"#)))).await;
    }
    inbox
        .until("all messages after the reconnect", |m| m.len() >= 4)
        .await;
    sleep(300).await;
    let got: Vec<f64> = inbox
        .all()
        .iter()
        .map(|m| get(&get(m, "body"), "n").as_f64().unwrap())
        .collect();
    assert_eq!(got, vec![0.0, 1.0, 2.0, 3.0], "each message once, in order");
    let states: Vec<String> = connection
        .all()
        .iter()
        .map(|e| get(e, "state").as_string().unwrap())
        .collect();
    assert!(
        states.contains(&"reconnecting".to_string())
            && states.last().map(String::as_str) == Some("open"),
        "{states:?}"
    );
}

#[wasm_bindgen_test]
async fn the_login_is_refreshed_and_recreated_when_lost() {
    let email = unique("keeper");
    let client = Client::new(Some(RELAY.into()));
    ok(client.sign_up(email.clone(), "pw".into(), JsValue::UNDEFINED)).await;
    let events = Recorder::default();
    client.on("login", events.callback());
    // The test relay grants lifetimes down to 1 s: a 2 s login must be refreshed to survive.
    ok(client.log_in(
        email.clone(),
        "pw".into(),
        obj(r#"{"shared": false, "expires": 2}"#),
    ))
    .await;
    let first = client.login_url().unwrap();
    sleep(4500).await;
    assert_eq!(
        contacts(&client, &email).await,
        1,
        "refreshed before it expired"
    );
    assert_eq!(client.login_url().unwrap(), first);
    // Someone removes the login: the client notices and logs in again.
    assert_eq!(rest_as(&email, "DELETE", &first, None).await, 204);
    events
        .until("the login lost and made again", |e| {
            e.iter().any(|v| get(v, "state") == "lost")
        })
        .await;
    for _ in 0..100 {
        if client.login_url().is_some_and(|u| u != first) {
            break;
        }
        sleep(50).await;
    }
    assert_ne!(client.login_url().unwrap(), first);
    assert_eq!(contacts(&client, &email).await, 1);
}

#[wasm_bindgen_test]
async fn tabs_of_one_origin_share_one_login() {
    let email = unique("tabs");
    let first = Client::new(Some(RELAY.into()));
    ok(first.sign_up(email.clone(), "pw".into(), JsValue::UNDEFINED)).await;
    let a = ok(first.log_in(email.clone(), "pw".into(), JsValue::UNDEFINED)).await;
    let second = Client::new(Some(RELAY.into()));
    let b = ok(second.log_in(email.clone(), "pw".into(), JsValue::UNDEFINED)).await;
    assert_eq!(get(&a, "url"), get(&b, "url"), "one login");
    assert_eq!(get(&a, "owner"), true);
    assert_eq!(get(&b, "owner"), false);
    assert_eq!(contacts(&first, &email).await, 1);
    let (sender, _) = user("tabsender").await;
    let (in_first, in_second) = (Recorder::default(), Recorder::default());
    first.on("message", in_first.callback());
    second.on("message", in_second.callback());
    ok(sender.send(email.clone(), obj(r#"{"text": "to both tabs"}"#))).await;
    in_first.until("the owner tab", |m| m.len() == 1).await;
    in_second.until("the other tab", |m| m.len() == 1).await;
    // The owner closes: the other tab takes the login over and keeps receiving.
    ok(first.log_out()).await;
    sleep(500).await;
    ok(sender.send(email.clone(), obj(r#"{"text": "after takeover"}"#))).await;
    in_second
        .until("a message after the takeover", |m| m.len() == 2)
        .await;
    assert_eq!(contacts(&sender, &email).await, 1);
}

/// A SOAP envelope calling `method` of urn:example:calc.
fn calc(method: &str, params: &str) -> String {
    format!(
        "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\"><SOAP-ENV:Body>\
         <m:{method} xmlns:m=\"urn:example:calc\">{params}</m:{method}></SOAP-ENV:Body></SOAP-ENV:Envelope>"
    )
}

#[wasm_bindgen_test]
async fn a_page_serves_soap_to_sip_and_another_calls_it() {
    let (alice, alice_email) = user("soap-alice").await;
    let (bob, bob_email) = user("soap-bob").await;
    // Alice's page serves urn:example:calc: Add returns the sum (a promise, to show both
    // kinds of answer); b = 0 throws a Client fault.
    let handler = Function::new_with_args(
        "request",
        "if (request.method !== 'Add') throw new Error('no such method');\
         const a = Number(request.params.a), b = Number(request.params.b);\
         if (b === 0) { const e = new Error('b must not be 0'); e.code = 'Client'; throw e; }\
         return Promise.resolve({ sum: a + b, from: request.from });",
    );
    let served = alice.serve("urn:example:calc".into(), handler).unwrap();
    assert_eq!(served.namespace(), "urn:example:calc");
    sleep(300).await;
    // Bob's page sends a SIP SERVICE to alice through the relay (an outbound proxy).
    let options = obj(&format!(r#"{{"proxy": "sip:{RELAY_SIP}"}}"#));
    let uri = format!("sip:{alice_email}");
    let answer = ok(bob.service(
        uri.clone(),
        calc("Add", "<a>2</a><b>40</b>"),
        options.clone(),
    ))
    .await;
    assert_eq!(get(&answer, "outcome"), "response");
    assert_eq!(get(&answer, "status"), 200);
    let body = get(&answer, "body").as_string().unwrap();
    assert!(body.contains("<sum>42</sum>"), "{body}");
    assert!(
        body.contains(&format!("<from>{bob_email}</from>")),
        "{body}"
    );

    let answer = ok(bob.service(
        uri.clone(),
        calc("Add", "<a>2</a><b>0</b>"),
        options.clone(),
    ))
    .await;
    assert_eq!(get(&answer, "outcome"), "fault");
    assert_eq!(get(&answer, "status"), 500);
    let fault = get(&answer, "fault");
    assert_eq!(get(&fault, "code"), "SOAP-ENV:Client");
    assert_eq!(get(&fault, "string"), "b must not be 0");

    served.close();
    sleep(300).await;
    let answer = ok(bob.service(uri, calc("Add", "<a>1</a><b>1</b>"), options)).await;
    assert_eq!(get(&answer, "outcome"), "not-implemented");
    assert_eq!(get(&answer, "status"), 501);
    assert_eq!(
        code_of(bob.service("mailto:x@y".into(), calc("Add", ""), JsValue::UNDEFINED)).await,
        "unprocessable"
    );
}

#[wasm_bindgen_test]
async fn logging_out_revokes_the_tokens_the_page_held() {
    record_sockets();
    let (client, email) = user("revoker").await;
    // The socket opens with a token of this user (only its owner reads its mail).
    let mail = format!("/user/{email}/message");
    let mut mine = Vec::new();
    for _ in 0..100 {
        for token in socket_tokens() {
            if !mine.contains(&token) && status_with_token(&mail, &token).await == 200 {
                mine.push(token);
            }
        }
        if !mine.is_empty() {
            break;
        }
        sleep(50).await;
    }
    assert!(
        !mine.is_empty(),
        "the socket opened with a token of {email}"
    );
    ok(client.log_out()).await;
    for token in &mine {
        assert_eq!(
            status_with_token(&mail, token).await,
            401,
            "a token of the page works after logOut"
        );
    }
}
