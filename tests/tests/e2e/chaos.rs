//! `cargo xtask chaos [--seconds N]`: three broker replicas (the real `portcullis` binary, each
//! its own process) on one PostgreSQL database, a load driver spreading logins, refreshes and
//! userinfo calls over them, and a killer that `kill -9`s a random replica every 10 s and
//! restarts it; halfway through, every replica is restarted in turn with SIGTERM (a rolling
//! restart). The driver acts as a load balancer would: a request that fails on the connection
//! is retried once on another replica. It reports what clients saw:
//!
//! - logins started and finished, and those failed after the retry (with the reasons); a code
//!   exchange whose answer was cut is not sent again (the code is single-use) but the login is
//!   started again once in the same browser, as an application would, and its SSO session
//!   answers with a new code;
//! - refresh tokens lost: a valid, unused refresh token later refused (and, apart, those refused
//!   after a retry, when the first attempt's answer was cut);
//! - codes redeemed twice: every fifth login replays its code at another replica at the end;
//!   anything but `invalid_grant` is a double redemption;
//! - unverifiable ID tokens: each is checked against the JWKS of every replica;
//! - the database's rows before and after garbage collection.
//!
//! The hard invariants (no double redemption, no unverifiable token) are always asserted, and
//! with `PORTCULLIS_CHAOS_STRICT=1` (what `cargo xtask chaos` sets) every target: 0 refresh
//! tokens lost, 0 failed logins after one retry. The report is one JSON line with
//! `targets_unmet`. Ignored in a plain `cargo test`: `cargo xtask test` runs it for 60 s,
//! `cargo xtask chaos` for `--seconds` (default 600). `PORTCULLIS_BIN` names the binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_tests::flow::{CALLBACK, CLIENT, SECRET};
use portcullis_tests::{TestDatabase, hidden, pkce, query_param, repo_file};
use reqwest::StatusCode;
use serde_json::{Value, json};

