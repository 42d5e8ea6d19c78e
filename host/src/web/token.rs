//! The token endpoint: authenticates the client, then runs the grant — the authorization_code
//! grant (single-use codes whose reuse revokes what they produced) and the refresh_token grant
//! (rotation with reuse detection that revokes the whole family); the password and
//! client_credentials grants here, token exchange in `exchange.rs`, the device_code grant's
//! polls in `device/`. The rules are in
//! `oidc::token`; this reads and writes storage and calls the connector around them.

use std::collections::HashMap;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::WebError;
use super::flow::LOCAL;
use super::{AppState, ClientIp, issuer, random_token, token_key};
use crate::clock::{now, secs};
use crate::config::{Client, GrantType, RefreshTokenLifetime};
use crate::connectors::policy::{GrantKind, TokenPatch};
use crate::connectors::{Identity, Scopes};
use crate::generation::Live;
use crate::ids::TokenKey;
use crate::oidc::claims::TokenContext;
use crate::oidc::token::{
    ClientCredentials, CodeDecision, RefreshDecision, RefreshLifetime, TokenRequest, check_code, check_refresh,
    client_credentials_scopes, client_identity, refresh_failure, refresh_scopes, seal_successor, unseal_successor,
};
use crate::oidc::{OAuthError, OAuthErrorCode, ScopeSet};
use crate::storage::{Batch, RefreshToken};

