//! A database outage: the test's own PostgreSQL server stopped under load and started again.
//! While it is down, every request that needs storage gets a 503 with `Retry-After` (a page, or
//! the token endpoint's `temporarily_unavailable`), readiness turns false, nothing panics and
//! no refresh token is spent; once it is back the broker heals by itself: logins work again and
//! the refresh token issued before the outage is still good.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use portcullis::storage::SqlBackend;
use portcullis_tests::{OwnPostgres, TestBroker, browser, flow};
use reqwest::StatusCode;
use serde_json::Value;

const SCOPES: &str = "openid email offline_access";

/// A password login through the local database; the code exchange's answer.
async fn login(b: &TestBroker) -> Result<flow::Tokens, String> {
    let web = browser();
    let (page, pending) = flow::authorize(b, &web, "local", SCOPES).await;
    if page.status() != StatusCode::OK {
        return Err(format!("the form answered {}", page.status()));
    }
    let form = page.text().await.unwrap();
    let posted = flow::submit_password(b, &web, "local", &form, "admin@example.com", "password").await;
    if posted.status() != StatusCode::SEE_OTHER {
        return Err(format!(
            "the login answered {} (Retry-After {:?})",
            posted.status(),
            posted.headers().get("retry-after")
        ));
    }
    let code = flow::finish(b, &web, posted, &pending).await;
    Ok(flow::exchange(b, &code, &pending).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_answers_503_with_retry_after_and_heals_by_itself() {
    let pg = OwnPostgres::start();
    {
        use sqlx::{Connection as _, Executor as _};
        let mut admin = sqlx::PgConnection::connect(&format!("{}postgres", pg.url)).await.unwrap();
        admin.execute("CREATE DATABASE outage").await.unwrap();
    }
    let url = format!("{}outage", pg.url);
    // Dex's connectionTimeout: a request waits at most 2 s for a connection.
    let backend = SqlBackend::postgres_with(&url, None, Some(Duration::from_secs(2)), None).await.unwrap();
    let b = Arc::new(TestBroker::builder().backend(Arc::new(backend)).start().await);
    let admin = b.serve_telemetry().await;
    let before = login(&b).await.expect("a login before the outage");
    let kept = before.refresh_token().expect("a refresh token").to_string();

    // Load through the outage: logins in a loop; each must finish or be told to come back.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, unavailable, other) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (b, stop, ok, unavailable, other) =
            (b.clone(), stop.clone(), ok.clone(), unavailable.clone(), other.clone());
        tokio::spawn(async move {
            let mut reasons = Vec::new();
            while !stop.load(Relaxed) {
                let web = browser();
                // A page that needs storage: the start of a login (the auth request is stored).
                let url = url::Url::parse_with_params(
                    &b.url("/auth"),
                    &[
                        ("client_id", flow::CLIENT),
                        ("redirect_uri", flow::CALLBACK),
                        ("response_type", "code"),
                        ("scope", "openid"),
                        ("connector_id", "local"),
                    ],
                )
                .unwrap();
                let answer = web.get(url.as_str()).send().await.unwrap();
                let to = portcullis_tests::location(&answer, &b.base).unwrap_or_default();
                if to.contains("/auth/local?req=") {
                    ok.fetch_add(1, Relaxed);
                } else if to.starts_with(flow::CALLBACK) && to.contains("error=temporarily_unavailable") {
                    unavailable.fetch_add(1, Relaxed);
                } else {
                    other.fetch_add(1, Relaxed);
                    reasons.push(format!("{} {to}", answer.status()));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            reasons
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    pg.stop();
    // The token endpoint: 503, temporarily_unavailable, Retry-After; the token is not spent.
    let refused = flow::refresh(&b, &kept).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("2"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    // A login page reading its auth request: a 503 page with Retry-After.
    let page = reqwest::get(b.url("/auth/local?req=some-login")).await.unwrap();
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(page.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("2"));
    assert!(page.text().await.unwrap().contains("storage is unavailable"));
    let ready = reqwest::get(format!("{admin}/healthz/ready")).await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "readiness is false while storage is down");
    assert!(unavailable.load(Relaxed) > 0 || ok.load(Relaxed) > 0);

    pg.restart();
    // Heals by itself: within 30 s readiness is back and a login works, with no restart of the broker.
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{admin}/healthz/ready")).await.unwrap().status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "not ready 30 s after the database came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = loop {
        match login(&b).await {
            Ok(tokens) => break tokens,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no login 30 s after the database came back: {e}"),
        }
    };
    assert!(after.refresh_token().is_some());
    let renewed = flow::refresh(&b, &kept).await;
    assert_eq!(renewed.status(), StatusCode::OK, "the refresh token from before the outage still works");
    let ready = reqwest::get(format!("{admin}/healthz/ready")).await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);

    stop.store(true, Relaxed);
    let reasons = load.await.unwrap();
    assert!(unavailable.load(Relaxed) > 0, "some logins started during the outage were told to come back");
    assert!(ok.load(Relaxed) > 0);
    assert_eq!(other.load(Relaxed), 0, "every answer was a login or temporarily_unavailable: {reasons:?}");
}
