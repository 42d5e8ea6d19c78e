//! The GitLab connector end to end, from Dex's documented block with no `allowedHosts` (the
//! broker implies `baseURL`'s origin): a browser goes broker → fake GitLab → broker, and the ID
//! token, the pages and the refresh answers say exactly what GitLab's data and failures imply.

use portcullis_tests::gitlab_fake::{ApiMode, CLIENT_ID, CLIENT_SECRET, FakeGitLab, FakeGroup, FakeUser};
use portcullis_tests::logs::{Format, LogCapture};
use portcullis_tests::oauth_fake::{dex_broker, failed_login, refresh, tokens};
use portcullis_tests::{TestBroker, base_config, config_from_yaml, engine};
use reqwest::StatusCode;
use serde_json::json;

const ALL_SCOPES: &str = "openid profile email groups offline_access federated:id";

fn jane() -> FakeUser {
    FakeUser {
        id: 4711,
        username: "jdoe".into(),
        name: "Jane Doe".into(),
        email: "jane@example.org".into(),
        groups: vec![
            FakeGroup::new(12, "acme", true, Some(50)),
            FakeGroup::new(13, "acme/platform", true, Some(30)),
            FakeGroup::new(14, "ops", true, Some(20)),
        ],
    }
}

/// Dex's GitLab block (its docs' keys), `baseURL` at the fake; `more` is YAML under `config:`.
fn block(fake: &FakeGitLab, issuer: &str, more: &str) -> String {
    format!(
        r#"
- type: gitlab
  # Required field for connector id.
  id: gitlab
  # Required field for connector name.
  name: GitLab
  config:
    # optional, default = https://gitlab.com
    baseURL: {base}
    # Credentials can be string literals or pulled from the environment.
    clientID: {CLIENT_ID}
    clientSecret: {CLIENT_SECRET}
    redirectURI: {issuer}/callback
{more}"#,
        base = fake.base
    )
}

async fn setup(user: FakeUser, more: &str) -> (FakeGitLab, TestBroker) {
    let fake = FakeGitLab::start(user).await;
    let b = dex_broker(|issuer| block(&fake, issuer, more)).await;
    (fake, b)
}

#[tokio::test]
async fn login_reads_the_user_and_the_groups_from_userinfo() {
    let (fake, b) = setup(jane(), "    groups:\n    - acme/platform\n    - ops\n    - elsewhere\n").await;
    let t = tokens(&b, &fake.base, "gitlab", ALL_SCOPES).await;

    assert_eq!(fake.oauth.authorize_param("scope").as_deref(), Some("read_user openid"));
    assert_eq!(fake.oauth.authorize_param("redirect_uri"), Some(b.url("/callback")));
    assert_eq!(fake.oauth.authorize_param("code_challenge_method").as_deref(), Some("S256"));
    let c = &t.claims;
    assert_eq!(c["groups"], json!(["acme/platform", "ops"]), "filtered by groups, GitLab's order");
    assert_eq!(c["federated_claims"], json!({"connector_id": "gitlab", "user_id": "4711"}));
    assert_eq!(c["name"], "Jane Doe");
    assert_eq!(c["preferred_username"], "jdoe");
    assert_eq!(c["email"], "jane@example.org");
    assert_eq!(c["email_verified"], true);
    assert!(t.refresh_token().is_some());
    assert_eq!(fake.api_requests(), ["/api/v4/user", "/oauth/userinfo"]);
}

#[tokio::test]
async fn use_login_as_id_and_roles_from_get_groups_permission() {
    let (fake, b) = setup(jane(), "    useLoginAsID: true\n    getGroupsPermission: true\n").await;
    let t = tokens(&b, &fake.base, "gitlab", ALL_SCOPES).await;
    assert_eq!(t.claims["federated_claims"]["user_id"], "jdoe");
    // owner of acme covers acme/platform; ops has no role claim (reporter is not in userinfo).
    assert_eq!(t.claims["groups"], json!(["acme", "acme/platform", "ops", "acme:owner", "acme/platform:owner"]));
}