pub async fn token(
    State(broker): State<AppState>,
    headers: HeaderMap,
    ip: ClientIp,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let live = broker.generations.current();
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let client = ClientCredentials::parse(authorization, &form)?.authenticate(&live.config.clients)?;
    let request = TokenRequest::parse(&form, &live.config.grant_types)?;
    let grant_type = request.grant_type();
    let body = match request {
        TokenRequest::AuthorizationCode { code, redirect_uri, code_verifier } => {
            authorization_code(&broker, &live, client, &code, redirect_uri.as_deref(), code_verifier.as_deref()).await
        }
        TokenRequest::RefreshToken { refresh_token, scope } => {
            refresh(&broker, &live, client, refresh_token, scope.as_deref()).await
        }
        TokenRequest::ClientCredentials { scope } => client_credentials(&broker, &live, client, scope.as_deref()).await,
        TokenRequest::Password { username, password: secret, scope, nonce } => {
            let presented =
                Presented { username: &username, password: secret, scope: scope.as_deref(), nonce: nonce.as_deref() };
            password(&broker, &live, client, ip, presented).await
        }
        TokenRequest::TokenExchange(exchange) => {
            super::exchange::token_exchange(&broker, &live, client, &exchange).await
        }
        TokenRequest::DeviceCode { device_code, code_verifier } => {
            super::device::grant(&broker, &live, client, &device_code, code_verifier.as_deref()).await
        }
    }?;
    crate::metrics::global().tokens.get_or_create(&crate::metrics::GrantLabels { grant_type }).inc();
    Ok(([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response())
}

pub(super) fn storage_error(e: impl std::fmt::Display) -> OAuthError {
    tracing::error!("token endpoint storage error: {e}");
    OAuthError::new(OAuthErrorCode::TemporarilyUnavailable, "storage unavailable; retry")
}

fn lifetime(live: &Live) -> RefreshLifetime {
    let r = &live.config.expiry.refresh;
    RefreshLifetime { absolute: secs(r.absolute_lifetime), idle: secs(r.valid_if_not_used_for) }
}

async fn authorization_code(
    broker: &AppState,
    live: &Live,
    client: &Client,
    code: &str,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
) -> Result<serde_json::Value, OAuthError> {
    let now = now();
    let key = token_key(code);
    let (mut stored, version) = broker
        .store
        .auth_code(&key, now)
        .await
        .map_err(storage_error)?
        .ok_or_else(|| OAuthError::invalid_grant("the code is invalid or expired"))?;
    if let CodeDecision::Replayed { grant } = check_code(stored.issued(), &client.id, redirect_uri, verifier)? {
        // A code presented twice: revoke everything the first redemption produced.
        tracing::warn!(client = %client.id, "authorization code reuse detected; revoking its grant");
        broker.store.revoke_grant(&grant).await.map_err(storage_error)?;
        return Err(OAuthError::invalid_grant("the code was already used; the tokens it produced are revoked"));
    }
    let grant = random_token();
    stored.redeemed_grant = Some(grant.clone());
    if !broker.store.redeem_auth_code(&key, &stored, version, now).await.map_err(storage_error)? {
        return Err(OAuthError::invalid_grant("the code was already used"));
    }
    let scopes = ScopeSet::from_list(&stored.scopes);
    let proven = Proven {
        connector_id: &stored.connector_id,
        identity: &stored.identity,
        scopes: &scopes,
        nonce: stored.nonce.as_deref(),
        auth_time: stored.auth_time,
        session: stored.session.as_ref(),
        refresh: scopes.offline_access,
        grant_kind: GrantKind::AuthorizationCode,
    };
    issue(broker, live, client, grant, proven, now).await
}

/// Who a grant proved the user to be, and what to issue for them.
pub(super) struct Proven<'a> {
    pub connector_id: &'a str,
    pub identity: &'a Identity,
    pub scopes: &'a ScopeSet,
    pub nonce: Option<&'a str>,
    pub auth_time: i64,
    /// The SSO session of the login (the grant is filed under it, so logout revokes it).
    pub session: Option<&'a TokenKey>,
    /// Issue a refresh token too.
    pub refresh: bool,
    /// Which grant, as the policies' `mint-token` is told.
    pub grant_kind: GrantKind,
}

/// Creates the grant `grant` (and a refresh token when asked) and signs the tokens.
pub(super) async fn issue(
    broker: &AppState,
    live: &Live,
    client: &Client,
    grant: String,
    p: Proven<'_>,
    now: i64,
) -> Result<serde_json::Value, OAuthError> {
    // The policies' patches first: a policy that cannot answer leaves nothing behind.
    let shown = p.identity.for_tokens();
    let mint = super::policy::user_mint(p.grant_kind, &client.id, p.connector_id, &shown, &p.scopes.all);
    let patch = super::policy::mint(live, mint).await?;
    // No refresh token from a connector whose `grantTypes` leave out refresh_token, nor from one
    // that cannot refresh (authproxy, a keystone without an admin account), as in Dex.
    let refreshes = live.registry.get(p.connector_id).is_none_or(|c| c.metadata().supports_refresh);
    let refresh =
        p.refresh && refreshes && live.config.connector_allows(p.connector_id, GrantType::RefreshToken.as_str());
    let offline = if refresh { lifetime(live).absolute } else { 0 };
    let expiry = &live.config.expiry;
    let grant_expiry = now + secs(expiry.id_tokens).max(secs(expiry.access_tokens)).max(offline);
    // Filed under the session, logout revokes the grant; a `standalone` client's outlives it.
    let filed_under = p.session.filter(|_| client.refresh_lifetime != RefreshTokenLifetime::Standalone);
    // The grant, its refresh token and the user's index entry: one write.
    let mut batch = Batch::default();
    batch.grant(&grant, filed_under, grant_expiry).map_err(storage_error)?;
    let refresh_token = if refresh {
        let token = random_token();
        let record = RefreshToken {
            family: grant.clone(),
            client_id: client.id.clone(),
            scopes: p.scopes.all.clone(),
            nonce: p.nonce.map(str::to_string),
            connector_id: p.connector_id.into(),
            identity: p.identity.clone(),
            auth_time: p.auth_time,
            created_at: now,
            family_created_at: now,
            last_used: now,
            rotated_at: None,
            successor: None,
            successor_sealed: None,
            session: p.session.cloned(),
            expires_at: lifetime(live).expiry(now, now),
        };
        batch.refresh_token(&token_key(&token), &record).map_err(storage_error)?;
        // The admin API lists and revokes a user's refresh tokens by `sub` (ListRefresh).
        let sub = crate::oidc::sub::encode(&p.identity.user_id, p.connector_id);
        let entry = crate::storage::api::UserGrant { client_id: client.id.to_string(), created_at: now };
        batch.user_grant(&sub, &grant, &entry, grant_expiry).map_err(storage_error)?;
        Some(token)
    } else {
        None
    };
    broker.store.write(&batch, now).await.map_err(storage_error)?;
    let minted = Minted {
        connector_id: p.connector_id,
        identity: p.identity,
        scopes: p.scopes,
        nonce: p.nonce,
        auth_time: p.auth_time,
        grant: &grant,
        sid: p.session.map(super::session::sid),
        patch: &patch,
    };
    minted.response(broker, live, client, refresh_token)
}

/// Refuses a grant through `connector` the client may not use (`allowedConnectors`:
/// `unauthorized_client`) or the connector does not serve (its `grantTypes`: `invalid_request`,
/// as Dex answers).
pub(super) fn usable_connector(
    live: &Live,
    client: &Client,
    connector: &str,
    grant: GrantType,
) -> Result<(), OAuthError> {
    if !client.allows(connector) {
        return Err(OAuthError::new(
            OAuthErrorCode::UnauthorizedClient,
            format!("this client may not use connector {connector:?} (allowedConnectors)"),
        ));
    }
    if !live.config.connector_allows(connector, grant.as_str()) {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidRequest,
            format!("connector {connector:?} does not serve the {} grant (its grantTypes)", grant.as_str()),
        ));
    }
    Ok(())
}

