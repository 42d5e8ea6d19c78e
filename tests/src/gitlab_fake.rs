//! A fake GitLab on 127.0.0.1:0, serving the shapes of `shared/upstreams-more.md` §2: OAuth at
//! `/oauth/authorize` and `/oauth/token` (PKCE, single-use refresh tokens, `invalid_grant`),
//! `/api/v4/user`, `/oauth/userinfo` (groups and GitLab's per-role claims, with the `openid`
//! scope), `/api/v4/groups` paged by `page`/`per_page` with GitLab's `X-*` paging headers (with
//! `read_api`), and `/api/v4/groups/{id}/members/all/{user}`. Failures: 401
//! `{"message":"401 Unauthorized"}` for a dead token, 403 `insufficient_scope`, 429 `Retry later`
//! with the `RateLimit-*` headers, 5xx.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::oauth_fake::{self, OAuth, TokenShape};

pub const CLIENT_ID: &str = "gl-app-3f9c1e";
pub const CLIENT_SECRET: &str = "gloas-fake-gitlab-secret";

/// A group the user belongs to.
#[derive(Clone, Debug)]
pub struct FakeGroup {
    pub id: u64,
    pub full_path: String,
    /// Listed in `/oauth/userinfo` (a direct membership, or one via an ancestor).
    pub in_userinfo: bool,
    /// The user's access level (`/members/all/`), none for no membership answer (404).
    pub access_level: Option<u64>,
}

impl FakeGroup {
    pub fn new(id: u64, full_path: &str, in_userinfo: bool, access_level: Option<u64>) -> Self {
        Self { id, full_path: full_path.into(), in_userinfo, access_level }
    }
}

