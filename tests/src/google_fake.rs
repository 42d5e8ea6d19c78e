//! A fake Google OpenID Connect provider on 127.0.0.1:0, serving the shapes of
//! `shared/upstreams.md` §3: discovery, the authorization endpoint (which signs the user in at
//! once and redirects back with a code), the token endpoint (code with PKCE, refresh; `400
//! invalid_grant` for anything it did not issue), the JWKS and userinfo. ID tokens are RS256,
//! signed by the broker's own key code with a fresh key; a test can make the fake forge them
//! (wrong nonce, audience, issuer or `azp`, expired, unknown key, `alg: none`, HS256 signed
//! with the client secret), or userinfo about another user, to check the connectors refuse them.
//! The discovery's `id_token_signing_alg_values_supported`, a refresh without ID token,
//! userinfo's answer and a failing token endpoint can be set too.
//!
//! For Workspace groups it is also the service account's side: [`GoogleFake::service_account`]
//! is a JSON key file, the token endpoint takes the JWT-bearer grant (RFC 7523; the assertion's
//! signature checked against that key, its `iss`, `aud`, `scope` and `exp`, and `sub` one of the
//! admins [`GoogleFake::set_directory`] named), and the Directory API's `groups.list` answers
//! `userKey` from the directory a page of [`GoogleFake::set_page_size`] groups at a time, for an
//! admin of the member's own domain only.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use portcullis::keys::Keys;
use portcullis::storage::{MemoryBackend, Store};
use serde_json::{Value, json};

/// The client the fake knows.
pub const CLIENT_ID: &str = "1234-fake.apps.googleusercontent.com";
pub const CLIENT_SECRET: &str = "fake-google-client-secret";

/// What the next ID tokens get wrong on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    Nothing,
    WrongNonce,
    WrongAudience,
    Expired,
    UnknownKey,
    /// Not the ID token: userinfo answers about another user.
    OtherUserinfoSub,
    WrongIssuer,
    /// An unsigned token (`alg: none`, empty signature).
    AlgNone,
    /// HS256, signed with the client secret (which the client knows, so proves nothing).
    Hs256,
    /// `aud` lists the client and another, `azp` is the other.
    SeveralAudiencesWrongAzp,
    /// `aud` lists the client and another, no `azp`.
    SeveralAudiencesNoAzp,
}

struct Grant {
    nonce: Option<String>,
    redirect_uri: String,
    challenge: Option<String>,
    offline: bool,
}

struct Inner {
    user: Value,
    forge: Forge,
    codes: HashMap<String, Grant>,
    access_tokens: HashSet<String>,
    refresh_tokens: HashSet<String>,
    authorize_requests: Vec<Vec<(String, String)>>,
    /// Every code and token handed out, for tests that check none reaches a log.
    issued: Vec<String>,
    signing_algs: Vec<String>,
    refresh_id_token: bool,
    userinfo: Option<Value>,
    userinfo_calls: usize,
    token_unavailable: bool,
    /// Member (user or group) email → the groups it is a direct member of.
    directory: HashMap<String, Vec<String>>,
    /// The admins the service account may act as (domain-wide delegation).
    admins: HashSet<String>,
    page_size: usize,
    /// Directory access token → the admin it acts as.
    directory_tokens: HashMap<String, String>,
    /// The claims of every JWT-bearer assertion accepted.
    assertions: Vec<Value>,
    /// Every `groups.list` request: (userKey, pageToken).
    directory_requests: Vec<(String, Option<String>)>,
}

struct Shared {
    issuer: String,
    inner: Mutex<Inner>,
    key: Keys,
    unknown_key: Keys,
    /// The service account's key: it signs its assertions, `Keys::verify` checks them.
    service_account: Keys,
    service_account_pem: String,
    service_account_kid: String,
}

/// The fake service account's email (the assertions' `iss`).
pub const SERVICE_ACCOUNT: &str = "groups-reader@acme-project.iam.gserviceaccount.com";
/// The scope Dex (and the google connector) asks the Directory API for.
pub const DIRECTORY_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.group.readonly";

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running fake Google.
pub struct GoogleFake {
    /// The fake's issuer, `http://127.0.0.1:PORT` (no path).
    pub issuer: String,
    shared: Arc<Shared>,
    _server: tokio::task::JoinHandle<()>,
}

