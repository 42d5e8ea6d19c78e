//! The mock connector loaded through the host: callback and password logins, refresh, config
//! validation, `plugin inspect`, the compile cache and sha256 pins.

use portcullis::connectors::Contract;
use portcullis::connectors::loader::{self, CompileSource};
use portcullis::connectors::{
    CallbackRequest, CompileCache, ConnectorKind, PluginEngine, PluginError, Refusal, Registry, Scopes, SpecError,
    inspect,
};
use portcullis_tests::{engine, fixture, plugin, spec};
use serde_json::json;

const ALL: Scopes = Scopes { offline_access: true, groups: true };

#[tokio::test]
async fn callback_login_from_login_url_to_identity() {
    let registry = Registry::load(&engine(), &[spec("mock", plugin("mock"), json!({}))], None).await.unwrap();
    let mock = registry.get("mock").unwrap();
    assert_eq!(mock.metadata().kind, ConnectorKind::Callback);
    assert!(mock.metadata().supports_refresh);

    let redirect = mock.login_url(ALL, "http://127.0.0.1:5556/callback/mock", "a b&c").await.unwrap();
    assert_eq!(redirect.url, "http://127.0.0.1:5556/callback/mock?state=a%20b%26c");
    let request = CallbackRequest {
        method: "GET".into(),
        query: vec![("state".into(), "a b&c".into())],
        callback_url: "http://127.0.0.1:5556/callback/mock".into(),
        state_data: redirect.state_data.clone(),
        ..Default::default()
    };
    let identity = mock.handle_callback(ALL, request.clone()).await.unwrap();
    assert_eq!(identity.user_id, "0-385-28089-0");
    assert_eq!(identity.username, "Kilgore Trout");
    assert_eq!(identity.email.as_deref(), Some("kilgore@kilgore.trout"));
    assert!(identity.email_verified);
    assert_eq!(identity.groups, vec!["authors".to_string()]);
    assert!(identity.connector_data.is_some(), "offline_access asks for connector data");

    let without = mock.handle_callback(Scopes::default(), request).await.unwrap();
    assert!(without.groups.is_empty(), "groups only when the groups scope was asked for");
    assert!(without.connector_data.is_none());

    let refreshed = mock.refresh(ALL, identity.clone()).await.unwrap();
    assert_eq!(refreshed.user_id, identity.user_id);
    assert_eq!(refreshed.connector_data, identity.connector_data);
}

#[tokio::test]
async fn callback_errors_are_refusals_not_traps() {
    let registry = Registry::load(&engine(), &[spec("mock", plugin("mock"), json!({}))], None).await.unwrap();
    let mock = registry.get("mock").unwrap();
    let denied = CallbackRequest {
        method: "GET".into(),
        query: vec![("error".into(), "access_denied".into()), ("state".into(), "s".into())],
        ..Default::default()
    };
    let err = mock.handle_callback(ALL, denied).await.unwrap_err();
    assert!(matches!(err.refusal(), Some(Refusal::Denied(_))), "{err:?}");
    let no_state = CallbackRequest { method: "GET".into(), ..Default::default() };
    let err = mock.handle_callback(ALL, no_state).await.unwrap_err();
    assert!(matches!(err.refusal(), Some(Refusal::BadRequest(_))), "{err:?}");
}

#[tokio::test]
async fn password_login_accepts_the_configured_user_only() {
    let config = json!({
        "mode": "password",
        "username": "jane",
        "password": "correct horse",
        "identity": { "userID": "42", "username": "Jane Doe", "email": "jane@example.com" }
    });
    let registry = Registry::load(&engine(), &[spec("pw", plugin("mock"), config)], None).await.unwrap();
    let pw = registry.get("pw").unwrap();
    assert_eq!(pw.metadata().kind, ConnectorKind::Password);
    assert_eq!(pw.metadata().password_prompt.as_deref(), Some("Username"));
    let ok = pw.login(ALL, "jane", "correct horse").await.unwrap().expect("right password");
    assert_eq!((ok.user_id.as_str(), ok.username.as_str()), ("42", "Jane Doe"));
    assert_eq!(pw.login(ALL, "jane", "wrong").await.unwrap(), None);
    assert_eq!(pw.login(ALL, "john", "correct horse").await.unwrap(), None);
    assert_eq!(pw.login(ALL, "jane", "").await.unwrap(), None);
    let err = pw.login_url(ALL, "http://x/cb", "s").await.unwrap_err();
    assert!(matches!(err.refusal(), Some(Refusal::Unsupported(_))), "{err:?}");
}

#[tokio::test]
async fn a_bad_connector_config_is_refused_naming_the_key() {
    let engine = engine();
    let cases = [
        (json!({"mode": "password"}), "username"),
        (json!({"colour": "blue"}), "colour"),
        (json!({"mode": "sideways"}), "sideways"),
    ];
    for (config, key) in cases {
        let errors = Registry::load(&engine, &[spec("mock", plugin("mock"), config.clone())], None).await.unwrap_err();
        let [SpecError::Plugin(err @ PluginError::Refused { refusal: Refusal::Config(message), .. })] =
            errors.as_slice()
        else {
            panic!("{config}: {errors:?}")
        };
        assert!(message.contains(key), "{config}: {message}");
        assert!(err.to_string().starts_with("connector \"mock\": describe: bad connector config"), "{err}");
    }
}

