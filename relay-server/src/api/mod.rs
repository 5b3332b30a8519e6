//! The REST API: the article's resources as an axum `Router`, with CORS for pages on other
//! origins, the method-override fallback for proxies that drop SEND and CANCEL, and
//! problem+json for every error, including the ones axum and the static file service produce.

mod auth;
mod body;
mod call;
mod error;
mod gate;
mod lean;
pub(crate) mod listener;
mod login;
pub mod openapi;
pub mod origins;
mod presence;
mod service;
mod stream;
mod user;
mod webhook;
mod write_through;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderName, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use restsip_protocol::METHOD_OVERRIDE_HEADER;
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;

use crate::auth::Auth;
use crate::bus::Bus;
use crate::calls::Calls;
use crate::events::Resources;
use crate::inbox::Inbox;
use crate::limits::Limits;
use crate::location::Location;
use crate::store::Store;
use crate::webhooks::Webhooks;

pub(crate) use listener::{serve, LimitedListener};
use stream::StreamCounter;

/// What every handler can reach: the [`Services`] behind one `Arc`, so the clone every `State`
/// extractor makes is one count, not one per service handle. Changed (before the relay serves)
/// through `DerefMut`, which copies them if they are shared.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

impl std::ops::DerefMut for AppState {
    fn deref_mut(&mut self) -> &mut Services {
        Arc::make_mut(&mut self.0)
    }
}

/// The services and settings handlers use.
#[derive(Clone)]
pub struct Services {
    /// Durable state.
    pub(crate) store: Arc<dyn Store>,
    /// Event bus.
    pub(crate) bus: Bus,
    /// Credentials and tokens.
    pub(crate) auth: Auth,
    /// Logins.
    pub(crate) location: Location,
    /// Calls.
    pub(crate) calls: Calls,
    /// SEND and CANCEL.
    pub(crate) inbox: Inbox,
    /// Webhooks.
    pub(crate) webhooks: Webhooks,
    /// Outgoing SERVICE requests; None when SIP is off.
    pub(crate) service_out: Option<crate::sipapp::service::outbound::ServiceSender>,
    /// Web clients serving SOAP namespaces (over the WebSocket).
    pub(crate) soap_web: crate::soap::web::WebServers,
    /// Limits in force.
    pub(crate) limits: Arc<Limits>,
    /// Open streams per user.
    pub(crate) streams: StreamCounter,
    /// Turns true when the relay shuts down; streams end then.
    pub(crate) closing: watch::Receiver<bool>,
    /// The STUN and TURN servers pages get (`GET /ice-servers`).
    pub(crate) ice_servers: Arc<Vec<restsip_protocol::IceServer>>,
    /// Where users' targets (webhooks, `POST /service`) may be.
    pub(crate) egress: crate::egress::Egress,
    /// The page origins allowed to use the API from a browser.
    pub(crate) origins: Arc<origins::Origins>,
    /// The relays of the cluster (this one's name, those gone).
    pub(crate) members: crate::members::Members,
}

impl AppState {
    /// Wires the services together.
    pub fn new(
        store: Arc<dyn Store>,
        bus: Bus,
        auth: Auth,
        limits: Limits,
        closing: watch::Receiver<bool>,
        foreign: Option<Arc<dyn crate::location::Foreign>>,
    ) -> Self {
        let limits = Arc::new(limits);
        let calls = Calls::new(store.clone(), bus.clone());
        let location = Location::new(
            store.clone(),
            bus.clone(),
            calls.clone(),
            limits.clone(),
            foreign,
        );
        let inbox = Inbox::new(store.clone(), bus.clone(), limits.clone(), location.clone());
        let resources = Resources {
            bus: bus.clone(),
            location: location.clone(),
            calls: calls.clone(),
            inbox: inbox.clone(),
        };
        let egress = crate::egress::Egress::default();
        let webhooks = Webhooks::new(
            store.clone(),
            resources,
            limits.clone(),
            closing.clone(),
            egress,
        );
        Self(Arc::new(Services {
            streams: StreamCounter::new(limits.max_streams_per_user),
            store,
            bus,
            auth,
            location,
            calls,
            inbox,
            webhooks,
            service_out: None,
            soap_web: Default::default(),
            limits,
            closing,
            ice_servers: Arc::default(),
            egress,
            origins: Arc::default(),
            members: crate::members::Members::default(),
        }))
    }

    /// Names this relay's node in its cluster.
    pub fn set_members(&mut self, members: crate::members::Members) {
        self.members = members;
    }

    /// Sets where users' targets may be (before the relay serves: webhooks are rebuilt).
    pub fn set_egress(&mut self, egress: crate::egress::Egress) {
        self.egress = egress;
        self.webhooks = Webhooks::new(
            self.store.clone(),
            self.resources(),
            self.limits.clone(),
            self.closing.clone(),
            egress,
        );
    }

    /// Sets the page origins allowed to use the API from a browser.
    pub fn set_origins(&mut self, origins: origins::Origins) {
        self.origins = Arc::new(origins);
    }

    /// Hands `servers` to pages at `GET /ice-servers`.
    pub fn set_ice_servers(&mut self, servers: Vec<restsip_protocol::IceServer>) {
        self.ice_servers = Arc::new(servers);
    }

    /// What event sources read.
    pub(crate) fn resources(&self) -> Resources {
        Resources {
            bus: self.bus.clone(),
            location: self.location.clone(),
            calls: self.calls.clone(),
            inbox: self.inbox.clone(),
        }
    }

    /// The location service (shared with the SIP side).
    pub fn location(&self) -> &Location {
        &self.location
    }
}

