//! Policy plugins (`policies:`, wit/policy/0.1.0) end to end: the shipped `group-gate` adding
//! claims to ID and access tokens, filtering groups for one client and not another, denying a
//! user on a 403 page with no code; the fixture policy timing out (denied, or skipped with
//! `onError: allow`), tampering with reserved claims, reaching a host it was not granted, and
//! seeing refresh and client_credentials; a policy hot-reloaded under login load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use portcullis::connectors::capabilities::Grants;
use portcullis::connectors::capabilities::allowlist::Allowlist;
use portcullis::connectors::policy::{GrantKind, LoadedPolicy, LoginContext, MintContext, Policy, PolicyError};
use portcullis::connectors::{Identity, Limits, LimitsConfig};
use portcullis_tests::logs::{Format, LogCapture};
use portcullis_tests::{TestBroker, browser, engine, fixture, hidden, location, plugin, query_param};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A registered client of `BASE_CONFIG`.
#[derive(Clone, Copy)]
struct App {
    id: &'static str,
    secret: &'static str,
    redirect: &'static str,
}

const EXAMPLE: App =
    App { id: "example-app", secret: "ZXhhbXBsZS1hcHAtc2VjcmV0", redirect: "http://127.0.0.1:5555/callback" };
const SECOND: App = App { id: "second-app", secret: "c2Vjb25kLXNlY3JldA", redirect: "http://127.0.0.1:5555/second" };

/// A second mock connector whose user is in three groups.
const OPS_CONNECTOR: &str = r#"- plugin: "{plugins}/mock.wasm"
  id: mock-ops
  name: Ops
  config:
    identity: {userID: ops-1, username: Ops Person, email: ops@example.com, groups: [team-a, admins, team-b]}
"#;

/// What a login came to: tokens, or the page the broker answered instead of the code.
#[derive(Debug)]
enum Login {
    Tokens {
        json: Value,
        id: Value,
        access: Value,
        nonce: String,
    },
    /// `at`: the URL that answered instead of redirecting.
    Refused {
        status: StatusCode,
        body: String,
        location: Option<String>,
        at: String,
    },
}

impl Login {
    fn tokens(self) -> (Value, Value, Value, String) {
        match self {
            Login::Tokens { json, id, access, nonce } => (json, id, access, nonce),
            Login::Refused { status, body, .. } => panic!("the login was refused: {status} {body}"),
        }
    }
}

/// A whole login of `app` through `connector` in a fresh browser: authorize, the mock upstream's
/// callback, the approval page when shown, the code redeemed.
async fn login(b: &TestBroker, app: App, connector: &str, scopes: &str) -> Login {
    login_in(b, &browser(), app, connector, scopes).await
}

/// `login` in the browser `web` (whose SSO session may answer instead of the connector).
async fn login_in(b: &TestBroker, web: &reqwest::Client, app: App, connector: &str, scopes: &str) -> Login {
    let (verifier, challenge) = portcullis_tests::pkce();
    let nonce = portcullis::web::random_token();
    let url = url::Url::parse_with_params(
        &b.url("/auth"),
        &[
            ("client_id", app.id),
            ("redirect_uri", app.redirect),
            ("response_type", "code"),
            ("scope", scopes),
            ("state", "st"),
            ("nonce", &nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("connector_id", connector),
        ],
    )
    .unwrap();
    let mut next = url.to_string();
    // auth -> connector -> upstream callback -> approval or the client.
    for _ in 0..4 {
        if next.starts_with(app.redirect) {
            break;
        }
        let r = web.get(&next).send().await.unwrap();
        if r.status() != StatusCode::SEE_OTHER {
            let (status, location) = (r.status(), location(&r, &b.base));
            return Login::Refused { status, location, body: r.text().await.unwrap(), at: next };
        }
        next = location(&r, &b.base).unwrap();
        if next.contains("/approval") {
            let page = web.get(&next).send().await.unwrap().text().await.unwrap();
            let (req, csrf) = (hidden(&page, "req").unwrap(), hidden(&page, "csrf").unwrap());
            let form = [("req", req.as_str()), ("csrf", &csrf), ("approval", "approve")];
            let done = web.post(b.url("/approval")).form(&form).send().await.unwrap();
            assert_eq!(done.status(), StatusCode::SEE_OTHER);
            next = location(&done, &b.base).unwrap();
        }
    }
    let code = query_param(&next, "code").unwrap_or_else(|| panic!("no code in {next}"));
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", app.redirect),
        ("code_verifier", &verifier),
    ];
    let (status, json) = token(b, app, &form).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let id = portcullis_tests::flow::claims(json["id_token"].as_str().unwrap());
    let access = portcullis_tests::flow::claims(json["access_token"].as_str().unwrap());
    Login::Tokens { json, id, access, nonce }
}

