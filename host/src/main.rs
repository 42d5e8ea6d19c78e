//! The `portcullis` command line: run the broker, check a config, hash a password, inspect a
//! plugin.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portcullis::broker::Broker;
use portcullis::config::{Config, Validated};
use portcullis::connectors::{CompileCache, PluginEngine, inspect};

#[derive(Parser)]
#[command(name = "portcullis", version, about = "A federated OpenID Connect provider with WebAssembly connectors")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker with a config file.
    Serve {
        /// The YAML config (Dex-shaped).
        config: PathBuf,
    },
    /// Validate a config file without serving: parse, expand variables, load every plugin.
    CheckConfig { config: PathBuf },
    /// Ask a running broker to reload its config (through its telemetry listener).
    Reload {
        /// The running broker's config file (to find `telemetry.http`).
        config: PathBuf,
    },
    /// Print a password hash for `staticPasswords` or the admin API (reads the password from
    /// stdin): bcrypt (Dex's) by default, or argon2id.
    HashPassword {
        /// `bcrypt` (what Dex reads) or `argon2id` (cheaper per check; Portcullis only).
        #[arg(long, value_enum, default_value_t = HashAlgorithm::Bcrypt)]
        algorithm: HashAlgorithm,
        /// bcrypt cost.
        #[arg(long, default_value_t = 10)]
        cost: u32,
        /// argon2id memory per check, KiB (OWASP's 19456 = 19 MiB; at most 65536).
        #[arg(long, default_value_t = portcullis::password::ARGON2_DEFAULT_MEMORY_KIB)]
        memory: u32,
        /// argon2id passes over that memory (at most 10).
        #[arg(long, default_value_t = portcullis::password::ARGON2_DEFAULT_ITERATIONS)]
        iterations: u32,
        /// argon2id lanes (at most 8).
        #[arg(long, default_value_t = portcullis::password::ARGON2_DEFAULT_LANES)]
        parallelism: u32,
    },
    /// Import a Dex deployment's storage (clients, passwords, connectors, refresh tokens, keys)
    /// into this broker's, so nobody logs in again (docs/migrating-from-dex.md).
    ImportDex {
        /// Dex's config file (its `storage` block says where Dex keeps its data).
        dex_config: PathBuf,
        /// This broker's config file (whose storage receives the data).
        #[arg(long)]
        into: PathBuf,
        /// Report what would be imported, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// For Dex's `storage.type: kubernetes`: a `kubectl get … -o yaml` dump of Dex's objects.
        #[arg(long)]
        kubernetes_dump: Option<PathBuf>,
    },
    /// Work with connector plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

/// The schemes `hash-password` makes.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum HashAlgorithm {
    Bcrypt,
    Argon2id,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Print the world and contract version a component targets, its exports, size and sha256.
    Inspect {
        /// The `.wasm` component.
        file: PathBuf,
    },
}

