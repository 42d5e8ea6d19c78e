//! The generic `oauth` connector end to end, from Dex's documented block with no
//! `allowedHosts` (the three endpoint URLs imply the fake's origin): userinfo mapped through
//! `userIDKey` and `claimMapping`, groups from userinfo and a JWT access token, Dex's client
//! authentication detection, no refresh tokens, and the provider's failures.

use portcullis_tests::oauth_fake::{TokenShape, dex_broker, failed_login, load_error, tokens};
use portcullis_tests::oauth_generic_fake::{CLIENT_ID, CLIENT_SECRET, FakeOAuthProvider, UserInfo};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn jane() -> Value {
    json!({"id": 12345678, "user_name": "Jane Doe", "preferred_username": "jane", "email": "jane@example.org",
           "email_verified": true, "groups": ["eng", {"name": "ops"}]})
}

/// Dex's generic OAuth block; `more` is YAML under `config:`.
fn block(fake: &FakeOAuthProvider, issuer: &str, more: &str) -> String {
    format!(
        r#"
- type: oauth
  id: oauth
  name: Generic OAuth
  config:
    clientID: {CLIENT_ID}
    clientSecret: {CLIENT_SECRET}
    redirectURI: {issuer}/callback
    tokenURL: {base}/oauth/token
    authorizationURL: {base}/oauth/authorize
    userInfoURL: {base}/userinfo
{more}"#,
        base = fake.base
    )
}

#[tokio::test]
async fn userinfo_and_jwt_groups_make_the_identity_without_refresh() {
    let shape =
        TokenShape { jwt_claims: Some(json!({"sub": "u", "groups": ["ops", "admins"]})), ..TokenShape::default() };
    let fake = FakeOAuthProvider::start(jane(), shape).await;
    let b = dex_broker(|issuer| block(&fake, issuer, "    scopes: [profile, email, groups]\n")).await;
    let t = tokens(&b, &fake.base, "oauth", "openid profile email groups offline_access federated:id").await;

    assert_eq!(fake.oauth.authorize_param("scope").as_deref(), Some("profile email groups"));
    assert_eq!(fake.oauth.authorize_param("code_challenge"), None, "Dex sends no PKCE to an unknown provider");
    let c = &t.claims;
    assert_eq!(c["federated_claims"]["user_id"], "12345678", "an integer id printed exactly");
    assert_eq!(c["name"], "Jane Doe");
    assert_eq!(c["preferred_username"], "jane");
    assert_eq!((c["email"].as_str(), c["email_verified"].as_bool()), (Some("jane@example.org"), Some(true)));
    assert_eq!(c["groups"], json!(["eng", "ops", "admins"]), "userinfo's, then the access token's new ones");
    // Not refresh-capable, as in Dex: no refresh token is issued even with offline_access.
    assert!(t.refresh_token().is_none(), "a connector that does not refresh gets no refresh token");
}

#[tokio::test]
async fn claim_mapping_form_answers_and_body_client_auth() {
    let info = json!({"sub": "u-17", "name": "Jane", "login": "jane", "mail": "j@example.org", "verified": "true", "roles": ["r1"]});
    let shape =
        TokenShape { form_encoded: true, body_auth_only: true, token_type: "bearer".into(), ..TokenShape::default() };
    let fake = FakeOAuthProvider::start(info, shape).await;
    let more = "    userIDKey: sub\n    claimMapping:\n      userNameKey: name\n      preferredUsernameKey: login\n      \
                groupsKey: roles\n      emailKey: mail\n      emailVerifiedKey: verified\n";
    let b = dex_broker(|issuer| block(&fake, issuer, more)).await;
    let t = tokens(&b, &fake.base, "oauth", "openid profile email groups federated:id").await;
    let c = &t.claims;
    assert_eq!(c["federated_claims"]["user_id"], "u-17");
    assert_eq!((c["name"].as_str(), c["preferred_username"].as_str()), (Some("Jane"), Some("jane")));
    assert_eq!(c["email_verified"], false, "the string \"true\" is not a boolean, as in Dex");
    assert_eq!(c["groups"], json!(["r1"]));
    assert_eq!(fake.oauth.authorize_param("scope"), None, "no scopes configured: no scope parameter");
    let styles: Vec<String> = fake.oauth.token_requests().into_iter().map(|(_, s)| s).collect();
    assert_eq!(styles, ["basic", "body"], "Basic first, then the body, as Dex detects it");
}

#[tokio::test]
async fn a_userinfo_without_an_id_or_that_fails_fails_the_login() {
    let fake = FakeOAuthProvider::start(jane(), TokenShape::default()).await;
    let b = dex_broker(|issuer| block(&fake, issuer, "")).await;
    // (userinfo answer, expected status) — add a row to extend.
    let rows = [
        (UserInfo::Json(json!({"user_name": "no id"})), StatusCode::BAD_GATEWAY),
        (UserInfo::Json(json!({"id": true})), StatusCode::BAD_GATEWAY),
        (UserInfo::Json(json!([{"id": 1}])), StatusCode::BAD_GATEWAY),
        (UserInfo::Status(500), StatusCode::BAD_GATEWAY),
        (UserInfo::Html, StatusCode::BAD_GATEWAY),
    ];
    for (answer, status) in rows {
        fake.set_userinfo(answer.clone());
        let (got, page) = failed_login(&b, &fake.base, "oauth", "openid").await;
        assert_eq!(got, status, "{answer:?}: {page}");
    }
}

