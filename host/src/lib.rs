//! Portcullis: a federated OpenID Connect provider whose upstream connectors are sandboxed
//! WebAssembly components.
//!
//! See `docs/ARCHITECTURE.md` for the code map and the invariants the modules keep.

pub mod api;
pub mod broker;
pub mod clock;
pub mod config;
pub mod connectors;
pub mod generation;
pub mod ids;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod migrate;
pub mod oidc;
pub mod password;
pub mod reload;
pub mod secret;
pub mod storage;
pub mod telemetry;
pub mod throttle;
pub mod web;
