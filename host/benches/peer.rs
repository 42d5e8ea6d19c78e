//! Side by side with node-oidc-provider (`cargo xtask bench --peer`): the same Rust driver runs
//! the same five operations against the peer and against the real `portcullis` binary, and
//! reports each OP's own CPU per operation (from `/proc/<pid>/stat`) and its ratio to the
//! peer's, beside ops/s and p50/p99 latency.
//!
//! - **login**: the full browser flow through the pages — authorize, the password form, the
//!   consent page, the redirect with the code, the code grant (PKCE S256, `prompt=consent`, scope
//!   `openid email offline_access`); every login in a fresh cookie jar, so a fresh session;
//! - **refresh**: refresh grants, each chain rotating its own token;
//! - **client_credentials**, **discovery** (`/.well-known/openid-configuration`), **JWKS**
//!   (the `jwks_uri` discovery names).
//!
//! The peer (`xtask/peer/provider.mjs`, installed by xtask into `target/peer`) is configured
//! like our example: one confidential client, one password user (scrypt, `PEER_SCRYPT_N`,
//! default 1024), RS256, a login page and a consent page, its memory adapter. Ours gets the same
//! client and user with a bcrypt hash of cost `PEER_BCRYPT_COST` (default 5, of about the
//! scrypt's cost; both measured in this run), throttles off, `logger.level: info`.
//!
//! The driver runs on one thread (a current-thread runtime): if it uses ≥ 90 % of a core in a
//! phase, it was the bottleneck of that phase's ops/s and latency, and the table says so; the
//! CPU per operation is the OP's own either way. Every phase is bounded (`PEER_PHASE_SECS`,
//! default 3, after 0.5 s of warm-up); every process is killed when it is dropped.
//!
//! Results: a table on stdout and `target/bench/peer.json`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a benchmark stops at its first failure")]

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{VERIFIER, challenge, client, cpu_time, free_port, ms, ring_rs256_cost, root, signature_cost};

const WARMUP: Duration = Duration::from_millis(500);
/// Concurrent clients in each load phase.
const CLIENTS: usize = 8;
const CLIENT_ID: &str = "example-app";
const CLIENT_SECRET: &str = "ZXhhbXBsZS1hcHAtc2VjcmV0";
const REDIRECT: &str = "http://127.0.0.1:5555/callback";
const EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "password";
const USER_ID: &str = "08a8684b-db88-4b73-90a9-3cd1661f5466";
/// Above this share of one core the single-threaded driver limited the phase.
const DRIVER_BOUND: f64 = 0.9;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn phase() -> Duration {
    Duration::from_secs_f64(env_or("PEER_PHASE_SECS", 3.0))
}

/// An OP process: the peer or a broker, killed on drop.
struct Op {
    child: Child,
    /// The issuer URL; discovery is under it.
    issuer: String,
    _dir: tempfile::TempDir,
}

impl Drop for Op {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where discovery says the endpoints are.
#[derive(Clone)]
struct Endpoints {
    discovery: String,
    authorization: String,
    token: String,
    jwks: String,
}

/// The peer's own figures, printed by provider.mjs once it listens.
struct PeerInfo {
    scrypt_n: u64,
    scrypt_us: f64,
    sign_rs256_us: f64,
}

fn start_peer(dir: &Path) -> (Op, PeerInfo) {
    let script = dir.join("provider.mjs");
    assert!(
        dir.join("node_modules").join("oidc-provider").exists() && script.exists(),
        "{} has no node-oidc-provider: run `cargo xtask bench --peer`, which installs it there",
        dir.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(std::env::var("PEER_NODE").unwrap_or_else(|_| "node".into()))
        .arg(&script)
        .env("PEER_PORT", port.to_string())
        .env("PEER_SCRYPT_N", env_or("PEER_SCRYPT_N", 1024u64).to_string())
        .env("NODE_ENV", "production")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(tmp.path().join("peer.log")).unwrap())
        .spawn()
        .expect("start node (Node.js ≥ 20.19 on PATH, or PEER_NODE)");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    // Whatever else it prints is drained, so it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let info: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
        let log = std::fs::read_to_string(tmp.path().join("peer.log")).unwrap_or_default();
        panic!("the peer did not start:\n{log}")
    });
    let peer = PeerInfo {
        scrypt_n: info["scrypt_n"].as_u64().unwrap(),
        scrypt_us: info["scrypt_us"].as_f64().unwrap(),
        sign_rs256_us: info["sign_rs256_us"].as_f64().unwrap(),
    };
    (Op { child, issuer: info["issuer"].as_str().unwrap().to_string(), _dir: tmp }, peer)
}

