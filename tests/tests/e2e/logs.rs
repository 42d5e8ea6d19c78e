//! A full login, token exchange, refresh, userinfo and logout at debug level: the logs must
//! hold none of the secrets that passed through (client secret, password, code, tokens,
//! cookies, CSRF token), and every request line carries a request id.

use portcullis_tests::logs::{Format, LogCapture};
use portcullis_tests::{TestBroker, browser, hidden, location, query_param};

#[tokio::test]
async fn no_secret_reaches_the_logs_at_debug_level() {
    // Everything at debug, except the test's own cookie jar (client side, it logs cookies).
    let capture = LogCapture::install(Format::Json);
    let b = TestBroker::builder().start().await;
    let web = browser();
    let secret = "ZXhhbXBsZS1hcHAtc2VjcmV0";
    let (verifier, challenge) = portcullis_tests::pkce();
    let r = web
        .get(format!(
            "{}/auth?client_id=example-app&redirect_uri=http://127.0.0.1:5555/callback&response_type=code&scope=openid%20email%20offline_access&state=st&connector_id=local&code_challenge={challenge}&code_challenge_method=S256",
            b.issuer
        ))
        .send()
        .await
        .unwrap();
    let mut cookies: Vec<String> =
        r.headers().get_all("set-cookie").iter().map(|c| c.to_str().unwrap().to_string()).collect();
    let form_url = location(&r, &b.base).unwrap();
    let req = query_param(&form_url, "req").unwrap();
    let form = web.get(&form_url).send().await.unwrap().text().await.unwrap();
    let csrf = hidden(&form, "csrf").unwrap();
    let password = "password";
    let r = web
        .post(b.url("/auth/local/login"))
        .form(&[("req", req.as_str()), ("csrf", &csrf), ("login", "admin@example.com"), ("password", password)])
        .send()
        .await
        .unwrap();
    cookies.extend(r.headers().get_all("set-cookie").iter().map(|c| c.to_str().unwrap().to_string()));
    let approval = location(&r, &b.base).unwrap();
    web.get(&approval).send().await.unwrap();
    let r = web
        .post(b.url("/approval"))
        .form(&[("req", req.as_str()), ("csrf", &csrf), ("approval", "approve")])
        .send()
        .await
        .unwrap();
    let code = query_param(&location(&r, &b.base).unwrap(), "code").unwrap();
    let http = reqwest::Client::new();
    let tokens: serde_json::Value = http
        .post(b.url("/token"))
        .basic_auth("example-app", Some(secret))
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
    let refreshed: serde_json::Value = http
        .post(b.url("/token"))
        .basic_auth("example-app", Some(secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(http.get(b.url("/userinfo")).bearer_auth(access).send().await.unwrap().status(), 200);
    let logout = web
        .get(b.url(&format!(
            "/logout?id_token_hint={}&post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A5555%2F",
            tokens["id_token"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 303);

    let logs = capture.text();
    let mut secrets = vec![
        ("client secret", secret.to_string()),
        ("password hash", "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W".to_string()),
        ("code", code.clone()),
        ("code verifier", verifier.clone()),
        ("csrf token", csrf.clone()),
        ("auth request id", req.clone()),
    ];
    for key in ["access_token", "id_token", "refresh_token"] {
        secrets.push((key, tokens[key].as_str().unwrap().to_string()));
        secrets.push((key, refreshed[key].as_str().unwrap().to_string()));
    }
    for cookie in &cookies {
        let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_string();
        if !value.is_empty() {
            secrets.push(("cookie", value));
        }
    }
    for (what, value) in &secrets {
        let line = logs.lines().find(|l| l.contains(value.as_str()));
        assert!(line.is_none(), "the {what} appears in the logs: {}", line.unwrap_or_default());
    }
    // The password itself is a common word; look for it as a JSON value.
    assert!(!logs.contains(&format!("\"{password}\"")), "the password appears in the logs");
    // The logs are not empty: every request left a line with its request id.
    let request_lines: Vec<&str> = logs.lines().filter(|l| l.contains("\"message\":\"POST /dex/token\"")).collect();
    assert_eq!(request_lines.len(), 2, "{logs}");
    assert!(request_lines.iter().all(|l| l.contains("\"request_id\"")), "{request_lines:?}");
}

/// Log forging (audit finding F7): what an upstream says in `error_description` reaches the
/// log and the error page on one line, its newlines, carriage returns and escape sequences
/// written out, so it cannot pose as a line of the broker's own.
#[tokio::test]
async fn an_upstream_error_description_cannot_forge_a_log_line() {
    let capture = LogCapture::install(Format::Text);
    let b = TestBroker::builder().start().await;
    let web = browser();
    let (page, _) = portcullis_tests::flow::authorize(&b, &web, "mock", "openid").await;
    let upstream = location(&page, &b.base).expect("the mock sends the browser to the callback");
    let forged = "nope\n2026-01-01T00:00:00.000000Z  INFO portcullis: FORGED admin logged in\r\u{1b}[2K";
    let mut callback = url::Url::parse(&upstream).unwrap();
    callback.query_pairs_mut().append_pair("error", "access_denied").append_pair("error_description", forged);
    let refused = web.get(callback.as_str()).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let body = refused.text().await.unwrap();
    assert!(!body.contains("nope\n") && !body.contains('\u{1b}'), "the page shows the text escaped");

    let logs = capture.text();
    let line = logs.lines().find(|l| l.contains("FORGED")).expect("the refusal is logged");
    assert!(line.contains("login failed") && line.contains(r"nope\n2026-01-01"), "{line}");
    assert!(line.contains(r"\r\u{1b}[2K"), "{line}");
    assert!(!logs.lines().any(|l| l.starts_with("2026-01-01")), "no forged line:\n{logs}");
    assert!(!logs.contains('\r') && !logs.contains('\u{1b}'), "no raw CR or ESC in the log");
}
