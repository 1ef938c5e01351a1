//! Switchboard: a self-hosted contact-centre routing engine for digital conversations.
//!
//! Customers write on a channel (Messenger first); each chat becomes a conversation in a
//! queue; the engine offers it to one available agent at a time, handles expiry to RONA,
//! transfers, conferences, ends and wrap-ups, and makes every acknowledged change durable.
//!
//! # Layout
//! - [`api`]: the HTTP edge: REST, the agent desktop WebSocket, health, metrics, OpenAPI.
//! - [`channels`]: customer channels beside REST: the Messenger webhook and Send API.
//! - [`cluster`]: several nodes sharing tenants through NATS JetStream (leases, logs).
//! - [`config`]: typed configuration, the embedded default, environment overrides.
//! - [`core`]: the pure routing state machine ([`core::Floor`]); no I/O, no clock.
//! - [`actors`]: actix actors per agent, queue and conversation, around the core.
//! - [`engine`]: [`engine::Engine`], the Rust API that the HTTP layer and benches call.
//! - [`load`]: the load harness behind `switchboard-load` (scenario, checks, report).
//! - [`metrics`]: Prometheus metrics.
//! - [`protocol`]: what the engine handle and its actors share (queries, errors, observations).
//! - [`store`]: the durability seam ([`store::Store`]) and its implementations.

pub mod actors;
pub mod api;
pub mod channels;
pub mod cluster;
pub mod config;
pub mod core;
pub mod engine;
pub mod load;
pub mod metrics;
pub mod protocol;
pub mod store;
pub mod tenants;
pub mod webhook_receiver;
pub mod webhooks;