/// What a Portcullis under test is given.
struct Ours<'a> {
    algorithm: &'a str,
    /// `storage:` block body (indented two spaces).
    storage: String,
    /// More keys of the `signing` block (indented two spaces), e.g. `accessTokenAlgorithm`.
    extra: &'a str,
    bcrypt_hash: &'a str,
    /// `taskset -c` CPU list, for the replica phases.
    cpus: Option<&'a str>,
}

fn sqlite(path: &Path) -> String {
    format!("  type: sqlite3\n  config:\n    file: {}", path.display())
}

fn postgres(database: &str) -> String {
    format!("  type: postgres\n  config:\n    url: postgres://postgres@127.0.0.1:5432/{database}?sslmode=disable")
}

async fn start_ours(o: &Ours<'_>) -> Op {
    let dir = tempfile::tempdir().unwrap();
    let (port, telemetry) = (free_port(), free_port());
    let yaml = format!(
        r#"
issuer: http://127.0.0.1:{port}/dex
storage:
{storage}
web:
  http: 127.0.0.1:{port}
  throttle: {{authorizePerIP: 0, passwordPerIP: 0, passwordPerAccount: 0, userCodePerIP: 0}}
telemetry:
  http: 127.0.0.1:{telemetry}
logger:
  level: info
signing:
  algorithm: {alg}
{extra}
oauth2:
  skipApprovalScreen: false
  grantTypes: [authorization_code, refresh_token, client_credentials]
staticClients:
- id: {CLIENT_ID}
  name: Example App
  secret: {CLIENT_SECRET}
  redirectURIs: [{REDIRECT}]
enablePasswordDB: true
staticPasswords:
- email: {EMAIL}
  hash: "{hash}"
  username: admin
  userID: {USER_ID}
"#,
        storage = o.storage,
        alg = o.algorithm,
        hash = o.bcrypt_hash,
        extra = o.extra,
    );
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    let mut cmd = match o.cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpus]).arg(env!("CARGO_BIN_EXE_portcullis"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_portcullis")),
    };
    let child = cmd
        .arg("serve")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("broker.log")).unwrap())
        .spawn()
        .expect("start the portcullis binary");
    let mut op = Op { child, issuer: format!("http://127.0.0.1:{port}/dex"), _dir: dir };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = op.child.try_wait() {
            let log = std::fs::read_to_string(op._dir.path().join("broker.log")).unwrap_or_default();
            panic!("the broker exited ({status}) before it was ready:\n{log}");
        }
        if let Ok(r) = http.get(format!("http://127.0.0.1:{telemetry}/readyz")).send().await
            && r.status().is_success()
        {
            // `taskset` execs the broker: the pid is the broker's.
            return op;
        }
        assert!(Instant::now() < deadline, "the broker did not become ready in 60 s (config {})", path.display());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn endpoints(http: &reqwest::Client, issuer: &str) -> Endpoints {
    let discovery = format!("{issuer}/.well-known/openid-configuration");
    let doc: Value = http.get(&discovery).send().await.unwrap().json().await.unwrap();
    let field = |k: &str| doc[k].as_str().unwrap_or_else(|| panic!("discovery at {discovery} has no {k}")).to_string();
    Endpoints {
        authorization: field("authorization_endpoint"),
        token: field("token_endpoint"),
        jwks: field("jwks_uri"),
        discovery,
    }
}

/// A cookie jar by name (each login has its own; paths are ignored, which both OPs tolerate).
#[derive(Default)]
struct Jar(Vec<String>);

impl Jar {
    fn take(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all(reqwest::header::SET_COOKIE) {
            if let Some(pair) = v.to_str().ok().and_then(|s| s.split(';').next()) {
                let name = format!("{}=", pair.split('=').next().unwrap_or_default());
                self.0.retain(|c| !c.starts_with(&name));
                self.0.push(pair.to_string());
            }
        }
    }
    fn header(&self) -> String {
        self.0.join("; ")
    }
}

