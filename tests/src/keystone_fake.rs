//! A fake OpenStack Keystone (identity API v3) on 127.0.0.1:0, serving the shapes of
//! `shared/upstreams-more.md` §7: password authentication (`POST /v3/auth/tokens`, 201 with
//! `X-Subject-Token`, Keystone's JSON error bodies), `GET /v3/users/{id}` and
//! `GET /v3/users/{id}/groups` behind `X-Auth-Token`. A user's token reads only that user, the
//! admin account's token reads anyone (Keystone's default policy, roughly). A test changes
//! users, deletes them or makes Keystone fail.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

/// The admin account the connector's `keystoneUsername`/`keystonePassword` name.
pub const ADMIN_NAME: &str = "portcullis-admin";
pub const ADMIN_PASSWORD: &str = "admin-secret";
const ADMIN_ID: &str = "0a4d3c2b1e5f46a7b8c9d0e1f2a3b4c5";

/// A Keystone domain: `(id, name)`.
pub const DEFAULT_DOMAIN: (&str, &str) = ("default", "Default");
pub const ACME_DOMAIN: (&str, &str) = ("5d1e9a3c7b2f4e6a8c0d1f3b5a7c9e2d", "acme");

/// A user as Keystone stores it.
#[derive(Clone, Debug)]
pub struct FakeKeystoneUser {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub password: String,
    pub email: Option<String>,
    pub enabled: bool,
    pub groups: Vec<String>,
}

impl FakeKeystoneUser {
    pub fn new(id: &str, name: &str, password: &str) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            domain_id: DEFAULT_DOMAIN.0.into(),
            password: password.into(),
            email: None,
            enabled: true,
            groups: Vec::new(),
        }
    }
}

/// How Keystone answers, for the failure tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeystoneMode {
    Normal,
    /// Every call answers this status with Keystone's JSON error body.
    ServerError(u16),
    /// The group list answers 403 (a policy forbidding it).
    ForbidGroupList,
}

struct Inner {
    users: Vec<FakeKeystoneUser>,
    mode: KeystoneMode,
    /// token → user id.
    tokens: HashMap<String, String>,
    /// `METHOD path` of every request, in order.
    requests: Vec<String>,
    /// The bodies of the password authentications, in order (passwords included: for the tests only).
    auth_bodies: Vec<Value>,
}

/// The running fake; dropping it stops the server.
pub struct FakeKeystone {
    /// `http://127.0.0.1:PORT`: the connector's `keystoneHost`.
    pub base: String,
    shared: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKeystone {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeKeystone {
    /// Starts the fake with `users` (plus the admin account).
    pub async fn start(users: Vec<FakeKeystoneUser>) -> Self {
        let mut all = users;
        all.push(FakeKeystoneUser::new(ADMIN_ID, ADMIN_NAME, ADMIN_PASSWORD));
        let shared = Arc::new(Mutex::new(Inner {
            users: all,
            mode: KeystoneMode::Normal,
            tokens: HashMap::new(),
            requests: Vec::new(),
            auth_bodies: Vec::new(),
        }));
        let router = Router::new()
            .route("/v3/auth/tokens", post(authenticate))
            .route("/v3/users/{id}", get(user))
            .route("/v3/users/{id}/groups", get(groups))
            .with_state(shared.clone());
        let (base, server) = crate::oauth_fake::serve(move |_| router).await;
        Self { base, shared, server }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        lock(&self.shared)
    }

    /// Changes the user with id `id`.
    pub fn update_user(&self, id: &str, f: impl FnOnce(&mut FakeKeystoneUser)) {
        let mut inner = self.inner();
        f(inner.users.iter_mut().find(|u| u.id == id).expect("a user with that id"));
    }

    /// Deletes the user with id `id`.
    pub fn delete_user(&self, id: &str) {
        self.inner().users.retain(|u| u.id != id);
    }

    pub fn set_mode(&self, mode: KeystoneMode) {
        self.inner().mode = mode;
    }

    /// `METHOD path` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.inner().requests.clone()
    }

    /// The JSON bodies of the password authentications so far.
    pub fn auth_bodies(&self) -> Vec<Value> {
        self.inner().auth_bodies.clone()
    }

    /// Every token issued so far, for the no-secrets-in-logs check.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.inner().tokens.keys().cloned().collect()
    }
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keystone's error body.
fn error(code: u16, title: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(json!({"error": {"code": code, "message": message, "title": title}}))).into_response()
}

fn unauthorized() -> Response {
    error(401, "Unauthorized", "The request you have made requires authentication.")
}

