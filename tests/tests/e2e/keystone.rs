//! The Keystone connector end to end against a fake Keystone v3 (tests/src/keystone_fake.rs):
//! Dex's config block without allowedHosts, the password form, the ID token's claims and
//! groups, refresh with the admin account, refused users and Keystone failing.

use portcullis::connectors::{Refusal, Registry, SpecError};
use portcullis_tests::keystone_fake::{
    ACME_DOMAIN, ADMIN_NAME, ADMIN_PASSWORD, FakeKeystone, FakeKeystoneUser, KeystoneMode,
};
use portcullis_tests::logs::{Format, LogCapture};
use portcullis_tests::{TestBroker, browser, engine, flow, location, plugin, spec};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SCOPES: &str = "openid profile email groups offline_access federated:id";
const ALICE_ID: &str = "b7e3c1d2a4f54e6f8a9b0c1d2e3f4a5b";

fn alice() -> FakeKeystoneUser {
    let mut u = FakeKeystoneUser::new(ALICE_ID, "alice", "alice-password");
    u.email = Some("alice@example.org".into());
    u.groups = vec!["developers".into(), "ops".into()];
    u
}

/// Dex's documented block (`type: keystone`, no allowedHosts) for `fake`, `config` keys merged in.
fn block(fake: &FakeKeystone, config: Value) -> String {
    let mut c = json!({
        "keystoneHost": fake.base,
        "domain": "default",
        "keystoneUsername": ADMIN_NAME,
        "keystonePassword": ADMIN_PASSWORD,
    });
    for (k, v) in config.as_object().expect("keys").clone() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(&k);
        } else {
            c[k] = v;
        }
    }
    format!("- type: keystone\n  id: keystone\n  name: Keystone\n  config: {}\n", serde_json::to_string(&c).unwrap())
}

fn plugins_dir() -> String {
    format!("plugins:\n  dir: \"{}\"\n", plugin("keystone").parent().unwrap().display())
}

async fn setup(users: Vec<FakeKeystoneUser>, config: Value) -> (FakeKeystone, TestBroker) {
    let fake = FakeKeystone::start(users).await;
    let b = TestBroker::builder().connectors(&block(&fake, config)).extra(&plugins_dir()).start().await;
    (fake, b)
}

/// Posts the form for `username`/`password`; the broker's answer.
async fn submit(b: &TestBroker, username: &str, password: &str) -> (reqwest::Client, reqwest::Response, flow::Pending) {
    let web = browser();
    let (page, pending) = flow::authorize(b, &web, "keystone", SCOPES).await;
    assert_eq!(page.status(), StatusCode::OK, "password form");
    let form = page.text().await.unwrap();
    assert!(form.contains("Username"), "the prompt: {form}");
    let posted = flow::submit_password(b, &web, "keystone", &form, username, password).await;
    (web, posted, pending)
}

async fn login_ok(b: &TestBroker, username: &str, password: &str) -> flow::Tokens {
    let (web, posted, pending) = submit(b, username, password).await;
    let code = flow::finish(b, &web, posted, &pending).await;
    let tokens = flow::exchange(b, &code, &pending).await;
    // What the relying party library accepts is what the claims below say.
    let (sub, email, _) = flow::verify_id_token(b, &tokens, &pending).await;
    assert_eq!(
        (Some(sub.as_str()), email.as_deref()),
        (tokens.claims["sub"].as_str(), tokens.claims["email"].as_str())
    );
    tokens
}

async fn login_refused(b: &TestBroker, username: &str, password: &str) {
    let (_, posted, _) = submit(b, username, password).await;
    assert_eq!(posted.status(), StatusCode::UNAUTHORIZED, "{username:?}: the form again");
    assert!(location(&posted, &b.base).is_none(), "{username:?}: no redirect");
    let html = posted.text().await.unwrap();
    assert!(html.contains("Invalid username or password"), "{username:?}: {html}");
}

