//! Connectors in other languages through the same WIT contract: the Python kit
//! (componentize-py), the JavaScript kit (QuickJS's sync runtime; the hostile QuickJS fixture
//! keeps the default async ABI, so both are run) and the same JavaScript on StarlingMonkey
//! (wasi:http). Each gets the Rust mock's tests: a callback and a password login
//! through the broker with `openidconnect` verifying the ID token, refusals as refusals, a trap
//! contained, a denied host — and a fresh instance per call, proven by a counter that never
//! passes 1. Load refusals name the real reason: a pool cap (and its key), a missing import.

use std::path::PathBuf;

use portcullis::connectors::limits::PoolLimits;
use portcullis::connectors::{
    CallbackRequest, ConnectorKind, LimitsConfig, PluginEngine, PluginError, Refusal, Registry, Scopes, SpecError,
};
use portcullis_tests::{TestBroker, browser, engine, fixture, flow, location, plugin, spec, test_cache};
use reqwest::StatusCode;
use serde_json::json;

const ALL: Scopes = Scopes { offline_access: true, groups: true };
const SCOPES: &str = "openid profile email groups offline_access";

/// The mock of each language, and the hostile fixture built with the same tool.
fn mock(lang: &str) -> PathBuf {
    match lang {
        "python" => plugin("mock-python"),
        "js" => plugin("mock-js"),
        _ => fixture("mock-js-starlingmonkey"),
    }
}

fn hostile(lang: &str) -> PathBuf {
    match lang {
        "python" => fixture("hostile-python"),
        "js" => fixture("hostile-js"),
        _ => fixture("hostile-js-starlingmonkey"),
    }
}

/// A broker with the language's mock as `cb` (callback mode) and `pw` (password mode).
async fn broker(lang: &str) -> TestBroker {
    let connectors = format!(
        r#"- plugin: "{path}"
  id: cb
  name: Callback ({lang})
- plugin: "{path}"
  id: pw
  name: Password ({lang})
  config:
    mode: password
    username: jane
    password: correct horse
    prompt: Jane's name
    identity:
      userID: "42"
      username: Jane Doe
      email: jane@example.com
      groups: [staff]
"#,
        path = mock(lang).display()
    );
    TestBroker::builder().connectors(&connectors).start().await
}

async fn callback_login(lang: &str) {
    let b = broker(lang).await;
    let web = browser();
    let (to_upstream, pending) = flow::authorize(&b, &web, "cb", SCOPES).await;
    assert_eq!(to_upstream.status(), StatusCode::SEE_OTHER, "{lang}");
    // The mock's upstream is the broker's own callback, carrying the state.
    let upstream = location(&to_upstream, &b.base).unwrap();
    assert!(upstream.contains("/callback/cb?state="), "{lang}: {upstream}");
    let back = web.get(&upstream).send().await.unwrap();
    let code = flow::finish(&b, &web, back, &pending).await;
    let tokens = flow::exchange(&b, &code, &pending).await;
    let (sub, email, preferred) = flow::verify_id_token(&b, &tokens, &pending).await;
    assert_eq!(sub, portcullis::oidc::sub::encode("0-385-28089-0", "cb"), "{lang}");
    assert_eq!(email.as_deref(), Some("kilgore@kilgore.trout"), "{lang}");
    assert_eq!(preferred.as_deref(), Some("kilgore"), "{lang}");
    assert_eq!(tokens.claims["name"], "Kilgore Trout", "{lang}");
    assert_eq!(tokens.claims["groups"], json!(["authors"]), "{lang}");
    // The connector said it supports refresh, and offline_access was asked for.
    let refreshed = flow::refresh(&b, tokens.refresh_token().expect("a refresh token")).await;
    assert_eq!(refreshed.status(), StatusCode::OK, "{lang}");
}

async fn password_login(lang: &str) {
    let b = broker(lang).await;
    let web = browser();
    let (form, pending) = flow::authorize(&b, &web, "pw", SCOPES).await;
    assert_eq!(form.status(), StatusCode::OK, "{lang}");
    let form = form.text().await.unwrap();
    assert!(form.contains("Jane&#x27;s name") || form.contains("Jane's name"), "{lang}: the prompt labels the field");
    let wrong = flow::submit_password(&b, &web, "pw", &form, "jane", "wrong").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{lang}");
    let again = wrong.text().await.unwrap();
    let right = flow::submit_password(&b, &web, "pw", &again, "jane", "correct horse").await;
    let code = flow::finish(&b, &web, right, &pending).await;
    let tokens = flow::exchange(&b, &code, &pending).await;
    let (sub, email, _) = flow::verify_id_token(&b, &tokens, &pending).await;
    assert_eq!(sub, portcullis::oidc::sub::encode("42", "pw"), "{lang}");
    assert_eq!(email.as_deref(), Some("jane@example.com"), "{lang}");
    assert_eq!(tokens.claims["groups"], json!(["staff"]), "{lang}");
}

