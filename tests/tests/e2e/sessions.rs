//! Dex's `sessions` block and OIDC Back-Channel Logout 1.0: the session cookie, "remember
//! me", sharing between clients (`ssoSharedWith`), `sid` in ID tokens, and a logout token
//! POSTed to a relying party that verifies it against the broker's keys.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_tests::{TestBroker, browser, flow, hidden, location};
use reqwest::StatusCode;

/// `BASE_CONFIG` with `sessions` and more client keys, served on a fresh port.
async fn broker_with(sessions: &str, example_app_extra: &str, second_app_extra: &str) -> TestBroker {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = portcullis_tests::default_issuer(&listener);
    let yaml = portcullis_tests::base_config(&issuer, "")
        .replacen(
            "  postLogoutRedirectURIs: [http://127.0.0.1:5555/]\n",
            &format!("  postLogoutRedirectURIs: [http://127.0.0.1:5555/]\n{example_app_extra}"),
            1,
        )
        .replacen(
            "  redirectURIs: [http://127.0.0.1:5555/second]\n",
            &format!("  redirectURIs: [http://127.0.0.1:5555/second]\n{second_app_extra}"),
            1,
        );
    let config = portcullis_tests::config_from_yaml(&format!("{yaml}\n{sessions}"));
    TestBroker::builder().listener(listener).issuer(&issuer).config(config).start().await
}

/// Logs in as admin through the password form, ticking "remember me" or not; returns the
/// response after the form (a redirect) and the form's HTML.
async fn password_login(
    b: &TestBroker,
    web: &reqwest::Client,
    remember: bool,
) -> (reqwest::Response, String, flow::Pending) {
    let (form, pending) = flow::authorize(b, web, "local", "openid profile offline_access").await;
    let html = form.text().await.unwrap();
    let req = hidden(&html, "req").unwrap();
    let csrf = hidden(&html, "csrf").unwrap();
    let mut fields =
        vec![("req", req.as_str()), ("csrf", csrf.as_str()), ("login", "admin@example.com"), ("password", "password")];
    if remember {
        fields.push(("remember_me", "on"));
    }
    let done = web.post(b.url("/auth/local/login")).form(&fields).send().await.unwrap();
    (done, html, pending)
}

fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

