//! Dynamic client registration (RFC 7591) and its management (RFC 7592): off by default, open
//! only to the initial access token, a registered client serving at once, read, replaced and
//! deleted with its registration access token, and every refusal with the RFC's error.

use portcullis_tests::TestBroker;
use reqwest::StatusCode;
use serde_json::{Value, json};

const INITIAL: &str = "initial-access-token-of-at-least-32-characters";

async fn broker() -> TestBroker {
    TestBroker::builder()
        .oauth2(&format!(
            "  grantTypes: [authorization_code, refresh_token, client_credentials]\n  clientRegistration:\n    initialAccessToken: {INITIAL}\n"
        ))
        .start()
        .await
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn register(b: &TestBroker, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().post(b.url("/register")).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    send(request).await
}

async fn client_credentials(b: &TestBroker, id: &str, secret: &str) -> StatusCode {
    let form = [("grant_type", "client_credentials")];
    reqwest::Client::new().post(b.url("/token")).basic_auth(id, Some(secret)).form(&form).send().await.unwrap().status()
}

/// A client registered with the initial access token gets an id, a secret and a registration
/// token, serves at once, and is managed through its registration URI.
#[tokio::test]
async fn registered_clients_serve_and_are_managed_with_their_token() {
    let b = broker().await;
    let discovery: Value =
        reqwest::get(b.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(discovery["registration_endpoint"], b.url("/register"));

    let metadata = json!({
        "redirect_uris": ["https://app.example.com/callback"],
        "client_name": "Registered App",
        "grant_types": ["authorization_code", "client_credentials"],
        "software_id": "ignored, as RFC 7591 allows",
    });
    let (status, _) = register(&b, None, metadata.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no initial access token");
    let (status, body) = register(&b, Some("a-wrong-token-of-at-least-32-characters!"), metadata.clone()).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")));

    let (status, made) = register(&b, Some(INITIAL), metadata).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["client_id"].as_str().unwrap().to_string();
    let secret = made["client_secret"].as_str().unwrap().to_string();
    let token = made["registration_access_token"].as_str().unwrap().to_string();
    assert_eq!(made["registration_client_uri"], b.url(&format!("/register/{id}")));
    assert_eq!(made["client_secret_expires_at"], 0);
    assert_eq!(made["client_name"], "Registered App");
    assert_eq!(client_credentials(&b, &id, &secret).await, StatusCode::OK, "serves at once");

    let uri = b.url(&format!("/register/{id}"));
    let http = reqwest::Client::new();
    let (status, read) = send(http.get(&uri).bearer_auth(&token)).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["client_secret"], secret.as_str());
    assert!(read.get("registration_access_token").is_none(), "the token is shown once");
    for wrong in [INITIAL, "nonsense"] {
        let (status, _) = send(http.get(&uri).bearer_auth(wrong)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = send(http.get(b.url("/register/example-app")).bearer_auth(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "another client's URI, even a static one");

    let replaced = json!({
        "client_id": id,
        "redirect_uris": ["https://app.example.com/moved"],
        "client_name": "Renamed",
        "grant_types": ["authorization_code", "client_credentials"],
    });
    let (status, body) = send(http.put(&uri).bearer_auth(&token).json(&replaced)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let live = b.broker.generations.current();
    let client = live.config.clients.get(id.as_str()).unwrap();
    assert_eq!(
        (client.name.as_str(), client.redirect_uris.as_slice()),
        ("Renamed", &["https://app.example.com/moved".to_string()][..])
    );
    let (status, body) = send(
        http.put(&uri)
            .bearer_auth(&token)
            .json(&json!({"client_id": "other", "redirect_uris": ["https://x.example/cb"]})),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_client_metadata")));
    let chosen = json!({"client_id": id, "client_secret": "my own", "redirect_uris": ["https://x.example/cb"]});
    let (status, _) = send(http.put(&uri).bearer_auth(&token).json(&chosen)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a secret cannot be chosen");

    let (status, _) = send(http.delete(&uri).bearer_auth(&token)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(client_credentials(&b, &id, &secret).await, StatusCode::UNAUTHORIZED, "gone at once");
    let (status, _) = send(http.get(&uri).bearer_auth(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Metadata the broker cannot honour is refused with RFC 7591's errors, and nothing is stored.
#[tokio::test]
async fn bad_metadata_gets_the_rfc_errors() {
    let b = broker().await;
    for (body, error) in [
        (json!({}), "invalid_redirect_uri"),
        (json!({"redirect_uris": ["/relative"]}), "invalid_redirect_uri"),
        (json!({"redirect_uris": ["https://a.example/cb#frag"]}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (json!({"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]}), "invalid_client_metadata"),
        (json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["password"]}), "invalid_client_metadata"),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (json!(["not", "an", "object"]), "invalid_client_metadata"),
    ] {
        let (status, answer) = register(&b, Some(INITIAL), body.clone()).await;
        assert_eq!((status, answer["error"].as_str()), (StatusCode::BAD_REQUEST, Some(error)), "{body} → {answer}");
    }
    let stored: Vec<portcullis::config::stored::StoredClient> = b.broker.store.api_list(0).await.unwrap();
    assert!(stored.is_empty(), "nothing refused was stored");

    let (status, public) = register(
        &b,
        Some(INITIAL),
        json!({"redirect_uris": ["http://127.0.0.1:8400/cb"], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{public}");
    assert!(public.get("client_secret").is_none(), "a public client gets no secret");
    assert_eq!(public["token_endpoint_auth_method"], "none");
}

/// Without `oauth2.clientRegistration` there is no endpoint and discovery says none.
#[tokio::test]
async fn registration_is_off_by_default() {
    let b = TestBroker::builder().start().await;
    let discovery: Value =
        reqwest::get(b.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert!(discovery.get("registration_endpoint").is_none());
    let (status, _) = register(&b, Some(INITIAL), json!({"redirect_uris": ["https://a.example/cb"]})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
