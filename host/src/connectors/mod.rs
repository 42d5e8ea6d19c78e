//! The connector plugin host: the only part of the broker that knows wasmtime exists.
//!
//! Connectors are WebAssembly components targeting a version of the contract in `wit/<version>/`.
//! The host compiles them once (off the async runtime, cached on disk), binds them with the
//! bindings of the contract version they target (`bindings::Contract`), and runs every call
//! in a fresh instance under the connector's limits and grants.
//!
//! # Security
//! Plugins are untrusted. They get WASI with nothing granted (no files, environment,
//! arguments or sockets), reach the network only through the `http` and `ldap` imports,
//! which enforce `allowedHosts` (redirects and DNS answers included; without that key, the set the
//! host implies from the operator's config, `implied.rs`), sign only with the key files the
//! operator granted (`signingKeys`; the key never enters the guest), and are stopped by a
//! deadline, a memory cap and a host-call budget. Their output is logged with the connector
//! id; their config (which holds their secrets) is never logged.

pub mod bindings;
pub mod cache;
pub mod capabilities;
pub mod engine;
pub mod error;
/// Entry points for `fuzz/` into crate-private code (`cargo xtask fuzz` builds with `--cfg fuzzing`).
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod guest_text;
pub mod implied;
pub mod inspect;
pub mod limits;
pub mod loader;
pub mod plugin;
pub mod policy;
pub mod registry;
mod sandbox;
mod state;
pub mod types;

pub use bindings::Contract;
pub use cache::CompileCache;
pub use capabilities::ldap::ClientCertFiles;
pub use capabilities::signing;
pub use capabilities::trust::root_ca_files;
pub use engine::PluginEngine;
pub use error::PluginError;
pub use implied::{HostGrant, Reason};
pub use limits::{Limits, LimitsConfig};
pub use loader::LoadedPlugin;
pub use plugin::Connector;
pub use policy::PolicySet;
pub use registry::{ConnectorSpec, Registry, SpecError, host_grants, hosts_report};
pub use types::{CallbackRequest, ConnectorKind, Identity, LoginRedirect, Metadata, PolicyOutcome, Refusal, Scopes};
