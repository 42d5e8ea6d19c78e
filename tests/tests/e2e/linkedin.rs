//! The LinkedIn connector end to end, from Dex's documented block plus Portcullis's
//! `baseURL`/`apiURL` at the fake (no `allowedHosts`: they imply its origin): login with the
//! profile and the email API, the secret in the form body, refresh, and LinkedIn's failures.

use portcullis_tests::linkedin_fake::{CLIENT_ID, CLIENT_SECRET, FakeLinkedIn, FakeMember};
use portcullis_tests::oauth_fake::{dex_broker, failed_login, load_error, refresh, tokens};
use reqwest::StatusCode;

fn jane() -> FakeMember {
    FakeMember {
        id: "yrZCpj2Z12".into(),
        first: "Jane".into(),
        last: "Doe".into(),
        emails: vec!["old@example.org".into(), "jane@example.org".into()],
    }
}

fn block(fake: &FakeLinkedIn, issuer: &str, more: &str) -> String {
    format!(
        r#"
- type: linkedin
  # Required field for connector id.
  id: linkedin
  # Required field for connector name.
  name: LinkedIn
  config:
    # Credentials can be string literals or pulled from the environment.
    clientID: {CLIENT_ID}
    clientSecret: {CLIENT_SECRET}
    redirectURI: {issuer}/callback
    baseURL: {base}
    apiURL: {base}
{more}"#,
        base = fake.base
    )
}

#[tokio::test]
async fn login_reads_the_profile_and_the_last_email_and_refresh_rereads_them() {
    let fake = FakeLinkedIn::start(jane()).await;
    let b = dex_broker(|issuer| block(&fake, issuer, "")).await;
    let t = tokens(&b, &fake.base, "linkedin", "openid profile email offline_access federated:id").await;

    assert_eq!(fake.oauth.authorize_param("scope").as_deref(), Some("r_liteprofile r_emailaddress"));
    assert_eq!(fake.oauth.authorize_param("code_challenge"), None);
    let styles: Vec<String> = fake.oauth.token_requests().into_iter().map(|(_, s)| s).collect();
    assert_eq!(styles, ["body"], "client_secret_post, as LinkedIn expects");
    let c = &t.claims;
    assert_eq!(c["federated_claims"]["user_id"], "yrZCpj2Z12");
    assert_eq!(c["name"], "Jane Doe");
    assert_eq!((c["email"].as_str(), c["email_verified"].as_bool()), (Some("jane@example.org"), Some(true)));

    fake.update_member(|m| {
        m.first = String::new();
        m.last = String::new();
    });
    let (status, json) = refresh(&b, t.refresh_token().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let claims = portcullis_tests::flow::claims(json["id_token"].as_str().unwrap());
    assert_eq!(claims["name"], "jane@example.org", "no name: the email");
    assert_eq!(claims["email"], "jane@example.org", "re-read on refresh too");

    let next = json["refresh_token"].as_str().unwrap();
    fake.throttle(true);
    assert_eq!(refresh(&b, next).await.0, StatusCode::SERVICE_UNAVAILABLE);
    fake.throttle(false);
    fake.oauth.revoke_all();
    let (status, body) = refresh(&b, next).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
}

#[tokio::test]
async fn a_member_without_email_and_linkedin_failures_fail_the_login() {
    let mut member = jane();
    member.emails.clear();
    let fake = FakeLinkedIn::start(member).await;
    let b = dex_broker(|issuer| block(&fake, issuer, "")).await;
    let (status, page) = failed_login(&b, &fake.base, "linkedin", "openid").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("LinkedIn gave no email address for this member"), "{page}");

    let fake = FakeLinkedIn::start(jane()).await;
    let b = dex_broker(|issuer| block(&fake, issuer, "")).await;
    fake.throttle(true);
    assert_eq!(failed_login(&b, &fake.base, "linkedin", "openid").await.0, StatusCode::BAD_GATEWAY);
    fake.throttle(false);
    fake.oauth.decline("user_cancelled_login");
    assert_eq!(failed_login(&b, &fake.base, "linkedin", "openid").await.0, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn unknown_keys_are_refused_naming_them() {
    let fake = FakeLinkedIn::start(jane()).await;
    let err = load_error(&block(&fake, "http://127.0.0.1:1/dex", "    scopes: [openid]\n")).await;
    assert!(err.contains("unknown field `scopes`"), "{err}");
}
