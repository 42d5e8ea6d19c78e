//! The GitHub connector end to end: a browser goes broker → fake GitHub → broker, and the ID
//! token, the pages and the refresh answers say exactly what GitHub's data and failures imply.

use portcullis::connectors::{CallbackRequest, Refusal, Scopes};
use portcullis_tests::github_fake::{ApiMode, CLIENT_ID, CLIENT_SECRET, FakeGitHub, FakeTeam, FakeUser};
use portcullis_tests::logs::{Format, LogCapture};
use portcullis_tests::{TestBroker, base_config, browser, config_from_yaml, engine, flow, location, query_param};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ALL_SCOPES: &str = "openid profile email groups offline_access federated:id";

fn octo() -> FakeUser {
    FakeUser {
        id: 5830291,
        login: "octo-sample".into(),
        name: Some("Sam Ple".into()),
        email: Some("sam@example.test".into()),
        emails: vec![("sam@example.test".into(), true, true)],
        orgs: vec!["acme-widgets".into(), "side-project".into()],
        teams: vec![
            FakeTeam::new("acme-widgets", "Platform Core", "platform-core"),
            FakeTeam::new("side-project", "Maintainers", "maintainers"),
        ],
    }
}

/// The connector block for `fake`; `config` is more YAML under `config:` (4-space indented).
fn github_block(fake: &FakeGitHub, config: &str) -> String {
    format!(
        r#"
- plugin: "{{plugins}}/github.wasm"
  id: github
  name: GitHub
  allowedHosts: ["{base}"]
  config:
    clientID: {CLIENT_ID}
    clientSecret: {CLIENT_SECRET}
    hostName: "{base}"
{config}"#,
        base = fake.base
    )
}

async fn setup(user: FakeUser, page_size: usize, config: &str) -> (FakeGitHub, TestBroker) {
    let fake = FakeGitHub::start(user, page_size).await;
    let b = TestBroker::builder().connectors(&github_block(&fake, config)).start().await;
    (fake, b)
}

/// Starts a login through `github` and follows the redirects to GitHub and back; returns the
/// broker's answer to the callback.
async fn login(
    b: &TestBroker,
    fake: &FakeGitHub,
    web: &reqwest::Client,
    scopes: &str,
) -> (reqwest::Response, flow::Pending) {
    let (to_github, pending) = flow::authorize(b, web, "github", scopes).await;
    assert_eq!(to_github.status(), StatusCode::SEE_OTHER, "sent to GitHub");
    let authorize = location(&to_github, &b.base).expect("redirect to GitHub");
    assert!(authorize.starts_with(&format!("{}/login/oauth/authorize?", fake.base)), "{authorize}");
    let approved = web.get(&authorize).send().await.unwrap();
    assert!(approved.status().is_redirection(), "GitHub sends the browser back");
    let callback = location(&approved, &fake.base).expect("redirect back to the broker");
    assert!(callback.starts_with(&b.url("/callback")), "{callback}");
    (web.get(&callback).send().await.unwrap(), pending)
}

/// A full login up to the tokens.
async fn tokens(b: &TestBroker, fake: &FakeGitHub, scopes: &str) -> flow::Tokens {
    let web = browser();
    let (response, pending) = login(b, fake, &web, scopes).await;
    let code = flow::finish(b, &web, response, &pending).await;
    flow::exchange(b, &code, &pending).await
}

