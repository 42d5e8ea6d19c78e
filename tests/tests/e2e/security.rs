//! Regression tests for the outside audit's findings (issue 19) on the HTTP side: each
//! attack that got through, run against a real broker on loopback, must now be refused.

use portcullis::storage::{Kind, Record, Result as StorageResult};
use portcullis_tests::flow::{self, CALLBACK, CLIENT, Pending};
use portcullis_tests::{TestBroker, browser, hidden, location, query_param};
use reqwest::StatusCode;
use reqwest::header;
use serde_json::Value;

const ADMIN: &str = "admin@example.com";
const PASSWORD: &str = "password";

/// Logs admin in through the local database and returns the code and what the RP kept.
async fn code_for(b: &TestBroker, web: &reqwest::Client, scopes: &str) -> (String, Pending) {
    let (form, pending) = flow::authorize(b, web, "local", scopes).await;
    let form = form.text().await.unwrap();
    let done = flow::submit_password(b, web, "local", &form, ADMIN, PASSWORD).await;
    (flow::finish(b, web, done, &pending).await, pending)
}

/// The issuer's own config with `skipApprovalScreen: true`.
async fn skip_approval_broker() -> TestBroker {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = portcullis_tests::default_issuer(&listener);
    let yaml =
        portcullis_tests::base_config(&issuer, "").replace("skipApprovalScreen: false", "skipApprovalScreen: true");
    TestBroker::builder()
        .listener(listener)
        .issuer(&issuer)
        .config(portcullis_tests::config_from_yaml(&yaml))
        .start()
        .await
}

/// `GET /auth` for example-app with no connector hint: what a second login in this browser sees.
async fn authorize_again(b: &TestBroker, web: &reqwest::Client) -> reqwest::Response {
    let url = format!("{}/auth?client_id={CLIENT}&redirect_uri={CALLBACK}&response_type=code&scope=openid", b.issuer);
    web.get(url).send().await.unwrap()
}

/// F8: with skipApprovalScreen, concurrent password posts on one login used to get a code each.
#[tokio::test]
async fn concurrent_password_posts_on_one_login_get_one_code() {
    let b = skip_approval_broker().await;
    let web = browser();
    let (form, _pending) = flow::authorize(&b, &web, "local", "openid").await;
    let form = form.text().await.unwrap();
    let posts = (0..6).map(|_| flow::submit_password(&b, &web, "local", &form, ADMIN, PASSWORD));
    let answers = futures::future::join_all(posts).await;
    let codes: Vec<String> = answers
        .iter()
        .filter_map(|r| location(r, &b.base))
        .filter(|to| to.starts_with(CALLBACK))
        .filter_map(|to| query_param(&to, "code"))
        .collect();
    assert_eq!(codes.len(), 1, "one login, one code: {codes:?}");
    let refused: Vec<StatusCode> = answers.iter().map(|r| r.status()).filter(|s| *s != StatusCode::SEE_OTHER).collect();
    assert_eq!(refused.len(), 5, "the others are told the login already finished: {refused:?}");
}

/// F9: replaying a used public-client code without the verifier used to revoke the victim's tokens.
#[tokio::test]
async fn replaying_a_used_code_without_proof_revokes_nothing() {
    let b = TestBroker::builder().start().await;
    let web = browser();
    let (code, pending) = code_for(&b, &web, "openid offline_access").await;
    let tokens = flow::exchange(&b, &code, &pending).await;
    let access = tokens.json["access_token"].as_str().unwrap().to_string();
    // The attacker saw the code (a log, a referrer) but not the verifier.
    let replay =
        flow::token(&b, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CALLBACK)]).await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    let userinfo = reqwest::Client::new().get(b.url("/userinfo")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(userinfo.status(), StatusCode::OK, "the victim's access token still works");
    let refreshed = flow::refresh(&b, tokens.refresh_token().unwrap()).await;
    assert_eq!(refreshed.status(), StatusCode::OK, "and so does the refresh token");
    // The same replay *with* the verifier is the real client or a thief holding everything: revoke.
    let proven = flow::token(
        &b,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &pending.verifier),
        ],
    )
    .await;
    assert_eq!(proven.status(), StatusCode::BAD_REQUEST);
    let after = reqwest::Client::new().get(b.url("/userinfo")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED, "a proven replay revokes the grant");
}

