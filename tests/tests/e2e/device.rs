//! The device authorization grant (RFC 8628) on Dex's paths: a device gets its codes through
//! the `openidconnect` crate, a browser enters the user code (typed or prefilled), logs in
//! with the password database and approves, and the device's polls get the tokens once — and
//! the refusals: wrong and throttled user codes, a reused device code, an expired request, a
//! denial, polling too fast, another browser at the callback, the grant switched off.

use openidconnect::core::{CoreClient, CoreDeviceAuthorizationResponse, CoreProviderMetadata};
use openidconnect::{ClientId, DeviceAuthorizationUrl, IssuerUrl, Nonce, OAuth2TokenResponse, Scope, TokenResponse};
use portcullis_tests::logs::{Format, LogCapture};
use portcullis_tests::{TestBroker, browser, flow, hidden, location, query_param};
use reqwest::StatusCode;
use serde_json::Value;

/// A native public client (no redirect URIs: the device callback is allowed as is) and a
/// confidential one that registered the callback path, as Dex's docs have it.
const CLIENTS: &str = "- id: tv
  name: TV App
  public: true
- id: kiosk
  name: Kiosk
  secret: a2lvc2stc2VjcmV0
  redirectURIs: [/dex/device/callback]
";

async fn broker(extra: &str) -> TestBroker {
    TestBroker::builder().clients(CLIENTS).extra(extra).start().await
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn discovery(b: &TestBroker) -> Value {
    reqwest::get(b.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap()
}

/// `POST /device/code` as the public client `tv`.
async fn device_code(b: &TestBroker, scope: &str) -> Value {
    let response =
        http().post(b.url("/device/code")).form(&[("client_id", "tv"), ("scope", scope)]).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// One poll of `/token` as `tv`: the status and the JSON.
async fn poll(b: &TestBroker, device_code: &str) -> (StatusCode, Value) {
    let response = http()
        .post(b.url("/token"))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code),
            ("client_id", "tv"),
        ])
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

/// Opens the device page at `url` and submits `typed`; returns the answer to the submission.
async fn enter_code(b: &TestBroker, web: &reqwest::Client, url: &str, typed: Option<&str>) -> reqwest::Response {
    let page = web.get(url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let csrf = hidden(&html, "csrf").expect("csrf field on the device page");
    let code = match typed {
        Some(code) => code.to_string(),
        None => hidden_input(&html, "user_code").expect("prefilled user code"),
    };
    web.post(b.url("/device/auth/verify_code"))
        .form(&[("csrf", csrf.as_str()), ("user_code", code.as_str())])
        .send()
        .await
        .unwrap()
}

/// The `value` of the (visible) input `name`.
fn hidden_input(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let rest = &html[at..];
    let start = rest.find("value=\"")? + "value=\"".len();
    let end = rest[start..].find('"')? + start;
    Some(rest[start..end].to_string()).filter(|v| !v.is_empty())
}

/// From `verify_code`'s redirect: `/auth`, the chooser, then `connector`'s login — the
/// password form of `local`, or the mock's round trip through `/callback/mock`. Returns the
/// approval page's URL.
async fn log_in(b: &TestBroker, web: &reqwest::Client, verified: reqwest::Response, connector: &str) -> String {
    assert_eq!(verified.status(), StatusCode::SEE_OTHER, "the code is accepted");
    let auth = location(&verified, &b.base).unwrap();
    assert!(auth.contains("/dex/auth?") && auth.contains("prompt=consent"), "{auth}");
    assert_eq!(query_param(&auth, "redirect_uri").as_deref(), Some("/dex/device/callback"));
    let chooser = web.get(&auth).send().await.unwrap().text().await.unwrap();
    let marker = format!("auth/{connector}?req=");
    let req = chooser.split(marker.as_str()).nth(1).and_then(|s| s.split('"').next()).expect("chooser").to_string();
    let start = web.get(b.url(&format!("/auth/{connector}?req={req}"))).send().await.unwrap();
    let logged_in = if connector == "local" {
        let form = start.text().await.unwrap();
        flow::submit_password(b, web, "local", &form, "admin@example.com", "password").await
    } else {
        let upstream = location(&start, &b.base).expect("the connector's redirect");
        assert!(upstream.contains(&format!("/callback/{connector}?")), "{upstream}");
        web.get(&upstream).send().await.unwrap()
    };
    assert_eq!(logged_in.status(), StatusCode::SEE_OTHER, "login accepted");
    let approval = location(&logged_in, &b.base).unwrap();
    assert!(approval.contains("/approval?req="), "a device login always asks for approval: {approval}");
    approval
}

/// Answers the approval page at `url` with `approval`; returns the redirect.
async fn answer(b: &TestBroker, web: &reqwest::Client, url: &str, approval: &str, user_code: &str) -> String {
    let page = web.get(url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(user_code), "the approval page names the device's code: {page}");
    let (req, csrf) = (hidden(&page, "req").unwrap(), hidden(&page, "csrf").unwrap());
    let done = web
        .post(b.url("/approval"))
        .form(&[("req", req.as_str()), ("csrf", &csrf), ("approval", approval)])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    location(&done, &b.base).unwrap()
}

/// The whole flow through `openidconnect`: discovery advertises the endpoint, the device gets
/// its codes, the browser opens `verification_uri_complete` (prefilled), logs in and approves,
/// the device's poll gets a verified ID token, an access token and a refresh token — and the
/// device code is then gone: a second poll is `invalid_grant` and revokes what it produced.
/// At debug level, the log holds none of the codes and tokens.
#[tokio::test]
async fn a_device_logs_in_through_the_browser_and_redeems_once() {
    let capture = LogCapture::install(Format::Text);
    let b = broker("").await;
    let secrets = full_flow(&b).await;
    let log = capture.text();
    assert!(log.contains("device approved"), "{log}");
    for secret in secrets {
        assert!(!log.contains(&secret), "a secret reached the log: {secret}");
    }
}

/// The same over SQLite: the user code's family lookup and the compare-and-swaps are the
/// backend contract's, nothing SQL-specific.
#[tokio::test]
async fn the_device_flow_works_over_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = portcullis::storage::SqlBackend::sqlite(&dir.path().join("portcullis.sqlite")).await.unwrap();
    let b = TestBroker::builder().clients(CLIENTS).backend(std::sync::Arc::new(sqlite)).start().await;
    full_flow(&b).await;
}

/// The flow of the first test; returns the secrets that passed (device code, user code, tokens).
async fn full_flow(b: &TestBroker) -> Vec<String> {
    let doc = discovery(b).await;
    assert_eq!(doc["device_authorization_endpoint"], format!("{}/device/code", b.issuer));
    let grants = doc["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&"urn:ietf:params:oauth:grant-type:device_code".into()), "{doc}");

    let http = http();
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(b.issuer.clone()).unwrap(), &http).await.unwrap();
    let endpoint = doc["device_authorization_endpoint"].as_str().unwrap().to_string();
    let client = CoreClient::from_provider_metadata(metadata, ClientId::new("tv".into()), None)
        .set_device_authorization_url(DeviceAuthorizationUrl::new(endpoint).unwrap());
    let details: CoreDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .request_async(&http)
        .await
        .expect("device authorization");
    let user_code = details.user_code().secret().clone();
    assert_eq!(user_code.len(), 9, "XXXX-XXXX: {user_code}");
    assert!(user_code.chars().all(|c| c == '-' || "BCDFGHJKLMNPQRSTVWXZ".contains(c)), "{user_code}");
    assert_eq!(details.verification_uri().as_str(), format!("{}/device", b.issuer));
    assert_eq!(details.interval(), std::time::Duration::from_secs(5));
    assert_eq!(details.expires_in(), std::time::Duration::from_secs(300), "expiry.deviceRequests defaults to 5m");

    let web = browser();
    let complete = details.verification_uri_complete().expect("verification_uri_complete").secret().clone();
    let verified = enter_code(b, &web, &complete, None).await;
    let approval = log_in(b, &web, verified, "local").await;
    let back = answer(b, &web, &approval, "approve", &user_code).await;
    assert!(back.starts_with(&b.url("/device/callback?")), "{back}");
    let done = web.get(&back).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    assert!(done.text().await.unwrap().contains("Return to your device"));

    let tokens = client
        .exchange_device_access_token(&details)
        .unwrap()
        .request_async(&http, tokio::time::sleep, None)
        .await
        .expect("the device's poll gets the tokens");
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token.claims(&client.id_token_verifier(), |_: Option<&Nonce>| Ok(())).expect("valid ID token");
    assert_eq!(claims.email().map(|e| e.as_str()), Some("admin@example.com"));
    assert_eq!(claims.audiences()[0].as_str(), "tv");
    let refresh = tokens.refresh_token().expect("offline_access gives a refresh token").secret().clone();
    let userinfo = http.get(b.url("/userinfo")).bearer_auth(tokens.access_token().secret()).send().await.unwrap();
    assert_eq!(userinfo.status(), StatusCode::OK);

    // Redeemed once: the device code is gone, and presenting it again revokes its tokens.
    let (status, body) = poll(b, details.device_code().secret()).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("already redeemed"), "{body}");
    let refreshed = http
        .post(b.url("/token"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh.as_str()), ("client_id", "tv")])
        .send()
        .await
        .unwrap();
    let body: Value = refreshed.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "the replay revoked the grant: {body}");
    let access = tokens.access_token().secret().clone();
    let id_token = id_token.to_string();
    let user_letters = user_code.replace('-', "");
    vec![details.device_code().secret().clone(), user_code, user_letters, access, refresh, id_token]
}