const REPLICAS: usize = 3;
const WORKERS: usize = 6;
const KILL_EVERY: Duration = Duration::from_secs(10);
const ISSUER: &str = "http://127.0.0.1:1/dex";
const PASSWORD: &str = "chaos-password";
/// `portcullis hash-password --cost 4` of PASSWORD: the run measures the broker, not bcrypt.
const HASH: &str = "$2b$04$0IaM21Sncfte9TZCQ59ZKu8blTPsN4Sa0FFFFLCiF5C.AJXaSBtJu";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One replica: its ports, config and (while running) its process.
struct Replica {
    web: u16,
    telemetry: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Replica {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}/dex", self.web)
    }

    fn spawn(&mut self, bin: &Path) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&self.config)
            .env("XDG_CACHE_HOME", self.config.parent().unwrap().join("cache"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        self.child = Some(child);
    }

    /// Waits (60 s at most) until `/healthz/ready` answers 200.
    async fn ready(&mut self) {
        let url = format!("http://127.0.0.1:{}/healthz/ready", self.telemetry);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(&url).await
                && r.status() == StatusCode::OK
            {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("replica on {} exited ({status}): {}", self.web, std::fs::read_to_string(&self.log).unwrap());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("replica on {} not ready after 60 s: {}", self.web, std::fs::read_to_string(&self.log).unwrap());
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits (30 s at most) for the drain to end; whether readiness answered 503
    /// while the process was still serving (`web.shutdownDelay`).
    async fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let ready = format!("http://127.0.0.1:{}/healthz/ready", self.telemetry);
        let mut unready_first = false;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return unready_first;
            }
            if !unready_first && let Ok(r) = reqwest::get(&ready).await {
                unready_first = r.status() == StatusCode::SERVICE_UNAVAILABLE;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("replica on {} did not stop within 30 s of SIGTERM", self.web);
    }
}

/// What the driver saw.
#[derive(Default)]
struct Counts {
    logins_started: AtomicU64,
    logins_finished: AtomicU64,
    logins_failed: AtomicU64,
    requests: AtomicU64,
    retried: AtomicU64,
    requests_failed: AtomicU64,
    cut_not_retried: AtomicU64,
    logins_restarted: AtomicU64,
    refreshes: AtomicU64,
    refresh_lost: AtomicU64,
    refresh_lost_after_retry: AtomicU64,
    userinfo: AtomicU64,
    code_replays: AtomicU64,
    double_redemptions: AtomicU64,
    tokens_verified: AtomicU64,
    unverifiable: AtomicU64,
    kills: AtomicU64,
    graceful_restarts: AtomicU64,
    unready_before_exit: AtomicU64,
    reasons: Mutex<BTreeMap<String, u64>>,
}

impl Counts {
    fn reason(&self, reason: String) {
        *self.reasons.lock().unwrap().entry(reason).or_default() += 1;
    }
}

/// The load balancer's view: the replicas' bases, any of which may be down.
struct Balancer {
    bases: Vec<String>,
    /// Whether the balancer routes to each replica: off from a replica's SIGTERM until it is
    /// ready again (what readiness-based routing does within `web.shutdownDelay`); a SIGKILL
    /// is not announced.
    routable: Vec<AtomicBool>,
    counts: Arc<Counts>,
}

/// Why `Balancer::send_with` has no answer.
enum Sent {
    /// The connection broke after the request was sent, and it was not sent again.
    Cut(String),
    /// No replica answered, on the first attempt or the retry.
    Failed(String),
}

/// An answer, and whether it came on the retry (the first attempt's connection failed).
struct Answer {
    response: reqwest::Response,
    retried: bool,
}

impl Balancer {
    /// Sends `request(base)` to a random replica; on a connection error, once more to another.
    async fn send(&self, request: impl Fn(&str) -> reqwest::RequestBuilder) -> Result<Answer, String> {
        self.send_with(request, true).await.map_err(|e| match e {
            Sent::Cut(e) | Sent::Failed(e) => e,
        })
    }

    /// As `send`; with `after_sent` false, a request whose connection broke after it was sent
    /// is not retried (a code exchange: a code must not be presented twice, RFC 6749 §4.1.2).
    async fn send_with(
        &self,
        request: impl Fn(&str) -> reqwest::RequestBuilder,
        after_sent: bool,
    ) -> Result<Answer, Sent> {
        self.counts.requests.fetch_add(1, Relaxed);
        let pick = |not: Option<usize>| {
            let candidates: Vec<usize> =
                (0..self.bases.len()).filter(|&i| Some(i) != not && self.routable[i].load(Relaxed)).collect();
            // One replica (or none routable): the retry goes where the first attempt went.
            if candidates.is_empty() { not.unwrap_or(0) } else { candidates[rand_index(candidates.len())] }
        };
        let first = pick(None);
        match request(&self.bases[first]).send().await {
            Ok(response) => Ok(Answer { response, retried: false }),
            Err(e) if !after_sent && !e.is_connect() => {
                self.counts.cut_not_retried.fetch_add(1, Relaxed);
                Err(Sent::Cut(format!(
                    "the answer was cut and the request is not retried: {}",
                    without_port(&e.to_string())
                )))
            }
            Err(_) => {
                self.counts.retried.fetch_add(1, Relaxed);
                let second = pick(Some(first));
                match request(&self.bases[second]).send().await {
                    Ok(response) => Ok(Answer { response, retried: true }),
                    Err(e) => {
                        self.counts.requests_failed.fetch_add(1, Relaxed);
                        Err(Sent::Failed(format!("failed after one retry: {}", without_port(&e.to_string()))))
                    }
                }
            }
        }
    }
}

/// A random index below `n` (from the broker's own random tokens; no rand crate here).
fn rand_index(n: usize) -> usize {
    let token = portcullis::web::random_token();
    let x = token.bytes().fold(0u64, |a, b| a.wrapping_mul(131).wrapping_add(u64::from(b)));
    (x % n as u64) as usize
}

/// An error text without the port numbers, so equal reasons group.
fn without_port(text: &str) -> String {
    text.split(|c: char| c.is_ascii_digit()).collect::<Vec<_>>().join("#")
}

/// The path and query of a Location (absolute under the issuer or relative to the host).
fn path_of(location: &str) -> String {
    let rest = location.strip_prefix(ISSUER).map(|r| format!("/dex{r}"));
    rest.unwrap_or_else(|| location.to_string())
}

fn location(response: &reqwest::Response) -> Option<String> {
    Some(response.headers().get(reqwest::header::LOCATION)?.to_str().ok()?.to_string())
}

/// Verifies ID tokens against the JWKS of every replica (cached per replica, fetched again when
/// a key id is missing).
struct Verifier {
    bases: Vec<String>,
    cache: Mutex<Vec<Option<jsonwebtoken::jwk::JwkSet>>>,
}

impl Verifier {
    async fn verify(&self, id_token: &str) -> Result<(), String> {
        let header = jsonwebtoken::decode_header(id_token).map_err(|e| format!("bad JWT header: {e}"))?;
        let kid = header.kid.clone().ok_or("no kid")?;
        for (i, base) in self.bases.iter().enumerate() {
            let cached = self.cache.lock().unwrap()[i].clone();
            let set = match cached.filter(|s| s.find(&kid).is_some()) {
                Some(set) => set,
                None => {
                    // A replica that is down cannot be asked; every other one must know the key.
                    let Ok(r) = reqwest::get(format!("{base}/keys")).await else { continue };
                    let set: jsonwebtoken::jwk::JwkSet = r.json().await.map_err(|e| format!("{base}/keys: {e}"))?;
                    self.cache.lock().unwrap()[i] = Some(set.clone());
                    set
                }
            };
            let jwk = set.find(&kid).ok_or_else(|| format!("replica {i}'s JWKS lacks key {kid}"))?;
            let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
            let mut validation = jsonwebtoken::Validation::new(header.alg);
            validation.set_issuer(&[ISSUER]);
            validation.set_audience(&[CLIENT]);
            jsonwebtoken::decode::<Value>(id_token, &key, &validation)
                .map_err(|e| format!("replica {i}'s JWKS does not verify it: {e}"))?;
        }
        Ok(())
    }
}

/// `POST /token` as the client with `form`, for `Balancer::send`.
fn token(form: Vec<(&'static str, String)>) -> impl Fn(&str) -> reqwest::RequestBuilder {
    move |b: &str| reqwest::Client::new().post(format!("{b}/token")).basic_auth(CLIENT, Some(SECRET)).form(&form)
}

/// One login through the password form, its refreshes and userinfo, maybe a code replay.
///
/// A code exchange whose answer was cut (the replica died after the request was sent) is not
/// sent again: the code may have been redeemed, and a second redemption must fail (RFC 6749
/// §4.1.2). Likewise a password post whose answer was cut and whose retry finds the login
/// already finished. The application does what an RP does with a failed login: it starts it
/// again, once, in the same browser, where the SSO session (in the database, so every replica
/// has it) answers with a new code without asking for the password. Such a login counts as
/// finished after a retry (`logins_restarted_after_a_cut_answer`); only one that fails again
/// counts as failed.
async fn one_login(lb: &Balancer, verifier: &Verifier, replay: bool) -> Result<(), String> {
    let c = &lb.counts;
    let web = browser();
    let (tokens, exchange) = match code_flow(lb, &web).await {
        Err(Flow::Cut(_)) => {
            c.logins_restarted.fetch_add(1, Relaxed);
            code_flow(lb, &web).await.map_err(|e| format!("after the login was started again: {}", e.text()))?
        }
        other => other.map_err(Flow::text)?,
    };
    check_id_token(c, verifier, &tokens).await;
    c.logins_finished.fetch_add(1, Relaxed);
    refreshes_and_replay(lb, verifier, tokens, exchange, replay).await
}

/// A browser: its own cookie jar, redirects left to the flow.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Why a code flow did not end with tokens.
enum Flow {
    /// The code exchange's answer was cut after the request was sent.
    Cut(String),
    Failed(String),
}

impl Flow {
    fn text(self) -> String {
        match self {
            Flow::Cut(e) | Flow::Failed(e) => e,
        }
    }
}

impl From<String> for Flow {
    fn from(e: String) -> Self {
        Flow::Failed(e)
    }
}

impl From<&str> for Flow {
    fn from(e: &str) -> Self {
        Flow::Failed(e.to_string())
    }
}

/// Authorize → password form (unless `web` holds an SSO session) → code → token: the token
/// answer and the code exchange's form.
async fn code_flow(lb: &Balancer, web: &reqwest::Client) -> Result<(Value, Vec<(&'static str, String)>), Flow> {
    let (verifier_pkce, challenge) = pkce();
    let state = portcullis::web::random_token();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("client_id", CLIENT),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
            ("scope", "openid email profile offline_access"),
            ("state", &state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("connector_id", "local"),
        ])
        .finish();
    let auth = lb.send(|b| web.get(format!("{b}/auth?{query}"))).await?.response;
    let to_form = location(&auth).ok_or_else(|| format!("/auth answered {}", auth.status()))?;
    let back = if to_form.starts_with(CALLBACK) { to_form } else { password_form(lb, web, &to_form).await? };
    if !back.starts_with(CALLBACK) {
        return Err(format!("after the login: {}", path_of(&back).split('?').next().unwrap_or_default()).into());
    }
    if query_param(&back, "state").as_deref() != Some(state.as_str()) {
        return Err("state mismatch".into());
    }
    let code = query_param(&back, "code").ok_or("no code")?;
    let exchange = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", code.clone()),
        ("redirect_uri", CALLBACK.to_string()),
        ("code_verifier", verifier_pkce.clone()),
    ];
    let redeemed = match lb.send_with(token(exchange.clone()), false).await {
        Ok(answer) => answer.response,
        Err(Sent::Cut(e)) => return Err(Flow::Cut(e)),
        Err(Sent::Failed(e)) => return Err(Flow::Failed(e)),
    };
    if redeemed.status() != StatusCode::OK {
        let status = redeemed.status();
        return Err(format!("code exchange answered {status}: {}", redeemed.text().await.unwrap_or_default()).into());
    }
    let tokens: Value = redeemed.json().await.map_err(|e| e.to_string())?;
    Ok((tokens, exchange))
}

/// The password form at `to_form` filled and posted: where the broker sends the browser next.
/// A post whose first answer was cut and whose retry was refused ("Login expired": the first
/// attempt had finished the login) is `Flow::Cut`, like a cut code exchange.
async fn password_form(lb: &Balancer, web: &reqwest::Client, to_form: &str) -> Result<String, Flow> {
    let form = lb.send(|b| web.get(format!("{b}{}", path_of(to_form).trim_start_matches("/dex")))).await?.response;
    if form.status() != StatusCode::OK {
        return Err(format!("the password form answered {}", form.status()).into());
    }
    let html = form.text().await.map_err(|e| e.to_string())?;
    let (req, csrf) = (hidden(&html, "req").ok_or("no req")?, hidden(&html, "csrf").ok_or("no csrf")?);
    let fields =
        [("req", req.as_str()), ("csrf", csrf.as_str()), ("login", "admin@example.com"), ("password", PASSWORD)];
    let posted = lb.send(|b| web.post(format!("{b}/auth/local/login")).form(&fields)).await?;
    let retried = if posted.retried { " after a retry" } else { "" };
    let posted = posted.response;
    match location(&posted) {
        Some(back) => Ok(back),
        None => {
            let status = posted.status();
            let page = posted.text().await.unwrap_or_default();
            let title = page.split("<h1>").nth(1).and_then(|t| t.split('<').next()).unwrap_or_default().to_string();
            let why = format!("the login answered {status}{retried}: {title}");
            Err(if retried.is_empty() { Flow::Failed(why) } else { Flow::Cut(why) })
        }
    }
}

/// Two rounds of userinfo + refresh on `tokens`, then (with `replay`) the code again.
async fn refreshes_and_replay(
    lb: &Balancer,
    verifier: &Verifier,
    tokens: Value,
    exchange: Vec<(&'static str, String)>,
    replay: bool,
) -> Result<(), String> {
    let c = &lb.counts;
    let mut access = tokens["access_token"].as_str().unwrap_or_default().to_string();
    let mut refresh = tokens["refresh_token"].as_str().ok_or("no refresh token")?.to_string();
    for _ in 0..2 {
        let bearer = access.clone();
        let info = lb.send(|b| reqwest::Client::new().get(format!("{b}/userinfo")).bearer_auth(&bearer)).await?;
        c.userinfo.fetch_add(1, Relaxed);
        if info.response.status() != StatusCode::OK {
            c.reason(format!("userinfo answered {}", info.response.status()));
        }
        let answer = lb
            .send(token(vec![("grant_type", "refresh_token".to_string()), ("refresh_token", refresh.clone())]))
            .await?;
        c.refreshes.fetch_add(1, Relaxed);
        let status = answer.response.status();
        if status != StatusCode::OK {
            let body = answer.response.text().await.unwrap_or_default();
            if answer.retried {
                c.refresh_lost_after_retry.fetch_add(1, Relaxed);
            } else {
                c.refresh_lost.fetch_add(1, Relaxed);
            }
            c.reason(format!(
                "refresh answered {status}{}: {body}",
                if answer.retried { " after a retry" } else { "" }
            ));
            break;
        }
        let renewed: Value = answer.response.json().await.map_err(|e| e.to_string())?;
        check_id_token(c, verifier, &renewed).await;
        access = renewed["access_token"].as_str().unwrap_or_default().to_string();
        refresh = renewed["refresh_token"].as_str().ok_or("no rotated refresh token")?.to_string();
    }
    if replay {
        c.code_replays.fetch_add(1, Relaxed);
        let again = lb.send(token(exchange)).await?.response;
        let status = again.status();
        let body: Value = again.json().await.unwrap_or(Value::Null);
        if status == StatusCode::OK || body["error"] != "invalid_grant" {
            c.double_redemptions.fetch_add(1, Relaxed);
            c.reason(format!("a replayed code answered {status} {body}"));
        }
    }
    Ok(())
}

async fn check_id_token(c: &Counts, verifier: &Verifier, tokens: &Value) {
    match tokens["id_token"].as_str() {
        Some(jwt) => match verifier.verify(jwt).await {
            Ok(()) => {
                c.tokens_verified.fetch_add(1, Relaxed);
            }
            Err(e) => {
                c.unverifiable.fetch_add(1, Relaxed);
                c.reason(format!("unverifiable ID token: {e}"));
            }
        },
        None => c.reason("a token answer without id_token".into()),
    }
}

/// The `storage` block for a database URL: `postgres://…` or `mysql://…` (Dex's keys, TLS off
/// on loopback), or a SQLite file path.
fn storage_block(url: &str) -> String {
    if url.starts_with("mysql://") {
        let parsed = url::Url::parse(url).unwrap();
        let password = parsed.password().map(|p| format!("\n    password: \"{p}\"")).unwrap_or_default();
        format!(
            "  type: mysql\n  config:\n    host: {}\n    port: {}\n    user: {}{password}\n    database: {}\n    ssl: {{mode: \"false\"}}",
            parsed.host_str().unwrap(),
            parsed.port().unwrap_or(3306),
            parsed.username(),
            parsed.path().trim_start_matches('/')
        )
    } else if url.starts_with("postgres://") {
        format!("  type: postgres\n  config:\n    url: \"{url}\"")
    } else {
        format!("  type: sqlite3\n  config:\n    file: {url}")
    }
}

fn config(db_url: &str, web: u16, telemetry: u16) -> String {
    let storage = storage_block(db_url);
    format!(
        r#"issuer: {ISSUER}
storage:
{storage}
web:
  http: 127.0.0.1:{web}
  # The load comes from one address: the per-IP and per-account throttles would slow it.
  throttle: {{authorizePerIP: 0, passwordPerIP: 0, passwordPerAccount: 0}}
  # On SIGTERM readiness turns false for a second before the drain (the rolling restart checks).
  shutdownDelay: 1s
telemetry:
  http: 127.0.0.1:{telemetry}
logger:
  level: warn
oauth2:
  skipApprovalScreen: true
expiry:
  refreshTokens:
    reuseInterval: 3s
staticClients:
- id: {CLIENT}
  name: Chaos
  secret: {SECRET}
  redirectURIs: ['{CALLBACK}']
enablePasswordDB: true
staticPasswords:
- email: admin@example.com
  hash: "{HASH}"
  username: admin
  userID: 08a8684b-db88-4b73-90a9-3cd1661f5466
"#
    )
}

/// Rows of `portcullis_objects` by kind: (all, expired).
async fn rows(url: &str) -> BTreeMap<String, (i64, i64)> {
    use sqlx::Connection as _;
    let now = portcullis::clock::now();
    if url.starts_with("mysql://") {
        let mut conn = sqlx::MySqlConnection::connect(url).await.unwrap();
        let rows: Vec<(Vec<u8>, i64, i64)> = sqlx::query_as(
            "SELECT kind, COUNT(*), CAST(SUM(expires_at > 0 AND expires_at <= ?) AS SIGNED) FROM portcullis_objects GROUP BY kind",
        )
        .bind(now)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        return rows
            .into_iter()
            .map(|(k, all, expired)| (String::from_utf8_lossy(&k).into_owned(), (all, expired)))
            .collect();
    }
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT kind, COUNT(*), COUNT(*) FILTER (WHERE expires_at > 0 AND expires_at <= $1) FROM portcullis_objects GROUP BY kind",
    )
    .bind(now)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    rows.into_iter().map(|(k, all, expired)| (k, (all, expired))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by `cargo xtask chaos` and, for 60 s, by `cargo xtask test`"]
async fn replicas_killed_under_load_lose_nothing() {
    let seconds: u64 = std::env::var("PORTCULLIS_CHAOS_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let bin =
        std::env::var_os("PORTCULLIS_BIN").map(PathBuf::from).unwrap_or_else(|| repo_file("target/debug/portcullis"));
    assert!(bin.is_file(), "{} is missing: build it with `cargo build -p portcullis`", bin.display());
    // PORTCULLIS_CHAOS_STORAGE=mysql runs the same on MariaDB / MySQL.
    let mysql = std::env::var("PORTCULLIS_CHAOS_STORAGE").is_ok_and(|s| s == "mysql");
    let (pg, my) = if mysql {
        (None, Some(portcullis_tests::TestMysqlDatabase::create().await))
    } else {
        (Some(TestDatabase::create().await), None)
    };
    let db_url = pg.as_ref().map(TestDatabase::url).or(my.as_ref().map(|m| m.url())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut replicas: Vec<Replica> = (0..REPLICAS)
        .map(|i| {
            let (web, telemetry) = (free_port(), free_port());
            let config = dir.path().join(format!("replica-{i}.yaml"));
            std::fs::write(&config, self::config(&db_url, web, telemetry)).unwrap();
            Replica { web, telemetry, config, log: dir.path().join(format!("replica-{i}.log")), child: None }
        })
        .collect();
    for r in &mut replicas {
        r.spawn(&bin);
    }
    for r in &mut replicas {
        r.ready().await;
    }
    let bases: Vec<String> = replicas.iter().map(Replica::base).collect();
    let counts = Arc::new(Counts::default());
    let lb = Arc::new(Balancer {
        bases: bases.clone(),
        routable: (0..REPLICAS).map(|_| AtomicBool::new(true)).collect(),
        counts: counts.clone(),
    });
    let verifier = Arc::new(Verifier { bases: bases.clone(), cache: Mutex::new(vec![None; REPLICAS]) });
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);

    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (lb, verifier, counts) = (lb.clone(), verifier.clone(), counts.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    counts.logins_started.fetch_add(1, Relaxed);
                    n += 1;
                    if let Err(reason) = one_login(&lb, &verifier, (n + w as u64).is_multiple_of(5)).await {
                        counts.logins_failed.fetch_add(1, Relaxed);
                        counts.reason(reason);
                    }
                }
            })
        })
        .collect();

    // The killer: kill -9 a random replica every 10 s and restart it; halfway, a rolling
    // restart of every replica with SIGTERM.
    let mut rolled = false;
    while Instant::now() + KILL_EVERY < deadline {
        tokio::time::sleep(KILL_EVERY).await;
        if !rolled && started.elapsed() >= Duration::from_secs(seconds / 2) {
            rolled = true;
            for (i, r) in replicas.iter_mut().enumerate() {
                lb.routable[i].store(false, Relaxed);
                if r.terminate().await {
                    counts.unready_before_exit.fetch_add(1, Relaxed);
                }
                r.spawn(&bin);
                r.ready().await;
                lb.routable[i].store(true, Relaxed);
                counts.graceful_restarts.fetch_add(1, Relaxed);
            }
            continue;
        }
        let victim = &mut replicas[rand_index(REPLICAS)];
        victim.kill9();
        counts.kills.fetch_add(1, Relaxed);
        victim.spawn(&bin);
        victim.ready().await;
    }
    for w in workers {
        w.await.unwrap();
    }

    let before = rows(&db_url).await;
    let backend = match &my {
        Some(m) => m.backend().await,
        None => portcullis::storage::SqlBackend::postgres(&db_url).await.unwrap(),
    };
    let collected = portcullis::storage::Backend::collect_garbage(&backend, portcullis::clock::now()).await.unwrap();
    let after = rows(&db_url).await;
    for r in &mut replicas {
        r.terminate().await;
    }

    let n = |a: &AtomicU64| a.load(Relaxed);
    let reasons = counts.reasons.lock().unwrap().clone();
    let report = json!({
        "seconds": started.elapsed().as_secs(),
        "replicas": REPLICAS,
        "storage": if mysql { "mysql" } else { "postgres" },
        "workers": WORKERS,
        "kills": n(&counts.kills),
        "graceful_restarts": n(&counts.graceful_restarts),
        "readiness_false_before_exit": n(&counts.unready_before_exit),
        "logins_started": n(&counts.logins_started),
        "logins_finished": n(&counts.logins_finished),
        "logins_failed": n(&counts.logins_failed),
        "requests": n(&counts.requests),
        "requests_retried": n(&counts.retried),
        "requests_failed_after_retry": n(&counts.requests_failed),
        "code_exchanges_cut_not_retried": n(&counts.cut_not_retried),
        "logins_restarted_after_a_cut_answer": n(&counts.logins_restarted),
        "refreshes": n(&counts.refreshes),
        "refresh_tokens_lost": n(&counts.refresh_lost),
        "refresh_tokens_refused_after_retry": n(&counts.refresh_lost_after_retry),
        "userinfo_calls": n(&counts.userinfo),
        "code_replays": n(&counts.code_replays),
        "codes_redeemed_twice": n(&counts.double_redemptions),
        "id_tokens_verified": n(&counts.tokens_verified),
        "id_tokens_unverifiable": n(&counts.unverifiable),
        "rows_before_gc": before.iter().map(|(k, (all, expired))| (k.clone(), json!({"rows": all, "expired": expired}))).collect::<serde_json::Map<_, _>>(),
        "rows_collected": collected,
        "rows_after_gc": after.iter().map(|(k, (all, _))| (k.clone(), json!(all))).collect::<serde_json::Map<_, _>>(),
        "failure_reasons": reasons,
    });
    // The issue's targets: nothing lost, nothing redeemed twice, every token verifiable, no
    // login failed after its one retry (a cut code exchange's restart, above).
    let targets = [
        ("refresh_tokens_lost", n(&counts.refresh_lost) + n(&counts.refresh_lost_after_retry)),
        ("codes_redeemed_twice", n(&counts.double_redemptions)),
        ("id_tokens_unverifiable", n(&counts.unverifiable)),
        ("logins_failed_after_one_retry", n(&counts.logins_failed)),
    ];
    let unmet: Vec<String> = targets.iter().filter(|(_, v)| *v > 0).map(|(k, v)| format!("{k} = {v}")).collect();
    let mut report = report;
    report["targets_unmet"] = json!(unmet);
    println!("chaos report: {}", serde_json::to_string_pretty(&report).unwrap());
    println!("CHAOS_JSON {report}");
    assert!(!before.is_empty(), "the run wrote to the database");
    assert!(n(&counts.logins_finished) > 0, "no login finished: {report}");
    assert_eq!(n(&counts.double_redemptions), 0, "a code was redeemed twice: {report}");
    assert_eq!(n(&counts.unverifiable), 0, "an ID token did not verify against every replica's JWKS: {report}");
    assert_eq!(
        n(&counts.unready_before_exit),
        n(&counts.graceful_restarts),
        "on SIGTERM readiness turns false before the process exits: {report}"
    );
    // `cargo xtask chaos` holds the run to every target; the short run in `cargo xtask test`
    // to the invariants above (a login failed there is in the report and its reasons).
    if std::env::var("PORTCULLIS_CHAOS_STRICT").is_ok_and(|v| v == "1") {
        assert!(unmet.is_empty(), "targets not met: {}", unmet.join(", "));
    }
}

