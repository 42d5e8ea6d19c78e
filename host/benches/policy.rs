//! Policy plugin costs (issue 17): one `check-login` of the shipped `group-gate` in a fresh
//! instance, beside a connector call in a fresh instance (the mock's `login-url`) in the same run; and a whole login (authorize → mock
//! connector → code → token, over loopback HTTP to an in-process broker on memory storage) with
//! `group-gate` configured, against the same login without it, in one run.
//!
//! Needs `target/plugins/{mock,group-gate}.wasm` (`cargo xtask plugins`); `cargo xtask bench`
//! builds them and runs this.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a benchmark stops at its first failure")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::connectors::policy::{LoginContext, OnError, PolicySet, PolicySpec};
use portcullis::connectors::{CompileCache, ConnectorSpec, Identity, LimitsConfig, PluginEngine, Registry, Scopes};

const VERIFIER: &str = "bench-verifier-0123456789-0123456789-0123456789-abcdef";
const SECRET: &str = "ZXhhbXBsZS1hcHAtc2VjcmV0";
const CALLBACK: &str = "http://127.0.0.1:5555/callback";

/// What the policy does in both benches: a required group, a per-client prefix filter, a
/// static and a templated claim, and claims for a group.
fn gate_config() -> serde_json::Value {
    serde_json::json!({
        "requireGroups": ["authors", "admins"],
        "groupsFilter": [{"clients": ["example-app"], "prefix": "auth"}],
        "addClaims": {"department": "ops", "contact": "{{ email }}"},
        "claimsByGroup": {"authors": {"role": "writer"}}
    })
}

fn plugin(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../target/plugins/{name}.wasm"));
    if !path.is_file() {
        eprintln!("error: {} is missing: run `cargo xtask plugins` first", path.display());
        std::process::exit(1);
    }
    path.canonicalize().unwrap_or(path)
}

fn connector_spec(plugin: PathBuf) -> ConnectorSpec {
    ConnectorSpec {
        id: "mock".into(),
        name: "Mock".into(),
        plugin,
        sha256: None,
        kind: None,
        allowed_hosts: Some(Vec::new()),
        signing_keys: None,
        limits: LimitsConfig::default(),
        config: serde_json::json!({}),
        client_cert: None,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
}

fn check_login(c: &mut Criterion) {
    let rt = runtime();
    let cache = tempfile::tempdir().unwrap();
    let engine = PluginEngine::new(CompileCache::at(cache.path())).unwrap();
    let spec = PolicySpec {
        id: "gate".into(),
        plugin: plugin("group-gate"),
        sha256: None,
        allowed_hosts: Vec::new(),
        limits: LimitsConfig::default(),
        clients: None,
        connectors: None,
        on_error: OnError::Deny,
        config: gate_config(),
    };
    // The same component with an empty config: the fixed cost of a policy call (instance,
    // context and identity encoded, config parsed, an empty patch parsed back).
    let empty = PolicySpec { id: "empty".into(), config: serde_json::json!({}), ..spec.clone() };
    let set = rt.block_on(PolicySet::load(&engine, &[spec], None)).expect("group-gate loads");
    let empty = rt.block_on(PolicySet::load(&engine, &[empty], None)).expect("group-gate loads");
    let identity = Identity {
        user_id: "0-385-28089-0".into(),
        username: "Kilgore Trout".into(),
        preferred_username: Some("kilgore".into()),
        email: Some("kilgore@kilgore.trout".into()),
        email_verified: true,
        groups: vec!["authors".into(), "readers".into()],
        ..Default::default()
    };
    let scopes = vec!["openid".to_string(), "email".into(), "groups".into()];
    let ctx = LoginContext { client_id: "example-app", connector_id: "mock", scopes: &scopes };
    let outcome = rt.block_on(set.check_login(&ctx, &identity)).expect("allowed").expect("changes");
    assert_eq!(outcome.groups.as_deref(), Some(&["authors".to_string()][..]));
    assert_eq!(outcome.claims["role"], "writer");
    // The baseline in the same run: a connector call in a fresh instance (the mock's login-url,
    // config parsed by the guest), what docs/performance.md's row a. measures.
    let connectors = rt
        .block_on(Registry::load(&engine, &[connector_spec(plugin("mock"))], None))
        .expect("the mock connector loads");
    let mock = connectors.get("mock").expect("mock").clone();
    let mut group = c.benchmark_group("policy");
    group.bench_function("baseline_connector_login_url", |b| {
        b.to_async(&rt).iter(|| async {
            std::hint::black_box(
                mock.login_url(Scopes::default(), "https://broker.example.com/callback", "st4te")
                    .await
                    .expect("login-url"),
            )
        })
    });
    group.bench_function("check_login_group_gate", |b| {
        b.to_async(&rt)
            .iter(|| async { std::hint::black_box(set.check_login(&ctx, &identity).await.expect("allowed")) })
    });
    group.bench_function("check_login_group_gate_empty_config", |b| {
        b.to_async(&rt)
            .iter(|| async { std::hint::black_box(empty.check_login(&ctx, &identity).await.expect("allowed")) })
    });
    group.finish();
}

/// An in-process broker on loopback; `policies` is YAML appended to the config.
async fn broker(policies: &str) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let yaml = format!(
        r#"issuer: "{base}/dex"
storage: {{type: memory}}
web: {{throttle: {{authorizePerIP: 0, passwordPerIP: 0}}}}
oauth2: {{skipApprovalScreen: true}}
staticClients:
- id: example-app
  secret: {SECRET}
  redirectURIs: [{CALLBACK}]
connectors:
- plugin: "{}"
  id: mock
  name: Example
{policies}"#,
        plugin("mock").display()
    );
    let mut config = portcullis::config::Config::from_yaml(Path::new("bench.yaml"), &yaml, &|_| None).unwrap();
    let cache = std::env::temp_dir().join("portcullis-policy-bench-cache");
    config.cache_dir = Some(cache);
    let backend = Arc::new(portcullis::storage::MemoryBackend::new());
    let broker = portcullis::broker::Broker::with_backend(config, backend).await.unwrap();
    let router = portcullis::web::router(broker);
    let server = tokio::spawn(async move {
        let _ = portcullis::web::serve(listener, router, std::future::pending()).await;
    });
    (format!("{base}/dex"), server)
}