#[tokio::test]
async fn a_dex_keystone_block_logs_in_with_groups_and_email() {
    let capture = LogCapture::install(Format::Text);
    let (fake, b) = setup(vec![alice()], json!({})).await;
    let tokens = login_ok(&b, "alice", "alice-password").await;
    let c = &tokens.claims;
    assert_eq!(c["name"], "alice", "the login as typed, as Dex");
    assert_eq!(c["email"], "alice@example.org");
    assert_eq!(c["email_verified"], true);
    assert_eq!(c["groups"], json!(["developers", "ops"]));
    assert_eq!(c["federated_claims"], json!({"connector_id": "keystone", "user_id": ALICE_ID}));
    assert!(tokens.refresh_token().is_some());

    // Dex's wire format: an unscoped password authentication in domain id "default", then the
    // groups and the user with the user's own token.
    let body = &fake.auth_bodies()[0];
    let want = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "alice", "domain": {"id": "default"}, "password": "alice-password"}}}}});
    assert_eq!(body, &want);
    assert_eq!(
        fake.requests(),
        [
            "POST /v3/auth/tokens".to_string(),
            format!("GET /v3/users/{ALICE_ID}/groups"),
            format!("GET /v3/users/{ALICE_ID}")
        ]
    );

    let log = capture.text();
    let line = log.lines().find(|l| l.contains("connector may reach an implied host")).expect("the grant is logged");
    assert!(line.contains(&format!("host={}", fake.base)) && line.contains("keystoneHost"), "{line}");
    for secret in fake.issued_tokens().iter().map(String::as_str).chain(["alice-password", ADMIN_PASSWORD]) {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}

#[tokio::test]
async fn a_domain_name_is_sent_as_a_name_and_without_groups_scope_groups_are_not_read() {
    let mut bob = FakeKeystoneUser::new("c0ffee00c0ffee00c0ffee00c0ffee00", "bob", "bob-password");
    bob.domain_id = ACME_DOMAIN.0.into();
    bob.groups = vec!["acme-staff".into()];
    let (fake, b) = setup(vec![alice(), bob], json!({"domain": ACME_DOMAIN.1})).await;
    let web = browser();
    let (page, pending) = flow::authorize(&b, &web, "keystone", "openid profile email").await;
    let form = page.text().await.unwrap();
    let posted = flow::submit_password(&b, &web, "keystone", &form, "bob", "bob-password").await;
    let code = flow::finish(&b, &web, posted, &pending).await;
    let tokens = flow::exchange(&b, &code, &pending).await;
    assert_eq!(tokens.claims["name"], "bob");
    assert!(tokens.claims.get("email").is_none(), "bob has no email attribute");
    assert!(tokens.claims.get("groups").is_none());
    assert_eq!(fake.auth_bodies()[0]["auth"]["identity"]["password"]["user"]["domain"], json!({"name": "acme"}));
    assert!(!fake.requests().iter().any(|r| r.ends_with("/groups")), "{:?}", fake.requests());
    // alice is in the default domain, not in acme.
    login_refused(&b, "alice", "alice-password").await;
}

#[tokio::test]
async fn wrong_password_unknown_and_disabled_users_show_the_form_again() {
    let mut carol = FakeKeystoneUser::new("ca401ca401ca401ca401ca401ca401ca", "carol", "carol-password");
    carol.enabled = false;
    let (_fake, b) = setup(vec![alice(), carol], json!({})).await;
    login_refused(&b, "alice", "not-her-password").await;
    login_refused(&b, "nobody", "alice-password").await;
    login_refused(&b, "carol", "carol-password").await;
}

