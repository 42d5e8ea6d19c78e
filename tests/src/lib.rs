//! Shared helpers for the end-to-end tests: where the built plugins are, a plugin engine with
//! a private compile cache, a broker on an ephemeral port, and the steps of a login (`flow`).

pub mod bitbucket_fake;
pub mod browser;
pub mod crowd_fake;
pub mod dbserver;
pub mod flow;
pub mod gitea_fake;
pub mod github_fake;
pub mod gitlab_fake;
pub mod google_fake;
pub mod keystone_fake;
pub mod linkedin_fake;
pub mod logs;
pub mod microsoft_fake;
pub mod oauth_fake;
pub mod oauth_generic_fake;
pub mod openshift_fake;
pub mod saml_idp;
pub mod slapd;
pub mod tls;

use std::path::PathBuf;
use std::sync::Arc;

use portcullis::connectors::{CompileCache, ConnectorSpec, LimitsConfig, PluginEngine};

/// A shipped plugin built by the build script, e.g. `plugin("mock")`.
pub fn plugin(name: &str) -> PathBuf {
    PathBuf::from(env!("PORTCULLIS_PLUGINS")).join(format!("{name}.wasm"))
}

/// A hostile fixture built by the build script, e.g. `fixture("hostile-loop")`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("PORTCULLIS_FIXTURES")).join(format!("{name}.wasm"))
}

/// A file under the repository root.
pub fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("PORTCULLIS_ROOT")).join(path)
}

/// The compile cache the tests share: compiled once per machine, like a real broker's.
pub fn test_cache() -> CompileCache {
    CompileCache::at(test_cache_dir())
}

/// An engine with the shared test cache.
pub fn engine() -> Arc<PluginEngine> {
    PluginEngine::new(test_cache()).expect("engine")
}

/// A connector spec with no grants and default limits.
pub fn spec(id: &str, plugin: PathBuf, config: serde_json::Value) -> ConnectorSpec {
    ConnectorSpec {
        id: id.into(),
        name: id.into(),
        plugin,
        sha256: None,
        kind: None,
        allowed_hosts: Some(Vec::new()),
        signing_keys: None,
        limits: LimitsConfig::default(),
        config,
        client_cert: None,
    }
}

/// The config every end-to-end test starts from; `{issuer}` and `{mock}` are filled in.
pub const BASE_CONFIG: &str = r#"
issuer: "{issuer}"
storage:
  type: memory
oauth2:
  skipApprovalScreen: false
