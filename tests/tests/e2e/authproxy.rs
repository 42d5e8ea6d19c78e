//! The authproxy connector end to end: the test client plays the authenticating proxy in front
//! of the broker (`web.clientRemoteIP` trusting 127.0.0.1), sending the identity headers on the
//! broker's own callback. The same request from an untrusted peer, a missing or repeated
//! header, bytes that are not UTF-8, a wrong connector path and a missing state are refused.

use portcullis_tests::logs::{Format, LogCapture};
use portcullis_tests::{TestBroker, browser, flow, location, plugin};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SCOPES: &str = "openid profile email groups offline_access federated:id";

/// `plugins.dir` and `web.clientRemoteIP` trusting `trusted`.
fn extra(trusted: &str) -> String {
    format!(
        "plugins:\n  dir: \"{}\"\nweb:\n  clientRemoteIP:\n    header: X-Forwarded-For\n    trustedProxies: [\"{trusted}\"]\n",
        plugin("authproxy").parent().unwrap().display()
    )
}

/// Dex's block (`type: authproxy`) with `config`.
fn block(config: Value) -> String {
    format!(
        "- type: authproxy\n  id: proxy\n  name: Corporate SSO\n  config: {}\n",
        serde_json::to_string(&config).unwrap()
    )
}

async fn broker(config: Value, trusted: &str) -> TestBroker {
    TestBroker::builder().connectors(&block(config)).extra(&extra(trusted)).start().await
}

/// Starts a login through `proxy`: the broker sends the browser to its own callback (behind the
/// proxy). Returns the client, that callback URL and what the relying party keeps.
async fn start(b: &TestBroker) -> (reqwest::Client, String, flow::Pending) {
    let web = browser();
    let (to_callback, pending) = flow::authorize(b, &web, "proxy", SCOPES).await;
    assert_eq!(to_callback.status(), StatusCode::SEE_OTHER, "sent to the callback");
    let callback = location(&to_callback, &b.base).expect("redirect");
    assert!(callback.starts_with(&b.url("/callback/proxy?state=")), "the broker's own callback: {callback}");
    (web, callback, pending)
}

/// The callback as the proxy forwards it, with `headers` (name, raw bytes).
async fn forward(web: &reqwest::Client, url: &str, headers: &[(&str, &[u8])]) -> reqwest::Response {
    let mut req = web.get(url);
    for (name, value) in headers {
        req = req.header(*name, reqwest::header::HeaderValue::from_bytes(value).unwrap());
    }
    req.send().await.unwrap()
}

