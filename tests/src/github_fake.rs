//! A fake GitHub (Enterprise-style paths) on 127.0.0.1:0, serving the shapes of
//! `shared/upstreams.md` §1-2: the authorize page (the user approves at once and is sent back
//! with a code), the token endpoint (HTTP 200 with `error` for bad codes and credentials), and
//! `/api/v3/user`, `/user/emails`, `/user/orgs`, `/user/teams` with `link`-header pagination.
//! API calls must carry a User-Agent and a live token, and the token's scopes must cover the
//! endpoint. A test changes the user, revokes tokens or makes the API fail (rate limit, 5xx).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

/// The OAuth App the fake knows.
pub const CLIENT_ID: &str = "Iv1.fakegithubclient";
pub const CLIENT_SECRET: &str = "fake-github-client-secret";

/// A team as `/user/teams` lists it.
#[derive(Clone, Debug)]
pub struct FakeTeam {
    pub org: String,
    pub name: String,
    pub slug: String,
}

impl FakeTeam {
    pub fn new(org: &str, name: &str, slug: &str) -> Self {
        Self { org: org.into(), name: name.into(), slug: slug.into() }
    }
}

/// The user who approves every authorization.
#[derive(Clone, Debug)]
pub struct FakeUser {
    pub id: u64,
    pub login: String,
    pub name: Option<String>,
    /// The public profile email (`null` when private).
    pub email: Option<String>,
    /// `(email, primary, verified)` as `/user/emails` lists them.
    pub emails: Vec<(String, bool, bool)>,
    pub orgs: Vec<String>,
    pub teams: Vec<FakeTeam>,
}

/// How the API answers every call, for the failure tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiMode {
    Normal,
    /// 403, `x-ratelimit-remaining: 0`, `x-ratelimit-reset: <epoch>`.
    RateLimited {
        reset: i64,
    },
    /// `{"message":"Server Error"}` with this status.
    ServerError(u16),
}

struct Inner {
    user: FakeUser,
    mode: ApiMode,
    /// Every code is refused as expired (`bad_verification_code`).
    expire_codes: bool,
    page_size: usize,
    /// code → (redirect_uri, scopes)
    codes: HashMap<String, (String, String)>,
    /// token → scopes; revoked tokens are removed.
    tokens: HashMap<String, String>,
    authorize_requests: Vec<Vec<(String, String)>>,
    api_requests: Vec<String>,
    /// Every code and token ever issued, for the no-secrets-in-logs check.
    issued: Vec<String>,
}

struct Shared {
    base: String,
    inner: Mutex<Inner>,
}

/// The running fake; dropping it stops the server.
pub struct FakeGitHub {
    /// `http://127.0.0.1:PORT`: the connector's `hostName` and `allowedHosts` entry.
    pub base: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeGitHub {
    /// Starts the fake with `user` as the approving user and lists paginated `page_size` items
    /// per page (GitHub's `per_page` is honoured up to that).
    pub async fn start(user: FakeUser, page_size: usize) -> Self {
        let (base, shared, server) = crate::oauth_fake::serve_with(move |base| {
            let shared = Arc::new(Shared {
                base: base.into(),
                inner: Mutex::new(Inner {
                    user,
                    mode: ApiMode::Normal,
                    expire_codes: false,
                    page_size: page_size.max(1),
                    codes: HashMap::new(),
                    tokens: HashMap::new(),
                    authorize_requests: Vec::new(),
                    api_requests: Vec::new(),
                    issued: Vec::new(),
                }),
            });
            let app = Router::new()
                .route("/login/oauth/authorize", get(authorize))
                .route("/login/oauth/access_token", post(access_token))
                .route("/api/v3/user", get(get_user))
                .route("/api/v3/user/emails", get(emails))
                .route("/api/v3/user/orgs", get(orgs))
                .route("/api/v3/user/teams", get(teams))
                .with_state(shared.clone());
            (app, shared)
        })
        .await;
        Self { base, shared, server }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.shared.lock()
    }

    /// Changes the approving user (for instance their teams, between login and refresh).
    pub fn update_user(&self, f: impl FnOnce(&mut FakeUser)) {
        f(&mut self.inner().user);
    }

    /// Makes every API call answer per `mode`.
    pub fn set_mode(&self, mode: ApiMode) {
        self.inner().mode = mode;
    }

    /// Refuses every code as incorrect or expired from now on.
    pub fn expire_codes(&self) {
        self.inner().expire_codes = true;
    }

    /// Revokes every access token issued so far (the user removed the app).
    pub fn revoke_all(&self) {
        self.inner().tokens.clear();
    }

    /// The query of each authorize request, in order.
    pub fn authorize_requests(&self) -> Vec<Vec<(String, String)>> {
        self.inner().authorize_requests.clone()
    }

    /// Every code and access token issued so far.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.inner().issued.clone()
    }