#[tokio::test]
async fn refresh_rereads_groups_with_the_admin_token_and_fails_once_the_user_is_disabled_or_deleted() {
    let dave = FakeKeystoneUser::new("da7eda7eda7eda7eda7eda7eda7eda7e", "dave", "dave-password");
    let (fake, b) = setup(vec![alice(), dave], json!({})).await;
    let tokens = login_ok(&b, "alice", "alice-password").await;
    fake.update_user(ALICE_ID, |u| {
        u.groups = vec!["admins".into()];
        u.email = Some("alice@corp.example.org".into());
    });
    let refreshed = flow::refresh(&b, tokens.refresh_token().unwrap()).await;
    assert_eq!(refreshed.status(), StatusCode::OK, "refresh");
    let json: Value = refreshed.json().await.unwrap();
    let claims = flow::claims(json["id_token"].as_str().unwrap());
    assert_eq!(claims["groups"], json!(["admins"]), "groups re-read");
    assert_eq!(claims["email"], "alice@corp.example.org");
    assert_eq!(claims["name"], "alice");
    let last_auth = fake.auth_bodies().last().cloned().unwrap();
    assert_eq!(last_auth["auth"]["identity"]["password"]["user"]["name"], ADMIN_NAME, "the admin account's token");

    fake.update_user(ALICE_ID, |u| u.enabled = false);
    let refused = flow::refresh(&b, json["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(refused.json::<Value>().await.unwrap()["error"], "invalid_grant");

    let tokens = login_ok(&b, "dave", "dave-password").await;
    fake.delete_user("da7eda7eda7eda7eda7eda7eda7eda7e");
    let refused = flow::refresh(&b, tokens.refresh_token().unwrap()).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(refused.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn keystone_failing_fails_the_login_and_keeps_the_refresh_token() {
    let (fake, b) = setup(vec![alice()], json!({})).await;
    let tokens = login_ok(&b, "alice", "alice-password").await;

    fake.set_mode(KeystoneMode::ServerError(500));
    let (_, posted, _) = submit(&b, "alice", "alice-password").await;
    assert_eq!(posted.status(), StatusCode::BAD_GATEWAY, "a 500 is an error page, not a re-prompt");
    let refresh = tokens.refresh_token().unwrap();
    let outage = flow::refresh(&b, refresh).await;
    assert_eq!(outage.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(outage.json::<Value>().await.unwrap()["error"], "temporarily_unavailable");

    fake.set_mode(KeystoneMode::ForbidGroupList);
    let (_, posted, _) = submit(&b, "alice", "alice-password").await;
    assert_eq!(posted.status(), StatusCode::BAD_GATEWAY, "a refused group list fails the login, not zero groups");

    fake.set_mode(KeystoneMode::Normal);
    assert_eq!(flow::refresh(&b, refresh).await.status(), StatusCode::OK, "the refresh token survived the outage");
}

#[tokio::test]
async fn bad_admin_credentials_are_an_upstream_error_on_refresh() {
    let (_fake, b) = setup(vec![alice()], json!({"keystonePassword": "wrong"})).await;
    let tokens = login_ok(&b, "alice", "alice-password").await;
    let refused = flow::refresh(&b, tokens.refresh_token().unwrap()).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE, "the operator's mistake logs nobody out");
}

#[tokio::test]
async fn without_admin_credentials_there_is_no_refresh_token() {
    let (_fake, b) = setup(vec![alice()], json!({"keystoneUsername": null, "keystonePassword": null})).await;
    let tokens = login_ok(&b, "alice", "alice-password").await;
    assert_eq!(tokens.claims["groups"], json!(["developers", "ops"]));
    assert!(tokens.refresh_token().is_none(), "{}", tokens.json);
}

#[tokio::test]
async fn config_errors_name_the_key() {
    let cases = [
        (
            json!({"keystoneHost": "http://127.0.0.1:5000", "domain": "default", "project": "demo"}),
            "unknown field `project`",
        ),
        (json!({"keystoneHost": "http://127.0.0.1:5000"}), "domain is required"),
        (json!({"keystoneHost": "http://127.0.0.1:5000/v3", "domain": "default"}), "without /v3"),
        (
            json!({"keystoneHost": "http://127.0.0.1:5000", "domain": "d", "keystoneUsername": "a"}),
            "keystonePassword is required",
        ),
    ];
    let engine = engine();
    for (config, want) in cases {
        let errors =
            Registry::load(&engine, &[spec("keystone", plugin("keystone"), config.clone())], None).await.unwrap_err();
        let message = format!("{errors:?}");
        assert!(message.contains(want), "{config}: {message}");
        let refusal = errors.first().and_then(|e| match e {
            SpecError::Plugin(p) => p.refusal().cloned(),
            _ => None,
        });
        assert!(matches!(refusal, Some(Refusal::Config(_))), "{config}: {message}");
    }
}