/// I1: every authorization response names the issuer (RFC 9207), and discovery says so.
#[tokio::test]
async fn authorization_responses_carry_iss() {
    let b = TestBroker::builder().start().await;
    let web = browser();
    let (form, pending) = flow::authorize(&b, &web, "local", "openid").await;
    let form = form.text().await.unwrap();
    let done = flow::submit_password(&b, &web, "local", &form, ADMIN, PASSWORD).await;
    let approval = location(&done, &b.base).unwrap();
    let page = web.get(&approval).send().await.unwrap().text().await.unwrap();
    let (req, csrf) = (hidden(&page, "req").unwrap(), hidden(&page, "csrf").unwrap());
    let back = web
        .post(b.url("/approval"))
        .form(&[("req", req.as_str()), ("csrf", &csrf), ("approval", "approve")])
        .send()
        .await
        .unwrap();
    let to = location(&back, &b.base).unwrap();
    assert_eq!(query_param(&to, "iss").as_deref(), Some(b.issuer.as_str()), "{to}");
    assert_eq!(query_param(&to, "state").as_deref(), Some(pending.state.as_str()));
    let error = web
        .get(format!("{}/auth?client_id={CLIENT}&redirect_uri={CALLBACK}&response_type=token&scope=openid", b.issuer))
        .send()
        .await
        .unwrap();
    let to = location(&error, &b.base).unwrap();
    assert_eq!(query_param(&to, "error").as_deref(), Some("unsupported_response_type"));
    assert_eq!(query_param(&to, "iss").as_deref(), Some(b.issuer.as_str()), "{to}");
    let doc: Value = web.get(b.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
}

/// F1: tens of thousands of audience scopes used to take seconds of CPU each.
#[tokio::test]
async fn huge_scope_lists_and_bodies_are_refused_at_once() {
    let b = TestBroker::builder().start().await;
    let web = browser();
    let scopes: String = (0..500).map(|i| format!(" audience:server:client_id:peer{i}")).collect();
    let answer = web
        .post(b.url("/auth"))
        .form(&[
            ("client_id", CLIENT),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
            ("scope", &format!("openid{scopes}")),
        ])
        .send()
        .await
        .unwrap();
    let to = location(&answer, &b.base).expect("an error for the client");
    assert_eq!(query_param(&to, "error").as_deref(), Some("invalid_scope"));
    let description = query_param(&to, "error_description").unwrap();
    assert!(description.contains("at most 4096") || description.contains("more than 64"), "{description}");
    let many: String = (0..65).map(|i| format!(" audience:server:client_id:p{i}")).collect();
    let answer = web
        .get(format!(
            "{}/auth?client_id={CLIENT}&redirect_uri={CALLBACK}&response_type=code&scope=openid{}",
            b.issuer,
            many.replace(' ', "%20")
        ))
        .send()
        .await
        .unwrap();
    let to = location(&answer, &b.base).unwrap();
    assert!(query_param(&to, "error_description").unwrap().contains("more than 64 scopes"), "{to}");
    // A body far beyond any form is refused before it is parsed.
    let big = "x".repeat(200 * 1024);
    let answer = web.post(b.url("/auth")).form(&[("client_id", CLIENT), ("state", &big)]).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// F2: every `/auth` stored a request with unbounded state and nonce for 24 hours, from anyone.
#[tokio::test]
async fn authorization_requests_are_bounded_and_throttled() {
    let b = TestBroker::builder().start().await;
    let web = browser();
    let auth = |state: String, nonce: String| {
        let web = web.clone();
        let url = url::Url::parse_with_params(
            &b.url("/auth"),
            &[
                ("client_id", CLIENT),
                ("redirect_uri", CALLBACK),
                ("response_type", "code"),
                ("scope", "openid"),
                ("state", &state),
                ("nonce", &nonce),
                ("code_challenge", "0123456789012345678901234567890123456789abc"),
                ("code_challenge_method", "S256"),
                ("connector_id", "local"),
            ],
        )
        .unwrap();
        async move { web.get(url.as_str()).send().await.unwrap() }
    };
    let to = location(&auth("s".repeat(3000), "n".into()).await, &b.base).unwrap();
    assert_eq!(query_param(&to, "error").as_deref(), Some("invalid_request"));
    assert_eq!(query_param(&to, "state"), None, "an oversized state is not echoed");
    let to = location(&auth("s".into(), "n".repeat(600)).await, &b.base).unwrap();
    assert!(query_param(&to, "error_description").unwrap().contains("nonce"), "{to}");
    // A pending login (no method chosen yet) lives 15 minutes, not `expiry.authRequests`.
    let started = auth("s".into(), "n".into()).await;
    let req = query_param(&location(&started, &b.base).unwrap(), "req").unwrap();
    let (pending, _) = b.broker.store.auth_request(&req, portcullis::clock::now()).await.unwrap().unwrap();
    assert!(pending.expires_at - pending.created_at <= 15 * 60, "{}", pending.expires_at - pending.created_at);
    // One address may start only so many: a flood is cut off with 429 and Retry-After.
    let mut throttled = None;
    for _ in 0..300 {
        let answer = auth("s".into(), "n".into()).await;
        if answer.status() == StatusCode::TOO_MANY_REQUESTS {
            throttled = Some(answer);
            break;
        }
    }
    let throttled = throttled.expect("a flood from one address is throttled");
    assert!(throttled.headers().get(header::RETRY_AFTER).is_some());
}

/// F5: wrong passwords used to be unlimited on one login and one account.
#[tokio::test]
async fn password_guessing_is_cut_off_per_login_and_slowed_per_account() {
    let b = TestBroker::builder().start().await;
    let web = browser();
    let (form, _pending) = flow::authorize(&b, &web, "local", "openid").await;
    let mut form = form.text().await.unwrap();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let answer = flow::submit_password(&b, &web, "local", &form, ADMIN, "wrong").await;
        statuses.push(answer.status());
        form = answer.text().await.unwrap();
    }
    assert_eq!(statuses[..4], [StatusCode::UNAUTHORIZED; 4], "{statuses:?}");
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS, "the fifth wrong password ends the login");
    assert!(hidden(&form, "req").is_none(), "the stopped login shows no form any more");
    // Per account: more attempts in a burst than PASSWORD_PER_ACCOUNT_BURST are slowed down,
    // whatever login or browser they come from.
    let mut throttled = false;
    for _ in 0..portcullis::throttle::PASSWORD_PER_ACCOUNT_BURST {
        let web = browser();
        let (page, _) = flow::authorize(&b, &web, "local", "openid").await;
        let page = page.text().await.unwrap();
        let answer = flow::submit_password(&b, &web, "local", &page, ADMIN, "wrong").await;
        if answer.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(answer.headers().get(header::RETRY_AFTER).is_some());
            assert!(answer.text().await.unwrap().contains("Too many attempts"));
            throttled = true;
            break;
        }
    }
    assert!(throttled, "the account's burst is spent: attempts wait");
    let metrics = portcullis::metrics::global().render();
    assert!(metrics.contains("outcome=\"throttled\""), "throttling is counted");
}

