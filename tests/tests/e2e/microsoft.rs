//! The Microsoft connector end to end, from Dex's documented block with no `allowedHosts`
//! (`apiURL` and `graphURL` at the fake imply its origin): login with Graph's profile and
//! transitive groups, users in more than 1000 groups (Graph's `getByIds` limit, dexidp/dex
//! #4833), the group options, refused users, Entra and Graph failures, and refresh.

use portcullis_tests::logs::{Format, LogCapture};
use portcullis_tests::microsoft_fake::{ApiMode, CLIENT_ID, CLIENT_SECRET, FakeGroup, FakeMicrosoft, FakeUser, TENANT};
use portcullis_tests::oauth_fake::{dex_broker, failed_login, refresh, tokens};
use portcullis_tests::{TestBroker, base_config, config_from_yaml, engine};
use reqwest::StatusCode;
use serde_json::json;

const ALL_SCOPES: &str = "openid profile email groups offline_access federated:id";

fn jane() -> FakeUser {
    FakeUser {
        id: "3f5d2c1e-8b4a-4d2e-9c1f-0a1b2c3d4e5f".into(),
        display_name: "Jane Doe".into(),
        upn: "Jane.Doe@Contoso.com".into(),
        mail_nickname: "jane".into(),
        groups: vec![
            FakeGroup::new("a1", "Engineering", true),
            FakeGroup::new("b2", "All Staff", false),
            FakeGroup::new("c3", "Ops", true),
        ],
    }
}

/// Dex's Microsoft block (its docs' keys), with `apiURL`/`graphURL` at the fake.
fn block(fake: &FakeMicrosoft, issuer: &str, more: &str) -> String {
    format!(
        r#"
- type: microsoft
  # Required field for connector id.
  id: microsoft
  # Required field for connector name.
  name: Microsoft
  config:
    # Credentials can be string literals or pulled from the environment.
    clientID: {CLIENT_ID}
    clientSecret: {CLIENT_SECRET}
    redirectURI: {issuer}/callback
    tenant: {TENANT}
    apiURL: {base}
    graphURL: {base}
{more}"#,
        base = fake.base
    )
}

async fn setup(user: FakeUser, page_size: usize, more: &str) -> (FakeMicrosoft, TestBroker) {
    let fake = FakeMicrosoft::start(user, page_size).await;
    let b = dex_broker(|issuer| block(&fake, issuer, more)).await;
    (fake, b)
}

#[tokio::test]
async fn login_reads_me_and_the_transitive_groups_by_name() {
    let more = "    emailToLowercase: true\n    preferredUsernameField: mailNickname\n    promptType: select_account\n    domainHint: contoso.com\n";
    let (fake, b) = setup(jane(), 2, more).await;
    let t = tokens(&b, &fake.base, "microsoft", ALL_SCOPES).await;

    assert_eq!(fake.oauth.authorize_param("scope").as_deref(), Some("user.read directory.read.all offline_access"));
    assert_eq!(fake.oauth.authorize_param("prompt").as_deref(), Some("select_account"));
    assert_eq!(fake.oauth.authorize_param("domain_hint").as_deref(), Some("contoso.com"));
    let c = &t.claims;
    assert_eq!(c["groups"], json!(["Engineering", "All Staff", "Ops"]), "across pages of both calls");
    assert_eq!(c["federated_claims"]["user_id"], "3f5d2c1e-8b4a-4d2e-9c1f-0a1b2c3d4e5f");
    assert_eq!(c["name"], "Jane Doe");
    assert_eq!(c["email"], "jane.doe@contoso.com", "emailToLowercase");
    assert_eq!(c["email_verified"], true);
    assert_eq!(c["preferred_username"], "jane");
    let calls: Vec<String> = fake.graph_requests().into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        calls,
        [
            "/v1.0/me",
            "/v1.0/me/getMemberGroups",
            "/v1.0/me/getMemberGroups",
            "/v1.0/directoryObjects/getByIds",
            "/v1.0/directoryObjects/getByIds"
        ]
    );
}

/// dexidp/dex #4833: Graph names at most 1000 IDs per `getByIds`; a user in 2,345 groups needs
/// three lookups, each paged, and gets every name.
#[tokio::test]
async fn a_user_in_more_than_1000_groups_logs_in_with_every_group() {
    let mut user = jane();
    user.groups = (0..2345).map(FakeGroup::numbered).collect();
    let (fake, b) = setup(user, 700, "").await;
    let t = tokens(&b, &fake.base, "microsoft", "openid groups").await;

    let groups = t.claims["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2345);
    assert_eq!(groups[0], "group-0");
    assert_eq!(groups[2344], "group-2344");
    let lookups: Vec<usize> =
        fake.graph_requests().into_iter().filter(|(p, _)| p.ends_with("getByIds")).map(|(_, n)| n).collect();
    assert_eq!(lookups, [1000, 1000, 1000, 1000, 345], "chunks of 1000, each paged by 700 (the body posted again)");
}

/// Graph answers `getMemberGroups` with at most 11,000 IDs: beyond, a 400 that fails the login
/// with Graph's words in the log (no partial group list is ever used).
#[tokio::test]
async fn more_than_11000_groups_fail_the_login_with_graphs_error() {
    let mut user = jane();
    user.groups = (0..11_001).map(|n| FakeGroup { security: true, ..FakeGroup::numbered(n) }).collect();
    let (fake, b) = setup(user, 1000, "").await;
    let capture = LogCapture::install(Format::Text);
    let (status, _) = failed_login(&b, &fake.base, "microsoft", "openid groups").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(
        capture.text().contains(
            "Microsoft answered HTTP 400: Directory_ResultSizeLimitExceeded: The result size limit was exceeded."
        ),
        "{}",
        capture.text()
    );
}

#[tokio::test]
async fn group_ids_security_groups_only_and_the_whitelist() {
    let more =
        "    groupNameFormat: id\n    onlySecurityGroups: true\n    useGroupsAsWhitelist: true\n    groups: [c3, b2]\n";
    let (fake, b) = setup(jane(), 100, more).await;
    let t = tokens(&b, &fake.base, "microsoft", "openid groups").await;
    assert_eq!(t.claims["groups"], json!(["c3"]), "b2 is not a security group; a1 is not listed");
    assert!(!fake.graph_requests().iter().any(|(p, _)| p.ends_with("getByIds")), "ids need no name lookup");
}

#[tokio::test]
async fn a_user_outside_the_required_groups_is_refused() {
    let (fake, b) = setup(jane(), 100, "    groups: [Finance]\n").await;
    let (status, page) = failed_login(&b, &fake.base, "microsoft", "openid").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        page.contains("Microsoft user Jane.Doe@Contoso.com is not in any of the required groups (Finance)"),
        "{page}"
    );
}

