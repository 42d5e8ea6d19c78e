//! Whole-server benchmarks: the real `portcullis` binary, started as a child process on
//! loopback with the embedded default storage (SQLite), measured from outside.
//!
//! - requests per second for discovery and JWKS, beside the telemetry `/healthz` (the HTTP floor);
//! - refresh grants per second with RS256 and with ES256, beside the cost of one signature;
//! - full logins per second through the mock WASM connector and through the password DB
//!   (bcrypt), with the broker's CPU time per login read from `/proc/<pid>/stat`;
//! - cold start (spawn → `/readyz` 200, over an existing database, as a restart) with the
//!   compile cache empty and warm, four plugins, beside the same broker with no plugin;
//! - RSS idle and after load (`VmRSS`, `VmHWM`), beside the broker with no plugin, and of a
//!   broker with the Python and JavaScript mocks after 20 logins through each.
//!
//! Every load phase is bounded in time (`PHASE`) and runs on 127.0.0.1 only. The load
//! generator shares the machine's cores with the broker, so throughput is a floor; CPU per
//! login is the broker's own. Results: a table on stdout and `target/bench/server.json`,
//! which `cargo xtask bench` merges into its summary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a benchmark stops at its first failure")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long each load phase runs (after a short warm-up).
mod common;
use common::{VERIFIER, challenge, client, cpu_time, free_port, ms, root, signature_cost};

const PHASE: Duration = Duration::from_secs(3);
const WARMUP: Duration = Duration::from_millis(500);
/// Concurrent clients in each load phase.
const CLIENTS: usize = 16;
/// Runs of each cold start; the median is reported.
const STARTS: usize = 3;

fn plugin(name: &str) -> PathBuf {
    let path = root().join("target").join("plugins").join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is missing: run `cargo xtask plugins` (or `cargo xtask bench`)", path.display());
    path
}

/// The connector blocks of the four shipped plugins, with configs each accepts.
fn four_plugins() -> String {
    format!(
        r#"
- plugin: "{mock}"
  id: mock
  name: Example
- plugin: "{github}"
  id: github
  name: GitHub
  allowedHosts: [github.com, api.github.com]
  config:
    clientID: bench-client
    clientSecret: bench-secret
    orgs:
    - name: acme
- plugin: "{oidc}"
  id: oidc
  name: Upstream OIDC
  allowedHosts: [idp.example.com]
  config:
    issuer: https://idp.example.com
    clientID: bench-client
    clientSecret: bench-secret
- plugin: "{ldap}"
  id: ldap
  name: LDAP
  allowedHosts: ["ldaps://ldap.example.com:636"]
  config:
    host: ldap.example.com:636
    bindDN: cn=admin,dc=example,dc=org
    bindPW: admin
    userSearch:
      baseDN: ou=People,dc=example,dc=org
      filter: (objectClass=person)
      username: uid
      idAttr: uid
      emailAttr: mail
      nameAttr: cn
"#,
        mock = plugin("mock").display(),
        github = plugin("github").display(),
        oidc = plugin("oidc").display(),
        ldap = plugin("ldap").display(),
    )
}

fn mock_only() -> String {
    format!("\n- plugin: \"{}\"\n  id: mock\n  name: Example\n", plugin("mock").display())
}

/// A broker process and what it listens on.
struct Server {
    child: Child,
    base: String,
    telemetry: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Options<'a> {
    connectors: &'a str,
    algorithm: &'a str,
    cache: &'a Path,
    /// The SQLite file: reused across starts, as a restarted broker finds its keys there.
    /// `None`: the in-memory storage (a baseline for what SQLite costs).
    db: Option<&'a Path>,
}

