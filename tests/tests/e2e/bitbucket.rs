//! The Bitbucket Cloud connector end to end, from Dex's documented block plus Portcullis's
//! `baseURL`/`apiURL` at the fake (no `allowedHosts`: they imply its origin): the primary
//! confirmed email across `next` pages, workspaces as groups with their permissions, required
//! `teams`, refresh, and Bitbucket's failures.

use portcullis_tests::TestBroker;
use portcullis_tests::bitbucket_fake::{ApiMode, CLIENT_ID, CLIENT_SECRET, FakeBitbucket, FakeUser};
use portcullis_tests::oauth_fake::{dex_broker, failed_login, load_error, refresh, tokens};
use reqwest::StatusCode;
use serde_json::json;

const ALL_SCOPES: &str = "openid profile email groups offline_access federated:id";

fn jane() -> FakeUser {
    FakeUser {
        uuid: "{0b6f3c1e-1111-2222-3333-444455556666}".into(),
        username: "jdoe".into(),
        display_name: "Jane Doe".into(),
        emails: vec![
            ("old@example.org".into(), false, true),
            ("jane@unconfirmed.example".into(), true, false),
            ("jane@example.org".into(), true, true),
        ],
        workspaces: vec![
            ("acme".into(), "owner".into()),
            ("side".into(), String::new()),
            ("globex".into(), "member".into()),
        ],
    }
}

fn block(fake: &FakeBitbucket, issuer: &str, more: &str) -> String {
    format!(
        r#"
- type: bitbucket-cloud
  # Required field for connector id.
  id: bitbucket-cloud
  # Required field for connector name.
  name: Bitbucket Cloud
  config:
    # Credentials can be string literals or pulled from the environment.
    clientID: {CLIENT_ID}
    clientSecret: {CLIENT_SECRET}
    redirectURI: {issuer}/callback
    baseURL: {base}
    apiURL: {base}/2.0
{more}"#,
        base = fake.base
    )
}

async fn setup(user: FakeUser, page_len: usize, more: &str) -> (FakeBitbucket, TestBroker) {
    let fake = FakeBitbucket::start(user, page_len).await;
    let b = dex_broker(|issuer| {
        // Bitbucket sends the user to the consumer's callback URL, as registered.
        fake.oauth.set_default_redirect(&format!("{issuer}/callback"));
        block(&fake, issuer, more)
    })
    .await;
    (fake, b)
}

#[tokio::test]
async fn login_finds_the_primary_confirmed_email_and_workspaces() {
    let (fake, b) = setup(jane(), 1, "    getWorkspacePermissions: true\n").await;
    let t = tokens(&b, &fake.base, "bitbucket-cloud", ALL_SCOPES).await;

    assert_eq!(fake.oauth.authorize_param("scope").as_deref(), Some("account email"));
    assert_eq!(fake.oauth.authorize_param("redirect_uri"), None, "never sent");
    let c = &t.claims;
    assert_eq!(c["federated_claims"]["user_id"], "{0b6f3c1e-1111-2222-3333-444455556666}");
    assert_eq!((c["name"].as_str(), c["preferred_username"].as_str()), (Some("jdoe"), Some("jdoe")));
    assert_eq!((c["email"].as_str(), c["email_verified"].as_bool()), (Some("jane@example.org"), Some(true)));
    // side's permission call answers 403: that entry is skipped, the workspace stays.
    assert_eq!(c["groups"], json!(["acme", "side", "globex", "acme:owner", "globex:member"]));
    let api = fake.api_requests();
    assert!(api.contains(&"/2.0/user/emails?page=3".to_string()), "third page of emails: {api:?}");
    assert!(api.contains(&"/2.0/user/workspaces?page=3".to_string()), "{api:?}");
}

#[tokio::test]
async fn teams_are_required_and_filter_the_groups() {
    let (fake, b) = setup(jane(), 10, "    teams: [globex, initech]\n").await;
    let t = tokens(&b, &fake.base, "bitbucket-cloud", "openid groups").await;
    assert_eq!(t.claims["groups"], json!(["globex"]));

    let (fake, b) = setup(jane(), 10, "    teams: [initech]\n").await;
    let (status, page) = failed_login(&b, &fake.base, "bitbucket-cloud", "openid").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Bitbucket user jdoe is not a member of the required workspaces (initech)"), "{page}");
}

#[tokio::test]
async fn no_confirmed_primary_email_and_bitbucket_failures_fail_the_login() {
    let mut user = jane();
    user.emails.pop();
    let (fake, b) = setup(user, 10, "").await;
    let (status, page) = failed_login(&b, &fake.base, "bitbucket-cloud", "openid").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("has no confirmed primary email address"), "{page}");

    for mode in [ApiMode::RateLimited, ApiMode::ServerError(500)] {
        let (fake, b) = setup(jane(), 10, "").await;
        fake.set_mode(mode);
        let (status, _) = failed_login(&b, &fake.base, "bitbucket-cloud", "openid").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{mode:?}");
    }
}

#[tokio::test]
async fn refresh_rereads_workspaces_and_ends_when_the_grant_is_gone() {
    let (fake, b) = setup(jane(), 10, "").await;
    fake.oauth.set_shape(|s| s.expires_in = Some(5));
    let t = tokens(&b, &fake.base, "bitbucket-cloud", ALL_SCOPES).await;
    fake.update_user(|u| u.workspaces.truncate(1));
    let (status, json) = refresh(&b, t.refresh_token().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let claims = portcullis_tests::flow::claims(json["id_token"].as_str().unwrap());
    assert_eq!(claims["groups"], json!(["acme"]));

    fake.set_mode(ApiMode::RateLimited);
    let next = json["refresh_token"].as_str().unwrap();
    let (status, _) = refresh(&b, next).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "rate limited: retryable");
    fake.set_mode(ApiMode::Normal);
    fake.oauth.fail_tokens(400, json!({"error": "invalid_grant", "error_description": "Invalid refresh_token"}));
    let (status, body) = refresh(&b, next).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
}

/// Dex's example sets `includeTeamGroups: true`, a no-op in Dex (with a warning) since Atlassian
/// removed the API it read: it loads, and the login is the one without it.
#[tokio::test]
async fn include_team_groups_is_the_no_op_it_is_in_dex() {
    let (fake, b) = setup(jane(), 10, "    includeTeamGroups: true\n").await;
    let t = tokens(&b, &fake.base, "bitbucket-cloud", ALL_SCOPES).await;
    assert_eq!(t.claims["groups"], json!(["acme", "side", "globex"]), "{}", t.claims);
}

#[tokio::test]
async fn unknown_and_unsupported_keys_are_refused_naming_them() {
    let fake = FakeBitbucket::start(jane(), 10).await;
    for (more, expected) in [
        (
            "    includeTeamGroups: yes please\n",
            "includeTeamGroups: invalid type: string \"yes please\", expected a boolean",
        ),
        ("    team: [acme]\n", "unknown field `team`"),
    ] {
        let err = load_error(&block(&fake, "http://127.0.0.1:1/dex", more)).await;
        assert!(err.contains(expected), "{more}: {err}");
    }
}