staticClients:
- id: example-app
  name: Example App
  secret: ZXhhbXBsZS1hcHAtc2VjcmV0
  redirectURIs: [http://127.0.0.1:5555/callback]
  postLogoutRedirectURIs: [http://127.0.0.1:5555/]
- id: second-app
  name: Second App
  secret: c2Vjb25kLXNlY3JldA
  redirectURIs: [http://127.0.0.1:5555/second]
- id: public-app
  name: Public App
  public: true
  redirectURIs: [http://127.0.0.1:5555/public]
connectors:
- plugin: "{mock}"
  id: mock
  name: Example
{connectors}
enablePasswordDB: true
staticPasswords:
- email: admin@example.com
  hash: "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W"
  username: admin
  preferredUsername: admin
  userID: 08a8684b-db88-4b73-90a9-3cd1661f5466
"#;

/// A broker running in this process on an ephemeral port, with its own storage. Built with
/// `TestBroker::builder()`.
pub struct TestBroker {
    pub issuer: String,
    pub base: String,
    pub broker: Arc<portcullis::broker::Broker>,
    _server: tokio::task::JoinHandle<()>,
}

/// Where a test broker's config comes from.
enum Source {
    /// `BASE_CONFIG` with more connectors, clients and top-level YAML.
    Base { connectors: String, clients: String, extra: String, oauth2: String },
    /// A config file (hot-reload tests edit it); `{issuer}` in it is filled in first.
    File(PathBuf),
    /// A config the test built itself.
    Config(Box<portcullis::config::Validated>),
}

/// How to start a `TestBroker`: `TestBroker::builder().extra("...").start().await`.
pub struct TestBrokerBuilder {
    source: Source,
    listener: Option<tokio::net::TcpListener>,
    issuer: Option<String>,
    backend: Option<Arc<dyn portcullis::storage::Backend>>,
    https: bool,
}

impl TestBroker {
    /// A broker from `BASE_CONFIG` on a fresh port over a fresh memory store, until told otherwise.
    pub fn builder() -> TestBrokerBuilder {
        TestBrokerBuilder {
            source: Source::Base {
                connectors: String::new(),
                clients: String::new(),
                extra: String::new(),
                oauth2: String::new(),
            },
            listener: None,
            issuer: None,
            backend: None,
            https: false,
        }
    }

    /// Serves this broker's telemetry (admin) listener on an ephemeral port; returns its base URL.
    pub async fn serve_telemetry(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let router = portcullis::telemetry::router(self.broker.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        base
    }

    /// Serves this broker's admin API (Dex's gRPC API) on an ephemeral port, over the config's
    /// `grpc` TLS when it has a certificate; `connectors_crud` is Dex's connector-calls flag.
    /// Returns the address (`127.0.0.1:<port>`).
    pub async fn serve_api(&self, connectors_crud: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let live = self.broker.generations.current();
        let tls = portcullis::api::tls_config(&live.config.grpc).unwrap_or_else(|e| panic!("test gRPC TLS: {e}"));
        let service = portcullis::api::Service::new(self.broker.clone(), connectors_crud);
        let reflection = live.config.grpc.reflection;
        tokio::spawn(async move {
            let _ = portcullis::api::serve(listener, service, tls, reflection, std::future::pending()).await;
        });
        address
    }

    /// The URL of `path` on this broker (under the issuer's path).
    pub fn url(&self, path: &str) -> String {
        format!("{}/dex{path}", self.base)
    }
}

impl TestBrokerBuilder {
    fn base(&mut self) -> (&mut String, &mut String, &mut String, &mut String) {
        if !matches!(self.source, Source::Base { .. }) {
            panic!("connectors/clients/extra/oauth2 apply to BASE_CONFIG, not to a file or a ready config");
        }
        match &mut self.source {
            Source::Base { connectors, clients, extra, oauth2 } => (connectors, clients, extra, oauth2),
            _ => unreachable!(),
        }
    }

    /// More `oauth2:` keys: YAML lines indented two spaces (`  grantTypes: [...]\n`).
    pub fn oauth2(mut self, yaml: &str) -> Self {
        self.base().3.push_str(yaml);
        self
    }

    /// More connectors after the mock one: YAML list items (`- type: github ...`, indented as
    /// under `connectors:`); `{plugins}` is the shipped plugin directory.
    pub fn connectors(mut self, yaml: &str) -> Self {
        self.base().0.push_str(yaml);
        self
    }

    /// More static clients: YAML list items indented as under `staticClients:`.
    pub fn clients(mut self, yaml: &str) -> Self {
        self.base().1.push_str(yaml);
        self
    }

    /// More top-level YAML (its keys must not repeat those of `BASE_CONFIG`).
    pub fn extra(mut self, yaml: &str) -> Self {
        self.base().2.push_str(yaml);
        self
    }

    /// The config from a file instead of `BASE_CONFIG` (`{issuer}` in it is replaced by this
    /// broker's issuer before the first load; the shared compile cache is used).
    pub fn file(mut self, path: &std::path::Path) -> Self {
        self.source = Source::File(path.to_path_buf());
        self
    }

    /// A ready config instead of `BASE_CONFIG`.
    pub fn config(mut self, config: portcullis::config::Validated) -> Self {
        self.source = Source::Config(Box::new(config));
        self
    }

    /// Serve on `listener` (bind it first when another server must know this broker's address
    /// before it starts).
    pub fn listener(mut self, listener: tokio::net::TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// A fixed issuer (replicas behind one name); by default `http://<address>/dex`.
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.issuer = Some(issuer.to_string());
        self
    }

    /// A storage backend (replicas share one) instead of a fresh memory store.
    pub fn backend(mut self, backend: Arc<dyn portcullis::storage::Backend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Serve HTTPS (`web::serve_tls`) with the config's `web.tlsCert`/`tlsKey`/... on this
    /// broker's listener (the config's `web.https` address is not bound); `base` and the default
    /// issuer are then `https://`.
    pub fn https(mut self) -> Self {
        self.https = true;
        self
    }

    /// Starts the broker and serves it.
    pub async fn start(self) -> TestBroker {
        let listener = match self.listener {
            Some(l) => l,
            None => tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        };
        let scheme = if self.https { "https" } else { "http" };
        let base = format!("{scheme}://{}", listener.local_addr().expect("addr"));
        let issuer = self.issuer.unwrap_or_else(|| format!("{base}/dex"));
        let config = match self.source {
            Source::Base { connectors, clients, extra, oauth2 } => {
                let yaml = base_config(&issuer, &connectors)
                    .replacen("staticClients:\n", &format!("staticClients:\n{clients}\n"), 1)
                    .replacen(
                        "oauth2:\n  skipApprovalScreen: false\n",
                        &format!("oauth2:\n  skipApprovalScreen: false\n{oauth2}"),
                        1,
                    );
                config_from_yaml(&format!("{yaml}\n{extra}"))
            }
            Source::File(path) => {
                let text = std::fs::read_to_string(&path).expect("config file").replace("{issuer}", &issuer);
                std::fs::write(&path, text).expect("write config");
                let mut config = portcullis::config::Config::load(&path).unwrap_or_else(|e| panic!("test config: {e}"));
                config.cache_dir = Some(test_cache_dir());
                config
            }
            Source::Config(config) => *config,
        };
        let backend = self.backend.unwrap_or_else(|| Arc::new(portcullis::storage::MemoryBackend::new()));
        let broker = portcullis::broker::Broker::with_backend(config, backend).await.expect("broker starts");
        for failed in &broker.generations.status().failed_connectors {
            // A start goes on without a connector that fails; say so where a failing test shows it.
            eprintln!("test broker started without connector {:?}: {}", failed.connector, failed.error);
        }
        // As `serve` does: a change another replica's admin API stores serves here too.
        broker.generations.spawn_stored_watch();
        let router = portcullis::web::router(broker.clone());
        let tls = self.https.then(|| {
            let live = broker.generations.current();
            portcullis::web::tls::server_config(&live.config.web)
                .unwrap_or_else(|e| panic!("test TLS config: {e}"))
                .expect("https() needs web.https, tlsCert and tlsKey in the config")
        });
        let server = tokio::spawn(async move {
            let _ = match tls {
                Some(tls) => {
                    portcullis::web::serve_tls(listener, router, tls, Default::default(), std::future::pending()).await
                }
                None => portcullis::web::serve(listener, router, std::future::pending()).await,
            };
        });
        TestBroker { issuer, base, broker, _server: server }
    }
}

/// `http://<listener address>/dex`.
pub fn default_issuer(listener: &tokio::net::TcpListener) -> String {
    format!("http://{}/dex", listener.local_addr().expect("addr"))
}

/// `BASE_CONFIG` for `issuer`, with `connectors` (YAML list items; `{plugins}` is the shipped
/// plugin directory) after the mock connector.
pub fn base_config(issuer: &str, connectors: &str) -> String {
    BASE_CONFIG
        .replace("{issuer}", issuer)
        .replace("{mock}", &plugin("mock").display().to_string())
        .replace("{connectors}", &connectors.replace("{plugins}", env!("PORTCULLIS_PLUGINS")))
}

/// Where the tests' shared compile cache lives.
pub fn test_cache_dir() -> PathBuf {
    PathBuf::from(env!("PORTCULLIS_ROOT")).join("target").join("test-compile-cache")
}

/// A config parsed from `yaml` (as file `test.yaml`), using the shared compile cache.
pub fn config_from_yaml(yaml: &str) -> portcullis::config::Validated {
    let mut config = portcullis::config::Config::from_yaml(std::path::Path::new("test.yaml"), yaml, &|_| None)
        .unwrap_or_else(|e| panic!("test config: {e}"));
    config.cache_dir = Some(test_cache_dir());
    config
}

/// A PKCE pair: a fresh random verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    use base64::Engine as _;
    let verifier = format!("{}{}", portcullis::web::random_token(), "-pkce");
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(portcullis::oidc::pkce::sha256(verifier.as_bytes()));
    (verifier, challenge)
}

/// A cookie-keeping HTTP client that does not follow redirects, like a browser driven by hand.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// The `value` of the hidden input `name` in an HTML page.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_string())
}

/// The `Location` header of a redirect, resolved against `base`.
pub fn location(response: &reqwest::Response, base: &str) -> Option<String> {
    let loc = response.headers().get(reqwest::header::LOCATION)?.to_str().ok()?;
    if loc.starts_with('/') { Some(format!("{base}{loc}")) } else { Some(loc.to_string()) }
}

/// A query parameter of a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url).ok()?.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

// ---- PostgreSQL test databases ----

use sqlx::{Connection, Executor, PgConnection};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub use dbserver::{OwnPostgres, host_port, mysql_base, postgres_base};

pub async fn postgres_admin() -> PgConnection {
    let base = postgres_base();
    PgConnection::connect(&base).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {base} ({e}); the storage tests need it and do not skip: \
             check the server PORTCULLIS_TEST_POSTGRES_URL names, or unset it to use a throwaway one"
        )
    })
}

/// A throwaway PostgreSQL database, dropped (with its connections) when this goes out of scope,
/// including when a test panics.
pub struct TestDatabase {
    pub name: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let name = test_database_name();
        let mut admin = postgres_admin().await;
        admin.execute(format!(r#"CREATE DATABASE "{name}""#).as_str()).await.unwrap();
        admin.close().await.unwrap();
        Self { name }
    }

    pub fn url(&self) -> String {
        format!("{}{}", postgres_base(), self.name)
    }

    pub async fn backend(&self) -> portcullis::storage::SqlBackend {
        portcullis::storage::SqlBackend::postgres(&self.url()).await.unwrap()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        drop_database(postgres_base(), format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, self.name), &self.name);
    }
}

/// A fresh name for a throwaway database: `portcullis_test_<pid>_<nanos>_<seq>`.
fn test_database_name() -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("portcullis_test_{}_{nanos}_{seq}", std::process::id())
}

