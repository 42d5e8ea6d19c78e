//! Hot reload: a new config (and the components it names) is parsed, validated and compiled
//! off the request path, then swapped in as one; a broken one never replaces the working one.
//! A reload happens only when bytes changed: the config file's, or a plugin file's that the
//! config names (sha256 against the serving generation's `Sources`). Triggered by file changes
//! (`notify`, debounced, access and metadata events ignored), SIGHUP, and `POST /reload` on the
//! telemetry listener (`portcullis reload`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use serde::Serialize;

use arc_swap::ArcSwap;

use crate::clock::now;
use crate::config::{Config, StorageConfig, Validated};
use crate::connectors::PluginEngine;
use crate::generation::{FailedConnector, Live, Sources, failure_list, load_connectors, load_policies};
use crate::storage::Store;

/// Quiet time after the last file event before looking at the files (editors write several times).
const DEBOUNCE: Duration = Duration::from_millis(150);

/// What the last reload attempt (or the start) came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The broker started (possibly degraded: see `failed_connectors`).
    Started,
    /// A new generation is serving.
    Reloaded,
    /// The files had the serving generation's bytes: nothing was rebuilt.
    Unchanged,
    /// The new files were refused; the generation before keeps serving.
    Failed,
}

/// What a successful `Broker::reload` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reloaded {
    /// The generation serving now.
    pub generation: u64,
    /// False when nothing had changed and the generation was kept.
    pub changed: bool,
}

impl std::fmt::Display for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.changed {
            write!(f, "reloaded, generation {}", self.generation)
        } else {
            write!(f, "unchanged, generation {}", self.generation)
        }
    }
}

/// What started a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP, `POST /reload`, `portcullis reload`: re-read everything, and retry connectors a
    /// degraded start left out even when no byte changed.
    Explicit,
    /// A file event: act only on changed bytes, and report a broken version once.
    FileChange,
    /// The admin API changed what storage holds (here, or on another replica: `watch_stored`).
    Stored,
}

/// What the status endpoint and `/readyz` report.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadStatus {
    /// The generation serving now.
    pub generation: u64,
    /// Whether the last attempt succeeded (the start counts as one).
    pub ok: bool,
    pub outcome: Outcome,
    /// Unix seconds of the last attempt.
    pub at: i64,
    /// Why the last attempt failed; the previous generation kept serving.
    pub error: Option<String>,
    /// Whether configured connectors are not serving (`failed_connectors`).
    pub degraded: bool,
    pub failed_connectors: Vec<FailedConnector>,
    /// sha256 of the active config file's text.
    pub config_sha256: String,
    /// Active connectors and policies (`policy:<id>`) and the sha256 of their plugins.
    pub plugins: Vec<PluginDigest>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PluginDigest {
    pub connector: String,
    pub path: String,
    pub sha256: String,
}

impl ReloadStatus {
    /// The status of `live` serving after an attempt that came to `outcome`.
    pub fn of(live: &Live, outcome: Outcome) -> Self {
        Self {
            generation: live.generation,
            ok: outcome != Outcome::Failed,
            outcome,
            at: now(),
            error: None,
            degraded: !live.failed.is_empty(),
            failed_connectors: live.failed.clone(),
            config_sha256: live.config.sha256.clone(),
            plugins: live
                .registry
                .iter()
                .map(|c| PluginDigest {
                    connector: c.id().into(),
                    path: c.plugin().path.display().to_string(),
                    sha256: c.plugin().sha256.clone(),
                })
                .chain(live.policies.iter().map(|p| PluginDigest {
                    connector: format!("policy:{}", p.id()),
                    path: p.plugin().path.display().to_string(),
                    sha256: p.plugin().sha256.clone(),
                }))
                .collect(),
        }
    }
}

/// How often a replica looks whether the admin API changed what storage holds (one read).
pub const STORED_POLL: Duration = Duration::from_secs(2);

/// The file's config and the served one: the file's with what the admin API stored merged in.
type Configs = (Arc<Validated>, Validated);

