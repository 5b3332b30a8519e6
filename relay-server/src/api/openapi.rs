//! The OpenAPI document served at `/openapi.json`. Schemas are generated from the protocol
//! crate's types (the same ones the handlers use); the operations are the table below, which
//! the end-to-end tests check against the live router (every path's `Allow`, every operation
//! routed), so the document cannot drift from the code.
//!
//! `SEND` and `CANCEL` are not among OpenAPI 3.1's fixed methods; they are described with
//! OpenAPI 3.2's `additionalOperations`.

use restsip_protocol as p;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::Schema;
use serde_json::{json, Map, Value};

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// One documented operation.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Path template, `{name}` for parameters.
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Whether credentials are needed.
    pub auth: bool,
    /// Request body schema.
    request: Option<SchemaFn>,
    /// Success status.
    pub status: u16,
    /// Success body schema.
    response: Option<SchemaFn>,
    /// Whether the response can be an event stream (SSE / NDJSON).
    pub streams: bool,
}

macro_rules! schema {
    ($t:ty) => {
        Some(|g: &mut SchemaGenerator| g.subschema_for::<$t>())
    };
}

const fn op(method: &'static str, path: &'static str, summary: &'static str) -> Operation {
    Operation {
        method,
        path,
        summary,
        auth: true,
        request: None,
        status: 200,
        response: None,
        streams: false,
    }
}

/// Every operation of the API.
pub fn operations() -> Vec<Operation> {
    vec![
        Operation { auth: false, request: schema!(p::CreateUser), status: 201, response: schema!(p::UserCreated), ..op("POST", "/user", "Sign up") },
        Operation { response: schema!(p::User), ..op("GET", "/user/{id}", "A user's profile with the URLs of their login and message resources") },
        Operation { request: schema!(p::UpdateUser), response: schema!(p::User), ..op("PUT", "/user/{id}", "Replace your profile") },
        Operation { request: schema!(p::UpdateUser), response: schema!(p::User), ..op("PATCH", "/user/{id}", "Change fields of your profile") },
        Operation { status: 204, ..op("DELETE", "/user/{id}", "Close your account") },
        Operation { request: schema!(p::NewMailMessage), status: 201, response: schema!(p::MailMessage), ..op("POST", "/user/{id}/message", "Leave an offline message (voice/video mail)") },
        Operation { response: schema!(Vec<p::MailMessage>), ..op("GET", "/user/{id}/message", "Your offline messages") },
        Operation { response: schema!(p::MailMessage), ..op("GET", "/user/{id}/message/{mid}", "One of your offline messages") },
        Operation { status: 204, ..op("DELETE", "/user/{id}/message/{mid}", "Delete one of your offline messages") },
        Operation { response: schema!(crate::location::PresenceRule), ..op("GET", "/user/{id}/presence-rule", "Who may watch your presence (signed-in users by default)") },
        Operation { request: schema!(crate::location::PresenceRule), response: schema!(crate::location::PresenceRule), ..op("PUT", "/user/{id}/presence-rule", "Set who may watch your presence: signed-in users, everyone, or those listed") },
        Operation { response: schema!(p::Token), ..op("POST", "/token", "A short-lived bearer token, for EventSource and WebSocket (?access_token=)") },
        Operation { status: 204, ..op("DELETE", "/token", "Revoke the bearer token this request carries (log out a page)") },
        Operation { request: schema!(p::CreateLogin), status: 201, response: schema!(p::LoginCreated), ..op("POST", "/login/{email}", "Log in: register a contact") },
        Operation { response: schema!(Vec<p::Contact>), streams: true, ..op("GET", "/login/{email}", "A user's contacts and presence; an active resource") },
        Operation { request: schema!(serde_json::Value), response: schema!(p::SendReceipt), ..op("SEND", "/login/{email}", "Deliver a message to every live contact of the user") },
        Operation { request: schema!(p::CancelRequest), response: schema!(p::CancelOutcome), ..op("CANCEL", "/login/{email}", "Withdraw a queued SEND") },
        Operation { response: schema!(p::Contact), streams: true, ..op("GET", "/login/{email}/{id}", "Your contact; as an active resource, what is SENT to it") },
        Operation { request: schema!(p::RefreshLogin), response: schema!(p::LoginCreated), ..op("PUT", "/login/{email}/{id}", "Refresh a login (a bare JSON string is the contact)") },
        Operation { status: 204, ..op("DELETE", "/login/{email}/{id}", "Log out") },
        Operation { request: schema!(serde_json::Value), response: schema!(p::SendReceipt), ..op("SEND", "/login/{email}/{id}", "Deliver a message to one contact") },
        Operation { request: schema!(p::CancelRequest), response: schema!(p::CancelOutcome), ..op("CANCEL", "/login/{email}/{id}", "Withdraw a queued SEND to one contact") },
        Operation { request: schema!(p::CreateCall), status: 201, response: schema!(p::CallCreated), ..op("POST", "/call", "Create a call (conference) context") },
        Operation { response: schema!(p::Call), streams: true, ..op("GET", "/call/{id}", "Subject and participants; an active resource") },
        Operation { request: schema!(p::JoinCall), status: 201, response: schema!(p::ParticipantCreated), ..op("POST", "/call/{id}", "Join the call with one of your logins") },
        Operation { status: 204, ..op("DELETE", "/call/{id}", "End the call (its owner)") },
        Operation { response: schema!(p::Participant), ..op("GET", "/call/{id}/{pid}", "One participant and its session description") },
        Operation { request: schema!(p::UpdateParticipant), response: schema!(p::Participant), ..op("PUT", "/call/{id}/{pid}", "Update your session description") },
        Operation { status: 204, ..op("DELETE", "/call/{id}/{pid}", "Leave the call (or, as its owner, remove a participant)") },
        Operation { request: schema!(p::CreateWebhook), status: 201, response: schema!(p::WebhookCreated), ..op("POST", "/webhook", "Deliver the events of an active resource to a URL by signed HTTP POST (the secret is shown only here)") },
        Operation { response: schema!(Vec<p::Webhook>), ..op("GET", "/webhook", "Your webhooks, with their delivery status") },
        Operation { response: schema!(p::Webhook), ..op("GET", "/webhook/{id}", "One of your webhooks") },
        Operation { status: 204, ..op("DELETE", "/webhook/{id}", "Delete one of your webhooks; what it had queued is dropped") },
        Operation { request: schema!(p::ServiceRequest), response: schema!(p::ServiceResult), ..op("POST", "/service", "Send a SIP SERVICE with a SOAP envelope to a SIP URI; the far end's SOAP response, Fault or refusal") },
        Operation { status: 101, ..op("GET", "/ws", "The multiplexed WebSocket: subscribe, SEND, CANCEL (frames: ClientFrame, ServerFrame)") },
        Operation { response: schema!(Vec<p::IceServer>), ..op("GET", "/ice-servers", "The STUN and TURN servers for your pages' WebRTC connections (RTCIceServer objects; empty when none is configured)") },
        Operation { auth: false, ..op("GET", "/openapi.json", "This document") },
    ]
}

