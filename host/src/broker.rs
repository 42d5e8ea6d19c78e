//! The running broker's shared state: config, storage, keys and the live connectors, built
//! from a validated config. The web layer reads it; hot reload swaps `live`.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;

use crate::config::{StorageConfig, Validated};
use crate::connectors::{CompileCache, PluginEngine, Registry};
use crate::keys::Keys;
use crate::reload::{FailedConnector, Sources};
use crate::secret::Secret;
use crate::storage::{Backend, Store};

/// What a reload replaces as one: the config and the connectors built from it.
#[derive(Debug)]
pub struct Live {
    pub config: Arc<Validated>,
    pub registry: Arc<Registry>,
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
}

impl Live {
    pub fn new(config: Validated, registry: Registry, generation: u64, sources: Sources) -> Self {
        Self {
            config: Arc::new(config),
            registry: Arc::new(registry),
            generation,
            sources,
            failed: Vec::new(),
            pinned_until: AtomicI64::new(0),
        }
    }
}

/// Everything a request handler needs.
#[derive(Debug)]
pub struct Broker {
    pub live: ArcSwap<Live>,
    pub store: Store,
    pub keys: Keys,
    pub engine: Arc<PluginEngine>,
    /// Earlier generations that an auth request in flight may still come back to; each is
    /// dropped once no such request can (see `Broker::pin`), however many reloads happen.
    pub(crate) retired: std::sync::Mutex<Vec<Arc<Live>>>,
    /// The sources of the last reload that failed, so a file event that brings the same broken
    /// bytes again (a touch, a read) does not report the same failure again.
    pub(crate) last_failed: std::sync::Mutex<Option<Sources>>,
    /// The outcome of the last reload (or of the start).
    pub status: ArcSwap<crate::reload::ReloadStatus>,
    /// Serialises reloads.
    pub(crate) reloading: tokio::sync::Mutex<()>,
}

/// Seconds since the Unix epoch.
pub use crate::clock::now;

/// The PostgreSQL URL a storage block describes.
pub fn postgres_url(c: &crate::config::PostgresConfig) -> Secret {
    if let Some(url) = &c.url {
        return url.clone();
    }
    #[expect(clippy::expect_used, reason = "a constant URL")]
    let mut url = url::Url::parse("postgres://localhost/").expect("static URL parses");
    let _ = url.set_host(Some(c.host.as_deref().unwrap_or("localhost")));
    let _ = url.set_port(Some(c.port.unwrap_or(5432)));
    let _ = url.set_username(c.user.as_deref().unwrap_or("postgres"));
    if let Some(pw) = &c.password {
        let _ = url.set_password(Some(pw.expose()));
    }
    url.set_path(c.database.as_deref().unwrap_or("portcullis"));
    if let Some(ssl) = &c.ssl {
        url.query_pairs_mut().append_pair("sslmode", &ssl.mode);
    }
    Secret::new(url.to_string())
}

/// Opens the configured storage backend (creating and migrating it when new).
pub async fn open_storage(config: &Validated) -> anyhow::Result<Arc<dyn Backend>> {
    Ok(match &config.storage {
        StorageConfig::Memory => Arc::new(crate::storage::memory::MemoryBackend::new()),
        StorageConfig::Sqlite3(s) => {
            let path = config.base_dir.join(&s.file);
            Arc::new(
                crate::storage::sql::SqlBackend::sqlite(&path)
                    .await
                    .with_context(|| format!("storage: cannot open SQLite database {}", path.display()))?,
            )
        }
        StorageConfig::Postgres(p) => Arc::new(
            crate::storage::sql::SqlBackend::postgres(postgres_url(p).expose())
                .await
                .context("storage: cannot open the PostgreSQL database")?,
        ),
    })
}

impl Broker {
    /// Builds the broker for `config`: storage, keys, plugin engine and connectors.
    pub async fn start(config: Validated) -> anyhow::Result<Arc<Self>> {
        let backend = open_storage(&config).await?;
        Self::with_backend(config, backend).await
    }

    /// Like `start`, over a given backend (tests share one between replicas).
    pub async fn with_backend(config: Validated, backend: Arc<dyn Backend>) -> anyhow::Result<Arc<Self>> {
        let store = Store::new(backend);
        let keys =
            Keys::new(store.clone(), &config.signing_algorithm, config.expiry.signing_keys, config.expiry.id_tokens);
        keys.refresh(now()).await.context("cannot load or create the signing keys")?;
        let cache = match config.cache_dir.clone().or_else(CompileCache::default_dir) {
            Some(dir) => CompileCache::at(dir),
            None => CompileCache::disabled(),
        };
        let engine = PluginEngine::new(cache).context("cannot start the WebAssembly engine")?;
        let sources = Sources::read(&config).await;
        let (registry, failed) = Self::load_connectors(&engine, &config, None).await;
        if !failed.is_empty() {
            let list = failure_list(&failed);
            if !config.continue_on_connector_failure {
                anyhow::bail!(
                    "connectors failed to load, and {}=false says not to start without them:\n{list}",
                    crate::config::CONTINUE_ON_CONNECTOR_FAILURE
                );
            }
            if registry.is_empty() && !config.enable_password_db {
                anyhow::bail!(
                    "every connector failed to load ({n}/{n}) and the password database is off, so nobody could log in:\n{list}",
                    n = failed.len()
                );
            }
            for f in &failed {
                tracing::error!(
                    connector = %f.connector,
                    "{}; serving without it (GET /status lists it): fix it and save the file, or reload, to bring it in",
                    f.error
                );
            }
        }
        let mut live = Live::new(config, registry, 1, sources);
        live.failed = failed;
        let status = crate::reload::ReloadStatus::of(&live, crate::reload::Outcome::Started);
        Ok(Arc::new(Self {
            live: ArcSwap::from_pointee(live),
            store,
            keys,
            engine,
            retired: Default::default(),
            last_failed: Default::default(),
            status: ArcSwap::from_pointee(status),
            reloading: tokio::sync::Mutex::new(()),
        }))
    }

    /// Loads the connectors a config names, all of them or failing with every error (what
    /// `check-config` and a reload need).
    pub async fn load_registry(
        engine: &Arc<PluginEngine>,
        config: &Validated,
        previous: Option<&Registry>,
    ) -> anyhow::Result<Registry> {
        let (registry, failed) = Self::load_connectors(engine, config, previous).await;
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
                    connector: id.clone(),
                    plugin: entry.spec.plugin.display().to_string(),
                    error: reasons.join("; "),
                });
            }
        }
        (registry, failed)
    }

    /// Background upkeep: key refresh and rotation, garbage collection. Runs until dropped.
    pub fn spawn_upkeep(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let broker = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(broker) = broker.upgrade() else { break };
                if let Err(e) = broker.keys.refresh(now()).await {
                    tracing::error!("signing key refresh failed: {e}");
                }
                broker.drop_unreachable_generations();
                match broker.store.collect_garbage(now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!("garbage-collected {n} expired objects"),
                    Err(e) => tracing::warn!("garbage collection failed: {e}"),
                }
            }
        })
    }
}

/// One line per failed connector, for an error message.
fn failure_list(failed: &[FailedConnector]) -> String {
    failed.iter().map(|f| format!("  - {}", f.error)).collect::<Vec<_>>().join("\n")
}
