//! The `oidc` and `google` connectors end to end: two chained brokers (a downstream Portcullis
//! logging in through an upstream Portcullis, as in Dex's tutorial), the fake Google with its
//! hosted domains, forged ID tokens that must be refused, and config mistakes.

use portcullis::connectors::{CallbackRequest, Connector, Identity, PluginError, Refusal, Registry, Scopes, SpecError};
use portcullis::oidc::sub;
use portcullis::web::token_key;
use portcullis_tests::flow::{self, Pending};
use portcullis_tests::google_fake::{self, Forge, GoogleFake};
use portcullis_tests::logs::{Format, LogCapture};
use portcullis_tests::{TestBroker, browser, engine, hidden, location, plugin, query_param, spec};
use reqwest::StatusCode;
use serde_json::{Value, json};

// ---- chained brokers ----

const DOWNSTREAM_SECRET: &str = "ZG93bnN0cmVhbS1zZWNyZXQ";

/// Grants the approval page at `url` on `b`; returns where the broker sends the browser next.
async fn approve(b: &TestBroker, web: &reqwest::Client, url: &str) -> String {
    let page = web.get(url).send().await.unwrap().text().await.unwrap();
    let (req, csrf) = (hidden(&page, "req").expect("req"), hidden(&page, "csrf").expect("csrf"));
    let done = web
        .post(b.url("/approval"))
        .form(&[("req", req.as_str()), ("csrf", &csrf), ("approval", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER, "approval accepted");
    location(&done, &b.base).unwrap()
}

#[tokio::test]
async fn chained_brokers_carry_the_upstream_identity_and_refresh_through_it() {
    // The downstream's address first: the upstream must know its callback.
    let down_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let down_base = format!("http://{}", down_listener.local_addr().unwrap());
    let up = TestBroker::builder()
        .clients(&format!(
            "- id: downstream\n  name: Downstream Portcullis\n  secret: {DOWNSTREAM_SECRET}\n  \
             redirectURIs: [{down_base}/dex/callback/upstream]"
        ))
        .start()
        .await;
    let connectors = format!(
        r#"- plugin: "{{plugins}}/oidc.wasm"
  id: upstream
  name: Upstream Portcullis
  allowedHosts: ["{up_base}"]
  config:
    issuer: "{up_issuer}"
    clientID: downstream
    clientSecret: {DOWNSTREAM_SECRET}
    scopes: [openid, profile, email, groups]
    insecureEnableGroups: true
    getUserInfo: true
"#,
        up_base = up.base,
        up_issuer = up.issuer,
    );
    let down = TestBroker::builder().listener(down_listener).connectors(&connectors).start().await;

    // The downstream sends the browser to the upstream with PKCE, a nonce and the scopes.
    let web = browser();
    let scopes = "openid profile email groups offline_access federated:id";
    let (page, pending) = flow::authorize(&down, &web, "upstream", scopes).await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    let to_upstream = location(&page, &down.base).unwrap();
    assert!(to_upstream.starts_with(&format!("{}/auth?", up.issuer)), "{to_upstream}");
    let param = |name: &str| query_param(&to_upstream, name);
    assert_eq!(param("client_id").as_deref(), Some("downstream"));
    assert_eq!(param("redirect_uri"), Some(format!("{down_base}/dex/callback/upstream")));
    assert_eq!(param("scope").as_deref(), Some("openid profile email groups offline_access"));
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(param("prompt").as_deref(), Some("consent"));
    assert!(param("nonce").is_some_and(|n| n.len() >= 32), "{to_upstream}");

    // At the upstream: choose its mock connector, approve, come back to the downstream. Cookies
    // ignore ports, so on one 127.0.0.1 the two brokers' login cookies would collide; a second
    // cookie jar stands for the upstream's own host.
    let up_web = browser();
    let chooser = up_web.get(&to_upstream).send().await.unwrap();
    assert_eq!(chooser.status(), StatusCode::OK, "the upstream shows its chooser");
    let html = chooser.text().await.unwrap();
    let req = html.split("auth/mock?req=").nth(1).and_then(|s| s.split('"').next()).expect("chooser offers mock");
    let to_mock = up_web.get(up.url(&format!("/auth/mock?req={req}"))).send().await.unwrap();
    let mock_callback = location(&to_mock, &up.base).expect("mock redirects to the upstream callback");
    let logged_in = up_web.get(&mock_callback).send().await.unwrap();
    assert_eq!(logged_in.status(), StatusCode::SEE_OTHER);
    let mut next = location(&logged_in, &up.base).unwrap();
    if next.contains("/approval") {
        next = approve(&up, &up_web, &next).await;
    }
    assert!(next.starts_with(&format!("{down_base}/dex/callback/upstream?")), "{next}");
    let back = web.get(&next).send().await.unwrap();
    let code = flow::finish(&down, &web, back, &pending).await;
    let tokens = flow::exchange(&down, &code, &pending).await;

    let upstream_sub = sub::encode("0-385-28089-0", "mock");
    let expected = |claims: &Value| {
        assert_eq!(claims["sub"], sub::encode(&upstream_sub, "upstream"));
        assert_eq!(claims["email"], "kilgore@kilgore.trout");
        assert_eq!(claims["email_verified"], true);
        assert_eq!(claims["name"], "Kilgore Trout");
        assert_eq!(claims["preferred_username"], "kilgore");
        assert_eq!(claims["groups"], json!(["authors"]));
        assert_eq!(claims["federated_claims"], json!({"connector_id": "upstream", "user_id": upstream_sub}));
    };
    expected(&tokens.claims);

    // Refresh goes through the upstream refresh token.
    let first = tokens.refresh_token().expect("offline_access gives a refresh token").to_string();
    let refreshed = flow::refresh(&down, &first).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: Value = refreshed.json().await.unwrap();
    expected(&flow::claims(refreshed["id_token"].as_str().unwrap()));
    let second = refreshed["refresh_token"].as_str().unwrap().to_string();

    // Revoke the upstream family (found through both brokers' storage): the downstream refresh fails.
    let now = portcullis::broker::now();
    let (stored, _) = down.broker.store.refresh_token(&token_key(&second), now).await.unwrap().unwrap();
    let data: Value = serde_json::from_slice(stored.identity.connector_data.as_deref().unwrap()).unwrap();
    let upstream_token = data["refresh_token"].as_str().expect("the upstream refresh token is kept");
    let (upstream_stored, _) = up.broker.store.refresh_token(&token_key(upstream_token), now).await.unwrap().unwrap();
    assert_eq!(upstream_stored.client_id, "downstream");
    up.broker.store.revoke_grant(&upstream_stored.family).await.unwrap();
    let refused = flow::refresh(&down, &second).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
}

// ---- the fake Google ----

fn google_user(hd: Option<&str>, email_verified: Value) -> Value {
    let mut user = json!({
        "sub": "109876543210987654321",
        "email": "sam@acme.test",
        "email_verified": email_verified,
        "name": "Sam Ple",
        "given_name": "Sam",
        "family_name": "Ple",
        "picture": "https://lh3.googleusercontent.com/a/fake",
        "locale": "en",
    });
    if let Some(hd) = hd {
        user["hd"] = json!(hd);
    }
    user
}

/// A broker with the google connector pointed at `fake`; `extra` is more config YAML, where
/// `{issuer}` is the broker's issuer.
async fn google_broker(fake: &GoogleFake, extra: &str) -> TestBroker {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/dex", listener.local_addr().unwrap());
    let connectors = format!(
        r#"- plugin: "{{plugins}}/google.wasm"
  id: google
  name: Google
  allowedHosts: ["{fake}"]
  config:
    issuer: "{fake}"
    clientID: {client}
    clientSecret: {secret}
{extra}"#,
        fake = fake.issuer,
        client = google_fake::CLIENT_ID,
        secret = google_fake::CLIENT_SECRET,
        extra = extra.replace("{issuer}", &issuer),
    );
    TestBroker::builder().listener(listener).connectors(&connectors).start().await
}

/// Starts a login through Google and follows the fake's redirect back to the broker's
/// callback; returns the broker's answer to the callback.
async fn google_login(
    b: &TestBroker,
    fake: &GoogleFake,
    scopes: &str,
) -> (reqwest::Response, Pending, reqwest::Client) {
    let web = browser();
    let (page, pending) = flow::authorize(b, &web, "google", scopes).await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    let to_google = location(&page, &b.base).unwrap();
    assert!(to_google.starts_with(&format!("{}/o/oauth2/v2/auth?", fake.issuer)), "{to_google}");
    let from_google = web.get(&to_google).send().await.unwrap();
    assert_eq!(from_google.status(), StatusCode::SEE_OTHER, "the fake signs in and redirects back");
    let callback = location(&from_google, &fake.issuer).unwrap();
    assert!(callback.starts_with(&b.url("/callback")), "{callback}");
    (web.get(&callback).send().await.unwrap(), pending, web)
}

/// Asserts `response` is the error page `status` with `title`, and sends no code anywhere.
async fn assert_refused(response: reqwest::Response, status: StatusCode, title: &str, what: &str) {
    assert_eq!(response.status(), status, "{what}");
    assert!(response.headers().get(reqwest::header::LOCATION).is_none(), "{what}: no redirect, so no code");
    let page = response.text().await.unwrap();
    assert!(page.contains(title), "{what}: {page}");
}

#[tokio::test]
async fn google_hosted_domain_login_with_refresh() {
    let fake = GoogleFake::start(google_user(Some("acme.test"), json!(true))).await;
    let b = google_broker(&fake, "    hostedDomains: [acme.test]\n").await;
    let (back, pending, web) = google_login(&b, &fake, "openid profile email offline_access federated:id").await;

    let sent = fake.last_authorize();
    assert_eq!(sent.get("hd").map(String::as_str), Some("acme.test"));
    assert_eq!(sent.get("access_type").map(String::as_str), Some("offline"));
    assert_eq!(sent.get("prompt").map(String::as_str), Some("consent"));
    assert_eq!(sent.get("scope").map(String::as_str), Some("openid profile email"));
    assert_eq!(sent.get("code_challenge_method").map(String::as_str), Some("S256"));
    assert!(sent.get("nonce").is_some_and(|n| n.len() >= 32));

    let code = flow::finish(&b, &web, back, &pending).await;
    let tokens = flow::exchange(&b, &code, &pending).await;
    let expected = |claims: &Value| {
        assert_eq!(claims["sub"], sub::encode("109876543210987654321", "google"));
        assert_eq!(claims["email"], "sam@acme.test");
        assert_eq!(claims["email_verified"], true);
        assert_eq!(claims["name"], "Sam Ple");
        assert_eq!(claims["federated_claims"], json!({"connector_id": "google", "user_id": "109876543210987654321"}));
    };
    expected(&tokens.claims);

    // Google answers a refresh with a new ID token and no new refresh token: the old one is kept.
    let first = tokens.refresh_token().unwrap().to_string();
    let refreshed = flow::refresh(&b, &first).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: Value = refreshed.json().await.unwrap();
    expected(&flow::claims(refreshed["id_token"].as_str().unwrap()));
    let second = refreshed["refresh_token"].as_str().unwrap().to_string();
    let again = flow::refresh(&b, &second).await;
    assert_eq!(again.status(), StatusCode::OK, "the kept upstream refresh token still works");
    let third: Value = again.json().await.unwrap();

    // Revoked at Google (a password change): the broker refuses the refresh.
    fake.revoke_refresh_tokens();
    let refused = flow::refresh(&b, third["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(refused.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn google_account_outside_the_hosted_domains_is_denied() {
    let fake = GoogleFake::start(google_user(None, json!(true))).await;
    let b = google_broker(&fake, "    hostedDomains: [acme.test, widgets.test]\n").await;
    for (hd, what) in [(None, "no hd (a consumer account)"), (Some("other.test"), "another domain")] {
        fake.set_user(google_user(hd, json!(true)));
        let (back, _, _) = google_login(&b, &fake, "openid email").await;
        assert_eq!(fake.last_authorize().get("hd").map(String::as_str), Some("*"), "several domains: any");
        assert_refused(back, StatusCode::FORBIDDEN, "Access denied", what).await;
    }
}

#[tokio::test]
async fn google_email_verified_as_a_string_is_accepted_and_false_is_denied() {
    let fake = GoogleFake::start(google_user(None, json!("true"))).await;
    // Dex's shared callback as redirectURI: the broker routes it by state.
    let b = google_broker(&fake, "    promptType: \"\"\n    redirectURI: \"{issuer}/callback\"\n").await;
    let (back, pending, web) = google_login(&b, &fake, "openid email").await;
    assert_eq!(fake.last_authorize().get("redirect_uri"), Some(&b.url("/callback")));
    assert_eq!(fake.last_authorize().get("prompt"), None, "an empty promptType sends no prompt");
    assert_eq!(fake.last_authorize().get("hd"), None, "no hostedDomains, no hd");
    let code = flow::finish(&b, &web, back, &pending).await;
    let tokens = flow::exchange(&b, &code, &pending).await;
    assert_eq!(tokens.claims["email"], "sam@acme.test");
    assert_eq!(tokens.claims["email_verified"], true);
    assert!(tokens.refresh_token().is_none(), "no offline_access, no refresh token");

    fake.set_user(google_user(None, json!(false)));
    let (back, _, _) = google_login(&b, &fake, "openid email").await;
    assert_refused(back, StatusCode::FORBIDDEN, "Access denied", "unverified email").await;
}

#[tokio::test]
async fn forged_upstream_id_tokens_are_refused() {
    let fake = GoogleFake::start(google_user(None, json!(true))).await;
    // Listed as Keycloak or Auth0 do: HMAC and an algorithm the host lacks must not break logins.
    fake.set_signing_algs(&["RS256", "HS256", "ES512"]);
    let b = google_broker(&fake, "").await;
    let forgeries = [
        Forge::WrongNonce,
        Forge::WrongAudience,
        Forge::Expired,
        Forge::UnknownKey,
        Forge::WrongIssuer,
        Forge::AlgNone,
        Forge::Hs256,
        Forge::SeveralAudiencesWrongAzp,
        Forge::SeveralAudiencesNoAzp,
    ];
    for forge in forgeries {
        fake.forge(forge);
        let (back, _, _) = google_login(&b, &fake, "openid email").await;
        assert_refused(back, StatusCode::BAD_GATEWAY, "Login failed", &format!("{forge:?}")).await;
    }
    // The same login with an honest token goes through: the refusals were about the token.
    fake.forge(Forge::Nothing);
    let (back, pending, web) = google_login(&b, &fake, "openid email").await;
    let code = flow::finish(&b, &web, back, &pending).await;
    assert_eq!(flow::exchange(&b, &code, &pending).await.claims["email"], "sam@acme.test");
}

/// Logs in through `connector` against `fake` with the connector API alone.
async fn connector_login(connector: &Connector, fake: &GoogleFake, scopes: Scopes) -> Result<Identity, PluginError> {
    let callback = "http://127.0.0.1:9/dex/callback/x";
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let redirect = connector.login_url(scopes, callback, "st").await.unwrap();
    let to = location(&http.get(&redirect.url).send().await.unwrap(), &fake.issuer).expect("the fake redirects back");
    let query = url::Url::parse(&to).unwrap().query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let request = CallbackRequest {
        method: "GET".into(),
        query,
        callback_url: callback.into(),
        state_data: redirect.state_data,
        ..Default::default()
    };
    connector.handle_callback(scopes, request).await
}

/// A refresh that brings no ID token: without getUserInfo the identity stays exactly as the ID
/// token made it (no userinfo call); with it, userinfo is written over it, keeping the groups
/// and verified email userinfo leaves out. Then the refresh errors: an outage is `Upstream`
/// (the client may retry), a revoked refresh token `Denied` (the client must log in again).
#[tokio::test]
async fn oidc_refresh_without_id_token_and_refresh_errors() {
    let mut user = google_user(None, json!(true));
    user["groups"] = json!(["admins"]);
    let fake = GoogleFake::start(user).await;
    let config = json!({
        "issuer": fake.issuer,
        "clientID": google_fake::CLIENT_ID,
        "clientSecret": google_fake::CLIENT_SECRET,
        "insecureEnableGroups": true,
    });
    let mut plain = spec("plain", plugin("oidc"), config.clone());
    plain.allowed_hosts = Some(vec![fake.issuer.clone()]);
    let mut info = spec("info", plugin("oidc"), config);
    info.config["getUserInfo"] = json!(true);
    info.allowed_hosts = Some(vec![fake.issuer.clone()]);
    let registry = Registry::load(&engine(), &[plain, info], None).await.unwrap();
    let scopes = Scopes { offline_access: true, groups: true };
    let expected = |id: &Identity, username: &str, what: &str| {
        assert_eq!(id.user_id, "109876543210987654321", "{what}");
        assert_eq!(id.username, username, "{what}");
        assert_eq!(id.email.as_deref(), Some("sam@acme.test"), "{what}");
        assert!(id.email_verified, "{what}");
        assert_eq!(id.groups, ["admins"], "{what}");
        assert!(id.connector_data.is_some(), "{what}: the upstream refresh token is kept");
    };

    fake.set_refresh_id_token(false);
    fake.set_userinfo(json!({"sub": "109876543210987654321", "name": "Sam Renamed", "email": "sam@acme.test"}));
    let plain = registry.get("plain").unwrap();
    let first = connector_login(plain, &fake, scopes).await.unwrap();
    expected(&first, "Sam Ple", "plain login");
    let calls = fake.userinfo_calls();
    let refreshed = plain.refresh(scopes, first.clone()).await.unwrap();
    assert_eq!(refreshed, first, "no ID token and no getUserInfo: the identity is unchanged");
    assert_eq!(fake.userinfo_calls(), calls, "getUserInfo is false: userinfo is not asked");

    let info = registry.get("info").unwrap();
    fake.set_userinfo(json!({"sub": "109876543210987654321", "name": "Sam Ple", "email": "sam@acme.test",
        "email_verified": true, "groups": ["admins"]}));
    let first = connector_login(info, &fake, scopes).await.unwrap();
    expected(&first, "Sam Ple", "getUserInfo login");
    fake.set_userinfo(json!({"sub": "109876543210987654321", "name": "Sam Renamed", "email": "sam@acme.test"}));
    let refreshed = info.refresh(scopes, first.clone()).await.unwrap();
    expected(&refreshed, "Sam Renamed", "getUserInfo refresh");

    fake.set_token_unavailable(true);
    let err = info.refresh(scopes, refreshed.clone()).await.unwrap_err();
    assert!(matches!(err.refusal(), Some(Refusal::Upstream(m)) if m.contains("503")), "outage: {err:?}");
    fake.set_token_unavailable(false);
    fake.revoke_refresh_tokens();
    let err = info.refresh(scopes, refreshed).await.unwrap_err();
    assert!(matches!(err.refusal(), Some(Refusal::Denied(m)) if m.contains("invalid_grant")), "revoked: {err:?}");
    let data: Value = serde_json::from_slice(first.connector_data.as_deref().unwrap()).unwrap();
    let upstream_token = data["refresh_token"].as_str().expect("the upstream refresh token is kept");
    assert!(!format!("{err:?}").contains(upstream_token), "no refresh token in the error");
}

/// The same forgeries through the connectors alone, to check each is refused for its own
/// reason; the generic oidc connector (with getUserInfo) runs against the fake Google too.
#[tokio::test]
async fn each_forgery_is_refused_for_its_own_reason() {
    let fake = GoogleFake::start(google_user(None, json!(true))).await;
    fake.set_signing_algs(&["RS256", "HS256", "ES512"]);
    let config = json!({
        "issuer": fake.issuer,
        "clientID": google_fake::CLIENT_ID,
        "clientSecret": google_fake::CLIENT_SECRET,
    });
    let mut google = spec("google", plugin("google"), config.clone());
    google.allowed_hosts = Some(vec![fake.issuer.clone()]);
    let mut oidc = spec("oidc", plugin("oidc"), config);
    oidc.config["getUserInfo"] = json!(true);
    oidc.allowed_hosts = Some(vec![fake.issuer.clone()]);
    let registry = Registry::load(&engine(), &[google, oidc], None).await.unwrap();
    let cases = [
        ("google", Forge::WrongNonce, "its nonce is not the one this login sent"),
        ("google", Forge::WrongAudience, "InvalidAudience"),
        ("google", Forge::Expired, "ExpiredSignature"),
        ("google", Forge::UnknownKey, "no key in the JWKS matches kid"),
        ("google", Forge::WrongIssuer, "InvalidIssuer"),
        ("google", Forge::AlgNone, "malformed JWS"),
        ("google", Forge::Hs256, "JWS is signed with HS256, which is not among the accepted algorithms"),
        ("google", Forge::SeveralAudiencesWrongAzp, "it has several audiences and its azp is not this client"),
        ("google", Forge::SeveralAudiencesNoAzp, "it has several audiences and its azp is not this client"),
        ("oidc", Forge::WrongIssuer, "InvalidIssuer"),
        ("oidc", Forge::Hs256, "JWS is signed with HS256"),
        ("oidc", Forge::SeveralAudiencesNoAzp, "it has several audiences and its azp is not this client"),
        ("oidc", Forge::WrongNonce, "its nonce is not the one this login sent"),
        ("oidc", Forge::OtherUserinfoSub, "the userinfo response is about another subject"),
    ];
    for (id, forge, reason) in cases {
        fake.forge(forge);
        let err = connector_login(registry.get(id).unwrap(), &fake, Scopes::default()).await.unwrap_err();
        let Some(Refusal::Upstream(message)) = err.refusal() else { panic!("{id} {forge:?}: {err:?}") };
        assert!(message.contains(reason), "{id} {forge:?}: {message}");
    }
    // And the oidc connector maps an honest answer, userinfo merged in.
    fake.forge(Forge::Nothing);
    let identity = connector_login(registry.get("oidc").unwrap(), &fake, Scopes::default()).await.unwrap();
    assert_eq!(identity.user_id, "109876543210987654321");
    assert_eq!(identity.username, "Sam Ple");
    assert_eq!(identity.email.as_deref(), Some("sam@acme.test"));
    assert!(identity.email_verified);
    assert!(identity.connector_data.is_none(), "no offline_access, nothing kept");
}

/// A Google login with refresh, then a refused (forged) one, at debug level: no code, token,
/// nonce or client secret that passed through the connector reaches the broker's log.
#[tokio::test]
async fn no_upstream_secret_reaches_the_logs() {
    let capture = LogCapture::install(Format::Text);
    let fake = GoogleFake::start(google_user(Some("acme.test"), json!(true))).await;
    let b = google_broker(&fake, "    hostedDomains: [acme.test]\n").await;
    let (back, pending, web) = google_login(&b, &fake, "openid email offline_access").await;
    let nonce = fake.last_authorize().get("nonce").cloned().unwrap();
    let code = flow::finish(&b, &web, back, &pending).await;
    let tokens = flow::exchange(&b, &code, &pending).await;
    let refreshed = flow::refresh(&b, tokens.refresh_token().unwrap()).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    fake.forge(Forge::WrongNonce);
    let (refused, _, _) = google_login(&b, &fake, "openid email").await;
    assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);

    let logs = capture.text();
    assert!(logs.contains("the upstream ID token was refused"), "the refusal is logged");
    let mut secrets = fake.issued();
    assert!(secrets.len() >= 6, "codes and tokens were issued: {}", secrets.len());
    secrets.extend([google_fake::CLIENT_SECRET.to_string(), nonce]);
    for secret in secrets {
        assert!(!logs.contains(&secret), "a secret reached the logs");
    }
}

// ---- config ----

/// The config refusal `describe` gives for `config` on `plugin_name`.
async fn refusal(plugin_name: &str, config: Value) -> String {
    let errors = Registry::load(&engine(), &[spec(plugin_name, plugin(plugin_name), config.clone())], None)
        .await
        .expect_err("config refused");
    let [SpecError::Plugin(PluginError::Refused { refusal: Refusal::Config(message), .. })] = errors.as_slice() else {
        panic!("{config}: {errors:?}")
    };
    message.clone()
}

#[tokio::test]
async fn config_mistakes_are_refused_naming_the_key() {
    let oidc = |extra: Value| {
        let mut c = json!({"issuer": "https://idp.example.com", "clientID": "a", "clientSecret": "s"});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    let google = |extra: Value| {
        let mut c = json!({"clientID": "a", "clientSecret": "s"});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    let cases = [
        ("oidc", json!({"issuer": "https://idp.example.com", "clientId": "a", "clientSecret": "s"}), "clientId"),
        ("oidc", oidc(json!({"userIdKey": "email"})), "userIdKey"),
        ("oidc", oidc(json!({"issuer": "idp.example.com"})), "issuer: \"idp.example.com\" is not an absolute URL"),
        ("oidc", oidc(json!({"promptType": "always"})), "promptType: \"always\""),
        ("oidc", oidc(json!({"insecureSkipVerify": true})), "insecureSkipVerify: TLS certificate verification"),
        ("google", google(json!({"hostedDomain": ["acme.test"]})), "hostedDomain"),
        (
            "google",
            google(json!({"serviceAccountFilePath": "/sa.json"})),
            "directory service requires the domainToAdminEmail option to be configured",
        ),
        ("google", google(json!({"clientSecret": ""})), "clientSecret must not be empty"),
    ];
    for (plugin_name, config, wanted) in cases {
        let message = refusal(plugin_name, config.clone()).await;
        assert!(message.contains(wanted), "{plugin_name} {config}: {message}");
    }
    // A good block loads (no network at load time).
    Registry::load(&engine(), &[spec("google", plugin("google"), google(json!({})))], None).await.unwrap();
    Registry::load(&engine(), &[spec("oidc", plugin("oidc"), oidc(json!({})))], None).await.unwrap();
}

// ---- allowedHosts implied from the config ----

/// A Dex `oidc` block (Dex's documented keys, `type: oidc`) at the fake issuer with no
/// `allowedHosts`: the broker implies the issuer's origin, and discovery, the token exchange
/// and the keys (all on the issuer's host) are reached. The same block as `type: google` with
/// `issuer` pointing at the fake gets that origin too, and not Google's own hosts.
#[tokio::test]
async fn dex_oidc_and_google_blocks_without_allowed_hosts_log_in() {
    let plugins = format!("plugins:\n  dir: \"{}\"\n", plugin("oidc").parent().unwrap().display());
    for kind in ["oidc", "google"] {
        let fake = GoogleFake::start(google_user(None, json!(true))).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = portcullis_tests::default_issuer(&listener);
        let block = format!(
            r#"- type: {kind}
  id: google
  name: Google via {kind}
  config:
    issuer: "{fake}"
    clientID: {client}
    clientSecret: {secret}
    redirectURI: {issuer}/callback
"#,
            fake = fake.issuer,
            client = google_fake::CLIENT_ID,
            secret = google_fake::CLIENT_SECRET,
        );
        let b = TestBroker::builder().listener(listener).connectors(&block).extra(&plugins).start().await;
        let (back, pending, web) = google_login(&b, &fake, "openid profile email").await;
        let code = flow::finish(&b, &web, back, &pending).await;
        let tokens = flow::exchange(&b, &code, &pending).await;
        assert_eq!(tokens.claims["email"], "sam@acme.test", "{kind}");
    }
}
