//! The Atlassian Crowd connector end to end against a fake Crowd (tests/src/crowd_fake.rs):
//! Dex's config block without allowedHosts, nested groups and the `groups` restriction,
//! `preferredUsernameField`, refresh, Crowd's refusals and failures.

use portcullis::connectors::{Refusal, Registry, SpecError};
use portcullis_tests::crowd_fake::{APP_NAME, APP_PASSWORD, CrowdMode, FakeCrowd, FakeCrowdUser};
use portcullis_tests::logs::{Format, LogCapture};
use portcullis_tests::{TestBroker, browser, engine, flow, location, plugin, spec};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SCOPES: &str = "openid profile email groups offline_access federated:id";

fn users() -> Vec<FakeCrowdUser> {
    let mut alice = FakeCrowdUser::new("alice", "4a1b2c3d:alice", "alice-password");
    alice.display_name = "Alice Liddell".into();
    alice.groups = vec!["crowd-users".into(), "platform".into()];
    let mut odd = FakeCrowdUser::new("o'hara & co+1", "77aa:odd", "odd-password");
    odd.groups = vec!["crowd-users".into()];
    let mut zed = FakeCrowdUser::new("zed", "99ff:zed", "zed-password");
    zed.groups = vec!["contractors".into()];
    vec![alice, odd, zed]
}

/// platform ⊂ engineering ⊂ staff: alice is a nested member of all three.
const HIERARCHY: &[(&str, &str)] = &[("platform", "engineering"), ("engineering", "staff")];

/// Dex's documented block (`type: atlassian-crowd`, no allowedHosts), `config` keys merged in.
fn block(fake: &FakeCrowd, config: Value) -> String {
    let mut c = json!({
        "baseURL": fake.base_url(),
        "clientID": APP_NAME,
        "clientSecret": APP_PASSWORD,
        "usernamePrompt": "Crowd login",
        "preferredUsernameField": "name",
    });
    for (k, v) in config.as_object().expect("keys").clone() {
        c[k] = v;
    }
    format!("- type: atlassian-crowd\n  id: crowd\n  name: Crowd\n  config: {}\n", serde_json::to_string(&c).unwrap())
}

async fn setup(config: Value) -> (FakeCrowd, TestBroker) {
    let fake = FakeCrowd::start(users(), HIERARCHY).await;
    let dir = format!("plugins:\n  dir: \"{}\"\n", plugin("atlassian-crowd").parent().unwrap().display());
    let b = TestBroker::builder().connectors(&block(&fake, config)).extra(&dir).start().await;
    (fake, b)
}

async fn submit(
    b: &TestBroker,
    scopes: &str,
    username: &str,
    password: &str,
) -> (reqwest::Client, reqwest::Response, flow::Pending) {
    let web = browser();
    let (page, pending) = flow::authorize(b, &web, "crowd", scopes).await;
    assert_eq!(page.status(), StatusCode::OK, "password form");
    let form = page.text().await.unwrap();
    assert!(form.contains("Crowd login"), "usernamePrompt labels the form");
    let posted = flow::submit_password(b, &web, "crowd", &form, username, password).await;
    (web, posted, pending)
}

async fn login_ok(b: &TestBroker, scopes: &str, username: &str, password: &str) -> flow::Tokens {
    let (web, posted, pending) = submit(b, scopes, username, password).await;
    let code = flow::finish(b, &web, posted, &pending).await;
    let tokens = flow::exchange(b, &code, &pending).await;
    // What the relying party library accepts is what the claims below say.
    let (sub, _, preferred) = flow::verify_id_token(b, &tokens, &pending).await;
    assert_eq!(Some(sub.as_str()), tokens.claims["sub"].as_str());
    assert_eq!(preferred.as_deref(), tokens.claims["preferred_username"].as_str());
    tokens
}

/// The broker's page for a login that must not succeed: its status and text.
async fn login_fails(b: &TestBroker, username: &str, password: &str) -> (StatusCode, String) {
    let (_, posted, _) = submit(b, SCOPES, username, password).await;
    assert!(location(&posted, &b.base).is_none(), "{username:?}: no redirect");
    (posted.status(), posted.text().await.unwrap())
}