async fn keys() -> Keys {
    keys_in(Store::new(Arc::new(MemoryBackend::new()))).await
}

async fn keys_in(store: Store) -> Keys {
    let keys =
        Keys::new(store, portcullis::config::SigningAlgorithm::Rs256, Duration::from_secs(86400), Duration::ZERO);
    keys.refresh(portcullis::broker::now()).await.expect("fake Google key");
    keys
}

impl GoogleFake {
    /// Starts the fake; every login signs in as `user` (ID token claims such as `sub`,
    /// `email`, `email_verified`, `name`, `hd`).
    pub async fn start(user: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let sa_store = Store::new(Arc::new(MemoryBackend::new()));
        let service_account = keys_in(sa_store.clone()).await;
        let (set, _) = sa_store.keys(portcullis::broker::now()).await.expect("keys").expect("a key set");
        let shared = Arc::new(Shared {
            issuer: issuer.clone(),
            inner: Mutex::new(Inner {
                user,
                forge: Forge::Nothing,
                codes: HashMap::new(),
                access_tokens: HashSet::new(),
                refresh_tokens: HashSet::new(),
                authorize_requests: Vec::new(),
                issued: Vec::new(),
                signing_algs: vec!["RS256".into()],
                refresh_id_token: true,
                userinfo: None,
                userinfo_calls: 0,
                token_unavailable: false,
                directory: HashMap::new(),
                admins: HashSet::new(),
                page_size: 2,
                directory_tokens: HashMap::new(),
                assertions: Vec::new(),
                directory_requests: Vec::new(),
            }),
            key: keys().await,
            unknown_key: keys().await,
            service_account,
            service_account_pem: set.current.private_pem.clone(),
            service_account_kid: set.current.kid.clone(),
        });
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/o/oauth2/v2/auth", get(authorize))
            .route("/token", post(token))
            .route("/oauth2/v3/certs", get(certs))
            .route("/v1/userinfo", get(userinfo))
            .route("/admin/directory/v1/groups", get(groups_list))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { issuer, shared, _server: server }
    }

    /// The user the next logins sign in as.
    pub fn set_user(&self, user: Value) {
        self.shared.lock().user = user;
    }

    /// What the next ID tokens get wrong.
    pub fn forge(&self, forge: Forge) {
        self.shared.lock().forge = forge;
    }

    /// What discovery lists as `id_token_signing_alg_values_supported` (Google: `["RS256"]`).
    pub fn set_signing_algs(&self, algs: &[&str]) {
        self.shared.lock().signing_algs = algs.iter().map(|a| a.to_string()).collect();
    }

    /// Whether refresh answers carry an ID token (Google: yes; some providers: no).
    pub fn set_refresh_id_token(&self, yes: bool) {
        self.shared.lock().refresh_id_token = yes;
    }

    /// What userinfo answers from now on (default: the user's claims).
    pub fn set_userinfo(&self, info: Value) {
        self.shared.lock().userinfo = Some(info);
    }

    /// How many userinfo requests were answered so far.
    pub fn userinfo_calls(&self) -> usize {
        self.shared.lock().userinfo_calls
    }

    /// Makes the token endpoint answer `503 temporarily_unavailable` (an outage), or not.
    pub fn set_token_unavailable(&self, yes: bool) {
        self.shared.lock().token_unavailable = yes;
    }

    /// Revokes every refresh token issued so far (as a password change would).
    pub fn revoke_refresh_tokens(&self) {
        self.shared.lock().refresh_tokens.clear();
    }

    /// Every code, access token, refresh token and ID token handed out so far.
    pub fn issued(&self) -> Vec<String> {
        self.shared.lock().issued.clone()
    }

    /// A service-account JSON key file as Google's console downloads it (its `token_uri`
    /// is this fake's token endpoint).
    pub fn service_account(&self) -> String {
        json!({
            "type": "service_account",
            "project_id": "acme-project",
            "private_key_id": self.shared.service_account_kid,
            "private_key": self.shared.service_account_pem,
            "client_email": SERVICE_ACCOUNT,
            "client_id": "100000000000000000042",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": format!("{}/token", self.issuer),
            "universe_domain": "googleapis.com",
        })
        .to_string()
    }

