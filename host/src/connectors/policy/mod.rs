//! Policy plugins (`wit/policy/0.1.0`): components the broker asks, after a login and whenever it
//! mints tokens, to allow or deny the login, rewrite its groups and patch the tokens' claims.
//!
//! A policy runs in the connectors' sandbox with the same rules (`CallState`, the engine's
//! linker, a fresh instance per call, the entry's `limits`, `http` only to its `allowedHosts`),
//! so this module reuses them rather than growing its own. The rest of the broker speaks
//! [`PolicySet`] and the plain types of `types.rs`.
//!
//! # Security
//! Policies are untrusted like connectors: nothing granted by default, no host reachable without
//! `allowedHosts`, every call bounded. What they return is checked where it enters the host: a
//! patch naming a reserved claim (`types::RESERVED_CLAIMS`) is refused as the policy's failure,
//! and a failure denies unless the entry says `onError: allow`. Their config is never logged.

mod bindings;
pub mod plugin;
pub mod types;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;

use super::capabilities::Grants;
use super::capabilities::allowlist::Allowlist;
use super::engine::PluginEngine;
use super::limits::{Limits, LimitsConfig};
use super::loader;
use super::types::{Identity, PolicyOutcome};
pub use bindings::{WIT_PACKAGE, WIT_VERSION};
pub use plugin::{LoadedPolicy, Policy, PolicyError, PolicyMetadata};
pub use types::{ClaimsPatch, GrantKind, LoginContext, LoginDecision, MintContext, RESERVED_CLAIMS, TokenPatch};

/// What a policy's failure (trap, deadline, refused patch, its own error) does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The login (or the token) is refused: a policy that cannot answer is a rule not applied.
    #[default]
    Deny,
    /// The policy is skipped, as if it were not configured.
    Allow,
}

/// What the config says of one policy, its component already resolved to a file.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySpec {
    pub id: String,
    pub plugin: PathBuf,
    /// `sha256:<hex>` pin, if the config gives one.
    pub sha256: Option<String>,
    /// Hosts its `http` import may reach; none unless listed (nothing is implied for policies).
    pub allowed_hosts: Vec<String>,
    pub limits: LimitsConfig,
    /// The clients it applies to; `None`: every client.
    pub clients: Option<Vec<String>>,
    /// The connectors it applies to; `None`: every connector (and client_credentials, which has none).
    pub connectors: Option<Vec<String>>,
    pub on_error: OnError,
    /// The policy's own `config:` block.
    pub config: serde_json::Value,
}

impl PolicySpec {
    /// Whether the policy applies to a login of `client` through `connector` (`None`:
    /// client_credentials, where only a policy without `connectors:` applies).
    pub fn applies(&self, client: &str, connector: Option<&str>) -> bool {
        let client_ok = self.clients.as_ref().is_none_or(|list| list.iter().any(|c| c == client));
        let connector_ok = match (&self.connectors, connector) {
            (None, _) => true,
            (Some(list), Some(c)) => list.iter().any(|l| l == c),
            (Some(_), None) => false,
        };
        client_ok && connector_ok
    }
}

/// A live policy and what its config entry says of its use.
#[derive(Debug)]
struct Entry {
    spec: PolicySpec,
    policy: Policy,
}

/// The live policies, in config order. Empty: nothing is called and nothing changes.
#[derive(Debug, Default)]
pub struct PolicySet {
    entries: Vec<Arc<Entry>>,
}

/// A login or token refused by a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub policy: String,
    /// The policy's reason (a decision), or that it failed (the detail is logged, not shown).
    pub reason: String,
    /// The policy failed and its `onError: deny` refused; `false`: the policy decided.
    pub failed: bool,
}

