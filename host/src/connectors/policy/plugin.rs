//! One configured policy: its compiled component, config, grants and scope. Every call runs in a
//! fresh store and instance from the cached `InstancePre`, under the entry's deadline, memory cap
//! and host-call budget, with the connectors' `CallState` (so `http` enforces its
//! `allowedHosts`); whatever goes wrong comes back as a [`PolicyError`] naming the policy.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::Store;

use super::bindings::{self, EXPORT_PREFIX, PluginPre, WIT_PACKAGE, WIT_VERSION};
use super::types::{LoginContext, LoginDecision, MintContext, PatchError, TokenPatch, parse_patch};
use crate::connectors::capabilities::Grants;
use crate::connectors::capabilities::budget::CallProbe;
use crate::connectors::capabilities::stderr::GuestStderr;
use crate::connectors::engine::PluginEngine;
use crate::connectors::error::PluginError;
use crate::connectors::guest_text::escape_owned;
use crate::connectors::loader;
use crate::connectors::sandbox::{self, Failure};
use crate::connectors::state::CallState;
use crate::connectors::types::Identity;

/// A failed policy load or call. A call's failure is handled by the entry's `onError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read, pinned, compiled or linked (the detail says which and what to do).
    #[error("policy {policy:?}: {detail}")]
    Load { policy: String, detail: String },
    #[error(
        "policy {policy:?}: {path} targets {found} but this broker supports {WIT_PACKAGE}@{WIT_VERSION}; rebuild the policy against wit/policy/{WIT_VERSION}"
    )]
    UnsupportedVersion { policy: String, path: PathBuf, found: String },
    #[error(
        "policy {policy:?}: {call} exceeded its deadline of {limit:?}; raise limits.callDeadline or fix the policy"
    )]
    Deadline { policy: String, call: &'static str, limit: std::time::Duration },
    #[error(
        "policy {policy:?}: {call} exceeded its memory limit of {limit_mib} MiB; raise limits.memoryMiB or fix the policy"
    )]
    Memory { policy: String, call: &'static str, limit_mib: u64 },
    #[error("policy {policy:?}: {call} was denied a capability: {detail}")]
    CapabilityDenied { policy: String, call: &'static str, detail: String },
    #[error("policy {policy:?}: {call} made more than {limit} host calls; raise limits.maxHostCalls or fix the policy")]
    HostCallLimit { policy: String, call: &'static str, limit: u32 },
    #[error("policy {policy:?}: {call} trapped: {detail}")]
    Trap { policy: String, call: &'static str, detail: String },
    #[error("policy {policy:?}: {call} failed: {detail}")]
    Failed { policy: String, call: &'static str, detail: String },
    #[error("policy {policy:?}: {call} returned a patch the broker refuses: {source}")]
    Patch { policy: String, call: &'static str, source: PatchError },
}

impl PolicyError {
    /// The policy the error belongs to.
    pub fn policy(&self) -> &str {
        match self {
            Self::Load { policy, .. }
            | Self::UnsupportedVersion { policy, .. }
            | Self::Deadline { policy, .. }
            | Self::Memory { policy, .. }
            | Self::CapabilityDenied { policy, .. }
            | Self::HostCallLimit { policy, .. }
            | Self::Trap { policy, .. }
            | Self::Failed { policy, .. }
            | Self::Patch { policy, .. } => policy,
        }
    }

    /// The `outcome` label of a failed call.
    pub(super) fn label(&self) -> &'static str {
        match self {
            Self::Deadline { .. } => "deadline",
            Self::Memory { .. } => "memory",
            Self::CapabilityDenied { .. } => "denied",
            Self::HostCallLimit { .. } => "host_call_limit",
            Self::Trap { .. } => "trap",
            Self::Patch { .. } => "reserved_or_bad_patch",
            _ => "error",
        }
    }

    /// A loader error, which names the policy as a connector, renamed.
    fn load(policy: &str, e: PluginError) -> Self {
        let text = e.to_string();
        let prefix = format!("connector {policy:?}: ");
        let detail = text.strip_prefix(&prefix).map_or_else(|| text.clone(), str::to_string);
        Self::Load { policy: policy.into(), detail: detail.replace("the plugin", "the policy") }
    }
}

/// A compiled policy component, ready to be instantiated any number of times.
pub struct LoadedPolicy {
    pub path: PathBuf,
    pub sha256: String,
    pre: PluginPre<CallState>,
}

impl std::fmt::Debug for LoadedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPolicy").field("path", &self.path).field("sha256", &self.sha256).finish_non_exhaustive()
    }
}

impl LoadedPolicy {
    /// Checks the pin and magic bytes of `bytes` (read from `path`), compiles them through the
    /// compile cache, checks the contract version and links them with the engine's linker.
    pub async fn load(
        engine: &Arc<PluginEngine>,
        policy: &str,
        path: &Path,
        bytes: Vec<u8>,
        pin: Option<&str>,
    ) -> Result<Self, PolicyError> {
        let compiled =
            loader::compile_bytes(engine, policy, path, bytes, pin).await.map_err(|e| PolicyError::load(policy, e))?;
        let ty = compiled.component.component_type();
        let exports: Vec<String> = ty.exports(&engine.engine).map(|(name, _)| name.to_string()).collect();
        let version = exports.iter().find_map(|n| n.strip_prefix(EXPORT_PREFIX));
        if version != Some(WIT_VERSION) {
            let found = match (version, exports.iter().find(|n| n.starts_with("portcullis:connector/"))) {
                (Some(v), _) => format!("{WIT_PACKAGE}@{v}"),
                (None, Some(_)) => "the connector contract (it is a connector, not a policy)".into(),
                (None, None) => format!("no {WIT_PACKAGE}/policy export"),
            };
            return Err(PolicyError::UnsupportedVersion { policy: policy.into(), path: path.into(), found });
        }
        let link = |e: wasmtime::Error| PolicyError::Load {
            policy: policy.into(),
            detail: format!("{} cannot be instantiated: {e:#}", path.display()),
        };
        let instance_pre = engine.linker.instantiate_pre(&compiled.component).map_err(link)?;
        let pre = PluginPre::new(instance_pre).map_err(link)?;
        Ok(Self { path: path.into(), sha256: compiled.sha256, pre })
    }
}

/// Which calls a policy implements (its `describe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyMetadata {
    pub check_login: bool,
    pub mint_token: bool,
}

/// A policy ready to be called.
pub struct Policy {
    id: Arc<str>,
    /// The id its calls' logs and stores are tagged with (`policy:<id>`).
    label: Arc<str>,
    config_json: String,
    grants: Arc<Grants>,
    plugin: Arc<LoadedPolicy>,
    metadata: PolicyMetadata,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config may hold secrets: never printed.
        f.debug_struct("Policy").field("id", &self.id).field("plugin", &self.plugin).finish_non_exhaustive()
    }
}

