//! A generation: what a reload replaces as one — the validated config, the connectors and
//! policies built from it, the bytes both were built from, and the connectors a degraded start left out.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::config::{SigningAlgorithm, Validated};
use crate::connectors::{PluginEngine, PolicySet, Registry};

/// What a reload replaces as one: the config and the connectors built from it.
#[derive(Debug)]
pub struct Live {
    /// The config file's settings with the admin API's stored objects merged in: what serves.
    pub config: Arc<Validated>,
    /// The config file's alone (a change of stored objects is merged into it again).
    pub file_config: Arc<Validated>,
    pub registry: Arc<Registry>,
    /// The policy plugins, in config order (`policies:`); all or nothing, like a reload.
    pub policies: Arc<PolicySet>,
    /// Grows by one on every successful reload; auth requests remember theirs.
    pub generation: u64,
    /// The bytes this generation was built from; a reload with the same bytes changes nothing.
    pub sources: Sources,
    /// Connectors the config names that are not serving, in config order (only after a start
    /// that went on without them; a reload is all or nothing).
    pub failed: Vec<FailedConnector>,
    /// Unix seconds until which an auth request begun on this generation may still come back
    /// to it (the latest `expires_at` of those pinned to it); see `Broker::pin`.
    pub(crate) pinned_until: AtomicI64,
    /// The discovery document as served, built at its first request (it depends only on this
    /// config and on the signing algorithm, which a key rotation may change: hence the key).
    pub(crate) discovery: RwLock<Option<(SigningAlgorithm, bytes::Bytes)>>,
}

impl Live {
    pub fn new(
        file_config: Arc<Validated>,
        config: Validated,
        registry: Registry,
        generation: u64,
        sources: Sources,
    ) -> Self {
        Self {
            config: Arc::new(config),
            file_config,
            registry: Arc::new(registry),
            policies: Arc::default(),
            generation,
            sources,
            failed: Vec::new(),
            pinned_until: AtomicI64::new(0),
            discovery: RwLock::new(None),
        }
    }
}

/// The bytes a generation was built from: the config file's text, every plugin file the
/// config names, the CA files connectors' `rootCAs` name and the files the broker read for a
/// connector (`ConnectorEntry::files`: ldap's `rootCA`, saml's `ca`, signing keys). Two equal
/// `Sources` build the same generation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// sha256 of the config file's bytes.
    pub config_sha256: String,
    /// Each plugin file the config names, with the sha256 of its bytes (`None`: unreadable).
    pub plugins: BTreeMap<PathBuf, Option<String>>,
    /// Each CA file a connector's `rootCAs` names, and each file in a connector's `files`, with
    /// the sha256 of its bytes.
    pub root_cas: BTreeMap<PathBuf, Option<String>>,
    /// The admin API's change counter the stored objects were read at (`Store::api_version`).
    pub stored_version: i64,
}

impl Sources {
    /// Hashes the plugin files `config` names, as they are now (`config.sha256` is the digest
    /// of the text it was parsed from). Read before the plugins are loaded, so a plugin that
    /// changes meanwhile shows up as a change at the next look, never as none.
    pub async fn read(config: &Validated) -> Self {
        let mut plugins = BTreeMap::new();
        for entry in &config.connectors {
            let path = entry.spec.plugin.clone();
            if plugins.contains_key(&path) {
                continue;
            }
            let digest = tokio::fs::read(&path).await.ok().map(|b| crate::connectors::loader::sha256_hex(&b));
            plugins.insert(path, digest);
        }
        for path in config.policies.iter().map(|p| &p.plugin) {
            if !plugins.contains_key(path) {
                let digest = tokio::fs::read(path).await.ok().map(|b| crate::connectors::loader::sha256_hex(&b));
                plugins.insert(path.clone(), digest);
            }
        }
        let mut root_cas = BTreeMap::new();
        let read = config.connectors.iter().flat_map(|c| c.files.iter().cloned());
        for path in config.connectors.iter().flat_map(|c| crate::connectors::root_ca_files(&c.spec.config)).chain(read)
        {
            let digest = tokio::fs::read(&path).await.ok().map(|b| crate::connectors::loader::sha256_hex(&b));
            root_cas.insert(path, digest);
        }
        Self { config_sha256: config.sha256.clone(), plugins, root_cas, stored_version: 0 }
    }
}

impl Live {
    /// This generation serving `policies` too.
    pub fn with_policies(mut self, policies: PolicySet) -> Self {
        self.policies = Arc::new(policies);
        self
    }
}

/// Loads the policies a config names, all of them or failing with every error, one per line.
/// `previous` lends its compiled components for files that did not change.
pub async fn load_policies(
    engine: &Arc<PluginEngine>,
    config: &Validated,
    previous: Option<&PolicySet>,
) -> Result<PolicySet, String> {
    PolicySet::load(engine, &config.policies, previous).await.map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
        format!("policies failed to load:\n{}", lines.join("\n"))
    })
}

/// A connector the config names that is not serving, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedConnector {
    pub connector: String,
    pub plugin: String,
    /// What failed and what to do, as logged.
    pub error: String,
}

/// Loads the connectors a config names, all of them or failing with every error (what
/// `check-config` and a reload need).
pub async fn load_registry(
    engine: &Arc<PluginEngine>,
    config: &Validated,
    previous: Option<&Registry>,
) -> anyhow::Result<Registry> {
    let (registry, failed) = load_connectors(engine, config, previous).await;
    if failed.is_empty() {
        Ok(registry)
    } else {
        Err(anyhow::anyhow!("connectors failed to load:\n{}", failure_list(&failed)))
    }
}

/// Loads what loads; every connector left out is listed with its reason, in config order.
pub async fn load_connectors(
    engine: &Arc<PluginEngine>,
    config: &Validated,
    previous: Option<&Registry>,
) -> (Registry, Vec<FailedConnector>) {
    let specs: Vec<_> = config.connectors.iter().filter(|c| c.missing.is_none()).map(|c| c.spec.clone()).collect();
    let (registry, errors) = Registry::load_partial(engine, &specs, previous).await;
    let mut failed = Vec::new();
    for entry in &config.connectors {
        let id = &entry.spec.id;
        let reasons: Vec<String> = match &entry.missing {
            Some(missing) => vec![format!("connector {id:?}: {missing}")],
            None => errors.iter().filter(|e| e.connector() == id).map(ToString::to_string).collect(),
        };
        if !reasons.is_empty() {
            failed.push(FailedConnector {
                connector: id.to_string(),
                plugin: entry.spec.plugin.display().to_string(),
                error: reasons.join("; "),
            });
        }
    }
    (registry, failed)
}

/// One line per failed connector, for an error message.
pub fn failure_list(failed: &[FailedConnector]) -> String {
    failed.iter().map(|f| format!("  - {}", f.error)).collect::<Vec<_>>().join("\n")
}