/// SQLite under `kill -9`: one replica on a SQLite file (WAL, `synchronous=NORMAL`) serving
/// logins from four workers is killed mid-write and restarted on the same file; every refresh
/// token a client received before the kill (its grant was committed) still refreshes.
/// `synchronous=NORMAL` loses nothing when the process dies (the WAL is in the OS's cache);
/// only a power cut or OS crash can lose the last commits (docs/reliability.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the portcullis binary: run by `cargo xtask chaos` and `cargo xtask test`"]
async fn sqlite_killed_during_writes_loses_no_committed_grant() {
    let bin =
        std::env::var_os("PORTCULLIS_BIN").map(PathBuf::from).unwrap_or_else(|| repo_file("target/debug/portcullis"));
    assert!(bin.is_file(), "{} is missing: build it with `cargo build -p portcullis`", bin.display());
    let dir = tempfile::tempdir().unwrap();
    let (web, telemetry) = (free_port(), free_port());
    let config = dir.path().join("sqlite.yaml");
    let yaml = self::config(&dir.path().join("portcullis.db").display().to_string(), web, telemetry);
    std::fs::write(&config, yaml).unwrap();
    let mut replica = Replica { web, telemetry, config, log: dir.path().join("sqlite.log"), child: None };
    replica.spawn(&bin);
    replica.ready().await;
    let counts = Arc::new(Counts::default());
    let lb = Arc::new(Balancer { bases: vec![replica.base()], routable: vec![AtomicBool::new(true)], counts });
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (lb, received, stop) = (lb.clone(), received.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Relaxed) {
                    if let Ok((tokens, _)) = code_flow(&lb, &browser()).await
                        && let Some(refresh) = tokens["refresh_token"].as_str()
                    {
                        received.lock().unwrap().push(refresh.to_string());
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    replica.kill9();
    stop.store(true, Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let received = received.lock().unwrap().clone();
    assert!(received.len() > 10, "logins before the kill: {}", received.len());
    replica.spawn(&bin);
    replica.ready().await;
    let mut lost = Vec::new();
    for refresh in &received {
        let answer =
            lb.send(token(vec![("grant_type", "refresh_token".into()), ("refresh_token", refresh.clone())])).await;
        match answer {
            Ok(a) if a.response.status() == StatusCode::OK => {}
            Ok(a) => lost.push(format!("{}: {}", a.response.status(), a.response.text().await.unwrap_or_default())),
            Err(e) => lost.push(e),
        }
    }
    replica.terminate().await;
    println!("SQLITE_KILL {} grants committed before the kill, {} lost after it", received.len(), lost.len());
    assert!(
        lost.is_empty(),
        "{} of {} committed grants lost: {:?}",
        lost.len(),
        received.len(),
        &lost[..lost.len().min(5)]
    );
}
