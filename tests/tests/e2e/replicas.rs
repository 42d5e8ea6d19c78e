//! Two brokers on one PostgreSQL (or MySQL / MariaDB) database, as replicas behind a load balancer: a login started
//! on one finishes on the other, and they share one signing key (never both rotating).

use std::sync::Arc;

use portcullis::storage::SqlBackend;
use portcullis_tests::{TestBroker, TestDatabase, TestMysqlDatabase, browser, hidden, location, query_param};
use reqwest::StatusCode;

#[tokio::test]
async fn a_login_started_on_one_replica_finishes_on_the_other() {
    let db = TestDatabase::create().await;
    login_across_replicas(db.backend().await, db.backend().await).await;
}

#[tokio::test]
async fn mysql_a_login_started_on_one_replica_finishes_on_the_other() {
    let db = TestMysqlDatabase::create().await;
    login_across_replicas(db.backend().await, db.backend().await).await;
}

async fn login_across_replicas(backend_a: SqlBackend, backend_b: SqlBackend) {
    let a = TestBroker::builder().backend(Arc::new(backend_a)).start().await;
    // Replica B serves the same issuer (a load balancer would put both behind it).
    let b = TestBroker::builder().backend(Arc::new(backend_b)).issuer(&a.issuer).start().await;
    let http = reqwest::Client::new();
    let keys_a: serde_json::Value = http.get(a.url("/keys")).send().await.unwrap().json().await.unwrap();
    let keys_b: serde_json::Value = http.get(b.url("/keys")).send().await.unwrap().json().await.unwrap();
    assert_eq!(keys_a["keys"].as_array().unwrap().len(), 1, "one key, created once");
    assert_eq!(keys_a, keys_b, "both replicas publish the same key");

    let web = browser();
    let (verifier, challenge) = portcullis_tests::pkce();
    // Authorize on A ...
    let start = format!(
        "{}/auth?client_id=example-app&redirect_uri=http://127.0.0.1:5555/callback&response_type=code&scope=openid%20email&state=s&connector_id=local&code_challenge={challenge}&code_challenge_method=S256",
        a.url("")
    );
    let r = web.get(&start).send().await.unwrap();
    let form_path = location(&r, &a.base).unwrap().replace(&a.base, &b.base);
    // ... fill the password form, approve and redeem on B.
    let form = web.get(&form_path).send().await.unwrap().text().await.unwrap();
    let (req, csrf) = (query_param(&form_path, "req").unwrap(), hidden(&form, "csrf").unwrap());
    let r = web
        .post(b.url("/auth/local/login"))
        .form(&[("req", req.as_str()), ("csrf", &csrf), ("login", "admin@example.com"), ("password", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let approval = location(&r, &b.base).unwrap();
    let page = web.get(&approval).send().await.unwrap().text().await.unwrap();
    let r = web
        .post(a.url("/approval"))
        .form(&[("req", req.as_str()), ("csrf", &hidden(&page, "csrf").unwrap()), ("approval", "approve")])
        .send()
        .await
        .unwrap();
    let code = query_param(&location(&r, &a.base).unwrap(), "code").expect("code from A");
    let tokens: serde_json::Value = http
        .post(b.url("/token"))
        .basic_auth("example-app", Some("ZXhhbXBsZS1hcHAtc2VjcmV0"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:5555/callback"),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap_or_else(|| panic!("{tokens}"));
    let info: serde_json::Value =
        http.get(a.url("/userinfo")).bearer_auth(access).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["email"], "admin@example.com", "a token from B is honoured by A");
}

#[tokio::test]
async fn two_replicas_due_for_rotation_rotate_once() {
    let db = TestDatabase::create().await;
    rotate_once(db.backend().await, db.backend().await).await;
}

#[tokio::test]
async fn mysql_two_replicas_due_for_rotation_rotate_once() {
    let db = TestMysqlDatabase::create().await;
    rotate_once(db.backend().await, db.backend().await).await;
}

async fn rotate_once(backend_a: SqlBackend, backend_b: SqlBackend) {
    let a = TestBroker::builder().backend(Arc::new(backend_a)).start().await;
    let b = TestBroker::builder().backend(Arc::new(backend_b)).issuer(&a.issuer).start().await;
    // Both wake up a day later, when rotation (every 6h) is due, at the same moment.
    let later = portcullis::broker::now() + 24 * 3600;
    let (ra, rb) = tokio::join!(a.broker.keys.refresh(later), b.broker.keys.refresh(later));
    ra.unwrap();
    rb.unwrap();
    let jwks_a: serde_json::Value = serde_json::from_str(&a.broker.keys.jwks().unwrap()).unwrap();
    let jwks_b: serde_json::Value = serde_json::from_str(&b.broker.keys.jwks().unwrap()).unwrap();
    assert_eq!(jwks_a, jwks_b, "both replicas settled on the same key set");
    assert_eq!(jwks_a["keys"].as_array().unwrap().len(), 2, "one rotation: the new key plus the retired one");
}