#[tokio::test]
async fn inherited_groups_page_through_the_groups_api_and_ask_members_for_roles() {
    let mut user = jane();
    // 100 groups: exactly one full page, so page 2 is asked for (and is empty), as Dex does.
    user.groups = (0..100).map(|i| FakeGroup::new(100 + i, &format!("acme/team-{i:03}"), false, None)).collect();
    user.groups[0] = FakeGroup::new(100, "acme", true, Some(50));
    user.groups[1] = FakeGroup::new(101, "shared/infra", false, Some(40));
    let (fake, b) = setup(user, "    inheritedGroups: true\n    getGroupsPermission: true\n").await;
    let t = tokens(&b, &fake.base, "gitlab", ALL_SCOPES).await;

    assert_eq!(fake.oauth.authorize_param("scope").as_deref(), Some("read_user openid read_api"));
    let groups: Vec<String> = serde_json::from_value(t.claims["groups"].clone()).unwrap();
    assert_eq!(groups.len(), 100 + 100, "every group, each with its role: {groups:?}");
    assert_eq!(&groups[..2], ["acme", "shared/infra"]);
    assert!(groups.contains(&"acme/team-050:owner".to_string()), "from acme's owner claim");
    assert!(groups.contains(&"shared/infra:maintainer".to_string()), "from /members/all/");
    let api = fake.api_requests();
    assert!(api.contains(&"/api/v4/groups?all_available=false&page=2&per_page=100".to_string()), "{api:?}");
    assert!(api.contains(&"/api/v4/groups/101/members/all/4711".to_string()));
    assert!(!api.iter().any(|r| r.contains("page=3")));
}

#[tokio::test]
async fn a_user_outside_the_required_groups_is_refused() {
    let (fake, b) = setup(jane(), "    groups: [security]\n").await;
    let (status, page) = failed_login(&b, &fake.base, "gitlab", "openid").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("GitLab user jdoe is not in any of the required groups (security)"), "{page}");
}

#[tokio::test]
async fn upstream_errors_fail_the_login_naming_the_cause() {
    let (fake, b) = setup(jane(), "").await;
    fake.oauth.decline("access_denied");
    let (status, page) = failed_login(&b, &fake.base, "gitlab", "openid").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("GitLab denied the login (access_denied"), "{page}");

    let (fake, b) = setup(jane(), "").await;
    fake.oauth.fail_tokens(
        400,
        json!({"error": "invalid_grant", "error_description": "The provided authorization grant is invalid."}),
    );
    let (status, page) = failed_login(&b, &fake.base, "gitlab", "openid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("GitLab refused the login code as invalid, expired or already used"), "{page}");

    for mode in [ApiMode::RateLimited, ApiMode::ServerError(502)] {
        let (fake, b) = setup(jane(), "").await;
        fake.set_mode(mode);
        let (status, _) = failed_login(&b, &fake.base, "gitlab", "openid").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{mode:?}");
    }
}