/// Reads the config file at `path`, adds what the admin API stored, and hashes the file, the
/// plugins the result names and the stored version. Storage that cannot be read fails the
/// attempt (the serving generation stays).
async fn read_all(path: &Path, store: &Store) -> (Result<Configs, String>, Sources) {
    let (config, sources) = read_sources(path).await;
    match config {
        Ok(config) => merge_stored(Arc::new(config), store, sources).await,
        Err(e) => (Err(e), sources),
    }
}

/// `file` with what the admin API stored now; `sources` with the plugins and the version.
async fn merge_stored(file: Arc<Validated>, store: &Store, mut sources: Sources) -> (Result<Configs, String>, Sources) {
    let stored = match store.stored(now()).await {
        Ok(stored) => stored,
        Err(e) => {
            return (Err(format!("cannot read the clients, passwords and connectors the API stored: {e}")), sources);
        }
    };
    let config = (*file).clone().with_stored(&stored);
    sources = Sources::read(&config).await;
    sources.stored_version = stored.version;
    (Ok((file, config)), sources)
}

/// Reads the config file at `path` and hashes it and the plugins it names. A config that does
/// not parse still gets its digest, so the same broken bytes are recognised when seen again.
async fn read_sources(path: &Path) -> (Result<Validated, String>, Sources) {
    let text = match Config::read(path) {
        Ok(text) => text,
        Err(e) => {
            let sources = Sources {
                config_sha256: format!("unreadable: {}", e.message),
                plugins: BTreeMap::new(),
                root_cas: BTreeMap::new(),
                stored_version: 0,
            };
            return (Err(e.to_string()), sources);
        }
    };
    match Config::from_text(path, &text) {
        Ok(config) => {
            let sources = Sources::read(&config).await;
            (Ok(config), sources)
        }
        Err(e) => {
            let sources = Sources {
                config_sha256: crate::connectors::loader::sha256_hex(text.as_bytes()),
                plugins: BTreeMap::new(),
                root_cas: BTreeMap::new(),
                stored_version: 0,
            };
            (Err(e.to_string()), sources)
        }
    }
}

/// Keeps the generations an unexpired auth request is pinned to.
fn drop_unreachable(retired: &mut Vec<Arc<Live>>) {
    let now = now();
    retired.retain(|l| l.pinned_until.load(Ordering::SeqCst) > now);
}

fn count_reload(outcome: &'static str) {
    crate::metrics::global().reloads.get_or_create(&crate::metrics::OutcomeLabels { outcome }).inc();
}

/// Settings a running broker cannot change in place.
fn restart_needed(old: &Validated, new: &Validated) -> Option<&'static str> {
    let storage = |s: &StorageConfig| match s {
        StorageConfig::Memory(_) => "memory".to_string(),
        StorageConfig::Sqlite3(c) => format!("sqlite3:{}", c.file),
        StorageConfig::Postgres(c) => format!("postgres:{:?}:{:?}:{:?}", c.host, c.port, c.database),
        StorageConfig::Mysql(c) => format!("mysql:{:?}:{:?}:{:?}:{:?}", c.host, c.port, c.database, c.user),
    };
    if old.issuer != new.issuer {
        Some("issuer")
    } else if storage(&old.storage) != storage(&new.storage) {
        Some("storage")
    } else if format!("{:?}", old.web) != format!("{:?}", new.web) {
        // Listeners, TLS, headers, CORS, client-IP rules and throttles are set up at start.
        Some("web")
    } else if old.telemetry.http != new.telemetry.http {
        Some("telemetry")
    } else if old.grpc != new.grpc {
        Some("grpc")
    } else if old.signing_algorithm != new.signing_algorithm {
        Some("signing.algorithm")
    } else if old.access_token_algorithm != new.access_token_algorithm {
        Some("signing.accessTokenAlgorithm")
    } else if old.pool != new.pool {
        // The pooling allocator's per-component caps are fixed when the engine is built.
        Some("plugins.pool")
    } else {
        None
    }
}

