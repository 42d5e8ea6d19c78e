//! The OAuth 2.0 authorization server half every OAuth-family fake shares (GitLab, Microsoft,
//! Gitea, Bitbucket, OpenShift, LinkedIn, a generic provider): an authorize endpoint where the
//! user approves at once (or declines), a token endpoint with the code and refresh grants as
//! RFC 6749 has them (client authentication by Basic or form body, redirect URI and PKCE S256
//! checks, single-use codes and rotating refresh tokens, `invalid_grant` / `invalid_client`
//! answers), and bearer checks for the fake's API routes. Each upstream's fake mounts
//! [`OAuth::router`] at its own paths beside its API, and a test drives both through it.
//!
//! Also here: the browser's round trip broker → upstream → broker that every such test takes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use reqwest::StatusCode as ReqwestStatus;
use serde_json::{Value, json};

use crate::{TestBroker, browser, flow, location};

/// How a fake's token endpoint answers.
#[derive(Clone, Debug)]
pub struct TokenShape {
    /// `expires_in` of access tokens (none: no expiry).
    pub expires_in: Option<u64>,
    /// Whether refresh tokens are issued.
    pub refresh_tokens: bool,
    /// `token_type` as the upstream spells it.
    pub token_type: String,
    /// More fields of every token answer (GitLab's `created_at`, Bitbucket's `scopes`).
    pub extra: Value,
    /// Answer form-encoded instead of JSON.
    pub form_encoded: bool,
    /// Issue access tokens as (unsigned) JWTs with these claims.
    pub jwt_claims: Option<Value>,
    /// Refuse client authentication by Basic (`invalid_client`): the body only.
    pub body_auth_only: bool,
}

impl Default for TokenShape {
    fn default() -> Self {
        Self {
            expires_in: Some(7200),
            refresh_tokens: true,
            token_type: "Bearer".into(),
            extra: json!({}),
            form_encoded: false,
            jwt_claims: None,
            body_auth_only: false,
        }
    }
}

struct Grant {
    redirect_uri: Option<String>,
    scope: String,
    challenge: Option<String>,
}

struct Inner {
    client_id: String,
    client_secret: String,
    shape: TokenShape,
    /// Where to send the browser when the request names no redirect URI (Bitbucket).
    default_redirect: Option<String>,
    codes: HashMap<String, Grant>,
    /// access token → granted scope
    access: HashMap<String, String>,
    /// refresh token → granted scope
    refresh: HashMap<String, String>,
    decline: Option<String>,
    /// The next token requests answer this (status, JSON body).
    token_failure: Option<(u16, Value)>,
    authorize_requests: Vec<Vec<(String, String)>>,
    /// `grant_type` and client authentication style (`basic`/`body`) of each token request.
    token_requests: Vec<(String, String)>,
    issued: Vec<String>,
}

/// The authorization server; clone it into the fake's API handlers.
#[derive(Clone)]
pub struct OAuth(Arc<Mutex<Inner>>);

