//! The userinfo endpoint: the access token's user claims, while its grant is live.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{AppState, issuer};
use crate::broker::now;
use crate::oidc::claims::AccessTokenClaims;

fn unauthorized(description: &str) -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": "invalid_token", "error_description": description}).to_string(),
    )
        .into_response();
    let challenge = format!("Bearer error=\"invalid_token\", error_description=\"{description}\"");
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

pub async fn userinfo(State(broker): State<AppState>, headers: HeaderMap) -> Response {
    let live = broker.generations.current();
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
    else {
        return unauthorized("a Bearer access token is required");
    };
    let Some(claims) = broker.keys.verify::<AccessTokenClaims>(token.trim(), &issuer(&live), None) else {
        return unauthorized("the access token is invalid or expired");
    };
    match broker.store.grant_live(&claims.gid, now()).await {
        Ok(true) => {}
        Ok(false) => return unauthorized("the access token was revoked"),
        Err(e) => {
            tracing::error!("userinfo storage error: {e}");
            return (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable").into_response();
        }
    }
    let mut body = serde_json::to_value(&claims.user).unwrap_or_else(|_| json!({}));
    body["sub"] = json!(claims.sub);
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}
