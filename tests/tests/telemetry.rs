//! The telemetry listener: `/healthz`, `/readyz`, `/status` and Prometheus `/metrics` after a
//! real login.

use portcullis_tests::{TestBroker, browser, hidden, location, query_param};

async fn serve_telemetry(b: &TestBroker) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = portcullis::telemetry::router(b.broker.clone());
    tokio::spawn(async move { axum_serve(listener, router).await });
    base
}

async fn axum_serve(listener: tokio::net::TcpListener, router: axum::Router) {
    let _ = axum::serve(listener, router).await;
}

#[tokio::test]
async fn health_readiness_status_and_metrics() {
    let b = TestBroker::start("").await;
    let admin = serve_telemetry(&b).await;
    let http = reqwest::Client::new();
    assert_eq!(http.get(format!("{admin}/healthz")).send().await.unwrap().status(), 200);
    let ready: serde_json::Value = http.get(format!("{admin}/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["storage"], "ok");
    assert_eq!(ready["lastReload"]["ok"], true);
    let status: serde_json::Value = http.get(format!("{admin}/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["generation"], 1);
    assert_eq!(status["plugins"][0]["connector"], "mock");
    assert_eq!(status["plugins"][0]["sha256"].as_str().unwrap().len(), 64);

    // One password login with a bad password first, then a good one, and a code exchange.
    let web = browser();
    let (verifier, challenge) = portcullis_tests::pkce();
    let r = web
        .get(format!(
            "{}/auth?client_id=example-app&redirect_uri=http://127.0.0.1:5555/callback&response_type=code&scope=openid&connector_id=local&code_challenge={challenge}&code_challenge_method=S256",
            b.issuer
        ))
        .send()
        .await
        .unwrap();
    let form_url = location(&r, &b.base).unwrap();
    let req = query_param(&form_url, "req").unwrap();
    let csrf = hidden(&web.get(&form_url).send().await.unwrap().text().await.unwrap(), "csrf").unwrap();
    for password in ["wrong", "password"] {
        web.post(b.url("/auth/local/login"))
            .form(&[("req", req.as_str()), ("csrf", &csrf), ("login", "admin@example.com"), ("password", password)])
            .send()
            .await
            .unwrap();
    }
    let r = web
        .post(b.url("/approval"))
        .form(&[("req", req.as_str()), ("csrf", &csrf), ("approval", "approve")])
        .send()
        .await
        .unwrap();
    let code = query_param(&location(&r, &b.base).unwrap(), "code").unwrap();
    let r = http
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
        .unwrap();
    assert_eq!(r.status(), 200);

    let metrics = http.get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    for line in [
        "portcullis_logins_total{connector=\"local\",outcome=\"bad_credentials\"}",
        "portcullis_logins_total{connector=\"local\",outcome=\"success\"}",
        "portcullis_tokens_issued_total{grant_type=\"authorization_code\"}",
        "portcullis_http_requests_total{route=\"/dex/token\",method=\"POST\",status=\"200\"}",
        "portcullis_plugin_calls_total{connector=\"mock\",call=\"describe\",outcome=\"ok\"}",
        "portcullis_plugin_call_duration_seconds_count{connector=\"mock\",call=\"describe\"}",
        "portcullis_http_request_duration_seconds_count{route=\"/dex/auth/{connector}/login\"}",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    assert!(!metrics.contains("admin@example.com"), "no user data in labels");
}
