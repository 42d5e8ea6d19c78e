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
        return Ok(active(Answer {
            scope: Some(&claims.scope),
            client_id: &claims.client_id,
            sub: &claims.sub,
            user: &claims.user,
            exp: claims.exp,
            iat: claims.iat,
            aud: json!(claims.aud),
            iss: &claims.iss,
            jti: Some(&claims.jti),
            token_use: "access_token",
        }));
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
    Ok(active(Answer {
        scope: Some(&scopes.joined()),
        client_id: &stored.client_id,
        sub: &crate::oidc::sub::encode(&stored.identity.user_id, &stored.connector_id),
        user: &user,
        exp: stored.expires_at,
        iat: stored.created_at,
        aud: json!(stored.client_id),
        iss: &issuer,
        jti: None,
        token_use: "refresh_token",
    }))
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
    active(Answer {
        scope: None,
        client_id: &client_id,
        sub: &claims.sub,
        user: &claims.user,
        exp: claims.exp,
        iat: claims.iat,
        aud: json!(claims.aud),
        iss: &claims.iss,
        jti: claims.jti.as_deref(),
        token_use: "access_token",
    })
}

/// What an active token's answer is made of.
struct Answer<'a> {
    scope: Option<&'a str>,
    client_id: &'a str,
    sub: &'a str,
    user: &'a UserClaims,
    exp: i64,
    iat: i64,
    aud: Value,
    iss: &'a str,
    jti: Option<&'a str>,
    token_use: &'static str,
}

/// Dex's answer for an active token: RFC 7662's fields, `token_use`, Dex's `username` (the
/// preferred username) and `ext` (the user claims and the authorized party).
fn active(a: Answer<'_>) -> Response {
    let mut ext = serde_json::to_value(a.user).unwrap_or_else(|_| json!({}));
    ext["azp"] = json!(a.client_id);
    json_response(json!({
        "active": true,
        "scope": a.scope,
        "client_id": a.client_id,
        "sub": a.sub,
        "username": a.user.preferred_username,
        "exp": a.exp,
        "iat": a.iat,
        "nbf": a.iat,
        "aud": a.aud,
        "iss": a.iss,
        "jti": a.jti,
        "token_type": "Bearer",
        "token_use": a.token_use,
        "ext": ext,
    }))
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