/// F3: a local user removed from the config kept logging in through an SSO session.
#[tokio::test]
async fn removing_a_user_ends_their_single_sign_on() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, portcullis_tests::base_config("{issuer}", "")).unwrap();
    let b = TestBroker::builder().file(&file).start().await;
    let web = browser();
    let _ = code_for(&b, &web, "openid").await;
    // SSO works while the user exists: straight to approval, no password form.
    let again = authorize_again(&b, &web).await;
    let to = location(&again, &b.base).expect("a redirect");
    assert!(to.contains("/approval"), "SSO answers while the user exists: {to}");
    let text = std::fs::read_to_string(&file).unwrap();
    let removed = text.replace("- email: admin@example.com", "- email: someone-else@example.com");
    std::fs::write(&file, removed).unwrap();
    assert!(b.broker.generations.reload().await.unwrap().changed);
    let after = authorize_again(&b, &web).await;
    // The chooser again (the session was ended), not the approval page.
    assert_eq!(after.status(), StatusCode::OK);
    assert!(after.text().await.unwrap().contains("Log in with"), "no SSO for a removed user");
}

/// F11: a bare cross-site `GET /logout` used to end the session.
#[tokio::test]
async fn logout_without_a_hint_asks_first() {
    let b = TestBroker::builder().start().await;
    let web = browser();
    let (code, pending) = code_for(&b, &web, "openid offline_access").await;
    let tokens = flow::exchange(&b, &code, &pending).await;
    let page = web.get(b.url("/logout")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains("Log out?"), "a confirmation, not a logout: {page}");
    // The session survived: SSO still answers.
    let sso = authorize_again(&b, &web).await;
    assert!(location(&sso, &b.base).unwrap().contains("/approval"));
    // A forged POST without the form's token is asked again; the real form logs out.
    let forged = web.post(b.url("/logout")).form(&[("csrf", "guess")]).send().await.unwrap();
    assert!(forged.text().await.unwrap().contains("Log out?"));
    let csrf = hidden(&page, "csrf").unwrap();
    let done = web.post(b.url("/logout")).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert!(done.text().await.unwrap().contains("You are logged out"));
    // I5: logging out revoked what the session produced.
    let refused = flow::refresh(&b, tokens.refresh_token().unwrap()).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "the session's refresh token is revoked");
    let access = tokens.json["access_token"].as_str().unwrap();
    let userinfo = reqwest::Client::new().get(b.url("/userinfo")).bearer_auth(access).send().await.unwrap();
    assert_eq!(userinfo.status(), StatusCode::UNAUTHORIZED, "and its access token");
}