#[tokio::test]
async fn inspect_reports_world_version_exports_size_and_digest() {
    let path = plugin("mock");
    let bytes = std::fs::read(&path).unwrap();
    let report = inspect::report(&engine(), &path).await.unwrap();
    assert!(report.contains("world:    portcullis:connector/plugin@0.3.0 (supported by this broker)"), "{report}");
    assert!(report.contains("  portcullis:connector/connector@0.3.0"), "{report}");
    assert!(report.contains("  portcullis:connector/token-exchange@0.3.0"), "{report}");
    assert!(report.contains("token exchange: exported"), "{report}");
    assert!(report.contains(&format!("size:     {} bytes", bytes.len())), "{report}");
    assert!(report.contains(&format!("sha256:   {}", loader::sha256_hex(&bytes))), "{report}");
    assert!(report.contains("  wasi:cli/stderr@0.2"), "{report}");
}

#[tokio::test]
async fn the_compile_cache_serves_the_second_load_and_ignores_tampered_entries() {
    let dir = tempfile::tempdir().unwrap();
    let engine = PluginEngine::new(CompileCache::at(dir.path())).unwrap();
    let first = loader::load(&engine, "mock", &plugin("mock"), None).await.unwrap();
    assert!(matches!(first.compiled, CompileSource::Compiled(_)), "{:?}", first.compiled);
    let second = loader::load(&engine, "mock", &plugin("mock"), None).await.unwrap();
    assert!(matches!(second.compiled, CompileSource::Cache(_)), "{:?}", second.compiled);

    // Flip one byte of the cached artifact: it must be recompiled, never deserialized.
    let entry = walk(dir.path()).into_iter().find(|p| p.extension().is_some_and(|e| e == "cwasm")).unwrap();
    let mut bytes = std::fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&entry, &bytes).unwrap();
    let third = loader::load(&engine, "mock", &plugin("mock"), None).await.unwrap();
    assert!(matches!(third.compiled, CompileSource::Compiled(_)), "{:?}", third.compiled);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

#[tokio::test]
async fn a_sha256_pin_must_match() {
    let bytes = std::fs::read(plugin("mock")).unwrap();
    let digest = loader::sha256_hex(&bytes);
    let mut pinned = spec("mock", plugin("mock"), json!({}));
    pinned.sha256 = Some(format!("sha256:{digest}"));
    Registry::load(&engine(), &[pinned.clone()], None).await.expect("the right pin loads");
    pinned.sha256 = Some(format!("sha256:{}", "0".repeat(64)));
    let errors = Registry::load(&engine(), &[pinned], None).await.unwrap_err();
    let [SpecError::Plugin(PluginError::DigestMismatch { actual, .. })] = errors.as_slice() else {
        panic!("{errors:?}")
    };
    assert_eq!(actual, &digest);
}

/// A component built against the frozen contract 0.1.0 (wit-bindgen alone, no SDK) loads on this
/// host and logs a user in unchanged; token exchange is refused as unsupported.
#[tokio::test]
async fn a_connector_built_against_contract_0_1_still_loads_and_logs_in() {
    let path = fixture("contract-v0-1");
    let report = inspect::report(&engine(), &path).await.unwrap();
    assert!(report.contains("world:    portcullis:connector/plugin@0.1.0 (supported by this broker)"), "{report}");
    assert!(report.contains("  portcullis:connector/connector@0.1.0"), "{report}");
    assert!(report.contains("token exchange: no (contract 0.1.0"), "{report}");

    let registry = Registry::load(&engine(), &[spec("old", path, json!({}))], None).await.unwrap();
    let old = registry.get("old").unwrap();
    assert_eq!((old.plugin().version.as_str(), old.plugin().contract), ("0.1.0", Contract::V0_1));
    assert_eq!(old.metadata().kind, ConnectorKind::Callback);
    assert!(!old.metadata().supports_token_identity);

    let callback_url = "http://127.0.0.1:5556/callback/old";
    let redirect = old.login_url(ALL, callback_url, "a b").await.unwrap();
    assert_eq!(redirect.url, "http://127.0.0.1:5556/callback/old?state=a%20b");
    let request = CallbackRequest {
        method: "GET".into(),
        query: vec![("state".into(), "a b".into())],
        callback_url: callback_url.into(),
        state_data: redirect.state_data,
        ..Default::default()
    };
    let identity = old.handle_callback(ALL, request).await.unwrap();
    assert_eq!((identity.user_id.as_str(), identity.username.as_str()), ("v0.1-user", "Old Timer"));
    assert_eq!(identity.groups, ["veterans"]);

    let err = old.token_identity(ALL, "urn:ietf:params:oauth:token-type:id_token", "t").await.unwrap_err();
    assert!(matches!(err.refusal(), Some(Refusal::Unsupported(m)) if m.contains("targets 0.1.0")), "{err:?}");
}

#[tokio::test]
async fn token_identity_is_unsupported_unless_describe_says_so() {
    let registry = Registry::load(&engine(), &[spec("mock", plugin("mock"), json!({}))], None).await.unwrap();
    let mock = registry.get("mock").unwrap();
    assert_eq!(mock.plugin().contract, Contract::V0_3);
    assert!(!mock.metadata().supports_token_identity);
    let err = mock.token_identity(ALL, "urn:ietf:params:oauth:token-type:access_token", "t").await.unwrap_err();
    assert!(matches!(err.refusal(), Some(Refusal::Unsupported(m)) if m.contains("does not support")), "{err:?}");
}