#[tokio::test]
async fn refresh_uses_the_single_use_refresh_token_and_rereads_groups() {
    let capture = LogCapture::install(Format::Text);
    let (fake, b) = setup(jane(), "").await;
    let t = tokens(&b, &fake.base, "gitlab", ALL_SCOPES).await;
    assert_eq!(t.claims["groups"], json!(["acme", "acme/platform", "ops"]));
    // A live access token is reused: no token request.
    let (status, json) = refresh(&b, t.refresh_token().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(fake.oauth.token_requests().len(), 1);

    // Tokens that expire at once: each refresh redeems the (single-use) refresh token.
    let (fake, b) = setup(jane(), "").await;
    fake.oauth.set_shape(|s| s.expires_in = Some(5));
    let t = tokens(&b, &fake.base, "gitlab", ALL_SCOPES).await;

    fake.update_user(|u| {
        u.name = "Jane Renamed".into();
        u.groups.truncate(1);
    });
    let (status, json) = refresh(&b, t.refresh_token().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let claims = portcullis_tests::flow::claims(json["id_token"].as_str().unwrap());
    assert_eq!(claims["groups"], json!(["acme"]));
    assert_eq!(claims["name"], "Jane Renamed");
    assert_eq!(claims["sub"], t.claims["sub"]);
    let grants: Vec<String> = fake.oauth.token_requests().into_iter().map(|(g, _)| g).collect();
    assert_eq!(grants, ["authorization_code", "refresh_token"]);

    // GitLab's token endpoint fails: retryable, the client keeps its token.
    let next = json["refresh_token"].as_str().unwrap();
    fake.oauth.fail_tokens(503, json!({"message": "503 Service Unavailable"}));
    let (status, body) = refresh(&b, next).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("temporarily_unavailable")));
    fake.oauth.clear_token_failure();
    let (status, json) = refresh(&b, next).await;
    assert_eq!(status, StatusCode::OK, "the token survived the outage: {json}");
    let next = json["refresh_token"].as_str().unwrap();

    // The user revoked the application: the refresh token is dead, so is the client's.
    fake.oauth.revoke_all();
    let (status, body) = refresh(&b, next).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");

    let logs = capture.text();
    assert!(logs.contains("GitLab user jdoe logged in"));
    for secret in fake.oauth.issued_secrets() {
        assert!(!logs.contains(&secret), "a secret reached the logs");
    }
}

/// Dex's GitLab token exchange: a client trades a GitLab access token for ours.
#[tokio::test]
async fn a_gitlab_access_token_is_exchanged_for_ours() {
    const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
    const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
    let (fake, b) = setup(jane(), "    groups: [ops]\n").await;
    let exchange = |token: String, kind: &'static str| {
        let b = &b;
        async move {
            let form = [
                ("grant_type", GRANT),
                ("connector_id", "gitlab"),
                ("subject_token", token.as_str()),
                ("subject_token_type", kind),
                ("scope", "openid groups"),
            ];
            let response = portcullis_tests::flow::token(b, &form).await;
            (response.status(), response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = exchange(fake.oauth.issue_access_token("read_user openid"), ACCESS).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = portcullis_tests::flow::claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["groups"], json!(["ops"]));
    assert_eq!(claims["sub"], portcullis::oidc::sub::encode("4711", "gitlab"));

    let (status, body) = exchange("at-revoked".into(), ACCESS).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{body}");
    let said = body["error_description"].as_str().unwrap();
    assert!(said.contains("connector \"gitlab\" refused the subject_token: GET"), "{said}");
    assert!(said.contains("GitLab refused the access token (HTTP 401"), "{said}");
    let id_token = "urn:ietf:params:oauth:token-type:id_token";
    let (status, body) = exchange(fake.oauth.issue_access_token("read_user"), id_token).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("GitLab access tokens"), "{body}");
}

#[tokio::test]
async fn unknown_and_unsupported_keys_are_refused_naming_them() {
    let fake = FakeGitLab::start(jane()).await;
    let cases = [
        ("    useLoginAsId: true\n", "unknown field `useLoginAsId`"),
        ("    rootCAData: LS0tLS1CRUdJTg==\n", "rootCAData is not supported by this connector"),
        ("    baseURL2: x\n", "unknown field `baseURL2`"),
    ];
    for (more, expected) in cases {
        let yaml = base_config("http://127.0.0.1:1/dex", &block(&fake, "http://127.0.0.1:1/dex", more))
            + &format!("plugins:\n  dir: \"{}\"\n", portcullis_tests::plugin("gitlab").parent().unwrap().display());
        let validated = config_from_yaml(&yaml);
        let err = match portcullis::generation::load_registry(&engine(), &validated, None).await {
            Ok(_) => panic!("{more}: the connector accepted it"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(expected), "{more}: {err}");
    }
}