#[tokio::test]
async fn entra_and_graph_failures_fail_the_login() {
    let (fake, b) = setup(jane(), 100, "").await;
    fake.fail_tokens(54005, "OAuth2 Authorization code was already redeemed.");
    let (status, page) = failed_login(&b, &fake.base, "microsoft", "openid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("AADSTS54005"), "{page}");

    let (fake, b) = setup(jane(), 100, "").await;
    fake.oauth.decline("consent_required");
    let (status, _) = failed_login(&b, &fake.base, "microsoft", "openid").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);

    for mode in [ApiMode::Throttled, ApiMode::Unavailable] {
        let (fake, b) = setup(jane(), 100, "").await;
        fake.set_mode(mode);
        let (status, _) = failed_login(&b, &fake.base, "microsoft", "openid groups").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{mode:?}");
    }
}

#[tokio::test]
async fn refresh_reuses_a_live_token_and_redeems_the_refresh_token_when_expired() {
    let capture = LogCapture::install(Format::Text);
    let (fake, b) = setup(jane(), 100, "").await;
    let t = tokens(&b, &fake.base, "microsoft", ALL_SCOPES).await;
    fake.update_user(|u| u.groups.truncate(1));
    let (status, json) = refresh(&b, t.refresh_token().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let claims = portcullis_tests::flow::claims(json["id_token"].as_str().unwrap());
    assert_eq!(claims["groups"], json!(["Engineering"]));
    let grants: Vec<String> = fake.oauth.token_requests().into_iter().map(|(g, _)| g).collect();
    assert_eq!(grants, ["authorization_code"], "the access token was still valid");

    // Tokens that expire at once: the refresh redeems the upstream refresh token.
    let (fake, b) = setup(jane(), 100, "").await;
    fake.oauth.set_shape(|s| s.expires_in = Some(5));
    let t = tokens(&b, &fake.base, "microsoft", ALL_SCOPES).await;
    let (status, json) = refresh(&b, t.refresh_token().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let grants: Vec<String> = fake.oauth.token_requests().into_iter().map(|(g, _)| g).collect();
    assert_eq!(grants, ["authorization_code", "refresh_token"]);

    // Entra unavailable: retryable. The grant revoked (AADSTS50173): the client must log in again.
    let next = json["refresh_token"].as_str().unwrap();
    fake.oauth.fail_tokens(503, json!({"error": "temporarily_unavailable"}));
    let (status, _) = refresh(&b, next).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    fake.fail_tokens(50173, "The provided grant has expired due to it being revoked.");
    let (status, body) = refresh(&b, next).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");

    let logs = capture.text();
    for secret in fake.oauth.issued_secrets() {
        assert!(!logs.contains(&secret), "a secret reached the logs");
    }
}

#[tokio::test]
async fn unknown_and_unsupported_keys_are_refused_naming_them() {
    let fake = FakeMicrosoft::start(jane(), 100).await;
    let cases = [
        ("    clientAssertion: /var/run/secrets/azure/token\n", "clientAssertion is not supported"),
        ("    groupNameFormat: mail\n", "unknown variant `mail`"),
        ("    onlySecurityGroup: true\n", "unknown field `onlySecurityGroup`"),
    ];
    for (more, expected) in cases {
        let yaml = base_config("http://127.0.0.1:1/dex", &block(&fake, "http://127.0.0.1:1/dex", more))
            + &format!("plugins:\n  dir: \"{}\"\n", portcullis_tests::plugin("microsoft").parent().unwrap().display());
        let err = match portcullis::generation::load_registry(&engine(), &config_from_yaml(&yaml), None).await {
            Ok(_) => panic!("{more}: the connector accepted it"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(expected), "{more}: {err}");
    }
    // Dex would silently skip the groups check for a multi-tenant login; this refuses it.
    let common = block(&fake, "http://127.0.0.1:1/dex", "    groups: [Engineering]\n").replace(TENANT, "common");
    let yaml = base_config("http://127.0.0.1:1/dex", &common)
        + &format!("plugins:\n  dir: \"{}\"\n", portcullis_tests::plugin("microsoft").parent().unwrap().display());
    let err = format!(
        "{:#}",
        portcullis::generation::load_registry(&engine(), &config_from_yaml(&yaml), None).await.err().unwrap()
    );
    assert!(err.contains("groups needs a specific tenant"), "{err}");
}
