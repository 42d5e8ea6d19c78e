//! The token endpoint: client authentication, the authorization_code grant (PKCE, single-use
//! codes whose reuse revokes what they produced) and the refresh_token grant (rotation with
//! reuse detection that revokes the whole family).

use std::collections::HashMap;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::authorize::secs;
use super::{AppState, issuer, random_token, token_key};
use crate::broker::{Live, now};
use crate::config::Client;
use crate::connectors::{Identity, Scopes};
use crate::oidc::claims::TokenContext;
use crate::oidc::{OAuthError, OAuthErrorCode, ScopeSet, pkce};
use crate::storage::RefreshToken;

fn error_response(err: OAuthError) -> Response {
    let status = StatusCode::from_u16(err.error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], json!(err).to_string()).into_response();
    if err.error == OAuthErrorCode::InvalidClient {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"portcullis\""));
    }
    response
}

/// `application/x-www-form-urlencoded` decoding of one Basic credential half (RFC 6749 §2.3.1).
fn form_decode(text: &str) -> Option<String> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(format!("v={text}").as_bytes()).into_owned().collect();
    pairs.into_iter().next().map(|(_, v)| v)
}

/// Authenticates the client by Basic auth or form fields.
fn authenticate<'a>(
    live: &'a Live,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<&'a Client, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
        .map(|b64| {
            let decoded = STANDARD.decode(b64.trim()).ok().and_then(|d| String::from_utf8(d).ok());
            let (id, secret) = decoded
                .as_deref()
                .and_then(|d| d.split_once(':'))
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
            Ok::<_, OAuthError>((form_decode(id).unwrap_or_default(), Some(form_decode(secret).unwrap_or_default())))
        })
        .transpose()?;
    let (id, secret) = match basic {
        Some(pair) => pair,
        None => {
            let id = form
                .get("client_id")
                .cloned()
                .ok_or_else(|| OAuthError::invalid_client("client authentication is required"))?;
            (id, form.get("client_secret").cloned())
        }
    };
    let client =
        live.config.clients.get(&id).ok_or_else(|| OAuthError::invalid_client("unknown client or wrong secret"))?;
    match (&client.secret, secret.as_deref()) {
        (Some(expected), Some(given)) if expected.matches(given) => Ok(client),
        (_, None) if client.public => Ok(client),
        _ => Err(OAuthError::invalid_client("unknown client or wrong secret")),
    }
}

pub async fn token(
    State(broker): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let live = broker.live.load_full();
    let client = match authenticate(&live, &headers, &form) {
        Ok(c) => c,
        Err(e) => return error_response(e),
    };
    let result = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            authorization_code(&broker, &live, client, &form).await.inspect(|_| count("authorization_code"))
        }
        Some("refresh_token") => refresh(&broker, &live, client, &form).await.inspect(|_| count("refresh_token")),
        Some(other) => {
            Err(OAuthError::new(OAuthErrorCode::UnsupportedGrantType, format!("grant_type {other:?} is not supported")))
        }
        None => Err(OAuthError::invalid_request("grant_type is required")),
    };
    match result {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response(),
        Err(e) => error_response(e),
    }
}

fn count(grant_type: &'static str) {
    crate::metrics::global().tokens.get_or_create(&crate::metrics::GrantLabels { grant_type }).inc();
}

fn storage_error(e: impl std::fmt::Display) -> OAuthError {
    tracing::error!("token endpoint storage error: {e}");
    OAuthError::new(OAuthErrorCode::TemporarilyUnavailable, "storage unavailable; retry")
}