    /// The directory: each member (a user or group email) with the groups it is a direct
    /// member of; and the admins the service account may act as.
    pub fn set_directory(&self, memberships: &[(&str, &[&str])], admins: &[&str]) {
        let mut inner = self.shared.lock();
        inner.directory =
            memberships.iter().map(|(m, g)| (m.to_string(), g.iter().map(|g| g.to_string()).collect())).collect();
        inner.admins = admins.iter().map(|a| a.to_string()).collect();
    }

    /// Groups per `groups.list` page (default 2, so paging is exercised).
    pub fn set_page_size(&self, size: usize) {
        self.shared.lock().page_size = size;
    }

    /// The claims of every JWT-bearer assertion the token endpoint accepted.
    pub fn assertions(&self) -> Vec<Value> {
        self.shared.lock().assertions.clone()
    }

    /// Every `groups.list` request so far: (userKey, pageToken).
    pub fn directory_requests(&self) -> Vec<(String, Option<String>)> {
        self.shared.lock().directory_requests.clone()
    }

    /// The query parameters of the last authorization request.
    pub fn last_authorize(&self) -> HashMap<String, String> {
        self.shared.lock().authorize_requests.last().map(|q| q.iter().cloned().collect()).unwrap_or_default()
    }
}

async fn discovery(State(s): State<Arc<Shared>>) -> Json<Value> {
    let i = &s.issuer;
    let algs = s.lock().signing_algs.clone();
    Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/o/oauth2/v2/auth"),
        "device_authorization_endpoint": format!("{i}/device/code"),
        "token_endpoint": format!("{i}/token"),
        "userinfo_endpoint": format!("{i}/v1/userinfo"),
        "revocation_endpoint": format!("{i}/revoke"),
        "jwks_uri": format!("{i}/oauth2/v3/certs"),
        "response_types_supported": ["code", "token", "id_token", "code token", "code id_token", "token id_token",
            "code token id_token", "none"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": ["aud", "email", "email_verified", "exp", "family_name", "given_name", "iat", "iss",
            "locale", "name", "picture", "sub"],
        "code_challenge_methods_supported": ["plain", "S256"],
        "grant_types_supported": ["authorization_code", "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:jwt-bearer"],
    }))
}

fn random() -> String {
    portcullis::web::random_token()
}

/// Signs the user straight in and redirects back with a code, as Google does after consent.
async fn authorize(State(s): State<Arc<Shared>>, Query(query): Query<Vec<(String, String)>>) -> Response {
    let get = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut inner = s.lock();
    inner.authorize_requests.push(query.clone());
    if get("client_id").as_deref() != Some(CLIENT_ID) {
        return (StatusCode::UNAUTHORIZED, "Error 401: invalid_client").into_response();
    }
    let (Some(redirect_uri), Some("code")) = (get("redirect_uri"), get("response_type").as_deref()) else {
        return (StatusCode::BAD_REQUEST, "Error 400: invalid_request").into_response();
    };
    let challenge = match get("code_challenge_method").as_deref() {
        Some("S256") => get("code_challenge"),
        Some(_) => return (StatusCode::BAD_REQUEST, "Error 400: invalid_request").into_response(),
        None => None,
    };
    let code = format!("4/0Afake{}", random());
    // Google's `access_type=offline`, or the `offline_access` scope generic OIDC clients send.
    let offline = get("access_type").as_deref() == Some("offline")
        || get("scope").is_some_and(|s| s.split(' ').any(|s| s == "offline_access"));
    inner.issued.push(code.clone());
    inner
        .codes
        .insert(code.clone(), Grant { nonce: get("nonce"), redirect_uri: redirect_uri.clone(), challenge, offline });
    let mut back = url::Url::parse(&redirect_uri).expect("redirect_uri is a URL");
    back.query_pairs_mut()
        .append_pair("state", &get("state").unwrap_or_default())
        .append_pair("code", &code)
        .append_pair("scope", "email profile openid https://www.googleapis.com/auth/userinfo.email")
        .append_pair("authuser", "0")
        .append_pair("prompt", "consent");
    Redirect::to(back.as_str()).into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({"error": error, "error_description": description}))).into_response()
}

/// The client's credentials: HTTP Basic or the form body.
fn client_ok(headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let (id, secret) = match &basic {
        Some(pair) => pair.split_once(':').unwrap_or((pair.as_str(), "")),
        None => (
            form.get("client_id").map(String::as_str).unwrap_or(""),
            form.get("client_secret").map(String::as_str).unwrap_or(""),
        ),
    };
    id == CLIENT_ID && secret == CLIENT_SECRET
}