#[derive(Clone, Debug)]
pub struct FakeUser {
    pub id: u64,
    pub username: String,
    pub name: String,
    pub email: String,
    pub groups: Vec<FakeGroup>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiMode {
    Normal,
    /// 429 `Retry later` with `Retry-After` and the `RateLimit-*` headers.
    RateLimited,
    /// An HTML error page with this status (a proxy in front of GitLab).
    ServerError(u16),
}

struct Inner {
    user: FakeUser,
    mode: ApiMode,
    api_requests: Vec<String>,
}

struct Shared {
    oauth: OAuth,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running fake; dropping it stops the server.
pub struct FakeGitLab {
    /// `http://127.0.0.1:PORT`: the connector's `baseURL`.
    pub base: String,
    pub oauth: OAuth,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGitLab {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeGitLab {
    pub async fn start(user: FakeUser) -> Self {
        let extra = json!({"created_at": 1754474400});
        let oauth = OAuth::new(CLIENT_ID, CLIENT_SECRET, TokenShape { extra, ..TokenShape::default() });
        let shared = Arc::new(Shared {
            oauth: oauth.clone(),
            inner: Mutex::new(Inner { user, mode: ApiMode::Normal, api_requests: Vec::new() }),
        });
        let s = shared.clone();
        let (base, server) = oauth_fake::serve(|_| {
            Router::new()
                .route("/api/v4/user", get(user_handler))
                .route("/oauth/userinfo", get(userinfo))
                .route("/api/v4/groups", get(groups))
                .route("/api/v4/groups/{id}/members/all/{user}", get(member))
                .with_state(s)
                .merge(oauth.router("/oauth/authorize", "/oauth/token"))
        })
        .await;
        Self { base, oauth, shared, server }
    }

    pub fn update_user(&self, f: impl FnOnce(&mut FakeUser)) {
        f(&mut self.shared.lock().user);
    }

    pub fn set_mode(&self, mode: ApiMode) {
        self.shared.lock().mode = mode;
    }

    /// `path?query` of each API call that passed authentication.
    pub fn api_requests(&self) -> Vec<String> {
        self.shared.lock().api_requests.clone()
    }
}

#[allow(clippy::result_large_err, reason = "the error is the fake's answer, an axum Response")]
fn authenticate(s: &Shared, headers: &HeaderMap, call: String, scope: Option<&str>) -> Result<FakeUser, Response> {
    let Some(granted) = s.oauth.scope_of(headers) else {
        return Err((StatusCode::UNAUTHORIZED, Json(json!({"message": "401 Unauthorized"}))).into_response());
    };
    let mut inner = s.lock();
    match inner.mode {
        ApiMode::Normal => {}
        ApiMode::RateLimited => {
            let headers = [
                ("ratelimit-name", "throttle_authenticated_api"),
                ("ratelimit-limit", "2000"),
                ("ratelimit-observed", "2001"),
                ("ratelimit-remaining", "0"),
                ("ratelimit-reset", "1767225600"),
                ("ratelimit-resettime", "Thu, 01 Jan 2026 00:00:00 GMT"),
                ("retry-after", "42"),
            ];
            return Err((StatusCode::TOO_MANY_REQUESTS, headers, "Retry later\n").into_response());
        }
        ApiMode::ServerError(status) => {
            let page = "<html><body><h1>502 Bad Gateway</h1></body></html>";
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            return Err((status, [("content-type", "text/html")], page).into_response());
        }
    }
    if let Some(scope) = scope
        && !granted.split(' ').any(|g| g == scope)
    {
        let body = json!({
            "error": "insufficient_scope",
            "error_description": "The request requires higher privileges than provided by the access token.",
            "scope": scope
        });
        return Err((StatusCode::FORBIDDEN, Json(body)).into_response());
    }
    inner.api_requests.push(call);
    Ok(inner.user.clone())
}

async fn user_handler(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let u = match authenticate(&s, &headers, "/api/v4/user".into(), Some("read_user")) {
        Ok(u) => u,
        Err(r) => return r,
    };
    Json(json!({
        "id": u.id, "username": u.username, "name": u.name, "state": "active", "locked": false,
        "avatar_url": "https://secure.gravatar.com/avatar/x", "web_url": format!("https://gitlab.example/{}", u.username),
        "created_at": "2019-04-02T10:11:12.000Z", "bio": "", "public_email": null, "email": u.email,
        "two_factor_enabled": true, "external": false
    }))
    .into_response()
}

async fn userinfo(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let u = match authenticate(&s, &headers, "/oauth/userinfo".into(), Some("openid")) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let listed: Vec<&FakeGroup> = u.groups.iter().filter(|g| g.in_userinfo).collect();
    let with = |level: u64| -> Vec<&str> {
        listed.iter().filter(|g| g.access_level == Some(level)).map(|g| g.full_path.as_str()).collect()
    };
    Json(json!({
        "sub": u.id.to_string(), "sub_legacy": "4b4d3c…", "name": u.name, "nickname": u.username,
        "preferred_username": u.username, "email": u.email, "email_verified": true,
        "profile": format!("https://gitlab.example/{}", u.username),
        "groups": listed.iter().map(|g| g.full_path.as_str()).collect::<Vec<_>>(),
        "groups_direct": with(30),
        "https://gitlab.org/claims/groups/owner": with(50),
        "https://gitlab.org/claims/groups/maintainer": with(40),
        "https://gitlab.org/claims/groups/developer": with(30)
    }))
    .into_response()
}

async fn groups(State(s): State<Arc<Shared>>, headers: HeaderMap, Query(q): Query<Vec<(String, String)>>) -> Response {
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&q).finish();
    let u = match authenticate(&s, &headers, format!("/api/v4/groups?{query}"), Some("read_api")) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let per_page: usize = get("per_page").and_then(|v| v.parse().ok()).unwrap_or(20).clamp(1, 100);
    let page: usize = get("page").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let total = u.groups.len();
    let pages = total.div_ceil(per_page).max(1);
    let items: Vec<Value> = u
        .groups
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|g| {
            let path = g.full_path.rsplit('/').next().unwrap_or_default();
            json!({"id": g.id, "name": path, "path": path, "full_path": g.full_path, "full_name": g.full_path, "visibility": "private"})
        })
        .collect();
    let next = if page < pages { (page + 1).to_string() } else { String::new() };
    let paging = [
        ("x-page", page.to_string()),
        ("x-per-page", per_page.to_string()),
        ("x-next-page", next),
        ("x-prev-page", if page > 1 { (page - 1).to_string() } else { String::new() }),
        ("x-total", total.to_string()),
        ("x-total-pages", pages.to_string()),
    ];
    let mut resp = Json(Value::Array(items)).into_response();
    for (k, v) in paging {
        resp.headers_mut().insert(k, v.parse().expect("header"));
    }
    resp
}

async fn member(State(s): State<Arc<Shared>>, headers: HeaderMap, Path((id, user)): Path<(u64, u64)>) -> Response {
    let u = match authenticate(&s, &headers, format!("/api/v4/groups/{id}/members/all/{user}"), Some("read_api")) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match u.groups.iter().find(|g| g.id == id).and_then(|g| g.access_level) {
        Some(level) if user == u.id => Json(json!({
            "id": u.id, "username": u.username, "name": u.name, "state": "active", "access_level": level,
            "created_at": "2020-01-01T00:00:00.000Z", "expires_at": null
        }))
        .into_response(),
        _ => (StatusCode::NOT_FOUND, Json(json!({"message": "404 Not found"}))).into_response(),
    }
}
