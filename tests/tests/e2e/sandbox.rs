//! Hostile plugins: each fails its call (or its load) with an error naming the cause, and a
//! good connector in the same process keeps working.

use portcullis::connectors::{LimitsConfig, PluginError, Registry, Scopes, SpecError};
use portcullis_tests::{engine, fixture, plugin, repo_file, spec};
use serde_json::json;

/// Loads `hostile` beside a good mock connector, with `limits` on the hostile one.
async fn registry_with(hostile: &str, limits: LimitsConfig) -> Registry {
    let mut bad = spec("hostile", fixture(hostile), json!({}));
    bad.limits = limits;
    let good = spec("mock", plugin("mock"), json!({}));
    Registry::load(&engine(), &[bad, good], None).await.expect("both connectors load")
}

/// The good connector still answers after the hostile one failed.
async fn good_one_still_works(registry: &Registry) {
    let mock = registry.get("mock").expect("mock is registered");
    let redirect =
        mock.login_url(Scopes::default(), "http://127.0.0.1/callback/mock", "st4te").await.expect("mock works");
    assert_eq!(redirect.url, "http://127.0.0.1/callback/mock?state=st4te");
}

async fn hostile_login_url(registry: &Registry) -> PluginError {
    let hostile = registry.get("hostile").expect("hostile is registered");
    hostile
        .login_url(Scopes::default(), "http://127.0.0.1/callback/hostile", "s")
        .await
        .expect_err("the hostile call must fail")
}

#[tokio::test]
async fn a_plugin_that_loops_forever_is_stopped_at_its_deadline() {
    let limits = LimitsConfig { call_deadline: Some("300ms".into()), ..Default::default() };
    let registry = registry_with("hostile-loop", limits).await;
    let err = hostile_login_url(&registry).await;
    assert!(matches!(err, PluginError::Deadline { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("\"hostile\"") && text.contains("deadline") && text.contains("300ms"), "{text}");
    good_one_still_works(&registry).await;
}

#[tokio::test]
async fn a_plugin_that_allocates_without_bound_hits_its_memory_cap() {
    let limits = LimitsConfig { memory_mib: Some(16), ..Default::default() };
    let registry = registry_with("hostile-alloc", limits).await;
    let err = hostile_login_url(&registry).await;
    assert!(matches!(err, PluginError::Memory { limit_mib: 16, .. }), "{err:?}");
    assert!(err.to_string().contains("memory limit of 16 MiB"), "{err}");
    good_one_still_works(&registry).await;
}

#[tokio::test]
async fn a_plugin_calling_a_host_it_was_not_granted_is_denied() {
    let registry = registry_with("hostile-http", LimitsConfig::default()).await;
    let err = hostile_login_url(&registry).await;
    let PluginError::CapabilityDenied { detail, .. } = &err else { panic!("{err:?}") };
    // The denial names the request (origin only: the query carried a secret) and the exact
    // allowedHosts line that would grant it.
    assert!(detail.contains("https://evil.example.com:443"), "{detail}");
    assert!(detail.contains("add \"evil.example.com\" to allowedHosts of connector \"hostile\""), "{detail}");
    assert!(!detail.contains("secret"), "{detail}");
    good_one_still_works(&registry).await;
}

#[tokio::test]
async fn a_plugin_that_panics_fails_its_call_with_the_panic_message() {
    let registry = registry_with("hostile-panic", LimitsConfig::default()).await;
    let err = hostile_login_url(&registry).await;
    let PluginError::Trap { detail, .. } = &err else { panic!("{err:?}") };
    assert!(detail.contains("hostile plugin panicked on purpose"), "{detail}");
    good_one_still_works(&registry).await;
}

/// A load failure: a registry holding the bad plugin is refused as a whole, naming the cause,
/// while the registry already serving keeps working.
async fn refused_beside_a_working_registry(bad_plugin: std::path::PathBuf) -> PluginError {
    let engine = engine();
    let working = Registry::load(&engine, &[spec("mock", plugin("mock"), json!({}))], None).await.expect("mock loads");
    let specs = [spec("mock", plugin("mock"), json!({})), spec("hostile", bad_plugin, json!({}))];
    let mut errors = Registry::load(&engine, &specs, Some(&working)).await.expect_err("must be refused");
    assert_eq!(errors.len(), 1, "{errors:?}");
    good_one_still_works(&working).await;
    match errors.remove(0) {
        SpecError::Plugin(e) => {
            assert_eq!(e.connector(), "hostile");
            e
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_plugin_built_for_another_wit_version_is_refused_naming_both_versions() {
    let err = refused_beside_a_working_registry(fixture("hostile-version")).await;
    let PluginError::UnsupportedVersion { found, supported, .. } = &err else { panic!("{err:?}") };
    assert_eq!(found, "portcullis:connector@9.0.0");
    assert_eq!(supported, &["0.1.0", "0.2.0", "0.3.0"]);
    let text = err.to_string();
    assert!(
        text.contains("targets portcullis:connector@9.0.0")
            && text.contains(
                "supports portcullis:connector@0.1.0, portcullis:connector@0.2.0 and portcullis:connector@0.3.0"
            ),
        "{text}"
    );
}

#[tokio::test]
async fn a_file_that_is_not_wasm_is_refused() {
    let err = refused_beside_a_working_registry(repo_file("tests/fixtures/not-wasm.wasm")).await;
    assert!(matches!(err, PluginError::NotAComponent { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("not-wasm.wasm") && text.contains("not a WebAssembly component"), "{text}");
}
