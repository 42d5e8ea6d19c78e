//! The tutorial connector (`examples/custom-connector`, built as a reader would build it)
//! against a small fake of the JSON user API it talks to: a login with the API's identity in
//! the ID token, wrong passwords, refresh re-reading the user, a deleted user, config errors
//! naming the key, and a login refused by the host because `allowedHosts` lacks the API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::routing::{get, post};
use portcullis::connectors::Registry;
use portcullis_tests::logs::{Format, LogCapture};
use portcullis_tests::{TestBroker, browser, engine, fixture, flow, spec};
use serde_json::{Value, json};

const API_TOKEN: &str = "test-api-token-7f3a";
const USER_ID: &str = "acme/42";
const PASSWORD: &str = "correct horse battery";
const SCOPES: &str = "openid profile email groups offline_access federated:id";

struct FakeUser {
    username: String,
    password: String,
    json: Value,
}

/// The fake user API: users by id, and the paths of the requests it received.
#[derive(Clone, Default)]
struct FakeApi {
    users: Arc<Mutex<HashMap<String, FakeUser>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

type Reply = (StatusCode, [(header::HeaderName, &'static str); 1], String);

fn reply(status: StatusCode, body: Value) -> Reply {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string())
}

fn bearer_ok(headers: &HeaderMap) -> bool {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {API_TOKEN}"))
}

async fn authenticate(State(api): State<FakeApi>, headers: HeaderMap, uri: Uri, body: Bytes) -> Reply {
    api.requests.lock().unwrap().push(uri.path().to_string());
    if !bearer_ok(&headers) {
        return reply(StatusCode::FORBIDDEN, json!({"error": "invalid_token"}));
    }
    let Ok(creds) = serde_json::from_slice::<Value>(&body) else {
        return reply(StatusCode::BAD_REQUEST, json!({"error": "invalid_json"}));
    };
    let users = api.users.lock().unwrap();
    let found =
        users.values().find(|u| creds["username"] == u.username.as_str() && creds["password"] == u.password.as_str());
    match found {
        Some(user) => reply(StatusCode::OK, user.json.clone()),
        None => reply(StatusCode::UNAUTHORIZED, json!({"error": "invalid_credentials"})),
    }
}

async fn user(State(api): State<FakeApi>, headers: HeaderMap, uri: Uri, Path(id): Path<String>) -> Reply {
    api.requests.lock().unwrap().push(uri.path().to_string());
    if !bearer_ok(&headers) {
        return reply(StatusCode::FORBIDDEN, json!({"error": "invalid_token"}));
    }
    match api.users.lock().unwrap().get(&id) {
        Some(user) => reply(StatusCode::OK, user.json.clone()),
        None => reply(StatusCode::NOT_FOUND, json!({"error": "not_found"})),
    }
}

impl FakeApi {
    /// Serves the fake on an ephemeral port with one user, Jane (id `acme/42`: the slash must
    /// be encoded in the lookup's path); returns it and its base URL.
    async fn start() -> (Self, String) {
        let api = FakeApi::default();
        api.users.lock().unwrap().insert(
            USER_ID.into(),
            FakeUser {
                username: "jane".into(),
                password: PASSWORD.into(),
                json: json!({
                    "id": USER_ID,
                    "name": "Jane Doe",
                    "email": "jane@acme.example",
                    "emailVerified": true,
                    "groups": ["admins", "staff"],
                    "department": "ignored by the connector"
                }),
            },
        );
        let router = Router::new()
            .route("/v1/authenticate", post(authenticate))
            .route("/v1/users/{id}", get(user))
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        (api, base)
    }

    fn set_groups(&self, groups: Value) {
        self.users.lock().unwrap().get_mut(USER_ID).unwrap().json["groups"] = groups;
    }

    fn delete(&self) {
        self.users.lock().unwrap().remove(USER_ID);
    }
}

/// A broker with the tutorial connector as `users`, allowed to reach `allowed` (the YAML list).
async fn broker(api_base: &str, allowed: &str) -> TestBroker {
    let connectors = format!(
        r#"- plugin: "{plugin}"
  id: users
  name: Acme Users
  allowedHosts: {allowed}
  config:
    apiURL: "{api_base}/"
    apiToken: "{API_TOKEN}"
    usernamePrompt: Acme username
"#,
        plugin = fixture("custom-connector").display(),
    );
    TestBroker::builder().connectors(&connectors).start().await
}

/// Logs Jane in and returns the tokens.
async fn log_in(b: &TestBroker) -> flow::Tokens {
    let web = browser();
    let (form, pending) = flow::authorize(b, &web, "users", SCOPES).await;
    assert_eq!(form.status(), StatusCode::OK);
    let form = form.text().await.unwrap();
    assert!(form.contains("Acme username"), "the configured prompt labels the field");
    let done = flow::submit_password(b, &web, "users", &form, "jane", PASSWORD).await;
    let code = flow::finish(b, &web, done, &pending).await;
    flow::exchange(b, &code, &pending).await
}

#[tokio::test]
async fn login_puts_the_apis_user_in_the_id_token() {
    let (_api, base) = FakeApi::start().await;
    let b = broker(&base, &format!("[\"{base}\"]")).await;
    let tokens = log_in(&b).await;
    let c = &tokens.claims;
    assert_eq!(c["name"], "Jane Doe");
    assert_eq!(c["preferred_username"], "jane");
    assert_eq!(c["email"], "jane@acme.example");
    assert_eq!(c["email_verified"], true);
    assert_eq!(c["groups"], json!(["admins", "staff"]));
    assert_eq!(c["federated_claims"], json!({"connector_id": "users", "user_id": USER_ID}));
    assert!(tokens.refresh_token().is_some(), "offline_access gives a refresh token");
}

#[tokio::test]
async fn a_wrong_password_shows_the_form_again_and_the_right_one_then_works() {
    let (_api, base) = FakeApi::start().await;
    let b = broker(&base, &format!("[\"{base}\"]")).await;
    let web = browser();
    let (form, pending) = flow::authorize(&b, &web, "users", SCOPES).await;
    let form = form.text().await.unwrap();
    let wrong = flow::submit_password(&b, &web, "users", &form, "jane", "wrong password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(header::LOCATION).is_none(), "no redirect, so no code");
    let again = wrong.text().await.unwrap();
    assert!(again.contains("Invalid username or password."), "{again}");
    let unknown = flow::submit_password(&b, &web, "users", &again, "john", PASSWORD).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let again = unknown.text().await.unwrap();
    let right = flow::submit_password(&b, &web, "users", &again, "jane", PASSWORD).await;
    let code = flow::finish(&b, &web, right, &pending).await;
    assert_eq!(flow::exchange(&b, &code, &pending).await.claims["name"], "Jane Doe");
}

#[tokio::test]
async fn refresh_rereads_the_user_and_fails_once_the_user_is_deleted() {
    let (api, base) = FakeApi::start().await;
    let b = broker(&base, &format!("[\"{base}\"]")).await;
    let tokens = log_in(&b).await;

    api.set_groups(json!(["staff", "auditors"]));
    let refreshed = flow::refresh(&b, tokens.refresh_token().unwrap()).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: Value = refreshed.json().await.unwrap();
    let claims = flow::claims(refreshed["id_token"].as_str().unwrap());
    assert_eq!(claims["groups"], json!(["staff", "auditors"]), "refresh re-read the groups");
    assert_eq!(claims["preferred_username"], "jane", "kept from the login");
    assert_eq!(claims["sub"], tokens.claims["sub"]);
    let requests = api.requests.lock().unwrap().clone();
    assert_eq!(requests, ["/v1/authenticate", "/v1/users/acme%2F42"], "the id is one encoded path segment");

    api.delete();
    let gone = flow::refresh(&b, refreshed["refresh_token"].as_str().unwrap()).await;
    assert_eq!(gone.status(), StatusCode::BAD_REQUEST);
    let gone: Value = gone.json().await.unwrap();
    assert_eq!(gone["error"], "invalid_grant");
}

#[tokio::test]
async fn config_errors_name_the_key() {
    let cases = [
        (json!({"apiURL": "http://127.0.0.1:1"}), "apiToken is missing"),
        (
            json!({"apiURL": "users.example.com", "apiToken": "tok-5ecret-9f2"}),
            "apiURL must be the user API's base URL",
        ),
        (json!({"apiUrl": "http://127.0.0.1:1", "apiToken": "tok-5ecret-9f2"}), "unknown field `apiUrl`"),
    ];
    for (config, want) in cases {
        let errors = Registry::load(&engine(), &[spec("users", fixture("custom-connector"), config.clone())], None)
            .await
            .expect_err("a bad config is refused");
        let text = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
        assert!(text.contains(want), "{config}: {text}");
        assert!(!text.contains("5ecret"), "no secret in {text}");
    }
}

#[tokio::test]
async fn without_the_allowed_hosts_entry_the_host_refuses_and_says_what_to_add() {
    let capture = LogCapture::install(Format::Text);
    let (api, base) = FakeApi::start().await;
    // Another host is allowed, not the API.
    let b = broker(&base, "[users.example.com]").await;
    let web = browser();
    let (form, _pending) = flow::authorize(&b, &web, "users", SCOPES).await;
    let form = form.text().await.unwrap();
    let page = flow::submit_password(&b, &web, "users", &form, "jane", PASSWORD).await;
    assert_eq!(page.status(), StatusCode::BAD_GATEWAY);
    assert!(page.headers().get(header::LOCATION).is_none(), "no redirect, so no code");
    let page = page.text().await.unwrap();
    assert!(page.contains("The login connector failed"), "{page}");
    assert!(api.requests.lock().unwrap().is_empty(), "the host let no request through");

    let logs = capture.text();
    let line = format!("add \"{base}\" to allowedHosts of connector \"users\"");
    assert!(logs.contains(&line), "the log names the line to add: {logs}");
    assert!(logs.contains("login failed"), "{logs}");
    for secret in [PASSWORD, API_TOKEN] {
        assert!(!logs.contains(secret), "a secret reached the log: {logs}");
    }
}