/// One call in progress.
struct Call {
    store: Store<CallState>,
    plugin: bindings::Plugin,
    probe: Arc<CallProbe>,
    output: GuestStderr,
}

type Outcome<T> = Result<
    wasmtime::Result<Result<T, bindings::exports::portcullis::policy::policy::PolicyError>>,
    tokio::time::error::Elapsed,
>;

impl Policy {
    /// Validates `config` by calling the policy's `describe`; the policy goes live only if that succeeds.
    pub async fn new(
        id: &str,
        plugin: Arc<LoadedPolicy>,
        config: &serde_json::Value,
        grants: Arc<Grants>,
    ) -> Result<Self, PolicyError> {
        let mut policy = Self {
            id: id.into(),
            label: format!("policy:{id}").into(),
            config_json: config.to_string(),
            grants,
            plugin,
            metadata: PolicyMetadata { check_login: false, mint_token: false },
        };
        policy.metadata = policy.describe().await?;
        Ok(policy)
    }

    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn metadata(&self) -> PolicyMetadata {
        self.metadata
    }
    pub fn plugin(&self) -> &Arc<LoadedPolicy> {
        &self.plugin
    }

    /// A fresh store and instance with the call's deadline armed.
    async fn start(&self, call: &'static str) -> Result<Call, PolicyError> {
        let (mut store, probe, output) = sandbox::store(self.plugin.pre.engine(), &self.label, &self.grants);
        let limit = self.grants.limits.call_deadline;
        match tokio::time::timeout(limit, self.plugin.pre.instantiate_async(&mut store)).await {
            Ok(Ok(plugin)) => Ok(Call { store, plugin, probe, output }),
            Ok(Err(trap)) => {
                Err(self.named(call, sandbox::trapped(&trap, &store, &probe, &output, &self.grants, "policy")))
            }
            Err(_) => Err(self.named(call, Failure::Deadline(limit))),
        }
    }