async fn authorization_code(
    broker: &AppState,
    live: &Live,
    client: &Client,
    form: &HashMap<String, String>,
) -> Result<serde_json::Value, OAuthError> {
    let now = now();
    let code = form.get("code").ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let key = token_key(code);
    let (mut stored, version) = broker
        .store
        .auth_code(&key, now)
        .await
        .map_err(storage_error)?
        .ok_or_else(|| OAuthError::invalid_grant("the code is invalid or expired"))?;
    if stored.client_id != client.id {
        return Err(OAuthError::invalid_grant("the code was issued to another client"));
    }
    if let Some(grant) = &stored.redeemed_grant {
        // A code presented twice: revoke everything the first redemption produced.
        tracing::warn!(client = %client.id, "authorization code reuse detected; revoking its grant");
        broker.store.revoke_grant(grant).await.map_err(storage_error)?;
        return Err(OAuthError::invalid_grant("the code was already used; the tokens it produced are revoked"));
    }
    if form.get("redirect_uri") != Some(&stored.redirect_uri) {
        return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"));
    }
    let verifier = form.get("code_verifier");
    match (&stored.code_challenge, verifier) {
        (Some(challenge), Some(verifier)) => {
            let method =
                stored.code_challenge_method.as_deref().and_then(pkce::Method::parse).unwrap_or(pkce::Method::S256);
            if !pkce::verify(method, challenge, verifier) {
                return Err(OAuthError::invalid_grant("code_verifier does not match the code_challenge"));
            }
        }
        (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is required (PKCE)")),
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "code_verifier given but the authorization request had no code_challenge",
            ));
        }
        (None, None) => {}
    }
    let grant = random_token();
    stored.redeemed_grant = Some(grant.clone());
    if !broker.store.redeem_auth_code(&key, &stored, version, now).await.map_err(storage_error)? {
        return Err(OAuthError::invalid_grant("the code was already used"));
    }
    let scopes = ScopeSet::from_list(&stored.scopes);
    let refresh = &live.config.expiry.refresh;
    let grant_expiry = now
        + secs(live.config.expiry.id_tokens).max(if scopes.offline_access {
            secs(refresh.absolute_lifetime)
        } else {
            0
        });
    broker.store.create_grant(&grant, grant_expiry, now).await.map_err(storage_error)?;
    let refresh_token = if scopes.offline_access {
        let token = random_token();
        let record = RefreshToken {
            family: grant.clone(),
            client_id: client.id.clone(),
            scopes: stored.scopes.clone(),
            nonce: stored.nonce.clone(),
            connector_id: stored.connector_id.clone(),
            identity: stored.identity.clone(),
            auth_time: stored.auth_time,
            created_at: now,
            family_created_at: now,
            last_used: now,
            rotated_at: None,
            successor: None,
            expires_at: refresh_expiry(live, now, now),
        };
        broker.store.create_refresh_token(&token_key(&token), &record, now).await.map_err(storage_error)?;
        Some(token)
    } else {
        None
    };
    mint(
        broker,
        live,
        client,
        &stored.connector_id,
        &stored.identity,
        &scopes,
        stored.nonce.as_deref(),
        stored.auth_time,
        &grant,
        refresh_token,
    )
}

/// When a refresh token used at `last_used` in a family begun at `family_start` expires.
fn refresh_expiry(live: &Live, family_start: i64, last_used: i64) -> i64 {
    let r = &live.config.expiry.refresh;
    (family_start + secs(r.absolute_lifetime)).min(last_used + secs(r.valid_if_not_used_for))
}

#[allow(clippy::too_many_arguments)]
fn mint(
    broker: &AppState,
    live: &Live,
    client: &Client,
    connector_id: &str,
    identity: &Identity,
    scopes: &ScopeSet,
    nonce: Option<&str>,
    auth_time: i64,
    grant: &str,
    refresh_token: Option<String>,
) -> Result<serde_json::Value, OAuthError> {
    let issuer = issuer(live);
    let lifetime = secs(live.config.expiry.id_tokens);
    let token_id = random_token();
    let ctx = TokenContext {
        issuer: &issuer,
        client_id: &client.id,
        connector_id,
        identity,
        scopes,
        nonce,
        auth_time,
        now: now(),
        lifetime,
        grant_id: grant,
        token_id: &token_id,
    };
    let sign_error = |e: crate::keys::KeyError| {
        tracing::error!("cannot sign a token: {e}");
        OAuthError::server_error("cannot sign the token")
    };
    let access = broker.keys.sign(&ctx.access_token(), "at+jwt").map_err(sign_error)?;
    let id_token = broker.keys.sign(&ctx.id_token(&access, broker.keys.algorithm()), "JWT").map_err(sign_error)?;
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "id_token": id_token,
        "scope": scopes.joined(),
    });
    if let Some(rt) = refresh_token {
        body["refresh_token"] = json!(rt);
    }
    Ok(body)
}

