//! The OpenShift connector end to end, from Dex's documented block with no `allowedHosts`
//! (`issuer` implies the fake cluster's origin): discovery, login, the user's groups, required
//! groups, refresh with the stored 24-hour token, and the cluster's failures.

use portcullis_tests::oauth_fake::{dex_broker, failed_login, load_error, refresh, tokens};
use portcullis_tests::openshift_fake::{CLIENT_ID, CLIENT_SECRET, FakeOpenShift, FakeUser, Mode};
use reqwest::StatusCode;
use serde_json::json;

fn jdoe() -> FakeUser {
    FakeUser {
        name: "jdoe".into(),
        uid: "6d9e0c5a-7b8c-4d1e-9f20-3a4b5c6d7e8f".into(),
        full_name: "Jane Doe".into(),
        groups: vec!["devs".into(), "cluster-readers".into()],
    }
}

fn block(fake: &FakeOpenShift, issuer: &str, more: &str) -> String {
    format!(
        r#"
- type: openshift
  # Required field for connector id.
  id: openshift
  # Required field for connector name.
  name: OpenShift
  config:
    # OpenShift API
    issuer: {base}
    # Credentials can be string literals or pulled from the environment.
    clientID: {CLIENT_ID}
    clientSecret: {CLIENT_SECRET}
    redirectURI: {issuer}/callback
    # Optional: Specify whether to communicate to OpenShift without validating SSL certificates
    insecureCA: false
{more}"#,
        base = fake.base
    )
}

#[tokio::test]
async fn login_reads_the_user_and_groups_and_refresh_reuses_the_token() {
    let fake = FakeOpenShift::start(jdoe()).await;
    let b = dex_broker(|issuer| block(&fake, issuer, "    groups: [devs]\n")).await;
    let t = tokens(&b, &fake.base, "openshift", "openid profile email groups offline_access federated:id").await;

    assert_eq!(fake.oauth.authorize_param("scope").as_deref(), Some("user:info"));
    assert_eq!(fake.oauth.authorize_param("code_challenge_method").as_deref(), Some("S256"), "the server lists S256");
    let c = &t.claims;
    assert_eq!(c["federated_claims"]["user_id"], "6d9e0c5a-7b8c-4d1e-9f20-3a4b5c6d7e8f");
    assert_eq!((c["name"].as_str(), c["preferred_username"].as_str()), (Some("jdoe"), Some("jdoe")));
    assert_eq!((c["email"].as_str(), c["email_verified"].as_bool()), (Some("jdoe"), Some(false)), "as Dex maps it");
    assert_eq!(c["groups"], json!(["devs", "cluster-readers"]), "all of the user's groups, as Dex emits them");

    fake.update_user(|u| u.groups.push("admins".into()));
    let (status, json) = refresh(&b, t.refresh_token().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let claims = portcullis_tests::flow::claims(json["id_token"].as_str().unwrap());
    assert_eq!(claims["groups"], json!(["devs", "cluster-readers", "admins"]));
    assert_eq!(fake.oauth.token_requests().len(), 1, "the 24-hour token was reused");

    // Throttled: retryable. The token revoked (401): the user must log in again.
    fake.set_mode(Mode::Throttled);
    let next = json["refresh_token"].as_str().unwrap();
    let (status, _) = refresh(&b, next).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    fake.set_mode(Mode::Normal);
    fake.oauth.revoke_all();
    let (status, body) = refresh(&b, next).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
}

#[tokio::test]
async fn a_user_outside_the_required_groups_is_refused() {
    let fake = FakeOpenShift::start(jdoe()).await;
    let b = dex_broker(|issuer| block(&fake, issuer, "    groups: [admins]\n")).await;
    let (status, page) = failed_login(&b, &fake.base, "openshift", "openid").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("OpenShift user jdoe is not in any of the required groups (admins)"), "{page}");
}

#[tokio::test]
async fn cluster_failures_fail_the_login() {
    let fake = FakeOpenShift::start(jdoe()).await;
    let b = dex_broker(|issuer| block(&fake, issuer, "")).await;
    fake.oauth.fail_tokens(
        400,
        json!({"error": "invalid_grant", "error_description": "The provided authorization grant is invalid."}),
    );
    let (status, page) = failed_login(&b, &fake.base, "openshift", "openid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("OpenShift refused the login code"), "{page}");

    // Discovery down: the browser is not even sent to the cluster.
    fake.set_mode(Mode::DiscoveryDown);
    let web = portcullis_tests::browser();
    let (page, _) = portcullis_tests::flow::authorize(&b, &web, "openshift", "openid").await;
    assert_eq!(page.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn insecure_ca_and_unknown_keys_are_refused() {
    let fake = FakeOpenShift::start(jdoe()).await;
    let secure = block(&fake, "http://127.0.0.1:1/dex", "");
    let cases = [
        (secure.replace("insecureCA: false", "insecureCA: true"), "insecureCA is not supported"),
        (secure.replace("insecureCA: false", "insecureSkipVerify: true"), "unknown field `insecureSkipVerify`"),
    ];
    for (yaml, expected) in cases {
        let err = load_error(&yaml).await;
        assert!(err.contains(expected), "{err}");
    }
}
