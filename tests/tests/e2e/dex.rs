//! Dex drop-in (issue 12): Dex's config means in Portcullis what it means in Dex.

use portcullis_tests::flow;
use portcullis_tests::{TestBroker, browser};

/// Dex's `examples/config-dev.yaml` static user, as Dex ships it: `name`, `preferredUsername`,
/// `emailVerified` and `groups` reach the ID token as Dex puts them there; the hash may be
/// base64-wrapped, as Dex accepts.
#[tokio::test]
async fn a_dex_static_user_gets_dex_claims() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = portcullis_tests::default_issuer(&listener);
    let base = portcullis_tests::base_config(&issuer, "");
    let at = base.find("staticPasswords:").unwrap();
    let yaml = format!(
        r#"{}staticPasswords:
- email: "admin@example.com"
  hash: "JDJhJDEwJDJiMmNVOENQaE9UYUdyczFIUlF1QXVlUzdKVFQ1WkhzSFN6WWlGUG0xbGVaY2s3TWM4VDRX"
  username: "admin"
  name: "Admin User"
  emailVerified: true
  preferredUsername: "admin"
  groups: ["team-a", "team-a/admins"]
  userID: "08a8684b-db88-4b73-90a9-3cd1661f5466"
- email: "bare@example.com"
  hash: "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W"
  userID: "bare"
"#,
        &base[..at]
    );
    let config = portcullis_tests::config_from_yaml(&yaml);
    let b = TestBroker::builder().listener(listener).issuer(&issuer).config(config).start().await;
    let web = browser();
    let (form, pending) = flow::authorize(&b, &web, "local", "openid profile email groups offline_access").await;
    let form = form.text().await.unwrap();
    let done = flow::submit_password(&b, &web, "local", &form, "admin@example.com", "password").await;
    let code = flow::finish(&b, &web, done, &pending).await;
    let tokens = flow::exchange(&b, &code, &pending).await;
    let c = &tokens.claims;
    assert_eq!(c["name"], "Admin User");
    assert_eq!(c["preferred_username"], "admin");
    assert_eq!(c["email_verified"], true);
    assert_eq!(c["groups"], serde_json::json!(["team-a", "team-a/admins"]));
    assert_eq!(c["sub"], portcullis::oidc::sub::encode("08a8684b-db88-4b73-90a9-3cd1661f5466", "local"));
    // Refresh re-reads the user from the config and keeps the claims.
    let refreshed: serde_json::Value = flow::refresh(&b, tokens.refresh_token().unwrap()).await.json().await.unwrap();
    let again = flow::claims(refreshed["id_token"].as_str().unwrap());
    assert_eq!(again["groups"], serde_json::json!(["team-a", "team-a/admins"]));
    // A user with neither username nor name nor preferredUsername, as Dex allows.
    let web = browser();
    let (form, pending) = flow::authorize(&b, &web, "local", "openid profile").await;
    let form = form.text().await.unwrap();
    let done = flow::submit_password(&b, &web, "local", &form, "bare@example.com", "password").await;
    let code = flow::finish(&b, &web, done, &pending).await;
    let c = flow::exchange(&b, &code, &pending).await.claims;
    assert!(c.get("preferred_username").is_none(), "absent, as in Dex: {c}");
}