/// The resource owner's credentials of a password grant.
struct Presented<'a> {
    username: &'a str,
    password: String,
    scope: Option<&'a str>,
    nonce: Option<&'a str>,
}

/// RFC 6749 §4.3, as Dex serves it: the user's password, checked by the connector
/// `oauth2.passwordConnector` names (the password database or a password connector such as
/// LDAP), throttled as the login form is. A wrong password is `invalid_grant`.
async fn password(
    broker: &AppState,
    live: &Live,
    client: &Client,
    ip: ClientIp,
    presented: Presented<'_>,
) -> Result<serde_json::Value, OAuthError> {
    let Some(connector) = live.config.oauth2.password_connector.as_deref() else {
        return Err(OAuthError::new(OAuthErrorCode::UnsupportedGrantType, "no oauth2.passwordConnector is configured"));
    };
    let scopes =
        ScopeSet::parse(presented.scope.unwrap_or("")).map_err(|e| OAuthError::new(OAuthErrorCode::InvalidScope, e))?;
    // A peer in `aud` must trust this client, as at authorize (Dex checks it in this grant too).
    crate::oidc::authorize::check_audiences(client, &scopes, &live.config.clients)?;
    usable_connector(live, client, connector, GrantType::Password)?;
    if let Err(throttled) = broker.throttles.password(ip.0, connector, presented.username) {
        crate::metrics::global().login(connector, "throttled");
        let wait = throttled.retry_after.as_secs().max(1);
        return Err(OAuthError::new(
            OAuthErrorCode::TemporarilyUnavailable,
            format!("too many password attempts; retry in {wait} seconds"),
        ));
    }
    let (verdict, supports_refresh) = if connector == LOCAL && live.config.enable_password_db {
        let verdict =
            super::login::verify_local(broker, live, presented.username, presented.password).await.map_err(|_| {
                OAuthError::new(OAuthErrorCode::TemporarilyUnavailable, "the server is busy checking passwords; retry")
            })?;
        (verdict, true)
    } else {
        let plugin = live
            .registry
            .get(connector)
            .filter(|p| p.metadata().kind == crate::connectors::ConnectorKind::Password)
            .ok_or_else(|| {
                OAuthError::new(
                    OAuthErrorCode::TemporarilyUnavailable,
                    format!("the password connector {connector:?} is not loaded right now"),
                )
            })?;
        let s = Scopes { offline_access: scopes.offline_access, groups: scopes.groups };
        let verdict = plugin.login(s, presented.username, &presented.password).await.map_err(|e| {
            tracing::warn!(%connector, "password grant: the connector failed: {e}");
            refresh_failure(&e)
        })?;
        (verdict, plugin.metadata().supports_refresh)
    };
    let Some(mut identity) = verdict else {
        crate::metrics::global().login(connector, "bad_credentials");
        return Err(OAuthError::invalid_grant("invalid username or password"));
    };
    if let Err(denied) = super::policy::check_login(live, &client.id, connector, &scopes.all, &mut identity).await {
        crate::metrics::global().login(connector, "policy_denied");
        return Err(super::policy::denied_grant(&denied));
    }
    crate::metrics::global().login(connector, "success");
    let now = now();
    let refresh = scopes.offline_access
        && supports_refresh
        && live.config.grant_types.contains(&crate::config::GrantType::RefreshToken);
    let proven = Proven {
        connector_id: connector,
        identity: &identity,
        scopes: &scopes,
        nonce: presented.nonce,
        auth_time: now,
        session: None,
        refresh,
        grant_kind: GrantKind::Password,
    };
    issue(broker, live, client, random_token(), proven, now).await
}