async fn token(b: &TestBroker, app: App, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let r = reqwest::Client::new().post(b.url("/token")).basic_auth(app.id, Some(app.secret)).form(form).send().await;
    let r = r.unwrap();
    (r.status(), r.json().await.unwrap())
}

/// Verifies `json`'s ID token as `app` with the `openidconnect` crate (discovery, JWKS,
/// signature, issuer, audience, expiry, nonce) and returns the token's payload.
async fn verified_claims(b: &TestBroker, app: App, json: &Value, nonce: &str) -> Value {
    use openidconnect::core::{CoreClient, CoreIdToken, CoreProviderMetadata};
    use openidconnect::{ClientId, ClientSecret, IssuerUrl, Nonce};
    use std::str::FromStr as _;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let issuer = IssuerUrl::new(b.issuer.clone()).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &http).await.expect("discovery");
    let secret = Some(ClientSecret::new(app.secret.into()));
    let rp = CoreClient::from_provider_metadata(metadata, ClientId::new(app.id.into()), secret);
    let raw = json["id_token"].as_str().expect("id_token");
    let token = CoreIdToken::from_str(raw).unwrap();
    token.claims(&rp.id_token_verifier(), &Nonce::new(nonce.into())).expect("the ID token verifies");
    portcullis_tests::flow::claims(raw)
}

fn group_gate(config: &str) -> String {
    format!("policies:\n- plugin: \"{}\"\n  id: gate\n  config: {config}\n", plugin("group-gate").display())
}

fn fixture_policy(id: &str, mode: &str, extra: &str) -> String {
    format!(
        "policies:\n- plugin: \"{}\"\n  id: {id}\n  config: {{mode: {mode}}}\n{extra}",
        fixture("policy-fixture").display()
    )
}