#[tokio::test]
async fn a_declined_login_and_a_token_error_are_refused() {
    let fake = FakeOAuthProvider::start(jane(), TokenShape::default()).await;
    let b = dex_broker(|issuer| block(&fake, issuer, "")).await;
    fake.oauth.decline("access_denied");
    let (status, page) = failed_login(&b, &fake.base, "oauth", "openid").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("the OAuth provider denied the login"), "{page}");

    let fake = FakeOAuthProvider::start(jane(), TokenShape::default()).await;
    let b = dex_broker(|issuer| block(&fake, issuer, "")).await;
    fake.oauth.fail_tokens(200, json!({"error": "invalid_grant", "error_description": "code expired"}));
    let (status, page) = failed_login(&b, &fake.base, "oauth", "openid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a 200 carrying error is a failure");
    assert!(page.contains("code expired"), "{page}");
}

#[tokio::test]
async fn unknown_and_unsupported_keys_are_refused_naming_them() {
    let fake = FakeOAuthProvider::start(jane(), TokenShape::default()).await;
    for (more, expected) in [
        ("    insecureSkipVerify: true\n", "insecureSkipVerify is not supported"),
        ("    insecureSkipEmailVerified: true\n", "unknown field `insecureSkipEmailVerified`"),
        ("    claimMapping:\n      nameKey: x\n", "unknown field `nameKey`"),
    ] {
        let err = load_error(&block(&fake, "http://127.0.0.1:1/dex", more)).await;
        assert!(err.contains(expected), "{more}: {err}");
    }
}

/// What `portcullis check-config` prints for Dex blocks of the OAuth-family types: each
/// type's documented hosts unless a key names another upstream, and the URLs its config names.
#[test]
fn check_config_lists_the_oauth_family_hosts() {
    let yaml = r#"
issuer: https://sso.example/dex
storage: {type: memory}
staticClients:
- {id: app, secret: s, redirectURIs: ["https://app.example/callback"]}
connectors:
- {type: gitlab, id: gitlab, name: GitLab, config: {clientID: a, clientSecret: b, redirectURI: "https://sso.example/dex/callback"}}
- {type: microsoft, id: entra, name: Entra, config: {clientID: a, clientSecret: b, tenant: contoso.com, graphURL: "https://graph.microsoft.us"}}
- {type: oauth, id: acme, name: Acme, config: {clientID: a, clientSecret: b, authorizationURL: "https://login.acme.example/a", tokenURL: "https://login.acme.example/t", userInfoURL: "https://api.acme.example/me", scopes: ["https://acme.example/scope/read"]}}
- {type: gitea, id: codeberg, name: Codeberg, config: {clientID: a, clientSecret: b, baseURL: "https://codeberg.org"}}
- {type: bitbucket-cloud, id: bitbucket, name: Bitbucket, config: {clientID: a, clientSecret: b}}
- {type: openshift, id: ocp, name: OpenShift, config: {issuer: "https://api.c1.example:6443", clientID: a, clientSecret: b}}
- {type: linkedin, id: linkedin, name: LinkedIn, config: {clientID: a, clientSecret: b}}
"#;
    let config = portcullis::config::Config::from_yaml(std::path::Path::new("check.yaml"), yaml, &|_| None).unwrap();
    let report = portcullis::connectors::hosts_report(config.connectors.iter().map(|c| &c.spec));
    let want = r#"connector "gitlab" may reach (implied, no allowedHosts):
  https://gitlab.com  documented host of type gitlab
connector "entra" may reach (implied, no allowedHosts):
  https://login.microsoftonline.com  documented host of type microsoft
  https://graph.microsoft.us         implied by config key graphURL
connector "acme" may reach (implied, no allowedHosts):
  https://login.acme.example  implied by config key authorizationURL
  https://api.acme.example    implied by config key userInfoURL
connector "codeberg" may reach (implied, no allowedHosts):
  https://codeberg.org  implied by config key baseURL
connector "bitbucket" may reach (implied, no allowedHosts):
  https://bitbucket.org      documented host of type bitbucket-cloud
  https://api.bitbucket.org  documented host of type bitbucket-cloud
connector "ocp" may reach (implied, no allowedHosts):
  https://api.c1.example:6443  implied by config key issuer
connector "linkedin" may reach (implied, no allowedHosts):
  https://www.linkedin.com  documented host of type linkedin
  https://api.linkedin.com  documented host of type linkedin
"#;
    assert_eq!(report, want, "\n{report}");
}