/// RFC 6749 §4.4: a confidential client gets an access token for itself — no user, so no ID
/// token and no refresh token; the token speaks for the client (Dex's claims).
async fn client_credentials(
    broker: &AppState,
    live: &Live,
    client: &Client,
    scope: Option<&str>,
) -> Result<serde_json::Value, OAuthError> {
    if client.public {
        return Err(OAuthError::new(
            OAuthErrorCode::UnauthorizedClient,
            "a public client has no secret to prove itself with; client_credentials needs a confidential client",
        ));
    }
    let scopes = client_credentials_scopes(scope)?;
    crate::oidc::authorize::check_audiences(client, &scopes, &live.config.clients)?;
    let identity = client_identity(client, &scopes);
    let now = now();
    // Nothing is stored: the grant is the token alone (`unstored_grant_id`).
    let grant = crate::storage::unstored_grant_id(&random_token());
    let access_lifetime = secs(live.config.expiry.access_tokens);
    let issuer = issuer(live);
    let token_id = random_token();
    let ctx = TokenContext {
        issuer: &issuer,
        client_id: &client.id,
        connector_id: "",
        identity: &identity,
        scopes: &scopes,
        nonce: None,
        auth_time: now,
        now,
        lifetime: secs(live.config.expiry.id_tokens),
        access_lifetime,
        grant_id: &grant,
        token_id: &token_id,
        sid: None,
    };
    let mint = crate::connectors::policy::MintContext {
        grant: GrantKind::ClientCredentials,
        client_id: &client.id,
        connector_id: None,
        identity: None,
        scopes: &scopes.all,
    };
    let patch = super::policy::mint(live, mint).await?;
    let claims = super::policy::patched(ctx.access_token(), None, &patch.access_token)?;
    let access = broker.keys.sign_access(&claims).map_err(|e| {
        tracing::error!("cannot sign a token: {e}");
        OAuthError::server_error("cannot sign the token")
    })?;
    Ok(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": access_lifetime,
        "scope": scopes.joined(),
    }))
}

/// What the tokens of one response say.
struct Minted<'a> {
    connector_id: &'a str,
    identity: &'a Identity,
    scopes: &'a ScopeSet,
    nonce: Option<&'a str>,
    auth_time: i64,
    grant: &'a str,
    sid: Option<String>,
    /// The policies' `mint-token` patches, asked before anything was stored.
    patch: &'a TokenPatch,
}