impl OAuth {
    pub fn new(client_id: &str, client_secret: &str, shape: TokenShape) -> Self {
        OAuth(Arc::new(Mutex::new(Inner {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            shape,
            default_redirect: None,
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            decline: None,
            token_failure: None,
            authorize_requests: Vec::new(),
            token_requests: Vec::new(),
            issued: Vec::new(),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The authorize endpoint at `authorize` and the token endpoint at `token`.
    pub fn router(&self, authorize: &str, token: &str) -> Router {
        Router::new()
            .route(authorize, get(authorize_handler))
            .route(token, post(token_handler))
            .with_state(self.clone())
    }

    /// The bearer token's granted scope, if the token is live.
    pub fn scope_of(&self, headers: &HeaderMap) -> Option<String> {
        let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let token = auth.strip_prefix("Bearer ").or_else(|| auth.strip_prefix("bearer "))?;
        self.lock().access.get(token).cloned()
    }

    /// A live access token for `scope`, as if a login had just obtained it (a token a client
    /// holds, for token exchange).
    pub fn issue_access_token(&self, scope: &str) -> String {
        let token = format!("at-{}", random());
        let mut inner = self.lock();
        inner.access.insert(token.clone(), scope.to_string());
        inner.issued.push(token.clone());
        token
    }

    /// Where the user is sent back when the authorize request names no `redirect_uri`.
    pub fn set_default_redirect(&self, uri: &str) {
        self.lock().default_redirect = Some(uri.into());
    }

    pub fn set_shape(&self, f: impl FnOnce(&mut TokenShape)) {
        f(&mut self.lock().shape);
    }

    /// The user declines (or the upstream refuses) every authorization with `error`.
    pub fn decline(&self, error: &str) {
        self.lock().decline = Some(error.into());
    }

    /// Every token request from now on answers `status` with `body`.
    pub fn fail_tokens(&self, status: u16, body: Value) {
        self.lock().token_failure = Some((status, body));
    }

    /// Token requests are answered normally again.
    pub fn clear_token_failure(&self) {
        self.lock().token_failure = None;
    }

    /// Revokes every access and refresh token issued so far.
    pub fn revoke_all(&self) {
        let mut inner = self.lock();
        inner.access.clear();
        inner.refresh.clear();
    }

    /// Revokes the access tokens only (they expired), keeping the refresh tokens.
    pub fn expire_access_tokens(&self) {
        self.lock().access.clear();
    }

    /// The query of each authorize request, in order.
    pub fn authorize_requests(&self) -> Vec<Vec<(String, String)>> {
        self.lock().authorize_requests.clone()
    }

    /// The last authorize request's `name` parameter.
    pub fn authorize_param(&self, name: &str) -> Option<String> {
        let inner = self.lock();
        let last = inner.authorize_requests.last()?;
        last.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    /// `(grant_type, client auth style)` of each token request, in order.
    pub fn token_requests(&self) -> Vec<(String, String)> {
        self.lock().token_requests.clone()
    }

    /// Every code and token issued so far, for the no-secrets-in-logs checks.
    pub fn issued_secrets(&self) -> Vec<String> {
        let inner = self.lock();
        let mut all = inner.issued.clone();
        all.push(inner.client_secret.clone());
        all
    }
}

fn random() -> String {
    portcullis::web::random_token()
}

async fn authorize_handler(State(o): State<OAuth>, Query(q): Query<Vec<(String, String)>>) -> Response {
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut inner = o.lock();
    inner.authorize_requests.push(q.clone());
    if get("client_id").as_deref() != Some(inner.client_id.as_str()) {
        return (StatusCode::BAD_REQUEST, "unknown client_id").into_response();
    }
    if get("response_type").as_deref() != Some("code") {
        return (StatusCode::BAD_REQUEST, "unsupported response_type").into_response();
    }
    let Some(back_to) = get("redirect_uri").or_else(|| inner.default_redirect.clone()) else {
        return (StatusCode::BAD_REQUEST, "no redirect_uri").into_response();
    };
    let mut back = url::Url::parse(&back_to).expect("redirect_uri is a URL");
    if let Some(error) = inner.decline.clone() {
        back.query_pairs_mut()
            .append_pair("error", &error)
            .append_pair("error_description", "The resource owner or authorization server denied the request.");
    } else {
        let code = random();
        let challenge = get("code_challenge");
        if challenge.is_some() && get("code_challenge_method").as_deref() != Some("S256") {
            return (StatusCode::BAD_REQUEST, "only S256").into_response();
        }
        let grant = Grant { redirect_uri: get("redirect_uri"), scope: get("scope").unwrap_or_default(), challenge };
        inner.codes.insert(code.clone(), grant);
        inner.issued.push(code.clone());
        back.query_pairs_mut().append_pair("code", &code);
    }
    if let Some(state) = get("state") {
        back.query_pairs_mut().append_pair("state", &state);
    }
    Redirect::to(back.as_str()).into_response()
}

fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({"error": error, "error_description": description}))).into_response()
}

async fn token_handler(
    State(o): State<OAuth>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let mut inner = o.lock();
    // Client authentication: Basic (form-encoded parts) or the body, not both.
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            let d =
                |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
            Some((d(id)?, d(secret)?))
        });
    let style = if basic.is_some() { "basic" } else { "body" };
    inner.token_requests.push((field("grant_type"), style.to_string()));
    let refuse_basic = basic.is_some() && inner.shape.body_auth_only;
    let (id, secret) = basic.unwrap_or_else(|| (field("client_id"), field("client_secret")));
    if let Some((status, body)) = inner.token_failure.clone() {
        return (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), Json(body)).into_response();
    }
    if refuse_basic {
        return token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication by Basic is not allowed.",
        );
    }
    if id != inner.client_id || secret != inner.client_secret {
        return token_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed.");
    }
    let scope = match field("grant_type").as_str() {
        "authorization_code" => {
            let Some(grant) = inner.codes.remove(&field("code")) else {
                return token_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
                );
            };
            if grant.redirect_uri.is_some() && grant.redirect_uri != form.get("redirect_uri").cloned() {
                return token_error(StatusCode::BAD_REQUEST, "invalid_grant", "redirect_uri does not match");
            }
            if let Some(challenge) = &grant.challenge {
                let verifier = field("code_verifier");
                let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(portcullis::oidc::pkce::sha256(verifier.as_bytes()));
                if &computed != challenge {
                    return token_error(StatusCode::BAD_REQUEST, "invalid_grant", "PKCE verification failed");
                }
            }
            grant.scope
        }
        "refresh_token" => {
            // Single use: the old refresh token dies with this answer.
            match inner.refresh.remove(&field("refresh_token")) {
                Some(scope) => scope,
                None => return token_error(StatusCode::BAD_REQUEST, "invalid_grant", "The refresh token is invalid."),
            }
        }
        _ => return token_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "unsupported grant_type"),
    };
    let access = match &inner.shape.jwt_claims {
        Some(claims) => {
            let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            format!("{}.{}.{}", b64(&json!({"alg": "RS256", "typ": "at+jwt"})), b64(claims), random())
        }
        None => format!("at-{}", random()),
    };
    inner.access.insert(access.clone(), scope.clone());
    inner.issued.push(access.clone());
    let shape = inner.shape.clone();
    let mut answer = json!({"access_token": access, "scope": scope});
    if !shape.token_type.is_empty() {
        answer["token_type"] = shape.token_type.clone().into();
    }
    if let Some(e) = shape.expires_in {
        answer["expires_in"] = e.into();
    }
    if shape.refresh_tokens {
        let refresh = format!("rt-{}", random());
        inner.refresh.insert(refresh.clone(), scope);
        inner.issued.push(refresh.clone());
        answer["refresh_token"] = refresh.into();
    }
    if let (Some(a), Some(extra)) = (answer.as_object_mut(), shape.extra.as_object()) {
        a.extend(extra.clone());
    }
    if shape.form_encoded {
        let pairs: Vec<(String, String)> = answer
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
            .collect();
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        return ([(header::CONTENT_TYPE, "application/x-www-form-urlencoded")], body).into_response();
    }
    Json(answer).into_response()
}