/// Before approval a poll is `authorization_pending`; polling faster than the interval is
/// `slow_down`, and the interval grows by 5 s each time (RFC 8628 §3.5). The code typed in
/// lower case and without the dash is accepted. `/device/token` is Dex's alias of `/token`.
#[tokio::test]
async fn polls_before_approval_are_pending_and_fast_ones_slow_down() {
    let b = broker("").await;
    let codes = device_code(&b, "openid").await;
    let device = codes["device_code"].as_str().unwrap();
    let (status, body) = poll(&b, device).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("authorization_pending")), "{body}");
    let (_, body) = poll(&b, device).await;
    assert_eq!(body["error"], "slow_down", "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("wait 10 seconds"), "{body}");
    let alias = http()
        .post(b.url("/device/token"))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device),
            ("client_id", "tv"),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = alias.json().await.unwrap();
    assert_eq!(body["error"], "slow_down", "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("wait 15 seconds"), "{body}");

    // Another client cannot poll it.
    let other = http()
        .post(b.url("/token"))
        .basic_auth("kiosk", Some("a2lvc2stc2VjcmV0"))
        .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", device)])
        .send()
        .await
        .unwrap();
    assert_eq!(other.json::<Value>().await.unwrap()["error"], "invalid_grant");

    let typed = codes["user_code"].as_str().unwrap().replace('-', "").to_lowercase();
    let web = browser();
    let verified = enter_code(&b, &web, &b.url("/device"), Some(&typed)).await;
    assert_eq!(verified.status(), StatusCode::SEE_OTHER, "lower case without the dash is the same code");
    assert_eq!(query_param(&location(&verified, &b.base).unwrap(), "state").as_deref(), codes["user_code"].as_str());
}