impl Minted<'_> {
    /// Signs the access and ID tokens (with the policies' patches): the token response's JSON.
    fn response(
        &self,
        broker: &AppState,
        live: &Live,
        client: &Client,
        refresh_token: Option<String>,
    ) -> Result<serde_json::Value, OAuthError> {
        let issuer = issuer(live);
        let lifetime = secs(live.config.expiry.id_tokens);
        let access_lifetime = secs(live.config.expiry.access_tokens);
        let token_id = random_token();
        let identity = self.identity.for_tokens();
        let (patch, login_claims) = (self.patch, self.identity.policy_claims());
        let ctx = TokenContext {
            issuer: &issuer,
            client_id: &client.id,
            connector_id: self.connector_id,
            identity: &identity,
            scopes: self.scopes,
            nonce: self.nonce,
            auth_time: self.auth_time,
            now: now(),
            lifetime,
            access_lifetime,
            grant_id: self.grant,
            token_id: &token_id,
            sid: self.sid.as_deref(),
        };
        let sign_error = |e: crate::keys::KeyError| {
            tracing::error!("cannot sign a token: {e}");
            OAuthError::server_error("cannot sign the token")
        };
        let access_claims = super::policy::patched(ctx.access_token(), login_claims, &patch.access_token)?;
        let access = broker.keys.sign_access(&access_claims).map_err(sign_error)?;
        let id_claims = ctx.id_token(&access, broker.keys.algorithm().as_str());
        let id_claims = super::policy::patched(id_claims, login_claims, &patch.id_token)?;
        let id_token = broker.keys.sign(&id_claims, "JWT").map_err(sign_error)?;
        let mut body = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": access_lifetime,
            "id_token": id_token,
            "scope": self.scopes.joined(),
        });
        if let Some(rt) = refresh_token {
            body["refresh_token"] = json!(rt);
        }
        Ok(body)
    }
}

/// After losing a rotation race: the successor the winner gave `presented`'s holder, if the
/// parent is still within its reuse interval and that successor is still live (`None`: no
/// successor this client can be given again).
async fn winner_successor(
    broker: &AppState,
    key: &TokenKey,
    presented: &str,
    client_id: &str,
    reuse_interval: i64,
) -> Result<Option<String>, OAuthError> {
    let now = now();
    let Some((parent, _)) = broker.store.refresh_token(key, now).await.map_err(storage_error)? else {
        return Ok(None);
    };
    if check_refresh(&parent.client_id, parent.rotated_at, client_id, now, reuse_interval)? == RefreshDecision::Replayed
    {
        return Ok(None);
    }
    let Some(successor) = parent.successor_sealed.as_deref().and_then(|sealed| unseal_successor(presented, sealed))
    else {
        return Ok(None);
    };
    let live = broker.store.refresh_token(&token_key(&successor), now).await.map_err(storage_error)?.is_some();
    Ok(live.then_some(successor))
}