#[tokio::test]
async fn a_dex_crowd_block_logs_in_with_nested_groups() {
    let capture = LogCapture::install(Format::Text);
    let (fake, b) = setup(json!({})).await;
    let tokens = login_ok(&b, SCOPES, "alice", "alice-password").await;
    let c = &tokens.claims;
    assert_eq!(c["name"], "alice");
    assert_eq!(c["preferred_username"], "alice", "preferredUsernameField: name");
    assert_eq!(c["email"], "alice@example.org");
    assert_eq!(c["email_verified"], true);
    assert_eq!(c["groups"], json!(["crowd-users", "platform", "engineering", "staff"]), "nested memberships");
    assert_eq!(c["federated_claims"], json!({"connector_id": "crowd", "user_id": "4a1b2c3d:alice"}));
    assert!(tokens.refresh_token().is_some());
    assert_eq!(fake.sessions()[0], json!({"username": "alice", "password": "alice-password"}));
    assert_eq!(
        fake.requests(),
        [
            "POST /session?",
            "GET /user?username=alice",
            "GET /user/group/nested?username=alice&start-index=0&max-results=1000"
        ]
    );
    let log = capture.text();
    assert!(log.contains("reason=implied by config key baseURL"), "the implied host is logged");
    assert!(!log.contains(APP_PASSWORD) && !log.contains("alice-password"), "a secret reached the log");
}

#[tokio::test]
async fn required_groups_restrict_every_login_and_filter_the_claim() {
    let (fake, b) = setup(json!({"groups": ["staff", "crowd-users"], "preferredUsernameField": "email"})).await;
    let tokens = login_ok(&b, SCOPES, "alice", "alice-password").await;
    assert_eq!(tokens.claims["groups"], json!(["crowd-users", "staff"]), "only the required groups, in Crowd's order");
    assert_eq!(tokens.claims["preferred_username"], "alice@example.org");

    // zed is in none of them: refused, with or without the groups scope (Dex checks only with it).
    let (status, page) = login_fails(&b, "zed", "zed-password").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("not in any of the Crowd groups"), "{page}");
    let (web, posted, _) = submit(&b, "openid email", "zed", "zed-password").await;
    drop(web);
    assert_eq!(posted.status(), StatusCode::FORBIDDEN);
    // Without the groups scope, alice still gets in, and no groups claim.
    let tokens = login_ok(&b, "openid email", "alice", "alice-password").await;
    assert!(tokens.claims.get("groups").is_none());
    assert!(fake.requests().iter().filter(|r| r.starts_with("GET /user/group/nested")).count() >= 4);
}