/// I5: access tokens may live shorter than ID tokens (`expiry.accessTokens`).
#[tokio::test]
async fn access_tokens_have_their_own_lifetime() {
    let b = TestBroker::builder().extra("expiry:\n  accessTokens: 5m\n").start().await;
    let web = browser();
    let (code, pending) = code_for(&b, &web, "openid").await;
    let tokens = flow::exchange(&b, &code, &pending).await;
    assert_eq!(tokens.json["expires_in"], 300);
    let access = flow::claims(tokens.json["access_token"].as_str().unwrap());
    assert_eq!(access["exp"].as_i64().unwrap() - access["iat"].as_i64().unwrap(), 300);
    assert_eq!(tokens.claims["exp"].as_i64().unwrap() - tokens.claims["iat"].as_i64().unwrap(), 24 * 3600);
}

/// I2: a refresh token reused inside `reuseInterval` used to mint a second live child.
#[tokio::test]
async fn a_retried_refresh_gets_the_same_successor() {
    let b = TestBroker::builder().start().await;
    let web = browser();
    let (code, pending) = code_for(&b, &web, "openid offline_access").await;
    let tokens = flow::exchange(&b, &code, &pending).await;
    let first: Value = flow::refresh(&b, tokens.refresh_token().unwrap()).await.json().await.unwrap();
    let retry: Value = flow::refresh(&b, tokens.refresh_token().unwrap()).await.json().await.unwrap();
    assert!(first["refresh_token"].is_string(), "{first}");
    assert_eq!(first["refresh_token"], retry["refresh_token"], "one successor, however often retried");
    let next = flow::refresh(&b, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(next.status(), StatusCode::OK, "and it works");
}

/// Refreshes of one token racing each other (a retry racing its own first attempt, cut by a
/// dying replica): the losers of the rotation get the winner's successor, never an error that
/// would leave the client without a token, and there is still one successor. The storage's
/// compare-and-swap of a refresh token is slowed so that every racer reads the parent before
/// the first one rotates it.
#[tokio::test]
async fn racing_refreshes_of_one_token_all_get_the_same_successor() {
    let backend: std::sync::Arc<dyn portcullis::storage::Backend> =
        std::sync::Arc::new(SlowRotation(portcullis::storage::MemoryBackend::new()));
    let b = TestBroker::builder().backend(backend).start().await;
    let web = browser();
    let (code, pending) = code_for(&b, &web, "openid offline_access").await;
    let tokens = flow::exchange(&b, &code, &pending).await;
    let token = tokens.refresh_token().unwrap().to_string();
    let answers = futures::future::join_all((0..4).map(|_| flow::refresh(&b, &token))).await;
    let mut successors = std::collections::BTreeSet::new();
    for answer in answers {
        assert_eq!(answer.status(), StatusCode::OK, "every racer is answered");
        let body: Value = answer.json().await.unwrap();
        successors.insert(body["refresh_token"].as_str().unwrap().to_string());
    }
    assert_eq!(successors.len(), 1, "one successor: {successors:?}");
    let next = flow::refresh(&b, successors.first().unwrap()).await;
    assert_eq!(next.status(), StatusCode::OK, "and it works");
}

/// The memory storage with a slow compare-and-swap of refresh tokens.
#[derive(Debug)]
struct SlowRotation(portcullis::storage::MemoryBackend);

#[async_trait::async_trait]
impl portcullis::storage::Backend for SlowRotation {
    async fn insert(&self, kind: Kind, id: &str, record: &Record, now: i64) -> StorageResult<()> {
        self.0.insert(kind, id, record, now).await
    }
    async fn get(&self, kind: Kind, id: &str, now: i64) -> StorageResult<Option<Record>> {
        self.0.get(kind, id, now).await
    }
    async fn update(&self, kind: Kind, id: &str, version: i64, data: &str, exp: i64, now: i64) -> StorageResult<bool> {
        if kind == Kind::RefreshToken {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        self.0.update(kind, id, version, data, exp, now).await
    }
    async fn take(&self, kind: Kind, id: &str, now: i64) -> StorageResult<Option<Record>> {
        self.0.take(kind, id, now).await
    }
    async fn delete(&self, kind: Kind, id: &str) -> StorageResult<bool> {
        self.0.delete(kind, id).await
    }
    async fn delete_family(&self, kind: Kind, family: &str) -> StorageResult<u64> {
        self.0.delete_family(kind, family).await
    }
    async fn list_family(&self, kind: Kind, family: &str, now: i64) -> StorageResult<Vec<String>> {
        self.0.list_family(kind, family, now).await
    }
    async fn collect_garbage(&self, now: i64) -> StorageResult<u64> {
        self.0.collect_garbage(now).await
    }
    async fn ping(&self) -> StorageResult<()> {
        self.0.ping().await
    }
}

/// F13: after `signing.algorithm` changes, tokens are signed with the new algorithm (the old
/// public key stays published) and discovery says what is actually used.
#[tokio::test]
async fn changing_the_signing_algorithm_rotates_the_key() {
    let backend: std::sync::Arc<dyn portcullis::storage::Backend> =
        std::sync::Arc::new(portcullis::storage::MemoryBackend::new());
    let first = TestBroker::builder().backend(backend.clone()).start().await;
    let old: Value = reqwest::Client::new().get(first.url("/keys")).send().await.unwrap().json().await.unwrap();
    let old_kid = old["keys"][0]["kid"].clone();
    let second = TestBroker::builder().backend(backend).extra("signing:\n  algorithm: ES256\n").start().await;
    let web = browser();
    let (code, pending) = code_for(&second, &web, "openid").await;
    let tokens = flow::exchange(&second, &code, &pending).await;
    let header = flow::claims(&format!("x.{}", tokens.json["id_token"].as_str().unwrap().split('.').next().unwrap()));
    assert_eq!(header["alg"], "ES256", "signed with the configured algorithm");
    let doc: Value =
        web.get(second.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["id_token_signing_alg_values_supported"], serde_json::json!(["ES256"]));
    let keys: Value = web.get(second.url("/keys")).send().await.unwrap().json().await.unwrap();
    assert!(keys["keys"].as_array().unwrap().iter().any(|k| k["kid"] == old_kid), "the old key stays published");
}

/// F16: the telemetry listener obeyed cross-site requests.
#[tokio::test]
async fn the_admin_listener_refuses_browsers() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, portcullis_tests::base_config("{issuer}", "")).unwrap();
    let b = TestBroker::builder().file(&file).start().await;
    let admin = b.serve_telemetry().await;
    let http = reqwest::Client::new();
    let cross_site = http
        .post(format!("{admin}/reload"))
        .header(header::ORIGIN, "https://evil.example")
        .header(header::CONTENT_TYPE, "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    let plain =
        http.post(format!("{admin}/reload")).header(header::CONTENT_TYPE, "text/plain").body("x").send().await.unwrap();
    assert_eq!(plain.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let tool = http.post(format!("{admin}/reload")).send().await.unwrap();
    assert_eq!(tool.status(), StatusCode::OK, "a tool's bodiless POST still reloads");
    let health = http.get(format!("{admin}/healthz")).header(header::ORIGIN, "https://evil.example").send().await;
    assert_eq!(health.unwrap().status(), StatusCode::FORBIDDEN);
}
