//! What a login costs the storage: SQLite statements per step of a full login (the password
//! database and the mock connector, through the approval page, then the code redemption),
//! counted by the SQL backend's statement hook (`SqlBackend::statements_on`), never timed.
//! Every step of a login stays within `BUDGET` statements (issue 21).

use portcullis::storage::{Kind, SqlBackend};
use portcullis_tests::flow::{CALLBACK, CLIENT, SECRET};
use portcullis_tests::{TestBroker, browser, hidden, location, pkce, query_param};
use reqwest::StatusCode;
use std::sync::Arc;

/// Statements one login step may send.
const BUDGET: u64 = 3;
/// What a login reads and writes; the background tasks (the stored-objects poll on
/// `ApiVersion`, key refresh, garbage collection) touch other kinds, so they are not counted.
const LOGIN_KINDS: [Kind; 6] =
    [Kind::AuthRequest, Kind::AuthCode, Kind::Session, Kind::Grant, Kind::RefreshToken, Kind::UserGrant];

struct Meter {
    db: SqlBackend,
    steps: Vec<(&'static str, u64)>,
    last: u64,
}

impl Meter {
    fn count(&self) -> u64 {
        LOGIN_KINDS.iter().map(|k| self.db.statements_on(*k)).sum()
    }
    /// Records the statements since the previous step under `name`.
    fn step(&mut self, name: &'static str) {
        let now = self.count();
        self.steps.push((name, now - self.last));
        self.last = now;
    }
    fn of(&self, name: &str) -> u64 {
        self.steps.iter().find(|(n, _)| *n == name).map_or_else(|| panic!("no step {name}"), |(_, c)| *c)
    }
    fn assert_within_budget(&self) {
        let over: Vec<_> = self.steps.iter().filter(|(_, c)| *c > BUDGET).collect();
        assert!(over.is_empty(), "steps over {BUDGET} statements: {over:?} (all: {:?})", self.steps);
    }
}

async fn sqlite_broker() -> (TestBroker, Meter, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = SqlBackend::sqlite(&dir.path().join("portcullis.sqlite")).await.unwrap();
    let b = TestBroker::builder().backend(Arc::new(db.clone())).start().await;
    let mut meter = Meter { db, steps: Vec::new(), last: 0 };
    meter.last = meter.count();
    (b, meter, dir)
}

fn auth_url(b: &TestBroker, connector: &str, challenge: &str) -> String {
    url::Url::parse_with_params(
        &b.url("/auth"),
        &[
            ("client_id", CLIENT),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
            ("scope", "openid email offline_access"),
            ("state", "perf-state"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("connector_id", connector),
        ],
    )
    .unwrap()
    .to_string()
}

/// The approval page, its POST, and the code grant, each metered.
async fn approve_and_redeem(b: &TestBroker, web: &reqwest::Client, m: &mut Meter, approval: String, verifier: &str) {
    assert!(approval.contains("/approval"), "{approval}");
    let page = web.get(&approval).send().await.unwrap().text().await.unwrap();
    m.step("GET /approval");
    let (req, csrf) = (hidden(&page, "req").unwrap(), hidden(&page, "csrf").unwrap());
    let done = web
        .post(b.url("/approval"))
        .form(&[("req", req.as_str()), ("csrf", &csrf), ("approval", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    m.step("POST /approval");
    let back = location(&done, &b.base).unwrap();
    let code = query_param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
    let tokens = reqwest::Client::new()
        .post(b.url("/token"))
        .basic_auth(CLIENT, Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(tokens.status(), StatusCode::OK);
    let tokens: serde_json::Value = tokens.json().await.unwrap();
    assert!(tokens["refresh_token"].is_string() && tokens["id_token"].is_string(), "{tokens}");
    m.step("POST /token (code)");
}

#[tokio::test]
async fn a_password_login_costs_at_most_three_statements_per_step() {
    let (b, mut m, _dir) = sqlite_broker().await;
    let web = browser();
    let (verifier, challenge) = pkce();
    let first = web.get(auth_url(&b, "local", &challenge)).send().await.unwrap();
    assert!(first.status().is_redirection());
    m.step("GET /auth");
    let form = web.get(location(&first, &b.base).unwrap()).send().await.unwrap().text().await.unwrap();
    m.step("GET /auth/local");
    let (req, csrf) = (hidden(&form, "req").unwrap(), hidden(&form, "csrf").unwrap());
    let posted = web
        .post(b.url("/auth/local/login"))
        .form(&[("req", req.as_str()), ("csrf", &csrf), ("login", "admin@example.com"), ("password", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::SEE_OTHER);
    m.step("POST /auth/local/login");
    approve_and_redeem(&b, &web, &mut m, location(&posted, &b.base).unwrap(), &verifier).await;
    eprintln!("statements per step: {:?}", m.steps);
    m.assert_within_budget();
    // The hook counts what each step really does: the auth request is stored, the session
    // created, the code taken and stored, and the code grant writes the grant and its tokens.
    assert_eq!(m.of("GET /auth"), 1);
    assert!(m.of("POST /auth/local/login") >= 2);
    assert!(m.of("POST /token (code)") >= 3, "read the code, mark it redeemed, write grant + tokens");
}

#[tokio::test]
async fn a_connector_login_costs_at_most_three_statements_per_step() {
    let (b, mut m, _dir) = sqlite_broker().await;
    let web = browser();
    let (verifier, challenge) = pkce();
    let first = web.get(auth_url(&b, "mock", &challenge)).send().await.unwrap();
    m.step("GET /auth");
    let to_upstream = web.get(location(&first, &b.base).unwrap()).send().await.unwrap();
    assert!(to_upstream.status().is_redirection());
    m.step("GET /auth/mock");
    // The mock connector's "upstream" sends the browser straight to the callback.
    let callback = location(&to_upstream, &b.base).unwrap();
    let back = web.get(&callback).send().await.unwrap();
    assert_eq!(back.status(), StatusCode::SEE_OTHER, "{callback}");
    m.step("GET /callback/mock");
    approve_and_redeem(&b, &web, &mut m, location(&back, &b.base).unwrap(), &verifier).await;
    eprintln!("statements per step: {:?}", m.steps);
    m.assert_within_budget();
}

/// `signing.accessTokenAlgorithm: ES256`: ID tokens stay RS256 and verify with a relying-party
/// library; access tokens are ES256 JWTs whose key the JWKS publishes, and userinfo and
/// introspection accept them.
#[tokio::test]
async fn es256_access_tokens_beside_rs256_id_tokens() {
    use portcullis_tests::flow;
    let b = TestBroker::builder().extra("signing:\n  algorithm: RS256\n  accessTokenAlgorithm: ES256\n").start().await;
    let web = browser();
    let (form, pending) = flow::authorize(&b, &web, "local", "openid email offline_access").await;
    let form = form.text().await.unwrap();
    let posted = flow::submit_password(&b, &web, "local", &form, "admin@example.com", "password").await;
    let code = flow::finish(&b, &web, posted, &pending).await;
    let tokens = flow::exchange(&b, &code, &pending).await;
    let (sub, email, _) = flow::verify_id_token(&b, &tokens, &pending).await;
    assert_eq!(email.as_deref(), Some("admin@example.com"));
    let header = |jwt: &str| {
        use base64::Engine as _;
        let part = jwt.split('.').next().unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    };
    let (id_token, access) = (tokens.json["id_token"].as_str().unwrap(), tokens.json["access_token"].as_str().unwrap());
    assert_eq!(header(id_token)["alg"], "RS256");
    assert_eq!(header(access)["alg"], "ES256");
    assert_eq!(header(access)["typ"], "at+jwt");
    let jwks: serde_json::Value = reqwest::get(b.url("/keys")).await.unwrap().json().await.unwrap();
    let published: Vec<&str> = jwks["keys"].as_array().unwrap().iter().filter_map(|k| k["kid"].as_str()).collect();
    for token in [id_token, access] {
        assert!(published.contains(&header(token)["kid"].as_str().unwrap()), "{published:?}");
    }
    let info = reqwest::Client::new().get(b.url("/userinfo")).bearer_auth(access).send().await.unwrap();
    assert_eq!(info.status(), StatusCode::OK);
    let info: serde_json::Value = info.json().await.unwrap();
    assert_eq!(info["sub"], sub.as_str());
    let introspected: serde_json::Value = reqwest::Client::new()
        .post(b.url("/token/introspect"))
        .basic_auth(CLIENT, Some(SECRET))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspected["active"], true, "{introspected}");
    // A refresh signs the same way.
    let refreshed: serde_json::Value = flow::refresh(&b, tokens.refresh_token().unwrap()).await.json().await.unwrap();
    assert_eq!(header(refreshed["access_token"].as_str().unwrap())["alg"], "ES256");
    assert_eq!(header(refreshed["id_token"].as_str().unwrap())["alg"], "RS256");
}

/// A refresh (rotation on, the default) costs at most 3 statements: the token read together
/// with whether its grant is live, the successor written, the parent marked rotated. The
/// grant's liveness is really read in that one statement: with the grant gone (a revocation
/// cut short between its two deletes) the same kind of token is refused.
#[tokio::test]
async fn a_refresh_costs_at_most_three_statements_and_still_checks_its_grant() {
    use portcullis::storage::Backend as _;
    use portcullis_tests::flow;
    let (b, mut m, _dir) = sqlite_broker().await;
    let login = async || {
        let web = browser();
        let (form, pending) = flow::authorize(&b, &web, "local", "openid email offline_access").await;
        let form = form.text().await.unwrap();
        let posted = flow::submit_password(&b, &web, "local", &form, "admin@example.com", "password").await;
        let code = flow::finish(&b, &web, posted, &pending).await;
        flow::exchange(&b, &code, &pending).await
    };
    let tokens = login().await;
    m.last = m.count();
    let refreshed = flow::refresh(&b, tokens.refresh_token().unwrap()).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    m.step("POST /token (refresh)");
    let refreshed: serde_json::Value = refreshed.json().await.unwrap();
    let again = flow::refresh(&b, refreshed["refresh_token"].as_str().unwrap()).await;
    assert_eq!(again.status(), StatusCode::OK);
    m.step("POST /token (refresh again)");
    eprintln!("statements per step: {:?}", m.steps);
    m.assert_within_budget();
    assert_eq!(m.of("POST /token (refresh)"), 3, "read with the grant, write the successor, rotate the parent");

    let other = login().await;
    let gid = flow::claims(other.json["access_token"].as_str().unwrap())["gid"].as_str().unwrap().to_string();
    assert!(m.db.delete(Kind::Grant, &gid).await.unwrap());
    let refused = flow::refresh(&b, other.refresh_token().unwrap()).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error_description"], "the refresh token was revoked", "{body}");
}
