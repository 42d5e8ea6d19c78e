//! A configured connector: a loaded component plus its config and grants. Every call runs in a
//! fresh store and instance from the cached `InstancePre`, under the connector's deadline,
//! memory cap and host-call budget; whatever goes wrong comes back as a [`PluginError`].

use std::sync::Arc;

use wasmtime::Store;

use super::bindings::{Bindings, CallResult};
use super::capabilities::Grants;
use super::capabilities::budget::CallProbe;
use super::capabilities::stderr::GuestStderr;
use super::error::PluginError;
use super::loader::LoadedPlugin;
use super::sandbox::{self, Failure};
use super::state::CallState;
use super::types::{CallbackRequest, ConnectorKind, Identity, LoginRedirect, Metadata, Refusal, Scopes};

/// A connector ready to be called.
pub struct Connector {
    id: Arc<str>,
    config_json: String,
    grants: Arc<Grants>,
    plugin: Arc<LoadedPlugin>,
    metadata: Metadata,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config may hold secrets: never printed.
        f.debug_struct("Connector").field("id", &self.id).field("plugin", &self.plugin).finish_non_exhaustive()
    }
}

/// One call in progress: its store, instance and the facts that outlive a trap.
struct Call {
    started: std::time::Instant,
    store: Store<CallState>,
    plugin: Bindings,
    probe: Arc<CallProbe>,
    output: GuestStderr,
}

type Outcome<T> = Result<CallResult<T>, tokio::time::error::Elapsed>;

/// The `outcome` label of a failed call.
fn outcome_label(e: &PluginError) -> &'static str {
    match e {
        PluginError::Deadline { .. } => "deadline",
        PluginError::Memory { .. } => "memory",
        PluginError::CapabilityDenied { .. } => "denied",
        PluginError::HostCallLimit { .. } => "host_call_limit",
        PluginError::Trap { .. } => "trap",
        PluginError::Refused { .. } => "refused",
        _ => "error",
    }
}

