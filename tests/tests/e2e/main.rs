//! Every end-to-end test but the browser's, in one binary (one link of wasmtime, sqlx and
//! reqwest instead of one per file): a module per area, `cargo test -p portcullis-tests --test
//! e2e <module>::` runs one.

mod api;
mod config;
mod custom_connector;
mod device;
mod dex;
mod exchange;
mod github;
mod google_groups;
mod grants;
mod ldap;
mod logs;
mod migrate;
mod mock;
mod oidc;
mod register;
mod reload;
mod replicas;
mod saml;
mod sandbox;
mod security;
mod serving;
mod sessions;
mod storage;
mod telemetry;
mod upstream_oidc;