/// The generations of the broker's config and connectors: the one serving, the retired ones a
/// login in flight may still come back to, and how the last reload went. It alone swaps them.
#[derive(Debug)]
pub struct Generations {
    live: ArcSwap<Live>,
    /// Earlier generations that an auth request in flight may still come back to; each is
    /// dropped once no such request can (see `pin`), however many reloads happen.
    retired: std::sync::Mutex<Vec<Arc<Live>>>,
    /// The sources of the last reload that failed, so a file event that brings the same broken
    /// bytes again (a touch, a read) does not report the same failure again.
    last_failed: std::sync::Mutex<Option<Sources>>,
    /// The outcome of the last reload (or of the start).
    status: ArcSwap<ReloadStatus>,
    /// Serialises reloads.
    reloading: tokio::sync::Mutex<()>,
    engine: Arc<PluginEngine>,
    /// Where the admin API's clients, passwords and connectors are read from.
    store: Store,
}

impl Generations {
    /// The generations of a broker that started serving `live` with `status`.
    pub fn new(live: Live, status: ReloadStatus, engine: Arc<PluginEngine>, store: Store) -> Self {
        Self {
            store,
            live: ArcSwap::from_pointee(live),
            retired: Default::default(),
            last_failed: Default::default(),
            status: ArcSwap::from_pointee(status),
            reloading: tokio::sync::Mutex::new(()),
            engine,
        }
    }

    /// The serving generation. A handler loads it once, so a request never sees half of two.
    pub fn current(&self) -> Arc<Live> {
        self.live.load_full()
    }

    /// The outcome of the last reload (or of the start).
    pub fn status(&self) -> Arc<ReloadStatus> {
        self.status.load_full()
    }

    /// Re-reads the config file the broker started from and every plugin it names (SIGHUP,
    /// `POST /reload`). Bytes like the serving generation's keep it (`changed: false`). On
    /// error the running generation keeps serving and the error is logged and kept in `status`.
    pub async fn reload(&self) -> Result<Reloaded, String> {
        self.reload_on(Trigger::Explicit).await
    }

    pub async fn reload_on(&self, trigger: Trigger) -> Result<Reloaded, String> {
        let _one_at_a_time = self.reloading.lock().await;
        let current = self.live.load_full();
        let path = current.config.source.clone();
        // A change of stored objects merges them into the serving file config again; the file
        // itself is the file watcher's business (and may be mid-edit now).
        let (config, sources) = match trigger {
            Trigger::Stored => merge_stored(current.file_config.clone(), &self.store, current.sources.clone()).await,
            Trigger::Explicit | Trigger::FileChange => read_all(&path, &self.store).await,
        };
        let retry_failed = trigger == Trigger::Explicit && !current.failed.is_empty();
        if sources == current.sources && !retry_failed {
            *self.last_failed.lock().unwrap_or_else(PoisonError::into_inner) = None;
            let outcome = Reloaded { generation: current.generation, changed: false };
            match trigger {
                Trigger::Explicit => tracing::info!("reload: {outcome}"),
                Trigger::FileChange => tracing::debug!("file event without a change of bytes: {outcome}"),
                Trigger::Stored => tracing::debug!("stored objects unchanged: {outcome}"),
            }
            // A change reverted to the serving bytes clears the failure the status reported.
            if trigger == Trigger::Explicit || !self.status.load().ok {
                self.status.store(Arc::new(ReloadStatus::of(&current, Outcome::Unchanged)));
            }
            count_reload("unchanged");
            return Ok(outcome);
        }
        if trigger != Trigger::Explicit
            && self.last_failed.lock().unwrap_or_else(PoisonError::into_inner).as_ref() == Some(&sources)
        {
            let error = self.status.load().error.clone().unwrap_or_default();
            tracing::debug!("file event on the broken version already reported: nothing to do");
            return Err(error);
        }
        match trigger {
            Trigger::FileChange => tracing::info!("config or plugin file changed: reloading"),
            Trigger::Stored => tracing::info!("the admin API changed clients, passwords or connectors: reloading"),
            Trigger::Explicit => {}
        }
        let config = match config {
            Ok(config) => config,
            Err(error) => return self.refuse(&current, error, sources),
        };
        match self.build_next(&current, config, sources.clone()).await {
            Ok(next) => {
                let generation = next.generation;
                let next = Arc::new(next);
                self.status.store(Arc::new(ReloadStatus::of(&next, Outcome::Reloaded)));
                *self.last_failed.lock().unwrap_or_else(PoisonError::into_inner) = None;
                let old = self.live.swap(next);
                self.retire(old);
                tracing::info!(generation, "reloaded the config");
                count_reload("success");
                Ok(Reloaded { generation, changed: true })
            }
            Err(error) => self.refuse(&current, error, sources),
        }
    }