async fn authenticate(State(s): State<Arc<Mutex<Inner>>>, Json(body): Json<Value>) -> Response {
    let mut inner = lock(&s);
    inner.requests.push("POST /v3/auth/tokens".into());
    inner.auth_bodies.push(body.clone());
    if let KeystoneMode::ServerError(code) = inner.mode {
        return error(
            code,
            "Internal Server Error",
            "An unexpected error prevented the server from fulfilling your request.",
        );
    }
    let identity = &body["auth"]["identity"];
    if !identity["methods"].as_array().is_some_and(|m| m.iter().any(|x| x == "password")) {
        return error(400, "Bad Request", "Expecting to find identity methods in auth.");
    }
    let user = &identity["password"]["user"];
    let domain = &user["domain"];
    let domain_matches = |domain_id: &str| match (domain["id"].as_str(), domain["name"].as_str()) {
        (Some(id), _) => id == domain_id,
        (None, Some(name)) => [DEFAULT_DOMAIN, ACME_DOMAIN].iter().any(|(i, n)| *i == domain_id && *n == name),
        (None, None) => false,
    };
    if domain.as_object().is_none_or(|d| d.is_empty()) {
        return error(
            400,
            "Bad Request",
            "Expecting to find domain in user. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.",
        );
    }
    let (name, password) = (user["name"].as_str().unwrap_or_default(), user["password"].as_str().unwrap_or_default());
    let found = inner
        .users
        .iter()
        .find(|u| u.name == name && domain_matches(&u.domain_id) && u.password == password && u.enabled)
        .cloned();
    let Some(found) = found else { return unauthorized() };
    let token = format!("gAAAAAB{}", portcullis::web::random_token());
    inner.tokens.insert(token.clone(), found.id.clone());
    let domain_name = [DEFAULT_DOMAIN, ACME_DOMAIN].iter().find(|(i, _)| *i == found.domain_id).map(|d| d.1);
    let body = json!({"token": {
        "methods": ["password"],
        "user": {"id": found.id, "name": found.name, "domain": {"id": found.domain_id, "name": domain_name}, "password_expires_at": null},
        "audit_ids": ["3T2dc1CGQxyJsHdDu1xkcw"],
        "expires_at": "2026-08-06T11:00:00.000000Z",
        "issued_at": "2026-08-06T10:00:00.000000Z"
    }});
    (StatusCode::CREATED, [("x-subject-token", token)], Json(body)).into_response()
}

/// The checks both reads pass: the mode, a live token allowed to read user `id`.
#[allow(clippy::result_large_err, reason = "the error is the fake's answer, an axum Response")]
fn reader(inner: &Inner, headers: &HeaderMap, id: &str) -> Result<FakeKeystoneUser, Response> {
    if let KeystoneMode::ServerError(code) = inner.mode {
        return Err(error(
            code,
            "Internal Server Error",
            "An unexpected error prevented the server from fulfilling your request.",
        ));
    }
    let token = headers.get("x-auth-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(holder) = inner.tokens.get(token) else { return Err(unauthorized()) };
    if holder != id && holder != ADMIN_ID {
        return Err(error(
            403,
            "Forbidden",
            "You are not authorized to perform the requested action: identity:get_user.",
        ));
    }
    inner
        .users
        .iter()
        .find(|u| u.id == id)
        .cloned()
        .ok_or_else(|| error(404, "Not Found", &format!("Could not find user: {id}.")))
}

async fn user(State(s): State<Arc<Mutex<Inner>>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let mut inner = lock(&s);
    inner.requests.push(format!("GET /v3/users/{id}"));
    let u = match reader(&inner, &headers, &id) {
        Ok(u) => u,
        Err(answer) => return answer,
    };
    let mut user = json!({
        "id": u.id, "name": u.name, "domain_id": u.domain_id, "enabled": u.enabled,
        "password_expires_at": null, "options": {},
        "links": {"self": format!("http://keystone.invalid/v3/users/{}", u.id)}
    });
    if let Some(email) = &u.email {
        user["email"] = email.clone().into();
    }
    Json(json!({"user": user})).into_response()
}

async fn groups(State(s): State<Arc<Mutex<Inner>>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let mut inner = lock(&s);
    inner.requests.push(format!("GET /v3/users/{id}/groups"));
    let u = match reader(&inner, &headers, &id) {
        Ok(u) => u,
        Err(answer) => return answer,
    };
    if inner.mode == KeystoneMode::ForbidGroupList {
        return error(
            403,
            "Forbidden",
            "You are not authorized to perform the requested action: identity:list_groups_for_user.",
        );
    }
    let groups: Vec<Value> = u
        .groups
        .iter()
        .enumerate()
        .map(|(i, name)| json!({"id": format!("g{i:031}"), "name": name, "domain_id": u.domain_id, "description": ""}))
        .collect();
    let links =
        json!({"self": format!("http://keystone.invalid/v3/users/{id}/groups"), "previous": null, "next": null});
    Json(json!({"groups": groups, "links": links})).into_response()
}
