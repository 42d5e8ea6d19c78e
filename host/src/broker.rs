//! The running broker's shared state: config, storage, keys and the live connectors, built
//! from a validated config. The web layer reads it; `Generations` swaps the serving generation on reload.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::{StorageConfig, Validated};
use crate::connectors::{CompileCache, PluginEngine};
use crate::generation::{Live, Sources, failure_list, load_connectors, load_policies};
use crate::keys::Keys;
use crate::reload::Generations;
use crate::secret::Secret;
use crate::storage::{Backend, Store};

/// Everything a request handler needs.
#[derive(Debug)]
pub struct Broker {
    /// The serving generation (config + connectors), those kept for logins in flight, and reloading.
    pub generations: Arc<Generations>,
    pub store: Store,
    pub keys: Keys,
    pub engine: Arc<PluginEngine>,
    /// Per-IP and per-account throttles; they outlive reloads.
    pub throttles: crate::throttle::Throttles,
    /// Set on SIGTERM: readiness answers 503 from then on (`web.shutdownDelay`).
    pub draining: std::sync::atomic::AtomicBool,
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
    let host = c.host.as_deref().unwrap_or("localhost");
    // Dex takes HOST:PORT in `host` when `port` is absent.
    let (host, port) = match (c.port, host.rsplit_once(':')) {
        (None, Some((name, port))) if !name.contains(':') && port.parse::<u16>().is_ok() => (name, port.parse().ok()),
        (port, _) => (host, port),
    };
    let _ = url.set_host(Some(host));
    let _ = url.set_port(Some(port.unwrap_or(5432)));
    let _ = url.set_username(c.user.as_deref().unwrap_or("postgres"));
    if let Some(pw) = &c.password {
        let _ = url.set_password(Some(pw.expose()));
    }
    url.set_path(c.database.as_deref().unwrap_or("portcullis"));
    // As Dex: the strictest mode when none is given.
    let ssl = c.ssl.clone().unwrap_or_default();
    let mut query = url.query_pairs_mut();
    query.append_pair("sslmode", ssl.mode.as_deref().unwrap_or("verify-full"));
    for (key, file) in [("sslrootcert", &ssl.ca_file), ("sslcert", &ssl.cert_file), ("sslkey", &ssl.key_file)] {
        if let Some(file) = file {
            query.append_pair(key, file);
        }
    }
    drop(query);
    Secret::new(url.to_string())
}

/// The MySQL connection a storage block describes, as Dex reads it: TLS (verified) unless
/// `ssl.mode` says otherwise; CA or client files give verified TLS with them.
pub fn mysql_options(c: &crate::config::MysqlConfig) -> sqlx::mysql::MySqlConnectOptions {
    use sqlx::mysql::MySqlSslMode;
    let mut options = sqlx::mysql::MySqlConnectOptions::new();
    let host = c.host.as_deref().unwrap_or("localhost");
    if host.starts_with('/') {
        options = options.socket(host);
    } else {
        // Dex takes HOST:PORT in `host` when `port` is absent.
        let (name, port) = match (c.port, host.rsplit_once(':')) {
            (None, Some((name, port))) if !name.contains(':') => (name, port.parse().ok()),
            (port, _) => (host, port),
        };
        options = options.host(name).port(port.unwrap_or(3306));
    }
    options = options.username(c.user.as_deref().unwrap_or("root"));
    if let Some(pw) = &c.password {
        options = options.password(pw.expose());
    }
    options = options.database(c.database.as_deref().unwrap_or("portcullis"));
    let ssl = c.ssl.clone().unwrap_or_default();
    let files = ssl.ca_file.is_some() || ssl.cert_file.is_some();
    let mode = match ssl.mode.as_deref() {
        _ if files => MySqlSslMode::VerifyIdentity,
        Some("false") => MySqlSslMode::Disabled,
        Some("skip-verify") => MySqlSslMode::Required,
        Some("preferred") => MySqlSslMode::Preferred,
        _ => MySqlSslMode::VerifyIdentity,
    };
    options = options.ssl_mode(mode);
    if let Some(ca) = &ssl.ca_file {
        options = options.ssl_ca(ca);
    }
    if let (Some(cert), Some(key)) = (&ssl.cert_file, &ssl.key_file) {
        options = options.ssl_client_cert(cert).ssl_client_key(key);
    }
    options
}

