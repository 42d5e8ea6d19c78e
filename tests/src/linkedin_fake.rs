//! A fake LinkedIn on 127.0.0.1:0 (`shared/upstreams-more.md` §8): www.linkedin.com's
//! `/oauth/v2/authorization` and `/oauth/v2/accessToken` (client secret in the body only,
//! `{"access_token","expires_in"}` for 60 days, no refresh token), and api.linkedin.com's
//! `/v2/me` and `/v2/emailAddress?q=members&projection=(elements*(handle~))`. Failures: 401
//! `{"serviceErrorCode":65600,...}`, 429.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::oauth_fake::{self, OAuth, TokenShape};

pub const CLIENT_ID: &str = "86fakelinkedinid";
pub const CLIENT_SECRET: &str = "fakeLinkedInSecret";

#[derive(Clone, Debug)]
pub struct FakeMember {
    pub id: String,
    pub first: String,
    pub last: String,
    pub emails: Vec<String>,
}

struct Inner {
    member: FakeMember,
    throttled: bool,
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

pub struct FakeLinkedIn {
    /// `http://127.0.0.1:PORT`: both `baseURL` and `apiURL`.
    pub base: String,
    pub oauth: OAuth,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeLinkedIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeLinkedIn {
    pub async fn start(member: FakeMember) -> Self {
        let shape = TokenShape {
            expires_in: Some(5_184_000),
            refresh_tokens: false,
            token_type: String::new(),
            body_auth_only: true,
            ..TokenShape::default()
        };
        let oauth = OAuth::new(CLIENT_ID, CLIENT_SECRET, shape);
        let shared = Arc::new(Shared { oauth: oauth.clone(), inner: Mutex::new(Inner { member, throttled: false }) });
        let s = shared.clone();
        let o = oauth.clone();
        let (base, server) = oauth_fake::serve(move |_| {
            Router::new()
                .route("/v2/me", get(me))
                .route("/v2/emailAddress", get(email))
                .with_state(s)
                .merge(o.router("/oauth/v2/authorization", "/oauth/v2/accessToken"))
        })
        .await;
        Self { base, oauth, shared, server }
    }

    pub fn update_member(&self, f: impl FnOnce(&mut FakeMember)) {
        f(&mut self.shared.lock().member);
    }

    pub fn throttle(&self, on: bool) {
        self.shared.lock().throttled = on;
    }
}

#[allow(clippy::result_large_err, reason = "the error is the fake's answer, an axum Response")]
fn authenticate(s: &Shared, headers: &HeaderMap) -> Result<FakeMember, Response> {
    if s.oauth.scope_of(headers).is_none() {
        let body = json!({"serviceErrorCode": 65600, "message": "Invalid access token", "status": 401});
        return Err((StatusCode::UNAUTHORIZED, Json(body)).into_response());
    }
    let inner = s.lock();
    if inner.throttled {
        let body = json!({"message": "Resource level throttle APPLICATION DAY limit for calls to this resource is reached.", "status": 429});
        return Err((StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response());
    }
    Ok(inner.member.clone())
}

async fn me(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    match authenticate(&s, &headers) {
        Ok(m) => Json(json!({"id": m.id, "localizedFirstName": m.first, "localizedLastName": m.last,
                             "firstName": {"localized": {"en_US": m.first}}, "lastName": {"localized": {"en_US": m.last}}}))
        .into_response(),
        Err(r) => r,
    }
}

async fn email(State(s): State<Arc<Shared>>, headers: HeaderMap, Query(q): Query<Vec<(String, String)>>) -> Response {
    let m = match authenticate(&s, &headers) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let want = [("q", "members"), ("projection", "(elements*(handle~))")];
    if want.iter().any(|(k, v)| !q.iter().any(|(qk, qv)| qk == k && qv == v)) {
        return (StatusCode::BAD_REQUEST, Json(json!({"message": "Unpermitted fields present", "status": 400})))
            .into_response();
    }
    let elements: Vec<Value> = m
        .emails
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"handle": format!("urn:li:emailAddress:{}", 3775708763u64 + i as u64), "handle~": {"emailAddress": e}}))
        .collect();
    Json(json!({"elements": elements})).into_response()
}