fn location(r: &reqwest::Response, origin: &str) -> String {
    let loc = r.headers().get(reqwest::header::LOCATION).expect("a redirect").to_str().unwrap();
    if loc.starts_with('/') { format!("{origin}{loc}") } else { loc.to_string() }
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

/// One whole login through the mock connector; returns the ID token's claims.
async fn login(http: &reqwest::Client, base: &str) -> serde_json::Value {
    let origin = base.trim_end_matches("/dex");
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(portcullis::oidc::pkce::sha256(VERIFIER.as_bytes()));
    let auth = url::Url::parse_with_params(
        &format!("{base}/auth"),
        &[
            ("client_id", "example-app"),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
            ("scope", "openid email groups"),
            ("state", "bench-state"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("connector_id", "mock"),
        ],
    )
    .unwrap();
    let mut jar = Vec::new();
    let mut next = auth.to_string();
    while !next.starts_with(CALLBACK) {
        let r = http.get(&next).header("cookie", jar.join("; ")).send().await.unwrap();
        assert!(r.status().is_redirection(), "{next}: {}", r.status());
        cookies(&r, &mut jar);
        next = location(&r, origin);
    }
    let code = url::Url::parse(&next).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let r = http
        .post(format!("{base}/token"))
        .basic_auth("example-app", Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "token: {}", r.status());
    let json: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    let payload = json["id_token"].as_str().unwrap().split('.').nth(1).unwrap().to_string();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn whole_login(c: &mut Criterion) {
    let rt = runtime();
    let gate = format!(
        "policies:\n- plugin: \"{}\"\n  id: gate\n  config: {}\n",
        plugin("group-gate").display(),
        gate_config()
    );
    let (plain, _plain_server) = rt.block_on(broker(""));
    let (gated, _gated_server) = rt.block_on(broker(&gate));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    // Both sides do a whole login; only one of them asks the policy.
    assert!(rt.block_on(login(&http, &plain)).get("role").is_none());
    assert_eq!(rt.block_on(login(&http, &gated))["role"], "writer");
    let mut group = c.benchmark_group("login");
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("mock", |b| b.to_async(&rt).iter(|| login(&http, &plain)));
    group.bench_function("mock_group_gate", |b| b.to_async(&rt).iter(|| login(&http, &gated)));
    group.finish();
}

criterion_group!(benches, check_login, whole_login);
criterion_main!(benches);