async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if form.get("grant_type").map(String::as_str) == Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return jwt_bearer(&s, &form);
    }
    if !client_ok(&headers, &form) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized");
    }
    let mut inner = s.lock();
    if inner.token_unavailable {
        return oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "Try again later");
    }
    let mut with_id_token = true;
    let (nonce, refresh_token) = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some(grant) = form.get("code").and_then(|c| inner.codes.remove(c)) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Bad Request");
            };
            if form.get("redirect_uri") != Some(&grant.redirect_uri) {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Bad Request");
            }
            if let Some(challenge) = &grant.challenge {
                let verifier = form.get("code_verifier").map(String::as_str).unwrap_or("");
                let computed = URL_SAFE_NO_PAD.encode(portcullis::oidc::pkce::sha256(verifier.as_bytes()));
                if &computed != challenge {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid code verifier.");
                }
            }
            let refresh = grant.offline.then(|| format!("1//0gFake{}", random()));
            if let Some(r) = &refresh {
                inner.refresh_tokens.insert(r.clone());
                inner.issued.push(r.clone());
            }
            (grant.nonce, refresh)
        }
        Some("refresh_token") => {
            if !form.get("refresh_token").is_some_and(|r| inner.refresh_tokens.contains(r)) {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Token has been expired or revoked.");
            }
            // Google keeps the refresh token: none comes back.
            with_id_token = inner.refresh_id_token;
            (None, None)
        }
        _ => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "Invalid grant_type"),
    };
    let access_token = format!("ya29.fake-{}", random());
    inner.access_tokens.insert(access_token.clone());
    let id_token = id_token(&s, &inner, nonce);
    inner.issued.push(access_token.clone());
    inner.issued.push(id_token.clone());
    let mut body = json!({
        "access_token": access_token,
        "expires_in": 3599,
        "scope": "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile",
        "token_type": "Bearer",
    });
    if with_id_token {
        body["id_token"] = json!(id_token);
    }
    if let Some(r) = refresh_token {
        body["refresh_token"] = json!(r);
    }
    Json(body).into_response()
}

/// The user's ID token, forged as asked.
fn id_token(s: &Shared, inner: &Inner, nonce: Option<String>) -> String {
    let now = portcullis::broker::now();
    let mut claims = inner.user.clone();
    claims["iss"] = json!(s.issuer);
    claims["aud"] = json!(CLIENT_ID);
    claims["azp"] = json!(CLIENT_ID);
    claims["iat"] = json!(now);
    claims["exp"] = json!(now + 3600);
    claims["at_hash"] = json!("Xq3fakeHash0");
    if let Some(n) = nonce {
        claims["nonce"] = json!(n);
    }
    let mut key = &s.key;
    match inner.forge {
        Forge::Nothing => {}
        Forge::WrongNonce => claims["nonce"] = json!("n-0S6_not-the-one-sent"),
        Forge::WrongAudience => {
            claims["aud"] = json!("someone-else.apps.googleusercontent.com");
            claims["azp"] = json!("someone-else.apps.googleusercontent.com");
        }
        Forge::Expired => {
            claims["iat"] = json!(now - 7200);
            claims["exp"] = json!(now - 3600);
        }
        Forge::UnknownKey => key = &s.unknown_key,
        Forge::OtherUserinfoSub => {}
        Forge::WrongIssuer => claims["iss"] = json!("https://accounts.google.com.evil.test"),
        Forge::SeveralAudiencesWrongAzp => {
            claims["aud"] = json!([CLIENT_ID, "someone-else.apps.googleusercontent.com"]);
            claims["azp"] = json!("someone-else.apps.googleusercontent.com");
        }
        Forge::SeveralAudiencesNoAzp => {
            claims["aud"] = json!([CLIENT_ID, "someone-else.apps.googleusercontent.com"]);
            if let Some(c) = claims.as_object_mut() {
                c.remove("azp");
            }
        }
        Forge::AlgNone => return compact(&json!({"alg": "none", "typ": "JWT"}), &claims, |_| Vec::new()),
        Forge::Hs256 => {
            return compact(&json!({"alg": "HS256", "typ": "JWT"}), &claims, |input| {
                hmac_sha256(CLIENT_SECRET.as_bytes(), input)
            });
        }
    }
    key.sign(&claims, "JWT").expect("sign")
}