impl PolicySet {
    /// Loads every spec; all must succeed or nothing is returned (a broken policy never
    /// replaces a working set). `previous` lends its compiled components for unchanged files.
    pub async fn load(
        engine: &Arc<PluginEngine>,
        specs: &[PolicySpec],
        previous: Option<&PolicySet>,
    ) -> Result<Self, Vec<PolicyError>> {
        let known: HashMap<String, Arc<LoadedPolicy>> = previous
            .map(|p| p.entries.iter().map(|e| (e.policy.plugin().sha256.clone(), e.policy.plugin().clone())).collect())
            .unwrap_or_default();
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for spec in specs {
            match build(engine, spec, &known).await {
                Ok(policy) => entries.push(Arc::new(Entry { spec: spec.clone(), policy })),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() { Ok(Self { entries }) } else { Err(errors) }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The live policies with their plugin files, in config order (for the status report).
    pub fn iter(&self) -> impl Iterator<Item = &Policy> {
        self.entries.iter().map(|e| &e.policy)
    }

    /// Runs `check-login` of every policy that applies, in order; each sees the groups as the
    /// ones before it rewrote them. `Ok(None)`: no policy changed anything.
    pub async fn check_login(
        &self,
        ctx: &LoginContext<'_>,
        identity: &Identity,
    ) -> Result<Option<PolicyOutcome>, Denied> {
        let applying = self
            .entries
            .iter()
            .filter(|e| e.policy.metadata().check_login && e.spec.applies(ctx.client_id, Some(ctx.connector_id)));
        let mut outcome: Option<PolicyOutcome> = None;
        let mut current = Identity { policy: None, ..identity.clone() };
        for entry in applying {
            const CALL: &str = "check-login";
            let started = Instant::now();
            let decision = entry.policy.check_login(ctx, &current).await;
            match decision {
                Ok(LoginDecision::Allow { claims, groups }) => {
                    count(entry, CALL, "allow", started);
                    let o = outcome.get_or_insert_with(PolicyOutcome::default);
                    o.claims.extend(claims);
                    if let Some(groups) = groups {
                        current.groups = groups.clone();
                        o.groups = Some(groups);
                    }
                }
                Ok(LoginDecision::Deny(reason)) => {
                    count(entry, CALL, "deny", started);
                    tracing::warn!(
                        policy = %entry.spec.id, client = %ctx.client_id, connector = %ctx.connector_id,
                        user_id = %identity.user_id, "login denied by policy: {reason}"
                    );
                    return Err(Denied { policy: entry.spec.id.clone(), reason, failed: false });
                }
                Err(e) => failed(entry, CALL, &e, started)?,
            }
        }
        Ok(outcome.filter(|o| o.groups.is_some() || !o.claims.is_empty()))
    }

    /// Runs `mint-token` of every policy that applies, in order: the patches merged, later
    /// members winning.
    pub async fn mint_token(&self, ctx: &MintContext<'_>) -> Result<TokenPatch, Denied> {
        let applying = self
            .entries
            .iter()
            .filter(|e| e.policy.metadata().mint_token && e.spec.applies(ctx.client_id, ctx.connector_id));
        let mut patch = TokenPatch::default();
        for entry in applying {
            const CALL: &str = "mint-token";
            let started = Instant::now();
            match entry.policy.mint_token(ctx).await {
                Ok(p) => {
                    count(entry, CALL, "patch", started);
                    patch = patch.then(p);
                }
                Err(e) => failed(entry, CALL, &e, started)?,
            }
        }
        Ok(patch)
    }
}

/// Logs and counts a policy's failure; its `onError` decides whether that refuses.
fn failed(entry: &Entry, call: &'static str, e: &PolicyError, started: Instant) -> Result<(), Denied> {
    let label = e.label();
    match entry.spec.on_error {
        OnError::Deny => {
            count(entry, call, label, started);
            crate::metrics::global().policy_failure(&entry.spec.id, call, "deny");
            tracing::error!(policy = %entry.spec.id, "{e}; refusing (onError: deny)");
            Err(Denied {
                policy: entry.spec.id.clone(),
                reason: format!("the policy {:?} failed", entry.spec.id),
                failed: true,
            })
        }
        OnError::Allow => {
            count(entry, call, label, started);
            crate::metrics::global().policy_failure(&entry.spec.id, call, "skip");
            tracing::warn!(policy = %entry.spec.id, "{e}; skipping the policy (onError: allow)");
            Ok(())
        }
    }
}

fn count(entry: &Entry, call: &'static str, outcome: &'static str, started: Instant) {
    crate::metrics::global().policy_call(&entry.spec.id, call, outcome, started.elapsed());
}

async fn build(
    engine: &Arc<PluginEngine>,
    spec: &PolicySpec,
    known: &HashMap<String, Arc<LoadedPolicy>>,
) -> Result<Policy, PolicyError> {
    let load_error = |detail: String| PolicyError::Load { policy: spec.id.clone(), detail };
    let bytes = tokio::fs::read(&spec.plugin)
        .await
        .map_err(|e| load_error(format!("cannot read policy {}: {e}", spec.plugin.display())))?;
    let digest = loader::sha256_hex(&bytes);
    if let Some(pin) = &spec.sha256 {
        let pin = pin.strip_prefix("sha256:").unwrap_or(pin);
        if !pin.eq_ignore_ascii_case(&digest) {
            return Err(load_error(format!(
                "{} has sha256 {digest} but the config pins sha256:{pin}; rebuild or re-pin the policy",
                spec.plugin.display()
            )));
        }
    }
    let plugin = match known.get(&digest) {
        Some(plugin) => plugin.clone(),
        None => Arc::new(LoadedPolicy::load(engine, &spec.id, &spec.plugin, bytes, None).await?),
    };
    let allowlist = Allowlist::parse(&spec.allowed_hosts).map_err(|e| load_error(e.to_string()))?;
    let limits = Limits::from_config(&spec.limits).map_err(|e| load_error(e.to_string()))?;
    let grants = Grants::new(allowlist, limits).map_err(|e| load_error(e.to_string()))?;
    Policy::new(&spec.id, plugin, &spec.config, Arc::new(grants)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(clients: Option<&[&str]>, connectors: Option<&[&str]>) -> PolicySpec {
        let list = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        PolicySpec {
            id: "p".into(),
            plugin: PathBuf::new(),
            sha256: None,
            allowed_hosts: Vec::new(),
            limits: LimitsConfig::default(),
            clients: clients.map(list),
            connectors: connectors.map(list),
            on_error: OnError::Deny,
            config: serde_json::json!({}),
        }
    }

    /// clients, connectors, client, connector, applies.
    type Row<'a> = (Option<&'a [&'a str]>, Option<&'a [&'a str]>, &'a str, Option<&'a str>, bool);

    /// One row per case — add a row to extend.
    #[test]
    fn scope_of_a_policy() {
        let rows: [Row<'_>; 7] = [
            (None, None, "app", Some("github"), true),
            (None, None, "svc", None, true),
            (Some(&["app"]), None, "app", Some("github"), true),
            (Some(&["app"]), None, "other", Some("github"), false),
            (None, Some(&["github"]), "app", Some("github"), true),
            (None, Some(&["github"]), "app", Some("ldap"), false),
            (None, Some(&["github"]), "svc", None, false),
        ];
        for (clients, connectors, client, connector, want) in rows {
            assert_eq!(
                spec(clients, connectors).applies(client, connector),
                want,
                "{clients:?} {connectors:?} {client} {connector:?}"
            );
        }
    }
}
