//! The running broker's shared state: config, storage, keys and the live connectors, built
//! from a validated config. The web layer reads it; hot reload swaps `live`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use arc_swap::ArcSwap;

use crate::config::{StorageConfig, Validated};
use crate::connectors::{CompileCache, PluginEngine, Registry};
use crate::keys::Keys;
use crate::secret::Secret;
use crate::storage::{Backend, Store};

/// What a reload replaces as one: the config and the connectors built from it.
#[derive(Debug)]
pub struct Live {
    pub config: Arc<Validated>,
    pub registry: Arc<Registry>,
    /// Grows by one on every successful reload; auth requests remember theirs.
    pub generation: u64,
}

/// Everything a request handler needs.
#[derive(Debug)]
pub struct Broker {
    pub live: ArcSwap<Live>,
    pub store: Store,
    pub keys: Keys,
    pub engine: Arc<PluginEngine>,
    /// Earlier generations still referenced by logins in flight (newest first, a few kept).
    pub(crate) previous: std::sync::Mutex<std::collections::VecDeque<Arc<Live>>>,
    /// The outcome of the last reload (or of the start).
    pub status: ArcSwap<crate::reload::ReloadStatus>,
    /// Serialises reloads.
    pub(crate) reloading: tokio::sync::Mutex<()>,
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The PostgreSQL URL a storage block describes.
pub fn postgres_url(c: &crate::config::PostgresConfig) -> Secret {
    if let Some(url) = &c.url {
        return url.clone();
    }
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
        let registry = Self::load_registry(&engine, &config, None).await?;
        let live = Live { config: Arc::new(config), registry: Arc::new(registry), generation: 1 };
        let status = crate::reload::ReloadStatus::success(&live);
        Ok(Arc::new(Self {
            live: ArcSwap::from_pointee(live),
            store,
            keys,
            engine,
            previous: Default::default(),
            status: ArcSwap::from_pointee(status),
            reloading: tokio::sync::Mutex::new(()),
        }))
    }

    /// Loads the connectors a config names; every error is reported, none is fatal alone.
    pub async fn load_registry(
        engine: &Arc<PluginEngine>,
        config: &Validated,
        previous: Option<&Registry>,
    ) -> anyhow::Result<Registry> {
        let specs: Vec<_> = config.connectors.iter().map(|c| c.spec.clone()).collect();
        Registry::load(engine, &specs, previous).await.map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
            anyhow::anyhow!("connectors failed to load:\n{}", lines.join("\n"))
        })
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
                match broker.store.collect_garbage(now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!("garbage-collected {n} expired objects"),
                    Err(e) => tracing::warn!("garbage collection failed: {e}"),
                }
            }
        })
    }
}
