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
        // An access token Dex issued before `import-dex` (Dex's are ID tokens, signed with a
        // key that came over) answers with its claims until it expires, as at Dex, while its
        // client is still configured: it names no grant to revoke. Our own ID tokens never do.
        return match broker.keys.verify_dex_signed::<IdShapedClaims>(token, &issuer) {
            Some(claims) if claims.client_id().is_some_and(|c| live.config.clients.contains_key(c)) => {
                user_body(&claims.user, &claims.sub)
            }
            _ => unauthorized("the access token is invalid or expired"),
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