#[tokio::test]
async fn group_gate_adds_claims_to_the_id_and_access_tokens_and_refreshes_keep_them() {
    let config =
        r#"{addClaims: {department: ops, contact: "{{ email }}", level: 3}, claimsByGroup: {authors: {role: writer}}}"#;
    let b = TestBroker::builder().extra(&group_gate(config)).start().await;
    let (json, id, access, nonce) = login(&b, EXAMPLE, "mock", "openid email groups offline_access").await.tokens();
    let verified = verified_claims(&b, EXAMPLE, &json, &nonce).await;
    for claims in [&verified, &id, &access] {
        assert_eq!(claims["department"], "ops", "{claims}");
        assert_eq!(claims["contact"], "kilgore@kilgore.trout", "{claims}");
        assert_eq!(claims["level"], 3, "{claims}");
        assert_eq!(claims["role"], "writer", "{claims}");
    }
    // The reserved claims are the broker's.
    assert_eq!(id["aud"], "example-app");
    assert_eq!(id["nonce"], nonce.as_str());
    // A refresh decides again and keeps the claims.
    let (status, refreshed) = token(
        &b,
        EXAMPLE,
        &[("grant_type", "refresh_token"), ("refresh_token", json["refresh_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let id = portcullis_tests::flow::claims(refreshed["id_token"].as_str().unwrap());
    let access = portcullis_tests::flow::claims(refreshed["access_token"].as_str().unwrap());
    assert_eq!((&id["department"], &id["role"]), (&json!("ops"), &json!("writer")), "{id}");
    assert_eq!(access["contact"], "kilgore@kilgore.trout", "{access}");
}

#[tokio::test]
async fn groups_are_filtered_for_one_client_and_not_another() {
    let config = r#"{groupsFilter: [{clients: [example-app], prefix: "team-"}]}"#;
    let b = TestBroker::builder().connectors(OPS_CONNECTOR).extra(&group_gate(config)).start().await;
    let (json, id, access, nonce) = login(&b, EXAMPLE, "mock-ops", "openid groups offline_access").await.tokens();
    assert_eq!(id["groups"], json!(["team-a", "team-b"]), "{id}");
    assert_eq!(access["groups"], json!(["team-a", "team-b"]), "{access}");
    verified_claims(&b, EXAMPLE, &json, &nonce).await;
    let (_, id, _, _) = login(&b, SECOND, "mock-ops", "openid groups").await.tokens();
    assert_eq!(id["groups"], json!(["team-a", "admins", "team-b"]), "the other client sees every group: {id}");
    // The filtered groups survive a refresh (the connector's refresh returns all three again).
    let form = [("grant_type", "refresh_token"), ("refresh_token", json["refresh_token"].as_str().unwrap())];
    let (status, refreshed) = token(&b, EXAMPLE, &form).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let id = portcullis_tests::flow::claims(refreshed["id_token"].as_str().unwrap());
    assert_eq!(id["groups"], json!(["team-a", "team-b"]), "{id}");
}

#[tokio::test]
async fn a_denied_user_gets_the_403_page_with_the_reason_and_no_code() {
    let capture = LogCapture::install(Format::Text);
    let config = r#"{requireGroups: [admins], denyMessage: "Only administrators may use this application."}"#;
    let b = TestBroker::builder().connectors(OPS_CONNECTOR).extra(&group_gate(config)).start().await;
    let Login::Refused { status, body, location, .. } = login(&b, EXAMPLE, "mock", "openid groups").await else {
        panic!("the author is not an admin and must be refused")
    };
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("Only administrators may use this application."), "{body}");
    assert!(location.is_none(), "no redirect, so no code: {location:?}");
    let log = capture.text();
    let line = log.lines().find(|l| l.contains("login denied by policy")).unwrap_or_else(|| panic!("{log}"));
    for part in ["policy=gate", "client=example-app", "connector=mock", "user_id=0-385-28089-0", "Only administrators"]
    {
        assert!(line.contains(part), "{part} in {line}");
    }
    // A member of the group is let in.
    let (_, id, _, _) = login(&b, EXAMPLE, "mock-ops", "openid groups").await.tokens();
    assert_eq!(id["groups"], json!(["team-a", "admins", "team-b"]));
    let metrics = portcullis::metrics::global().render();
    assert!(metrics.contains(r#"policy_calls_total{policy="gate",call="check-login",outcome="deny"}"#), "{metrics}");
}

#[tokio::test]
async fn a_policy_that_times_out_denies_by_default() {
    let limits = "  limits: {callDeadline: 200ms}\n";
    let b = TestBroker::builder().extra(&fixture_policy("slow-deny", "loop", limits)).start().await;
    let Login::Refused { status, body, .. } = login(&b, EXAMPLE, "mock", "openid").await else {
        panic!("a policy that never answers must not let the login through")
    };
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("A login policy could not be applied"), "{body}");
    let metrics = portcullis::metrics::global().render();
    let line = r#"policy_failures_total{policy="slow-deny",call="check-login",action="deny"} 1"#;
    assert!(metrics.contains(line), "{metrics}");
    assert!(
        metrics.contains(r#"policy_calls_total{policy="slow-deny",call="check-login",outcome="deadline"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_policy_that_times_out_is_skipped_with_on_error_allow() {
    let keys = "  limits: {callDeadline: 200ms}\n  onError: allow\n";
    let b = TestBroker::builder().extra(&fixture_policy("slow-skip", "loop", keys)).start().await;
    // Both calls (check-login at the callback, mint-token at the code) time out and are skipped.
    let (_, id, _, _) = login(&b, EXAMPLE, "mock", "openid").await.tokens();
    assert_eq!(id["sub"], portcullis::oidc::sub::encode("0-385-28089-0", "mock"));
    assert!(id.get("minted_by").is_none(), "{id}");
    let metrics = portcullis::metrics::global().render();
    for call in ["check-login", "mint-token"] {
        let line = format!(r#"policy_failures_total{{policy="slow-skip",call="{call}",action="skip"}} 1"#);
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn reserved_claim_tampering_is_refused() {
    // At login: the claims patch sets `sub`; the login is refused (onError: deny).
    let b = TestBroker::builder().extra(&fixture_policy("tamper", "tamper-login", "")).start().await;
    let Login::Refused { status, .. } = login(&b, EXAMPLE, "mock", "openid").await else {
        panic!("a patch of `sub` must not produce tokens")
    };
    assert_eq!(status, StatusCode::FORBIDDEN);
    // At mint: the patch removes `exp`; the token endpoint refuses, naming the policy. A policy
    // that fails (rather than decides) is `temporarily_unavailable`, as a connector's outage is.
    let b = TestBroker::builder().extra(&fixture_policy("tamper-exp", "tamper-mint", "")).start().await;
    let (status, json) = code_exchange(&b).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert_eq!(json["error"], "temporarily_unavailable", "{json}");
    let description = json["error_description"].as_str().unwrap();
    assert_eq!(description, r#"policy "tamper-exp" could not be applied; retry later"#);
}

#[tokio::test]
async fn a_refresh_token_survives_a_failing_policy() {
    // The policy works at login, then a reload makes it fail at every mint-token: the refresh is
    // refused before rotation, so the same token still works once the policy is fixed (here:
    // skipped with onError: allow).
    let fixture = fixture("policy-fixture");
    let policy = |mode: &str, extra: &str| {
        format!("- plugin: \"{}\"\n  id: flaky\n  config: {{mode: {mode}}}\n{extra}", fixture.display())
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, file_config("{issuer}", &policy("grant-claims", ""))).unwrap();
    let b = TestBroker::builder().file(&file).start().await;
    let (json, _, _, _) = login(&b, EXAMPLE, "mock", "openid offline_access").await.tokens();
    let form = [("grant_type", "refresh_token"), ("refresh_token", json["refresh_token"].as_str().unwrap())];
    std::fs::write(&file, file_config(&b.issuer, &policy("tamper-mint", ""))).unwrap();
    b.broker.generations.reload().await.expect("the tampering policy loads");
    let (status, answer) = token(&b, EXAMPLE, &form).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["error"], "temporarily_unavailable", "{answer}");
    std::fs::write(&file, file_config(&b.issuer, &policy("tamper-mint", "  onError: allow\n"))).unwrap();
    b.broker.generations.reload().await.expect("the skipped policy loads");
    // Past the (zero) reuse interval, at whole-second resolution: had the failed refresh rotated
    // the token, presenting it again now would be a replay and revoke the family.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, answer) = token(&b, EXAMPLE, &form).await;
    assert_eq!(status, StatusCode::OK, "the refresh token survived the policy's failure: {answer}");
}

/// A login through the mock connector; returns the token endpoint's answer to its code.
async fn code_exchange(b: &TestBroker) -> (StatusCode, Value) {
    let web = browser();
    let (to_upstream, pending) = portcullis_tests::flow::authorize(b, &web, "mock", "openid").await;
    let back = web.get(location(&to_upstream, &b.base).unwrap()).send().await.unwrap();
    let code = portcullis_tests::flow::finish(b, &web, back, &pending).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", EXAMPLE.redirect),
        ("code_verifier", &pending.verifier),
    ];
    token(b, EXAMPLE, &form).await
}

/// The fixture policy loaded on its own, as the broker loads it, with `limits` and no hosts.
async fn fixture_alone(id: &str, mode: &str, limits: LimitsConfig) -> Policy {
    let engine = engine();
    let path = fixture("policy-fixture");
    let bytes = std::fs::read(&path).unwrap();
    let loaded = Arc::new(LoadedPolicy::load(&engine, id, &path, bytes, None).await.expect("the fixture loads"));
    let grants = Grants::new(Allowlist::default(), Limits::from_config(&limits).unwrap()).unwrap();
    Policy::new(id, loaded, &json!({ "mode": mode }), Arc::new(grants)).await.expect("describe")
}

fn jane() -> Identity {
    Identity {
        user_id: "42".into(),
        username: "Jane".into(),
        email: Some("jane@example.com".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn each_sandbox_failure_is_an_error_naming_the_policy() {
    let scopes = vec!["openid".to_string()];
    let ctx = LoginContext { client_id: "example-app", connector_id: "mock", scopes: &scopes };
    let tamper = fixture_alone("tamper", "tamper-login", LimitsConfig::default()).await;
    let err = tamper.check_login(&ctx, &jane()).await.unwrap_err();
    assert!(matches!(err, PolicyError::Patch { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        r#"policy "tamper": check-login returned a patch the broker refuses: its claims sets the reserved claim "sub", which only the broker decides"#
    );
    let mint = MintContext {
        grant: GrantKind::RefreshToken,
        client_id: "example-app",
        connector_id: Some("mock"),
        identity: None,
        scopes: &scopes,
    };
    let tamper = fixture_alone("tamper-exp", "tamper-mint", LimitsConfig::default()).await;
    let err = tamper.mint_token(&mint).await.unwrap_err();
    assert!(err.to_string().contains(r#"removes the reserved claim "exp""#), "{err}");

    let denied = fixture_alone("lookup", "denied-host", LimitsConfig::default()).await;
    let err = denied.check_login(&ctx, &jane()).await.unwrap_err();
    let PolicyError::CapabilityDenied { detail, .. } = &err else { panic!("{err:?}") };
    assert!(detail.contains(r#"add "http://127.0.0.1:9" to allowedHosts of policy "lookup""#), "{detail}");

    let limits = LimitsConfig { call_deadline: Some("150ms".into()), ..Default::default() };
    let looping = fixture_alone("loop", "loop", limits).await;
    let err = looping.check_login(&ctx, &jane()).await.unwrap_err();
    assert!(matches!(err, PolicyError::Deadline { .. }), "{err:?}");
    assert!(err.to_string().starts_with(r#"policy "loop": check-login exceeded its deadline of 150ms"#), "{err}");

    let panics = fixture_alone("panics", "panic", LimitsConfig::default()).await;
    let err = panics.check_login(&ctx, &jane()).await.unwrap_err();
    assert!(err.to_string().contains("the fixture policy panics on purpose"), "{err}");
}

#[tokio::test]
async fn a_connector_is_not_a_policy() {
    let engine = engine();
    let path = plugin("mock");
    let err = LoadedPolicy::load(&engine, "oops", &path, std::fs::read(&path).unwrap(), None).await.unwrap_err();
    assert!(err.to_string().contains("it is a connector, not a policy"), "{err}");
}

#[tokio::test]
async fn the_policy_sees_refresh_and_client_credentials() {
    let grants = "  grantTypes: [authorization_code, refresh_token, client_credentials]\n";
    let b = TestBroker::builder().oauth2(grants).extra(&fixture_policy("grants", "grant-claims", "")).start().await;
    let (json, id, access, _) = login(&b, EXAMPLE, "mock", "openid groups offline_access").await.tokens();
    assert_eq!(id["minted_by"], "authorization_code", "{id}");
    assert_eq!(access["minted_by"], "authorization_code", "{access}");
    assert_eq!(access["minted_user"], "0-385-28089-0", "{access}");
    assert_eq!(id["login_seen_by"], "example-app", "the check-login patch: {id}");
    assert_eq!(id["login_groups"], json!(["authors"]), "{id}");
    let form = [("grant_type", "refresh_token"), ("refresh_token", json["refresh_token"].as_str().unwrap())];
    let (status, refreshed) = token(&b, EXAMPLE, &form).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let id = portcullis_tests::flow::claims(refreshed["id_token"].as_str().unwrap());
    let access = portcullis_tests::flow::claims(refreshed["access_token"].as_str().unwrap());
    assert_eq!((&id["minted_by"], &access["minted_by"]), (&json!("refresh_token"), &json!("refresh_token")));
    assert_eq!(id["login_seen_by"], "example-app", "check-login ran again on refresh: {id}");
    let (status, cc) = token(&b, EXAMPLE, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK, "{cc}");
    let access = portcullis_tests::flow::claims(cc["access_token"].as_str().unwrap());
    assert_eq!(access["minted_by"], "client_credentials", "{access}");
    assert_eq!(access["minted_for"], "example-app", "{access}");
    assert_eq!(access["minted_user"], Value::Null, "no user behind client_credentials: {access}");
}

/// A config file: example-app, the mock connector, and `policies` (YAML list items).
fn file_config(issuer: &str, policies: &str) -> String {
    format!(
        r#"issuer: "{issuer}"
storage: {{type: memory}}
web: {{throttle: {{authorizePerIP: 0, passwordPerIP: 0}}}}
oauth2: {{skipApprovalScreen: true}}
# A refresh token presented twice is a replay at once (no retry window): a refresh that rotated
# before failing would show as the family revoked.
expiry: {{refreshTokens: {{reuseInterval: 0s}}}}
staticClients:
- id: example-app
  secret: {}
  redirectURIs: [{}]
connectors:
- plugin: "{}"
  id: mock
  name: Example
policies:
{policies}"#,
        EXAMPLE.secret,
        EXAMPLE.redirect,
        plugin("mock").display(),
    )
}

/// The reload test's config file: group-gate adding `department`.
fn reload_config(issuer: &str, department: &str) -> String {
    let gate = format!(
        "- plugin: \"{}\"\n  id: gate\n  config: {{addClaims: {{department: {department}}}}}\n",
        plugin("group-gate").display()
    );
    file_config(issuer, &gate)
}

#[tokio::test]
async fn a_policy_hot_reloaded_under_login_load_fails_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, reload_config("{issuer}", "v1")).unwrap();
    let b = Arc::new(TestBroker::builder().file(&file).start().await);
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (b, stop, failures) = (b.clone(), stop.clone(), failures.clone());
        workers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match login(&b, EXAMPLE, "mock", "openid").await {
                    Login::Tokens { id, .. } => seen.push(id["department"].as_str().unwrap_or("none").to_string()),
                    Login::Refused { status, body, .. } => {
                        eprintln!("login failed: {status} {body}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    // A broken policy config is refused and v1 keeps serving.
    std::fs::write(&file, reload_config(&b.issuer, "v2").replace("addClaims", "addClaimz")).unwrap();
    let err = b.broker.generations.reload().await.expect_err("a broken policy config must not replace v1");
    assert!(err.contains(r#"policy "gate""#) && err.contains("addClaimz"), "{err}");
    std::fs::write(&file, reload_config(&b.issuer, "v2")).unwrap();
    let generation = b.broker.generations.reload().await.expect("v2 reloads").generation;
    assert_eq!(generation, 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for w in workers {
        seen.extend(w.await.unwrap());
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0, "no failed request during the reloads");
    assert!(seen.iter().all(|d| d == "v1" || d == "v2"), "every login got the claim: {seen:?}");
    assert!(seen.iter().any(|d| d == "v1") && seen.iter().any(|d| d == "v2"), "load on both sides: {seen:?}");
    let (_, id, _, _) = login(&b, EXAMPLE, "mock", "openid").await.tokens();
    assert_eq!(id["department"], "v2");
}

#[tokio::test]
async fn an_sso_session_is_decided_again_for_each_client() {
    // Only admins may use second-app; the author may use example-app, and their session is
    // shared with every client.
    let gate = r#"{requireGroups: [admins], denyMessage: "second-app is for admins."}"#;
    let policy = format!("{}  clients: [second-app]\n", group_gate(gate));
    let sessions = "sessions:\n  ssoSharedWithDefault: all\n";
    let b = TestBroker::builder().extra(&format!("{policy}{sessions}")).start().await;
    let web = browser();
    login_in(&b, &web, EXAMPLE, "mock", "openid groups").await.tokens();
    // The same browser, another client: the session answers, and the policy refuses it.
    let Login::Refused { status, body, location, at } = login_in(&b, &web, SECOND, "mock", "openid groups").await
    else {
        panic!("the session must not carry the user past second-app's policy")
    };
    assert!(at.starts_with(&b.url("/auth?")), "the SSO session answered at /auth, no connector was asked: {at}");
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("second-app is for admins."), "{body}");
    assert!(location.is_none());
}

#[tokio::test]
async fn the_password_grant_is_decided_and_minted_by_the_policies() {
    let oauth2 = "  grantTypes: [authorization_code, refresh_token, password]\n  passwordConnector: local\n";
    let form =
        [("grant_type", "password"), ("username", "admin@example.com"), ("password", "password"), ("scope", "openid")];
    let b = TestBroker::builder().oauth2(oauth2).extra(&fixture_policy("grants", "grant-claims", "")).start().await;
    let (status, json) = token(&b, EXAMPLE, &form).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let id = portcullis_tests::flow::claims(json["id_token"].as_str().unwrap());
    assert_eq!((&id["minted_by"], &id["login_seen_by"]), (&json!("password"), &json!("example-app")), "{id}");
    // A user the policy denies gets invalid_grant, naming the policy.
    let gate = group_gate(r#"{requireGroups: [admins]}"#);
    let b = TestBroker::builder().oauth2(oauth2).extra(&gate).start().await;
    let (status, json) = token(&b, EXAMPLE, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"], "invalid_grant");
    assert!(json["error_description"].as_str().unwrap().contains(r#"refused by policy "gate""#), "{json}");
}

#[tokio::test]
async fn a_new_policy_file_is_reloaded_and_a_broken_one_never_replaces_it() {
    // The policy file itself changes (the config does not): group-gate first, then the fixture
    // copied over it, then a file that is not a component, which is refused.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("policy.wasm");
    std::fs::copy(plugin("group-gate"), &copy).unwrap();
    let entry = format!("- plugin: \"{}\"\n  id: swapped\n  config: {{addClaims: {{who: gate}}}}\n", copy.display());
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, file_config("{issuer}", &entry)).unwrap();
    let b = TestBroker::builder().file(&file).start().await;
    let (_, id, _, _) = login(&b, EXAMPLE, "mock", "openid").await.tokens();
    assert_eq!(id["who"], "gate");
    // The fixture ignores addClaims (its mode defaults to grant-claims) and tags the tokens.
    std::fs::copy(fixture("policy-fixture"), &copy).unwrap();
    assert!(b.broker.generations.reload().await.expect("the new file reloads").changed);
    let (_, id, _, _) = login(&b, EXAMPLE, "mock", "openid").await.tokens();
    assert_eq!((&id["minted_by"], id.get("who")), (&json!("authorization_code"), None), "{id}");
    std::fs::write(&copy, b"not a component").unwrap();
    let err = b.broker.generations.reload().await.expect_err("a broken policy file is refused");
    assert!(err.contains(r#"policy "swapped""#) && err.contains("not a WebAssembly component"), "{err}");
    let (_, id, _, _) = login(&b, EXAMPLE, "mock", "openid").await.tokens();
    assert_eq!(id["minted_by"], "authorization_code", "the working policy keeps serving: {id}");
}

/// The example policy in JavaScript (examples/policies/js/email-domain.js, built with the
/// JavaScript kit): users of the listed email domain get in with a `department` claim looked up
/// in a directory over HTTP (a fake on loopback, granted by `allowedHosts`); a user of another
/// domain gets the 403 page with the policy's reason; without the grant the lookup is denied,
/// the policy fails and the login is denied (the default `onError`).
#[tokio::test]
async fn the_javascript_example_policy_admits_a_domain_and_adds_the_department_from_a_directory() {
    use axum::extract::Query;
    use axum::response::IntoResponse as _;
    use std::collections::HashMap;
    let (directory, _server) = portcullis_tests::oauth_fake::serve(|_| {
        axum::Router::new().route(
            "/people",
            axum::routing::get(|Query(q): Query<HashMap<String, String>>| async move {
                match q.get("email").map(String::as_str) {
                    Some("kilgore@kilgore.trout") => axum::Json(json!({"department": "Fiction"})).into_response(),
                    _ => StatusCode::NOT_FOUND.into_response(),
                }
            }),
        )
    })
    .await;
    let policy = |granted: &str| {
        format!(
            "policies:\n- plugin: \"{}\"\n  id: email-domain\n{granted}  config:\n    domains: [kilgore.trout]\n    directoryURL: \"{directory}/people\"\n",
            plugin("email-domain-js").display()
        )
    };
    let b = TestBroker::builder()
        .connectors(OPS_CONNECTOR)
        .extra(&policy(&format!("  allowedHosts: [\"{directory}\"]\n")))
        .start()
        .await;
    let (json, id, access, nonce) = login(&b, EXAMPLE, "mock", "openid email offline_access").await.tokens();
    verified_claims(&b, EXAMPLE, &json, &nonce).await;
    assert_eq!(id["department"], "Fiction", "{id}");
    assert_eq!(access["department"], "Fiction", "{access}");
    let Login::Refused { status, body, location, .. } = login(&b, EXAMPLE, "mock-ops", "openid email").await else {
        panic!("ops@example.com is not of kilgore.trout")
    };
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("only accounts of kilgore.trout may log in here"), "{body}");
    assert!(location.is_none());

    let ungranted = TestBroker::builder().extra(&policy("")).start().await;
    let Login::Refused { status, .. } = login(&ungranted, EXAMPLE, "mock", "openid email").await else {
        panic!("the directory is not granted: the policy fails and the login is denied")
    };
    assert_eq!(status, StatusCode::FORBIDDEN);
}