/// Wrong codes show the form again (400) and are throttled per client IP (429 with
/// `Retry-After` past 10); a form without this browser's CSRF token is refused.
#[tokio::test]
async fn wrong_user_codes_are_refused_and_throttled() {
    let b = broker("").await;
    let web = browser();
    let wrong = enter_code(&b, &web, &b.url("/device"), Some("BCDF-GHJK")).await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert!(wrong.text().await.unwrap().contains("unknown, expired or already used"));
    let malformed = enter_code(&b, &web, &b.url("/device"), Some("1234-5678")).await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert!(malformed.text().await.unwrap().contains("a code is 8 letters"));
    let mut last = StatusCode::OK;
    for _ in 0..10 {
        last = enter_code(&b, &web, &b.url("/device"), Some("BCDF-GHJK")).await.status();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS, "guessing is throttled");
    // Even a right code waits now: a guess costs the same whatever it hits.
    let codes = device_code(&b, "openid").await;
    let throttled = enter_code(&b, &web, &b.url("/device"), codes["user_code"].as_str()).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.headers().contains_key(reqwest::header::RETRY_AFTER));

    let forged = browser()
        .post(b.url("/device/auth/verify_code"))
        .form(&[("csrf", "forged"), ("user_code", codes["user_code"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN, "no CSRF cookie, no code");
}

/// After `expiry.deviceRequests` the device hears `expired_token` and the code page refuses
/// the user code.
#[tokio::test]
async fn an_expired_request_is_expired_token() {
    let b = broker("expiry:\n  deviceRequests: 1s\n").await;
    let codes = device_code(&b, "openid").await;
    assert_eq!(codes["expires_in"], 1);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, body) = poll(&b, codes["device_code"].as_str().unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("expired_token")), "{body}");
    let late = enter_code(&b, &browser(), &b.url("/device"), codes["user_code"].as_str()).await;
    assert_eq!(late.status(), StatusCode::BAD_REQUEST);
    let (_, body) = poll(&b, "never-issued").await;
    assert_eq!(body["error"], "invalid_grant", "an unknown device code: {body}");
}

