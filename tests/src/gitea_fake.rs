//! A fake Gitea on 127.0.0.1:0 (`shared/upstreams-more.md` §4): `/login/oauth/authorize`,
//! `/login/oauth/access_token`, `/api/v1/user` and `/api/v1/user/teams` paged by
//! `page`/`limit` (at most `MAX_RESPONSE_ITEMS` per page, with Gitea's `Link` and
//! `X-Total-Count` headers; a page past the end is `[]`). Teams carry `organization.username`,
//! the deprecated field Dex reads. Failures: 401 `{"message","url"}`, 500.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::oauth_fake::{self, OAuth, TokenShape};

pub const CLIENT_ID: &str = "5c0e8d3a-gitea-app";
pub const CLIENT_SECRET: &str = "gto_fakegiteaclientsecret";

#[derive(Clone, Debug)]
pub struct FakeUser {
    pub id: u64,
    pub login: String,
    pub full_name: String,
    pub email: String,
    /// `(org, team)` memberships.
    pub teams: Vec<(String, String)>,
}

struct Inner {
    user: FakeUser,
    fail: Option<u16>,
    max_items: usize,
    api_requests: Vec<String>,
}

struct Shared {
    base: String,
    oauth: OAuth,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct FakeGitea {
    pub base: String,
    pub oauth: OAuth,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGitea {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeGitea {
    /// `max_items` is the server's `MAX_RESPONSE_ITEMS` (Gitea's default is 50).
    pub async fn start(user: FakeUser, max_items: usize) -> Self {
        let shape = TokenShape { expires_in: Some(3600), token_type: "bearer".into(), ..TokenShape::default() };
        let oauth = OAuth::new(CLIENT_ID, CLIENT_SECRET, shape);
        let o = oauth.clone();
        let inner = Inner { user, fail: None, max_items: max_items.max(1), api_requests: Vec::new() };
        let (base, shared, server) = oauth_fake::serve_with(move |base| {
            let shared = Arc::new(Shared { base: base.into(), oauth: o.clone(), inner: Mutex::new(inner) });
            let router = Router::new()
                .route("/api/v1/user", get(user_handler))
                .route("/api/v1/user/teams", get(teams))
                .with_state(shared.clone())
                .merge(o.router("/login/oauth/authorize", "/login/oauth/access_token"));
            (router, shared)
        })
        .await;
        Self { base, oauth, shared, server }
    }

    pub fn update_user(&self, f: impl FnOnce(&mut FakeUser)) {
        f(&mut self.shared.lock().user);
    }

    /// Every API call answers this status from now on (`None`: normally).
    pub fn fail_api(&self, status: Option<u16>) {
        self.shared.lock().fail = status;
    }

    pub fn api_requests(&self) -> Vec<String> {
        self.shared.lock().api_requests.clone()
    }
}

#[allow(clippy::result_large_err, reason = "the error is the fake's answer, an axum Response")]
fn authenticate(s: &Shared, headers: &HeaderMap, call: String) -> Result<(FakeUser, usize), Response> {
    if s.oauth.scope_of(headers).is_none() {
        let body = json!({"message": "user does not exist [uid: 0, name: ]", "url": format!("{}/api/swagger", s.base)});
        return Err((StatusCode::UNAUTHORIZED, Json(body)).into_response());
    }
    let mut inner = s.lock();
    if let Some(status) = inner.fail {
        let body = json!({"message": "internal server error", "url": format!("{}/api/swagger", s.base)});
        return Err(
            (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), Json(body)).into_response()
        );
    }
    inner.api_requests.push(call);
    Ok((inner.user.clone(), inner.max_items))
}

async fn user_handler(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let (u, _) = match authenticate(&s, &headers, "/api/v1/user".into()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    Json(json!({
        "id": u.id, "login": u.login, "login_name": "", "full_name": u.full_name, "email": u.email,
        "avatar_url": format!("{}/avatars/x", s.base), "language": "en-US", "is_admin": false,
        "created": "2020-01-01T00:00:00Z", "restricted": false, "active": true, "visibility": "public"
    }))
    .into_response()
}

async fn teams(State(s): State<Arc<Shared>>, headers: HeaderMap, Query(q): Query<Vec<(String, String)>>) -> Response {
    let get = |k: &str| q.iter().find(|(n, _)| n == k).and_then(|(_, v)| v.parse::<usize>().ok());
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&q).finish();
    let (u, max) = match authenticate(&s, &headers, format!("/api/v1/user/teams?{query}")) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let limit = get("limit").unwrap_or(max).clamp(1, max);
    let page = get("page").unwrap_or(1).max(1);
    let items: Vec<Value> = u
        .teams
        .iter()
        .enumerate()
        .skip((page - 1) * limit)
        .take(limit)
        .map(|(i, (org, team))| {
            json!({
                "id": 5 + i, "name": team, "description": "", "permission": "write",
                "organization": {"id": org.len(), "name": org, "username": org, "full_name": org.to_uppercase(), "visibility": "public"},
                "includes_all_repositories": false, "units": ["repo.code"]
            })
        })
        .collect();
    let pages = u.teams.len().div_ceil(limit).max(1);
    let mut resp = Json(Value::Array(items)).into_response();
    let h = resp.headers_mut();
    h.insert("x-total-count", u.teams.len().into());
    if page < pages {
        let link = format!("<{}/api/v1/user/teams?limit={limit}&page={}>; rel=\"next\"", s.base, page + 1);
        h.insert("link", link.parse().expect("link"));
    }
    resp
}
