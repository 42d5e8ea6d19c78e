//! The userinfo endpoint: the access token's user claims, while its grant is live.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{AppState, issuer};
use crate::broker::now;
use crate::oidc::claims::{AccessTokenClaims, IdShapedClaims, UserClaims};

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
    let (token, issuer) = (token.trim(), issuer(&live));
    let Some(claims) = broker.keys.verify::<AccessTokenClaims>(token, &issuer, None) else {
        // Dex's access tokens are ID tokens, and its userinfo takes any token it signed: one
        // issued by Dex before `import-dex` (its keys came over), or an ID token sent as the
        // bearer, answers with its claims until it expires (it names no grant to revoke).
        return match broker.keys.verify_id_shaped::<IdShapedClaims>(token, &issuer) {
            Some(claims) => user_body(&claims.user, &claims.sub),
            None => unauthorized("the access token is invalid or expired"),
        };
    };
    match broker.store.grant_live(&claims.gid, now()).await {
        Ok(true) => {}
        Ok(false) => return unauthorized("the access token was revoked"),
        Err(e) => {
            tracing::error!("userinfo storage error: {e}");
            return (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable").into_response();
        }
    }
    user_body(&claims.user, &claims.sub)
}

/// The answer: the user claims and `sub`.
fn user_body(user: &UserClaims, sub: &str) -> Response {
    let mut body = serde_json::to_value(user).unwrap_or_else(|_| json!({}));
    body["sub"] = json!(sub);
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}