    /// `path?query` of each API request that passed authentication, in order.
    pub fn api_requests(&self) -> Vec<String> {
        self.inner().api_requests.clone()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn random() -> String {
    portcullis::web::random_token()
}

async fn authorize(State(s): State<Arc<Shared>>, Query(q): Query<Vec<(String, String)>>) -> Response {
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut inner = s.lock();
    inner.authorize_requests.push(q.clone());
    if get("client_id").as_deref() != Some(CLIENT_ID) {
        return (StatusCode::NOT_FOUND, "unknown client_id").into_response();
    }
    let Some(redirect_uri) = get("redirect_uri") else {
        return (StatusCode::BAD_REQUEST, "this fake needs redirect_uri").into_response();
    };
    let code = random();
    inner.codes.insert(code.clone(), (redirect_uri.clone(), get("scope").unwrap_or_default()));
    inner.issued.push(code.clone());
    let mut back = url::Url::parse(&redirect_uri).expect("redirect_uri is a URL");
    back.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = get("state") {
        back.query_pairs_mut().append_pair("state", &state);
    }
    Redirect::to(back.as_str()).into_response()
}

async fn access_token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let mut inner = s.lock();
    let answer = if field("client_id") != CLIENT_ID || field("client_secret") != CLIENT_SECRET {
        oauth_error("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
    } else {
        match inner.codes.remove(field("code")) {
            Some(_) if inner.expire_codes => {
                oauth_error("bad_verification_code", "The code passed is incorrect or expired.")
            }
            None => oauth_error("bad_verification_code", "The code passed is incorrect or expired."),
            Some((redirect_uri, _)) if redirect_uri != field("redirect_uri") => {
                oauth_error("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL.")
            }
            Some((_, scopes)) => {
                let token = format!("gho_{}", random());
                let granted = scopes.split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>().join(",");
                inner.tokens.insert(token.clone(), granted.clone());
                inner.issued.push(token.clone());
                json!({"access_token": token, "scope": granted, "token_type": "bearer"})
            }
        }
    };
    let wants_json = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("json"));
    if wants_json {
        // Errors too come with HTTP 200, as GitHub's do.
        Json(answer).into_response()
    } else {
        let pairs: Vec<(String, String)> = answer
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        ([(header::CONTENT_TYPE, "application/x-www-form-urlencoded")], body).into_response()
    }
}

fn oauth_error(error: &str, description: &str) -> Value {
    json!({
        "error": error,
        "error_description": description,
        "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"
    })
}

fn api_error(status: StatusCode, message: &str) -> Response {
    let body = json!({"message": message, "documentation_url": "https://docs.github.com/rest"});
    (status, Json(body)).into_response()
}

/// The checks every API call passes: User-Agent, a live token, the scope, the failure mode.
/// Returns the user on success.
#[allow(clippy::result_large_err, reason = "the error is the fake's answer, an axum Response")]
fn authenticate(
    s: &Shared,
    headers: &HeaderMap,
    path: &str,
    query: &[(String, String)],
    scope: Option<&str>,
) -> Result<FakeUser, Response> {
    if headers.get(header::USER_AGENT).is_none_or(|v| v.is_empty()) {
        let html = "Request forbidden by administrative rules. Please make sure your request has a User-Agent header";
        return Err((StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "text/html")], html).into_response());
    }
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let token = auth.strip_prefix("Bearer ").or_else(|| auth.strip_prefix("token ")).unwrap_or_default();
    let mut inner = s.lock();
    let Some(granted) = inner.tokens.get(token).cloned() else {
        return Err(api_error(StatusCode::UNAUTHORIZED, "Bad credentials"));
    };
    match inner.mode {
        ApiMode::Normal => {}
        ApiMode::RateLimited { reset } => {
            let mut resp = api_error(StatusCode::FORBIDDEN, "API rate limit exceeded for user ID 5830291.");
            let h = resp.headers_mut();
            h.insert("x-ratelimit-limit", 5000.into());
            h.insert("x-ratelimit-remaining", 0.into());
            h.insert("x-ratelimit-used", 5000.into());
            h.insert("x-ratelimit-reset", reset.into());
            h.insert("x-ratelimit-resource", header::HeaderValue::from_static("core"));
            return Err(resp);
        }
        ApiMode::ServerError(status) => {
            return Err(api_error(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY), "Server Error"));
        }
    }
    if let Some(scope) = scope
        && !granted.split(',').any(|g| g == scope)
    {
        return Err(api_error(StatusCode::FORBIDDEN, &format!("this call needs the {scope} scope")));
    }
    let q = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish();
    inner.api_requests.push(if q.is_empty() { path.to_string() } else { format!("{path}?{q}") });
    Ok(inner.user.clone())
}