fn operation_object(op: &Operation, gen: &mut SchemaGenerator) -> Value {
    let mut responses = Map::new();
    let mut success = json!({"description": "success"});
    if let Some(schema) = op.response {
        let mut content = json!({"application/json": {"schema": schema(gen)}});
        if op.streams {
            let event = gen.subschema_for::<p::Event>();
            content["text/event-stream"] =
                json!({"schema": {"type": "string"}, "x-event-schema": event});
            content[p::NDJSON] = json!({"schema": event});
        }
        success["content"] = content;
    }
    responses.insert(op.status.to_string(), success);
    let problem = gen.subschema_for::<p::Problem>();
    responses.insert(
        "default".into(),
        json!({"description": "an error", "content": {p::PROBLEM_JSON: {"schema": problem}}}),
    );
    let mut object = json!({"summary": op.summary, "responses": responses});
    let params: Vec<Value> = op
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    if !params.is_empty() {
        object["parameters"] = json!(params);
    }
    if let Some(schema) = op.request {
        object["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": schema(gen)}}});
    }
    if !op.auth {
        object["security"] = json!([]);
    }
    object
}

/// The OpenAPI document.
pub fn document() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut gen = settings.into_generator();
    let mut paths = Map::new();
    for op in operations() {
        let object = operation_object(&op, &mut gen);
        let item = paths.entry(op.path).or_insert_with(|| json!({}));
        match op.method {
            "SEND" | "CANCEL" => {
                item["additionalOperations"][op.method] = object;
            }
            method => item[method.to_ascii_lowercase()] = object,
        }
    }
    json!({
        "openapi": "3.2.0",
        "info": {
            "title": "restsip relay",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A RESTful API to SIP calls, presence and messaging (the article 'REST and SIP'). \
                Active resources stream with Accept: text/event-stream (resumable with Last-Event-ID) or \
                application/x-ndjson; ?updates=full|diff. Behind proxies that drop SEND and CANCEL, POST with \
                X-HTTP-Method-Override: SEND (or CANCEL).",
        },
        "paths": paths,
        "components": {
            "schemas": gen.take_definitions(true),
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer"},
                "access_token": {"type": "apiKey", "in": "query", "name": "access_token"},
            },
        },
        "security": [{"basic": []}, {"bearer": []}, {"access_token": []}],
    })
}
