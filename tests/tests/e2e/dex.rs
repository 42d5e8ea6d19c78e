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
    let c = flow::password_login(&b, "local", "openid profile", "bare@example.com", "password").await.claims;
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

/// A broker from `BASE_CONFIG` whose `oauth2` block is `oauth2` (YAML lines under `oauth2:`).
async fn with_oauth2(oauth2: &str, clients: &str) -> TestBroker {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = portcullis_tests::default_issuer(&listener);
    let yaml = portcullis_tests::base_config(&issuer, "")
        .replacen(
            "oauth2:\n  skipApprovalScreen: false\n",
            &format!("oauth2:\n  skipApprovalScreen: false\n{oauth2}"),
            1,
        )
        .replacen("staticClients:\n", &format!("staticClients:\n{clients}"), 1);
    let config = portcullis_tests::config_from_yaml(&yaml);
    TestBroker::builder().listener(listener).issuer(&issuer).config(config).start().await
}

/// `/auth` for `client` with `redirect_uri`, PKCE S256: the response (not followed).
async fn auth(
    b: &TestBroker,
    web: &reqwest::Client,
    client: &str,
    redirect_uri: &str,
    pkce: bool,
) -> reqwest::Response {
    let (_, challenge) = portcullis_tests::pkce();
    let mut params = vec![
        ("client_id", client),
        ("redirect_uri", redirect_uri),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "st"),
        ("connector_id", "local"),
    ];
    if pkce {
        params.extend([("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")]);
    }
    let url = url::Url::parse_with_params(&b.url("/auth"), &params).unwrap();
    web.get(url.as_str()).send().await.unwrap()
}