fn location(r: &reqwest::Response, base: &url::Url) -> Option<url::Url> {
    base.join(r.headers().get(reqwest::header::LOCATION)?.to_str().ok()?).ok()
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let marker = format!("{name}=\"");
    let start = tag.find(&marker)? + marker.len();
    let value = &tag[start..start + tag[start..].find('"')?];
    Some(value.replace("&amp;", "&").replace("&#x2f;", "/").replace("&#x3d;", "=").replace("&quot;", "\""))
}

/// The first POST form of a page: its action and the fields a person would send (hidden
/// inputs, the login and password when it asks for them, the first named button).
fn form(html: &str, page: &url::Url) -> Option<(url::Url, Vec<(String, String)>)> {
    let start = html.find("<form")?;
    let html = &html[start..html[start..].find("</form>").map_or(html.len(), |e| start + e)];
    let action = page.join(&attr(&html[..html.find('>')?], "action")?).ok()?;
    let mut fields = Vec::new();
    let mut button = None;
    for piece in html.split('<').skip(1) {
        let tag = &piece[..piece.find('>').unwrap_or(piece.len())];
        if let Some(input) = tag.strip_prefix("input") {
            let name = attr(input, "name").unwrap_or_default();
            match attr(input, "type").as_deref() {
                Some("hidden") => fields.push((name, attr(input, "value").unwrap_or_default())),
                Some("password") => fields.push((name, PASSWORD.into())),
                Some("checkbox") => {}
                _ => fields.push((name, EMAIL.into())),
            }
        } else if let Some(b) = tag.strip_prefix("button")
            && button.is_none()
            && let (Some(name), Some(value)) = (attr(b, "name"), attr(b, "value"))
        {
            button = Some((name, value));
        }
    }
    fields.extend(button);
    Some((action, fields))
}

/// One full login through the pages; the token response.
async fn login(http: &reqwest::Client, ep: &Endpoints) -> Option<Value> {
    let mut jar = Jar::default();
    let mut url = url::Url::parse_with_params(
        &ep.authorization,
        &[
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid email offline_access"),
            ("prompt", "consent"),
            ("state", "bench-state"),
            ("code_challenge", &challenge()),
            ("code_challenge_method", "S256"),
        ],
    )
    .ok()?;
    // Redirects and forms until the browser is sent back to the client (bounded).
    let mut code = None;
    for _ in 0..12 {
        if url.as_str().starts_with(REDIRECT) {
            code = url.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned());
            break;
        }
        let r = http.get(url.as_str()).header("cookie", jar.header()).send().await.ok()?;
        jar.take(&r);
        if r.status().is_redirection() {
            url = location(&r, &url)?;
            continue;
        }
        if !r.status().is_success() {
            return None;
        }
        let html = r.text().await.ok()?;
        let (action, fields) = form(&html, &url)?;
        let r = http.post(action.as_str()).header("cookie", jar.header()).form(&fields).send().await.ok()?;
        jar.take(&r);
        if !r.status().is_redirection() {
            return None;
        }
        url = location(&r, &action)?;
    }
    let r = http
        .post(&ep.token)
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code?.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let body: Value = serde_json::from_slice(&r.bytes().await.ok()?).ok()?;
    (body["id_token"].is_string() && body["access_token"].is_string() && body["refresh_token"].is_string())
        .then_some(body)
}

async fn token(http: &reqwest::Client, ep: &Endpoints, form: &[(&str, &str)]) -> Option<Value> {
    let r = http.post(&ep.token).basic_auth(CLIENT_ID, Some(CLIENT_SECRET)).form(form).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    serde_json::from_slice(&r.bytes().await.ok()?).ok()
}

async fn get_ok(http: &reqwest::Client, url: &str) -> bool {
    match http.get(url).send().await {
        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
        _ => false,
    }
}

/// What one load phase measured.
#[derive(Clone, Copy, Default)]
struct Load {
    per_second: f64,
    errors: u64,
    /// The OP's CPU time per successful operation (all its processes).
    cpu_per_op: Duration,
    /// The OP's CPU use over the phase, in cores.
    op_cores: f64,
    /// The driver's CPU use over the phase, in cores (it runs on one thread).
    driver_cores: f64,
    p50: Duration,
    p99: Duration,
}