/// The mock's refusals come back as refusals (never traps), each of the right kind; a bad
/// config is refused at load naming the key.
async fn refusals_are_refusals(lang: &str) {
    let registry = Registry::load(&engine(), &[spec("m", mock(lang), json!({}))], None).await.unwrap();
    let m = registry.get("m").unwrap();
    assert_eq!(m.metadata().kind, ConnectorKind::Callback, "{lang}");
    let denied = CallbackRequest {
        method: "GET".into(),
        query: vec![("error".into(), "access_denied".into()), ("state".into(), "s".into())],
        ..Default::default()
    };
    let err = m.handle_callback(ALL, denied).await.unwrap_err();
    assert!(matches!(err.refusal(), Some(Refusal::Denied(d)) if d == "access_denied"), "{lang}: {err:?}");
    let no_state = CallbackRequest { method: "GET".into(), ..Default::default() };
    let err = m.handle_callback(ALL, no_state).await.unwrap_err();
    assert!(matches!(err.refusal(), Some(Refusal::BadRequest(_))), "{lang}: {err:?}");
    let err = m.login(ALL, "u", "p").await.unwrap_err();
    assert!(
        matches!(err.refusal(), Some(Refusal::Unsupported(u)) if u.contains("mode \"callback\"")),
        "{lang}: {err:?}"
    );
    // What the host stored for the connector comes back to it unchanged.
    let redirect = m.login_url(ALL, "http://127.0.0.1:5556/callback/m?x=1", "a b&c").await.unwrap();
    assert_eq!(redirect.url, "http://127.0.0.1:5556/callback/m?x=1&state=a%20b%26c", "{lang}");
    assert_eq!(redirect.state_data.as_deref(), Some(b"mock-login".as_slice()), "{lang}");

    let cases = [
        (json!({"mode": "password"}), "username"),
        (json!({"colour": "blue"}), "colour"),
        (json!({"mode": "sideways"}), "sideways"),
        (json!({"identity": {"userID": "1", "username": "a", "x": 1}}), "identity.x"),
    ];
    for (config, key) in cases {
        let errors = Registry::load(&engine(), &[spec("m", mock(lang), config.clone())], None).await.unwrap_err();
        let [SpecError::Plugin(PluginError::Refused { refusal: Refusal::Config(message), .. })] = errors.as_slice()
        else {
            panic!("{lang}: {config}: {errors:?}")
        };
        assert!(message.contains(key), "{lang}: {config}: {message}");
    }
}

/// Loads the language's hostile fixture as `hostile` (config `{"do": action}`) beside the
/// Rust mock.
async fn with_hostile(lang: &str, action: &str) -> (Registry, PluginError) {
    let bad = spec("hostile", hostile(lang), json!({ "do": action }));
    let good = spec("mock", plugin("mock"), json!({}));
    let registry = Registry::load(&engine(), &[bad, good], None).await.expect("both load");
    let err = registry
        .get("hostile")
        .unwrap()
        .login_url(Scopes::default(), "http://127.0.0.1/cb", "s")
        .await
        .expect_err("the hostile call fails");
    let mock = registry.get("mock").unwrap();
    let redirect = mock.login_url(Scopes::default(), "http://127.0.0.1/callback/mock", "st").await.expect("mock works");
    assert_eq!(redirect.url, "http://127.0.0.1/callback/mock?state=st", "{lang}: the good connector still answers");
    (registry, err)
}

async fn a_trap_is_contained(lang: &str) {
    let (registry, err) = with_hostile(lang, "trap").await;
    assert!(matches!(err, PluginError::Trap { .. }), "{lang}: {err:?}");
    // The same connector's next call gets a fresh instance and answers.
    let hostile = registry.get("hostile").unwrap();
    let again = hostile.login_url(Scopes::default(), "http://127.0.0.1/cb", "s").await.unwrap_err();
    assert!(matches!(again, PluginError::Trap { .. }), "{lang}: {again:?}");
}

async fn a_denied_host_is_denied(lang: &str, action: &str) {
    let (_registry, err) = with_hostile(lang, action).await;
    let PluginError::CapabilityDenied { detail, .. } = &err else { panic!("{lang} {action}: {err:?}") };
    assert!(detail.contains("https://evil.example.com:443"), "{lang} {action}: {detail}");
    assert!(detail.contains("add \"evil.example.com\" to allowedHosts of connector \"hostile\""), "{detail}");
    assert!(!detail.contains("secret"), "no path or query in the denial: {detail}");
}

/// Module state of one call is gone by the next: every call counts 1.
async fn nothing_survives_a_call(lang: &str) {
    let registry = Registry::load(&engine(), &[spec("h", hostile(lang), json!({"do": "count"}))], None).await.unwrap();
    let h = registry.get("h").unwrap();
    for _ in 0..3 {
        let redirect = h.login_url(Scopes::default(), "http://127.0.0.1/cb", "s").await.unwrap();
        assert_eq!(redirect.url, "http://127.0.0.1/cb?calls=1", "{lang}");
    }
}