async fn refresh(
    broker: &AppState,
    live: &Live,
    client: &Client,
    presented: String,
    scope: Option<&str>,
) -> Result<serde_json::Value, OAuthError> {
    let now = now();
    let key = token_key(&presented);
    // The token and whether its grant is live: one statement.
    let (mut stored, version, grant_live) = broker
        .store
        .refresh_token_and_grant(&key, now)
        .await
        .map_err(storage_error)?
        .ok_or_else(|| OAuthError::invalid_grant("the refresh token is invalid, expired or revoked"))?;
    let policy = live.config.expiry.refresh;
    if check_refresh(&stored.client_id, stored.rotated_at, &client.id, now, secs(policy.reuse_interval))?
        == RefreshDecision::Replayed
    {
        tracing::warn!(client = %client.id, "refresh token reuse detected; revoking the token family");
        broker.store.revoke_grant(&stored.family).await.map_err(storage_error)?;
        return Err(OAuthError::invalid_grant("the refresh token was already used; its whole family is revoked"));
    }
    // A retry within the reuse interval (a lost response) is answered with the same successor.
    if !grant_live {
        return Err(OAuthError::invalid_grant("the refresh token was revoked"));
    }
    if client.refresh_lifetime == RefreshTokenLifetime::Session {
        let alive = match &stored.session {
            Some(session) => broker.store.session(session, now).await.map_err(storage_error)?.is_some(),
            None => false,
        };
        if !alive {
            broker.store.revoke_grant(&stored.family).await.map_err(storage_error)?;
            return Err(OAuthError::invalid_grant("the session this refresh token belongs to has ended"));
        }
    }
    let scopes = refresh_scopes(&stored.scopes, scope)?;
    let mut identity = reread_user(live, &stored, &scopes).await?;
    // The policies decide again (before anything rotates): a denial is invalid_grant.
    let (client_id, connector) = (client.id.as_str(), stored.connector_id.as_str());
    super::policy::check_login(live, client_id, connector, &scopes.all, &mut identity)
        .await
        .map_err(|denied| super::policy::denied_grant(&denied))?;
    let shown = identity.for_tokens();
    let mint = super::policy::user_mint(GrantKind::RefreshToken, client_id, connector, &shown, &scopes.all);
    let patch = super::policy::mint(live, mint).await?;
    let expires_at = lifetime(live).expiry(stored.family_created_at, now);
    let retried = stored.successor_sealed.as_deref().and_then(|sealed| unseal_successor(&presented, sealed));
    let next_token = if let Some(successor) = retried.filter(|_| policy.rotation) {
        // The same successor again, never a second live child (audit I2).
        let successor_key = token_key(&successor);
        if broker.store.refresh_token(&successor_key, now).await.map_err(storage_error)?.is_none() {
            return Err(OAuthError::invalid_grant("the refresh token was already used and its successor is gone"));
        }
        successor
    } else if policy.rotation {
        let next = random_token();
        let next_key = token_key(&next);
        let record = RefreshToken {
            identity: identity.clone(),
            created_at: now,
            last_used: now,
            rotated_at: None,
            successor: None,
            successor_sealed: None,
            expires_at,
            ..stored.clone()
        };
        // The successor and the parent pointing at it are one change (one commit in SQLite, one
        // statement in PostgreSQL): never a parent whose successor does not exist.
        stored.rotated_at = Some(stored.rotated_at.unwrap_or(now));
        stored.successor = Some(next_key.clone());
        stored.successor_sealed = Some(seal_successor(&presented, &next));
        let rotated = broker.store.rotate_refresh_token(&key, &stored, version, &next_key, &record, now);
        if !rotated.await.map_err(storage_error)? {
            // Another request rotated it first; this successor was never kept. Within the
            // reuse interval the answer is the winner's successor, as for a retry: a retry that
            // raced its own first attempt (cut by a dying replica, still committing) must not
            // lose the client's only token.
            winner_successor(broker, &key, &presented, &client.id, secs(policy.reuse_interval)).await?.ok_or_else(
                || OAuthError::invalid_grant("the refresh token was used concurrently; retry with the newest token"),
            )?
        } else {
            next
        }
    } else {
        stored.last_used = now;
        stored.identity = identity.clone();
        stored.expires_at = expires_at;
        let _ = broker.store.update_refresh_token(&key, &stored, version, now).await.map_err(storage_error)?;
        presented
    };
    let minted = Minted {
        connector_id: &stored.connector_id,
        identity: &identity,
        scopes: &scopes,
        nonce: None,
        auth_time: stored.auth_time,
        grant: &stored.family,
        sid: stored.session.as_ref().map(super::session::sid),
        patch: &patch,
    };
    minted.response(broker, live, client, Some(next_token))
}

/// The user as the upstream knows them now: the local database, or the connector's `refresh`.
async fn reread_user(live: &Live, stored: &RefreshToken, scopes: &ScopeSet) -> Result<Identity, OAuthError> {
    if stored.connector_id == LOCAL {
        // The user as the config says now (name, groups may have changed); the same email with
        // another user id is another user (Dex's rule).
        let user = live
            .config
            .passwords
            .iter()
            .find(|p| Some(&p.email) == stored.identity.email.as_ref() && p.user_id == stored.identity.user_id);
        return match user {
            Some(user) if live.config.enable_password_db => Ok(user.identity()),
            _ => Err(OAuthError::invalid_grant("the user no longer exists")),
        };
    }
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
        return Ok(stored.identity.clone());
    }
    let s = Scopes { offline_access: scopes.offline_access, groups: scopes.groups };
    connector.refresh(s, stored.identity.clone()).await.map_err(|e| {
        tracing::warn!(connector = %stored.connector_id, "refresh failed: {e}");
        refresh_failure(&e)
    })
}
