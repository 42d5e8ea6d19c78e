//! A fake Bitbucket Cloud on 127.0.0.1:0 (`shared/upstreams-more.md` §5): bitbucket.org's
//! `/site/oauth2/authorize` (which sends the user back to the consumer's callback: the request
//! names none) and `/site/oauth2/access_token`, and api.bitbucket.org's `/2.0/user`,
//! `/2.0/user/emails` and `/2.0/user/workspaces` paged by `next`, and
//! `/2.0/user/workspaces/{slug}/permission`. Failures: 401 `{"type":"error","error":{...}}`
//! for a dead token, 429 "Rate limit for this resource has been exceeded", 5xx.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::oauth_fake::{self, OAuth, TokenShape};

pub const CLIENT_ID: &str = "bbFakeConsumerKey";
pub const CLIENT_SECRET: &str = "bbFakeConsumerSecret";

#[derive(Clone, Debug)]
pub struct FakeUser {
    pub uuid: String,
    pub username: String,
    pub display_name: String,
    /// `(email, primary, confirmed)`.
    pub emails: Vec<(String, bool, bool)>,
    /// `(slug, permission)`; a permission of `""` answers 403.
    pub workspaces: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiMode {
    Normal,
    RateLimited,
    ServerError(u16),
}

struct Inner {
    user: FakeUser,
    mode: ApiMode,
    page_len: usize,
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

pub struct FakeBitbucket {
    /// `http://127.0.0.1:PORT`: `baseURL`; `apiURL` is `{base}/2.0`.
    pub base: String,
    pub oauth: OAuth,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeBitbucket {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeBitbucket {
    pub async fn start(user: FakeUser, page_len: usize) -> Self {
        let extra = json!({"scopes": "account email", "state": "authorization_code"});
        let shape = TokenShape { token_type: "bearer".into(), extra, ..TokenShape::default() };
        let oauth = OAuth::new(CLIENT_ID, CLIENT_SECRET, shape);
        let o = oauth.clone();
        let inner = Inner { user, mode: ApiMode::Normal, page_len: page_len.max(1), api_requests: Vec::new() };
        let (base, shared, server) = oauth_fake::serve_with(move |base| {
            let shared = Arc::new(Shared { base: base.into(), oauth: o.clone(), inner: Mutex::new(inner) });
            let router = Router::new()
                .route("/2.0/user", get(user_handler))
                .route("/2.0/user/emails", get(emails))
                .route("/2.0/user/workspaces", get(workspaces))
                .route("/2.0/user/workspaces/{slug}/permission", get(permission))
                .with_state(shared.clone())
                .merge(o.router("/site/oauth2/authorize", "/site/oauth2/access_token"));
            (router, shared)
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

    pub fn api_requests(&self) -> Vec<String> {
        self.shared.lock().api_requests.clone()
    }
}

#[allow(clippy::result_large_err, reason = "the error is the fake's answer, an axum Response")]
fn authenticate(s: &Shared, headers: &HeaderMap, call: String) -> Result<(FakeUser, usize), Response> {
    if s.oauth.scope_of(headers).is_none() {
        let body = json!({"type": "error", "error": {"message": "Access token expired. Use your refresh token to obtain a new access token."}});
        return Err((StatusCode::UNAUTHORIZED, Json(body)).into_response());
    }
    let mut inner = s.lock();
    match inner.mode {
        ApiMode::Normal => {}
        ApiMode::RateLimited => {
            return Err(
                (StatusCode::TOO_MANY_REQUESTS, "Rate limit for this resource has been exceeded").into_response()
            );
        }
        ApiMode::ServerError(status) => {
            let body = json!({"type": "error", "error": {"message": "Something went wrong"}});
            return Err((StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY), Json(body)).into_response());
        }
    }
    inner.api_requests.push(call);
    Ok((inner.user.clone(), inner.page_len))
}

/// One page of `values` in Bitbucket's envelope, with `next` when more follow.
fn paged(s: &Shared, path: &str, q: &[(String, String)], values: Vec<Value>, pagelen: usize) -> Response {
    let page: usize = q.iter().find(|(k, _)| k == "page").and_then(|(_, v)| v.parse().ok()).unwrap_or(1).max(1);
    let size = values.len();
    let slice: Vec<Value> = values.into_iter().skip((page - 1) * pagelen).take(pagelen).collect();
    let mut body = json!({"pagelen": pagelen, "page": page, "size": size, "values": slice});
    if page * pagelen < size {
        body["next"] = format!("{}{path}?page={}", s.base, page + 1).into();
    }
    Json(body).into_response()
}

fn call(path: &str, q: &[(String, String)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(q).finish();
    if query.is_empty() { path.to_string() } else { format!("{path}?{query}") }
}

async fn user_handler(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let (u, _) = match authenticate(&s, &headers, "/2.0/user".into()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    Json(json!({
        "type": "user", "uuid": u.uuid, "username": u.username, "display_name": u.display_name,
        "account_id": "557058:0b6f3c1e-aaaa-bbbb-cccc-0123456789ab", "nickname": u.username,
        "links": {"self": {"href": format!("{}/2.0/users/{}", s.base, u.uuid)}}
    }))
    .into_response()
}

async fn emails(State(s): State<Arc<Shared>>, headers: HeaderMap, Query(q): Query<Vec<(String, String)>>) -> Response {
    let (u, len) = match authenticate(&s, &headers, call("/2.0/user/emails", &q)) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let values = u
        .emails
        .iter()
        .map(|(e, p, c)| json!({"type": "email", "email": e, "is_primary": p, "is_confirmed": c}))
        .collect();
    paged(&s, "/2.0/user/emails", &q, values, len)
}

async fn workspaces(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let (u, len) = match authenticate(&s, &headers, call("/2.0/user/workspaces", &q)) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let values = u
        .workspaces
        .iter()
        .map(|(slug, _)| json!({"type": "workspace_membership", "workspace": {"type": "workspace", "slug": slug, "name": slug.to_uppercase()}}))
        .collect();
    paged(&s, "/2.0/user/workspaces", &q, values, len)
}

async fn permission(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(slug): Path<String>) -> Response {
    let (u, _) = match authenticate(&s, &headers, format!("/2.0/user/workspaces/{slug}/permission")) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match u.workspaces.iter().find(|(w, _)| *w == slug) {
        Some((_, p)) if !p.is_empty() => Json(json!({"type": "workspace_membership", "permission": p})).into_response(),
        _ => (StatusCode::FORBIDDEN, Json(json!({"type": "error", "error": {"message": "Access denied"}})))
            .into_response(),
    }
}
