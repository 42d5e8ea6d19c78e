//! The set of live connectors, built from their specs. A component used by several connectors,
//! or unchanged since the previous registry, is compiled once.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use super::capabilities::allowlist::{Allowlist, AllowlistError};
use super::capabilities::signing::{self, SigningCtx};
use super::capabilities::{Grants, GrantsError, trust};
use super::engine::PluginEngine;
use super::error::PluginError;
use super::implied::{self, HostGrant, Reason};
use super::limits::{Limits, LimitsConfig, LimitsError};
use super::loader::{self, LoadedPlugin};
use super::plugin::Connector;
use crate::ids::ConnectorId;

/// What the config says of one connector, its component already resolved to a file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorSpec {
    pub id: ConnectorId,
    pub name: String,
    pub plugin: PathBuf,
    /// `sha256:<hex>` pin, if the config gives one.
    pub sha256: Option<String>,
    /// The shipped connector type (`github`, `ldap`, ...) when the config gave `type:`; it
    /// decides the documented hosts and type-specific keys of the implied set.
    pub kind: Option<String>,
    /// `allowedHosts` as written; `None` when the entry has none, and the broker implies the
    /// set from `config` (`implied.rs`). `Some(vec![])` grants nothing.
    pub allowed_hosts: Option<Vec<String>>,
    /// `signingKeys` as written: the config keys whose files are private keys the connector
    /// may sign with (`capabilities::signing`); `None`: its shipped type's documented key.
    pub signing_keys: Option<Vec<String>>,
    pub limits: LimitsConfig,
    /// The connector's own `config:` block.
    pub config: serde_json::Value,
    /// Dex's ldap `clientCert`/`clientKey`: files the host reads and presents on the
    /// connector's TLS connections. Not in `config`: the plugin never sees the key.
    pub client_cert: Option<super::capabilities::ldap::ClientCertFiles>,
}

/// Why a spec could not become a live connector.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    #[error("connector {connector:?}: {source}")]
    AllowedHosts { connector: String, source: AllowlistError },
    #[error("connector {connector:?}: {source}")]
    Limits { connector: String, source: LimitsError },
    #[error("connector {connector:?}: {source}")]
    Grants { connector: String, source: GrantsError },
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

impl SpecError {
    /// The connector the error belongs to.
    pub fn connector(&self) -> &str {
        match self {
            Self::AllowedHosts { connector, .. } | Self::Limits { connector, .. } | Self::Grants { connector, .. } => {
                connector
            }
            Self::Plugin(e) => e.connector(),
        }
    }
}

/// What `spec` may reach: its `allowedHosts`, or the implied set when it has none.
pub fn host_grants(spec: &ConnectorSpec) -> Vec<HostGrant> {
    match &spec.allowed_hosts {
        Some(entries) => {
            entries.iter().map(|entry| HostGrant { entry: entry.clone(), reason: Reason::Explicit }).collect()
        }
        None => implied::implied(spec.kind.as_deref(), &spec.config),
    }
}

/// `check-config`'s report: per connector, each host it may reach and why.
pub fn hosts_report<'a>(specs: impl IntoIterator<Item = &'a ConnectorSpec>) -> String {
    let mut out = String::new();
    for spec in specs {
        let grants = host_grants(spec);
        let source = if spec.allowed_hosts.is_some() { "allowedHosts" } else { "implied, no allowedHosts" };
        if grants.is_empty() {
            out.push_str(&format!("connector {:?} may reach no host ({source})\n", spec.id.as_str()));
            signing_report(spec, &mut out);
            continue;
        }
        out.push_str(&format!("connector {:?} may reach ({source}):\n", spec.id.as_str()));
        let width = grants.iter().map(|g| g.entry.len()).max().unwrap_or(0);
        for g in grants {
            out.push_str(&format!("  {:width$}  {}\n", g.entry, g.reason));
        }
        signing_report(spec, &mut out);
    }
    out
}

/// The key files `spec` may sign with (`signing`), and why, for `hosts_report`.
fn signing_report(spec: &ConnectorSpec, out: &mut String) {
    let why = if spec.signing_keys.is_some() { "signingKeys" } else { "documented key of its type" };
    for key in signing::granted(spec.kind.as_deref(), spec.signing_keys.as_deref()) {
        if let Some(path) = spec.config.get(&key).and_then(serde_json::Value::as_str) {
            out.push_str(&format!("  and may sign with the key in {path} (config.{key}, {why})\n"));
        }
    }
}

/// The live connectors, by id.
#[derive(Debug, Default)]
pub struct Registry {
    connectors: BTreeMap<ConnectorId, Arc<Connector>>,
}