impl Connector {
    /// Validates `config` by calling the plugin's `describe`; the connector goes live only if
    /// that succeeds.
    pub async fn new(
        id: &str,
        plugin: Arc<LoadedPlugin>,
        config: &serde_json::Value,
        grants: Arc<Grants>,
    ) -> Result<Self, PluginError> {
        let mut connector = Self {
            id: id.into(),
            config_json: config.to_string(),
            grants,
            plugin,
            metadata: Metadata {
                kind: ConnectorKind::Callback,
                password_prompt: None,
                supports_refresh: false,
                supports_token_identity: false,
            },
        };
        connector.metadata = connector.describe().await?;
        Ok(connector)
    }

    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }
    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    /// A fresh store and instance with the call's deadline armed.
    async fn start(&self, call: &'static str) -> Result<Call, PluginError> {
        let started = std::time::Instant::now();
        let result = self.instantiate(call, started).await;
        if let Err(e) = &result {
            crate::metrics::global().plugin_call(&self.id, call, outcome_label(e), started.elapsed());
        }
        result
    }

    async fn instantiate(&self, call: &'static str, started: std::time::Instant) -> Result<Call, PluginError> {
        let (mut store, probe, output) = sandbox::store(self.plugin.pre.engine(), &self.id, &self.grants);
        let limit = self.grants.limits.call_deadline;
        let instantiated = tokio::time::timeout(limit, self.plugin.pre.instantiate_async(&mut store)).await;
        let plugin = match instantiated {
            Ok(Ok(plugin)) => plugin,
            Ok(Err(trap)) => {
                let failure = sandbox::trapped(&trap, &store, &probe, &output, &self.grants, "plugin");
                return Err(self.named(call, failure));
            }
            Err(_) => return Err(self.named(call, Failure::Deadline(limit))),
        };
        Ok(Call { started, store, plugin, probe, output })
    }

    /// Turns what a call produced into the caller's result, and counts it.
    fn finish<T>(&self, call: &'static str, run: &Call, outcome: Outcome<T>) -> Result<T, PluginError> {
        let result = self.classify(call, run, outcome);
        let label = match &result {
            Ok(_) => "ok",
            Err(e) => outcome_label(e),
        };
        crate::metrics::global().plugin_call(&self.id, call, label, run.started.elapsed());
        result
    }

    fn classify<T>(&self, call: &'static str, run: &Call, outcome: Outcome<T>) -> Result<T, PluginError> {
        match outcome {
            Err(_elapsed) => {
                run.output.finish();
                Err(self.named(call, Failure::Deadline(self.grants.limits.call_deadline)))
            }
            Ok(Err(trap)) => {
                Err(self
                    .named(call, sandbox::trapped(&trap, &run.store, &run.probe, &run.output, &self.grants, "plugin")))
            }
            Ok(Ok(Err(refusal))) => match sandbox::behind_error(&run.probe, &run.output, &self.grants) {
                Some(failure) => Err(self.named(call, failure)),
                None => Err(PluginError::Refused { connector: self.id.to_string(), call, refusal }),
            },
            Ok(Ok(Ok(value))) => {
                run.output.finish();
                Ok(value)
            }
        }
    }

    /// A sandbox failure as this connector's error (a trap is also logged).
    fn named(&self, call: &'static str, failure: Failure) -> PluginError {
        let connector = self.id.to_string();
        match failure {
            Failure::Deadline(limit) => PluginError::Deadline { connector, call, limit },
            Failure::Memory(limit_mib) => PluginError::Memory { connector, call, limit_mib },
            Failure::HostCallLimit(limit) => PluginError::HostCallLimit { connector, call, limit },
            Failure::Denied(detail) => PluginError::CapabilityDenied { connector, call, detail },
            Failure::Trap(detail) => {
                tracing::warn!(connector = %self.id, "{call} trapped: {detail}");
                PluginError::Trap { connector, call, detail }
            }
        }
    }

    /// Validates the config and describes the connector.
    pub async fn describe(&self) -> Result<Metadata, PluginError> {
        const CALL: &str = "describe";
        let mut run = self.start(CALL).await?;
        let limit = self.grants.limits.call_deadline;
        let outcome = tokio::time::timeout(limit, run.plugin.describe(&mut run.store, &self.config_json)).await;
        self.finish(CALL, &run, outcome)
    }

    /// Callback connectors: where to send the browser.
    pub async fn login_url(
        &self,
        scopes: Scopes,
        callback_url: &str,
        state: &str,
    ) -> Result<LoginRedirect, PluginError> {
        const CALL: &str = "login-url";
        let mut run = self.start(CALL).await?;
        let limit = self.grants.limits.call_deadline;
        let fut = run.plugin.login_url(&mut run.store, &self.config_json, scopes, callback_url, state);
        let outcome = tokio::time::timeout(limit, fut).await;
        self.finish(CALL, &run, outcome)
    }

    /// Callback connectors: the upstream's redirect turned into an identity.
    pub async fn handle_callback(&self, scopes: Scopes, request: CallbackRequest) -> Result<Identity, PluginError> {
        const CALL: &str = "handle-callback";
        let mut run = self.start(CALL).await?;
        let limit = self.grants.limits.call_deadline;
        let fut = run.plugin.handle_callback(&mut run.store, &self.config_json, scopes, request);
        let outcome = tokio::time::timeout(limit, fut).await;
        self.finish(CALL, &run, outcome)
    }

    /// Password connectors: `None` when the credentials are wrong.
    pub async fn login(&self, scopes: Scopes, username: &str, password: &str) -> Result<Option<Identity>, PluginError> {
        const CALL: &str = "login";
        let mut run = self.start(CALL).await?;
        let limit = self.grants.limits.call_deadline;
        let fut = run.plugin.login(&mut run.store, &self.config_json, scopes, username, password);
        let outcome = tokio::time::timeout(limit, fut).await;
        self.finish(CALL, &run, outcome)
    }

    /// Re-reads the identity when a refresh token is redeemed.
    pub async fn refresh(&self, scopes: Scopes, identity: Identity) -> Result<Identity, PluginError> {
        const CALL: &str = "refresh";
        let mut run = self.start(CALL).await?;
        let limit = self.grants.limits.call_deadline;
        let fut = run.plugin.refresh(&mut run.store, &self.config_json, scopes, identity);
        let outcome = tokio::time::timeout(limit, fut).await;
        self.finish(CALL, &run, outcome)
    }

    /// OAuth 2.0 token exchange (RFC 8693): whose upstream token `subject_token` is. Answers
    /// [`Refusal::Unsupported`] without calling the plugin when the connector does not support
    /// it (a 0.1 component, or a 0.2 one whose `describe` did not say so).
    pub async fn token_identity(
        &self,
        scopes: Scopes,
        subject_token_type: &str,
        subject_token: &str,
    ) -> Result<Identity, PluginError> {
        const CALL: &str = "token-identity";
        if !self.metadata.supports_token_identity {
            let why = if self.plugin.contract.has_token_exchange() {
                "this connector does not support token exchange".to_string()
            } else {
                format!(
                    "token exchange needs a connector built against contract 0.2.0 or later; this one targets {}",
                    self.plugin.version
                )
            };
            return Err(PluginError::Refused {
                connector: self.id.to_string(),
                call: CALL,
                refusal: Refusal::Unsupported(why),
            });
        }
        let mut run = self.start(CALL).await?;
        let limit = self.grants.limits.call_deadline;
        let fut =
            run.plugin.token_identity(&mut run.store, &self.config_json, scopes, subject_token_type, subject_token);
        let outcome = tokio::time::timeout(limit, fut).await;
        self.finish(CALL, &run, outcome)
    }
}