impl Load {
    fn driver_bound(&self) -> bool {
        self.driver_cores >= DRIVER_BOUND
    }
}

#[derive(Default)]
struct Counts {
    ok: u64,
    err: u64,
    latencies: Vec<Duration>,
}

/// Runs `op(i)` from `CLIENTS` tasks on this thread for `phase()` after `WARMUP`.
async fn load<F, Fut>(pids: &[u32], op: F) -> Load
where
    F: Fn(usize) -> Fut + 'static,
    Fut: std::future::Future<Output = bool>,
{
    let op = Rc::new(op);
    let counting = Rc::new(std::cell::Cell::new(false));
    let stop = Rc::new(std::cell::Cell::new(false));
    let counts = Rc::new(std::cell::RefCell::new(Counts::default()));
    let local = tokio::task::LocalSet::new();
    let run = local.run_until(async {
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let (op, counting, stop, counts) = (op.clone(), counting.clone(), stop.clone(), counts.clone());
                tokio::task::spawn_local(async move {
                    while !stop.get() {
                        let began = Instant::now();
                        let success = op(i).await;
                        if counting.get() {
                            let mut c = counts.borrow_mut();
                            if success {
                                c.ok += 1;
                                c.latencies.push(began.elapsed());
                            } else {
                                c.err += 1;
                            }
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(WARMUP).await;
        let op_cpu = || pids.iter().map(cpu_time).sum::<Duration>();
        let (before, driver_before) = (op_cpu(), cpu_time("self"));
        counting.set(true);
        let began = Instant::now();
        tokio::time::sleep(phase()).await;
        counting.set(false);
        let elapsed = began.elapsed();
        let (cpu, driver) = (op_cpu().saturating_sub(before), cpu_time("self").saturating_sub(driver_before));
        stop.set(true);
        for t in tasks {
            let _ = t.await;
        }
        (elapsed, cpu, driver)
    });
    let (elapsed, cpu, driver) = run.await;
    let mut c = counts.take();
    c.latencies.sort();
    let pct =
        |p: f64| c.latencies.get(((c.latencies.len() as f64 * p) as usize).min(c.latencies.len().saturating_sub(1)));
    Load {
        per_second: c.ok as f64 / elapsed.as_secs_f64(),
        errors: c.err,
        cpu_per_op: if c.ok == 0 { Duration::ZERO } else { cpu / c.ok as u32 },
        op_cores: cpu.as_secs_f64() / elapsed.as_secs_f64(),
        driver_cores: driver.as_secs_f64() / elapsed.as_secs_f64(),
        p50: pct(0.5).copied().unwrap_or_default(),
        p99: pct(0.99).copied().unwrap_or_default(),
    }
}

/// A table row: its label and where its figure is.
type Row = (&'static str, fn(&Figures) -> &Load);

/// The five phases against one OP.
struct Figures {
    login: Load,
    refresh: Load,
    client_credentials: Load,
    discovery: Load,
    jwks: Load,
}

async fn phases(op: &Op) -> Figures {
    let http = client();
    let ep = endpoints(&http, &op.issuer).await;
    let pids = [op.child.id()];
    let (h, e) = (http.clone(), ep.clone());
    let discovery = load(&pids, move |_| {
        let (h, e) = (h.clone(), e.clone());
        async move { get_ok(&h, &e.discovery).await }
    })
    .await;
    let (h, e) = (http.clone(), ep.clone());
    let jwks = load(&pids, move |_| {
        let (h, e) = (h.clone(), e.clone());
        async move { get_ok(&h, &e.jwks).await }
    })
    .await;
    let (h, e) = (http.clone(), ep.clone());
    let client_credentials = load(&pids, move |_| {
        let (h, e) = (h.clone(), e.clone());
        async move {
            token(&h, &e, &[("grant_type", "client_credentials")]).await.is_some_and(|t| t["access_token"].is_string())
        }
    })
    .await;
    let (h, e) = (http.clone(), ep.clone());
    let login_phase = load(&pids, move |_| {
        let (h, e) = (h.clone(), e.clone());
        async move { login(&h, &e).await.is_some() }
    })
    .await;
    let mut chains = Vec::new();
    for _ in 0..CLIENTS {
        let tokens = login(&http, &ep).await.expect("a login for the refresh chains");
        chains.push(std::cell::RefCell::new(tokens["refresh_token"].as_str().unwrap().to_string()));
    }
    let chains = Rc::new(chains);
    let (h, e) = (http.clone(), ep.clone());
    let refresh = load(&pids, move |i| {
        let (h, e, chains) = (h.clone(), e.clone(), chains.clone());
        async move {
            let presented = chains[i].borrow().clone();
            let Some(t) = token(&h, &e, &[("grant_type", "refresh_token"), ("refresh_token", &presented)]).await else {
                return false;
            };
            if let Some(next) = t["refresh_token"].as_str() {
                *chains[i].borrow_mut() = next.to_string();
            }
            t["id_token"].is_string()
        }
    })
    .await;
    Figures { login: login_phase, refresh, client_credentials, discovery, jwks }
}

/// Full logins spread over `replicas` (task `i` uses replica `i % n`): logins per second.
async fn replica_logins(replicas: &[Op]) -> Load {
    let http = client();
    let mut eps = Vec::new();
    for r in replicas {
        eps.push(endpoints(&http, &r.issuer).await);
    }
    let eps = Rc::new(eps);
    let pids: Vec<u32> = replicas.iter().map(|r| r.child.id()).collect();
    load(&pids, move |i| {
        let (h, eps) = (http.clone(), eps.clone());
        async move { login(&h, &eps[i % eps.len()]).await.is_some() }
    })
    .await
}

/// The median time of `f`, over `n` runs.
fn median(n: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[n / 2]
}

/// A table cell: CPU per op, and its ratio to the peer's.
fn cell(l: &Load, peer: &Load) -> String {
    let ratio =
        if peer.cpu_per_op.is_zero() { 0.0 } else { l.cpu_per_op.as_secs_f64() / peer.cpu_per_op.as_secs_f64() };
    format!("{:.3} ms ({ratio:.2}×)", ms(l.cpu_per_op))
}

fn record(out: &mut serde_json::Map<String, Value>, side: &str, f: &Figures) {
    for (op, l) in [
        ("login", &f.login),
        ("refresh", &f.refresh),
        ("client_credentials", &f.client_credentials),
        ("discovery", &f.discovery),
        ("jwks", &f.jwks),
    ] {
        out.insert(
            format!("{side}_{op}"),
            json!({
                "cpu_ms": ms(l.cpu_per_op), "per_s": l.per_second, "p50_ms": ms(l.p50), "p99_ms": ms(l.p99),
                "errors": l.errors, "op_cores": l.op_cores, "driver_cores": l.driver_cores,
            }),
        );
    }
}

fn main() {
    // One thread for the driver: its CPU use says whether it limited a phase.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(run());
}

async fn run() {
    let peer_dir = std::env::var_os("PEER_DIR").map_or_else(|| root().join("target").join("peer"), PathBuf::from);
    let data = tempfile::tempdir().unwrap();
    let mut out = serde_json::Map::new();

    // ---- The peer (its scrypt and RS256 costs come with its first line) ----
    let (peer_op, peer_info) = start_peer(&peer_dir);

    // ---- The floor, measured in this run; the bcrypt cost nearest the peer's scrypt ----
    let (sign_rs, sign_es) = (signature_cost("RS256").await, signature_cost("ES256").await);
    let ring_rs = ring_rs256_cost();
    let bcrypt_at = |cost: u32| {
        let hash = bcrypt::hash(PASSWORD, cost).unwrap();
        let check = median(21, || {
            std::hint::black_box(bcrypt::verify(PASSWORD, &hash).unwrap());
        });
        (cost, hash, check)
    };
    let (bcrypt_cost, hash, bcrypt_check) = match std::env::var("PEER_BCRYPT_COST").ok().and_then(|c| c.parse().ok()) {
        Some(cost) => bcrypt_at(cost),
        None => {
            let distance = |d: Duration| (d.as_secs_f64() * 1e6 - peer_info.scrypt_us).abs();
            let (four, five) = (bcrypt_at(4), bcrypt_at(5));
            if distance(four.2) < distance(five.2) { four } else { five }
        }
    };

    // For the docs: what an argon2id check at OWASP's parameters (`hash-password --algorithm
    // argon2id`) costs beside the bcrypt costs (not used by the phases).
    let argon2_check = {
        use portcullis::password as pw;
        let hash =
            pw::hash_argon2id(PASSWORD, pw::ARGON2_DEFAULT_MEMORY_KIB, pw::ARGON2_DEFAULT_ITERATIONS, 1).unwrap();
        median(21, || assert!(pw::verify(PASSWORD, &hash)))
    };
    let bcrypt10_check = {
        let hash = bcrypt::hash(PASSWORD, 10).unwrap();
        median(5, || assert!(bcrypt::verify(PASSWORD, &hash).unwrap()))
    };

    let peer = phases(&peer_op).await;
    drop(peer_op);

    // ---- Ours: RS256 (the default), RS256 ID + ES256 access tokens, ES256, all on SQLite; and
    // ES256 on the memory storage (what the storage costs, beside the peer's memory adapter) ----
    let mut ours = Vec::new();
    for (label, key, alg, extra) in [
        ("Portcullis RS256 + SQLite", "rs256_sqlite", "RS256", ""),
        ("RS256 + ES256 access, SQLite", "rs256_es256at_sqlite", "RS256", "  accessTokenAlgorithm: ES256"),
        ("Portcullis ES256 + SQLite", "es256_sqlite", "ES256", ""),
        ("Portcullis ES256 + memory", "es256_memory", "ES256", ""),
    ] {
        let storage = if key.ends_with("memory") {
            "  type: memory".to_string()
        } else {
            sqlite(&data.path().join(format!("{key}.db")))
        };
        let op = start_ours(&Ours { algorithm: alg, storage, extra, bcrypt_hash: &hash, cpus: None }).await;
        ours.push((label, key, phases(&op).await));
    }

    // ---- PostgreSQL: one replica on core 0, then two (cores 0 and 1) on one database ----
    let postgres_figures = postgres_replicas(&hash).await;

    // ---- The table ----
    println!();
    println!(
        "side by side, OP CPU per operation (ratio to the peer), {CLIENTS} clients, {:.1} s per phase",
        phase().as_secs_f64()
    );
    print!("{:<20} {:>22}", "operation", "node-oidc-provider");
    for (label, _, _) in &ours {
        print!(" {label:>30}");
    }
    println!();
    let rows: [Row; 5] = [
        ("full login", |f| &f.login),
        ("refresh", |f| &f.refresh),
        ("client_credentials", |f| &f.client_credentials),
        ("discovery", |f| &f.discovery),
        ("JWKS", |f| &f.jwks),
    ];
    for (name, get) in rows {
        print!("{name:<20} {:>22}", format!("{:.3} ms", ms(get(&peer).cpu_per_op)));
        for (_, _, f) in &ours {
            print!(" {:>30}", cell(get(f), get(&peer)));
        }
        println!();
    }
    println!();
    println!("ops/s, p50 / p99 latency, OP and driver CPU use (cores); * = the driver was the bottleneck");
    for (name, get) in rows {
        let show = |l: &Load| {
            format!(
                "{:.0}/s {:.1}/{:.1} ms op {:.2} drv {:.2}{}",
                l.per_second,
                ms(l.p50),
                ms(l.p99),
                l.op_cores,
                l.driver_cores,
                if l.driver_bound() { "*" } else { "" }
            )
        };
        print!("{name:<20} {:>40}", show(get(&peer)));
        for (_, _, f) in &ours {
            print!(" {:>40}", show(get(f)));
        }
        println!();
    }
    let errors: u64 =
        rows.iter().map(|(_, get)| get(&peer).errors + ours.iter().map(|(_, _, f)| get(f).errors).sum::<u64>()).sum();
    println!("failed operations in all phases: {errors}");
    println!();
    println!("the floor, measured in this run:");
    println!(
        "  password check: peer scrypt N={} {:.2} ms; ours bcrypt cost {bcrypt_cost} {:.2} ms",
        peer_info.scrypt_n,
        peer_info.scrypt_us / 1e3,
        ms(bcrypt_check)
    );
    println!(
        "  (for new users: argon2id m=19456 KiB, t=2, p=1 {:.2} ms; Dex's bcrypt cost 10 {:.2} ms)",
        ms(argon2_check),
        ms(bcrypt10_check)
    );
    println!(
        "  one RS256 signature: peer (node, OpenSSL) {:.3} ms; ours (aws-lc-rs) {:.3} ms (ring, before: {:.3} ms); one ES256 signature (ours) {:.3} ms",
        peer_info.sign_rs256_us / 1e3,
        ms(sign_rs),
        ms(ring_rs),
        ms(sign_es)
    );
    println!(
        "  signatures per op: login and refresh: peer 1 (ID token; opaque access token), ours 2 (ID + JWT access token); client_credentials: peer 0, ours 1"
    );
    if let Some((one, two)) = &postgres_figures {
        println!();
        println!(
            "PostgreSQL, full logins (RS256): one replica (core 0) {:.0}/s at {:.3} ms CPU; two replicas (cores 0, 1) {:.0}/s ({:.2}× one) at {:.3} ms CPU",
            one.per_second,
            ms(one.cpu_per_op),
            two.per_second,
            two.per_second / one.per_second.max(f64::MIN_POSITIVE),
            ms(two.cpu_per_op)
        );
        println!(
            "  beside SQLite (one process, both cores): {:.0}/s at {:.3} ms CPU",
            ours[0].2.login.per_second,
            ms(ours[0].2.login.cpu_per_op)
        );
        out.insert(
            "postgres_logins".into(),
            json!({"one_per_s": one.per_second, "one_cpu_ms": ms(one.cpu_per_op), "two_per_s": two.per_second,
                   "two_cpu_ms": ms(two.cpu_per_op), "errors": one.errors + two.errors}),
        );
    }

    record(&mut out, "peer", &peer);
    for (_, key, f) in &ours {
        record(&mut out, key, f);
    }
    out.insert(
        "floor".into(),
        json!({
            "peer_scrypt_n": peer_info.scrypt_n, "peer_scrypt_ms": peer_info.scrypt_us / 1e3,
            "peer_sign_rs256_ms": peer_info.sign_rs256_us / 1e3, "bcrypt_cost": bcrypt_cost,
            "bcrypt_ms": ms(bcrypt_check), "argon2id_owasp_ms": ms(argon2_check), "bcrypt10_ms": ms(bcrypt10_check), "sign_rs256_ms": ms(sign_rs), "ring_sign_rs256_ms": ms(ring_rs), "sign_es256_ms": ms(sign_es),
        }),
    );
    let dir = root().join("target").join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let json = Value::Object(out).to_string();
    std::fs::write(dir.join("peer.json"), &json).unwrap();
    println!("{json}");
}

/// Logins on one replica, then on two sharing one fresh PostgreSQL database (dropped after);
/// `None` when PostgreSQL is not reachable at 127.0.0.1:5432 (`PEER_POSTGRES=0` skips it).
async fn postgres_replicas(hash: &str) -> Option<(Load, Load)> {
    if std::env::var("PEER_POSTGRES").as_deref() == Ok("0") {
        return None;
    }
    use sqlx::Executor as _;
    let admin = match sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres").await {
        Ok(p) => p,
        Err(e) => {
            println!("PostgreSQL phase skipped: cannot reach postgres://postgres@127.0.0.1:5432 ({e})");
            return None;
        }
    };
    let db = format!("portcullis_bench_{}", std::process::id());
    admin.execute(format!("CREATE DATABASE {db}").as_str()).await.unwrap();
    let ours =
        |cpus| Ours { algorithm: "RS256", storage: postgres(&db), extra: "", bcrypt_hash: hash, cpus: Some(cpus) };
    let one = {
        let replica = start_ours(&ours("0")).await;
        replica_logins(std::slice::from_ref(&replica)).await
    };
    let two = {
        let a = start_ours(&ours("0")).await;
        let b = start_ours(&ours("1")).await;
        replica_logins(&[a, b]).await
    };
    let _ = admin.execute(format!("DROP DATABASE {db} WITH (FORCE)").as_str()).await;
    Some((one, two))
}
