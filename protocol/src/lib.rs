//! Wire types of the restsip REST API: the JSON bodies the relay accepts and returns, the events
//! its active resources stream and the WebSocket frames. Serde only, so it builds for wasm32 and
//! the client's typings come from the same definitions as the server's.
#![warn(missing_docs)]

pub mod address;
mod call;
mod event;
mod login;
mod media;
mod message;
mod problem;
mod send;
mod service;
mod user;
mod webhook;
mod ws;

pub use address::{check_email, normalize_email};
pub use call::{
    Call, CallCreated, CreateCall, JoinCall, Participant, ParticipantCreated, UpdateParticipant,
};
pub use event::{Event, EventKind, UpdateMode};
pub use login::{Contact, ContactSource, CreateLogin, LoginCreated, RefreshLogin};
pub use media::IceServer;
pub use message::{MailMessage, NewMailMessage};
pub use problem::{Problem, ProblemKind};
pub use send::{
    CancelOutcome, CancelRequest, Delivery, DeliveryStatus, InboxMessage, SendReceipt, SipStatus,
};
pub use service::{ServiceAuth, ServiceOutcome, ServiceRequest, ServiceResult, SoapFault};
pub use user::{CreateUser, Token, UpdateUser, User, UserCreated, UserLinks};
pub use webhook::{
    CreateWebhook, Webhook, WebhookCreated, WebhookStatus, WEBHOOK_EVENT_ID_HEADER,
    WEBHOOK_ID_HEADER, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER,
};
pub use ws::{ClientFrame, ServerFrame};

/// The header that carries the real method for clients behind proxies that drop `SEND` and
/// `CANCEL`: a `POST` with `X-HTTP-Method-Override: SEND` is handled as a `SEND`.
pub const METHOD_OVERRIDE_HEADER: &str = "x-http-method-override";

/// Media type of the plain streaming GET: one JSON [`Event`] per line.
pub const NDJSON: &str = "application/x-ndjson";

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";