/// Opens the configured storage backend (creating and migrating it when new).
pub async fn open_storage(config: &Validated) -> anyhow::Result<Arc<dyn Backend>> {
    Ok(match &config.storage {
        // Dex's `sqlite3` with `file: ":memory:"` is a database that lives as long as the process:
        // the memory storage (an SQLite `:memory:` would be one database per pooled connection).
        StorageConfig::Memory(_) => Arc::new(crate::storage::memory::MemoryBackend::new()),
        StorageConfig::Sqlite3(s) if s.file == ":memory:" => Arc::new(crate::storage::memory::MemoryBackend::new()),
        StorageConfig::Sqlite3(s) => {
            let path = config.base_dir.join(&s.file);
            Arc::new(
                crate::storage::sql::SqlBackend::sqlite(&path)
                    .await
                    .with_context(|| format!("storage: cannot open SQLite database {}", path.display()))?,
            )
        }
        StorageConfig::Postgres(p) => Arc::new(
            crate::storage::sql::SqlBackend::postgres_with(
                postgres_url(p).expose(),
                p.max_open_conns,
                p.connection_timeout.map(Duration::from_secs),
                p.conn_max_lifetime.map(Duration::from_secs),
            )
            .await
            .context("storage: cannot open the PostgreSQL database")?,
        ),
        StorageConfig::Mysql(m) => Arc::new(
            crate::storage::sql::SqlBackend::mysql_with(
                mysql_options(m),
                m.max_open_conns,
                m.connection_timeout.map(Duration::from_secs),
                m.conn_max_lifetime.map(Duration::from_secs),
            )
            .await
            .context("storage: cannot open the MySQL database")?,
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
        // The clients, passwords and connectors the admin API stored join the file's.
        let stored = store.stored(now()).await.context("cannot read what the admin API stored")?;
        let file_config = Arc::new(config.clone());
        let config = config.with_stored(&stored);
        let keys =
            Keys::new(store.clone(), config.signing_algorithm, config.expiry.signing_keys, config.expiry.id_tokens)
                .with_access_algorithm(config.access_token_algorithm);
        keys.refresh(now()).await.context("cannot load or create the signing keys")?;
        let cache = match config.cache_dir.clone().or_else(CompileCache::default_dir) {
            Some(dir) => CompileCache::at(dir),
            None => CompileCache::disabled(),
        };
        let engine = PluginEngine::with_pool(cache, config.pool).context("cannot start the WebAssembly engine")?;
        let mut sources = Sources::read(&config).await;
        sources.stored_version = stored.version;
        let (registry, failed) = load_connectors(&engine, &config, None).await;
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
        // A policy is a rule: the broker does not start without one it cannot load.
        let policies = load_policies(&engine, &config, None).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut live = Live::new(file_config, config, registry, 1, sources).with_policies(policies);
        live.failed = failed;
        let status = crate::reload::ReloadStatus::of(&live, crate::reload::Outcome::Started);
        let generations = Arc::new(Generations::new(live, status, engine.clone(), store.clone()));
        let throttles = crate::throttle::Throttles::new(&generations.current().config.web.throttle);
        Ok(Arc::new(Self { generations, store, keys, engine, throttles, draining: Default::default() }))
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
                broker.generations.drop_unreachable();
                broker.throttles.forget_idle();
                match broker.store.collect_garbage(now()).await {
                    Ok(0) => {}
                    Ok(n) => {
                        crate::metrics::global().gc_collected.inc_by(n);
                        tracing::debug!("garbage-collected {n} expired objects");
                    }
                    Err(e) => tracing::warn!("garbage collection failed: {e}"),
                }
            }
        })
    }
}