fn config(dir: &Path, port: u16, telemetry: u16, o: &Options) -> PathBuf {
    let connectors = if o.connectors.trim().is_empty() { " []".to_string() } else { o.connectors.to_string() };
    let yaml = format!(
        r#"
issuer: http://127.0.0.1:{port}/dex
storage:{storage}
web:
  http: 127.0.0.1:{port}
  # All load comes from one address: the per-IP and per-account throttles would measure
  # themselves (and refuse the later phases' logins), not the broker.
  throttle: {{authorizePerIP: 0, passwordPerIP: 0, passwordPerAccount: 0}}
telemetry:
  http: 127.0.0.1:{telemetry}
logger:
  level: info
signing:
  algorithm: {alg}
plugins:
  cacheDir: {cache}
oauth2:
  skipApprovalScreen: true
staticClients:
- id: example-app
  name: Example App
  secret: ZXhhbXBsZS1hcHAtc2VjcmV0
  redirectURIs: [http://127.0.0.1:5555/callback]
connectors:{connectors}
enablePasswordDB: true
staticPasswords:
- email: admin@example.com
  hash: "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W"
  username: admin
  userID: 08a8684b-db88-4b73-90a9-3cd1661f5466
"#,
        storage = match o.db {
            Some(db) => format!("\n  type: sqlite3\n  config:\n    file: {}", db.display()),
            None => "\n  type: memory".to_string(),
        },
        alg = o.algorithm,
        cache = o.cache.display(),
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Starts the broker and waits for `/readyz`; returns it and the time from spawn to ready.
async fn start(o: &Options<'_>) -> (Server, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let (port, telemetry) = (free_port(), free_port());
    let path = config(dir.path(), port, telemetry, o);
    let began = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("serve")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("broker.log")).unwrap())
        .spawn()
        .expect("start the portcullis binary");
    let mut server = Server {
        child,
        base: format!("http://127.0.0.1:{port}/dex"),
        telemetry: format!("http://127.0.0.1:{telemetry}"),
        _dir: dir,
    };
    let http = reqwest::Client::new();
    let deadline = began + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            let log = std::fs::read_to_string(server._dir.path().join("broker.log")).unwrap_or_default();
            panic!("the broker exited ({status}) before it was ready:\n{log}");
        }
        if let Ok(r) = http.get(format!("{}/readyz", server.telemetry)).send().await
            && r.status().is_success()
        {
            return (server, began.elapsed());
        }
        assert!(Instant::now() < deadline, "the broker did not become ready in 60 s (config {})", path.display());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `VmRSS` and `VmHWM` of `pid`, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn cookies(r: &reqwest::Response, jar: &mut Vec<String>) {
    for v in r.headers().get_all(reqwest::header::SET_COOKIE) {
        if let Some(pair) = v.to_str().ok().and_then(|s| s.split(';').next()) {
            let name = pair.split('=').next().unwrap_or_default().to_string();
            jar.retain(|c| !c.starts_with(&format!("{name}=")));
            jar.push(pair.to_string());
        }
    }
}

fn location(r: &reqwest::Response, origin: &str) -> Option<String> {
    let loc = r.headers().get(reqwest::header::LOCATION)?.to_str().ok()?;
    Some(if loc.starts_with('/') { format!("{origin}{loc}") } else { loc.to_string() })
}

fn param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url).ok()?.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    Some(html[start..start + html[start..].find('"')?].to_string())
}