    /// Turns what a call produced into the caller's result.
    fn finish<T>(&self, call: &'static str, run: &Call, outcome: Outcome<T>) -> Result<T, PolicyError> {
        match outcome {
            Err(_elapsed) => {
                run.output.finish();
                Err(self.named(call, Failure::Deadline(self.grants.limits.call_deadline)))
            }
            Ok(Err(trap)) => {
                Err(self
                    .named(call, sandbox::trapped(&trap, &run.store, &run.probe, &run.output, &self.grants, "policy")))
            }
            Ok(Ok(Err(e))) => match sandbox::behind_error(&run.probe, &run.output, &self.grants) {
                Some(failure) => Err(self.named(call, failure)),
                None => Err(PolicyError::Failed { policy: self.id.to_string(), call, detail: bindings::error_text(e) }),
            },
            Ok(Ok(Ok(value))) => {
                run.output.finish();
                Ok(value)
            }
        }
    }

    /// A sandbox failure as this policy's error.
    fn named(&self, call: &'static str, failure: Failure) -> PolicyError {
        let policy = self.id.to_string();
        match failure {
            Failure::Deadline(limit) => PolicyError::Deadline { policy, call, limit },
            Failure::Memory(limit_mib) => PolicyError::Memory { policy, call, limit_mib },
            Failure::HostCallLimit(limit) => PolicyError::HostCallLimit { policy, call, limit },
            Failure::Denied(detail) => PolicyError::CapabilityDenied { policy, call, detail },
            Failure::Trap(detail) => PolicyError::Trap { policy, call, detail },
        }
    }

    /// Validates the config and says which calls the policy implements.
    pub async fn describe(&self) -> Result<PolicyMetadata, PolicyError> {
        const CALL: &str = "describe";
        let mut run = self.start(CALL).await?;
        let limit = self.grants.limits.call_deadline;
        let fut = run.plugin.portcullis_policy_policy().call_describe(&mut run.store, &self.config_json);
        let outcome = tokio::time::timeout(limit, fut).await;
        let m = self.finish(CALL, &run, outcome)?;
        Ok(PolicyMetadata { check_login: m.check_login, mint_token: m.mint_token })
    }

    /// Allow (with changes) or deny a login.
    pub async fn check_login(&self, ctx: &LoginContext<'_>, identity: &Identity) -> Result<LoginDecision, PolicyError> {
        const CALL: &str = "check-login";
        let mut run = self.start(CALL).await?;
        let limit = self.grants.limits.call_deadline;
        let (wit_ctx, wit_identity) = (bindings::login_context(ctx, &self.config_json), bindings::identity(identity));
        let fut = run.plugin.portcullis_policy_policy().call_check_login(&mut run.store, &wit_ctx, &wit_identity);
        let outcome = tokio::time::timeout(limit, fut).await;
        use bindings::exports::portcullis::policy::policy::LoginDecision as Wit;
        match self.finish(CALL, &run, outcome)? {
            Wit::Deny(reason) => Ok(LoginDecision::Deny(escape_owned(reason))),
            Wit::Allow(allow) => {
                let claims = parse_patch("claims", &allow.claims).map_err(|source| self.patch(CALL, source))?;
                Ok(LoginDecision::Allow { claims, groups: allow.groups })
            }
        }
    }

    /// Claims to merge into the tokens being minted.
    pub async fn mint_token(&self, ctx: &MintContext<'_>) -> Result<TokenPatch, PolicyError> {
        const CALL: &str = "mint-token";
        let mut run = self.start(CALL).await?;
        let limit = self.grants.limits.call_deadline;
        let wit_ctx = bindings::mint_context(ctx, &self.config_json);
        let fut = run.plugin.portcullis_policy_policy().call_mint_token(&mut run.store, &wit_ctx);
        let outcome = tokio::time::timeout(limit, fut).await;
        let patch = self.finish(CALL, &run, outcome)?;
        let id_token = parse_patch("ID token patch", &patch.id_token).map_err(|source| self.patch(CALL, source))?;
        let access_token =
            parse_patch("access token patch", &patch.access_token).map_err(|source| self.patch(CALL, source))?;
        Ok(TokenPatch { id_token, access_token })
    }

    fn patch(&self, call: &'static str, source: PatchError) -> PolicyError {
        PolicyError::Patch { policy: self.id.to_string(), call, source }
    }
}
