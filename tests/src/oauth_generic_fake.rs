//! A fake generic OAuth 2.0 provider on 127.0.0.1:0 for the `oauth` connector
//! (`shared/upstreams-more.md` §3): `/oauth/authorize`, `/oauth/token` (which can demand
//! client authentication in the body, answer form-encoded, or issue JWT access tokens carrying
//! groups) and `/userinfo`, whose answer a test sets to any JSON, or to a failure.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use crate::oauth_fake::{self, OAuth, TokenShape};

pub const CLIENT_ID: &str = "generic-client";
pub const CLIENT_SECRET: &str = "generic-client-secret";

/// What `/userinfo` answers to a live token.
#[derive(Clone, Debug)]
pub enum UserInfo {
    Json(Value),
    /// This status with `{"error":"server_error"}`.
    Status(u16),
    /// A 200 that is not JSON.
    Html,
}

struct Shared {
    oauth: OAuth,
    userinfo: Mutex<UserInfo>,
}

pub struct FakeOAuthProvider {
    pub base: String,
    pub oauth: OAuth,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOAuthProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeOAuthProvider {
    pub async fn start(userinfo: Value, shape: TokenShape) -> Self {
        let oauth = OAuth::new(CLIENT_ID, CLIENT_SECRET, shape);
        let shared = Arc::new(Shared { oauth: oauth.clone(), userinfo: Mutex::new(UserInfo::Json(userinfo)) });
        let s = shared.clone();
        let o = oauth.clone();
        let (base, server) = oauth_fake::serve(move |_| {
            Router::new()
                .route("/userinfo", get(userinfo_handler))
                .with_state(s)
                .merge(o.router("/oauth/authorize", "/oauth/token"))
        })
        .await;
        Self { base, oauth, shared, server }
    }

    pub fn set_userinfo(&self, answer: UserInfo) {
        *self.shared.userinfo.lock().unwrap() = answer;
    }
}

async fn userinfo_handler(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if s.oauth.scope_of(&headers).is_none() {
        let www = [("www-authenticate", "Bearer error=\"invalid_token\"")];
        return (StatusCode::UNAUTHORIZED, www, Json(serde_json::json!({"error": "invalid_token"}))).into_response();
    }
    let answer = s.userinfo.lock().unwrap().clone();
    match answer {
        UserInfo::Json(v) => Json(v).into_response(),
        UserInfo::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, Json(serde_json::json!({"error": "server_error"}))).into_response()
        }
        UserInfo::Html => ([("content-type", "text/html")], "<html>login</html>").into_response(),
    }
}
