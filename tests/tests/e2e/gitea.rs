//! The Gitea connector end to end, from Dex's documented block with no `allowedHosts`
//! (`baseURL` implies the fake's origin): teams paged until an empty page as `org` and
//! `org:team` groups, `orgs` with and without teams, `useLoginAsID`, refresh, and failures.

use portcullis_tests::TestBroker;
use portcullis_tests::gitea_fake::{CLIENT_ID, CLIENT_SECRET, FakeGitea, FakeUser};
use portcullis_tests::oauth_fake::{dex_broker, failed_login, load_error, refresh, tokens};
use reqwest::StatusCode;
use serde_json::json;

const ALL_SCOPES: &str = "openid profile email groups offline_access federated:id";

fn jane() -> FakeUser {
    let teams = [("acme", "Owners"), ("acme", "devs"), ("side", "ops"), ("globex", "qa"), ("globex", "devs")];
    FakeUser {
        id: 3,
        login: "jdoe".into(),
        full_name: "Jane Doe".into(),
        email: "jane@example.org".into(),
        teams: teams.iter().map(|(o, t)| (o.to_string(), t.to_string())).collect(),
    }
}

fn block(fake: &FakeGitea, issuer: &str, more: &str) -> String {
    format!(
        r#"
- type: gitea
  # Required field for connector id.
  id: gitea
  # Required field for connector name.
  name: Gitea
  config:
    # Credentials can be string literals or pulled from the environment.
    clientID: {CLIENT_ID}
    clientSecret: {CLIENT_SECRET}
    redirectURI: {issuer}/callback
    # optional, default = https://gitea.com
    baseURL: {base}
{more}"#,
        base = fake.base
    )
}

async fn setup(user: FakeUser, max_items: usize, more: &str) -> (FakeGitea, TestBroker) {
    let fake = FakeGitea::start(user, max_items).await;
    let b = dex_broker(|issuer| block(&fake, issuer, more)).await;
    (fake, b)
}

#[tokio::test]
async fn load_all_groups_pages_through_every_team() {
    let (fake, b) = setup(jane(), 2, "    loadAllGroups: true\n").await;
    let t = tokens(&b, &fake.base, "gitea", ALL_SCOPES).await;
    assert_eq!(fake.oauth.authorize_param("scope"), None, "Dex sends no scope to Gitea");
    let c = &t.claims;
    assert_eq!(
        c["groups"],
        json!(["acme", "acme:Owners", "acme:devs", "side", "side:ops", "globex", "globex:qa", "globex:devs"])
    );
    assert_eq!(c["federated_claims"]["user_id"], "3");
    assert_eq!((c["name"].as_str(), c["preferred_username"].as_str()), (Some("Jane Doe"), Some("jdoe")));
    assert_eq!(c["email"], "jane@example.org");
    // The server caps limit=20 at its MAX_RESPONSE_ITEMS (2): pages 1..3 hold teams, page 4 is empty.
    let pages: Vec<String> = fake.api_requests().into_iter().filter(|r| r.contains("/teams")).collect();
    assert_eq!(pages.len(), 4, "{pages:?}");
}

#[tokio::test]
async fn orgs_with_teams_admit_members_of_those_teams_only() {
    let more = "    useLoginAsID: true\n    orgs:\n    - name: acme\n      teams: [devs, qa]\n    - name: side\n";
    let (fake, b) = setup(jane(), 50, more).await;
    let t = tokens(&b, &fake.base, "gitea", ALL_SCOPES).await;
    assert_eq!(t.claims["groups"], json!(["acme", "acme:devs", "side"]));
    assert_eq!(t.claims["federated_claims"]["user_id"], "jdoe");

    // In acme only through Owners, which the config does not list: refused (Dex would admit).
    let mut user = jane();
    user.teams = vec![("acme".into(), "Owners".into())];
    let (fake, b) = setup(user, 50, more).await;
    let (status, page) = failed_login(&b, &fake.base, "gitea", "openid").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Gitea user jdoe is not a member of the required organizations or teams"), "{page}");
}

#[tokio::test]
async fn refresh_reuses_the_token_then_redeems_the_refresh_token() {
    let (fake, b) = setup(jane(), 50, "    loadAllGroups: true\n").await;
    fake.oauth.set_shape(|s| s.expires_in = Some(5));
    let t = tokens(&b, &fake.base, "gitea", ALL_SCOPES).await;
    fake.update_user(|u| u.teams.truncate(1));
    let (status, json) = refresh(&b, t.refresh_token().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let claims = portcullis_tests::flow::claims(json["id_token"].as_str().unwrap());
    assert_eq!(claims["groups"], json!(["acme", "acme:Owners"]));
    let grants: Vec<String> = fake.oauth.token_requests().into_iter().map(|(g, _)| g).collect();
    assert_eq!(grants, ["authorization_code", "refresh_token"]);

    fake.fail_api(Some(500));
    let next = json["refresh_token"].as_str().unwrap();
    let (status, _) = refresh(&b, next).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "a Gitea outage is retryable");
    fake.fail_api(None);
    fake.oauth.revoke_all();
    let (status, body) = refresh(&b, next).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
}

#[tokio::test]
async fn gitea_failures_fail_the_login() {
    let (fake, b) = setup(jane(), 50, "").await;
    fake.fail_api(Some(500));
    let (status, _) = failed_login(&b, &fake.base, "gitea", "openid").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    fake.fail_api(None);
    fake.oauth.fail_tokens(400, json!({"error": "invalid_grant", "error_description": "invalid code"}));
    let (status, page) = failed_login(&b, &fake.base, "gitea", "openid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("Gitea refused the login code"), "{page}");
}

#[tokio::test]
async fn unknown_keys_are_refused_naming_them() {
    let fake = FakeGitea::start(jane(), 50).await;
    for (more, expected) in [
        ("    org: acme\n", "unknown field `org`"),
        ("    orgs:\n    - name: acme\n      team: [x]\n", "unknown field `team`"),
    ] {
        let err = load_error(&block(&fake, "http://127.0.0.1:1/dex", more)).await;
        assert!(err.contains(expected), "{more}: {err}");
    }
}
