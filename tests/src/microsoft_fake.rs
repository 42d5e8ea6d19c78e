//! A fake Microsoft identity platform and Graph on 127.0.0.1:0, serving the shapes of
//! `shared/upstreams-more.md` §1: the v2.0 authorize and token endpoints under one tenant
//! (AADSTS error bodies), Graph's `/v1.0/me`, `POST /v1.0/me/getMemberGroups` paged by
//! `@odata.nextLink` (and refusing more than 11,000 IDs as Graph does), and
//! `POST /v1.0/directoryObjects/getByIds`, which refuses more than 1000 IDs per request
//! (`Request_BadRequest`), answers in pages too, and leaves unknown IDs out. Failures: 401
//! `InvalidAuthenticationToken`, 429 `TooManyRequests` with `Retry-After`, an HTML 503.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::oauth_fake::{self, OAuth, TokenShape};

pub const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
pub const CLIENT_SECRET: &str = "fake~microsoft~client~secret";
pub const TENANT: &str = "contoso.onmicrosoft.com";

#[derive(Clone, Debug)]
pub struct FakeGroup {
    pub id: String,
    pub name: String,
    pub security: bool,
}

impl FakeGroup {
    pub fn new(id: &str, name: &str, security: bool) -> Self {
        Self { id: id.into(), name: name.into(), security }
    }

    /// Group number `n` with a GUID-shaped ID and the name `group-<n>`.
    pub fn numbered(n: usize) -> Self {
        Self {
            id: format!("00000000-0000-0000-0000-{n:012}"),
            name: format!("group-{n}"),
            security: n.is_multiple_of(2),
        }
    }
}