    /// Records a refused reload: logged, counted, kept in `status`; `current` keeps serving.
    fn refuse(&self, current: &Live, error: String, sources: Sources) -> Result<Reloaded, String> {
        tracing::error!("reload failed, still serving generation {}: {error}", current.generation);
        count_reload("failure");
        let mut status = ReloadStatus::of(current, Outcome::Failed);
        status.error = Some(error.clone());
        self.status.store(Arc::new(status));
        *self.last_failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(sources);
        Err(error)
    }

    async fn build_next(&self, current: &Live, (file, config): Configs, sources: Sources) -> Result<Live, String> {
        let path = current.config.source.clone();
        if let Some(key) = restart_needed(&current.config, &config) {
            return Err(format!(
                "{}: {key} changed; that needs a restart (the rest of the file was not applied)",
                path.display()
            ));
        }
        // A connector the API stored that fails to load is left out (listed in `failed`): it
        // must not hold back a change to the file. The file's own stay all or nothing.
        let (registry, failed) = load_connectors(&self.engine, &config, Some(&current.registry)).await;
        let (stored, from_file): (Vec<_>, Vec<_>) =
            failed.into_iter().partition(|f| config.stored.connectors.contains(f.connector.as_str()));
        if !from_file.is_empty() {
            return Err(format!(
                "{}: connectors failed to load:\n{}\n(a reload is all or nothing: fix or remove these connectors)",
                path.display(),
                failure_list(&from_file)
            ));
        }
        for f in &stored {
            tracing::error!(connector = %f.connector, "stored connector left out: {}", f.error);
        }
        // Policies are all or nothing, from the file and the API alike: a rule that does not load
        // must not be dropped by a reload.
        let policies = load_policies(&self.engine, &config, Some(current.policies.as_ref())).await.map_err(|e| {
            format!("{}: {e}\n(a reload is all or nothing: fix or remove these policies)", path.display())
        })?;
        let mut next = Live::new(file, config, registry, current.generation + 1, sources).with_policies(policies);
        next.failed = stored;
        Ok(next)
    }

    /// Keeps `live` findable by `generation` until `expires_at`: an auth request that may
    /// come back to it until then was just pinned to it. Race-free with `retire`: whichever
    /// runs second sees the other's work (under the same lock), so a generation a login pinned
    /// is never dropped before the login expires.
    pub fn pin(&self, live: &Arc<Live>, expires_at: i64) {
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        live.pinned_until.fetch_max(expires_at, Ordering::SeqCst);
        let serving = self.live.load_full().generation == live.generation;
        if !serving && !retired.iter().any(|l| l.generation == live.generation) {
            retired.push(live.clone());
        }
    }

    /// `old` stops serving: kept while an auth request pinned to it can still come back.
    fn retire(&self, old: Arc<Live>) {
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        if !retired.iter().any(|l| l.generation == old.generation) {
            retired.push(old);
        }
        drop_unreachable(&mut retired);
    }