fn authorize_param(fake: &FakeGitHub, name: &str) -> Option<String> {
    let requests = fake.authorize_requests();
    let last = requests.last().expect("an authorize request");
    last.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

#[tokio::test]
async fn login_puts_orgs_and_teams_into_groups_and_federated_claims() {
    let (fake, b) = setup(octo(), 30, "    orgs:\n    - name: acme-widgets\n").await;
    let t = tokens(&b, &fake, ALL_SCOPES).await;

    assert_eq!(authorize_param(&fake, "scope").as_deref(), Some("user:email read:org"));
    assert_eq!(authorize_param(&fake, "client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(authorize_param(&fake, "redirect_uri"), Some(b.url("/callback/github")));
    let c = &t.claims;
    assert_eq!(c["groups"], json!(["acme-widgets", "acme-widgets:Platform Core"]));
    assert_eq!(c["federated_claims"], json!({"connector_id": "github", "user_id": "5830291"}));
    assert_eq!(c["name"], "Sam Ple");
    assert_eq!(c["preferred_username"], "octo-sample");
    assert_eq!(c["email"], "sam@example.test");
    assert_eq!(c["email_verified"], true);
    // The public profile email was enough: /user/emails was not read.
    let api = fake.api_requests();
    assert!(!api.iter().any(|r| r.starts_with("/user/emails")), "{api:?}");
    assert!(t.refresh_token().is_some(), "offline_access gives a refresh token");
}

#[tokio::test]
async fn dex_redirect_uri_sends_github_back_to_the_shared_callback() {
    let fake = FakeGitHub::start(octo(), 30).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shared = format!("http://{}/dex/callback", listener.local_addr().unwrap());
    let block = github_block(&fake, &format!("    redirectURI: {shared}\n"));
    let b = TestBroker::builder().listener(listener).connectors(&block).start().await;
    let t = tokens(&b, &fake, "openid profile").await;
    assert_eq!(authorize_param(&fake, "redirect_uri"), Some(shared));
    assert_eq!(t.claims["preferred_username"], "octo-sample");
}

#[tokio::test]
async fn a_private_email_is_read_from_user_emails_and_login_can_be_the_id() {
    let mut user = octo();
    user.email = None;
    user.name = None;
    user.emails = vec![
        ("5830291+octo-sample@users.noreply.github.com".into(), false, true),
        ("old@example.test".into(), false, false),
        ("sam@private.test".into(), true, true),
    ];
    let (fake, b) = setup(user, 30, "    useLoginAsID: true\n").await;
    let t = tokens(&b, &fake, "openid profile email federated:id").await;

    assert_eq!(authorize_param(&fake, "scope").as_deref(), Some("user:email"), "no read:org without orgs or groups");
    assert_eq!(t.claims["email"], "sam@private.test");
    assert_eq!(t.claims["email_verified"], true);
    assert_eq!(t.claims["name"], "octo-sample", "no display name: the login");
    assert_eq!(t.claims["federated_claims"]["user_id"], "octo-sample");
    assert!(t.claims.get("groups").is_none());
    assert_eq!(fake.api_requests(), ["/user", "/user/emails?per_page=100"]);
}

#[tokio::test]
async fn the_preferred_email_domain_wins_over_the_primary_email() {
    let mut user = octo();
    user.email = Some("sam@example.test".into());
    user.emails = vec![("sam@example.test".into(), true, true), ("sam@eng.corp.test".into(), false, true)];
    let (fake, b) = setup(user, 30, "    preferredEmailDomain: \"*.corp.test\"\n").await;
    let t = tokens(&b, &fake, "openid email").await;
    assert_eq!(t.claims["email"], "sam@eng.corp.test");
}

#[tokio::test]
async fn a_user_outside_the_required_orgs_gets_access_denied_and_no_code() {
    let config = "    orgs:\n    - name: acme-widgets\n      teams: [security]\n    - name: globex\n";
    let (fake, b) = setup(octo(), 30, config).await;
    let web = browser();
    let (response, _) = login(&b, &fake, &web, "openid groups").await;

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get("location").is_none(), "no redirect, so no code");
    let page = response.text().await.unwrap();
    assert!(page.contains("Access denied"), "{page}");
    assert!(
        page.contains(
            "GitHub user octo-sample is not a member of the required organizations or teams: \
             acme-widgets (teams security); globex"
        ),
        "{page}"
    );
}

#[tokio::test]
async fn teams_and_orgs_across_several_pages_all_become_groups() {
    let mut user = octo();
    user.orgs = vec!["acme-widgets".into(), "globex".into(), "side-project".into()];
    user.teams = vec![
        FakeTeam::new("acme-widgets", "Platform Core", "platform-core"),
        FakeTeam::new("acme-widgets", "Security", "security"),
        FakeTeam::new("globex", "Ops", "ops"),
        FakeTeam::new("globex", "Release Eng", "release-eng"),
        FakeTeam::new("side-project", "Maintainers", "maintainers"),
    ];
    let (fake, b) = setup(user, 2, "    loadAllGroups: true\n    teamNameField: slug\n").await;
    let t = tokens(&b, &fake, "openid groups").await;

    assert_eq!(
        t.claims["groups"],
        json!([
            "acme-widgets",
            "acme-widgets:platform-core",
            "acme-widgets:security",
            "globex",
            "globex:ops",
            "globex:release-eng",
            "side-project",
            "side-project:maintainers"
        ])
    );
    let api = fake.api_requests();
    for page in ["/user/teams?per_page=2&page=2", "/user/teams?per_page=2&page=3", "/user/orgs?per_page=2&page=2"] {
        assert!(api.iter().any(|r| r == page), "{page} not fetched: {api:?}");
    }
    assert!(!api.iter().any(|r| r.contains("page=4")), "{api:?}");
}

#[tokio::test]
async fn a_bad_code_gives_an_error_page_and_no_code() {
    let (fake, b) = setup(octo(), 30, "").await;
    fake.expire_codes();
    let web = browser();
    let (response, _) = login(&b, &fake, &web, "openid").await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());
    let page = response.text().await.unwrap();
    assert!(page.contains("GitHub refused the login code as incorrect, expired or already used"), "{page}");
    assert!(page.contains("bad_verification_code"), "{page}");
}

/// The connector's own refusal for a callback carrying a fresh code from the fake.
async fn callback_refusal(b: &TestBroker, fake: &FakeGitHub) -> Refusal {
    let callback_url = b.url("/callback/github");
    let authorize = format!(
        "{}/login/oauth/authorize?client_id={CLIENT_ID}&redirect_uri={}&scope=user%3Aemail&state=s",
        fake.base,
        url::form_urlencoded::byte_serialize(callback_url.as_bytes()).collect::<String>()
    );
    let back = browser().get(&authorize).send().await.unwrap();
    let code = query_param(&location(&back, &fake.base).unwrap(), "code").unwrap();
    let live = b.broker.generations.current();
    let github = live.registry.get("github").unwrap();
    let request = CallbackRequest {
        method: "GET".into(),
        query: vec![("code".into(), code), ("state".into(), "s".into())],
        callback_url,
        ..Default::default()
    };
    let err = github.handle_callback(Scopes::default(), request).await.unwrap_err();
    err.refusal().cloned().unwrap_or_else(|| panic!("not a refusal: {err:?}"))
}

#[tokio::test]
async fn a_rate_limit_fails_the_login_saying_when_to_retry() {
    let (fake, b) = setup(octo(), 30, "").await;
    fake.set_mode(ApiMode::RateLimited { reset: 1_767_225_600 });
    let web = browser();
    let (response, _) = login(&b, &fake, &web, "openid").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(response.headers().get("location").is_none());

    let Refusal::Upstream(message) = callback_refusal(&b, &fake).await else { panic!("not an upstream error") };
    assert_eq!(
        message,
        format!(
            "GET {}/api/v3/user: GitHub rate limited this request (HTTP 403: API rate limit exceeded for user ID \
             5830291.); retry after 2026-01-01T00:00:00Z (x-ratelimit-reset 1767225600)",
            fake.base
        )
    );
}

#[tokio::test]
async fn a_github_server_error_gives_a_502_page() {
    let (fake, b) = setup(octo(), 30, "").await;
    fake.set_mode(ApiMode::ServerError(500));
    let web = browser();
    let (response, _) = login(&b, &fake, &web, "openid").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(response.headers().get("location").is_none());
    let page = response.text().await.unwrap();
    assert!(page.contains("The identity provider could not be reached or answered unexpectedly."), "{page}");

    let Refusal::Upstream(message) = callback_refusal(&b, &fake).await else { panic!("not an upstream error") };
    assert_eq!(message, format!("GET {}/api/v3/user: GitHub failed (HTTP 500: Server Error); retry later", fake.base));
}

#[tokio::test]
async fn refresh_rereads_the_groups() {
    let (fake, b) = setup(octo(), 30, "    orgs:\n    - name: acme-widgets\n").await;
    let t = tokens(&b, &fake, ALL_SCOPES).await;
    assert_eq!(t.claims["groups"], json!(["acme-widgets", "acme-widgets:Platform Core"]));

    fake.update_user(|u| {
        u.teams = vec![FakeTeam::new("acme-widgets", "Security", "security")];
        u.name = Some("Sam Renamed".into());
    });
    let response = flow::refresh(&b, t.refresh_token().unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let json: Value = response.json().await.unwrap();
    let claims = flow::claims(json["id_token"].as_str().unwrap());
    assert_eq!(claims["groups"], json!(["acme-widgets", "acme-widgets:Security"]));
    assert_eq!(claims["name"], "Sam Renamed");
    assert_eq!(claims["sub"], t.claims["sub"]);

    // Leaving the required org ends the refreshes.
    fake.update_user(|u| {
        u.orgs.clear();
        u.teams.clear();
    });
    let response = flow::refresh(&b, json["refresh_token"].as_str().unwrap()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["error"], "invalid_grant");
}

#[tokio::test]
async fn refresh_after_the_token_is_revoked_is_invalid_grant() {
    let (fake, b) = setup(octo(), 30, "").await;
    let t = tokens(&b, &fake, "openid offline_access").await;
    fake.revoke_all();
    let response = flow::refresh(&b, t.refresh_token().unwrap()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["error"], "invalid_grant");
}

#[tokio::test]
async fn a_refresh_while_github_fails_or_rate_limits_is_retryable_and_keeps_the_token() {
    let (fake, b) = setup(octo(), 30, "").await;
    let t = tokens(&b, &fake, "openid offline_access groups").await;
    let token = t.refresh_token().unwrap();
    for mode in [ApiMode::ServerError(502), ApiMode::RateLimited { reset: 1_767_225_600 }] {
        fake.set_mode(mode);
        let response = flow::refresh(&b, token).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let json: Value = response.json().await.unwrap();
        assert_eq!(json["error"], "temporarily_unavailable");
    }
    // GitHub is back: the same refresh token still works.
    fake.set_mode(ApiMode::Normal);
    let response = flow::refresh(&b, token).await;
    assert_eq!(response.status(), StatusCode::OK, "the token survived the outage");
}

#[tokio::test]
async fn a_misspelt_config_key_is_refused_naming_it() {
    let fake = FakeGitHub::start(octo(), 30).await;
    let cases = [
        ("    loadAllGroup: true\n", "unknown field `loadAllGroup`"),
        ("    rootCA: /etc/ghe-ca.pem\n", "config.rootCA: neither PEM, nor a readable file"),
        ("    teamNameField: title\n", "unknown variant `title`"),
    ];
    for (config, expected) in cases {
        let validated = config_from_yaml(&base_config("http://127.0.0.1:1/dex", &github_block(&fake, config)));
        // What `check-config` and a reload run: every connector must load. (A start would go
        // on without this one, reporting the same error in /status.)
        let err = match portcullis::generation::load_registry(&engine(), &validated, None).await {
            Ok(_) => panic!("{config}: the connector accepted it"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("github"), "{err}");
        assert!(err.contains(expected), "{config}: {err}");
    }
}

#[tokio::test]
async fn no_code_token_or_secret_reaches_the_logs() {
    let capture = LogCapture::install(Format::Text);
    let (fake, b) = setup(octo(), 1, "    orgs:\n    - name: acme-widgets\n").await;
    let t = tokens(&b, &fake, ALL_SCOPES).await;
    let refreshed: Value = flow::refresh(&b, t.refresh_token().unwrap()).await.json().await.unwrap();
    fake.revoke_all();
    let refused = flow::refresh(&b, refreshed["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    fake.set_mode(ApiMode::RateLimited { reset: 1_767_225_600 });
    let (failed, _) = login(&b, &fake, &browser(), "openid").await;
    assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);

    let logs = capture.text();
    assert!(logs.contains("GitHub user octo-sample logged in"), "the capture sees the connector's lines");
    assert!(logs.contains("GitHub rate limited this request"), "the operator sees why the login failed");
    assert!(logs.contains("GitHub refused the access token (HTTP 401: Bad credentials)"), "and why refresh failed");
    let mut secrets = fake.issued_secrets();
    assert!(secrets.len() >= 4, "two codes and two tokens: {}", secrets.len());
    secrets.push(CLIENT_SECRET.to_string());
    for key in ["access_token", "id_token", "refresh_token"] {
        secrets.extend([&t.json, &refreshed].iter().filter_map(|j| j[key].as_str().map(str::to_string)));
    }
    for secret in secrets {
        assert!(!logs.contains(&secret), "a secret reached the logs");
    }
}

/// Dex's documented GitHub block (its docs' sample: orgs with teams, `loadAllGroups`,
/// `teamNameField`, `useLoginAsID`, `redirectURI`), with `hostName` at the fake and no
/// `allowedHosts`: the broker implies the fake's origin from `hostName`, and the login works.
#[tokio::test]
async fn a_dex_github_block_without_allowed_hosts_logs_in() {
    let fake = FakeGitHub::start(octo(), 100).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = portcullis_tests::default_issuer(&listener);
    let block = format!(
        r#"
- type: github
  # Required field for connector id.
  id: github
  # Required field for connector name.
  name: GitHub
  config:
    # Credentials can be string literals or pulled from the environment.
    clientID: {CLIENT_ID}
    clientSecret: {CLIENT_SECRET}
    redirectURI: {issuer}/callback
    orgs:
    - name: side-project
    - name: acme-widgets
      teams:
      - platform-core
    loadAllGroups: false
    teamNameField: slug
    useLoginAsID: false
    hostName: "{base}"
"#,
        base = fake.base
    );
    let plugins = format!("plugins:\n  dir: \"{}\"\n", portcullis_tests::plugin("github").parent().unwrap().display());
    let b = TestBroker::builder().listener(listener).issuer(&issuer).connectors(&block).extra(&plugins).start().await;
    let t = tokens(&b, &fake, ALL_SCOPES).await;
    assert_eq!(t.claims["email"], "sam@example.test");
    let groups = t.claims["groups"].as_array().expect("groups");
    assert!(groups.contains(&json!("acme-widgets:platform-core")), "{groups:?}");
}

/// Dex's `rootCA` for GitHub Enterprise: the broker reads the file into this connector's trust
/// store (the same one `rootCAs` fills; a private-CA upstream over HTTPS is tested through the
/// oidc connector in `exchange::`); a missing file or a `rootCA` without `hostName` is refused.
#[tokio::test]
async fn a_root_ca_file_is_trusted_for_github_enterprise() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ghe-ca.pem");
    std::fs::write(&ca, portcullis_tests::slapd::TestCa::new("GHE CA").cert_pem).unwrap();
    let load = |config: serde_json::Value| async move {
        let spec = portcullis_tests::spec("ghe", portcullis_tests::plugin("github"), config);
        portcullis::connectors::Registry::load(&portcullis_tests::engine(), &[spec], None)
            .await
            .map(|_| ())
            .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
    };
    let base = |extra: serde_json::Value| {
        let mut c = serde_json::json!({"clientID": "i", "clientSecret": "s"});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    load(base(serde_json::json!({"hostName": "ghe.example.com", "rootCA": ca.display().to_string()}))).await.unwrap();
    let missing = load(base(serde_json::json!({"hostName": "ghe.example.com", "rootCA": "/no/such/ca.pem"}))).await;
    assert!(missing.unwrap_err().contains("config.rootCA: neither PEM, nor a readable file"));
    let no_host = load(base(serde_json::json!({"rootCA": ca.display().to_string()}))).await;
    assert!(no_host.unwrap_err().contains("rootCA needs hostName"));
}

/// Dex's legacy `org`: the `groups` claim is the user's team names in that org, bare (no
/// `org:` prefix), and a user outside it is not turned away — as Dex reads the key.
#[tokio::test]
async fn the_legacy_org_key_gives_bare_team_names() {
    let (fake, b) = setup(octo(), 30, "    org: acme-widgets\n").await;
    let t = tokens(&b, &fake, ALL_SCOPES).await;
    assert_eq!(t.claims["groups"], json!(["Platform Core"]));
    let (fake, b) = setup(octo(), 30, "    org: nowhere\n").await;
    let t = tokens(&b, &fake, ALL_SCOPES).await;
    assert_eq!(t.claims.get("groups"), None, "no team in the org: no groups claim, as in Dex: {}", t.claims);
}