/// One full login: authorize → connector → code → token. Returns the token response.
async fn login(http: &reqwest::Client, base: &str, connector: &str, scope: &str) -> Option<Value> {
    let origin = base.trim_end_matches("/dex");
    let mut jar = Vec::new();
    let auth = url::Url::parse_with_params(
        &format!("{base}/auth"),
        &[
            ("client_id", "example-app"),
            ("redirect_uri", "http://127.0.0.1:5555/callback"),
            ("response_type", "code"),
            ("scope", scope),
            ("state", "bench-state"),
            ("code_challenge", &challenge()),
            ("code_challenge_method", "S256"),
            ("connector_id", connector),
        ],
    )
    .ok()?;
    let r = http.get(auth.as_str()).send().await.ok()?;
    cookies(&r, &mut jar);
    let to_connector = location(&r, origin)?;
    let r = http.get(&to_connector).header("cookie", jar.join("; ")).send().await.ok()?;
    cookies(&r, &mut jar);
    let back = if connector == "local" {
        let form = r.text().await.ok()?;
        let (req, csrf) = (hidden(&form, "req")?, hidden(&form, "csrf")?);
        let r = http
            .post(format!("{base}/auth/local/login"))
            .header("cookie", jar.join("; "))
            .form(&[("req", req.as_str()), ("csrf", &csrf), ("login", "admin@example.com"), ("password", "password")])
            .send()
            .await
            .ok()?;
        location(&r, origin)?
    } else {
        let upstream = location(&r, origin)?;
        let r = http.get(&upstream).header("cookie", jar.join("; ")).send().await.ok()?;
        location(&r, origin)?
    };
    let code = param(&back, "code")?;
    let r = http
        .post(format!("{base}/token"))
        .basic_auth("example-app", Some("ZXhhbXBsZS1hcHAtc2VjcmV0"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:5555/callback"),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    serde_json::from_slice(&r.bytes().await.ok()?).ok()
}

async fn refresh(http: &reqwest::Client, base: &str, token: &str) -> Option<String> {
    let r = http
        .post(format!("{base}/token"))
        .basic_auth("example-app", Some("ZXhhbXBsZS1hcHAtc2VjcmV0"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let body: Value = serde_json::from_slice(&r.bytes().await.ok()?).ok()?;
    body["refresh_token"].as_str().map(str::to_string)
}

/// What one load phase measured.
struct Load {
    per_second: f64,
    errors: u64,
    /// The broker's CPU time per successful operation.
    cpu_per_op: Duration,
}

/// Runs `op` from `CLIENTS` tasks for `PHASE` (after `WARMUP`) and counts successes.
async fn load<F, Fut>(server: &Server, op: F) -> Load
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, err) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (op, counting, stop, ok, err) = (op.clone(), counting.clone(), stop.clone(), ok.clone(), err.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let success = op(i).await;
                    if counting.load(Ordering::Relaxed) {
                        if success { &ok } else { &err }.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(WARMUP).await;
    let pid = server.child.id();
    let cpu_before = cpu_time(pid);
    counting.store(true, Ordering::Relaxed);
    let began = Instant::now();
    tokio::time::sleep(PHASE).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = began.elapsed();
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let done = ok.load(Ordering::Relaxed);
    Load {
        per_second: done as f64 / elapsed.as_secs_f64(),
        errors: err.load(Ordering::Relaxed),
        cpu_per_op: if done == 0 { Duration::ZERO } else { cpu / done as u32 },
    }
}

async fn get_ok(http: reqwest::Client, url: String) -> bool {
    match http.get(&url).send().await {
        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
        _ => false,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; a name filter is not supported here: this runs as a whole.
    let cache = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let (rs_db, es_db) = (data.path().join("rs256.db"), data.path().join("es256.db"));
    let http = client();
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut out = serde_json::Map::new();

    // ---- Cold start: no plugin, four plugins with an empty cache, then warm ----
    let none = Options { connectors: "", algorithm: "RS256", cache: cache.path(), db: Some(&rs_db) };
    drop(start(&none).await); // creates the database and the signing keys
    let mut bare = Vec::new();
    for _ in 0..STARTS {
        bare.push(start(&none).await.1);
    }
    let four = four_plugins();
    let mut cold = Vec::new();
    for _ in 0..STARTS {
        let empty = tempfile::tempdir().unwrap();
        cold.push(
            start(&Options { connectors: &four, algorithm: "RS256", cache: empty.path(), db: Some(&rs_db) }).await.1,
        );
    }
    let with_four = Options { connectors: &four, algorithm: "RS256", cache: cache.path(), db: Some(&rs_db) };
    drop(start(&with_four).await); // fills the cache
    let mut warm = Vec::new();
    for _ in 0..STARTS {
        warm.push(start(&with_four).await.1);
    }
    let (bare, cold, warm) = (median(bare), median(cold), median(warm));
    rows.push(("cold start, 4 plugins, empty cache".into(), format!("{:.0} ms", ms(cold)), String::new()));
    rows.push((
        "cold start, 4 plugins, warm cache".into(),
        format!("{:.0} ms", ms(warm)),
        format!("no plugin: {:.0} ms", ms(bare)),
    ));
    out.insert("cold_start_empty_cache_ms".into(), json!(ms(cold)));
    out.insert("cold_start_warm_cache_ms".into(), json!(ms(warm)));
    out.insert("cold_start_no_plugin_ms".into(), json!(ms(bare)));

    // ---- RSS idle: no plugin vs four plugins ----
    let (bare_server, _) = start(&none).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (bare_rss, _) = memory(bare_server.child.id());
    drop(bare_server);

    let (server, _) = start(&with_four).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle_rss, _) = memory(server.child.id());
    rows.push(("RSS idle, 4 plugins".into(), format!("{idle_rss:.1} MiB"), format!("no plugin: {bare_rss:.1} MiB")));
    out.insert("rss_idle_mib".into(), json!(idle_rss));
    out.insert("rss_idle_no_plugin_mib".into(), json!(bare_rss));

    // ---- RSS of a broker with one Python and one JavaScript connector (issue 16's budget) ----
    let langs = format!(
        "\n- plugin: \"{}\"\n  id: python\n  name: Python\n- plugin: \"{}\"\n  id: js\n  name: JavaScript\n",
        plugin("mock-python").display(),
        plugin("mock-js").display()
    );
    let with_langs = Options { connectors: &langs, algorithm: "RS256", cache: cache.path(), db: Some(&rs_db) };
    drop(start(&with_langs).await); // fills the compile cache: what a restarted broker finds
    let (langs_server, _) = start(&with_langs).await;
    for connector in ["python", "js"] {
        for _ in 0..20 {
            let done = login(&http, &langs_server.base, connector, "openid email").await;
            assert!(done.is_some(), "a login through the {connector} mock failed");
        }
    }
    let (langs_rss, langs_hwm) = memory(langs_server.child.id());
    drop(langs_server);
    rows.push((
        "RSS, Python + JS connectors, 40 logins".into(),
        format!("{langs_rss:.1} MiB"),
        format!("peak {langs_hwm:.1} MiB; no plugin: {bare_rss:.1} MiB"),
    ));
    out.insert("rss_python_js_broker_mib".into(), json!(langs_rss));
    out.insert("rss_python_js_broker_peak_mib".into(), json!(langs_hwm));

    // ---- Requests per second: healthz (floor), discovery, JWKS ----
    let mut rps = |label: &str, key: &str, l: &Load, baseline: Option<f64>| {
        let ratio = baseline.map(|b| format!("{:.0}% of /healthz", 100.0 * l.per_second / b)).unwrap_or_default();
        rows.push((label.into(), format!("{:.0}/s", l.per_second), ratio));
        out.insert(format!("{key}_per_s"), json!(l.per_second));
        out.insert(format!("{key}_errors"), json!(l.errors));
    };
    let url = format!("{}/healthz", server.telemetry);
    let (h, u) = (http.clone(), url.clone());
    let healthz = load(&server, move |_| get_ok(h.clone(), u.clone())).await;
    rps("GET /healthz (telemetry)", "healthz", &healthz, None);
    let url = format!("{}/.well-known/openid-configuration", server.base);
    let h = http.clone();
    let discovery = load(&server, move |_| get_ok(h.clone(), url.clone())).await;
    rps("GET discovery", "discovery", &discovery, Some(healthz.per_second));
    let url = format!("{}/keys", server.base);
    let h = http.clone();
    let jwks = load(&server, move |_| get_ok(h.clone(), url.clone())).await;
    rps("GET /keys (JWKS)", "jwks", &jwks, Some(healthz.per_second));

    // ---- Full logins: mock WASM connector, then the password DB (bcrypt) ----
    let mock = login_load(&server, &http).await;
    let (h, base) = (http.clone(), server.base.clone());
    let local = load(&server, move |_| {
        let (h, base) = (h.clone(), base.clone());
        async move { login(&h, &base, "local", "openid email").await.is_some() }
    })
    .await;
    rows.push((
        "full login, mock WASM connector, RS256".into(),
        format!("{:.0}/s", mock.per_second),
        format!("{:.2} ms CPU/login", ms(mock.cpu_per_op)),
    ));
    rows.push((
        "full login, password DB (bcrypt 10)".into(),
        format!("{:.0}/s", local.per_second),
        format!("{:.2} ms CPU/login", ms(local.cpu_per_op)),
    ));
    out.insert("login_mock_per_s".into(), json!(mock.per_second));
    out.insert("login_mock_cpu_ms".into(), json!(ms(mock.cpu_per_op)));
    out.insert("login_mock_errors".into(), json!(mock.errors));
    out.insert("login_password_per_s".into(), json!(local.per_second));
    out.insert("login_password_cpu_ms".into(), json!(ms(local.cpu_per_op)));
    out.insert("login_password_errors".into(), json!(local.errors));

    // ---- Refresh grants, RS256 on this server ----
    let rs256 = refresh_load(&server, &http).await;
    let (rss_after, hwm) = memory(server.child.id());
    drop(server);
    // ---- ... and ES256 on a second one ----
    let (es_server, _) =
        start(&Options { connectors: &mock_only(), algorithm: "ES256", cache: cache.path(), db: Some(&es_db) }).await;
    let es256 = refresh_load(&es_server, &http).await;
    let es_login = login_load(&es_server, &http).await;
    drop(es_server);
    // ---- ... and ES256 over the in-memory storage: what SQLite adds to a login ----
    let (mem_server, _) =
        start(&Options { connectors: &mock_only(), algorithm: "ES256", cache: cache.path(), db: None }).await;
    let mem_login = login_load(&mem_server, &http).await;
    drop(mem_server);
    rows.push((
        "full login, mock, ES256".into(),
        format!("{:.0}/s", es_login.per_second),
        format!("{:.2} ms CPU/login", ms(es_login.cpu_per_op)),
    ));
    rows.push((
        "full login, mock, ES256, memory storage".into(),
        format!("{:.0}/s", mem_login.per_second),
        format!("{:.2} ms CPU/login", ms(mem_login.cpu_per_op)),
    ));
    out.insert("login_mock_es256_per_s".into(), json!(es_login.per_second));
    out.insert("login_mock_es256_cpu_ms".into(), json!(ms(es_login.cpu_per_op)));
    out.insert("login_mock_es256_memory_per_s".into(), json!(mem_login.per_second));
    out.insert("login_mock_es256_memory_cpu_ms".into(), json!(ms(mem_login.cpu_per_op)));
    out.insert("login_errors_es256".into(), json!(es_login.errors + mem_login.errors));
    let (sign_rs, sign_es) = (signature_cost("RS256").await, signature_cost("ES256").await);
    rows.push((
        "refresh grant, RS256".into(),
        format!("{:.0}/s", rs256.per_second),
        format!("one RS256 signature: {:.0} µs", us(sign_rs)),
    ));
    rows.push((
        "refresh grant, ES256".into(),
        format!("{:.0}/s", es256.per_second),
        format!("one ES256 signature: {:.0} µs", us(sign_es)),
    ));
    out.insert("refresh_rs256_per_s".into(), json!(rs256.per_second));
    out.insert("refresh_rs256_cpu_ms".into(), json!(ms(rs256.cpu_per_op)));
    out.insert("refresh_es256_per_s".into(), json!(es256.per_second));
    out.insert("refresh_es256_cpu_ms".into(), json!(ms(es256.cpu_per_op)));
    out.insert("sign_rs256_us".into(), json!(us(sign_rs)));
    out.insert("sign_es256_us".into(), json!(us(sign_es)));
    out.insert("refresh_errors".into(), json!(rs256.errors + es256.errors));

    rows.push(("RSS after load, 4 plugins".into(), format!("{rss_after:.1} MiB"), format!("peak: {hwm:.1} MiB")));
    out.insert("rss_after_load_mib".into(), json!(rss_after));
    out.insert("rss_peak_mib".into(), json!(hwm));

    println!();
    println!("{:<38} {:>12}  beside", "server benchmark", "figure");
    for (label, figure, beside) in &rows {
        println!("{label:<38} {figure:>12}  {beside}");
    }
    let dir = root().join("target").join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let json = Value::Object(out).to_string();
    std::fs::write(dir.join("server.json"), &json).unwrap();
    println!("{json}");
}

/// Full logins through the mock connector.
async fn login_load(server: &Server, http: &reqwest::Client) -> Load {
    let (h, base) = (http.clone(), server.base.clone());
    load(server, move |_| {
        let (h, base) = (h.clone(), base.clone());
        async move { login(&h, &base, "mock", "openid email groups").await.is_some() }
    })
    .await
}

/// Refresh grants from `CLIENTS` chains, each rotating its own refresh token.
async fn refresh_load(server: &Server, http: &reqwest::Client) -> Load {
    let mut chains = Vec::new();
    for _ in 0..CLIENTS {
        let tokens = login(http, &server.base, "mock", "openid offline_access").await.expect("login for refresh");
        chains.push(tokio::sync::Mutex::new(tokens["refresh_token"].as_str().expect("refresh token").to_string()));
    }
    let chains = Arc::new(chains);
    let (h, base) = (http.clone(), server.base.clone());
    load(server, move |i| {
        let (h, base, chains) = (h.clone(), base.clone(), chains.clone());
        async move {
            let mut token = chains[i].lock().await;
            match refresh(&h, &base, &token).await {
                Some(next) => {
                    *token = next;
                    true
                }
                None => false,
            }
        }
    })
    .await
}