    /// Drops the retired generations no unexpired auth request can refer to (upkeep).
    pub fn drop_unreachable(&self) {
        drop_unreachable(&mut self.retired.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// The generations kept for logins in flight, oldest first.
    pub fn retired_generations(&self) -> Vec<u64> {
        let mut kept: Vec<u64> =
            self.retired.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|l| l.generation).collect();
        kept.sort_unstable();
        kept
    }

    /// The generation a login began on, if still kept; else the current one.
    pub fn generation(&self, generation: Option<u64>) -> Arc<Live> {
        let current = self.live.load_full();
        match generation {
            Some(g) if g != current.generation => self
                .retired
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .find(|l| l.generation == g)
                .cloned()
                .unwrap_or(current),
            _ => current,
        }
    }

    /// Files whose change triggers a look at the bytes: the config, every plugin (policies'
    /// too) and `rootCAs` file it names, and where a symlink among them points (the change happens there).
    fn watched_files(&self) -> BTreeSet<PathBuf> {
        let live = self.live.load_full();
        let named = live.config.connectors.iter().map(|c| &c.spec.plugin).chain([&live.config.source]);
        let named = named.chain(live.config.policies.iter().map(|p| &p.plugin));
        let named = named.chain(live.sources.root_cas.keys());
        let mut files = BTreeSet::new();
        for path in named {
            files.insert(absolute(path));
            if let Ok(target) = std::fs::canonicalize(path) {
                files.insert(target);
            }
        }
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
        self.spawn_stored_watch();
    }

    /// Rebuilds the generation whenever another replica's API call changed the stored objects,
    /// until the broker is dropped (part of `spawn_reloaders`).
    pub fn spawn_stored_watch(self: &Arc<Self>) {
        let broker = Arc::downgrade(self);
        tokio::spawn(async move { watch_stored(broker).await });
    }

    /// Applies a change the admin API just made on this replica, now rather than at the next
    /// poll; the change is stored either way, so an error here is logged and left to the poll.
    pub async fn apply_stored(&self) {
        if let Err(e) = self.reload_on(Trigger::Stored).await {
            tracing::error!("the API's change is stored but not serving yet: {e}");
        }
    }

    /// The version of the API's objects the serving generation was built from.
    pub fn stored_version(&self) -> i64 {
        self.live.load().sources.stored_version
    }
}

/// Rebuilds the generation when another replica's API call moved the stored version, until
/// the broker is dropped: one read of one record every `STORED_POLL`.
async fn watch_stored(broker: std::sync::Weak<Generations>) {
    let mut tick = tokio::time::interval(STORED_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(b) = broker.upgrade() else { return };
        match b.store.api_version(now()).await {
            Ok(version) if version != b.stored_version() => {
                let _ = b.reload_on(Trigger::Stored).await;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!("cannot read the API's change counter: {e}"),
        }
    }
}

fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Whether a file event can mean new bytes. Reads (open, close without writing) and metadata
/// changes (a `touch`, a `chmod`) cannot; the broker's own reads of its files would otherwise
/// trigger it again, forever. Whatever passes is still checked against the bytes.
fn may_change_bytes(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::ModifyKind;
    !matches!(kind, EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)))
}

/// Whether an event on `path` may have changed one of `files`: it is one of them, or a name
/// starting with `..` — Kubernetes updates a mounted ConfigMap or Secret by pointing its
/// `..data` symlink at a new folder, so the files themselves see no event.
fn concerns(files: &BTreeSet<PathBuf>, path: &Path) -> bool {
    files.contains(&absolute(path)) || path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".."))
}

/// Watches the directories of the watched files (editors replace files, so the directory is
/// what sees the change), waits for quiet after an event on one of them, lets `reload_on`
/// compare the bytes, and re-arms with the new file set.
async fn watch(broker: std::sync::Weak<Generations>) {
    use notify::{RecursiveMode, Watcher};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && may_change_bytes(&event.kind)
        {
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
        // Wait for an event on one of our files (other files in the same folders, such as a
        // SQLite database, do not count), then for quiet on them.
        loop {
            let Some(path) = rx.recv().await else { return };
            if concerns(&files, &path) {
                break;
            }
        }
        let mut quiet_since = tokio::time::Instant::now();
        loop {
            match tokio::time::timeout_at(quiet_since + DEBOUNCE, rx.recv()).await {
                Ok(Some(path)) if concerns(&files, &path) => quiet_since = tokio::time::Instant::now(),
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(_) => break,
            }
        }
        let Some(b) = broker.upgrade() else { return };
        let _ = b.reload_on(Trigger::FileChange).await;
    }
}