/// Dex's `signer` block, `storage.memory` with `config: {}`, and Dex's `mockCallback` /
/// `mockPassword` connector types mean what they mean in Dex.
#[test]
fn dex_signer_storage_and_mock_types_load() {
    let path = std::path::Path::new("config/good/dex-signer-mock-types.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let config = portcullis::config::Config::from_yaml(path, &text, &|_| None).unwrap();
    assert_eq!(config.signing_algorithm, portcullis::config::SigningAlgorithm::Rs256);
    assert_eq!(config.expiry.signing_keys, std::time::Duration::from_secs(6 * 3600));
    let mode = |id: &str| {
        let entry = config.connectors.iter().find(|c| c.spec.id == id).unwrap();
        assert!(entry.spec.plugin.ends_with("mock.wasm"), "{}", entry.spec.plugin.display());
        entry.spec.config["mode"].clone()
    };
    assert_eq!(mode("mock"), "callback");
    assert_eq!(mode("mock-password"), "password");
    let password = config.connectors.iter().find(|c| c.spec.id == "mock-password").unwrap();
    assert!(password.spec.config.get("claimMapping").is_none(), "{}", password.spec.config);
    let both = text.replace("signer:", "signing: {algorithm: ES256}\nsigner:");
    let refused = portcullis::config::Config::from_yaml(path, &both, &|_| None).unwrap_err().to_string();
    assert!(refused.contains("signing.algorithm and signer.config.algorithm say the same thing"), "{refused}");
}

/// A client's `allowedConnectors` (Dex's meaning): the chooser offers only those, a login
/// through another is refused, and SSO from another connector does not apply; `idEnv` and
/// `logoURL` as in Dex.
#[tokio::test]
async fn allowed_connectors_limit_a_client_to_its_login_methods() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = portcullis_tests::default_issuer(&listener);
    let yaml = portcullis_tests::base_config(&issuer, "").replacen(
        "staticClients:\n",
        "staticClients:\n- idEnv: MOCK_ONLY_CLIENT_ID\n  name: Mock Only\n  secret: bW9jay1vbmx5\n  \
         logoURL: https://example.com/logo.png\n  redirectURIs: [http://127.0.0.1:5555/mock-only]\n  \
         allowedConnectors: [mock]\n",
        1,
    );
    let env = |name: &str| (name == "MOCK_ONLY_CLIENT_ID").then(|| "mock-only".to_string());
    let mut config = portcullis::config::Config::from_yaml(std::path::Path::new("test.yaml"), &yaml, &env).unwrap();
    config.cache_dir = Some(portcullis_tests::test_cache_dir());
    let b = TestBroker::builder().listener(listener).issuer(&issuer).config(config).start().await;
    let web = browser();
    let start = |connector: Option<&str>| {
        let hint = connector.map(|c| format!("&connector_id={c}")).unwrap_or_default();
        format!(
            "{}/auth?client_id=mock-only&redirect_uri=http://127.0.0.1:5555/mock-only&response_type=code&scope=openid{hint}",
            b.issuer
        )
    };
    // Only mock is offered, so the broker goes straight to it.
    let first = web.get(start(None)).send().await.unwrap();
    let to = portcullis_tests::location(&first, &b.base).unwrap();
    assert!(to.contains("/auth/mock?req="), "{to}");
    // The password database is not this client's: refused even when asked for by URL.
    let req = portcullis_tests::query_param(&to, "req").unwrap();
    let local = web.get(b.url(&format!("/auth/local?req={req}"))).send().await.unwrap();
    assert_eq!(local.status(), reqwest::StatusCode::FORBIDDEN);
    // The mock login goes through, and the approval page shows the client's logo.
    let back = web.get(b.url(&format!("/auth/mock?req={req}"))).send().await.unwrap();
    let callback = portcullis_tests::location(&back, &b.base).unwrap();
    let approval = web.get(&callback).send().await.unwrap();
    let approval = portcullis_tests::location(&approval, &b.base).unwrap();
    let page = web.get(&approval).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("logo.png\" alt=\"\" class=\"logo\""), "{page}");
}

/// A plugin gets no host its config does not name: the hostile fixture calls evil.example.com
/// while its config names an issuer elsewhere, and evil.example.com only where the broker does
/// not look for hosts to reach (its own callback, scope names, claim names). No allowedHosts
/// line, so the implied set is all it has, and the call is denied.
#[tokio::test]
async fn a_plugin_reaching_a_host_its_config_does_not_name_is_denied() {
    use portcullis::connectors::{PluginError, Reason, Registry, Scopes, host_grants};
    let config = serde_json::json!({
        "issuer": "https://idp.example.com/realms/main",
        "redirectURI": "https://evil.example.com/callback",
        "scopes": ["openid", "https://evil.example.com/scope"],
        "claimMapping": {"groups": "https://evil.example.com/groups"},
    });
    let mut hostile = portcullis_tests::spec("hostile", portcullis_tests::fixture("hostile-http"), config);
    hostile.allowed_hosts = None;
    let grants = host_grants(&hostile);
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0].entry, "https://idp.example.com");
    assert_eq!(grants[0].reason, Reason::ConfigKey("issuer".into()));
    let registry = Registry::load(&portcullis_tests::engine(), &[hostile], None).await.expect("loads");
    let err = registry
        .get("hostile")
        .unwrap()
        .login_url(Scopes::default(), "http://127.0.0.1/callback/hostile", "s")
        .await
        .expect_err("denied");
    let PluginError::CapabilityDenied { detail, .. } = &err else { panic!("{err:?}") };
    assert!(detail.contains("add \"evil.example.com\" to allowedHosts of connector \"hostile\""), "{detail}");
}