impl Registry {
    /// Loads every spec; all must succeed or nothing is returned (a registry is all or nothing).
    /// `previous` lends its compiled components so unchanged files are not reloaded.
    pub async fn load(
        engine: &Arc<PluginEngine>,
        specs: &[ConnectorSpec],
        previous: Option<&Registry>,
    ) -> Result<Self, Vec<SpecError>> {
        let (registry, errors) = Self::load_partial(engine, specs, previous).await;
        if errors.is_empty() { Ok(registry) } else { Err(errors) }
    }

    /// Loads what can be loaded: the connectors whose specs succeeded, and an error for each
    /// one left out (a degraded start, as Dex's `DEX_CONTINUE_ON_CONNECTOR_FAILURE`).
    pub async fn load_partial(
        engine: &Arc<PluginEngine>,
        specs: &[ConnectorSpec],
        previous: Option<&Registry>,
    ) -> (Self, Vec<SpecError>) {
        let mut compiled: HashMap<PathBuf, Arc<LoadedPlugin>> = HashMap::new();
        let mut errors = Vec::new();
        let known: HashMap<String, Arc<LoadedPlugin>> = previous
            .map(|p| p.connectors.values().map(|c| (c.plugin().sha256.clone(), c.plugin().clone())).collect())
            .unwrap_or_default();
        for spec in specs {
            if compiled.contains_key(&spec.plugin) {
                continue;
            }
            match reuse_or_load(engine, spec, &known).await {
                Ok(plugin) => {
                    compiled.insert(spec.plugin.clone(), plugin);
                }
                Err(e) => errors.push(SpecError::Plugin(e)),
            }
        }
        let mut connectors = BTreeMap::new();
        for spec in specs {
            let Some(plugin) = compiled.get(&spec.plugin) else { continue };
            if let Some(pin) = &spec.sha256 {
                let pin = pin.strip_prefix("sha256:").unwrap_or(pin);
                if !pin.eq_ignore_ascii_case(&plugin.sha256) {
                    errors.push(SpecError::Plugin(PluginError::DigestMismatch {
                        connector: spec.id.to_string(),
                        path: spec.plugin.clone(),
                        expected: pin.to_string(),
                        actual: plugin.sha256.clone(),
                    }));
                    continue;
                }
            }
            match build(spec, plugin.clone()).await {
                Ok(connector) => {
                    connectors.insert(spec.id.clone(), Arc::new(connector));
                }
                Err(e) => errors.push(e),
            }
        }
        (Self { connectors }, errors)
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Connector>> {
        self.connectors.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Connector>> {
        self.connectors.values()
    }

    pub fn len(&self) -> usize {
        self.connectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.connectors.is_empty()
    }
}

async fn reuse_or_load(
    engine: &Arc<PluginEngine>,
    spec: &ConnectorSpec,
    known: &HashMap<String, Arc<LoadedPlugin>>,
) -> Result<Arc<LoadedPlugin>, PluginError> {
    // Reading and hashing the file is cheap; compiling is not. Reuse a previous load of the
    // same bytes, wherever it came from; otherwise compile the bytes already read.
    let bytes = loader::read(&spec.id, &spec.plugin).await?;
    if let Some(plugin) = known.get(&loader::sha256_hex(&bytes)) {
        return Ok(plugin.clone());
    }
    loader::load_bytes(engine, &spec.id, &spec.plugin, bytes, spec.sha256.as_deref()).await.map(Arc::new)
}

async fn build(spec: &ConnectorSpec, plugin: Arc<LoadedPlugin>) -> Result<Connector, SpecError> {
    let connector = || spec.id.clone();
    let grants = host_grants(spec);
    if spec.allowed_hosts.is_none() {
        for g in &grants {
            tracing::info!(connector = %spec.id, host = %g.entry, reason = %g.reason, "connector may reach an implied host");
        }
    }
    let entries: Vec<String> = grants.into_iter().map(|g| g.entry).collect();
    let allowlist = Allowlist::parse(&entries)
        .map_err(|source| SpecError::AllowedHosts { connector: connector().to_string(), source })?;
    let limits = Limits::from_config(&spec.limits)
        .map_err(|source| SpecError::Limits { connector: connector().to_string(), source })?;
    let granted = signing::granted(spec.kind.as_deref(), spec.signing_keys.as_deref());
    let grants = trust::root_cas(&spec.config)
        .map_err(GrantsError::from)
        .and_then(|roots| Grants::with_root_cas(allowlist, limits, &roots))
        .and_then(|grants| Ok(grants.with_signing(SigningCtx::load(&spec.config, &granted)?)))
        .and_then(|grants| grants.with_ldap_client(spec.client_cert.as_ref()))
        .map_err(|source| SpecError::Grants { connector: connector().to_string(), source })?;
    Ok(Connector::new(&spec.id, plugin, &spec.config, Arc::new(grants)).await?)
}