async fn page(response: reqwest::Response) -> (StatusCode, String) {
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_login_through_the_trusted_proxy_takes_the_identity_from_its_headers() {
    let b = broker(json!({"staticGroups": ["staff"]}), "127.0.0.1/32").await;
    let (web, callback, pending) = start(&b).await;
    let answer = forward(
        &web,
        &callback,
        &[
            ("X-Remote-User", b"Jane Doe"),
            ("X-Remote-User-Id", b"jdoe-1001"),
            ("X-Remote-User-Name", b"jdoe"),
            ("X-Remote-User-Email", b"jdoe@example.org"),
            ("X-Remote-Group", b"eng, ops"),
            ("X-Forwarded-For", b"203.0.113.9"),
        ],
    )
    .await;
    let code = flow::finish(&b, &web, answer, &pending).await;
    let tokens = flow::exchange(&b, &code, &pending).await;
    let verified = flow::verify_id_token(&b, &tokens, &pending).await;
    assert_eq!(verified.1.as_deref(), Some("jdoe@example.org"), "the relying party library accepts the token");
    assert_eq!(verified.2.as_deref(), Some("jdoe"));
    let c = &tokens.claims;
    assert_eq!(c["name"], "Jane Doe");
    assert_eq!(c["preferred_username"], "jdoe");
    assert_eq!(c["email"], "jdoe@example.org");
    assert_eq!(c["email_verified"], true);
    assert_eq!(c["groups"], json!(["eng", "ops", "staff"]), "header groups, trimmed, then staticGroups");
    assert_eq!(c["federated_claims"], json!({"connector_id": "proxy", "user_id": "jdoe-1001"}));
    assert!(tokens.refresh_token().is_none(), "no refresh tokens, as in Dex: {}", tokens.json);
}

#[tokio::test]
async fn configured_headers_a_separator_and_empty_items_as_dex_reads_them() {
    let config = json!({"userHeader": "X-Auth-User", "groupHeader": "X-Auth-Groups", "groupHeaderSeparator": ";"});
    let b = broker(config, "127.0.0.0/8").await;
    let (web, callback, pending) = start(&b).await;
    // The default X-Remote-User is not this connector's header: not even passed to it.
    let answer = forward(
        &web,
        &callback,
        &[("x-auth-user", b"alice"), ("X-Auth-Groups", b" a b ; ;c"), ("X-Remote-User", b"mallory")],
    )
    .await;
    let code = flow::finish(&b, &web, answer, &pending).await;
    let c = flow::exchange(&b, &code, &pending).await.claims;
    assert_eq!(c["name"], "alice");
    assert_eq!(
        (c["preferred_username"].clone(), c["email"].clone()),
        (json!("alice"), json!("alice")),
        "the fallbacks"
    );
    assert_eq!(c["groups"], json!(["a b", "", "c"]), "split on ';', trimmed, the empty item kept (Dex)");
}

#[tokio::test]
async fn utf8_header_bytes_are_taken_and_other_bytes_refused() {
    let b = broker(json!({}), "127.0.0.1/32").await;
    let (web, callback, pending) = start(&b).await;
    let answer = forward(&web, &callback, &[("X-Remote-User", "Zoë Ångström".as_bytes())]).await;
    let code = flow::finish(&b, &web, answer, &pending).await;
    assert_eq!(flow::exchange(&b, &code, &pending).await.claims["name"], "Zoë Ångström");

    let (web, callback, _) = start(&b).await;
    let (status, html) = page(forward(&web, &callback, &[("X-Remote-User", b"Zo\xeb")]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "Latin-1 is not guessed at");
    assert!(html.contains("encoding other than UTF-8"), "{html}");
}

#[tokio::test]
async fn the_same_request_from_an_untrusted_peer_is_refused_and_logged() {
    let capture = LogCapture::install(Format::Text);
    // A valid config whose proxies are elsewhere: 127.0.0.1 (this test) is not one of them.
    let b = broker(json!({}), "10.0.0.0/8").await;
    let (web, callback, _) = start(&b).await;
    // Naming a trusted address in X-Forwarded-For changes nothing: the TCP peer is what counts.
    let headers: &[(&str, &[u8])] = &[("X-Remote-User", b"admin"), ("X-Forwarded-For", b"10.0.0.5")];
    let (status, html) = page(forward(&web, &callback, headers).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("accepts logins only through the organisation&#x27;s authenticating proxy"), "{html}");
    assert!(location(&web.get(&callback).send().await.unwrap(), &b.base).is_none(), "no code, no redirect");
    let log = capture.text();
    let line = log.lines().find(|l| l.contains("authproxy login refused")).expect("the refusal is logged");
    assert!(line.contains("connector=\"proxy\"") && line.contains("peer=127.0.0.1"), "{line}");
}

#[tokio::test]
async fn a_missing_or_repeated_user_header_is_refused() {
    let b = broker(json!({}), "127.0.0.1/32").await;
    let (web, callback, _) = start(&b).await;
    let (status, html) = page(forward(&web, &callback, &[("X-Remote-Group", b"admins")]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("X-Remote-User"), "names the header: {html}");

    // A proxy that appends its header after the client's: the client's copy must not win.
    let (web, callback, _) = start(&b).await;
    let (status, html) =
        page(forward(&web, &callback, &[("X-Remote-User", b"admin"), ("X-Remote-User", b"jdoe")]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("more than once"), "{html}");
}

#[tokio::test]
async fn a_wrong_connector_path_and_a_missing_state_are_refused() {
    let b = broker(json!({}), "127.0.0.1/32").await;
    let (web, callback, _) = start(&b).await;
    let state = portcullis_tests::query_param(&callback, "state").unwrap();
    let wrong = format!("{}?state={state}", b.url("/callback/mock"));
    let (status, html) = page(forward(&web, &wrong, &[("X-Remote-User", b"jdoe")]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("different login method"), "{html}");

    let (status, html) = page(forward(&web, &b.url("/callback/proxy"), &[("X-Remote-User", b"jdoe")]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("has no state"), "{html}");
}

#[tokio::test]
async fn an_authproxy_without_trusted_proxies_is_a_config_error() {
    let yaml = portcullis_tests::base_config("http://127.0.0.1:1/dex", &block(json!({})));
    let dir = format!("plugins:\n  dir: \"{}\"\n", plugin("authproxy").parent().unwrap().display());
    let err =
        portcullis::config::Config::from_yaml(std::path::Path::new("t.yaml"), &format!("{yaml}\n{dir}"), &|_| None)
            .unwrap_err()
            .to_string();
    assert!(err.contains("connectors[1]: type authproxy") && err.contains("trustedProxies"), "{err}");
    let unknown = serde_json::to_string(&json!({"userHeaders": "X"})).unwrap();
    let yaml = portcullis_tests::base_config(
        "http://127.0.0.1:1/dex",
        &format!("- type: authproxy\n  id: p\n  name: P\n  config: {unknown}\n"),
    );
    let config = portcullis::config::Config::from_yaml(
        std::path::Path::new("t.yaml"),
        &format!("{yaml}\n{}", extra("127.0.0.1/32")),
        &|_| None,
    )
    .unwrap();
    let engine = portcullis_tests::engine();
    let specs: Vec<_> = config.connectors.iter().map(|c| c.spec.clone()).collect();
    let errors = portcullis::connectors::Registry::load(&engine, &specs, None).await.unwrap_err();
    assert!(format!("{errors:?}").contains("unknown field `userHeaders`"), "{errors:?}");
}