/// `GET /ice-servers`: the STUN and TURN servers for a signed-in page's WebRTC connections,
/// as `RTCIceServer` objects (an empty list when none is configured).
async fn ice_servers(
    axum::extract::State(state): axum::extract::State<AppState>,
    _caller: auth::Caller,
) -> Json<Vec<restsip_protocol::IceServer>> {
    Json(state.ice_servers.as_ref().clone())
}

/// The methods the relay adds to HTTP's.
fn extension_methods() -> [Method; 2] {
    [
        Method::from_bytes(b"SEND").unwrap_or(Method::POST),
        Method::from_bytes(b"CANCEL").unwrap_or(Method::POST),
    ]
}

/// The API router; `www` is served at `/` when given.
pub fn app(state: AppState, www: Option<&std::path::Path>) -> Router {
    let [send, cancel] = extension_methods();
    let allowed = state.origins.clone();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, parts| {
            allowed.allows(origin, origins::host_of(&parts.headers, &parts.uri))
        }))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            send,
            cancel,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static(METHOD_OVERRIDE_HEADER),
        ])
        .expose_headers([header::LOCATION, header::ALLOW, header::WWW_AUTHENTICATE])
        .max_age(Duration::from_secs(3600));
    let body_limit = state.limits.max_body_bytes;
    let router = Router::new()
        .route("/user", post(user::user_create))
        .route(
            "/user/{id}",
            get(user::user_get)
                .put(user::user_replace)
                .patch(user::user_patch)
                .delete(user::user_delete),
        )
        .route(
            "/user/{id}/message",
            post(user::message_create).get(user::message_list),
        )
        .route(
            "/user/{id}/message/{mid}",
            get(user::message_get).delete(user::message_delete),
        )
        .route(
            "/user/{id}/presence-rule",
            get(presence::rule_get).put(presence::rule_put),
        )
        .route(
            "/token",
            post(auth::token_create).delete(auth::token_delete),
        )
        .route(
            "/login/{email}",
            get(login::login_list)
                .post(login::login_create)
                .fallback(login::login_extension),
        )
        .route(
            "/login/{email}/{id}",
            get(login::contact_get)
                .put(login::contact_refresh)
                .delete(login::contact_delete)
                .fallback(login::contact_extension),
        )
        .route("/call", post(call::call_create))
        .route(
            "/call/{id}",
            get(call::call_get)
                .post(call::call_join)
                .delete(call::call_delete),
        )
        .route(
            "/call/{id}/{pid}",
            get(call::participant_get)
                .put(call::participant_update)
                .delete(call::participant_delete),
        )
        .route(
            "/webhook",
            get(webhook::webhook_list).post(webhook::webhook_create),
        )
        .route(
            "/webhook/{id}",
            get(webhook::webhook_get).delete(webhook::webhook_delete),
        )
        .route("/service", post(service::service_send))
        .route("/ws", get(ws::ws_upgrade))
        .route("/ice-servers", get(ice_servers))
        .route("/openapi.json", get(|| async { Json(openapi::document()) }));
    let router = match www {
        Some(dir) => router.fallback_service(ServeDir::new(dir)),
        None => router.fallback(|| async { StatusCode::NOT_FOUND }),
    };
    // One stack in one `layer` call, outermost first: each call of `Router::layer` boxes its
    // layers again around every route, and a request pays for every box (README,
    // "Benchmarks").
    let layers = tower::ServiceBuilder::new()
        .layer(cors)
        .layer(gate::Gate::new(state.clone()))
        .layer(DefaultBodyLimit::max(body_limit))
        .map_response(IntoResponse::into_response)
        // A declared Content-Length over the limit is refused at once (413), before any body
        // is awaited; a body without one is cut at the limit as it arrives.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(body_limit));
    router.layer(layers).with_state(state)
}

/// Applies `X-HTTP-Method-Override` on POST, before routing: the fallback for clients whose
/// proxies drop SEND and CANCEL (or PUT, PATCH, DELETE).
pub fn override_method(mut req: Request) -> Request {
    if req.method() == Method::POST {
        let wanted = req
            .headers()
            .get(METHOD_OVERRIDE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_uppercase());
        if let Some(method) = wanted.and_then(|m| match m.as_str() {
            "SEND" | "CANCEL" | "PUT" | "PATCH" | "DELETE" => Method::from_bytes(m.as_bytes()).ok(),
            _ => None,
        }) {
            *req.method_mut() = method;
        }
    }
    req
}

/// What a path segment keeps unescaped when an email in it is rewritten.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'@')
    .remove(b'.')
    .remove(b'-')
    .remove(b'_')
    .remove(b'+')
    .remove(b'~');

/// Puts the email in `/user/{email}...` and `/login/{email}...` in its canonical form before
/// routing (one address, one account: `/login/B@EXAMPLE.NET.` is `/login/b@example.net`), so
/// every handler, stream and authorization check sees one spelling.
pub fn canonical_path(mut req: Request) -> Request {
    let path = req.uri().path();
    let Some((prefix, rest)) = ["/user/", "/login/"]
        .iter()
        .find_map(|p| path.strip_prefix(p).map(|rest| (*p, rest)))
    else {
        return req;
    };
    let (segment, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Ok(decoded) = percent_encoding::percent_decode_str(segment).decode_utf8() else {
        return req;
    };
    let canonical = restsip_protocol::normalize_email(&decoded);
    if canonical == decoded {
        return req;
    }
    let mut rewritten = format!(
        "{prefix}{}{tail}",
        percent_encoding::utf8_percent_encode(&canonical, SEGMENT)
    );
    if let Some(query) = req.uri().query() {
        rewritten.push('?');
        rewritten.push_str(query);
    }
    if let Ok(uri) = rewritten.parse() {
        *req.uri_mut() = uri;
    }
    req
}
