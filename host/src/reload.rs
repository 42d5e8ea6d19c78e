//! Hot reload: a new config (and the components it names) is parsed, validated and compiled
//! off the request path, then swapped in as one; a broken one never replaces the working one.
//! Triggered by file changes (`notify`, debounced), SIGHUP, and `POST /reload` on the
//! telemetry listener (`portcullis reload`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::broker::{Broker, Live, now};
use crate::config::{Config, StorageConfig, Validated};

/// How many earlier generations stay available to logins begun on them.
const KEEP_GENERATIONS: usize = 8;
/// Quiet time after the last file event before reloading (editors write several times).
const DEBOUNCE: Duration = Duration::from_millis(150);

/// What the status endpoint and `/readyz` report.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadStatus {
    /// The generation serving now.
    pub generation: u64,
    /// Whether the last attempt succeeded (the start counts as one).
    pub ok: bool,
    /// Unix seconds of the last attempt.
    pub at: i64,
    /// Why the last attempt failed; the previous generation kept serving.
    pub error: Option<String>,
    /// sha256 of the active config file's text.
    pub config_sha256: String,
    /// Active connectors and the sha256 of their plugins.
    pub plugins: Vec<PluginDigest>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PluginDigest {
    pub connector: String,
    pub path: String,
    pub sha256: String,
}

impl ReloadStatus {
    pub fn success(live: &Live) -> Self {
        Self {
            generation: live.generation,
            ok: true,
            at: now(),
            error: None,
            config_sha256: live.config.sha256.clone(),
            plugins: live
                .registry
                .iter()
                .map(|c| PluginDigest {
                    connector: c.id().into(),
                    path: c.plugin().path.display().to_string(),
                    sha256: c.plugin().sha256.clone(),
                })
                .collect(),
        }
    }
}

/// Settings a running broker cannot change in place.
fn restart_needed(old: &Validated, new: &Validated) -> Option<&'static str> {
    let storage = |s: &StorageConfig| match s {
        StorageConfig::Memory => "memory".to_string(),
        StorageConfig::Sqlite3(c) => format!("sqlite3:{}", c.file),
        StorageConfig::Postgres(c) => format!("postgres:{:?}:{:?}:{:?}", c.host, c.port, c.database),
    };
    if old.issuer != new.issuer {
        Some("issuer")
    } else if storage(&old.storage) != storage(&new.storage) {
        Some("storage")
    } else if old.web.http != new.web.http || old.web.https != new.web.https {
        Some("web")
    } else if old.telemetry.http != new.telemetry.http {
        Some("telemetry")
    } else if old.signing_algorithm != new.signing_algorithm {
        Some("signing.algorithm")
    } else {
        None
    }
}

impl Broker {
    /// Reloads the config file the broker started from. On error the running generation keeps
    /// serving and the error is logged and kept in `status`.
    pub async fn reload(&self) -> Result<u64, String> {
        let _one_at_a_time = self.reloading.lock().await;
        let current = self.live.load_full();
        let outcome = self.build_next(&current).await;
        match outcome {
            Ok(next) => {
                let generation = next.generation;
                let next = Arc::new(next);
                self.status.store(Arc::new(ReloadStatus::success(&next)));
                let old = self.live.swap(next);
                if let Ok(mut previous) = self.previous.lock() {
                    previous.push_front(old);
                    previous.truncate(KEEP_GENERATIONS);
                }
                tracing::info!(generation, "reloaded the config");
                crate::metrics::global()
                    .reloads
                    .get_or_create(&crate::metrics::OutcomeLabels { outcome: "success" })
                    .inc();
                Ok(generation)
            }
            Err(error) => {
                tracing::error!("reload failed, still serving generation {}: {error}", current.generation);
                crate::metrics::global()
                    .reloads
                    .get_or_create(&crate::metrics::OutcomeLabels { outcome: "failure" })
                    .inc();
                let mut status = ReloadStatus::success(&current);
                status.ok = false;
                status.error = Some(error.clone());
                self.status.store(Arc::new(status));
                Err(error)
            }
        }
    }

    async fn build_next(&self, current: &Live) -> Result<Live, String> {
        let path = current.config.source.clone();
        let config = Config::load(&path).map_err(|e| e.to_string())?;
        if let Some(key) = restart_needed(&current.config, &config) {
            return Err(format!(
                "{}: {key} changed; that needs a restart (the rest of the file was not applied)",
                path.display()
            ));
        }
        let registry = Broker::load_registry(&self.engine, &config, Some(&current.registry))
            .await
            .map_err(|e| format!("{}: {e:#}", path.display()))?;
        Ok(Live { config: Arc::new(config), registry: Arc::new(registry), generation: current.generation + 1 })
    }

    /// The generation a login began on, if still kept; else the current one.
    pub fn generation(&self, generation: Option<u64>) -> Arc<Live> {
        let current = self.live.load_full();
        match generation {
            Some(g) if g != current.generation => {
                self.previous.lock().ok().and_then(|p| p.iter().find(|l| l.generation == g).cloned()).unwrap_or(current)
            }
            _ => current,
        }
    }

    /// Files whose change triggers a reload: the config and every plugin it names.
    fn watched_files(&self) -> BTreeSet<PathBuf> {
        let live = self.live.load();
        let mut files: BTreeSet<PathBuf> = live.config.connectors.iter().map(|c| absolute(&c.spec.plugin)).collect();
        files.insert(absolute(&live.config.source));
        files
    }

    /// Reloads on SIGHUP and whenever the config or a plugin file changes, until the broker
    /// is dropped.
    pub fn spawn_reloaders(self: &Arc<Self>) {
        let broker = Arc::downgrade(self);
        tokio::spawn(async move {
            let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
            while hangup.recv().await.is_some() {
                let Some(broker) = broker.upgrade() else { break };
                tracing::info!("SIGHUP: reloading");
                let _ = broker.reload().await;
            }
        });
        let broker = Arc::downgrade(self);
        tokio::spawn(async move { watch(broker).await });
    }
}

fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Watches the directories of the watched files (editors replace files, so the directory is
/// what sees the change), debounces, reloads, and re-arms with the new file set.
async fn watch(broker: std::sync::Weak<Broker>) {
    use notify::{RecursiveMode, Watcher};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
    }) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("cannot watch the config for changes ({e}); reload with SIGHUP or `portcullis reload`");
            return;
        }
    };
    let mut watched_dirs: BTreeSet<PathBuf> = BTreeSet::new();
    loop {
        let Some(files) = broker.upgrade().map(|b| b.watched_files()) else { return };
        let dirs: BTreeSet<PathBuf> = files.iter().filter_map(|f| f.parent().map(PathBuf::from)).collect();
        for dir in dirs.difference(&watched_dirs) {
            if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                tracing::warn!("cannot watch {}: {e}", dir.display());
            }
        }
        for dir in watched_dirs.difference(&dirs) {
            let _ = watcher.unwatch(dir);
        }
        watched_dirs = dirs;
        // Wait for a change to one of our files, then for quiet.
        loop {
            let Some(path) = rx.recv().await else { return };
            if files.contains(&absolute(&path)) {
                break;
            }
        }
        loop {
            match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                Ok(Some(_)) => continue,
                Ok(None) => return,
                Err(_) => break,
            }
        }
        let Some(b) = broker.upgrade() else { return };
        tracing::info!("config or plugin file changed: reloading");
        let _ = b.reload().await;
    }
}
