//! Hot reload: a new config or plugin goes live without a restart, under load and without a
//! failed request; a broken one never replaces the working one; logins in flight finish on the
//! version they began with; a removed connector fails its in-flight logins cleanly.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use portcullis_tests::{TestBroker, browser, fixture, location, plugin, query_param, repo_file};
use reqwest::StatusCode;

const SECRET: &str = "ZXhhbXBsZS1hcHAtc2VjcmV0";
const CALLBACK: &str = "http://127.0.0.1:5555/callback";

/// The config file, with the mock connector returning user `user_id`.
fn config(issuer: &str, plugin: &Path, user_id: &str, extra_connector_keys: &str) -> String {
    format!(
        r#"issuer: "{issuer}"
storage: {{type: memory}}
# The load tests run many logins from one address: no per-IP throttle here.
web: {{throttle: {{authorizePerIP: 0, passwordPerIP: 0}}}}
oauth2: {{skipApprovalScreen: true}}
staticClients:
- id: example-app
  secret: {SECRET}
  redirectURIs: [{CALLBACK}]
connectors:
- plugin: "{}"
  id: mock
  name: Example{extra_connector_keys}
  config:
    identity: {{userID: {user_id}, username: "User {user_id}"}}
"#,
        plugin.display()
    )
}

/// Something done to a setup's files, by name in a table of cases.
type Change<'a> = Box<dyn Fn(&Setup) + 'a>;

struct Setup {
    _dir: tempfile::TempDir,
    file: PathBuf,
    plugin: PathBuf,
    broker: TestBroker,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let plugin_copy = dir.path().join("mock.wasm");
    std::fs::copy(plugin("mock"), &plugin_copy).unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, config("{issuer}", &plugin_copy, "v1", "")).unwrap();
    let broker = TestBroker::builder().file(&file).start().await;
    Setup { _dir: dir, file, plugin: plugin_copy, broker }
}

/// `setup` with the file watcher running and armed.
async fn watched_setup() -> Setup {
    let s = setup().await;
    s.broker.broker.generations.spawn_reloaders();
    tokio::time::sleep(Duration::from_millis(200)).await;
    s
}

impl Setup {
    fn write(&self, user_id: &str, extra: &str) {
        std::fs::write(&self.file, config(&self.broker.issuer, &self.plugin, user_id, extra)).unwrap();
    }
}

/// A login begun in `web` and left at the upstream: the mock connector's callback URL, not yet
/// followed, and the PKCE verifier.
struct Begun {
    callback: String,
    verifier: String,
}

/// Begins a login through the mock connector and stops where the upstream would answer.
async fn begin(b: &TestBroker, web: &reqwest::Client) -> Result<Begun, String> {
    let (verifier, challenge) = portcullis_tests::pkce();
    let url = format!(
        "{}/auth?client_id=example-app&redirect_uri={CALLBACK}&response_type=code&scope=openid&connector_id=mock&code_challenge={challenge}&code_challenge_method=S256",
        b.issuer
    );
    // auth -> connector -> the upstream's callback.
    let mut url = url;
    for _ in 0..2 {
        let r = web.get(&url).send().await.map_err(|e| e.to_string())?;
        if r.status() != StatusCode::SEE_OTHER {
            return Err(format!("{url}: {} {}", r.status(), r.text().await.unwrap_or_default()));
        }
        url = location(&r, &b.base).ok_or("no location")?;
    }
    Ok(Begun { callback: url, verifier })
}

/// Follows the upstream's callback of a begun login to the client, redeems the code, and
/// returns the user id the ID token names.
async fn finish(b: &TestBroker, web: &reqwest::Client, begun: Begun) -> Result<String, String> {
    let mut url = begun.callback;
    for _ in 0..2 {
        if url.starts_with(CALLBACK) {
            break;
        }
        let r = web.get(&url).send().await.map_err(|e| e.to_string())?;
        if r.status() != StatusCode::SEE_OTHER {
            return Err(format!("{url}: {} {}", r.status(), r.text().await.unwrap_or_default()));
        }
        url = location(&r, &b.base).ok_or("no location")?;
    }
    let code = query_param(&url, "code").ok_or_else(|| format!("no code in {url}"))?;
    let tokens: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/token", b.issuer))
        .basic_auth("example-app", Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &begun.verifier),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let id_token = tokens["id_token"].as_str().ok_or_else(|| format!("no id_token: {tokens}"))?;
    let sub = portcullis_tests::flow::claims(id_token)["sub"].as_str().ok_or("no sub")?.to_string();
    portcullis::oidc::sub::decode(&sub).map(|(user, _)| user).ok_or_else(|| "bad sub".into())
}