/// Where `/auth` for `client` sends a browser: `Some(next)` for a redirect (single sign-on goes
/// to the approval page), `None` for a page (the chooser: the user must log in).
async fn authorize_as(b: &TestBroker, web: &reqwest::Client, client: &str, redirect: &str) -> Option<String> {
    let (_, challenge) = portcullis_tests::pkce();
    let url = url::Url::parse_with_params(
        &b.url("/auth"),
        &[
            ("client_id", client),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "s"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let response = web.get(url.as_str()).send().await.unwrap();
    location(&response, &b.base)
}

/// Whether `/auth` answered with single sign-on (straight to approval).
fn signed_on(next: &Option<String>) -> bool {
    next.as_deref().is_some_and(|n| n.contains("/approval?req="))
}

/// Dex's `sessions` block: its cookie name and lifetime, the "remember me" box (checked by
/// default; unticked, a cookie for the browser session only), SSO for the same client but not
/// for another unless shared, and `sid` in the ID token.
#[tokio::test]
async fn dex_sessions_block_is_honoured() {
    let sessions = "sessions:\n  cookieName: dex_session\n  absoluteLifetime: 24h\n  validIfNotUsedFor: 1h\n";
    let b = broker_with(sessions, "", "").await;
    let web = browser();
    let (done, html, pending) = password_login(&b, &web, true).await;
    assert!(html.contains("name=\"remember_me\" value=\"on\" checked"), "remember me, checked by default: {html}");
    let cookie = set_cookie(&done, "dex_session").expect("the session cookie has Dex's configured name");
    assert!(cookie.contains("Max-Age=86400"), "remembered for the absolute lifetime: {cookie}");
    let code = flow::finish(&b, &web, done, &pending).await;
    let tokens = flow::exchange(&b, &code, &pending).await;
    let sid = tokens.claims["sid"].as_str().expect("sid in the ID token").to_string();
    // The same client again: single sign-on, no login page.
    let again = authorize_as(&b, &web, "example-app", flow::CALLBACK).await;
    assert!(signed_on(&again), "SSO for the client that logged in: {again:?}");
    // Another client: Dex shares a session with no one by default.
    let other = authorize_as(&b, &web, "second-app", "http://127.0.0.1:5555/second").await;
    assert!(!signed_on(&other), "second-app must log in: {other:?}");
    // The refreshed ID token keeps the session's sid.
    let refreshed: serde_json::Value = flow::refresh(&b, tokens.refresh_token().unwrap()).await.json().await.unwrap();
    assert_eq!(flow::claims(refreshed["id_token"].as_str().unwrap())["sid"], sid.as_str());

    // Without "remember me", the cookie has no Max-Age: it ends with the browser.
    let web = browser();
    let (done, _, _) = password_login(&b, &web, false).await;
    let cookie = set_cookie(&done, "dex_session").expect("session cookie");
    assert!(!cookie.contains("Max-Age"), "a browser-session cookie: {cookie}");
}

/// `ssoSharedWith` lets one client's session log the user into another, one way only.
#[tokio::test]
async fn sso_shared_with_shares_one_way() {
    let b = broker_with("sessions: {}\n", "  ssoSharedWith: [second-app]\n", "").await;
    let web = browser();
    let (done, _, pending) = password_login(&b, &web, true).await;
    flow::finish(&b, &web, done, &pending).await;
    let shared = authorize_as(&b, &web, "second-app", "http://127.0.0.1:5555/second").await;
    assert!(signed_on(&shared), "example-app shares with second-app: {shared:?}");
    let public = authorize_as(&b, &web, "public-app", "http://127.0.0.1:5555/public").await;
    assert!(!signed_on(&public), "but not with public-app: {public:?}");
    // `ssoSharedWithDefault: all`, except a client that writes `ssoSharedWith: []`.
    let b = broker_with("sessions: {ssoSharedWithDefault: all}\n", "  ssoSharedWith: []\n", "").await;
    let web = browser();
    let (done, _, pending) = password_login(&b, &web, true).await;
    flow::finish(&b, &web, done, &pending).await;
    let not_shared = authorize_as(&b, &web, "second-app", "http://127.0.0.1:5555/second").await;
    assert!(!signed_on(&not_shared), "an explicit empty list shares with no one: {not_shared:?}");
    // Without a sessions block, Portcullis's own session is shared with every client.
    let b = broker_with("", "", "").await;
    let web = browser();
    let (done, _, pending) = password_login(&b, &web, true).await;
    flow::finish(&b, &web, done, &pending).await;
    let shared = authorize_as(&b, &web, "second-app", "http://127.0.0.1:5555/second").await;
    assert!(signed_on(&shared), "{shared:?}");
}

/// A test relying party's back-channel logout endpoint: records every `logout_token` POSTed.
async fn backchannel_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let store = seen.clone();
    let app = axum::Router::new().route(
        "/backchannel-logout",
        axum::routing::post(move |axum::Form(form): axum::Form<std::collections::HashMap<String, String>>| {
            let store = store.clone();
            async move {
                if let Some(token) = form.get("logout_token") {
                    store.lock().unwrap().push(token.clone());
                }
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/backchannel-logout", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

/// OIDC Back-Channel Logout 1.0: logging out POSTs a logout token to the client that
/// registered `backchannelLogoutURI`; the RP verifies it with the broker's JWKS: signature,
/// `typ`, `iss`, `aud`, `sub` and `sid` as in its ID token, the logout event, and no `nonce`.
#[tokio::test]
async fn backchannel_logout_reaches_the_relying_party() {
    let (uri, seen) = backchannel_receiver().await;
    let b = broker_with("", &format!("  backchannelLogoutURI: {uri}\n"), "").await;
    let discovery: serde_json::Value =
        reqwest::get(b.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(discovery["backchannel_logout_supported"], true);
    assert_eq!(discovery["backchannel_logout_session_supported"], true);
    let web = browser();
    let (done, _, pending) = password_login(&b, &web, true).await;
    let code = flow::finish(&b, &web, done, &pending).await;
    let tokens = flow::exchange(&b, &code, &pending).await;
    let id_token = tokens.json["id_token"].as_str().unwrap();
    let logout = web
        .get(b.url("/logout"))
        .query(&[("id_token_hint", id_token), ("post_logout_redirect_uri", "http://127.0.0.1:5555/")])
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    let mut token = None;
    for _ in 0..100 {
        if let Some(t) = seen.lock().unwrap().first().cloned() {
            token = Some(t);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = token.expect("a logout token reached the relying party");
    // Verify as an RP would: the key from the JWKS by kid, the algorithm the broker advertises.
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(b.url("/keys")).await.unwrap().json().await.unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("the signing key is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[flow::CLIENT]);
    validation.set_issuer(&[b.issuer.as_str()]);
    validation.set_required_spec_claims(&["iss", "aud", "exp", "iat", "sub"]);
    let claims =
        jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).expect("a valid logout token").claims;
    assert_eq!(claims["sub"], tokens.claims["sub"]);
    assert_eq!(claims["sid"], tokens.claims["sid"]);
    assert!(claims["events"].get("http://schemas.openid.net/event/backchannel-logout").is_some(), "{claims}");
    assert!(claims.get("nonce").is_none(), "a logout token never has a nonce: {claims}");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    // The session's tokens ended with it.
    assert_eq!(flow::refresh(&b, tokens.refresh_token().unwrap()).await.status(), StatusCode::BAD_REQUEST);
}

/// `refreshTokenLifetime: standalone` (Dex's default) keeps a refresh token past logout.
#[tokio::test]
async fn standalone_refresh_tokens_outlive_logout() {
    let b = broker_with("", "  refreshTokenLifetime: standalone\n", "").await;
    let web = browser();
    let (done, _, pending) = password_login(&b, &web, true).await;
    let code = flow::finish(&b, &web, done, &pending).await;
    let tokens = flow::exchange(&b, &code, &pending).await;
    let id_token = tokens.json["id_token"].as_str().unwrap();
    let logout = web.get(b.url("/logout")).query(&[("id_token_hint", id_token)]).send().await.unwrap();
    assert_eq!(logout.status(), StatusCode::OK);
    assert_eq!(flow::refresh(&b, tokens.refresh_token().unwrap()).await.status(), StatusCode::OK);
}
