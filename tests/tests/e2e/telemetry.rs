//! The telemetry listener: `/healthz`, `/readyz`, `/status` and Prometheus `/metrics` after a
//! real login.

use portcullis_tests::{TestBroker, browser, flow};

#[tokio::test]
async fn health_readiness_status_and_metrics() {
    let b = TestBroker::builder().start().await;
    let admin = b.serve_telemetry().await;
    let http = reqwest::Client::new();
    assert_eq!(http.get(format!("{admin}/healthz")).send().await.unwrap().status(), 200);
    let ready: serde_json::Value = http.get(format!("{admin}/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["storage"], "ok");
    assert_eq!(ready["lastReload"]["ok"], true);
    // Dex's paths for the same checks.
    assert_eq!(http.get(format!("{admin}/healthz/live")).send().await.unwrap().status(), 200);
    let dex_ready: serde_json::Value =
        http.get(format!("{admin}/healthz/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(dex_ready["ready"], true);
    let status: serde_json::Value = http.get(format!("{admin}/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["generation"], 1);
    assert_eq!(status["plugins"][0]["connector"], "mock");
    assert_eq!(status["plugins"][0]["sha256"].as_str().unwrap().len(), 64);

    // One password login with a bad password first, then a good one, and a code exchange.
    let web = browser();
    let (page, pending) = flow::authorize(&b, &web, "local", "openid").await;
    let form = page.text().await.unwrap();
    let refused = flow::submit_password(&b, &web, "local", &form, "admin@example.com", "wrong").await;
    assert_eq!(refused.status(), 401);
    let accepted = flow::submit_password(&b, &web, "local", &form, "admin@example.com", "password").await;
    let code = flow::finish(&b, &web, accepted, &pending).await;
    flow::exchange(&b, &code, &pending).await;

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