#[tokio::test]
async fn a_username_with_query_characters_is_encoded() {
    let (fake, b) = setup(json!({"preferredUsernameField": "key"})).await;
    let tokens = login_ok(&b, SCOPES, "o'hara & co+1", "odd-password").await;
    assert_eq!(tokens.claims["name"], "o'hara & co+1");
    assert_eq!(tokens.claims["preferred_username"], "77aa:odd");
    assert_eq!(tokens.claims["groups"], json!(["crowd-users"]));
    let requests = fake.requests();
    assert!(requests.contains(&"GET /user?username=o%27hara+%26+co%2B1".to_string()), "{requests:?}");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_show_the_form_again_and_crowds_refusals_are_named() {
    let (fake, b) = setup(json!({})).await;
    for (username, password) in [("alice", "wrong"), ("nobody", "alice-password")] {
        let (status, page) = login_fails(&b, username, password).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{username}: the form again");
        assert!(page.contains("Invalid username or password"), "{page}");
    }
    let requests_before = fake.requests().len();
    let (status, _) = login_fails(&b, "alice", "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(fake.requests().len(), requests_before, "an empty password is not sent to Crowd");

    // (change, the page's message) — add a row to extend.
    type Change = fn(&mut FakeCrowdUser);
    let cases: [(Change, &str); 3] = [
        (|u| u.active = false, "your Crowd account is inactive"),
        (|u| u.expired_credential = true, "your Crowd password has expired"),
        (|u| u.app_access = false, "may not use this application"),
    ];
    for (change, message) in cases {
        fake.update_user("zed", change);
        let (status, page) = login_fails(&b, "zed", "zed-password").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{message}");
        assert!(page.contains(message), "{message}: {page}");
        fake.update_user("zed", |u| *u = users().pop().unwrap());
    }
}

#[tokio::test]
async fn crowd_failing_is_an_error_page() {
    let (fake, b) = setup(json!({})).await;
    for mode in [CrowdMode::AddressNotAllowed, CrowdMode::ServerError(500), CrowdMode::NotJson] {
        fake.set_mode(mode);
        let (status, page) = login_fails(&b, "alice", "alice-password").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{mode:?}: {page}");
    }
    // Wrong application credentials: Crowd's plain-text 401.
    fake.set_mode(CrowdMode::Normal);
    let (_fake2, b) = setup(json!({"clientSecret": "not-the-app-password"})).await;
    let (status, _) = login_fails(&b, "alice", "alice-password").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn refresh_rereads_groups_and_fails_once_the_user_is_inactive_or_gone() {
    let (fake, b) = setup(json!({})).await;
    let tokens = login_ok(&b, SCOPES, "alice", "alice-password").await;
    fake.update_user("alice", |u| {
        u.groups = vec!["crowd-users".into()];
        u.email = "alice@corp.example.org".into();
    });
    let refreshed = flow::refresh(&b, tokens.refresh_token().unwrap()).await;
    assert_eq!(refreshed.status(), StatusCode::OK, "refresh");
    let json: Value = refreshed.json().await.unwrap();
    let claims = flow::claims(json["id_token"].as_str().unwrap());
    assert_eq!(claims["groups"], json!(["crowd-users"]));
    assert_eq!(claims["email"], "alice@corp.example.org");
    assert_eq!(fake.sessions().last().unwrap(), &json!({"username": "alice"}), "a session without the password");
    assert!(fake.requests().contains(&"POST /session?validate-password=false".to_string()));

    // An outage keeps the refresh token.
    fake.set_mode(CrowdMode::ServerError(503));
    let refresh = json["refresh_token"].as_str().unwrap();
    assert_eq!(flow::refresh(&b, refresh).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    fake.set_mode(CrowdMode::Normal);
    let refreshed = flow::refresh(&b, refresh).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let json: Value = refreshed.json().await.unwrap();

    fake.update_user("alice", |u| u.active = false);
    let refused = flow::refresh(&b, json["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(refused.json::<Value>().await.unwrap()["error"], "invalid_grant");

    let tokens = login_ok(&b, SCOPES, "zed", "zed-password").await;
    fake.delete_user("zed");
    let refused = flow::refresh(&b, tokens.refresh_token().unwrap()).await;
    assert_eq!(refused.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn a_large_group_list_is_read_page_by_page() {
    let mut many = FakeCrowdUser::new("many", "m:1", "many-password");
    many.groups = (0..2345).map(|i| format!("group-{i:04}")).collect();
    let fake = FakeCrowd::start(vec![many], &[]).await;
    let mut s = spec(
        "crowd",
        plugin("atlassian-crowd"),
        json!({
            "baseURL": fake.base_url(), "clientID": APP_NAME, "clientSecret": APP_PASSWORD
        }),
    );
    s.allowed_hosts = Some(vec![fake.base.clone()]);
    let registry = Registry::load(&engine(), &[s], None).await.unwrap();
    let all = portcullis::connectors::Scopes { offline_access: false, groups: true };
    let identity = registry.get("crowd").unwrap().login(all, "many", "many-password").await.unwrap().unwrap();
    assert_eq!(identity.groups.len(), 2345);
    assert_eq!(identity.groups.last().map(String::as_str), Some("group-2344"));
    let pages: Vec<String> = fake.requests().into_iter().filter(|r| r.contains("nested")).collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages[2].ends_with("start-index=2000&max-results=1000"), "{pages:?}");
}

#[tokio::test]
async fn config_errors_name_the_key() {
    let cases = [
        (
            json!({"baseURL": "https://crowd.example/crowd", "clientID": "a", "clientSecret": "b", "groupz": []}),
            "unknown field `groupz`",
        ),
        (json!({"clientID": "a", "clientSecret": "b"}), "baseURL is required"),
        (json!({"baseURL": "https://crowd.example/crowd", "clientSecret": "b"}), "clientID is required"),
        (
            json!({"baseURL": "https://crowd.example/crowd", "clientID": "a", "clientSecret": "b", "preferredUsernameField": "nick"}),
            "preferredUsernameField",
        ),
    ];
    let engine = engine();
    for (config, want) in cases {
        let errors = Registry::load(&engine, &[spec("crowd", plugin("atlassian-crowd"), config.clone())], None)
            .await
            .unwrap_err();
        let message = format!("{errors:?}");
        assert!(message.contains(want), "{config}: {message}");
        let refusal = errors.first().and_then(|e| match e {
            SpecError::Plugin(p) => p.refusal().cloned(),
            _ => None,
        });
        assert!(matches!(refusal, Some(Refusal::Config(_))), "{config}: {message}");
    }
}