/// Binds `127.0.0.1:0` and serves what `app` builds for the bound base URL.
pub async fn serve(app: impl FnOnce(&str) -> Router) -> (String, tokio::task::JoinHandle<()>) {
    let (base, (), server) = serve_with(|base| (app(base), ())).await;
    (base, server)
}

/// As [`serve`], for a fake whose state needs its own base URL: `app` builds the router and the
/// state the fake keeps (usually the `Arc` the router was given), returned beside the base.
pub async fn serve_with<T>(app: impl FnOnce(&str) -> (Router, T)) -> (String, T, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake upstream");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (router, state) = app(&base);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (base, state, server)
}

/// A broker whose connectors are `block(issuer)` (Dex-form YAML list items, `type:` naming a
/// shipped plugin), with `plugins.dir` at the shipped plugins and no other change.
pub async fn dex_broker(block: impl FnOnce(&str) -> String) -> TestBroker {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let issuer = crate::default_issuer(&listener);
    let plugins = format!("plugins:\n  dir: \"{}\"\n", env!("PORTCULLIS_PLUGINS"));
    TestBroker::builder().listener(listener).issuer(&issuer).connectors(&block(&issuer)).extra(&plugins).start().await
}

/// Starts a login through `connector` and follows the redirects to the upstream at
/// `upstream_base` and back; returns the broker's answer to the callback.
pub async fn login(
    b: &TestBroker,
    upstream_base: &str,
    web: &reqwest::Client,
    connector: &str,
    scopes: &str,
) -> (reqwest::Response, flow::Pending) {
    let (to_upstream, pending) = flow::authorize(b, web, connector, scopes).await;
    assert_eq!(to_upstream.status(), ReqwestStatus::SEE_OTHER, "sent upstream");
    let authorize = location(&to_upstream, &b.base).expect("redirect upstream");
    assert!(authorize.starts_with(upstream_base), "{authorize}");
    let approved = web.get(&authorize).send().await.unwrap();
    assert!(approved.status().is_redirection(), "the upstream sends the browser back: {}", approved.status());
    let callback = location(&approved, upstream_base).expect("redirect back to the broker");
    assert!(callback.starts_with(&b.url("/callback")), "{callback}");
    (web.get(&callback).send().await.unwrap(), pending)
}

/// A full login up to the tokens.
pub async fn tokens(b: &TestBroker, upstream_base: &str, connector: &str, scopes: &str) -> flow::Tokens {
    let web = browser();
    let (response, pending) = login(b, upstream_base, &web, connector, scopes).await;
    let code = flow::finish(b, &web, response, &pending).await;
    flow::exchange(b, &code, &pending).await
}

/// A refresh's answer: status and JSON body.
pub async fn refresh(b: &TestBroker, refresh_token: &str) -> (ReqwestStatus, Value) {
    let response = flow::refresh(b, refresh_token).await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The status and text of a failed login's page.
pub async fn failed_login(
    b: &TestBroker,
    upstream_base: &str,
    connector: &str,
    scopes: &str,
) -> (ReqwestStatus, String) {
    let (response, _) = login(b, upstream_base, &browser(), connector, scopes).await;
    assert!(response.headers().get("location").is_none(), "no redirect, so no code");
    let status = response.status();
    (status, response.text().await.unwrap())
}

/// The error loading `block` (Dex-form connector YAML) gives, as `check-config` and a reload
/// would report it; panics if it loads.
pub async fn load_error(block: &str) -> String {
    let yaml = crate::base_config("http://127.0.0.1:1/dex", block)
        + &format!("plugins:\n  dir: \"{}\"\n", env!("PORTCULLIS_PLUGINS"));
    match portcullis::generation::load_registry(&crate::engine(), &crate::config_from_yaml(&yaml), None).await {
        Ok(_) => panic!("the connector accepted {block}"),
        Err(e) => format!("{e:#}"),
    }
}