/// A login through a callback connector (the mock), then "Cancel" on the approval page: the
/// device is denied, its poll is `access_denied`.
#[tokio::test]
async fn a_denied_device_hears_access_denied() {
    let b = broker("").await;
    let codes = device_code(&b, "openid").await;
    let user_code = codes["user_code"].as_str().unwrap();
    let web = browser();
    let verified = enter_code(&b, &web, codes["verification_uri_complete"].as_str().unwrap(), None).await;
    let approval = log_in(&b, &web, verified, "mock").await;
    let back = answer(&b, &web, &approval, "deny", user_code).await;
    assert_eq!(query_param(&back, "error").as_deref(), Some("access_denied"), "{back}");
    let page = web.get(&back).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    assert!(page.text().await.unwrap().contains("You denied the device access"));
    let (_, body) = poll(&b, codes["device_code"].as_str().unwrap()).await;
    assert_eq!(body["error"], "access_denied", "{body}");
}

/// The login's code approves the device only in the browser that entered the user code (its
/// PKCE verifier is in that browser's cookie): the callback in another browser is refused
/// and the device stays pending. Once approved, a poll gets the tokens at once, however soon.
#[tokio::test]
async fn the_callback_belongs_to_the_browser_that_entered_the_code() {
    let b = broker("").await;
    let codes = device_code(&b, "openid").await;
    let web = browser();
    let verified = enter_code(&b, &web, codes["verification_uri_complete"].as_str().unwrap(), None).await;
    let approval = log_in(&b, &web, verified, "local").await;
    let back = answer(&b, &web, &approval, "approve", codes["user_code"].as_str().unwrap()).await;
    let elsewhere = browser().get(&back).send().await.unwrap();
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN);
    let (_, body) = poll(&b, codes["device_code"].as_str().unwrap()).await;
    assert_eq!(body["error"], "authorization_pending", "{body}");
    // The right browser still finishes it.
    assert_eq!(web.get(&back).send().await.unwrap().status(), StatusCode::OK);
    let (status, body) = poll(&b, codes["device_code"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["id_token"].is_string() && body["refresh_token"].is_null(), "no offline_access: {body}");
}