/// One whole login through the mock connector in a fresh browser; returns the user id the ID
/// token names.
async fn login(b: &TestBroker) -> Result<String, String> {
    let web = browser();
    let begun = begin(b, &web).await?;
    finish(b, &web, begun).await
}

#[tokio::test]
async fn swapping_v1_for_v2_under_load_fails_no_request() {
    let Setup { _dir, file, plugin, broker } = setup().await;
    let broker = Arc::new(broker);
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let swapped_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (stop, failures, swapped_at) = (stop.clone(), failures.clone(), swapped_at.clone());
        let b = broker.clone();
        workers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let began = Instant::now();
                match login(&b).await {
                    Ok(user) => seen.push((began, user)),
                    Err(e) => {
                        eprintln!("login failed: {e}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            let swap = swapped_at.lock().unwrap().expect("swapped");
            seen.into_iter().map(|(began, user)| (began > swap, user)).collect::<Vec<_>>()
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    std::fs::write(&file, config(&broker.issuer, &plugin, "v2", "")).unwrap();
    let generation = broker.broker.generations.reload().await.expect("v2 reloads").generation;
    *swapped_at.lock().unwrap() = Some(Instant::now());
    assert_eq!(generation, 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, Ordering::Relaxed);
    let mut after = 0;
    let mut total = 0;
    for w in workers {
        for (after_swap, user) in w.await.unwrap() {
            total += 1;
            if after_swap {
                after += 1;
                assert_eq!(user, "v2", "a login begun after the swap sees v2");
            } else {
                assert!(user == "v1" || user == "v2");
            }
        }
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0, "no failed request during the swap");
    assert!(total > 8 && after > 0, "the load ran on both sides of the swap: {total} logins, {after} after");
}

#[tokio::test]
async fn a_broken_change_never_replaces_the_working_setup() {
    let s = setup().await;
    assert_eq!(login(&s.broker).await.unwrap(), "v1");
    let not_wasm = repo_file("tests/fixtures/not-wasm.wasm");
    let cases: Vec<(&str, Change)> = vec![
        ("invalid YAML", Box::new(|s: &Setup| std::fs::write(&s.file, "issuer: [unclosed\n").unwrap())),
        ("unknown key", Box::new(|s: &Setup| s.write("v2", "\n  colour: blue"))),
        (
            "pinned digest mismatch",
            Box::new(|s: &Setup| s.write("v2", &format!("\n  sha256: sha256:{}", "0".repeat(64)))),
        ),
        (
            "plugin that is not wasm",
            Box::new(move |s: &Setup| {
                let text = config(&s.broker.issuer, &not_wasm, "v2", "");
                std::fs::write(&s.file, text).unwrap()
            }),
        ),
        (
            "config the plugin refuses",
            Box::new(|s: &Setup| {
                let text =
                    config(&s.broker.issuer, &s.plugin, "v2", "").replace("identity: {", "identity: {shoeSize: 44, ");
                std::fs::write(&s.file, text).unwrap()
            }),
        ),
    ];
    for (name, break_it) in cases {
        break_it(&s);
        let err = s.broker.broker.generations.reload().await.expect_err(name);
        assert!(err.contains("config.yaml") || err.contains("not-wasm"), "{name}: the error names the file: {err}");
        let status = s.broker.broker.generations.status();
        assert!(!status.ok && status.error.as_deref() == Some(err.as_str()), "{name}: status reports it");
        assert_eq!(status.generation, 1, "{name}");
        assert_eq!(login(&s.broker).await.unwrap(), "v1", "{name}: the old setup keeps serving");
    }
    s.write("v2", "");
    assert_eq!(s.broker.broker.generations.reload().await.unwrap().generation, 2);
    assert!(s.broker.broker.generations.status().ok);
    assert_eq!(login(&s.broker).await.unwrap(), "v2");
}

#[tokio::test]
async fn an_edit_to_the_file_is_picked_up_by_the_watcher() {
    let s = watched_setup().await;
    s.write("v2", "");
    wait_for_generation(&s.broker.broker, 2, "an edit").await;
    assert_eq!(login(&s.broker).await.unwrap(), "v2");
}

#[tokio::test]
async fn removing_a_connector_mid_login_gives_a_clear_page() {
    let s = setup().await;
    let web = browser();
    let begun = begin(&s.broker, &web).await.unwrap();
    // The operator removes the connector while the user is at the upstream.
    std::fs::write(&s.file, config(&s.broker.issuer, &s.plugin, "v1", "").split("connectors:").next().unwrap())
        .unwrap();
    s.broker.broker.generations.reload().await.expect("removal reloads");
    let r = web.get(&begun.callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let page = r.text().await.unwrap();
    assert!(page.contains("was removed while you were logging in"), "{page}");
}

#[tokio::test]
async fn a_refresh_token_from_a_removed_connector_is_invalid_grant() {
    let s = setup().await;
    // A login with offline_access.
    let web = browser();
    let (verifier, challenge) = portcullis_tests::pkce();
    let mut url = format!(
        "{}/auth?client_id=example-app&redirect_uri={CALLBACK}&response_type=code&scope=openid%20offline_access&connector_id=mock&code_challenge={challenge}&code_challenge_method=S256",
        s.broker.issuer
    );
    while !url.starts_with(CALLBACK) {
        let r = web.get(&url).send().await.unwrap();
        url = location(&r, &s.broker.base).unwrap();
    }
    let code = query_param(&url, "code").unwrap();
    let http = reqwest::Client::new();
    let tokens: serde_json::Value = http
        .post(format!("{}/token", s.broker.issuer))
        .basic_auth("example-app", Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    std::fs::write(&s.file, config(&s.broker.issuer, &s.plugin, "v1", "").split("connectors:").next().unwrap())
        .unwrap();
    s.broker.broker.generations.reload().await.unwrap();
    let r = http
        .post(format!("{}/token", s.broker.issuer))
        .basic_auth("example-app", Some(SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(body["error_description"].as_str().unwrap().contains("no longer exists"), "{body}");
}

/// Waits until `broker` serves `generation`, or panics after 10 s.
async fn wait_for_generation(broker: &portcullis::broker::Broker, generation: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker.generations.current().generation < generation {
        assert!(Instant::now() < deadline, "{what}: the change was not picked up");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The mock component with a custom section appended: other bytes, the same behaviour.
fn mock_variant(n: u8) -> Vec<u8> {
    let mut bytes = std::fs::read(plugin("mock")).unwrap();
    // Section id 0 (custom), size 6: name length 4, "test", one payload byte.
    bytes.extend_from_slice(&[0x00, 0x06, 0x04, b't', b'e', b's', b't', n]);
    bytes
}

fn run(cmd: &str, args: &[&Path]) {
    let status = std::process::Command::new(cmd).args(args).status().unwrap();
    assert!(status.success(), "{cmd} failed");
}

#[tokio::test]
async fn reads_touches_and_identical_copies_reload_nothing() {
    let s = setup().await;
    s.broker.broker.generations.spawn_reloaders();
    // A second broker on the same files, watching them too (it reads them when it starts).
    let second = {
        let mut config = portcullis::config::Config::load(&s.file).unwrap();
        config.cache_dir = Some(portcullis_tests::test_cache_dir());
        let backend = Arc::new(portcullis::storage::MemoryBackend::new());
        portcullis::broker::Broker::with_backend(config, backend).await.unwrap()
    };
    second.generations.spawn_reloaders();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let config_bytes = std::fs::read(&s.file).unwrap();
    let plugin_bytes = std::fs::read(&s.plugin).unwrap();
    // Reads: cat, sha256sum, and what `portcullis check-config` does with the same files.
    run("cat", &[&s.file]);
    run("sha256sum", &[&s.plugin, &s.file]);
    let checked = portcullis::config::Config::load(&s.file).unwrap();
    portcullis::generation::load_registry(&portcullis_tests::engine(), &checked, None).await.unwrap();
    // Touches: the time changes, the bytes do not.
    run("touch", &[&s.file, &s.plugin]);
    // Copies of identical bytes: written in place, and written to a temporary file then renamed.
    std::fs::write(&s.file, &config_bytes).unwrap();
    std::fs::write(&s.plugin, &plugin_bytes).unwrap();
    let tmp = s.plugin.with_extension("wasm.new");
    std::fs::write(&tmp, &plugin_bytes).unwrap();
    std::fs::rename(&tmp, &s.plugin).unwrap();
    run("cp", &[&s.file, &s.file.with_extension("bak")]);
    run("cp", &[&s.file.with_extension("bak"), &s.file]);

    // Several seconds for a loop to show itself: each reload would read the files again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (name, b) in [("first", &*s.broker.broker), ("second", &*second)] {
        assert_eq!(b.generations.current().generation, 1, "{name} broker: no byte changed, so no reload");
        let status = b.generations.status();
        assert!(status.ok, "{name}: {:?}", status.error);
    }
    // An explicit reload of the same bytes says so and keeps the generation.
    let again = s.broker.broker.generations.reload().await.unwrap();
    assert_eq!((again.generation, again.changed), (1, false));
    assert_eq!(again.to_string(), "unchanged, generation 1");
    assert_eq!(s.broker.broker.generations.status().outcome, portcullis::reload::Outcome::Unchanged);
    assert_eq!(login(&s.broker).await.unwrap(), "v1");
}

#[tokio::test]
async fn each_editor_save_pattern_reloads_exactly_once() {
    let s = watched_setup().await;
    let text = |user: &str| config(&s.broker.issuer, &s.plugin, user, "");
    let patterns: Vec<(&str, Change)> = vec![
        (
            "write in place",
            Box::new(|s: &Setup| {
                use std::io::Write;
                let new = text("in-place");
                let mut f = std::fs::OpenOptions::new().write(true).open(&s.file).unwrap();
                f.write_all(new.as_bytes()).unwrap();
                f.set_len(new.len() as u64).unwrap();
            }),
        ),
        (
            "truncate, then write",
            Box::new(|s: &Setup| {
                use std::io::Write;
                let mut f = std::fs::File::create(&s.file).unwrap();
                f.flush().unwrap();
                std::thread::sleep(Duration::from_millis(20));
                f.write_all(text("truncated").as_bytes()).unwrap();
            }),
        ),
        (
            "write a temporary file, rename it over",
            Box::new(|s: &Setup| {
                let tmp = s.file.with_extension("yaml.swp");
                std::fs::write(&tmp, text("renamed")).unwrap();
                std::fs::rename(&tmp, &s.file).unwrap();
            }),
        ),
        (
            "move to a backup, write anew, delete the backup (vim's backupcopy=no)",
            Box::new(|s: &Setup| {
                let backup = s.file.with_extension("yaml~");
                std::fs::rename(&s.file, &backup).unwrap();
                std::fs::write(&s.file, text("backup")).unwrap();
                std::fs::remove_file(&backup).unwrap();
            }),
        ),
        ("a new plugin copied over the old", Box::new(|s: &Setup| std::fs::write(&s.plugin, mock_variant(1)).unwrap())),
        (
            "a new plugin renamed over the old",
            Box::new(|s: &Setup| {
                let tmp = s.plugin.with_extension("wasm.tmp");
                std::fs::write(&tmp, mock_variant(2)).unwrap();
                std::fs::rename(&tmp, &s.plugin).unwrap();
            }),
        ),
    ];
    let mut generation = 1;
    for (name, save) in patterns {
        save(&s);
        generation += 1;
        wait_for_generation(&s.broker.broker, generation, name).await;
        // Long enough for a second reload of the same change, or a loop, to happen.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(s.broker.broker.generations.current().generation, generation, "{name}: exactly one reload");
        let status = s.broker.broker.generations.status();
        assert!(status.ok, "{name}: {:?}", status.error);
    }
    assert_eq!(login(&s.broker).await.unwrap(), "backup");
}

#[tokio::test]
async fn a_login_begun_before_twenty_reloads_finishes_on_its_version() {
    let s = setup().await;
    let web = browser();
    let begun = begin(&s.broker, &web).await.unwrap();
    for i in 2..=21 {
        s.write(&format!("v{i}"), "");
        assert_eq!(s.broker.broker.generations.reload().await.unwrap().generation, i);
    }
    // Only the generation a login is pinned to is kept; the others were dropped at once.
    assert_eq!(s.broker.broker.generations.retired_generations(), vec![1]);
    assert_eq!(finish(&s.broker, &web, begun).await.unwrap(), "v1", "the login finishes on the version it began on");
    assert_eq!(login(&s.broker).await.unwrap(), "v21", "a new login gets the newest");
}

#[tokio::test]
async fn a_kept_generation_is_dropped_when_its_logins_expire() {
    let dir = tempfile::tempdir().unwrap();
    let plugin_copy = dir.path().join("mock.wasm");
    std::fs::copy(plugin("mock"), &plugin_copy).unwrap();
    let file = dir.path().join("config.yaml");
    let with_expiry = |user: &str, issuer: &str| {
        config(issuer, &plugin_copy, user, "").replace("oauth2:", "expiry: {authRequests: 2s}\noauth2:")
    };
    std::fs::write(&file, with_expiry("v1", "{issuer}")).unwrap();
    let b = TestBroker::builder().file(&file).start().await;
    let web = browser();
    let _begun = begin(&b, &web).await.unwrap();
    std::fs::write(&file, with_expiry("v2", &b.issuer)).unwrap();
    b.broker.generations.reload().await.unwrap();
    assert_eq!(b.broker.generations.retired_generations(), vec![1], "kept while the login can come back");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    b.broker.generations.drop_unreachable();
    assert!(
        b.broker.generations.retired_generations().is_empty(),
        "no auth request can refer to generation 1 any more"
    );
}

/// A config with the good mock connector and `broken` connector entries after it.
fn config_with(issuer: &str, plugin: &Path, broken: &str) -> String {
    format!("{}{broken}", config(issuer, plugin, "v1", ""))
}

#[tokio::test]
async fn a_start_with_broken_connectors_serves_the_good_one_and_reports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("mock.wasm");
    std::fs::copy(plugin("mock"), &good).unwrap();
    let missing = dir.path().join("later.wasm");
    let broken = format!(
        r#"- plugin: "{}"
  id: absent
  name: Absent
- plugin: "{}"
  id: old-contract
  name: Old
- plugin: "{}"
  id: refused
  name: Refused
  config: {{shoeSize: 44}}
"#,
        missing.display(),
        fixture("hostile-version").display(),
        good.display()
    );
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, config_with("{issuer}", &good, &broken)).unwrap();
    let b = TestBroker::builder().file(&file).start().await;
    let admin = b.serve_telemetry().await;
    let http = reqwest::Client::new();

    // Reported: /status and /readyz name each connector left out and why.
    let status: serde_json::Value = http.get(format!("{admin}/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["degraded"], true, "{status}");
    let failed: Vec<(String, String)> = status["failed_connectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["connector"].as_str().unwrap().into(), f["error"].as_str().unwrap().into()))
        .collect();
    let ids: Vec<&str> = failed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["absent", "old-contract", "refused"]);
    assert!(failed[0].1.contains("later.wasm does not exist; build or copy the plugin there"), "{}", failed[0].1);
    assert!(failed[1].1.contains("rebuild the plugin against wit/"), "{}", failed[1].1);
    assert!(failed[2].1.contains("shoeSize"), "{}", failed[2].1);
    let ready = http.get(format!("{admin}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "a degraded broker still serves");
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "degraded");
    assert_eq!(ready["failedConnectors"].as_array().unwrap().len(), 3);

    // Served: the good connector logs in; a left-out one says it is unavailable.
    assert_eq!(login(&b).await.unwrap(), "v1");
    let web = browser();
    let r = web
        .get(format!(
            "{}/auth?client_id=example-app&redirect_uri={CALLBACK}&response_type=code&scope=openid&connector_id=absent&code_challenge={}&code_challenge_method=S256",
            b.issuer,
            "c".repeat(43)
        ))
        .send()
        .await
        .unwrap();
    // The hint names a method that is not offered, so the only one is chosen; ask for the
    // left-out one directly, as an old bookmark or a stale chooser page would.
    let request = query_param(&location(&r, &b.base).unwrap(), "req").unwrap();
    let r = web.get(format!("{}/auth/absent?req={request}", b.issuer)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().await.unwrap().contains("Login method unavailable"));

    // A reload stays all or nothing: fixing one of three is refused, naming the others.
    std::fs::copy(plugin("mock"), &missing).unwrap();
    let err = b.broker.generations.reload().await.unwrap_err();
    assert!(err.contains("old-contract") && err.contains("refused") && !err.contains("\"absent\""), "{err}");
    assert_eq!(b.broker.generations.current().generation, 1);
    assert_eq!(login(&b).await.unwrap(), "v1", "the degraded generation keeps serving");

    // Fixing the rest brings every connector in.
    let fixed = broken
        .replace(&fixture("hostile-version").display().to_string(), &good.display().to_string())
        .replace("shoeSize: 44", "");
    std::fs::write(&file, config_with(&b.issuer, &good, &fixed)).unwrap();
    assert_eq!(b.broker.generations.reload().await.unwrap().generation, 2);
    let status: serde_json::Value = http.get(format!("{admin}/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["degraded"], false, "{status}");
    assert_eq!(status["plugins"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn a_missing_plugin_that_appears_is_picked_up_and_its_refresh_tokens_survive_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("mock.wasm");
    std::fs::copy(plugin("mock"), &good).unwrap();
    let second = dir.path().join("second.wasm");
    std::fs::copy(plugin("mock"), &second).unwrap();
    let entry = format!(
        "- plugin: \"{}\"\n  id: second\n  name: Second\n  config:\n    identity: {{userID: s1, username: S}}\n",
        second.display()
    );
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, config_with("{issuer}", &good, &entry)).unwrap();
    let backend: Arc<dyn portcullis::storage::Backend> = Arc::new(portcullis::storage::MemoryBackend::new());
    // A healthy broker issues a refresh token through connector "second".
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = portcullis_tests::default_issuer(&listener);
    let text = std::fs::read_to_string(&file).unwrap().replace("{issuer}", &issuer);
    std::fs::write(&file, &text).unwrap();
    let mut config = portcullis::config::Config::load(&file).unwrap();
    config.cache_dir = Some(portcullis_tests::test_cache_dir());
    let first =
        TestBroker::builder().listener(listener).issuer(&issuer).config(config).backend(backend.clone()).start().await;
    let refresh = {
        let web = browser();
        let (verifier, challenge) = portcullis_tests::pkce();
        let mut url = format!(
            "{}/auth?client_id=example-app&redirect_uri={CALLBACK}&response_type=code&scope=openid%20offline_access&connector_id=second&code_challenge={challenge}&code_challenge_method=S256",
            first.issuer
        );
        while !url.starts_with(CALLBACK) {
            let r = web.get(&url).send().await.unwrap();
            url = location(&r, &first.base).unwrap();
        }
        let code = query_param(&url, "code").unwrap();
        let tokens = portcullis_tests::flow::token(
            &first,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CALLBACK),
                ("code_verifier", &verifier),
            ],
        )
        .await;
        let tokens: serde_json::Value = tokens.json().await.unwrap();
        tokens["refresh_token"].as_str().unwrap().to_string()
    };
    drop(first);

    // Its plugin goes missing; a broker starting now (same storage) serves without it.
    std::fs::remove_file(&second).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = portcullis::config::Config::load(&file).unwrap();
    config.cache_dir = Some(portcullis_tests::test_cache_dir());
    let b = TestBroker::builder().listener(listener).issuer(&issuer).config(config).backend(backend).start().await;
    b.broker.generations.spawn_reloaders();
    assert!(b.broker.generations.status().degraded);
    let r = portcullis_tests::flow::refresh(&b, &refresh).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "the token is kept, not refused");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");

    // The plugin comes back: the watcher brings the connector in, and the same token works.
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::copy(plugin("mock"), &second).unwrap();
    wait_for_generation(&b.broker, 2, "the plugin file appearing").await;
    assert!(!b.broker.generations.status().degraded);
    let r = portcullis_tests::flow::refresh(&b, &refresh).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn connectors_that_fail_refuse_the_start_when_asked_or_when_none_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone.wasm");
    let file = dir.path().join("config.yaml");
    let text = config("http://127.0.0.1:1/dex", &missing, "v1", "");
    std::fs::write(&file, &text).unwrap();
    let env = |value: &'static str| {
        move |name: &str| (name == "DEX_CONTINUE_ON_CONNECTOR_FAILURE").then(|| value.to_string())
    };
    let start = |config| async move {
        let backend = Arc::new(portcullis::storage::MemoryBackend::new());
        portcullis::broker::Broker::with_backend(config, backend).await.map(|_| ()).map_err(|e| format!("{e:#}"))
    };
    // The only connector fails and there is no password database: nobody could log in.
    let err = start(portcullis::config::Config::from_yaml(&file, &text, &env("")).unwrap()).await.unwrap_err();
    assert!(err.contains("every connector failed to load (1/1)") && err.contains("gone.wasm does not exist"), "{err}");
    // DEX_CONTINUE_ON_CONNECTOR_FAILURE=false: any failure refuses the start, naming it.
    let with_db = |t: &str| format!("{t}enablePasswordDB: true\n");
    std::fs::write(&file, with_db(&text)).unwrap();
    let strict = portcullis::config::Config::from_yaml(&file, &with_db(&text), &env("false")).unwrap();
    let err = start(strict).await.unwrap_err();
    assert!(err.contains("DEX_CONTINUE_ON_CONNECTOR_FAILURE=false") && err.contains("\"mock\""), "{err}");
    let lenient = portcullis::config::Config::from_yaml(&file, &with_db(&text), &env("true")).unwrap();
    start(lenient).await.expect("starts without the connector");
    // A value that is neither true nor false is refused rather than guessed.
    let err = portcullis::config::Config::from_yaml(&file, &with_db(&text), &env("maybe")).unwrap_err().to_string();
    assert!(err.contains("DEX_CONTINUE_ON_CONNECTOR_FAILURE=\"maybe\": write true"), "{err}");
    // check-config (every connector must load) names the missing file and the fix.
    let checked = portcullis::config::Config::from_yaml(&file, &with_db(&text), &env("")).unwrap();
    let err = portcullis::generation::load_registry(&portcullis_tests::engine(), &checked, None).await.unwrap_err();
    assert!(format!("{err:#}").contains("connectors[0].plugin:"), "{err:#}");
}

#[tokio::test]
async fn a_kubernetes_configmap_update_reloads_once() {
    // A mounted ConfigMap: config.yaml -> ..data/config.yaml, ..data -> ..v1; an update writes
    // ..v2 and renames a new ..data symlink over the old one, so config.yaml sees no event.
    let dir = tempfile::tempdir().unwrap();
    let plugin_copy = dir.path().join("mock.wasm");
    std::fs::copy(plugin("mock"), &plugin_copy).unwrap();
    let version = |name: &str, text: &str| {
        std::fs::create_dir(dir.path().join(name)).unwrap();
        std::fs::write(dir.path().join(name).join("config.yaml"), text).unwrap();
    };
    version("..v1", &config("{issuer}", &plugin_copy, "v1", ""));
    std::os::unix::fs::symlink("..v1", dir.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/config.yaml", dir.path().join("config.yaml")).unwrap();
    let b = TestBroker::builder().file(&dir.path().join("config.yaml")).start().await;
    b.broker.generations.spawn_reloaders();
    tokio::time::sleep(Duration::from_millis(200)).await;

    version("..v2", &config(&b.issuer, &plugin_copy, "v2", ""));
    std::os::unix::fs::symlink("..v2", dir.path().join("..data_tmp")).unwrap();
    std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    std::fs::remove_dir_all(dir.path().join("..v1")).unwrap();
    wait_for_generation(&b.broker, 2, "the ConfigMap update").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(b.broker.generations.current().generation, 2, "exactly one reload");
    assert_eq!(login(&b).await.unwrap(), "v2");
}

/// Settings set up at start cannot change in place: a reload changing `plugins.pool` (the
/// pooling allocator's caps) or the signing algorithm is refused naming the key, and the old
/// config keeps serving; the same file without the change reloads.
#[tokio::test]
async fn a_change_that_needs_a_restart_is_refused_naming_the_key() {
    let s = setup().await;
    let with = |extra: &str| format!("{}{extra}", config(&s.broker.issuer, &s.plugin, "v2", ""));
    for (extra, key) in [
        ("plugins:\n  pool: {maxCoreInstancesPerComponent: 40}\n", "plugins.pool"),
        ("signer: {type: local, config: {algorithm: ES256}}\n", "signing.algorithm"),
    ] {
        std::fs::write(&s.file, with(extra)).unwrap();
        let err = s.broker.broker.generations.reload().await.expect_err(key);
        assert!(err.contains(&format!("{key} changed; that needs a restart")), "{err}");
        assert_eq!(login(&s.broker).await.unwrap(), "v1", "{key}: the old config keeps serving");
    }
    std::fs::write(&s.file, with("")).unwrap();
    assert_eq!(s.broker.broker.generations.reload().await.unwrap().generation, 2);
    assert_eq!(login(&s.broker).await.unwrap(), "v2");
}
