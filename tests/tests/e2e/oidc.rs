//! The broker against a real OpenID Connect relying party library (`openidconnect`), over real
//! HTTP on an ephemeral port: discovery, code + PKCE, ID token validation, userinfo, refresh,
//! SSO, logout — and the rejections a production provider must make.

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, Scope, TokenResponse,
};
use portcullis_tests::{TestBroker, browser, hidden, location, query_param};
use reqwest::StatusCode;

const SECRET: &str = "ZXhhbXBsZS1hcHAtc2VjcmV0";
const CALLBACK: &str = "http://127.0.0.1:5555/callback";

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The relying party as discovery configures it.
type Rp = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

async fn rp(b: &TestBroker) -> (Rp, reqwest::Client) {
    let http = http();
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(b.issuer.clone()).unwrap(), &http)
        .await
        .expect("discovery");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new("example-app".into()),
        Some(ClientSecret::new(SECRET.into())),
    )
    .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap());
    (client, http)
}

/// Where a login started at `auth_url` ends: the password form of `method` filled in, the
/// approval granted. Returns the redirect to the client.
async fn login(b: &TestBroker, web: &reqwest::Client, auth_url: &str, email: &str, password: &str) -> String {
    let page = web.get(auth_url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK, "chooser");
    let html = page.text().await.unwrap();
    let req = html
        .split("auth/local?req=")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("chooser links to local")
        .to_string();
    let form = web.get(b.url(&format!("/auth/local?req={req}"))).send().await.unwrap().text().await.unwrap();
    assert!(form.contains("<label for=\"login\">Email Address</label>"), "{form}");
    let csrf = hidden(&form, "csrf").expect("csrf field");
    let posted = web
        .post(b.url("/auth/local/login"))
        .form(&[("req", req.as_str()), ("csrf", &csrf), ("login", email), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::SEE_OTHER, "login accepted");
    let next = location(&posted, &b.base).unwrap();
    if !next.contains("/approval") {
        return next;
    }
    approve(b, web, &next).await
}

/// Grants the approval page at `url`; returns the redirect to the client.
async fn approve(b: &TestBroker, web: &reqwest::Client, url: &str) -> String {
    let page = web.get(url).send().await.unwrap().text().await.unwrap();
    let (req, csrf) = (hidden(&page, "req").unwrap(), hidden(&page, "csrf").unwrap());
    let done = web
        .post(b.url("/approval"))
        .form(&[("req", req.as_str()), ("csrf", &csrf), ("approval", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    location(&done, &b.base).unwrap()
}

struct Login {
    code: String,
    verifier: PkceCodeVerifier,
    nonce: Nonce,
}

async fn start_login(b: &TestBroker, client: &Rp, web: &reqwest::Client, scopes: &[&str]) -> Login {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request =
        client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random);
    for s in scopes {
        request = request.add_scope(Scope::new(s.to_string()));
    }
    let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
    let back = login(b, web, url.as_str(), "admin@example.com", "password").await;
    assert_eq!(query_param(&back, "state").as_deref(), Some(state.secret().as_str()));
    Login { code: query_param(&back, "code").expect("code"), verifier, nonce }
}

#[tokio::test]
async fn discovery_is_exact() {
    let b = TestBroker::builder().start().await;
    let doc: serde_json::Value = http()
        .get(format!("{}/.well-known/openid-configuration", b.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], b.issuer.as_str());
    assert_eq!(doc["token_endpoint"], format!("{}/token", b.issuer));
    assert_eq!(doc["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(doc["id_token_signing_alg_values_supported"], serde_json::json!(["RS256"]));
}

#[tokio::test]
async fn code_flow_with_pkce_id_token_userinfo_and_refresh() {
    let b = TestBroker::builder().start().await;
    let (client, http) = rp(&b).await;
    let web = browser();
    let login = start_login(&b, &client, &web, &["email", "profile", "groups", "offline_access"]).await;
    let tokens = client
        .exchange_code(AuthorizationCode::new(login.code))
        .unwrap()
        .set_pkce_verifier(login.verifier)
        .request_async(&http)
        .await
        .expect("token exchange");
    let id_token = tokens.id_token().expect("id token");
    let claims = id_token.claims(&client.id_token_verifier(), &login.nonce).expect("valid ID token");
    // Dex's sub for user 08a8684b-... at connector "local".
    assert_eq!(claims.subject().as_str(), "CiQwOGE4Njg0Yi1kYjg4LTRiNzMtOTBhOS0zY2QxNjYxZjU0NjYSBWxvY2Fs");
    assert_eq!(claims.email().map(|e| e.as_str()), Some("admin@example.com"));
    assert_eq!(claims.email_verified(), Some(true));
    assert_eq!(claims.preferred_username().map(|u| u.as_str()), Some("admin"));
    assert!(id_token.signing_alg().is_ok());

    let info: openidconnect::core::CoreUserInfoClaims =
        client.user_info(tokens.access_token().clone(), None).unwrap().request_async(&http).await.expect("userinfo");
    assert_eq!(info.email().map(|e| e.as_str()), Some("admin@example.com"));

    let refresh = tokens.refresh_token().expect("offline_access gives a refresh token");
    let refreshed = client.exchange_refresh_token(refresh).unwrap().request_async(&http).await.expect("refresh");
    assert_ne!(refreshed.refresh_token().unwrap().secret(), refresh.secret(), "rotated");
    let id2 = refreshed.id_token().unwrap().claims(&client.id_token_verifier(), |_: Option<&Nonce>| Ok(())).unwrap();
    assert_eq!(id2.subject(), claims.subject());
}

#[tokio::test]
async fn mock_connector_login_through_the_chooser() {
    let b = TestBroker::builder().start().await;
    let web = browser();
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (client, http) = rp(&b).await;
    let (url, _, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("groups".into()))
        .add_scope(Scope::new("federated:id".into()))
        .set_pkce_challenge(challenge)
        .url();
    let chooser = web.get(url.as_str()).send().await.unwrap().text().await.unwrap();
    assert!(chooser.contains("Log in with Example") && chooser.contains("Log in with Email"), "{chooser}");
    let req = chooser.split("auth/mock?req=").nth(1).and_then(|s| s.split('"').next()).unwrap().to_string();
    let to_upstream = web.get(b.url(&format!("/auth/mock?req={req}"))).send().await.unwrap();
    assert_eq!(to_upstream.status(), StatusCode::SEE_OTHER);
    let upstream = location(&to_upstream, &b.base).unwrap();
    assert!(upstream.starts_with(&format!("{}/callback/mock?state=", b.issuer)), "{upstream}");
    let back = web.get(&upstream).send().await.unwrap();
    let approval = location(&back, &b.base).unwrap();
    let done = approve(&b, &web, &approval).await;
    let code = query_param(&done, "code").unwrap();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let raw = tokens.id_token().unwrap().to_string();
    let claims = tokens.id_token().unwrap().claims(&client.id_token_verifier(), &nonce).unwrap();
    assert_eq!(claims.subject().as_str(), portcullis::oidc::sub::encode("0-385-28089-0", "mock"));
    let payload: serde_json::Value = {
        use base64::Engine as _;
        let part = raw.split('.').nth(1).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    assert_eq!(payload["groups"], serde_json::json!(["authors"]));
    assert_eq!(payload["federated_claims"], serde_json::json!({"connector_id": "mock", "user_id": "0-385-28089-0"}));
}

#[tokio::test]
async fn sso_second_login_skips_the_password_and_logout_ends_it() {
    let b = TestBroker::builder().start().await;
    let (client, _) = rp(&b).await;
    let web = browser();
    let _first = start_login(&b, &client, &web, &["email"]).await;
    // A second application in the same browser: no chooser, no password, straight to approval.
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let second = format!(
        "{}/auth?client_id=second-app&redirect_uri=http://127.0.0.1:5555/second&response_type=code&scope=openid&state=s2&code_challenge={}&code_challenge_method=S256",
        b.issuer,
        challenge.as_str()
    );
    let r = web.get(&second).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let next = location(&r, &b.base).unwrap();
    assert!(next.contains("/approval?req="), "{next}");
    let done = approve(&b, &web, &next).await;
    assert!(done.starts_with("http://127.0.0.1:5555/second?code="), "{done}");
    // prompt=login forces the password again.
    let forced = web.get(format!("{second}&prompt=login")).send().await.unwrap();
    assert_eq!(forced.status(), StatusCode::OK, "chooser shown again");

    // Logout with a registered post-logout redirect ends the session — after the user confirms,
    // since no id_token_hint proves the application asked (audit F11).
    let confirm = web
        .get(b.url("/logout?client_id=example-app&post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A5555%2F&state=bye"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(confirm.contains("Log out?"), "{confirm}");
    let fields: Vec<(String, String)> = ["csrf", "client_id", "post_logout_redirect_uri", "state"]
        .iter()
        .map(|k| {
            let value = hidden(&confirm, k).unwrap_or_else(|| panic!("{k} carried in the form"));
            // What a browser does with the page's HTML escapes.
            (k.to_string(), value.replace("&#x2f;", "/").replace("&#x3a;", ":").replace("&amp;", "&"))
        })
        .collect();
    let out = web.post(b.url("/logout")).form(&fields).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out, &b.base).unwrap(), "http://127.0.0.1:5555/?state=bye");
    let after = web.get(&second).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::OK, "after logout the chooser is shown again");
    // An unregistered post-logout redirect is refused, never followed.
    let bad = web
        .get(b.url("/logout?client_id=example-app&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.headers().get("location").is_none());
}

#[tokio::test]
async fn a_reused_code_is_refused_and_revokes_its_tokens() {
    let b = TestBroker::builder().start().await;
    let (client, http) = rp(&b).await;
    let web = browser();
    let login = start_login(&b, &client, &web, &["offline_access"]).await;
    let verifier = login.verifier.secret().clone();
    let tokens = client
        .exchange_code(AuthorizationCode::new(login.code.clone()))
        .unwrap()
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.clone()))
        .request_async(&http)
        .await
        .unwrap();
    let again = client
        .exchange_code(AuthorizationCode::new(login.code))
        .unwrap()
        .set_pkce_verifier(PkceCodeVerifier::new(verifier))
        .request_async(&http)
        .await;
    assert!(format!("{:?}", again.unwrap_err()).contains("invalid_grant"));
    let info = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async::<openidconnect::EmptyAdditionalClaims, _, openidconnect::core::CoreGenderClaim>(&http)
        .await;
    assert!(info.is_err(), "the access token died with its grant");
    let refresh = client.exchange_refresh_token(tokens.refresh_token().unwrap()).unwrap().request_async(&http).await;
    assert!(format!("{:?}", refresh.unwrap_err()).contains("invalid_grant"));
}

/// Posts to the token endpoint directly; returns (status, JSON, WWW-Authenticate).
async fn token_post(
    b: &TestBroker,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (StatusCode, serde_json::Value, Option<String>) {
    let mut req = http().post(format!("{}/token", b.issuer)).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let www = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string());
    assert_eq!(r.headers().get("cache-control").map(|v| v.to_str().unwrap()), Some("no-store"));
    (status, r.json().await.unwrap(), www)
}

#[tokio::test]
async fn pkce_verifier_wrong_or_missing_is_invalid_grant() {
    let b = TestBroker::builder().start().await;
    let (client, _) = rp(&b).await;
    let web = browser();
    let login = start_login(&b, &client, &web, &[]).await;
    let base = [("grant_type", "authorization_code"), ("code", login.code.as_str()), ("redirect_uri", CALLBACK)];
    let (status, body, _) = token_post(&b, Some(("example-app", SECRET)), &base).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    let wrong = "x".repeat(50);
    let mut form = base.to_vec();
    form.push(("code_verifier", &wrong));
    let (status, body, _) = token_post(&b, Some(("example-app", SECRET)), &form).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    // The right verifier still works: a failed verification does not burn the code.
    let mut form = base.to_vec();
    form.push(("code_verifier", login.verifier.secret()));
    let (status, body, _) = token_post(&b, Some(("example-app", SECRET)), &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn bad_client_credentials_are_401_with_www_authenticate() {
    let b = TestBroker::builder().start().await;
    let form = [("grant_type", "authorization_code"), ("code", "x"), ("redirect_uri", CALLBACK)];
    let (status, body, www) = token_post(&b, Some(("example-app", "wrong")), &form).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    assert!(www.unwrap().starts_with("Basic"));
    let (status, _, _) = token_post(&b, Some(("nobody", SECRET)), &form).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // client_secret_post works too, and percent-encoded Basic credentials are decoded.
    let mut post = form.to_vec();
    post.extend([("client_id", "example-app"), ("client_secret", SECRET)]);
    let (status, body, _) = token_post(&b, None, &post).await;
    assert_eq!(body["error"].as_str(), Some("invalid_grant"), "authenticated, then the fake code fails: {status}");
    let (_, body, _) = token_post(&b, Some(("example%2Dapp", "ZXhhbXBsZS1hcHAtc2VjcmV0")), &form).await;
    assert_eq!(body["error"].as_str(), Some("invalid_grant"), "{body}");
}

#[tokio::test]
async fn unregistered_redirect_and_unknown_client_get_a_page_never_a_redirect() {
    let b = TestBroker::builder().start().await;
    let web = browser();
    for query in [
        "client_id=example-app&redirect_uri=https%3A%2F%2Fevil.example%2Fcb&response_type=code&scope=openid",
        "client_id=example-app&redirect_uri=http%3A%2F%2F127.0.0.1%3A5555%2Fcallback%2Fextra&response_type=code&scope=openid",
        "client_id=nobody&redirect_uri=http%3A%2F%2F127.0.0.1%3A5555%2Fcallback&response_type=code&scope=openid",
    ] {
        let r = web.get(format!("{}/auth?{query}", b.issuer)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
        assert!(r.headers().get("location").is_none(), "{query}");
        assert!(
            r.headers().get("content-security-policy").unwrap().to_str().unwrap().contains("frame-ancestors 'none'")
        );
        let html = r.text().await.unwrap();
        assert!(html.contains("<html lang=\"en\">") && html.contains("<h1>"), "{html}");
    }
}

#[tokio::test]
async fn unsupported_response_type_and_missing_pkce_redirect_with_an_error() {
    let b = TestBroker::builder().start().await;
    let web = browser();
    let r = web
        .get(format!(
            "{}/auth?client_id=example-app&redirect_uri={CALLBACK}&response_type=token&scope=openid&state=st",
            b.issuer
        ))
        .send()
        .await
        .unwrap();
    let to = location(&r, &b.base).unwrap();
    assert_eq!(query_param(&to, "error").as_deref(), Some("unsupported_response_type"));
    assert_eq!(query_param(&to, "state").as_deref(), Some("st"));
    let r = web
        .get(format!(
            "{}/auth?client_id=public-app&redirect_uri=http://127.0.0.1:5555/public&response_type=code&scope=openid",
            b.issuer
        ))
        .send()
        .await
        .unwrap();
    let to = location(&r, &b.base).unwrap();
    assert_eq!(query_param(&to, "error").as_deref(), Some("invalid_request"), "public clients need PKCE: {to}");
}

#[tokio::test]
async fn a_bad_password_shows_the_form_again_with_a_message() {
    let b = TestBroker::builder().start().await;
    let web = browser();
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let url = format!(
        "{}/auth?client_id=example-app&redirect_uri={CALLBACK}&response_type=code&scope=openid&connector_id=local&code_challenge={}&code_challenge_method=S256",
        b.issuer,
        challenge.as_str()
    );
    let r = web.get(&url).send().await.unwrap();
    let form_url = location(&r, &b.base).unwrap();
    let req = query_param(&form_url, "req").unwrap();
    let form = web.get(&form_url).send().await.unwrap().text().await.unwrap();
    let csrf = hidden(&form, "csrf").unwrap();
    let r = web
        .post(b.url("/auth/local/login"))
        .form(&[("req", req.as_str()), ("csrf", &csrf), ("login", "admin@example.com"), ("password", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("location").is_none(), "no code");
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Invalid email address or password.") && html.contains("value=\"admin@example.com\""),
        "{html}"
    );
    // A forged form (wrong CSRF token) is refused.
    let r = web
        .post(b.url("/auth/local/login"))
        .form(&[("req", req.as_str()), ("csrf", "forged"), ("login", "admin@example.com"), ("password", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Another browser (no binding cookie) cannot finish this login.
    let r = browser()
        .post(b.url("/auth/local/login"))
        .form(&[("req", req.as_str()), ("csrf", &csrf), ("login", "admin@example.com"), ("password", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_expired_code_is_invalid_grant() {
    let b = TestBroker::builder().extra("expiry:\n  authCodes: 1s\n").start().await;
    let (client, _) = rp(&b).await;
    let web = browser();
    let login = start_login(&b, &client, &web, &[]).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", login.code.as_str()),
        ("redirect_uri", CALLBACK),
        ("code_verifier", login.verifier.secret()),
    ];
    let (status, body, _) = token_post(&b, Some(("example-app", SECRET)), &form).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
}

#[tokio::test]
async fn refresh_token_reuse_revokes_the_family() {
    let b = TestBroker::builder().extra("expiry:\n  refreshTokens:\n    reuseInterval: 0s\n").start().await;
    let (client, http) = rp(&b).await;
    let web = browser();
    let login = start_login(&b, &client, &web, &["offline_access"]).await;
    let tokens = client
        .exchange_code(AuthorizationCode::new(login.code))
        .unwrap()
        .set_pkce_verifier(login.verifier)
        .request_async(&http)
        .await
        .unwrap();
    let first = tokens.refresh_token().unwrap().clone();
    let second = client
        .exchange_refresh_token(&first)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap()
        .refresh_token()
        .unwrap()
        .clone();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let reuse = client.exchange_refresh_token(&first).unwrap().request_async(&http).await;
    assert!(format!("{:?}", reuse.unwrap_err()).contains("invalid_grant"));
    let after =
        client.exchange_refresh_token(&RefreshToken::new(second.secret().clone())).unwrap().request_async(&http).await;
    assert!(format!("{:?}", after.unwrap_err()).contains("invalid_grant"), "the whole family is revoked");
}

#[tokio::test]
async fn es256_and_eddsa_id_tokens_verify_with_the_relying_party() {
    use openidconnect::core::CoreJwsSigningAlgorithm as Alg;
    for (name, alg) in [("ES256", Alg::EcdsaP256Sha256), ("EdDSA", Alg::EdDsa)] {
        let b = TestBroker::builder().extra(&format!("signing:\n  algorithm: {name}\n")).start().await;
        let (client, http) = rp(&b).await;
        let web = browser();
        let login = start_login(&b, &client, &web, &["email"]).await;
        let tokens = client
            .exchange_code(AuthorizationCode::new(login.code))
            .unwrap()
            .set_pkce_verifier(login.verifier)
            .request_async(&http)
            .await
            .unwrap();
        let verifier = client.id_token_verifier().set_allowed_algs(vec![alg.clone()]);
        let claims =
            tokens.id_token().unwrap().claims(&verifier, &login.nonce).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(claims.email().map(|e| e.as_str()), Some("admin@example.com"), "{name}");
        let jwks: serde_json::Value =
            http.get(format!("{}/keys", b.issuer)).send().await.unwrap().json().await.unwrap();
        assert_eq!(jwks["keys"][0]["alg"], name);
    }
}

#[tokio::test]
async fn dex_shared_callback_url_finds_the_connector_by_state() {
    use portcullis_tests::flow;
    let b = TestBroker::builder().start().await;
    let web = browser();
    let (to_upstream, pending) = flow::authorize(&b, &web, "mock", "openid email groups").await;
    assert_eq!(to_upstream.status(), StatusCode::SEE_OTHER);
    let upstream = location(&to_upstream, &b.base).unwrap();
    // A connector block moved over from Dex registers `{issuer}/callback` upstream.
    let shared = upstream.replace("/callback/mock?", "/callback?");
    assert_ne!(shared, upstream);
    let back = web.get(&shared).send().await.unwrap();
    let code = flow::finish(&b, &web, back, &pending).await;
    let tokens = flow::exchange(&b, &code, &pending).await;
    assert_eq!(tokens.claims["sub"], portcullis::oidc::sub::encode("0-385-28089-0", "mock"));
    assert_eq!(tokens.claims["groups"], serde_json::json!(["authors"]));

    // A state that is no login at all gets a page, not a redirect.
    let stray = web.get(b.url("/callback?state=nothing-like-a-login")).send().await.unwrap();
    assert!(stray.status().is_client_error(), "{}", stray.status());
}

#[tokio::test]
async fn a_password_longer_than_bcrypt_reads_is_refused_not_truncated() {
    // bcrypt reads 72 bytes: this user's password is exactly 72, so 72 bytes plus any tail
    // would match the hash if the broker let bcrypt cut it.
    let password = "correct-horse-battery-staple-correct-horse-battery-staple-correct-horse-";
    assert_eq!(password.len(), 72);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = portcullis_tests::default_issuer(&listener);
    let yaml = format!(
        "{}- email: long@example.com\n  hash: \"$2b$04$oaQ2i0ItnFewvrwA.BaVuuQzeT2HcPVQXNCmH2XZIahqa.YLZnQau\"\n  username: long\n  userID: long-1\n",
        portcullis_tests::base_config(&issuer, "")
    );
    let b = TestBroker::builder()
        .listener(listener)
        .issuer(&issuer)
        .config(portcullis_tests::config_from_yaml(&yaml))
        .start()
        .await;
    let web = browser();
    let (page, _pending) = portcullis_tests::flow::authorize(&b, &web, "local", "openid").await;
    let form = page.text().await.unwrap();
    let submit = |password: String| {
        let (b, web, form) = (&b, &web, &form);
        async move { portcullis_tests::flow::submit_password(b, web, "local", form, "long@example.com", &password).await }
    };
    let cut = submit(format!("{password}-and-a-wrong-tail")).await;
    assert_eq!(cut.status(), 401, "the first 72 bytes are right, the rest is not: refused");
    let exact = submit(password.to_string()).await;
    assert_eq!(exact.status(), 303, "the 72-byte password itself logs in");
}

/// `/keys` is cacheable until the key set's next rotation and at least two minutes, as Dex serves
/// it; with Dex's default rotation (6 h) that is up to 6 h, with a 1 m rotation the 2 m floor.
#[tokio::test]
async fn jwks_is_cacheable_until_the_next_rotation() {
    let max_age = |b: &TestBroker| {
        let url = b.url("/keys");
        async move {
            let r = reqwest::get(url).await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let value = r.headers()["cache-control"].to_str().unwrap().to_string();
            let seconds = value.strip_prefix("max-age=").and_then(|v| v.strip_suffix(", must-revalidate"));
            seconds.unwrap_or_else(|| panic!("cache-control: {value}")).parse::<i64>().unwrap()
        }
    };
    let default = TestBroker::builder().start().await;
    let age = max_age(&default).await;
    assert!((6 * 3600 - 60..=6 * 3600).contains(&age), "a fresh key set rotates in 6 h: max-age={age}");
    let short = TestBroker::builder().extra("expiry:\n  signingKeys: 1m\n").start().await;
    assert_eq!(max_age(&short).await, 120, "never less than Dex's two minutes");
}

/// Dex's cross-client trust: a client a peer trusts asks for `audience:server:client_id:<peer>`,
/// and both tokens name the peer before the client in `aud` (the ID token with `azp`), so the
/// peer's API accepts the access token too; without peers `aud` is the client, a string.
#[tokio::test]
async fn a_trusted_peer_is_in_both_tokens_audience() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = portcullis_tests::default_issuer(&listener);
    let yaml = portcullis_tests::base_config(&issuer, "").replacen(
        "  redirectURIs: [http://127.0.0.1:5555/second]\n",
        "  redirectURIs: [http://127.0.0.1:5555/second]\n  trustedPeers: [example-app]\n",
        1,
    );
    let config = portcullis_tests::config_from_yaml(&yaml);
    let b = TestBroker::builder().listener(listener).issuer(&issuer).config(config).start().await;
    let scopes = "openid audience:server:client_id:second-app";
    let tokens = portcullis_tests::flow::password_login(&b, "local", scopes, "admin@example.com", "password").await;
    assert_eq!(tokens.claims["aud"], serde_json::json!(["second-app", "example-app"]), "{}", tokens.claims);
    assert_eq!(tokens.claims["azp"], "example-app");
    let access = portcullis_tests::flow::claims(tokens.json["access_token"].as_str().unwrap());
    assert_eq!(access["aud"], serde_json::json!(["second-app", "example-app"]), "{access}");
    assert_eq!(access["client_id"], "example-app");
    let plain = portcullis_tests::flow::password_login(&b, "local", "openid", "admin@example.com", "password").await;
    let access = portcullis_tests::flow::claims(plain.json["access_token"].as_str().unwrap());
    assert_eq!((plain.claims["aud"].as_str(), access["aud"].as_str()), (Some("example-app"), Some("example-app")));
}