/// Dex's PKCE on the device flow: a challenge at `/device/code` makes the poll that would get
/// the tokens need its verifier; without it, or with another, nothing is redeemed.
#[tokio::test]
async fn a_device_challenge_needs_its_verifier() {
    let b = broker("").await;
    let (verifier, challenge) = portcullis_tests::pkce();
    let response = http()
        .post(b.url("/device/code"))
        .form(&[("client_id", "tv"), ("code_challenge", &challenge), ("code_challenge_method", "S256")])
        .send()
        .await
        .unwrap();
    let codes: Value = response.json().await.unwrap();
    let plain = http()
        .post(b.url("/device/code"))
        .form(&[("client_id", "tv"), ("code_challenge", challenge.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(plain.json::<Value>().await.unwrap()["error"], "invalid_request", "plain is off by default");
    let web = browser();
    let verified = enter_code(&b, &web, codes["verification_uri_complete"].as_str().unwrap(), None).await;
    let approval = log_in(&b, &web, verified, "local").await;
    let back = answer(&b, &web, &approval, "approve", codes["user_code"].as_str().unwrap()).await;
    assert_eq!(web.get(&back).send().await.unwrap().status(), StatusCode::OK);
    let device = codes["device_code"].as_str().unwrap();
    let (_, body) = poll(&b, device).await;
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("code_verifier is required"), "{body}");
    let with = |verifier: String| {
        let device = device.to_string();
        let url = b.url("/token");
        async move {
            let response = http()
                .post(url)
                .form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("device_code", device.as_str()),
                    ("client_id", "tv"),
                    ("code_verifier", verifier.as_str()),
                ])
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let (_, body) = with(portcullis_tests::pkce().0).await;
    assert_eq!(body["error"], "invalid_grant", "another verifier: {body}");
    let (status, body) = with(verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A confidential client authenticates at `/device/code` (a wrong secret is `invalid_client`);
/// a client whose redirect URIs lack the device callback is told to add it; audience scopes
/// need the peer's trust here already.
#[tokio::test]
async fn device_clients_authenticate_and_must_register_the_callback() {
    let b = broker("").await;
    let ok = http()
        .post(b.url("/device/code"))
        .basic_auth("kiosk", Some("a2lvc2stc2VjcmV0"))
        .form(&[("scope", "openid")])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let wrong = http()
        .post(b.url("/device/code"))
        .basic_auth("kiosk", Some("wrong"))
        .form(&[("scope", "openid")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let unregistered = http()
        .post(b.url("/device/code"))
        .basic_auth(flow::CLIENT, Some(flow::SECRET))
        .form(&[("scope", "openid")])
        .send()
        .await
        .unwrap();
    assert_eq!(unregistered.status(), StatusCode::BAD_REQUEST);
    let body: Value = unregistered.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");
    assert!(body["error_description"].as_str().unwrap().contains("/dex/device/callback"), "{body}");
    let untrusted = http()
        .post(b.url("/device/code"))
        .form(&[("client_id", "tv"), ("scope", "openid audience:server:client_id:example-app")])
        .send()
        .await
        .unwrap();
    let body: Value = untrusted.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope", "example-app does not trust tv: {body}");
}

/// Without the grant in `oauth2.grantTypes`: no endpoint in discovery, `unsupported_grant_type`
/// at `/device/code` and at `/token`.
#[tokio::test]
async fn the_grant_switched_off_is_not_served() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = portcullis_tests::default_issuer(&listener);
    let yaml = portcullis_tests::base_config(&issuer, "").replacen(
        "oauth2:\n",
        "oauth2:\n  grantTypes: [authorization_code, refresh_token]\n",
        1,
    );
    let yaml = yaml.replacen("staticClients:\n", &format!("staticClients:\n{CLIENTS}"), 1);
    let config = portcullis_tests::config_from_yaml(&yaml);
    let b = TestBroker::builder().listener(listener).issuer(&issuer).config(config).start().await;
    let doc = discovery(&b).await;
    assert!(doc.get("device_authorization_endpoint").is_none(), "{doc}");
    let refused = http().post(b.url("/device/code")).form(&[("client_id", "tv")]).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(refused.json::<Value>().await.unwrap()["error"], "unsupported_grant_type");
    let (status, body) = poll(&b, "anything").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
    assert_eq!(browser().get(b.url("/device")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
}