async fn refresh(
    broker: &AppState,
    live: &Live,
    client: &Client,
    form: &HashMap<String, String>,
) -> Result<serde_json::Value, OAuthError> {
    let now = now();
    let presented =
        form.get("refresh_token").ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let key = token_key(presented);
    let (mut stored, version) = broker
        .store
        .refresh_token(&key, now)
        .await
        .map_err(storage_error)?
        .ok_or_else(|| OAuthError::invalid_grant("the refresh token is invalid, expired or revoked"))?;
    if stored.client_id != client.id {
        return Err(OAuthError::invalid_grant("the refresh token was issued to another client"));
    }
    let policy = live.config.expiry.refresh;
    if let Some(rotated_at) = stored.rotated_at
        && now - rotated_at > secs(policy.reuse_interval)
    {
        tracing::warn!(client = %client.id, "refresh token reuse detected; revoking the token family");
        broker.store.revoke_grant(&stored.family).await.map_err(storage_error)?;
        return Err(OAuthError::invalid_grant("the refresh token was already used; its whole family is revoked"));
    }
    // A retry within the reuse interval (a lost response): answered with a new token.
    if !broker.store.grant_live(&stored.family, now).await.map_err(storage_error)? {
        return Err(OAuthError::invalid_grant("the refresh token was revoked"));
    }
    let granted = ScopeSet::from_list(&stored.scopes);
    let scopes = match form.get("scope") {
        Some(s) => {
            let asked = ScopeSet::parse(s).map_err(|e| OAuthError::new(OAuthErrorCode::InvalidScope, e))?;
            if !asked.is_subset_of(&granted) {
                return Err(OAuthError::new(OAuthErrorCode::InvalidScope, "a refresh cannot widen the granted scopes"));
            }
            asked
        }
        None => granted,
    };
    // Re-read the user upstream.
    let identity = if stored.connector_id == super::authorize::LOCAL {
        let user = live.config.passwords.iter().find(|p| Some(&p.email) == stored.identity.email.as_ref());
        match user {
            Some(_) if live.config.enable_password_db => stored.identity.clone(),
            _ => return Err(OAuthError::invalid_grant("the user no longer exists")),
        }
    } else {
        let Some(connector) = live.registry.get(&stored.connector_id) else {
            if live.failed.iter().any(|f| f.connector == stored.connector_id) {
                // Configured but not loaded (a degraded start): the login is not refused, the
                // connector is missing for now, so the token survives until it is back.
                return Err(OAuthError::new(
                    OAuthErrorCode::TemporarilyUnavailable,
                    format!("connector {:?} is not loaded right now; retry later", stored.connector_id),
                ));
            }
            return Err(OAuthError::invalid_grant(format!("connector {:?} no longer exists", stored.connector_id)));
        };
        if !connector.metadata().supports_refresh {
            stored.identity.clone()
        } else {
            let s = Scopes { offline_access: scopes.offline_access, groups: scopes.groups };
            match connector.refresh(s, stored.identity.clone()).await {
                Ok(identity) => identity,
                Err(e) => {
                    tracing::warn!(connector = %stored.connector_id, "refresh failed: {e}");
                    return Err(refresh_failure(&e));
                }
            }
        }
    };
    let next_token = if policy.rotation {
        let next = random_token();
        stored.rotated_at = Some(stored.rotated_at.unwrap_or(now));
        stored.successor = Some(token_key(&next));
        if !broker.store.update_refresh_token(&key, &stored, version, now).await.map_err(storage_error)? {
            return Err(OAuthError::invalid_grant(
                "the refresh token was used concurrently; retry with the newest token",
            ));
        }
        let record = RefreshToken {
            identity: identity.clone(),
            scopes: stored.scopes.clone(),
            created_at: now,
            last_used: now,
            rotated_at: None,
            successor: None,
            expires_at: refresh_expiry(live, stored.family_created_at, now),
            ..stored.clone()
        };
        broker.store.create_refresh_token(&token_key(&next), &record, now).await.map_err(storage_error)?;
        next
    } else {
        stored.last_used = now;
        stored.identity = identity.clone();
        stored.expires_at = refresh_expiry(live, stored.family_created_at, now);
        let _ = broker.store.update_refresh_token(&key, &stored, version, now).await.map_err(storage_error)?;
        presented.clone()
    };
    mint(
        broker,
        live,
        client,
        &stored.connector_id,
        &identity,
        &scopes,
        None,
        stored.auth_time,
        &stored.family,
        Some(next_token),
    )
}

/// What a client hears when the connector could not refresh. A refusal (the user was removed,
/// left a required group, revoked the upstream grant) ends the login: `invalid_grant`. A
/// failure that may pass — the upstream down or slow, rate limiting — is a 503
/// `temporarily_unavailable`, and the refresh token stays valid (nothing was rotated yet), so
/// a client retries instead of logging the user out.
fn refresh_failure(e: &crate::connectors::PluginError) -> OAuthError {
    use crate::connectors::{PluginError, Refusal};
    match e {
        PluginError::Refused { refusal: Refusal::Upstream(_), .. } | PluginError::Deadline { .. } => OAuthError::new(
            OAuthErrorCode::TemporarilyUnavailable,
            "the identity provider could not be reached to refresh this login; retry later",
        ),
        _ => OAuthError::invalid_grant("the identity provider refused to refresh this login"),
    }
}