/// Runs `sql` (a DROP DATABASE) on the server at `base`. Drop cannot await, and may run inside
/// the test's runtime: a thread with a runtime of its own does it; a failure is reported, not raised.
fn drop_database(base: String, sql: String, name: &str) {
    let dropped = std::thread::spawn(move || {
        sqlx::any::install_default_drivers();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async {
            let mut admin = sqlx::AnyConnection::connect(&base).await?;
            admin.execute(sql.as_str()).await?;
            admin.close().await
        })?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })
    .join();
    match dropped {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("cannot drop test database {name}: {e}"),
        Err(_) => eprintln!("cannot drop test database {name}: the dropping thread panicked"),
    }
}

// ---- MySQL / MariaDB test databases ----

async fn mysql_admin() -> sqlx::MySqlConnection {
    let base = mysql_base();
    sqlx::MySqlConnection::connect(&base).await.unwrap_or_else(|e| {
        panic!(
            "MySQL / MariaDB is not reachable at {base} ({e}); the MySQL storage tests need it and do not skip: \
             check the server PORTCULLIS_TEST_MYSQL_URL names, or unset it to use a throwaway one"
        )
    })
}

/// A throwaway MySQL / MariaDB database `portcullis_test_<random>`, dropped when this goes out
/// of scope, including when a test panics.
pub struct TestMysqlDatabase {
    pub name: String,
}

impl TestMysqlDatabase {
    pub async fn create() -> Self {
        let name = test_database_name();
        let mut admin = mysql_admin().await;
        admin.execute(format!("CREATE DATABASE `{name}`").as_str()).await.unwrap();
        admin.close().await.unwrap();
        Self { name }
    }

    pub fn url(&self) -> String {
        format!("{}{}", mysql_base(), self.name)
    }

    pub async fn backend(&self) -> portcullis::storage::SqlBackend {
        portcullis::storage::SqlBackend::connect(&self.url()).await.unwrap()
    }
}

impl Drop for TestMysqlDatabase {
    fn drop(&mut self) {
        drop_database(mysql_base(), format!("DROP DATABASE IF EXISTS `{}`", self.name), &self.name);
    }
}