/// A compact JWS of `header` and `claims`, with the signature `sign` makes over its input.
fn compact(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = URL_SAFE_NO_PAD.encode(sign(input.as_bytes()));
    format!("{input}.{signature}")
}

/// HMAC-SHA256 (RFC 2104) over the broker's SHA-256, for keys up to 64 bytes.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = portcullis::oidc::pkce::sha256(&[pad(0x36), message.to_vec()].concat());
    portcullis::oidc::pkce::sha256(&[pad(0x5c), inner].concat())
}

async fn certs(State(s): State<Arc<Shared>>) -> Response {
    let jwks = s.key.jwks().expect("jwks");
    ([(header::CONTENT_TYPE, "application/json")], jwks).into_response()
}

async fn userinfo(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let mut inner = s.lock();
    inner.userinfo_calls += 1;
    let token =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !token.is_some_and(|t| inner.access_tokens.contains(t)) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_request", "Invalid Credentials");
    }
    let mut user = inner.userinfo.clone().unwrap_or_else(|| inner.user.clone());
    if inner.forge == Forge::OtherUserinfoSub {
        user["sub"] = json!("100000000000000000001");
    }
    Json(user).into_response()
}

/// The service account's JWT-bearer grant: the assertion must be signed by its key, name it as
/// `iss`, this endpoint as `aud`, the directory scope, and as `sub` an admin it may act as.
fn jwt_bearer(s: &Shared, form: &HashMap<String, String>) -> Response {
    let token_url = format!("{}/token", s.issuer);
    let assertion = form.get("assertion").map(String::as_str).unwrap_or("");
    let Some(claims) = s.service_account.verify::<Value>(assertion, SERVICE_ACCOUNT, Some(&token_url)) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid JWT Signature.");
    };
    let now = portcullis::broker::now();
    let iat = claims["iat"].as_i64().unwrap_or(0);
    if (iat - now).abs() > 300 || claims["exp"].as_i64().unwrap_or(0) > iat + 3600 {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid JWT: Token must be a short-lived token");
    }
    if claims["scope"].as_str() != Some(DIRECTORY_SCOPE) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        );
    }
    let mut inner = s.lock();
    let admin = claims["sub"].as_str().unwrap_or("").to_string();
    if !inner.admins.contains(&admin) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
        );
    }
    inner.assertions.push(claims);
    let access_token = format!("ya29.c.fake-{}", random());
    inner.directory_tokens.insert(access_token.clone(), admin);
    inner.issued.push(access_token.clone());
    Json(json!({"access_token": access_token, "expires_in": 3599, "token_type": "Bearer"})).into_response()
}

fn domain_of(email: &str) -> &str {
    email.rsplit_once('@').map_or("", |(_, d)| d)
}

/// `groups.list?userKey=…&pageToken=…`, as admin.googleapis.com answers it.
async fn groups_list(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = s.lock();
    let token =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let Some(admin) = token.and_then(|t| inner.directory_tokens.get(t)).cloned() else {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": {"code": 401, "message": "Login Required."}})))
            .into_response();
    };
    let user_key = query.get("userKey").cloned().unwrap_or_default();
    let page_token = query.get("pageToken").cloned();
    inner.directory_requests.push((user_key.clone(), page_token.clone()));
    if domain_of(&user_key) != domain_of(&admin) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"error": {"code": 403, "message": "Not Authorized to access this resource/api"}})),
        )
            .into_response();
    }
    let all = inner.directory.get(&user_key).cloned().unwrap_or_default();
    let start: usize =
        page_token.as_deref().and_then(|t| t.strip_prefix("page-")).and_then(|n| n.parse().ok()).unwrap_or(0);
    let end = (start + inner.page_size.max(1)).min(all.len());
    let groups: Vec<Value> = all
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .map(|g| json!({"kind": "admin#directory#group", "id": format!("id-{g}"), "email": g, "name": g, "directMembersCount": "1", "description": "", "adminCreated": true}))
        .collect();
    let mut body = json!({"kind": "admin#directory#groups", "etag": "\"fake\"", "groups": groups});
    if end < all.len() {
        body["nextPageToken"] = json!(format!("page-{end}"));
    }
    if all.is_empty() {
        body.as_object_mut().map(|b| b.remove("groups"));
    }
    Json(body).into_response()
}
