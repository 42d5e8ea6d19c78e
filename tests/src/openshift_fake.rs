//! A fake OpenShift cluster on 127.0.0.1:0 (`shared/upstreams-more.md` §6): the API server's
//! `/.well-known/oauth-authorization-server` (pointing at the OAuth server on the same origin
//! here), the OAuth server's `/oauth/authorize` and `/oauth/token` (`sha256~` tokens for 24
//! hours, no refresh tokens), and `/apis/user.openshift.io/v1/users/~`. Failures: discovery
//! answering HTML, 401 with a Kubernetes `Status`, 429 from API Priority and Fairness.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::oauth_fake::{self, OAuth, TokenShape};

pub const CLIENT_ID: &str = "dex-oauth-client";
pub const CLIENT_SECRET: &str = "fake-openshift-oauthclient-secret";

#[derive(Clone, Debug)]
pub struct FakeUser {
    pub name: String,
    pub uid: String,
    pub full_name: String,
    pub groups: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Discovery answers an HTML page (a router in front of a cluster that is down).
    DiscoveryDown,
    /// The API server throttles (429, `Retry-After`).
    Throttled,
}

struct Inner {
    user: FakeUser,
    mode: Mode,
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

pub struct FakeOpenShift {
    /// `http://127.0.0.1:PORT`: the connector's `issuer`.
    pub base: String,
    pub oauth: OAuth,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOpenShift {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeOpenShift {
    pub async fn start(user: FakeUser) -> Self {
        let shape = TokenShape { expires_in: Some(86_400), refresh_tokens: false, ..TokenShape::default() };
        let oauth = OAuth::new(CLIENT_ID, CLIENT_SECRET, shape);
        let o = oauth.clone();
        let (base, shared, server) = oauth_fake::serve_with(move |base| {
            let shared = Arc::new(Shared {
                base: base.into(),
                oauth: o.clone(),
                inner: Mutex::new(Inner { user, mode: Mode::Normal }),
            });
            let router = Router::new()
                .route("/.well-known/oauth-authorization-server", get(discovery))
                .route("/apis/user.openshift.io/v1/users/~", get(user_handler))
                .with_state(shared.clone())
                .merge(o.router("/oauth/authorize", "/oauth/token"));
            (router, shared)
        })
        .await;
        Self { base, oauth, shared, server }
    }

    pub fn update_user(&self, f: impl FnOnce(&mut FakeUser)) {
        f(&mut self.shared.lock().user);
    }

    pub fn set_mode(&self, mode: Mode) {
        self.shared.lock().mode = mode;
    }
}

async fn discovery(State(s): State<Arc<Shared>>) -> Response {
    if s.lock().mode == Mode::DiscoveryDown {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "text/html")],
            "<html>Application is not available</html>",
        )
            .into_response();
    }
    let b = &s.base;
    Json(json!({
        "issuer": b, "authorization_endpoint": format!("{b}/oauth/authorize"), "token_endpoint": format!("{b}/oauth/token"),
        "scopes_supported": ["user:check-access", "user:full", "user:info", "user:list-projects", "user:list-scoped-projects"],
        "response_types_supported": ["code", "token"], "grant_types_supported": ["authorization_code", "implicit"],
        "code_challenge_methods_supported": ["plain", "S256"]
    }))
    .into_response()
}

async fn user_handler(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if s.oauth.scope_of(&headers).is_none() {
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": "Unauthorized", "reason": "Unauthorized", "code": 401});
        return (StatusCode::UNAUTHORIZED, Json(status)).into_response();
    }
    let inner = s.lock();
    if inner.mode == Mode::Throttled {
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": "Too many requests, please try again later.", "reason": "TooManyRequests", "code": 429});
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], Json(status)).into_response();
    }
    let u = &inner.user;
    Json(json!({
        "kind": "User", "apiVersion": "user.openshift.io/v1",
        "metadata": {"name": u.name, "uid": u.uid, "resourceVersion": "1234", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "fullName": u.full_name, "identities": [format!("htpasswd_provider:{}", u.name)], "groups": u.groups
    }))
    .into_response()
}