macro_rules! language {
    ($module:ident, $lang:literal) => {
        mod $module {
            #[tokio::test]
            async fn callback_login_through_the_broker() {
                super::callback_login($lang).await;
            }

            #[tokio::test]
            async fn password_login_through_the_broker() {
                super::password_login($lang).await;
            }

            #[tokio::test]
            async fn refusals_are_refusals() {
                super::refusals_are_refusals($lang).await;
            }

            #[tokio::test]
            async fn a_trap_is_contained() {
                super::a_trap_is_contained($lang).await;
            }

            #[tokio::test]
            async fn a_host_not_granted_is_denied() {
                super::a_denied_host_is_denied($lang, "http").await;
            }

            #[tokio::test]
            async fn nothing_survives_a_call() {
                super::nothing_survives_a_call($lang).await;
            }
        }
    };
}

language!(python, "python");
language!(js, "js");
language!(starlingmonkey, "starlingmonkey");

/// `fetch` goes out through wasi:http, which the host routes through the same allowlist.
#[tokio::test]
async fn fetch_to_a_host_not_granted_is_denied() {
    a_denied_host_is_denied("starlingmonkey", "fetch").await;
}

/// A granted `fetch` reaches the host and gets its answer; a body over
/// `limits.maxResponseBytes` fails the fetch, as the `http` import's response would.
#[tokio::test]
async fn fetch_to_a_granted_host_is_answered_within_the_response_cap() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .route("/small", axum::routing::get(|| async { "x".repeat(100) }))
        .route("/big", axum::routing::get(|| async { "x".repeat(4096) }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let fetcher = |path: &str| {
        let mut s = spec("f", hostile("starlingmonkey"), json!({"do": "fetch-url", "url": format!("{origin}{path}")}));
        s.allowed_hosts = Some(vec![origin.clone()]);
        s.limits = LimitsConfig { max_response_bytes: Some(1024), ..Default::default() };
        s
    };
    let registry = Registry::load(&engine(), &[fetcher("/small")], None).await.unwrap();
    let f = registry.get("f").unwrap();
    let redirect = f.login_url(Scopes::default(), "http://127.0.0.1/cb", "s").await.unwrap();
    assert_eq!(redirect.url, "http://127.0.0.1/cb?status=200&length=100");

    let registry = Registry::load(&engine(), &[fetcher("/big")], None).await.unwrap();
    let f = registry.get("f").unwrap();
    let err = f.login_url(Scopes::default(), "http://127.0.0.1/cb", "s").await.unwrap_err();
    assert!(matches!(err.refusal(), Some(Refusal::Upstream(m)) if m.contains("fetch failed")), "{err:?}");
}

/// A component needing more core instances than `plugins.pool` gives one is refused naming
/// the count, the cap and the key to raise — not "not a component".
#[tokio::test]
async fn a_pool_cap_too_small_is_named_with_its_key() {
    let caps = PoolLimits { core_instances_per_component: 8, ..PoolLimits::default() };
    let engine = PluginEngine::with_pool(test_cache(), caps).unwrap();
    let errors = Registry::load(&engine, &[spec("py", mock("python"), json!({}))], None).await.unwrap_err();
    let [SpecError::Plugin(err @ PluginError::PoolLimit { .. })] = errors.as_slice() else { panic!("{errors:?}") };
    let text = err.to_string();
    assert!(text.contains("core module instances"), "{text}");
    assert!(text.contains("raise plugins.pool.maxCoreInstancesPerComponent"), "{text}");
    assert!(!text.contains("not a WebAssembly component"), "{text}");
}

/// Limits hold for other languages too: a Python connector given too little memory fails its
/// load with the memory error, naming the key.
#[tokio::test]
async fn a_memory_cap_too_small_is_the_memory_error() {
    let mut small = spec("py", mock("python"), json!({}));
    small.limits = LimitsConfig { memory_mib: Some(1), ..Default::default() };
    let errors = Registry::load(&engine(), &[small], None).await.unwrap_err();
    let [SpecError::Plugin(err)] = errors.as_slice() else { panic!("{errors:?}") };
    assert!(matches!(err, PluginError::Memory { limit_mib: 1, .. }), "{err:?}");
}

/// A component importing an interface the broker does not provide is refused naming that
/// import and what the broker does provide, not "not a component".
#[tokio::test]
async fn a_missing_import_is_named() {
    let errors =
        Registry::load(&engine(), &[spec("x", fixture("extra-import-js"), json!({}))], None).await.unwrap_err();
    let [SpecError::Plugin(err @ PluginError::MissingImport { import, .. })] = errors.as_slice() else {
        panic!("{errors:?}")
    };
    assert_eq!(import, "`test:extra-import/not-provided`");
    let text = err.to_string();
    assert!(
        text.contains("which this broker does not provide") && text.contains("wasi:http (only to allowedHosts)"),
        "{text}"
    );
}