fn init_logging(level: Option<&str>, json: bool) {
    portcullis::logging::init(level, json, &[]);
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let validated = Config::load(&config)?;
            let logger = &validated.logger;
            portcullis::logging::init(
                logger.level.as_deref(),
                logger.format.as_deref() == Some("json"),
                &logger.exclude_fields,
            );
            serve(validated).await
        }
        Command::ImportDex { dex_config, into, dry_run, kubernetes_dump } => {
            init_logging(Some("warn"), false);
            let dex = portcullis::migrate::dex_storage(&dex_config, kubernetes_dump.as_deref())?;
            let validated = Config::load(&into)?;
            let store = portcullis::storage::Store::new(portcullis::broker::open_storage(&validated).await?);
            let report = portcullis::migrate::import_dex(&dex, &store, &validated, dry_run).await?;
            println!("{report}");
            if dry_run {
                println!("(dry run: nothing was written)");
            }
            Ok(())
        }
        Command::CheckConfig { config } => {
            init_logging(Some("warn"), false);
            let validated = Config::load(&config)?;
            portcullis::web::tls::server_config(&validated.web)?;
            portcullis::api::tls_config(&validated.grpc)?;
            let cache = validated.cache_dir.clone().map(CompileCache::at).unwrap_or_else(CompileCache::disabled);
            let engine = PluginEngine::with_pool(cache, validated.pool)?;
            let registry = portcullis::generation::load_registry(&engine, &validated, None).await?;
            println!(
                "{}: ok ({} clients, {} connectors, storage {})",
                config.display(),
                validated.clients.len(),
                registry.len(),
                storage_name(&validated)
            );
            let policies = portcullis::generation::load_policies(&engine, &validated, None)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            if !policies.is_empty() {
                let ids: Vec<&str> = policies.iter().map(|p| p.id()).collect();
                println!("policies, in the order they apply: {}", ids.join(", "));
            }
            let specs = validated.connectors.iter().map(|entry| &entry.spec);
            print!("{}", portcullis::connectors::hosts_report(specs));
            Ok(())
        }
        Command::Reload { config } => {
            let validated = Config::load(&config)?;
            let address = validated.telemetry.http.clone().context(
                "telemetry.http is not set in the config: the broker has no admin listener to ask; send it SIGHUP instead",
            )?;
            let mut request = reqwest::Client::new().post(format!("http://{address}/reload"));
            if let Ok(token) = std::env::var(portcullis::telemetry::RELOAD_TOKEN_ENV) {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.with_context(|| {
                format!("cannot reach the broker's telemetry listener at {address}; is it running?")
            })?;
            let ok = response.status().is_success();
            let body: serde_json::Value =
                serde_json::from_slice(&response.bytes().await.unwrap_or_default()).unwrap_or_default();
            if ok {
                match body["message"].as_str() {
                    Some(message) => println!("{message}"),
                    None => println!("reloaded, generation {}", body["generation"]),
                }
                Ok(())
            } else {
                anyhow::bail!(
                    "reload refused, the previous config keeps serving: {}",
                    body["error"].as_str().unwrap_or("unknown error")
                )
            }
        }
        Command::HashPassword { algorithm, cost, memory, iterations, parallelism } => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password).context("cannot read the password from stdin")?;
            let password = password.trim_end_matches(['\n', '\r']);
            anyhow::ensure!(!password.is_empty(), "the password is empty; type it on stdin");
            if algorithm == HashAlgorithm::Argon2id {
                let hash = portcullis::password::hash_argon2id(password, memory, iterations, parallelism)?;
                println!("{hash}");
                return Ok(());
            }
            anyhow::ensure!(
                password.len() <= portcullis::web::BCRYPT_MAX_PASSWORD,
                "the password is {} bytes; bcrypt reads only the first {}, so the rest would be ignored: choose one of at most {} bytes",
                password.len(),
                portcullis::web::BCRYPT_MAX_PASSWORD,
                portcullis::web::BCRYPT_MAX_PASSWORD
            );
            println!("{}", bcrypt::hash(password, cost)?);
            Ok(())
        }
        Command::Plugin { command: PluginCommand::Inspect { file } } => {
            init_logging(Some("warn"), false);
            let engine = PluginEngine::new(CompileCache::disabled()).context("cannot start the WebAssembly engine")?;
            print!("{}", inspect::report(&engine, &file).await?);
            Ok(())
        }
    }
}

fn storage_name(config: &Validated) -> String {
    match &config.storage {
        portcullis::config::StorageConfig::Memory(_) => "memory".into(),
        // Where the file is, relative paths being the config's folder's (Dex: the working directory).
        portcullis::config::StorageConfig::Sqlite3(s) if s.file == ":memory:" => "memory (sqlite3 :memory:)".into(),
        portcullis::config::StorageConfig::Sqlite3(s) => format!("sqlite3 {}", config.base_dir.join(&s.file).display()),
        portcullis::config::StorageConfig::Postgres(_) => "postgres".into(),
        portcullis::config::StorageConfig::Mysql(_) => "mysql".into(),
    }
}

