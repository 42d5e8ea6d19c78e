//! Every end-to-end test but the browser's, in one binary (one link of wasmtime, sqlx and
//! reqwest instead of one per file): a module per area, `cargo test -p portcullis-tests --test
//! e2e <module>::` runs one.

mod api;
mod atlassian_crowd;
mod authproxy;
mod bitbucket;
mod chaos;
mod config;
mod custom_connector;
mod deploy;
mod device;
mod dex;
mod exchange;
mod gitea;
mod github;
mod gitlab;
mod google_groups;
mod grants;
mod keystone;
mod lang;
mod ldap;
mod linkedin;
mod logs;
mod microsoft;
mod migrate;
mod mock;
mod oauth;
mod oidc;
mod openshift;
mod outage;
mod perf;
mod policy;
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
