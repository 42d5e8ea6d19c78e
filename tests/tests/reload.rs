//! Hot reload: a new config or plugin goes live without a restart, under load and without a
//! failed request; a broken one never replaces the working one; logins in flight finish on the
//! version they began with; a removed connector fails its in-flight logins cleanly.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use portcullis_tests::{TestBroker, browser, location, plugin, query_param, repo_file};
use reqwest::StatusCode;

const SECRET: &str = "ZXhhbXBsZS1hcHAtc2VjcmV0";
const CALLBACK: &str = "http://127.0.0.1:5555/callback";

/// The config file, with the mock connector returning user `user_id`.
fn config(issuer: &str, plugin: &Path, user_id: &str, extra_connector_keys: &str) -> String {
    format!(
        r#"issuer: "{issuer}"
storage: {{type: memory}}
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
    let broker = TestBroker::from_file(&file).await;
    Setup { _dir: dir, file, plugin: plugin_copy, broker }
}

impl Setup {
    fn write(&self, user_id: &str, extra: &str) {
        std::fs::write(&self.file, config(&self.broker.issuer, &self.plugin, user_id, extra)).unwrap();
    }
}

/// One whole login through the mock connector in a fresh browser; returns the user id the ID
/// token names.
async fn login(b: &TestBroker) -> Result<String, String> {
    let web = browser();
    let (verifier, challenge) = portcullis_tests::pkce();
    let mut url = format!(
        "{}/auth?client_id=example-app&redirect_uri={CALLBACK}&response_type=code&scope=openid&connector_id=mock&code_challenge={challenge}&code_challenge_method=S256",
        b.issuer
    );
    // auth -> connector -> upstream callback -> client: follow by hand, at most a few hops.
    for _ in 0..4 {
        let r = web.get(&url).send().await.map_err(|e| e.to_string())?;
        if r.status() != StatusCode::SEE_OTHER {
            return Err(format!("{url}: {} {}", r.status(), r.text().await.unwrap_or_default()));
        }
        url = location(&r, &b.base).ok_or("no location")?;
        if url.starts_with(CALLBACK) {
            break;
        }
    }
    let code = query_param(&url, "code").ok_or_else(|| format!("no code in {url}"))?;
    let tokens: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/token", b.issuer))
        .basic_auth("example-app", Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let id_token = tokens["id_token"].as_str().ok_or_else(|| format!("no id_token: {tokens}"))?;
    let payload = id_token.split('.').nth(1).ok_or("malformed")?;
    let claims: serde_json::Value = {
        use base64::Engine as _;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?
    };
    let sub = claims["sub"].as_str().ok_or("no sub")?;
    portcullis::oidc::sub::decode(sub).map(|(user, _)| user).ok_or_else(|| "bad sub".into())
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
    let generation = broker.broker.reload().await.expect("v2 reloads");
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
    let cases: Vec<(&str, Box<dyn Fn(&Setup)>)> = vec![
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
        let err = s.broker.broker.reload().await.expect_err(name);
        assert!(err.contains("config.yaml") || err.contains("not-wasm"), "{name}: the error names the file: {err}");
        let status = s.broker.broker.status.load_full();
        assert!(!status.ok && status.error.as_deref() == Some(err.as_str()), "{name}: status reports it");
        assert_eq!(status.generation, 1, "{name}");
        assert_eq!(login(&s.broker).await.unwrap(), "v1", "{name}: the old setup keeps serving");
    }
    s.write("v2", "");
    assert_eq!(s.broker.broker.reload().await.unwrap(), 2);
    assert!(s.broker.broker.status.load_full().ok);
    assert_eq!(login(&s.broker).await.unwrap(), "v2");
}

#[tokio::test]
async fn an_edit_to_the_file_is_picked_up_by_the_watcher() {
    let s = setup().await;
    s.broker.broker.spawn_reloaders();
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.write("v2", "");
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.broker.broker.live.load().generation < 2 {
        assert!(Instant::now() < deadline, "the file change was not picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(login(&s.broker).await.unwrap(), "v2");
}

#[tokio::test]
async fn removing_a_connector_mid_login_gives_a_clear_page() {
    let s = setup().await;
    let web = browser();
    let start = format!(
        "{}/auth?client_id=example-app&redirect_uri={CALLBACK}&response_type=code&scope=openid&connector_id=mock&code_challenge={}&code_challenge_method=S256",
        s.broker.issuer,
        "c".repeat(43)
    );
    let r = web.get(&start).send().await.unwrap();
    let r = web.get(location(&r, &s.broker.base).unwrap()).send().await.unwrap();
    let upstream_callback = location(&r, &s.broker.base).unwrap();
    // The operator removes the connector while the user is at the upstream.
    std::fs::write(&s.file, config(&s.broker.issuer, &s.plugin, "v1", "").split("connectors:").next().unwrap())
        .unwrap();
    s.broker.broker.reload().await.expect("removal reloads");
    let r = web.get(&upstream_callback).send().await.unwrap();
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
    s.broker.broker.reload().await.unwrap();
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