/// Dex's native public clients (RFC 8252; kubectl, kubelogin): a public client without
/// `redirectURIs` may use any `http://127.0.0.1:<port>` or `http://localhost:<port>` address and
/// the out-of-band URI, whose page shows the code; nothing else.
#[tokio::test]
async fn native_public_clients_use_loopback_and_out_of_band() {
    let b = with_oauth2("", "- id: kubectl\n  name: kubectl\n  public: true\n").await;
    let web = browser();
    for ok in ["http://127.0.0.1:43123/callback", "http://localhost:8000/", "http://[::1]:9999/cb"] {
        let r = auth(&b, &web, "kubectl", ok, true).await;
        let to = portcullis_tests::location(&r, &b.base).unwrap_or_else(|| panic!("{ok}: {}", r.status()));
        assert!(to.contains("/auth/local?req="), "{ok} is a loopback redirect: {to}");
    }
    for refused in ["https://127.0.0.1:43123/callback", "http://evil.example/cb", "http://127.0.0.2.nip.io/cb"] {
        let r = auth(&b, &web, "kubectl", refused, true).await;
        assert_eq!(r.status(), reqwest::StatusCode::BAD_REQUEST, "{refused} must be refused");
    }
    // A registered client gets exact matching only, public or not.
    let r = auth(&b, &web, "public-app", "http://127.0.0.1:5555/other", true).await;
    assert_eq!(r.status(), reqwest::StatusCode::BAD_REQUEST);

    // Out of band: the code is shown on a page and redeemed with the same redirect URI.
    let oob = portcullis::config::REDIRECT_OOB;
    let (verifier, challenge) = portcullis_tests::pkce();
    let url = url::Url::parse_with_params(
        &b.url("/auth"),
        &[
            ("client_id", "kubectl"),
            ("redirect_uri", oob),
            ("response_type", "code"),
            ("scope", "openid"),
            ("connector_id", "local"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let first = web.get(url.as_str()).send().await.unwrap();
    let form = web.get(portcullis_tests::location(&first, &b.base).unwrap()).send().await.unwrap();
    let form = form.text().await.unwrap();
    let done = flow::submit_password(&b, &web, "local", &form, "admin@example.com", "password").await;
    let approval = web.get(portcullis_tests::location(&done, &b.base).unwrap()).send().await.unwrap();
    let page = approval.text().await.unwrap();
    let (req, csrf) =
        (portcullis_tests::hidden(&page, "req").unwrap(), portcullis_tests::hidden(&page, "csrf").unwrap());
    let shown = web
        .post(b.url("/approval"))
        .form(&[("req", req.as_str()), ("csrf", &csrf), ("approval", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(shown.status(), reqwest::StatusCode::OK, "the out-of-band page, not a redirect");
    let page = shown.text().await.unwrap();
    let marker = "id=\"code\" value=\"";
    let start = page.find(marker).expect("the code on the page") + marker.len();
    let code = &page[start..start + page[start..].find('"').unwrap()];
    let tokens = reqwest::Client::new()
        .post(b.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "kubectl"),
            ("code", code),
            ("redirect_uri", oob),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(tokens.status(), reqwest::StatusCode::OK, "{}", tokens.text().await.unwrap());
}

/// `oauth2.grantTypes` narrows what is served and advertised; `oauth2.pkce.enforce` makes a
/// confidential client use PKCE too.
#[tokio::test]
async fn grant_types_and_pkce_enforce_mean_what_they_mean_in_dex() {
    let default = with_oauth2("", "").await;
    let doc: serde_json::Value =
        reqwest::get(default.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    let grants = doc["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&"authorization_code".into()) && grants.contains(&"refresh_token".into()), "{doc}");

    let b = with_oauth2("  grantTypes: [authorization_code]\n  pkce:\n    enforce: true\n", "").await;
    let doc: serde_json::Value =
        reqwest::get(b.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(doc["grant_types_supported"], serde_json::json!(["authorization_code"]));
    let refused = flow::refresh(&b, "anything").await;
    assert_eq!(refused.status(), reqwest::StatusCode::BAD_REQUEST);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_grant_type", "{body}");
    // PKCE enforced: example-app (confidential) without a challenge goes back with an error.
    let web = browser();
    let r = auth(&b, &web, "example-app", flow::CALLBACK, false).await;
    let to = portcullis_tests::location(&r, &b.base).unwrap();
    assert!(to.starts_with(flow::CALLBACK), "{to}");
    assert_eq!(portcullis_tests::query_param(&to, "error").as_deref(), Some("invalid_request"), "{to}");
    let r = auth(&b, &web, "example-app", flow::CALLBACK, true).await;
    assert!(portcullis_tests::location(&r, &b.base).unwrap().contains("/auth/local?req="));
}

/// Dex's `frontend` keys: a `dir` whose templates replace the built-in ones by name and whose
/// `static/` files are served, a `theme` folder linked from every page, and `extra` values
/// handed to the templates.
#[tokio::test]
async fn a_frontend_folder_replaces_templates_and_serves_its_theme() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    std::fs::create_dir_all(dir.path().join("static")).unwrap();
    std::fs::create_dir_all(dir.path().join("themes/corp")).unwrap();
    std::fs::write(
        dir.path().join("templates/password.html"),
        "{% extends \"base.html\" %}{% block content %}<p>{{ extra.tagline }}</p>\
         <input type=\"hidden\" name=\"req\" value=\"{{ req }}\">{% endblock %}",
    )
    .unwrap();
    std::fs::write(dir.path().join("static/logo.svg"), "<svg/>").unwrap();
    std::fs::write(dir.path().join("themes/corp/styles.css"), "body { color: teal }").unwrap();
    let frontend = format!(
        "frontend:\n  dir: {}\n  theme: corp\n  issuer: Corp Login\n  extra:\n    tagline: Welcome to Corp\n",
        dir.path().display()
    );
    let b = TestBroker::builder().extra(&frontend).start().await;
    let web = browser();
    let (form, _) = flow::authorize(&b, &web, "local", "openid").await;
    let page = form.text().await.unwrap();
    assert!(page.contains("<p>Welcome to Corp</p>"), "the folder's template with extra: {page}");
    assert!(page.contains("/theme/styles.css") && page.contains("Corp Login"), "{page}");
    let css = web.get(b.url("/theme/styles.css")).send().await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(css.text().await.unwrap(), "body { color: teal }");
    assert_eq!(web.get(b.url("/static/logo.svg")).send().await.unwrap().text().await.unwrap(), "<svg/>");
    let builtin = web.get(b.url("/static/main.css")).send().await.unwrap();
    assert!(builtin.text().await.unwrap().contains("--accent"), "the built-in stylesheet still serves");
    for outside in ["/static/..%2Fthemes%2Fcorp%2Fstyles.css", "/static/.hidden", "/theme/..%2F..%2Fetc"] {
        assert_eq!(web.get(b.url(outside)).send().await.unwrap().status(), reqwest::StatusCode::NOT_FOUND, "{outside}");
    }
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

/// A connector's `grantTypes` (Dex's): a connector left out of a grant is not offered for it,
/// refused if asked for directly, and issues no refresh token without `refresh_token`.
#[tokio::test]
async fn connector_grant_types_limit_what_a_connector_serves() {
    let b = TestBroker::builder()
        .connectors(
            "- plugin: \"{plugins}/mock.wasm\"\n  id: codes-only\n  name: Codes only\n  grantTypes: [authorization_code]\n\
             - plugin: \"{plugins}/mock.wasm\"\n  id: devices-only\n  name: Devices only\n  grantTypes: [\"urn:ietf:params:oauth:grant-type:device_code\"]\n",
        )
        .start()
        .await;
    // A login through the connector that serves codes: no refresh token, though offline_access was asked.
    let web = browser();
    let (page, pending) = flow::authorize(&b, &web, "codes-only", "openid offline_access").await;
    let upstream = portcullis_tests::location(&page, &b.base).unwrap();
    let back = web.get(&upstream).send().await.unwrap();
    let code = flow::finish(&b, &web, back, &pending).await;
    let tokens = flow::exchange(&b, &code, &pending).await;
    assert!(tokens.refresh_token().is_none(), "grantTypes leave out refresh_token: {}", tokens.json);
    // The device-only connector is not on a code flow's chooser, and refused if asked for.
    let web = browser();
    let chooser = web
        .get(b.url(&format!(
            "/auth?client_id={}&redirect_uri={}&response_type=code&scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
            flow::CLIENT,
            flow::CALLBACK
        )))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(chooser.contains("Codes only") && !chooser.contains("Devices only"), "{chooser}");
    let at = chooser.find("/auth/codes-only?req=").expect("a link to the codes-only connector");
    let req: String = chooser[at + "/auth/codes-only?req=".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let refused = web.get(b.url(&format!("/auth/devices-only?req={req}"))).send().await.unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(refused.text().await.unwrap().contains("grantTypes"));
    let bad = portcullis::config::Config::from_yaml(
        std::path::Path::new("x.yaml"),
        "issuer: http://x/dex\nstorage: {type: memory}\nconnectors:\n- {type: mockCallback, id: m, name: M, grantTypes: [client_credentials]}\n",
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        bad.contains(
            "connectors[0].grantTypes[0]: \"client_credentials\" is not a grant a connector can be limited to"
        ),
        "{bad}"
    );
}

/// Dex's own OIDC-conformance config (`examples/oidc-conformance/config.yaml.tmpl`) has a static
/// user without `userID`: it loads, the user logs in, and its `sub` is Dex's for the user id ""
/// (what Dex issued). A second user without one is refused: both would get that one `sub`.
#[tokio::test]
async fn a_static_user_without_user_id_means_what_it_means_in_dex() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = portcullis_tests::default_issuer(&listener);
    let base = portcullis_tests::base_config(&issuer, "");
    let at = base.find("staticPasswords:").unwrap();
    let user = |email: &str| {
        format!(
            "- email: \"{email}\"\n  # bcrypt hash of the string \"password\"\n  \
             hash: \"$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W\"\n  username: \"admin\"\n"
        )
    };
    let yaml = format!("{}staticPasswords:\n{}", &base[..at], user("admin@example.com"));
    let config = portcullis_tests::config_from_yaml(&yaml);
    let b = TestBroker::builder().listener(listener).issuer(&issuer).config(config).start().await;
    let tokens =
        flow::password_login(&b, "local", "openid email offline_access", "admin@example.com", "password").await;
    assert_eq!(tokens.claims["sub"], portcullis::oidc::sub::encode("", "local"));
    assert_eq!(tokens.claims["email"], "admin@example.com");
    let refreshed = flow::refresh(&b, tokens.refresh_token().unwrap()).await;
    assert_eq!(refreshed.status(), reqwest::StatusCode::OK, "a refresh finds the user again");

    let two = format!("{}staticPasswords:\n{}{}", &base[..at], user("admin@example.com"), user("other@example.com"));
    let refused =
        portcullis::config::Config::from_yaml(std::path::Path::new("t.yaml"), &two, &|_| None).unwrap_err().to_string();
    assert!(refused.contains("staticPasswords[1]: no userID, like staticPasswords[0]"), "{refused}");
    assert!(refused.contains("give each a userID"), "{refused}");
}