#[derive(Clone, Debug)]
pub struct FakeUser {
    pub id: String,
    pub display_name: String,
    pub upn: String,
    pub mail_nickname: String,
    pub groups: Vec<FakeGroup>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiMode {
    Normal,
    Throttled,
    Unavailable,
}

struct Inner {
    user: FakeUser,
    mode: ApiMode,
    /// IDs per page of getMemberGroups and of getByIds.
    page_size: usize,
    /// `(path, number of ids in the body)` of each Graph call.
    graph_requests: Vec<(String, usize)>,
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

pub struct FakeMicrosoft {
    /// `http://127.0.0.1:PORT`: both `apiURL` and `graphURL`.
    pub base: String,
    pub oauth: OAuth,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeMicrosoft {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeMicrosoft {
    pub async fn start(user: FakeUser, page_size: usize) -> Self {
        let shape =
            TokenShape { extra: json!({"ext_expires_in": 4631}), expires_in: Some(4631), ..TokenShape::default() };
        let oauth = OAuth::new(CLIENT_ID, CLIENT_SECRET, shape);
        let inner = Inner { user, mode: ApiMode::Normal, page_size: page_size.max(1), graph_requests: Vec::new() };
        let o = oauth.clone();
        let (base, shared, server) = oauth_fake::serve_with(move |base| {
            let shared = Arc::new(Shared { base: base.to_string(), oauth: o.clone(), inner: Mutex::new(inner) });
            let router = Router::new()
                .route("/v1.0/me", get(me))
                .route("/v1.0/me/getMemberGroups", post(member_groups))
                .route("/v1.0/directoryObjects/getByIds", post(by_ids))
                .with_state(shared.clone())
                .merge(o.router(&format!("/{TENANT}/oauth2/v2.0/authorize"), &format!("/{TENANT}/oauth2/v2.0/token")));
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

    /// `(path, ids in the body)` of each Graph call that passed authentication.
    pub fn graph_requests(&self) -> Vec<(String, usize)> {
        self.shared.lock().graph_requests.clone()
    }

    /// The token endpoint's AADSTS error for every token request from now on.
    pub fn fail_tokens(&self, code: u32, description: &str) {
        self.oauth.fail_tokens(
            400,
            json!({
                "error": "invalid_grant", "error_description": format!("AADSTS{code}: {description}"),
                "error_codes": [code], "timestamp": "2026-08-06 10:00:05Z",
                "trace_id": "0b7f1c2e-0000-0000-0000-000000000000", "correlation_id": "5a1e9c3d-0000-0000-0000-000000000000"
            }),
        );
    }
}

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let inner = json!({"date": "2026-08-06T10:00:05", "request-id": "r-1", "client-request-id": "c-1"});
    (status, Json(json!({"error": {"code": code, "message": message, "innerError": inner}}))).into_response()
}

#[allow(clippy::result_large_err, reason = "the error is the fake's answer, an axum Response")]
fn authenticate(s: &Shared, headers: &HeaderMap, call: &str, ids: usize) -> Result<(FakeUser, usize), Response> {
    if s.oauth.scope_of(headers).is_none() {
        return Err(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        ));
    }
    let mut inner = s.lock();
    match inner.mode {
        ApiMode::Normal => {}
        ApiMode::Throttled => {
            let mut r = graph_error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", "Too many requests.");
            r.headers_mut().insert("retry-after", 17.into());
            return Err(r);
        }
        ApiMode::Unavailable => {
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                [("content-type", "text/html")],
                "<html>Service Unavailable</html>",
            )
                .into_response());
        }
    }
    inner.graph_requests.push((call.to_string(), ids));
    Ok((inner.user.clone(), inner.page_size))
}

async fn me(State(s): State<Arc<Shared>>, headers: HeaderMap, Query(q): Query<Vec<(String, String)>>) -> Response {
    let (u, _) = match authenticate(&s, &headers, "/v1.0/me", 0) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let select = q.iter().find(|(k, _)| k == "$select").map(|(_, v)| v.as_str());
    if select != Some("id,displayName,userPrincipalName,mailNickname,onPremisesSamAccountName") {
        return graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", "this fake serves Dex's $select only");
    }
    Json(json!({
        "@odata.context": format!("{}/v1.0/$metadata#users(id,displayName,userPrincipalName,mailNickname,onPremisesSamAccountName)/$entity", s.base),
        "id": u.id, "displayName": u.display_name, "userPrincipalName": u.upn,
        "mailNickname": u.mail_nickname, "onPremisesSamAccountName": null
    }))
    .into_response()
}

/// `$skiptoken` of a paged call: the offset of this page.
fn offset(q: &[(String, String)]) -> usize {
    q.iter().find(|(k, _)| k == "$skiptoken").and_then(|(_, v)| v.parse().ok()).unwrap_or(0)
}

fn page(s: &Shared, path: &str, items: Vec<Value>, from: usize, size: usize) -> Response {
    let total = items.len();
    let slice: Vec<Value> = items.into_iter().skip(from).take(size).collect();
    let mut body =
        json!({"@odata.context": format!("{}/v1.0/$metadata#Collection(Edm.String)", s.base), "value": slice});
    if from + size < total {
        body["@odata.nextLink"] = format!("{}{path}?$skiptoken={}", s.base, from + size).into();
    }
    Json(body).into_response()
}

async fn member_groups(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
    Json(body): Json<Value>,
) -> Response {
    let (u, size) = match authenticate(&s, &headers, "/v1.0/me/getMemberGroups", 0) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(security_only) = body.get("securityEnabledOnly").and_then(Value::as_bool) else {
        return graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", "securityEnabledOnly is required.");
    };
    let ids: Vec<Value> =
        u.groups.iter().filter(|g| g.security || !security_only).map(|g| Value::from(g.id.clone())).collect();
    if ids.len() > 11_000 {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "Directory_ResultSizeLimitExceeded",
            "The result size limit was exceeded.",
        );
    }
    page(&s, "/v1.0/me/getMemberGroups", ids, offset(&q), size)
}

async fn by_ids(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
    Json(body): Json<Value>,
) -> Response {
    let ids: Vec<String> =
        body["ids"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect();
    let (u, size) = match authenticate(&s, &headers, "/v1.0/directoryObjects/getByIds", ids.len()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    if ids.len() > 1000 {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "Number of included identifiers cannot exceed '1000'.",
        );
    }
    if body["types"] != json!(["group"]) {
        return graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", "types must be [\"group\"] here.");
    }
    let items: Vec<Value> = ids
        .iter()
        .filter_map(|id| u.groups.iter().find(|g| &g.id == id))
        .map(|g| json!({"@odata.type": "#microsoft.graph.group", "id": g.id, "displayName": g.name, "securityEnabled": g.security}))
        .collect();
    page(&s, "/v1.0/directoryObjects/getByIds", items, offset(&q), size)
}