async fn get_user(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let u = match authenticate(&s, &headers, "/user", &[], None) {
        Ok(u) => u,
        Err(r) => return r,
    };
    Json(json!({
        "login": u.login, "id": u.id, "node_id": "U_kgDOAFi9kw",
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{}?v=4", u.id),
        "html_url": format!("https://github.com/{}", u.login), "type": "User", "site_admin": false,
        "name": u.name, "company": null, "blog": "", "bio": null, "email": u.email,
        "created_at": "2019-04-02T10:11:12Z", "updated_at": "2025-01-05T08:09:10Z"
    }))
    .into_response()
}

/// One page of `items` per `page`/`per_page`, with GitHub's `link` header.
fn paginated(s: &Shared, path: &str, query: &[(String, String)], items: Vec<Value>) -> Response {
    let get = |k: &str| query.iter().find(|(n, _)| n == k).and_then(|(_, v)| v.parse::<usize>().ok());
    let per_page = get("per_page").unwrap_or(30).min(100).min(s.lock().page_size).max(1);
    let page = get("page").unwrap_or(1).max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let slice: Vec<Value> = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    let link = |p: usize, rel: &str| format!("<{}/api/v3{path}?per_page={per_page}&page={p}>; rel=\"{rel}\"", s.base);
    let mut rels = Vec::new();
    if page > 1 {
        rels.push(link(page - 1, "prev"));
    }
    if page < last {
        rels.push(link(page + 1, "next"));
        rels.push(link(last, "last"));
    }
    if page > 1 {
        rels.push(link(1, "first"));
    }
    let mut resp = Json(Value::Array(slice)).into_response();
    if !rels.is_empty() {
        resp.headers_mut().insert("link", rels.join(", ").parse().expect("link header"));
    }
    resp
}

async fn emails(State(s): State<Arc<Shared>>, headers: HeaderMap, Query(q): Query<Vec<(String, String)>>) -> Response {
    let u = match authenticate(&s, &headers, "/user/emails", &q, Some("user:email")) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let items = u
        .emails
        .iter()
        .map(|(email, primary, verified)| {
            json!({"email": email, "primary": primary, "verified": verified, "visibility": if *primary { Value::from("private") } else { Value::Null }})
        })
        .collect();
    paginated(&s, "/user/emails", &q, items)
}

fn org_json(s: &Shared, login: &str) -> Value {
    let id = login.bytes().fold(7_710_000u64, |acc, b| acc * 31 % 9_999_991 + u64::from(b));
    json!({
        "login": login, "id": id, "node_id": "O_kgDOAHWl5w", "url": format!("{}/api/v3/orgs/{login}", s.base),
        "repos_url": format!("{}/api/v3/orgs/{login}/repos", s.base), "description": null,
        "avatar_url": "https://avatars.githubusercontent.com/u/7710023?v=4"
    })
}

async fn orgs(State(s): State<Arc<Shared>>, headers: HeaderMap, Query(q): Query<Vec<(String, String)>>) -> Response {
    let u = match authenticate(&s, &headers, "/user/orgs", &q, Some("read:org")) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let items = u.orgs.iter().map(|o| org_json(&s, o)).collect();
    paginated(&s, "/user/orgs", &q, items)
}

async fn teams(State(s): State<Arc<Shared>>, headers: HeaderMap, Query(q): Query<Vec<(String, String)>>) -> Response {
    let u = match authenticate(&s, &headers, "/user/teams", &q, Some("read:org")) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let items = u
        .teams
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut org = org_json(&s, &t.org);
            org["name"] = Value::from(t.org.to_uppercase());
            org["type"] = Value::from("Organization");
            json!({
                "id": 440_021 + i, "node_id": "T_kwDOAHWl5c4ABrbV", "name": t.name, "slug": t.slug,
                "description": null, "privacy": "closed", "permission": "pull", "parent": null,
                "members_count": 4, "repos_count": 9,
                "url": format!("{}/api/v3/teams/{}", s.base, 440_021 + i),
                "html_url": format!("https://github.com/orgs/{}/teams/{}", t.org, t.slug),
                "organization": org
            })
        })
        .collect();
    paginated(&s, "/user/teams", &q, items)
}