async fn serve(config: Validated) -> anyhow::Result<()> {
    // The certificate files are read before anything starts: a bad one is a config error.
    let tls = portcullis::web::tls::server_config(&config.web)?;
    let grpc_tls = portcullis::api::tls_config(&config.grpc)?;
    let (http, https) = (config.web.http.clone(), config.web.https.clone());
    let broker = Broker::start(config).await?;
    let live = broker.generations.current();
    let http_listener = match &http {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("web.http: cannot listen on {address}"))?,
        ),
        None => None,
    };
    let https_listener = match (&https, &tls) {
        (Some(address), Some(tls)) => Some((
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("web.https: cannot listen on {address}"))?,
            tls.clone(),
        )),
        _ => None,
    };
    if let Some(l) = &http_listener {
        tracing::info!(issuer = %live.config.issuer, "listening on http://{}", l.local_addr()?);
    }
    if let Some((l, _)) = &https_listener {
        tracing::info!(issuer = %live.config.issuer, "listening on https://{}", l.local_addr()?);
    }
    tracing::info!(storage = %storage_name(&live.config), "storage ready");
    let allocator = if broker.engine.pooling() { "pooling" } else { "on-demand (pool could not be reserved)" };
    tracing::info!(allocator, "plugin engine ready");
    for c in live.registry.iter() {
        let p = c.plugin();
        tracing::info!(connector = c.id(), plugin = %p.path.display(), contract = %p.version, sha256 = %p.sha256, "connector loaded");
    }
    let _upkeep = broker.spawn_upkeep();
    broker.generations.spawn_reloaders();
    if let Some(admin) = &live.config.telemetry.http {
        let admin_listener = tokio::net::TcpListener::bind(admin)
            .await
            .with_context(|| format!("telemetry.http: cannot listen on {admin}"))?;
        tracing::info!("telemetry listening on http://{}", admin_listener.local_addr()?);
        let admin_router = portcullis::telemetry::router(Arc::clone(&broker));
        // The same header timeout and connection cap as the public listener; no request
        // timeout (a reload may compile plugins for a while).
        let limits = portcullis::web::ServeLimits { request_timeout: None, ..Default::default() };
        tokio::spawn(portcullis::web::serve_with(admin_listener, admin_router, limits, std::future::pending()));
    }
    let grpc = &live.config.grpc;
    let grpc_listener = match &grpc.addr {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("grpc.addr: cannot listen on {addr}"))?;
            let mode = match (&grpc_tls, &grpc.tls_client_ca) {
                (None, _) => "plaintext",
                (Some(_), None) => "TLS",
                (Some(_), Some(_)) => "mutual TLS",
            };
            tracing::info!(mode, "admin API (Dex's gRPC API) listening on {}", l.local_addr()?);
            if grpc.tls_client_ca.is_none() {
                tracing::warn!(
                    "grpc: no tlsClientCA, so anyone who can reach {addr} has full admin access (clients, passwords, \
                     connectors); keep it on loopback or a private network, or require client certificates with grpc.tlsClientCA"
                );
            }
            Some(l)
        }
        None => None,
    };
    let router = portcullis::web::router(Arc::clone(&broker));
    // One signal stops both listeners (as Dex serves web.http and web.https side by side).
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let delay = live
        .config
        .web
        .shutdown_delay
        .as_deref()
        .and_then(portcullis::connectors::limits::parse_duration)
        .unwrap_or_default();
    let draining = Arc::clone(&broker);
    tokio::spawn(async move {
        shutdown_signal().await;
        // Readiness first, so load balancers stop sending; then stop accepting and drain.
        draining.draining.store(true, std::sync::atomic::Ordering::Relaxed);
        if !delay.is_zero() {
            tracing::info!("readiness is false; serving for web.shutdownDelay ({delay:?}) before draining");
            tokio::time::sleep(delay).await;
        }
        let _ = stop.send(true);
    });
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let plain = async {
        match http_listener {
            Some(l) => portcullis::web::serve(l, router.clone(), until_stopped()).await.map_err(anyhow::Error::from),
            None => Ok(()),
        }
    };
    let secure = async {
        match https_listener {
            Some((l, tls)) => portcullis::web::serve_tls(l, router.clone(), tls, Default::default(), until_stopped())
                .await
                .map_err(anyhow::Error::from),
            None => Ok(()),
        }
    };
    let admin_api = async {
        match grpc_listener {
            Some(l) => {
                let service = portcullis::api::Service::from_config(Arc::clone(&broker));
                portcullis::api::serve(l, service, grpc_tls, live.config.grpc.reflection, until_stopped()).await
            }
            None => Ok(()),
        }
    };
    tokio::try_join!(plain, secure, admin_api)?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: draining in-flight requests");
}
