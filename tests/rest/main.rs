//! End-to-end tests of the relay's REST API: the real binary on 127.0.0.1, real HTTP, SSE,
//! NDJSON and WebSocket clients.
#![allow(clippy::unwrap_used)]

mod article;
mod auth_matrix;
mod bad_input;
mod calls;
mod cluster;
mod cluster_cut;
mod credentials;
mod durability;
mod failover;
mod guessing;
mod ice_servers;
mod limits;
mod logins;
mod observe;
mod openapi;
mod origins;
mod postgres;
mod send;
mod slow_clients;
mod ssrf;
mod streams;
mod streams_raw;
mod tls;
mod users;
mod webhook_api;
mod webhook_inbox;
mod webhooks;
mod websocket;
