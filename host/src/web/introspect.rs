//! Token introspection (RFC 7662, at Dex's `/token/introspect`) and revocation (RFC 7009, at
//! `/token/revoke`).
//!
//! Introspection is client-authenticated unless `oauth2.introspection.allowUnauthenticated`
//! (Dex answers anyone): any registered client may introspect an access token (a resource
//! server checks tokens issued to others), but a refresh token only the client it belongs to.
//! Revoking a refresh token ends its family, revoking an access token its grant — each only
//! for the client the token was issued to. Both answer an unknown or foreign token as RFC says:
//! `active: false`, and `200` for a revocation.

use std::collections::HashMap;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::WebError;
use super::{AppState, issuer, token_key};
use crate::clock::{now, secs};
use crate::config::Client;
use crate::generation::Live;
use crate::oidc::claims::{AccessTokenClaims, IdShapedClaims, UserClaims};
use crate::oidc::token::ClientCredentials;
use crate::oidc::{OAuthError, OAuthErrorCode, ScopeSet};

/// A JWT has three dot-separated parts; our refresh tokens have none.
fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// `body` without its null members (Dex's `omitempty`: no `username` for a user without one).
fn json_response(mut body: Value) -> Response {
    if let Value::Object(map) = &mut body {
        map.retain(|_, v| !v.is_null());
    }
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body.to_string())
        .into_response()
}

fn inactive() -> Response {
    json_response(json!({"active": false}))
}

fn storage_error(e: impl std::fmt::Display) -> WebError {
    tracing::error!("introspection storage error: {e}");
    WebError::OAuth(OAuthError::new(OAuthErrorCode::TemporarilyUnavailable, "storage unavailable; retry"))
}

/// The authenticated client, or `None` when authentication is absent and allowed.
fn caller<'a>(
    live: &'a Live,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Option<&'a Client>, WebError> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let presented = authorization.is_some() || form.contains_key("client_id");
    if !presented && live.config.oauth2.introspection.allow_unauthenticated {
        return Ok(None);
    }
    let client = ClientCredentials::parse(authorization, form)?.authenticate(&live.config.clients)?;
    if client.public {
        // Naming a public client proves nothing: anyone can.
        return Err(WebError::OAuth(OAuthError::invalid_client(
            "introspection needs a confidential client's credentials",
        )));
    }
    Ok(Some(client))
}

fn token_of(form: &HashMap<String, String>) -> Result<&str, WebError> {
    form.get("token")
        .map(String::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| WebError::OAuth(OAuthError::invalid_request("token is required")))
}

/// `POST /token/introspect`.
pub async fn introspect(
    State(broker): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let live = broker.generations.current();
    let client = caller(&live, &headers, &form)?;
    let token = token_of(&form)?;
    let now = now();
    let issuer = issuer(&live);
    if looks_like_jwt(token) {
        let Some(claims) = broker.keys.verify::<AccessTokenClaims>(token, &issuer, None) else {
            return Ok(id_shaped(&broker, &live, token, &issuer));
        };
        if !broker.store.grant_live(&claims.gid, now).await.map_err(storage_error)? {
            return Ok(inactive());
        }
        return Ok(json_response(json!({
            "active": true,
            "scope": claims.scope,
            "client_id": claims.client_id,
            "sub": claims.sub,
            "username": claims.user.preferred_username,
            "exp": claims.exp,
            "iat": claims.iat,
            "nbf": claims.iat,
            "aud": claims.aud,
            "iss": claims.iss,
            "jti": claims.jti,
            "token_type": "Bearer",
            "token_use": "access_token",
            "ext": extra(&claims.user, &claims.client_id),
        })));
    }
    let Some((stored, _)) = broker.store.refresh_token(&token_key(token), now).await.map_err(storage_error)? else {
        return Ok(inactive());
    };
    // A refresh token is the client's own secret: no other client learns about it.
    if client.is_some_and(|c| c.id != stored.client_id) {
        return Ok(inactive());
    }
    let reuse = secs(live.config.expiry.refresh.reuse_interval);
    let superseded = stored.rotated_at.is_some_and(|at| now > at + reuse);
    if superseded || !broker.store.grant_live(&stored.family, now).await.map_err(storage_error)? {
        return Ok(inactive());
    }
    let scopes = ScopeSet::from_list(&stored.scopes);
    let user = UserClaims::new(&stored.identity, &stored.connector_id, &scopes);
    Ok(json_response(json!({
        "active": true,
        "scope": scopes.joined(),
        "client_id": stored.client_id,
        "sub": crate::oidc::sub::encode(&stored.identity.user_id, &stored.connector_id),
        "username": user.preferred_username,
        "exp": stored.expires_at,
        "iat": stored.created_at,
        "nbf": stored.created_at,
        "aud": stored.client_id,
        "iss": issuer,
        "token_type": "Bearer",
        "token_use": "refresh_token",
        "ext": extra(&user, stored.client_id.as_str()),
    })))
}

/// A JWT that is not one of our access tokens: an access token Dex signed before `import-dex`
/// (an ID token in shape, no JOSE `typ`), active as in Dex until it expires, its client its one
/// audience or `azp`, which must still be a client of this config (Dex looks it up too).
fn id_shaped(broker: &AppState, live: &Live, token: &str, issuer: &str) -> Response {
    let Some(claims) = broker.keys.verify_dex_signed::<IdShapedClaims>(token, issuer) else { return inactive() };
    let Some(client_id) = claims.client_id().map(str::to_owned) else { return inactive() };
    if !live.config.clients.contains_key(client_id.as_str()) {
        return inactive();
    }
    json_response(json!({
        "active": true,
        "client_id": client_id,
        "sub": claims.sub,
        "username": claims.user.preferred_username,
        "exp": claims.exp,
        "iat": claims.iat,
        "nbf": claims.iat,
        "aud": claims.aud,
        "iss": claims.iss,
        "jti": claims.jti,
        "token_type": "Bearer",
        "token_use": "access_token",
        "ext": extra(&claims.user, &client_id),
    }))
}

/// Dex's `ext`: the user claims and the authorized party.
fn extra(user: &UserClaims, azp: &str) -> Value {
    let mut ext = serde_json::to_value(user).unwrap_or_else(|_| json!({}));
    ext["azp"] = json!(azp);
    ext
}

/// `POST /token/revoke` (RFC 7009): the client's own tokens only; 200 whatever the token.
pub async fn revoke(
    State(broker): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let live = broker.generations.current();
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let client = ClientCredentials::parse(authorization, &form)?.authenticate(&live.config.clients)?;
    let token = token_of(&form)?;
    let now = now();
    if looks_like_jwt(token) {
        let claims = broker
            .keys
            .verify_allow_expired::<AccessTokenClaims>(token, &issuer(&live))
            .filter(|c| c.client_id == client.id.as_str());
        if let Some(claims) = claims {
            broker.store.revoke_token_grant(&claims.gid, claims.exp, now).await.map_err(storage_error)?;
            tracing::info!(client = %client.id, "a token was revoked at the client's request");
        }
        return Ok((StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response());
    }
    let stored = broker.store.refresh_token(&token_key(token), now).await.map_err(storage_error)?;
    if let Some(grant) = stored.filter(|(t, _)| t.client_id == client.id).map(|(t, _)| t.family) {
        broker.store.revoke_grant(&grant).await.map_err(storage_error)?;
        tracing::info!(client = %client.id, "a token was revoked at the client's request");
    }
    Ok((StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response())
}
