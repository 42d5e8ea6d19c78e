//! The steps of a login as a browser and a relying party take them, for the connector tests:
//! start an authorization request aimed at one connector, fill a password form or follow the
//! upstream's redirects, approve, and redeem the code. Every step asserts what a real client
//! would check (status, state), so a test reads as the flow it exercises.

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::Value;

use crate::{TestBroker, hidden, location, pkce, query_param};

/// `example-app`'s registered redirect URI and secret in `BASE_CONFIG`.
pub const CALLBACK: &str = "http://127.0.0.1:5555/callback";
pub const CLIENT: &str = "example-app";
pub const SECRET: &str = "ZXhhbXBsZS1hcHAtc2VjcmV0";

/// What the relying party keeps while the browser is away.
pub struct Pending {
    pub verifier: String,
    pub state: String,
    pub nonce: String,
}

/// `GET /auth` for `example-app` with PKCE and `connector_id=<connector>`, following the
/// broker's redirect to `/auth/<connector>`. Returns that page's response: the password form
/// (200) or the redirect to the upstream (303).
pub async fn authorize(
    b: &TestBroker,
    web: &reqwest::Client,
    connector: &str,
    scopes: &str,
) -> (reqwest::Response, Pending) {
    let (verifier, challenge) = pkce();
    let state = portcullis::web::random_token();
    let nonce = portcullis::web::random_token();
    let url = url::Url::parse_with_params(
        &b.url("/auth"),
        &[
            ("client_id", CLIENT),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
            ("scope", scopes),
            ("state", &state),
            ("nonce", &nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("connector_id", connector),
        ],
    )
    .unwrap();
    let first = web.get(url.as_str()).send().await.unwrap();
    assert!(first.status().is_redirection(), "/auth answered {} instead of sending to the connector", first.status());
    let to = location(&first, &b.base).expect("redirect to the connector");
    assert!(to.contains(&format!("/auth/{connector}?req=")), "{to}");
    let page = web.get(&to).send().await.unwrap();
    (page, Pending { verifier, state, nonce })
}

/// Posts the password form in `form_html` (as `/auth/<connector>` showed it).
pub async fn submit_password(
    b: &TestBroker,
    web: &reqwest::Client,
    connector: &str,
    form_html: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    let req = hidden(form_html, "req").expect("req field in the password form");
    let csrf = hidden(form_html, "csrf").expect("csrf field in the password form");
    web.post(b.url(&format!("/auth/{connector}/login")))
        .form(&[("req", req.as_str()), ("csrf", &csrf), ("login", username), ("password", password)])
        .send()
        .await
        .unwrap()
}

/// A whole password login as a browser does it, in a fresh cookie jar: authorize through
/// `connector`'s password form, post `username` and `password`, approve, redeem the code.
pub async fn password_login(b: &TestBroker, connector: &str, scopes: &str, username: &str, password: &str) -> Tokens {
    let web = crate::browser();
    let (form, pending) = authorize(b, &web, connector, scopes).await;
    let form = form.text().await.unwrap();
    let done = submit_password(b, &web, connector, &form, username, password).await;
    let code = finish(b, &web, done, &pending).await;
    exchange(b, &code, &pending).await
}

/// From the broker's redirect after a successful login (`response` is a 303 to the approval
/// page or to the client), approves if asked and returns the authorization code, checking
/// the state came back.
pub async fn finish(b: &TestBroker, web: &reqwest::Client, response: reqwest::Response, pending: &Pending) -> String {
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "login accepted");
    let mut next = location(&response, &b.base).expect("redirect after login");
    if next.contains("/approval") {
        let page = web.get(&next).send().await.unwrap().text().await.unwrap();
        let (req, csrf) = (hidden(&page, "req").expect("req"), hidden(&page, "csrf").expect("csrf"));
        let done = web
            .post(b.url("/approval"))
            .form(&[("req", req.as_str()), ("csrf", &csrf), ("approval", "approve")])
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), StatusCode::SEE_OTHER, "approval accepted");
        next = location(&done, &b.base).unwrap();
    }
    assert!(next.starts_with(CALLBACK), "back to the client: {next}");
    assert_eq!(query_param(&next, "state").as_deref(), Some(pending.state.as_str()));
    query_param(&next, "code").unwrap_or_else(|| panic!("no code in {next}"))
}

/// The token endpoint's answer to a code, with the ID token's claims decoded.
pub struct Tokens {
    pub json: Value,
    pub claims: Value,
}

impl Tokens {
    pub fn refresh_token(&self) -> Option<&str> {
        self.json["refresh_token"].as_str()
    }
}

/// Redeems `code` as `example-app` and decodes the ID token. (`tests/oidc.rs` verifies ID
/// tokens with a real relying party library; here the claims are what matter.)
pub async fn exchange(b: &TestBroker, code: &str, pending: &Pending) -> Tokens {
    let response = token(
        b,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &pending.verifier),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK, "code exchange");
    let json: Value = response.json().await.unwrap();
    let claims = claims(json["id_token"].as_str().expect("id_token"));
    assert_eq!(claims["nonce"], pending.nonce.as_str());
    Tokens { json, claims }
}

/// Verifies the ID token of `tokens` as a relying party library does (`openidconnect`: the
/// broker's discovery document and JWKS, signature, issuer, audience, expiry, the login's
/// nonce) and returns its verified `sub`, `email` and `preferred_username`.
pub async fn verify_id_token(
    b: &TestBroker,
    tokens: &Tokens,
    pending: &Pending,
) -> (String, Option<String>, Option<String>) {
    use openidconnect::core::{CoreClient, CoreIdToken, CoreProviderMetadata};
    use openidconnect::{ClientId, ClientSecret, IssuerUrl, Nonce};
    use std::str::FromStr as _;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let issuer = IssuerUrl::new(b.issuer.clone()).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &http).await.expect("discovery");
    let rp = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(CLIENT.into()),
        Some(ClientSecret::new(SECRET.into())),
    );
    let token = CoreIdToken::from_str(tokens.json["id_token"].as_str().expect("id_token")).unwrap();
    let claims =
        token.claims(&rp.id_token_verifier(), &Nonce::new(pending.nonce.clone())).expect("the ID token verifies");
    (
        claims.subject().to_string(),
        claims.email().map(|e| e.to_string()),
        claims.preferred_username().map(|u| u.to_string()),
    )
}

/// Redeems a refresh token; returns the raw response so refusals can be checked.
pub async fn refresh(b: &TestBroker, refresh_token: &str) -> reqwest::Response {
    token(b, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
}

/// `POST /token` as `example-app` (client_secret_basic).
/// `POST /token/introspect` with `token`, as the client `auth` names (or none): the status and
/// the JSON answer (`Null` when it is not JSON).
pub async fn introspect(b: &TestBroker, auth: Option<(&str, &str)>, token: &str) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().post(b.url("/token/introspect"));
    if let Some((id, secret)) = auth {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.form(&[("token", token)]).send().await.unwrap();
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

pub async fn token(b: &TestBroker, form: &[(&str, &str)]) -> reqwest::Response {
    reqwest::Client::new().post(b.url("/token")).basic_auth(CLIENT, Some(SECRET)).form(form).send().await.unwrap()
}

/// The payload of a JWT, unverified.
pub fn claims(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}
